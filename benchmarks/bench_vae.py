"""VAE benchmarks: speed against the Pyro tutorial, quality on fixed binarized MNIST, IS memory.

Three measurements (run one with its sub-command)::

    python benchmarks/bench_vae.py speed   [--repeats 3] [--steps 0]
    python benchmarks/bench_vae.py quality [--vae-minutes 30] [--iwae-minutes 40] [--n-test 1000]
    python benchmarks/bench_vae.py evaluate --model vae.pt [--n-test 10000] [--k 5000]
    python benchmarks/bench_vae.py memory  [--k 5000] [--n-min 100] [--n-max 1000]
    python benchmarks/bench_vae.py gap --model vae.pt [--every 20] [--steps 200] [--k 5000]

``speed``: the network of Pyro's VAE tutorial (784-400-50, softplus, Bernoulli decoder, batch
256, Adam 1e-3) written exactly as in the tutorial (``pyro.module`` + ``Trace_ELBO``) against the
same network through pyrogen (``VAE(784, 50, (400,)).fit``, which also computes the per-epoch
reconstruction/KL/active-units report), interleaved in one process (repeat r: tutorial, pyrogen,
tutorial+JIT, pyrogen+JIT). Each measurement is a full epoch on the 50k training images, or
``--steps`` minibatches extrapolated to an epoch (stated in the output). Prints medians and
ratios.

``quality``: trains a VAE (ELBO, one sample, closed-form KL) and an IWAE (k=50) with Burda et
al.'s one-stochastic-layer architecture (784-200-200-50, tanh) under a wall-clock budget, then
reports the test log-likelihood estimated by importance sampling with k=5000 on ``--n-test``
evenly spaced test images, with standard errors, plus the test ELBO. Anchors (Burda et al. 2015,
fixed binarization, 3280 epochs): VAE -88.71, IWAE(k=50) -87.10 nats.

``memory``: peak resident memory (``resource.getrusage`` ``ru_maxrss``, in a fresh subprocess per
setting) of ``log_likelihood(num_particles=k)`` over the test set for several sizes: with
chunking the peak must not grow with the number of images nor with k.

``gap``: the amortization gap of a saved model on evenly spaced test images (every
``--every``-th): ELBO of the encoder, ELBO after ``--steps`` per-example refinement steps, IS with
the refined guide as proposal (k=1000), and IS with the encoder as proposal (``--k``) on the same
images, so the two IS lower bounds compare.

All with ``torch.set_num_threads(1)`` unless ``--threads``. The data is read from
``$PYROGEN_DATA`` or ``../shared/data/binarized_mnist.npz``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import pyro
import pyro.distributions as dist
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "binarized_mnist.npz")


def data_path() -> str:
    return os.environ.get("PYROGEN_DATA", DEFAULT_DATA)


def load(split: str, limit=None):
    from pyrogen.datasets import load_binarized_mnist

    return load_binarized_mnist(data_path(), split=split, limit=limit)


def _spaced(x, n):
    """``n`` evenly spaced rows of ``x`` (rows ``floor(i * len / n)``; all of them if ``n >= len``):
    the test split is ordered by digit class, so its first ``n`` images are not a sample."""
    if n >= x.shape[0]:
        return x
    return x[(torch.arange(n) * x.shape[0]) // max(n, 1)]


# --------------------------------------------------------------------------- Pyro's tutorial
class TutorialDecoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(z_dim, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, 784)
        self.softplus = nn.Softplus()
        self.sigmoid = nn.Sigmoid()

    def forward(self, z):
        hidden = self.softplus(self.fc1(z))
        return self.sigmoid(self.fc21(hidden))


class TutorialEncoder(nn.Module):
    def __init__(self, z_dim, hidden_dim):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden_dim)
        self.fc21 = nn.Linear(hidden_dim, z_dim)
        self.fc22 = nn.Linear(hidden_dim, z_dim)
        self.softplus = nn.Softplus()

    def forward(self, x):
        x = x.reshape(-1, 784)
        hidden = self.softplus(self.fc1(x))
        return self.fc21(hidden), torch.exp(self.fc22(hidden))


class TutorialVAE(nn.Module):
    """https://pyro.ai/examples/vae.html, verbatim up to names."""

    def __init__(self, z_dim=50, hidden_dim=400):
        super().__init__()
        self.encoder = TutorialEncoder(z_dim, hidden_dim)
        self.decoder = TutorialDecoder(z_dim, hidden_dim)
        self.z_dim = z_dim

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z_loc = x.new_zeros(torch.Size((x.shape[0], self.z_dim)))
            z_scale = x.new_ones(torch.Size((x.shape[0], self.z_dim)))
            z = pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))
            loc_img = self.decoder(z)
            pyro.sample(
                "obs",
                dist.Bernoulli(loc_img, validate_args=False).to_event(1),
                obs=x.reshape(-1, 784),
            )

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            z_loc, z_scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(z_loc, z_scale).to_event(1))


