"""AIS accuracy and speed against exact answers (issue 14).

Sections (``--only NAME`` runs one; several may be given, comma-separated):

``models``
    Trains the yardstick RBMs once and caches them under ``--model-dir`` (default
    ``runs/ais_models/``): 784 visible and 15-22 hidden units, ``BernoulliRBM.fit`` on the 50,000
    images of the fixed binarized MNIST train split, *differently* (CD-1 and PCD-1, SGD and Adam,
    few and many epochs, large and small steps, different seeds), each with its exact log Z by
    enumerating the hidden layer in float64 (:func:`pyrogen.testing.rbm_fixtures.rbm_log_z_exact`).
``grid``
    AIS on every model over a grid of chains x temperatures (S&M-shaped schedule, data base rate,
    float32 particles, float64 weights): error against the exact log Z, reported standard error,
    ESS and time, over ``--seeds`` seeds per setting.
``default``
    ``AIS()`` with no arguments (what a user gets) on every model, ``--seeds`` seeds: error,
    |error| / reported se, ESS, time; counts the runs within 0.1 nats and within 3 reported se.
``throughput``
    AIS on a 784-500 RBM with 1,000 chains: chain-sweeps/s and GFLOP/s (four ``M x V x H``
    products per sweep, ``4 M V H`` flops... i.e. two products of ``2 M V H``) against the float32
    matmul throughput of the same two products measured in the same run, interleaved; and the
    fixed per-temperature cost on 784x20 (time per temperature at 1 and 10 chains).
``patch``
    Patch RBMs (784 visible, ~500 hidden units, each hidden unit connected to one patch of the
    image; exact log Z as a sum of enumerable patch log normalizers, see
    :mod:`pyrogen.testing.rbm_fixtures`), trained on MNIST: the default's error vs its reported
    se, an "accurate" setting, and RAISE on test images.

Run from the repository root: ``python benchmarks/bench_ais.py [--only grid] [--quick]``.
One thread by default (``--threads``).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import append_to_file, bench_parser, header  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.environ.get("PYROGEN_DATA") or os.path.join(
    ROOT, "..", "shared", "data", "binarized_mnist.npz"
)

#: the yardstick models: name -> (n_hidden, method, epochs, optimizer, lr, seed)
MODELS = {
    "cd1-h20-e5-sgd05": (20, "cd", 5, "sgd", 0.05, 0),
    "pcd1-h20-e20-sgd05": (20, "pcd", 20, "sgd", 0.05, 1),
    "cd1-h15-e20-sgd2": (15, "cd", 20, "sgd", 0.2, 2),
    "pcd1-h18-e10-adam001": (18, "pcd", 10, "adam", 0.001, 3),
    "cd1-h20-e1-sgd01": (20, "cd", 1, "sgd", 0.01, 4),
    "pcd1-h22-e30-sgd1": (22, "pcd", 30, "sgd", 0.1, 5),
}
QUICK_MODELS = {"quick-cd1-h12-e1": (12, "cd", 1, "sgd", 0.05, 0)}


def load_x(split="train", limit=None):
    import torch

    from pyrogen.datasets import load_binarized_mnist

    return load_binarized_mnist(DATA, split, dtype=torch.float32, limit=limit).x


def model_specs(args):
    return QUICK_MODELS if args.quick else MODELS


def train_models(args, out):
    """Train (or load) every yardstick model; returns name -> (model, exact log Z, info)."""
    import torch

    from pyrogen.models import BernoulliRBM
    from pyrogen.testing.rbm_fixtures import rbm_log_z_exact

    os.makedirs(args.model_dir, exist_ok=True)
    x = None
    models = {}
    specs = model_specs(args)
    if getattr(args, "models", None):
        specs = {k: v for k, v in specs.items() if k in args.models.split(",")}
    for name, (nh, method, epochs, opt, lr, seed) in specs.items():
        path = os.path.join(args.model_dir, name + ".pt")
        meta_path = os.path.join(args.model_dir, name + ".json")
        if os.path.exists(path) and os.path.exists(meta_path):
            m = BernoulliRBM.load(path)
            with open(meta_path) as f:
                meta = json.load(f)
            models[name] = (m, meta["exact_log_z"], meta)
            continue
        if x is None:
            x = load_x("train", 5000 if args.quick else None)
        n = x.shape[0]
        m = BernoulliRBM(784, nh, training=method, num_chains=100, seed=seed)
        m.normalizer(method).refresh_every = 10**9  # the monitoring value is not needed
        steps = epochs * n // 100
        t0 = time.perf_counter()
        m.fit(x, method=method, num_steps=steps, lr=lr, batch_size=100, optimizer=opt,
              seed=seed, progress=False)
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        exact = rbm_log_z_exact(m.weight, m.visible_bias, m.hidden_bias)
        t_exact = time.perf_counter() - t0
        with torch.no_grad():
            ll = float((m.distribution().unnormalized_log_prob(x[:10000]).double() - exact).mean())
        meta = dict(
            name=name, n_hidden=nh, method=method, epochs=epochs, optimizer=opt, lr=lr,
            seed=seed, n_train=n, exact_log_z=exact, train_seconds=t_train,
            exact_seconds=t_exact, train_ll_exact=ll,
        )
        from pyrogen._io import atomic_write_text

        m.save(path)
        atomic_write_text(meta_path, json.dumps(meta, indent=1))
        models[name] = (m, exact, meta)
        print(f"trained {name}: {meta}", flush=True)
    lines = [
        "## yardstick RBMs (784 visible, fixed binarized MNIST train split)",
        f"{'model':<22} {'H':>3} {'rule':>5} {'epochs':>6} {'opt':>5} {'lr':>6} "
        f"{'exact log Z':>12} {'train LL':>9}",
    ]
    for name, (_, exact, meta) in models.items():
        lines.append(
            f"{name:<22} {meta['n_hidden']:>3} {meta['method']:>5} {meta['epochs']:>6} "
            f"{meta['optimizer']:>5} {meta['lr']:>6} {exact:>12.4f} {meta['train_ll_exact']:>9.2f}"
        )
    text = "\n".join(lines)
    print(text, flush=True)
    out.append(text)
    return models


# --------------------------------------------------------------------------------------------
# accuracy grid
# --------------------------------------------------------------------------------------------
#: (chains, temperatures) pairs of the grid: chains x temperatures in {100, 300, 1000, 3000,
#: 10000}^2 up to 3e5 chain-sweeps per run (the larger ones cost minutes a run on the shared VM)
GRID = sorted(
    [(m, k) for m in (100, 300, 1000, 3000, 10000) for k in (100, 300, 1000, 3000, 10000)
     if m * k <= 3 * 10**5],
    key=lambda mk: (mk[0] * mk[1], mk[1]),
)
QUICK_GRID = [(100, 100), (300, 100), (100, 300)]


def rbm_path(m):
    from pyrogen.infer.ais import RBMBaseRatePath

    return RBMBaseRatePath(m.weight.detach(), m.visible_bias.detach(), m.hidden_bias.detach(),
                           m.base_rate_logits)


def timed_ais(path, betas, chains, seed, **kw):
    """One AIS run: (result, wall seconds, CPU seconds of this thread)."""
    import torch

    from pyrogen.infer.ais import ais

    gen = torch.Generator().manual_seed(seed)
    t0, c0 = time.perf_counter(), time.thread_time()
    with torch.no_grad():
        r = ais(path, betas, chains, generator=gen, **kw)
    return r, time.perf_counter() - t0, time.thread_time() - c0


def _load_jsonl(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return rows


def _append_jsonl(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def summarize(rows, key_fields, exact_field="exact"):
    """Per setting: median CPU/wall s, mean err, max |err|, fraction |err| <= 0.1, mean se,
    fraction |err| <= 3 se, mean ESS."""
    from collections import defaultdict

    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in key_fields)].append(r)
    out = []
    for key, rs in groups.items():
        errs = [r["log_z"] - r[exact_field] for r in rs]
        ses = [r["se"] for r in rs]
        out.append(dict(
            key=key, n=len(rs),
            cpu=sorted(r["cpu_s"] for r in rs)[len(rs) // 2],
            wall=sorted(r["wall_s"] for r in rs)[len(rs) // 2],
            mean_err=sum(errs) / len(errs), max_abs=max(abs(e) for e in errs),
            within01=sum(abs(e) <= 0.1 for e in errs),
            mean_se=sum(ses) / len(ses),
            covered=sum(abs(e) <= 3 * s for e, s in zip(errs, ses)),
            ess=sum(r["ess"] for r in rs) / len(rs),
            ess_min=min(r["ess"] for r in rs),
        ))
    return out


def grid_table(rows, title):
    lines = [title, f"{'model':<22} {'chains':>6} {'temps':>6} {'CPU s':>7} {'wall s':>7} "
             f"{'mean err':>8} {'max|err|':>8} {'<=0.1':>6} {'mean se':>8} {'<=3se':>6} "
             f"{'ESS':>7} {'minESS':>7}"]
    for s in summarize(rows, ("model", "chains", "temps")):
        name, m, k = s["key"]
        lines.append(
            f"{name:<22} {m:>6} {k:>6} {s['cpu']:>7.2f} {s['wall']:>7.2f} {s['mean_err']:>8.3f} "
            f"{s['max_abs']:>8.3f} {s['within01']:>3}/{s['n']:<2} {s['mean_se']:>8.3f} "
            f"{s['covered']:>3}/{s['n']:<2} {s['ess']:>7.1f} {s['ess_min']:>7.1f}"
        )
    return "\n".join(lines)


def bench_grid(args, out):
    import warnings

    models = train_models(args, [])
    store = os.path.join(args.model_dir, "grid_quick.jsonl" if args.quick else "grid.jsonl")
    done = {(r["model"], r["chains"], r["temps"], r["seed"]) for r in _load_jsonl(store)}
    grid = QUICK_GRID if args.quick else GRID
    if args.grid:
        grid = [tuple(int(v) for v in s.split("x")) for s in args.grid.split(",")]
    for seed in range(args.seeds):  # seed-major: a truncated run covers every setting
        for chains, temps in grid:
            for name, (m, exact, _) in models.items():
                if (name, chains, temps, seed) in done:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r, wall, cpu = timed_ais(rbm_path(m), temps, chains, seed)
                row = dict(model=name, chains=chains, temps=temps, seed=seed, exact=exact,
                           log_z=float(r.log_z), se=float(r.log_z_stderr), ess=float(r.ess),
                           wall_s=wall, cpu_s=cpu, load=os.getloadavg()[0])
                _append_jsonl(store, row)
            print(f"done seed {seed} {chains}x{temps} (load {os.getloadavg()[0]:.1f})", flush=True)
    rows = [r for r in _load_jsonl(store) if (r["chains"], r["temps"]) in set(grid)]
    text = grid_table(rows, f"## AIS grid: chains x temperatures ('sm' schedule, data base rate, "
                      f"float32), {args.seeds} seeds; exact log Z by enumeration")
    print(text, flush=True)
    out.append(text)


# --------------------------------------------------------------------------------------------
# pooled chains: the statistics of many M-chain runs from one big run
# --------------------------------------------------------------------------------------------
#: (temperatures, pooled chains): one run of P chains at K temperatures is split into P / M
#: disjoint groups of M chains, each exactly an independent M-chain AIS run (chains never
#: interact in AIS), so one pool gives the error distribution of every M dividing P.
POOLS = [(300, 3000), (1000, 3000), (3000, 1000), (10000, 1000)]
QUICK_POOLS = [(100, 300)]


def pool_stats(log_w, exact, group):
    """Per group of ``group`` consecutive chains: (error, reported se, ESS) of its estimate."""
    from pyrogen.evaluation import log_mean_exp

    n = log_w.shape[0] // group
    lw = log_w[: n * group].double().reshape(n, group).T  # (group, n runs)
    r = log_mean_exp(lw, dim=0)
    return [(float(v) - exact, float(s), float(e)) for v, s, e in zip(r.value, r.stderr, r.ess)]


def bench_pool(args, out):
    import warnings

    import torch

    from pyrogen.infer.annealing import ais

    models = train_models(args, [])
    pools = QUICK_POOLS if args.quick else POOLS
    if args.grid:
        pools = [tuple(int(v) for v in s.split("x")) for s in args.grid.split(",")]
    for temps, chains in pools:
        for name, (m, exact, _) in models.items():
            f = os.path.join(args.model_dir, f"pool_{name}_{temps}x{chains}.pt")
            if os.path.exists(f) or args.analyze:
                continue
            t0, c0 = time.perf_counter(), time.thread_time()
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                r = ais(rbm_path(m), temps, chains, seed=1000 + temps)
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            torch.save({"log_weights": r.log_weights.double(), "exact": exact, "wall_s": wall,
                        "cpu_s": cpu, "load": os.getloadavg()[0]}, f)
            print(f"pool {name} {temps}x{chains}: cpu {cpu:.1f}s wall {wall:.1f}s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    lines = [
        "## AIS error distribution from pooled chains ('sm' schedule, data base rate, float32 "
        "particles): a pool of P chains split into P/M independent M-chain runs",
        f"{'model':<22} {'temps':>6} {'chains':>6} {'runs':>4} {'mean err':>8} {'max|err|':>8} "
        f"{'<=0.1':>6} {'mean se':>8} {'<=3se':>6} {'mean ESS':>8} {'CPU s/run':>9}",
    ]
    for temps, chains in pools:
        for name, (_m, exact, _) in models.items():
            f = os.path.join(args.model_dir, f"pool_{name}_{temps}x{chains}.pt")
            if not os.path.exists(f):
                continue
            d = torch.load(f, weights_only=True)
            for group in (100, 300, 1000, 3000):
                if group > chains // 3 and group != chains:
                    continue
                st = pool_stats(d["log_weights"], exact, group)
                n = len(st)
                errs = [e for e, _, _ in st]
                lines.append(
                    f"{name:<22} {temps:>6} {group:>6} {n:>4} {sum(errs) / n:>8.3f} "
                    f"{max(abs(e) for e in errs):>8.3f} "
                    f"{sum(abs(e) <= 0.1 for e in errs):>3}/{n:<2} "
                    f"{sum(s for _, s, _ in st) / n:>8.3f} "
                    f"{sum(abs(e) <= 3 * s for e, s, _ in st):>3}/{n:<2} "
                    f"{sum(x for _, _, x in st) / n:>8.1f} {d['cpu_s'] * group / chains:>9.2f}"
                )
    text = "\n".join(lines)
    print(text, flush=True)
    out.append(text)


# --------------------------------------------------------------------------------------------
# patch RBMs: full size, exact log Z by construction
# --------------------------------------------------------------------------------------------
#: name -> (patch shape, hidden units per patch, epochs, lr, persistent, seed)
PATCH_MODELS = {
    "patch4x4-h10-cd1-e1": ((4, 4), 10, 1.0, 0.05, False, 0),
    "patch4x7-h18-pcd1-e1": ((4, 7), 18, 1.0, 0.05, True, 1),
    "patch4x4-h10-pcd1-e3-lr1": ((4, 4), 10, 3.0, 0.1, True, 2),
}
QUICK_PATCH_MODELS = {"quick-patch4x4-h4": ((4, 4), 4, 0.1, 0.05, False, 0)}


def patch_models(args):
    """Train (or load) the patch RBMs; name -> PatchRBM."""
    import torch

    from pyrogen.testing.rbm_fixtures import PatchRBM, patch_rbm_mask, train_patch_rbm

    specs = QUICK_PATCH_MODELS if args.quick else PATCH_MODELS
    if getattr(args, "models", None):
        specs = {k: v for k, v in specs.items() if k in args.models.split(",")} or specs
    os.makedirs(args.model_dir, exist_ok=True)
    x, out = None, {}
    for name, (shape, hpp, epochs, lr, persistent, seed) in specs.items():
        f = os.path.join(args.model_dir, name + ".pt")
        if os.path.exists(f):
            d = torch.load(f, weights_only=True)
            mask, patches = patch_rbm_mask((28, 28), shape, hpp)
            out[name] = PatchRBM(d["weight"], d["visible_bias"], d["hidden_bias"], mask, patches,
                                 d["log_z"], d["info"])
            continue
        if x is None:
            x = load_x("train", 5000 if args.quick else None)
        t0 = time.perf_counter()
        p = train_patch_rbm(x, patch_shape=shape, hidden_per_patch=hpp, epochs=epochs, lr=lr,
                            persistent=persistent, seed=seed)
        p.info["seconds"] = time.perf_counter() - t0
        p.info["base_rate"] = None
        torch.save({"weight": p.weight, "visible_bias": p.visible_bias,
                    "hidden_bias": p.hidden_bias, "log_z": p.log_z, "info": p.info}, f)
        print(f"patch model {name}: H={p.n_hidden}, exact log Z {p.log_z:.4f} "
              f"({p.info['seconds']:.0f} s)", flush=True)
        out[name] = p
    return out


def bench_patch(args, out):
    import warnings

    import torch

    from pyrogen.infer.annealing import RBMBaseRatePath, base_rate_visible_bias, reverse_ais

    models = patch_models(args)
    x = load_x("train", 10000)
    base = base_rate_visible_bias(x)
    x_test = load_x("test")
    idx = torch.linspace(0, x_test.shape[0] - 1, args.raise_images).long()
    xt = x_test[idx]
    settings = [tuple(int(v) for v in s.split("x")) for s in args.patch_settings.split(",")]
    store = os.path.join(args.model_dir, "patch_runs.jsonl")
    done = {(r["model"], r["chains"], r["temps"], r["seed"], r["kind"]) for r in _load_jsonl(store)}
    for name, p in models.items():
        path = RBMBaseRatePath(p.weight, p.visible_bias, p.hidden_bias, base)
        for chains, temps in settings:
            for seed in range(args.patch_seeds):
                if (name, chains, temps, seed, "ais") in done:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r, wall, cpu = timed_ais(path, temps, chains, seed)
                _append_jsonl(store, dict(
                    model=name, kind="ais", chains=chains, temps=temps, seed=seed,
                    exact=p.log_z, log_z=float(r.log_z), se=float(r.log_z_stderr),
                    ess=float(r.ess), wall_s=wall, cpu_s=cpu, load=os.getloadavg()[0]))
                print(f"patch {name} {chains}x{temps} seed {seed}: err "
                      f"{float(r.log_z) - p.log_z:+.3f} se {float(r.log_z_stderr):.3f} "
                      f"ESS {float(r.ess):.1f} CPU {cpu:.1f}s", flush=True)
        rc, rk = (int(v) for v in args.raise_setting.split("x"))
        if (name, rc, rk, 0, "raise") not in done:
            with torch.no_grad():
                exact_ll = path.log_density(xt, 1.0).double() - p.log_z
                t0, c0 = time.perf_counter(), time.thread_time()
                rr = reverse_ais(path, xt, rk, rc, seed=0)
                cpu = time.thread_time() - c0
            _append_jsonl(store, dict(
                model=name, kind="raise", chains=rc, temps=rk, seed=0, exact=p.log_z,
                n_images=len(idx), exact_ll=float(exact_ll.mean()),
                raise_ll=float(rr.log_prob.double().mean()),
                raise_se=float(rr.log_prob_stderr.double().pow(2).mean().sqrt() / len(idx) ** 0.5),
                wall_s=time.perf_counter() - t0, cpu_s=cpu, load=os.getloadavg()[0]))
    rows = _load_jsonl(store)
    lines = ["## patch RBMs (784 visible; exact log Z = sum of enumerated patch log normalizers)",
             grid_table([r for r in rows if r["kind"] == "ais"], "AIS runs:")]
    lines.append(f"{'model':<26} {'RAISE':>12} {'images':>6} {'exact LL':>9} {'RAISE LL':>9} "
                 f"{'se':>6} {'CPU s':>7}")
    for r in rows:
        if r["kind"] == "raise":
            lines.append(f"{r['model']:<26} {r['chains']:>5}x{r['temps']:<6} {r['n_images']:>6} "
                         f"{r['exact_ll']:>9.3f} {r['raise_ll']:>9.3f} {r['raise_se']:>6.3f} "
                         f"{r['cpu_s']:>7.1f}")
    text = "\n".join(lines)
    print(text, flush=True)
    out.append(text)


# --------------------------------------------------------------------------------------------
# throughput against the same-run matmul
# --------------------------------------------------------------------------------------------
def bench_throughput(args, out):
    import statistics
    import warnings

    import torch

    from pyrogen.infer.annealing import RBMBaseRatePath, ais

    lines = []
    shapes = [(1000, 500), (100, 500), (1000, 20), (100, 20), (10, 20), (1, 20)]
    if args.quick:
        shapes = [(100, 50), (1, 20)]
    temps = 10 if args.quick else 30
    reps = 2 if args.quick else (args.repeats or 5)
    for chains, nh in shapes:
        g = torch.Generator().manual_seed(0)
        W = 0.05 * torch.randn(784, nh, generator=g)
        b = torch.randn(784, generator=g) - 1
        c = torch.randn(nh, generator=g) - 1
        path = RBMBaseRatePath(W, b, c, b)
        v = (torch.rand(chains, 784, generator=g) < 0.2).float()
        h = (torch.rand(chains, nh, generator=g) < 0.2).float()
        wt = W.T.contiguous()

        def run_ais(path=path, chains=chains):
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                ais(path, temps + 1, chains, seed=0)

        def run_matmul(v=v, W=W, h=h, wt=wt):
            for _ in range(temps):
                v @ W
                h @ wt

        cands = {"ais": run_ais, "matmul": run_matmul}
        cpu = {k: [] for k in cands}
        wall = {k: [] for k in cands}
        for r in range(reps + 1):
            for k, fn in (cands.items() if r % 2 else reversed(cands.items())):
                t0, c0 = time.perf_counter(), time.thread_time()
                fn()
                if r:
                    cpu[k].append((time.thread_time() - c0) / temps)
                    wall[k].append((time.perf_counter() - t0) / temps)
        ta, tm = statistics.median(cpu["ais"]), statistics.median(cpu["matmul"])
        wa, wm = statistics.median(wall["ais"]), statistics.median(wall["matmul"])
        flops = 4 * 784 * nh * chains
        lines.append(
            f"784x{nh:<4} {chains:>5} chains: AIS {ta * 1e3:8.3f} ms/temperature CPU "
            f"({chains / ta:9.0f} chain-sweeps/s, {flops / ta / 1e9:6.2f} GFLOP/s); matmul "
            f"{flops / tm / 1e9:6.2f} GFLOP/s; AIS/matmul {tm / ta:5.2f} (CPU clock) | wall: AIS "
            f"{wa * 1e3:8.3f} ms, {chains / wa:9.0f} chain-sweeps/s, AIS/matmul {wm / wa:5.2f}"
        )
        print(lines[-1], flush=True)
    head = (f"## AIS throughput (ais(), {temps} temperatures, float32, 1 thread, {reps} "
            f"interleaved repeats; matmul = the two float32 products v W and h W^T of the same "
            f"shapes, same run; flops 4 M V H per temperature; load "
            f"{os.getloadavg()[0]:.1f})")
    text = "\n".join([head] + lines)
    print(text, flush=True)
    out.append(text)


def bench_figure(args, out):
    """The accuracy/cost curves of the pools as a figure (``--figure PATH``)."""
    import glob

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from pyrogen.plotting import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = {300: "o", 1000: "s", 3000: "^", 10000: "D"}
    names = sorted({os.path.basename(f)[5:].rsplit("_", 1)[0]
                    for f in glob.glob(os.path.join(args.model_dir, "pool_*.pt"))})
    colors = dict(zip(names, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for f in sorted(glob.glob(os.path.join(args.model_dir, "pool_*.pt"))):
        name, setting = os.path.basename(f)[5:-3].rsplit("_", 1)
        temps, chains = (int(v) for v in setting.split("x"))
        d = torch.load(f, weights_only=True)
        for group in (100, 300, 1000, 3000):
            if group > chains // 3 and group != chains:
                continue
            st = pool_stats(d["log_weights"], d["exact"], group)
            rms = math.sqrt(sum(e * e for e, _, _ in st) / len(st))
            ax.scatter(d["cpu_s"] * group / chains, rms, color=colors[name],
                       marker=markers.get(temps, "x"), s=20 + 10 * math.log10(group))
    for name, col in colors.items():
        ax.plot([], [], color=col, label=name)
    for temps, mk in markers.items():
        ax.scatter([], [], color="k", marker=mk, label=f"{temps} temperatures")
    ax.axhline(0.1, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("CPU seconds per run (1 thread; marker size ~ log chains)")
    ax.set_ylabel("RMS error of the AIS log Z (nats)")
    ax.set_title("AIS on 784 x 15-22 MNIST RBMs vs exact log Z")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    save_figure(fig, args.figure, dpi=90)
    out.append(f"figure written to {args.figure}")
    print(out[-1], flush=True)


# --------------------------------------------------------------------------------------------
# SMC: adaptive schedule settings (particles x target conditional ESS x moves per temperature)
# --------------------------------------------------------------------------------------------
#: (particles, target_cess, num_moves) settings of the SMC tuning run.
SMC_SETTINGS = [(100, 0.99, 1), (100, 0.999, 1), (300, 0.999, 1), (100, 0.999, 3),
                (300, 0.9999, 1)]
QUICK_SMC_SETTINGS = [(50, 0.99, 1)]


def bench_smc(args, out):
    """Adaptive-schedule SMC against the exact log Z, over SMC_SETTINGS and seeds."""
    import warnings

    import torch

    from pyrogen.infer.annealing import smc

    models = train_models(args, [])
    store = os.path.join(args.model_dir, "smc_quick.jsonl" if args.quick else "smc.jsonl")
    done = {(r["model"], r["chains"], r["cess"], r["moves"], r["seed"])
            for r in _load_jsonl(store)}
    settings = QUICK_SMC_SETTINGS if args.quick else SMC_SETTINGS
    if args.smc_settings:
        settings = [(int(a), float(b), int(c)) for a, b, c in
                    (t.split(":") for t in args.smc_settings.split(","))]
    for seed in range(args.seeds):
        for chains, cess, moves in settings:
            for name, (m, exact, _) in models.items():
                if (name, chains, cess, moves, seed) in done:
                    continue
                gen = torch.Generator().manual_seed(seed)
                t0, c0 = time.perf_counter(), time.thread_time()
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    r = smc(rbm_path(m), None, chains, target_cess=cess, num_moves=moves,
                            generator=gen)
                row = dict(model=name, chains=chains, cess=cess, moves=moves, seed=seed,
                           exact=exact, log_z=float(r.log_z), se=float(r.log_z_stderr),
                           ess=float(r.ess), num_betas=int(r.num_betas),
                           wall_s=time.perf_counter() - t0, cpu_s=time.thread_time() - c0,
                           load=os.getloadavg()[0])
                _append_jsonl(store, row)
            print(f"done seed {seed} smc {chains}:{cess}:{moves} (load "
                  f"{os.getloadavg()[0]:.1f})", flush=True)
    rows = _load_jsonl(store)
    lines = ["## SMC (adaptive schedule), error against the exact log Z",
             "| model | particles | target CESS | moves | runs | mean err | max abs err | "
             "<=0.1 | mean se | <=3se | temps | CPU s/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["chains"], r["cess"], r["moves"]) for r in rows})
    for key in keys:
        rr = [r for r in rows if (r["model"], r["chains"], r["cess"], r["moves"]) == key]
        err = [r["log_z"] - r["exact"] for r in rr]
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(rr)} | "
            f"{sum(err) / len(err):+.3f} | {max(abs(e) for e in err):.3f} | "
            f"{sum(abs(e) <= 0.1 for e in err)}/{len(rr)} | "
            f"{sum(r['se'] for r in rr) / len(rr):.3f} | "
            f"{sum(abs(e) <= 3 * r['se'] for e, r in zip(err, rr))}/{len(rr)} | "
            f"{sum(r['num_betas'] for r in rr) / len(rr):.0f} | "
            f"{sum(r['cpu_s'] for r in rr) / len(rr):.1f} |")
    text = "\n".join(lines)
    print(text, flush=True)
    out.append(text)



SECTIONS = {"models": train_models, "grid": bench_grid, "pool": bench_pool,
            "patch": bench_patch, "throughput": bench_throughput,
            "figure": bench_figure, "smc": bench_smc}


def main(argv=None):
    p = bench_parser("AIS accuracy against exact log Z, and AIS throughput against matmul")
    p.add_argument("--only", default=None, help="comma-separated sections: " + ", ".join(SECTIONS))
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--models", default=None, help="comma-separated model names (default all)")
    p.add_argument("--grid", default=None, help="grid settings, e.g. 1000x300,300x1000")
    p.add_argument("--patch-settings", default="100x10000",
                   help="chains x temperatures of the patch-RBM AIS runs, comma-separated")
    p.add_argument("--patch-seeds", type=int, default=3)
    p.add_argument("--raise-images", type=int, default=20)
    p.add_argument("--raise-setting", default="5x1000", help="RAISE chains x temperatures")
    p.add_argument("--figure", default=os.path.join(ROOT, "docs", "_static", "ais_accuracy.png"))
    p.add_argument("--smc-settings", default=None,
                   help="SMC settings particles:target_cess:moves, comma-separated")
    p.add_argument("--analyze", action="store_true", help="pool: tabulate saved pools only")
    p.add_argument("--model-dir", default=os.path.join(ROOT, "runs", "ais_models"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads or 1)
    only = args.only.split(",") if args.only else list(SECTIONS)
    for name in only:
        if name not in SECTIONS:
            p.error(f"--only must name sections from {list(SECTIONS)}. Got {name!r}.")
    out = [header()]
    print(out[0], flush=True)
    for name in only:
        SECTIONS[name](args, out)
    if args.out:
        append_to_file(args.out, "\n\n".join(out))


if __name__ == "__main__":
    main()
