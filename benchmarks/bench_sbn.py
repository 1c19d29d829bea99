"""SBN 200-200 on the fixed binarized MNIST: wake-sleep vs reweighted wake-sleep vs NVIL.

Methods (``--methods``, comma-separated): ``wake-sleep``; ``rws`` (per-example reweighted
wake-sleep, ``--rws-k`` particles); ``nvil`` (``TraceGraph_ELBO`` with NVIL's input-dependent
plus decaying-average baselines and NVIL's variance normalization,
:class:`pyrogen.infer.score_function.NVIL_ELBO`); ``nvil-raw`` (the same without the variance
normalization: plain ``TraceGraph_ELBO``).

Three :class:`pyrogen.models.HelmholtzMachine` ``[784, 200, 200]`` (layer-wise bottom-up
recognition network) are trained **interleaved** in one process: every round gives each method
one chunk of ``--chunk`` minibatch steps (rotated order), until ``--budget-min`` minutes of
training wall time in total are spent, so that the machine's load drifts hit every method alike.
Time per epoch is the median over chunks of (seconds per step) x (steps per epoch).

Then the test log-likelihood is estimated by importance sampling with the recognition network
as proposal (:func:`pyrogen.infer.importance.importance_log_likelihood`, kind ``is_estimate``: a
stochastic lower bound in expectation) with ``--k`` particles on ``--n-eval`` evenly spaced
test images (the test set is ordered by writer, so its first images are not representative),
with its Monte Carlo standard error.

Anchors (full training, hundreds of epochs): NVIL SBN 200-200 about -99.8 (Mnih & Gregor 2014),
VIMCO SBN 200-200-200 about -91.7 / -93.6 (Mnih & Rezende 2016), RWS SBN 200-200 about -93 to
-95 (Bornschein & Bengio 2015, with K = 5 to 10 and an SBN/NADE top).

Example::

    python benchmarks/bench_sbn.py --budget-min 25 --n-eval 100 --k 5000 \
        --log /work/notes/sbn_run.log
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyro  # noqa: E402
import torch  # noqa: E402
from harness import bench_parser, header  # noqa: E402

from pyrogen.datasets import load_binarized_mnist  # noqa: E402
from pyrogen.evaluation import LogLikelihood  # noqa: E402
from pyrogen.infer.importance import (  # noqa: E402
    importance_log_likelihood,
    log_importance_weights,
)
from pyrogen.infer.rws import ReweightedWakeSleep  # noqa: E402
from pyrogen.infer.score_function import NVIL_ELBO, NeuralBaseline, with_baseline  # noqa: E402
from pyrogen.infer.wake_sleep import WakeSleep  # noqa: E402
from pyrogen.models import HelmholtzMachine  # noqa: E402


def make_method(name, x_train, layers, lr, rws_k):
    model = HelmholtzMachine(layers)
    with torch.no_grad():  # output bias = logit of the pixel means (common initialisation)
        p = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
        model.gen[0].bias.copy_(torch.log(p) - torch.log1p(-p))
    guide = model.guide
    if name == "wake-sleep":
        loss = WakeSleep()
    elif name == "rws":
        loss = ReweightedWakeSleep(num_particles=rws_k)
    elif name in ("nvil", "nvil-raw"):
        sites = [f"h{i}" for i in range(1, len(layers))]
        baseline = NeuralBaseline(layers[0], sites)
        guide = with_baseline(model.guide, "nvil", module=baseline,
                              name=f"{model._pyro_name}_nvil")
        loss = NVIL_ELBO() if name == "nvil" else pyro.infer.TraceGraph_ELBO()
    else:
        raise ValueError(name)
    svi = pyro.infer.SVI(model.model, guide, pyro.optim.Adam({"lr": lr}), loss)
    return model, svi


def test_elbo(model, x, num_particles):
    """ELBO per example, mean of ``num_particles`` one-sample estimates, with its stderr."""
    with torch.no_grad():
        lw = torch.cat([log_importance_weights(model.model, model.guide, xb,
                                               num_particles=num_particles, max_plate_nesting=1)
                        for xb in x.split(100)], dim=1).double()
    return LogLikelihood(values=lw.mean(0), kind="elbo",
                         stderr=lw.std(0) / math.sqrt(num_particles))


def main():
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--budget-min", type=float, default=25.0)
    ap.add_argument("--chunk", type=int, default=100, help="steps per method per round")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rws-k", type=int, default=5)
    ap.add_argument("--layers", type=str, default="784,200,200")
    ap.add_argument("--methods", type=str, default="wake-sleep,rws,nvil")
    ap.add_argument("--n-eval", type=int, default=100)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--log", type=str, default=None)
    ap.add_argument("--save-dir", type=str, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-minutes", type=float, default=None,
                    help="per-method evaluation budget: stop after the block that exceeds it")
    ap.add_argument("--eval-block", type=int, default=100, help="test images per block")
    ap.add_argument("--eval-methods", type=str, default=None,
                    help="comma-separated subset of --methods to evaluate by IS (default all); "
                    "the others report their training loss only")
    ap.add_argument("--json", type=str, default=None, help="write the results here")
    ap.add_argument("--n-elbo", type=int, default=1000,
                    help="test images for the ELBO reported for every method")
    ap.add_argument("--elbo-particles", type=int, default=10)
    args = ap.parse_args()
    if args.quick:  # smoke test: tiny sizes
        args.budget_min, args.chunk, args.n_eval, args.k = 0.05, 5, 4, 50
        args.train_limit = args.train_limit or 1000
    torch.set_num_threads(1)
    pyro.set_rng_seed(args.seed)

    def out(msg):
        print(msg, flush=True)
        if args.log:
            with open(args.log, "a") as f:
                f.write(msg + "\n")

    out(header())
    path = os.environ.get("PYROGEN_DATA") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
    train = load_binarized_mnist(path, split="train", limit=args.train_limit)
    test = load_binarized_mnist(path, split="test")
    x = train.x.float()
    x_test_all = test.x.float()
    # evenly spaced test images (the test set is ordered by writer: ink per image varies from
    # 54 to 143 pixels between blocks of 500 consecutive images, so "the first n" is biased),
    # in interleaved blocks so that a budget-truncated prefix is spread out as well
    N = x_test_all.shape[0]
    n_eval = min(args.n_eval, N)
    idx = torch.arange(0, N, max(N // max(n_eval, 1), 1))[:n_eval]
    nb = max(math.ceil(n_eval / args.eval_block), 1)
    idx = torch.cat([idx[j::nb] for j in range(nb)])
    x_test = x_test_all[idx]
    n = x.shape[0]
    layers = [int(s) for s in args.layers.split(",")]
    methods = args.methods.split(",")
    out(f"data: {train.info}; train n={n}; test eval n={x_test.shape[0]}; layers={layers}; "
        f"batch={args.batch_size}; Adam lr={args.lr}; rws K={args.rws_k}; "
        f"budget={args.budget_min} min interleaved")
    runs = {m: make_method(m, x, layers, args.lr, args.rws_k) for m in methods}
    steps = dict.fromkeys(methods, 0)
    sec_per_step = {m: [] for m in methods}
    recent = {m: [] for m in methods}
    history = {m: [] for m in methods}  # (epochs, mean training loss/ex of the chunk)
    steps_per_epoch = math.ceil(n / args.batch_size)
    t_start = time.perf_counter()
    rnd = 0
    while time.perf_counter() - t_start < args.budget_min * 60:
        order = methods[rnd % len(methods):] + methods[: rnd % len(methods)]
        for m in order:
            model, svi = runs[m]
            losses = []
            t0 = time.perf_counter()
            for _ in range(args.chunk):
                idx = torch.randint(0, n, (args.batch_size,))
                losses.append(svi.step(x[idx], num_data=n) / n)
            sec_per_step[m].append((time.perf_counter() - t0) / args.chunk)
            steps[m] += args.chunk
            recent[m] = losses
            history[m].append((steps[m] / steps_per_epoch, statistics.mean(losses)))
        rnd += 1
        if rnd % 5 == 0:
            msg = "; ".join(
                f"{m}: {steps[m] / steps_per_epoch:.2f} ep, loss {statistics.mean(recent[m]):.2f}"
                for m in methods
            )
            out(f"[{(time.perf_counter() - t_start) / 60:.1f} min] {msg}")
    out("loss column: wake-sleep = wake loss -E_q log p(x,h) (not a bound); rws = -IWAE(K) "
        "bound; nvil = -ELBO; all per example, training minibatches")
    results = {}
    summary = {"command": "python " + " ".join(sys.argv), "header": header(),
               "data": str(train.info), "layers": layers, "batch_size": args.batch_size,
               "lr": args.lr, "rws_k": args.rws_k, "budget_min": args.budget_min, "k": args.k,
               "methods": {}}
    eval_methods = methods if not args.eval_methods else args.eval_methods.split(",")
    for m in methods:
        model, _ = runs[m]
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            model.save(os.path.join(args.save_dir, f"sbn_{m}.pt"))
    for m in methods:
        model, _ = runs[m]
        ep = steps[m] / steps_per_epoch
        med = statistics.median(sec_per_step[m])
        summary["methods"][m] = {
            "epochs": ep, "steps": steps[m], "sec_per_epoch_median": med * steps_per_epoch,
            "final_train_loss_per_example": statistics.mean(recent[m]) if recent[m] else None,
            "train_loss_history": history[m],
        }
        elbo = test_elbo(model, x_test_all[:: max(N // args.n_elbo, 1)][: args.n_elbo],
                         args.elbo_particles)
        summary["methods"][m]["test_elbo"] = elbo.to_dict()
        out(f"{m}: epochs={ep:.2f} steps={steps[m]} sec/epoch(median)={med * steps_per_epoch:.1f} "
            f"final training loss/ex (last chunk) "
            f"{summary['methods'][m]['final_train_loss_per_example']:.2f}; test ELBO "
            f"({args.elbo_particles} samples, {len(elbo)} evenly spaced test images) {elbo}")
    base = statistics.median(sec_per_step[methods[0]])
    summary["time_per_step_ratio_to_" + methods[0]] = {
        m: statistics.median(sec_per_step[m]) / base for m in methods}
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(summary, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    for m in eval_methods:
        model, _ = runs[m]
        t_eval = time.perf_counter()
        vals, ses, ess = [], [], []
        for start in range(0, x_test.shape[0], args.eval_block):
            part = importance_log_likelihood(
                model.model, model.guide, x_test[start : start + args.eval_block],
                num_particles=args.k, batch_size=25, chunk=200, max_plate_nesting=1)
            vals.append(part.values)
            ses.append(part.stderr)
            ess.append(part.info["min_ess"])
            if (args.eval_minutes is not None
                    and time.perf_counter() - t_eval > 60 * args.eval_minutes):
                break
        ll = LogLikelihood(values=torch.cat(vals), kind="is_estimate", stderr=torch.cat(ses),
                           info={"min_ess": min(ess), "seconds": time.perf_counter() - t_eval})
        ep = steps[m] / steps_per_epoch
        med = statistics.median(sec_per_step[m])
        results[m] = (ll, ep, med)
        data_se = float(ll.values.std() / math.sqrt(len(ll)))
        out(f"{m}: epochs={ep:.2f} steps={steps[m]} sec/epoch(median)={med * steps_per_epoch:.1f} "
            f"test IS log-lik (k={args.k}, {len(ll)} evenly spaced test images) = "
            f"{ll.mean():.2f} +- {ll.mean_stderr():.2f} (MC stderr) "
            f"[{ll.kind}, stochastic lower bound]; min ESS {ll.info['min_ess']:.1f}; "
            f"data-sampling sd/sqrt(n) = {data_se:.2f}; "
            f"eval {ll.info['seconds']:.0f}s")
        summary["methods"][m].update({
            "test_is": ll.to_dict(), "n_test": len(ll), "data_sampling_se": data_se,
            "eval_seconds": ll.info["seconds"],
        })
        if args.json:
            with open(args.json + ".tmp", "w") as f:
                json.dump(summary, f, indent=2)
            os.replace(args.json + ".tmp", args.json)
    out("time per step ratio to " + methods[0] + ": " + ", ".join(
        f"{m}={statistics.median(sec_per_step[m]) / base:.2f}" for m in methods))
    return results


if __name__ == "__main__":
    main()