def tutorial_epoch(x, state, steps, jit):
    if state.get("svi") is None:
        vae = TutorialVAE()
        loss = pyro.infer.JitTrace_ELBO() if jit else pyro.infer.Trace_ELBO()
        state["svi"] = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), loss)
    svi = state["svi"]
    n = x.shape[0]
    perm = torch.randperm(n)
    total, count = 0.0, 0
    for i, start in enumerate(range(0, n, 256)):
        if steps and i >= steps:
            break
        idx = perm[start : start + 256]
        if jit and idx.shape[0] != 256:  # JIT traces one shape; drop the ragged last batch
            continue
        total += svi.step(x[idx])
        count += idx.shape[0]
    return total / max(count, 1)


def pyrogen_epoch(x, state, steps, jit):
    from pyrogen.models import VAE

    if state.get("model") is None:
        state["model"] = VAE(784, latent_dims=50, hidden_dims=(400,), activation="softplus")
    model = state["model"]
    data = x if not steps else x[torch.randperm(x.shape[0])[: steps * 256]]
    if jit:
        data = data[: (data.shape[0] // 256) * 256]
    # lr / Adam state: a fresh optimizer per fit call, as SVI users do per run; one epoch each
    h = model.fit(data, num_epochs=1, batch_size=256, lr=1e-3, jit=jit, progress=False)
    return h.metrics["train_loss"][-1]


def cmd_speed(args):
    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(0)
    x = load("train").x
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / 256)
    impls = {
        "pyro-tutorial": lambda s: tutorial_epoch(x, s, args.steps, False),
        "pyrogen": lambda s: pyrogen_epoch(x, s, args.steps, False),
    }
    if not args.no_jit:
        impls["pyro-tutorial+JitTrace_ELBO"] = lambda s: tutorial_epoch(x, s, args.steps, True)
        impls["pyrogen+jit"] = lambda s: pyrogen_epoch(x, s, args.steps, True)
    states = {k: {} for k in impls}
    times = {k: [] for k in impls}
    errors = {}
    frac = 1.0 if not args.steps else args.steps / steps_per_epoch
    print(
        f"speed: {n} training images, batch 256, {steps_per_epoch} steps/epoch; measuring "
        + ("full epochs" if not args.steps else f"{args.steps} steps, extrapolated x{1/frac:.1f}")
        + f"; torch {torch.__version__}, {args.threads} thread(s)",
        flush=True,
    )
    for r in range(args.repeats + 1):  # repeat 0 is warm-up (JIT compile), not counted
        for name, fn in impls.items():
            if name in errors:
                continue
            pyro.clear_param_store()
            states[name] = {}  # fresh model: same work each repeat
            t0 = time.perf_counter()
            try:
                loss = fn(states[name])
            except Exception as e:  # report, do not hide, a JIT failure
                errors[name] = f"{type(e).__name__}: {str(e)[:300]}"
                print(f"  {name}: FAILED {errors[name]}", flush=True)
                continue
            dt = (time.perf_counter() - t0) / frac
            if r > 0:
                times[name].append(dt)
            print(f"  repeat {r} {name:<28} {dt:7.2f} s/epoch  loss/ex {loss:.2f}", flush=True)
    base = statistics.median(times["pyro-tutorial"])
    summary = {}
    for name, ts in times.items():
        if ts:
            med = statistics.median(ts)
            summary[name] = {"median_s_per_epoch": med, "ratio_to_tutorial": med / base,
                             "runs": ts}
            print(f"{name:<30} median {med:7.2f} s/epoch   ratio {med / base:5.2f}")
    for name, e in errors.items():
        summary[name] = {"error": e}
    return summary


# --------------------------------------------------------------------------- quality
def cmd_quality(args):
    from pyrogen.models import VAE

    torch.set_num_threads(args.threads)
    train = load("train")
    test = load("test")
    x_test = _spaced(test.x, args.n_test)
    log = open(args.log, "a") if args.log else None

    def say(msg):
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        if log:
            log.write(line + "\n")
            log.flush()

    say(f"quality: {train.identity}; test {test.identity}; threads {args.threads}")
    results = {}
    runs = [
        ("VAE", "analytic_kl", 1, args.vae_minutes),
        ("IWAE(k=50)", "iwae", 50, args.iwae_minutes),
    ]
    for name, loss, k, minutes in runs:
        if minutes <= 0:
            continue
        pyro.clear_param_store()
        model = VAE(784, latent_dims=50, hidden_dims=(200, 200), activation="tanh")

        def cb(epoch, m, name=name):
            say(
                f"{name} epoch {epoch + 1}: train loss/ex {m['train_loss']:.2f}  "
                f"rec {m['reconstruction']:.2f}  KL {m['kl']:.2f}  "
                f"active units {m['active_units']:.0f}  {m['seconds']:.0f}s"
            )

        h = model.fit(
            train.x, loss=loss, num_particles=k, num_epochs=100000, batch_size=args.batch_size,
            lr=args.lr, max_seconds=60 * minutes, seed=args.seed, progress=False, callback=cb,
            data_info=train.info,
        )
        if args.save:
            os.makedirs(args.save, exist_ok=True)
            model.save(os.path.join(args.save, f"{name.split('(')[0].lower()}.pt"))
        if x_test.shape[0] == 0:  # --n-test 0: train and save only (evaluate with `evaluate`)
            results[name] = {
                "training": f"{loss}, K={k}, {h.info['num_epochs']} epochs "
                f"({h.info['num_steps']} steps), batch {args.batch_size}, Adam lr {args.lr}, "
                f"{h.seconds / 60:.1f} min",
                "seconds_per_epoch": h.seconds / max(h.info["num_epochs"], 1),
                "final_epoch": {key: v[-1] for key, v in h.metrics.items()},
            }
            say(f"{name}: {results[name]['training']}")
            continue
        t0 = time.perf_counter()
        elbo = model.elbo(x_test, num_particles=10)
        ll = model.log_likelihood(x_test, num_particles=args.k, batch_size=50, chunk=100)
        r = {
            "training": f"{loss}, K={k}, {h.info['num_epochs']} epochs ({h.info['num_steps']} "
            f"steps), batch {args.batch_size}, Adam lr {args.lr}, {h.seconds / 60:.1f} min",
            "test_elbo": elbo.to_dict(),
            "test_is": ll.to_dict(),
            "active_units": h.metrics["active_units"][-1],
            "eval_seconds": time.perf_counter() - t0,
            "n_test": x_test.shape[0],
        }
        results[name] = r
        say(f"{name}: {r['training']}")
        say(f"{name}: test ELBO {elbo}  ({x_test.shape[0]} evenly spaced test images)")
        say(f"{name}: test log p(x) {ll}  k={args.k}, min ESS {ll.info['min_ess']:.1f}, "
            f"eval {r['eval_seconds']:.0f}s")
    say("anchors (Burda et al. 2015, 3280 epochs): VAE -88.71, IWAE(k=50) -87.10")
    say("RESULT " + json.dumps(results))
    return results


# --------------------------------------------------------------------------- evaluate
def _rss_mib() -> tuple[float, float]:
    """(current VmRSS, peak ru_maxrss) of this process in MiB (Linux)."""
    import resource

    cur = float("nan")
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def cmd_evaluate(args):
    """IS log-likelihood (and ELBO) of a saved model on the test set, block by block.

    Runs in its own process so that ``ru_maxrss`` measures the evaluation, not the training.
    Images are evaluated in blocks of ``--block`` in test-set order until ``--n-test`` images
    are done or ``--eval-minutes`` are spent (then the images evaluated so far are reported,
    with their number). After each block the summary is rewritten to ``--json``: the current
    and peak resident memory are recorded per block, so a bounded peak is visible as a flat
    column.
    """
    from pyrogen.evaluation import LogLikelihood
    from pyrogen.models.base import load as load_model

    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)
    rss0 = _rss_mib()
    model = load_model(args.model)
    test = load("test")
    x_all = _spaced(test.x, args.n_test)
    if args.order == "interleaved":
        # block j holds images j, j + B, j + 2B, ... (B = number of blocks): every block spans
        # the whole test set, so a budget-truncated prefix is a representative subset (the
        # test set is ordered by writer: ink per image varies 54-143 pixels between blocks of
        # 500 consecutive images)
        nb = math.ceil(x_all.shape[0] / args.block)
        order = torch.cat([torch.arange(j, x_all.shape[0], nb) for j in range(nb)])
        x_all = x_all[order]
    rss_loaded = _rss_mib()
    t0 = time.perf_counter()
    vals, ses, ess, elbos, elbo_ses, blocks = [], [], [], [], [], []
    out = {}
    for start in range(0, x_all.shape[0], args.block):
        xb = x_all[start : start + args.block]
        tb = time.perf_counter()
        ll = model.log_likelihood(xb, num_particles=args.k, batch_size=args.batch_size,
                                  chunk=args.chunk)
        el = model.elbo(xb, num_particles=args.elbo_particles)
        vals.append(ll.values)
        ses.append(ll.stderr)
        ess.append(ll.info["min_ess"])
        elbos.append(el.values)
        elbo_ses.append(el.stderr)
        cur, peak = _rss_mib()
        blocks.append({"positions": [start, start + xb.shape[0]],
                       "seconds": time.perf_counter() - tb, "rss_mib": cur, "peak_rss_mib": peak})
        is_all = LogLikelihood(values=torch.cat(vals), kind="is_estimate", stderr=torch.cat(ses))
        elbo_all = LogLikelihood(values=torch.cat(elbos), kind="elbo", stderr=torch.cat(elbo_ses))
        n = len(is_all)
        out = {
            "command": " ".join(sys.argv),
            "model": args.model,
            "data": test.identity,
            "n_evaluated": n,
            "n_requested": int(x_all.shape[0]),
            "order": args.order,
            "k": args.k,
            "batch_size": args.batch_size,
            "chunk": args.chunk,
            "test_is": is_all.to_dict(),
            "is_data_sampling_se": float(is_all.values.std() / math.sqrt(n)) if n > 1 else None,
            "min_ess": min(ess),
            "test_elbo": elbo_all.to_dict(),
            "elbo_particles": args.elbo_particles,
            "elbo_data_sampling_se": float(elbo_all.values.std() / math.sqrt(n)) if n > 1 else None,
            "eval_seconds": time.perf_counter() - t0,
            "seconds_per_image": (time.perf_counter() - t0) / n,
            "rss_mib_at_start": rss0[0],
            "rss_mib_after_load": rss_loaded[0],
            "peak_rss_mib_before_eval": rss_loaded[1],
            "peak_rss_mib": peak,
            "extra_peak_mib": peak - rss_loaded[1],
            "blocks": blocks,
            "threads": args.threads,
        }
        print(f"[{time.strftime('%H:%M:%S')}] {n} images: IS {is_all} (data se "
              f"{out['is_data_sampling_se']}), ELBO {elbo_all}, min ESS {min(ess):.1f}, "
              f"RSS {cur:.0f} MiB, peak {peak:.0f} MiB", flush=True)
        if args.json:
            _write_json(args.json, out)
        if time.perf_counter() - t0 > 60 * args.eval_minutes:
            print(f"eval budget of {args.eval_minutes} min spent after {n} images", flush=True)
            break
    return out


