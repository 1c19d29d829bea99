"""RBM benchmarks: CD-1 / PCD-1 training through Pyro SVI vs scikit-learn, and AIS.

Sections (``--only train|ais|throughput`` runs one):

``train``
    RBM 784-500 on the fixed binarized MNIST, batch 100. Candidates, interleaved:

    * ``pyrogen-fit-cd1`` / ``pyrogen-fit-pcd1``: what a user runs, **defaults on**,
      ``BernoulliRBM(784, 500).fit(x, method="cd" | "pcd", optimizer="sgd", batch_size=100)``
      (PCD with 100 chains) on the first ``--batches * 100`` of the ``--rows`` loaded rows:
      Pyro SVI + ``Trace_ELBO`` on the model's PyroModule parameters; the data validated once
      per ``fit`` call (binary, shape, finite; included in the time), the steps then with
      Pyro's per-step validation off, one joint SGD update per step, and the default value
      refresh of log Z (a short AIS run at step 0 of each ``fit`` call and then at the start
      of every convergence window, at most every 100 steps: ``fit(refresh_every=None)``)
      included. ``--rows 50000 --batches 500``: each repeat is one epoch of the fixed
      binarized MNIST with its one refresh, exactly what a user's epoch costs; the default
      (5,000 rows, 100 batches) holds one refresh per 100 steps (the schedule of a 5,000-row
      data set).
    * ``pyrogen-fit-cd1-norefresh`` / ``pyrogen-fit-pcd1-norefresh``: the same with the value
      refresh moved out of the timed loop (``refresh_every`` larger than the run): the learning
      rule alone. The difference of the two rows is the cost of the default monitoring.
    * ``pyrogen-fit-cd1-refresh100`` / ``pyrogen-fit-pcd1-refresh100``: the same with the value
      refreshed every 100 SVI calls, the default schedule before 2026-12-03.
    * ``pyrogen-svi-cd1`` / ``pyrogen-svi-pcd1``: a hand-written ``pyro.infer.SVI`` +
      ``Trace_ELBO`` + plain SGD (one ``pyro.optim.SGD`` optimizer per parameter) on
      ``pyro.sample("x", RBM(W, b, c, normalizer=CD(1) | PCD(100, 1)), obs=x)`` in a subsampled
      data plate (the gradient trick *is* the CD/PCD rule), float32, ``pyro.param`` parameters,
      Pyro's default validation on. ``RBM.log_prob`` takes its fused CD/PCD step (one forward
      and one backward product for data and chains together; five products per CD-1 step, six
      per PCD-1 step). The normalizer's value refresh (an AIS run) is moved out of the timed
      loop (``refresh_every`` larger than the run), so the rows time the learning rule only.
    * ``pyrogen-svi-pcd1-reuse``: ``PCD(..., reuse_hidden=True)``: the chains' hidden state
      is drawn from the forward product (five products), the PCD variant scikit-learn runs.
    * ``pyrogen-svi-cd1-novalid``: fused CD-1 with Pyro's validation off
      (``pyro.validation_enabled(False)``: no per-step NaN check of ``W`` and support check
      of the batch).
    * ``sklearn-pcd1-f64``: ``sklearn.neural_network.BernoulliRBM`` (PCD-1, plain SGD) on
      float64 input -- what it computes in for the uint8 MNIST (its input validation turns
      integer data into float64).
    * ``sklearn-pcd1-f32``: the same on float32 input (scikit-learn keeps float32).
    * ``matmul-torch-f32`` / ``matmul-numpy-f32``: the five float32 matrix products a
      CD-1/PCD-1 step needs at minimum (``v W``, ``h W^T``, ``v' W``, ``v^T p(h|v)``,
      ``v'^T p(h|v')``; :math:`5 \\cdot 2BVH` flops), timed on their own with torch's BLAS
      (MKL) and with numpy's (OpenBLAS, scikit-learn's): this machine's float32 matmul
      throughput for the same work. The faster of the two is "the machine's".

    Each candidate runs ``--batches`` mini-batches (default 100 = 10,000 images); the time per
    epoch (50,000 images = 500 batches) is extrapolated linearly and said so. The headline
    ratio compares equal dtypes (pyrogen float32 against scikit-learn on float32 input); the
    float64 row is what scikit-learn computes in for uint8 input. Goal (issue 19): the
    default ``fit`` at >= 0.85 of the five-product ceiling (the ``matmul-*-f32`` rows: time of
    the five products / time of ``fit``), i.e. >= 1.3x scikit-learn float32.
    ``--candidates a,b,...`` times a subset. All candidates run single-threaded (``--threads``);
    ``--clock cpu`` times them by the thread's CPU time instead of wall time (on a shared
    machine the waits for a core then drop out).

``ais``
    A 784-20 RBM trained by CD-1 (plain torch, 10 epochs on 10,000 images); exact log Z by
    enumerating the 2^20 hidden states; AIS (data base rate, 100 chains) for a range of
    ``num_betas``: time, error against exact, reported stderr, ESS, over ``--seeds`` runs.

``throughput``
    AIS on a 784-500 RBM: chains x Gibbs sweeps per second (100 chains, 200 temperatures).

Run from the repository root: ``python benchmarks/bench_rbm.py [--quick]``. Single-threaded
torch and BLAS by default (``--threads``) so that scikit-learn and torch get the same cores.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import append_to_file, bench_parser, compare, header  # noqa: E402

V, H, B = 784, 500, 100


DATA = os.environ.get("PYROGEN_DATA") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "binarized_mnist.npz"
)


def load_train(limit):
    import torch

    from pyrogen.datasets import load_binarized_mnist

    return load_binarized_mnist(DATA, split="train", dtype=torch.float32, limit=limit).x


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
def pyrogen_svi_trainer(
    x, method, n_hidden, num_batches, lr=0.05, seed=0, fused=True, validate=True, reuse=False
):
    """A closure running ``num_batches`` SVI steps of CD-1 or PCD-1 through Pyro
    (``validate``: Pyro's argument/support validation, on by default in Pyro)."""
    import pyro
    import pyro.optim
    import torch
    from pyro.infer import SVI, Trace_ELBO

    from pyrogen.distributions import RBM
    from pyrogen.infer.ais import base_rate_visible_bias
    from pyrogen.normalizers import AIS, CD, PCD

    n = x.shape[0]
    big = 10**9
    cheap = AIS(num_chains=2, num_betas=2)  # value refresh (not timed: see module docstring)
    if method == "cd":
        norm = CD(num_steps=1, estimator=cheap, refresh_every=big, fused=fused)
    else:
        norm = PCD(
            num_chains=B,
            num_steps=1,
            estimator=cheap,
            refresh_every=big,
            fused=fused,
            reuse_hidden=reuse,
        )
    g = torch.Generator().manual_seed(seed)
    W0 = 0.01 * torch.randn(x.shape[1], n_hidden, generator=g)
    b0 = base_rate_visible_bias(x)
    store = pyro.get_param_store()
    tag = f"{method}{'' if fused else '_generic'}{'' if validate else '_nv'}{'_r' if reuse else ''}"
    names = {k: f"{tag}_{k}" for k in "Wbc"}

    def model(batch):
        W = pyro.param(names["W"], lambda: W0.clone())
        b = pyro.param(names["b"], lambda: b0.clone())
        c = pyro.param(names["c"], lambda: torch.zeros(n_hidden))
        with pyro.plate("data", n, subsample=batch):
            pyro.sample("x", RBM(W, b, c, normalizer=norm), obs=batch)

    def guide(batch):
        pass

    svi = SVI(model, guide, pyro.optim.SGD({"lr": lr / n}), Trace_ELBO())
    order = torch.randperm(n, generator=g)
    svi.step(x[order[:B]])  # first call: creates params, runs the (cheap) value refresh

    def run():
        with pyro.validation_enabled(validate):
            for i in range(num_batches):
                idx = order[(i * B) % n : (i * B) % n + B]
                svi.step(x[idx])
        return float(store[names["W"]].detach().abs().mean())

    return run


def pyrogen_fit_trainer(x, method, n_hidden, num_batches, lr=0.05, seed=0, refresh=True):
    """A closure calling ``BernoulliRBM.fit`` for ``num_batches`` steps of batch 100 (one pass
    over ``num_batches * 100`` rows: validation once, then SVI with per-step validation off).
    ``refresh=True`` keeps the default value refresh of log Z (what a user runs); ``False``
    moves it out of the timed loop; an integer refreshes every that many SVI calls (100: the
    schedule that was the default before 2026-12-03)."""
    from pyrogen.models import BernoulliRBM

    xs = x[: num_batches * B]
    m = BernoulliRBM(x.shape[1], n_hidden, training=method, num_chains=B, seed=seed)
    if refresh is False:
        m.normalizer(method).refresh_every = 10**9  # value refresh out of the timed loop
    elif refresh is not True:
        m.normalizer(method).refresh_every = int(refresh)
    kw = dict(method=method, batch_size=B, optimizer="sgd", lr=lr, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(xs, num_steps=1, **kw)  # first call: runs the value refresh once

    def run():
        with warnings.catch_warnings():  # ConvergenceWarning / AISWarning of short runs
            warnings.simplefilter("ignore")
            m.fit(xs, num_steps=num_batches, **kw)
        return float(m.weight.detach().abs().mean())

    return run


def sklearn_trainer(x_np, n_hidden, num_batches, lr=0.05, seed=0):
    from sklearn.neural_network import BernoulliRBM

    xs = x_np[: num_batches * B]

    def run():
        rbm = BernoulliRBM(
            n_components=n_hidden, learning_rate=lr, batch_size=B, n_iter=1, random_state=seed
        )
        rbm.fit(xs)  # one pass over num_batches batches of 100
        return float(abs(rbm.components_).mean())

    return run


def matmul_only(n_hidden, num_batches, seed=0, backend="torch"):
    """The five products of a CD-1/PCD-1 step, ``num_batches`` times, float32."""
    import numpy as np
    import torch

    g = torch.Generator().manual_seed(seed)
    v = (torch.rand(B, V, generator=g) < 0.2).float()
    W = 0.01 * torch.randn(V, n_hidden, generator=g)
    h = torch.rand(B, n_hidden, generator=g)
    if backend == "numpy":
        v, W, h = (np.ascontiguousarray(t.numpy()) for t in (v, W, h))

    def run():
        s = 0.0
        for _ in range(num_batches):
            a = v @ W
            r = h @ W.T
            a2 = r @ W
            g1 = v.T @ a
            g2 = r.T @ a2
            s += float(g1[0, 0] - g2[0, 0])
        return s

    return run


def bench_train(args, out):
    import torch

    nb = 4 if args.quick else args.batches
    nh = 50 if args.quick else H
    x = load_train(args.rows if not args.quick else 1000)
    flops = 5 * 2 * B * V * nh * nb  # the minimal work of nb CD-1 / PCD-1 steps
    makers = {
        "pyrogen-fit-cd1": lambda: pyrogen_fit_trainer(x, "cd", nh, nb),
        "pyrogen-fit-pcd1": lambda: pyrogen_fit_trainer(x, "pcd", nh, nb),
        "pyrogen-fit-cd1-norefresh": lambda: pyrogen_fit_trainer(x, "cd", nh, nb, refresh=False),
        "pyrogen-fit-pcd1-norefresh": lambda: pyrogen_fit_trainer(
            x, "pcd", nh, nb, refresh=False
        ),
        "pyrogen-fit-cd1-refresh100": lambda: pyrogen_fit_trainer(x, "cd", nh, nb, refresh=100),
        "pyrogen-fit-pcd1-refresh100": lambda: pyrogen_fit_trainer(
            x, "pcd", nh, nb, refresh=100
        ),
        "pyrogen-svi-cd1": lambda: pyrogen_svi_trainer(x, "cd", nh, nb),
        "pyrogen-svi-pcd1": lambda: pyrogen_svi_trainer(x, "pcd", nh, nb),
        "pyrogen-svi-pcd1-reuse": lambda: pyrogen_svi_trainer(x, "pcd", nh, nb, reuse=True),
        "pyrogen-svi-cd1-novalid": lambda: pyrogen_svi_trainer(x, "cd", nh, nb, validate=False),
        "matmul-torch-f32": lambda: matmul_only(nh, nb),
        "matmul-numpy-f32": lambda: matmul_only(nh, nb, backend="numpy"),
        "sklearn-pcd1-f64": lambda: sklearn_trainer(x.numpy().astype("float64"), nh, nb),
        "sklearn-pcd1-f32": lambda: sklearn_trainer(x.numpy().astype("float32"), nh, nb),
    }
    needed = {"matmul-torch-f32", "matmul-numpy-f32", "sklearn-pcd1-f64", "sklearn-pcd1-f32"}
    chosen = set(makers) if not args.candidates else set(args.candidates.split(",")) | needed
    unknown = chosen - set(makers)
    if unknown:
        raise SystemExit(f"unknown candidates {sorted(unknown)}; choose from {sorted(makers)}")
    cands = {k: f() for k, f in makers.items() if k in chosen}
    clock = "thread CPU time" if args.clock == "cpu" else "wall time"
    title = f"RBM {V}-{nh} training, batch {B}, {nb} batches per repeat, 1 thread each, {clock}"
    cmp = compare(
        cands,
        repeats=2 if args.quick else (args.repeats or 7),
        warmup=args.warmup,
        baseline="sklearn-pcd1-f64",
        title=title,
        print_fn=None,
        timer=time.thread_time if args.clock == "cpu" else time.perf_counter,
    )
    med = {k: t.median for k, t in cmp.timings.items()}
    mm_torch, mm_numpy = med["matmul-torch-f32"], med["matmul-numpy-f32"]
    mm_best = min(mm_torch, mm_numpy)
    extra = {}
    for name, t in med.items():
        extra[name] = (
            f"{t * 50000 / (nb * B):7.1f} s/epoch (extrap.)  {flops / t / 1e9:6.2f} GFLOP/s useful"
        )
    lines = [cmp.table(extra=extra, extra_header="per epoch / useful flop rate")]
    for n in med:
        if not n.startswith("pyrogen-"):
            continue
        lines.append(
            f"{n}: {mm_torch / med[n]:.2f} of the five-product ceiling (torch; goal >= 0.85), "
            f"{mm_best / med[n]:.2f} of the best float32 BLAS; "
            f"{med['sklearn-pcd1-f32'] / med[n]:.2f}x sklearn-pcd1-f32 (equal dtype; goal "
            f">= 1.3x), {med['sklearn-pcd1-f64'] / med[n]:.2f}x sklearn-pcd1-f64"
        )
    for m in ("cd1", "pcd1"):
        if f"pyrogen-fit-{m}" not in med or f"pyrogen-fit-{m}-norefresh" not in med:
            continue
        on, off = med[f"pyrogen-fit-{m}"], med[f"pyrogen-fit-{m}-norefresh"]
        lines.append(
            f"pyrogen-fit-{m}: the default log Z value refresh (AIS, at step 0 and every "
            "window) is "
            f"{(on - off) / on:.0%} of what a user runs ({on:.3f} s vs {off:.3f} s without it)"
        )
    lines.append(
        f"matmul throughput, float32, 1 thread: torch {flops / mm_torch / 1e9:.2f} GFLOP/s, "
        f"numpy {flops / mm_numpy / 1e9:.2f} GFLOP/s (torch {torch.__version__})"
    )
    lines.append(
        "ceiling: a step made of the five products alone (fastest float32 BLAS) would be "
        f"{med['sklearn-pcd1-f64'] / mm_best:.2f}x faster than sklearn-pcd1-f64 and "
        f"{med['sklearn-pcd1-f32'] / mm_best:.2f}x than sklearn-pcd1-f32"
    )
    text = "\n".join(lines)
    print(text, flush=True)
    out.append(text)


# --------------------------------------------------------------------------------------------
# AIS accuracy and throughput
# --------------------------------------------------------------------------------------------
def train_rbm_cd1(x, n_hidden, epochs, lr=0.05, seed=0):
    import torch

    from pyrogen.infer.ais import base_rate_visible_bias

    g = torch.Generator().manual_seed(seed)
    W = 0.01 * torch.randn(x.shape[1], n_hidden, generator=g)
    b = base_rate_visible_bias(x, 1e-2).clone()
    c = torch.zeros(n_hidden)

    def bern(p):
        return (torch.rand(p.shape, generator=g) < p).float()

    for _ in range(epochs):
        perm = torch.randperm(x.shape[0], generator=g)
        for i in range(0, x.shape[0], B):
            v0 = x[perm[i : i + B]]
            ph0 = torch.sigmoid(v0 @ W + c)
            v1 = bern(torch.sigmoid(bern(ph0) @ W.T + b))
            ph1 = torch.sigmoid(v1 @ W + c)
            W += lr * (v0.T @ ph0 - v1.T @ ph1) / len(v0)
            b += lr * (v0.mean(0) - v1.mean(0))
            c += lr * (ph0.mean(0) - ph1.mean(0))
    return W, b, c


def exact_log_z_hidden(W, b, c, chunk=32):
    """log Z by enumerating the hidden layer in two halves (float32 terms, float64 sums)."""
    import torch
    import torch.nn.functional as F

    nh = W.shape[1]
    h1 = nh // 2

    def states(k):
        return ((torch.arange(2**k)[:, None] >> torch.arange(k)) & 1).to(W.dtype)

    s1, s2 = states(h1), states(nh - h1)
    a = s1 @ W[:, :h1].T + b
    bb = s2 @ W[:, h1:].T
    ca, cb = (s1 @ c[:h1]).double(), (s2 @ c[h1:]).double()
    out = []
    for i in range(0, len(s1), chunk):
        t = F.softplus(a[i : i + chunk, None, :] + bb[None]).sum(-1).double()
        out.append(torch.logsumexp((t + ca[i : i + chunk, None] + cb[None]).reshape(-1), 0))
    return float(torch.logsumexp(torch.stack(out), 0))


def bench_ais(args, out):
    import torch

    from pyrogen.infer.ais import RBMBaseRatePath, ais, base_rate_visible_bias

    nh = 12 if args.quick else 20
    x = load_train(2000 if args.quick else 10000)
    t0 = time.perf_counter()
    W, b, c = train_rbm_cd1(x, nh, 2 if args.quick else 10)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    exact = exact_log_z_hidden(W, b, c)
    t_exact = time.perf_counter() - t0
    path = RBMBaseRatePath(W, b, c, base_rate_visible_bias(x))
    ll = float((path.log_density(x[:2000], 1.0).double() - exact).mean())
    lines = [
        f"## AIS accuracy on a {V}-{nh} RBM (CD-1, {x.shape[0]} train images; exact log Z = "
        f"{exact:.4f} by enumerating 2^{nh} hidden states in {t_exact:.1f} s; train-set exact "
        f"log-likelihood {ll:.2f} nats; training took {t_train:.1f} s)",
        "100 chains, data base rate, schedule(num_betas, 'sm'), float32; over seeds "
        f"0..{args.seeds - 1}",
        f"{'num_betas':>9}  {'median s':>9}  {'mean err':>9}  {'max |err|':>9}  "
        f"{'rmse':>7}  {'mean se':>8}  {'mean ESS':>8}",
    ]
    betas_list = [100, 300] if args.quick else [100, 300, 1000, 3000, 10000]
    for nbetas in betas_list:
        errs, ses, esss, times = [], [], [], []
        for s in range(args.seeds):
            t0 = time.perf_counter()
            r = ais(path, nbetas, 100, generator=torch.Generator().manual_seed(s))
            times.append(time.perf_counter() - t0)
            errs.append(float(r.log_z) - exact)
            ses.append(float(r.log_z_stderr))
            esss.append(float(r.ess))
        rmse = math.sqrt(sum(e * e for e in errs) / len(errs))
        lines.append(
            f"{nbetas:>9}  {sorted(times)[len(times) // 2]:>9.2f}  "
            f"{sum(errs) / len(errs):>9.3f}  {max(abs(e) for e in errs):>9.3f}  {rmse:>7.3f}  "
            f"{sum(ses) / len(ses):>8.3f}  {sum(esss) / len(esss):>8.1f}"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text, flush=True)
    out.append(text)


def bench_throughput(args, out):
    import torch

    from pyrogen.infer.ais import RBMBaseRatePath, ais

    nh = 50 if args.quick else H
    g = torch.Generator().manual_seed(0)
    W = 0.05 * torch.randn(V, nh, generator=g)
    b = torch.randn(V, generator=g) - 1
    c = torch.randn(nh, generator=g) - 1
    path = RBMBaseRatePath(W, b, c, b)
    chains, nbetas = 100, (20 if args.quick else 200)

    cmp = compare(
        {"ais": lambda: ais(path, nbetas, chains, generator=torch.Generator().manual_seed(0))},
        repeats=2 if args.quick else (args.repeats or 5),
        warmup=args.warmup,
        title=f"AIS throughput, RBM {V}-{nh}, {chains} chains x {nbetas - 1} sweeps, float32",
        print_fn=None,
    )
    t = cmp.timings["ais"].median
    sweeps = chains * (nbetas - 1)
    flops = sweeps * 4 * V * nh
    text = cmp.table() + (
        f"\nthroughput: {sweeps / t:,.0f} chain-sweeps/s ({flops / t / 1e9:.2f} GFLOP/s in the "
        "two matrix products per sweep)"
    )
    print(text, flush=True)
    out.append(text)


def main(argv=None):
    p = bench_parser("RBM: CD/PCD training through Pyro SVI vs scikit-learn; AIS accuracy")
    p.add_argument("--only", choices=("train", "ais", "throughput"), default=None)
    p.add_argument(
        "--batches", type=int, default=100,
        help="mini-batches per timed repeat (train; with --rows 50000 use 500: one epoch)",
    )
    p.add_argument(
        "--rows", type=int, default=5000,
        help="training rows loaded (train; the fit rows use the first batches * 100)",
    )
    p.add_argument(
        "--candidates", default=None,
        help="train: comma-separated candidates to time (the matmul and sklearn rows always)",
    )
    p.add_argument("--seeds", type=int, default=5, help="AIS runs per num_betas")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="train section: wall time, or the thread's CPU time (every candidate runs on one "
        "thread; CPU time leaves out the waits of a shared machine)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.seeds = min(args.seeds, 2)
    threads = args.threads or 1
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    out = [header()]
    print(out[0], flush=True)
    with threadpool_limits(threads):
        sections = {"train": bench_train, "ais": bench_ais, "throughput": bench_throughput}
        for name, fn in sections.items():
            if args.only in (None, name):
                fn(args, out)
    if args.out:
        append_to_file(args.out, "\n\n".join(out))


if __name__ == "__main__":
    main()