# --------------------------------------------------------------------------- memory
_MEM_CHILD = r"""
import resource, sys, time, torch
torch.set_num_threads({threads})
from pyrogen.datasets import load_binarized_mnist
from pyrogen.models import VAE
x = load_binarized_mnist({path!r}, split="test", limit={n}, subset="spaced").x
m = VAE(784, latent_dims=50, hidden_dims=(200, 200), activation="tanh")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
ll = m.log_likelihood(x, num_particles={k}, batch_size={batch}, chunk={chunk})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, time.perf_counter() - t, float(ll.values.mean()))
"""


def cmd_memory(args):
    rows = []
    n0 = args.n_min
    settings = [
        (n0, args.k, 50, 100),
        (args.n_max, args.k, 50, 100),
        (n0, args.k // 10, 50, 100),
        (n0, args.k, 100, 200),
    ]
    print("memory: peak RSS (ru_maxrss) of VAE.log_likelihood in a fresh process per row")
    print(f"{'images':>7} {'k':>6} {'batch':>6} {'chunk':>6} {'base MiB':>9} {'peak MiB':>9} "
          f"{'extra MiB':>9} {'seconds':>8}")
    for n, k, batch, chunk in settings:
        code = _MEM_CHILD.format(threads=args.threads, path=data_path(), n=n, k=k, batch=batch,
                                 chunk=chunk)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.split()
        base, peak, secs = int(out[0]) / 1024, int(out[1]) / 1024, float(out[2])
        rows.append({"n": n, "k": k, "batch": batch, "chunk": chunk, "base_mib": base,
                     "peak_mib": peak, "extra_mib": peak - base, "seconds": secs})
        print(f"{n:>7} {k:>6} {batch:>6} {chunk:>6} {base:9.0f} {peak:9.0f} {peak - base:9.0f} "
              f"{secs:8.1f}", flush=True)
    return rows


def cmd_gap(args):
    """Amortization gap of a saved model, and IS with the encoder vs the refined proposal."""
    from pyrogen.models.base import load as load_model

    torch.set_num_threads(args.threads)
    pyro.set_rng_seed(args.seed)
    model = load_model(args.model)
    x = load("test").x[:: args.every]
    t0 = time.perf_counter()
    gap = model.amortization_gap(x, num_steps=args.steps)
    t_gap = time.perf_counter() - t0
    t0 = time.perf_counter()
    enc = model.log_likelihood(x, num_particles=args.k, batch_size=20, chunk=250)
    t_enc = time.perf_counter() - t0
    out = {"images": f"test[::{args.every}] ({x.shape[0]})", "model": args.model,
           **gap.to_dict(), "gap_seconds": t_gap,
           "is_encoder_proposal": {**enc.to_dict(), "num_particles": args.k}, "is_seconds": t_enc}
    print(f"{x.shape[0]} test images (every {args.every}th)")
    print(f"  ELBO, encoder            {gap.elbo_amortized}")
    print(f"  ELBO, refined ({args.steps} steps) {gap.elbo_refined}")
    print(f"  amortization gap         {gap.amortization_gap:.3f} nats")
    print(f"  IS, refined proposal     {gap.log_likelihood}  (k=1000)")
    print(f"  IS, encoder proposal     {enc}  (k={args.k})")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--steps", type=int, default=0, help="0 = full epochs")
    s.add_argument("--no-jit", action="store_true")
    q = sub.add_parser("quality")
    q.add_argument("--vae-minutes", type=float, default=30)
    q.add_argument("--iwae-minutes", type=float, default=40)
    q.add_argument("--n-test", type=int, default=1000)
    q.add_argument("--k", type=int, default=5000)
    q.add_argument("--batch-size", type=int, default=100)
    q.add_argument("--lr", type=float, default=1e-3)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--log", default=None)
    q.add_argument("--save", default=None, help="folder for the trained models")
    e = sub.add_parser("evaluate", help=cmd_evaluate.__doc__.split("\n")[0])
    e.add_argument("--model", required=True, help="a model saved by `quality --save`")
    e.add_argument("--n-test", type=int, default=10000)
    e.add_argument("--k", type=int, default=5000)
    e.add_argument("--batch-size", type=int, default=20)
    e.add_argument("--chunk", type=int, default=250)
    e.add_argument("--block", type=int, default=500)
    e.add_argument("--elbo-particles", type=int, default=10)
    e.add_argument("--eval-minutes", type=float, default=60)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--order", choices=("interleaved", "sequential"), default="interleaved",
                   help="interleaved: block j = images j, j+B, j+2B, ... (B blocks)")
    m = sub.add_parser("memory")
    m.add_argument("--k", type=int, default=5000)
    m.add_argument("--n-min", type=int, default=100)
    m.add_argument("--n-max", type=int, default=1000)
    g = sub.add_parser("gap", help=cmd_gap.__doc__)
    g.add_argument("--model", required=True, help="a model saved by `quality --save`")
    g.add_argument("--every", type=int, default=20, help="every n-th test image")
    g.add_argument("--steps", type=int, default=200, help="refinement steps")
    g.add_argument("--k", type=int, default=5000, help="particles of the encoder-proposal IS")
    g.add_argument("--seed", type=int, default=0)
    for a in (s, q, e, m, g):
        a.add_argument("--threads", type=int, default=1)
        a.add_argument("--json", default=None, help="write the summary here")
    args = p.parse_args(argv)
    cmds = {"speed": cmd_speed, "quality": cmd_quality, "evaluate": cmd_evaluate,
            "memory": cmd_memory, "gap": cmd_gap}
    out = cmds[args.cmd](args)
    if args.json and args.cmd != "evaluate":  # evaluate writes its JSON block by block
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
