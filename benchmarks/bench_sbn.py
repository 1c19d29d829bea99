"""SBN 200-200 on the fixed binarized MNIST: wake-sleep vs reweighted wake-sleep vs NVIL.

Methods (``--methods``, comma-separated): ``wake-sleep``; ``rws`` (per-example reweighted
wake-sleep, ``--rws-k`` particles); ``nvil`` (``TraceGraph_ELBO`` estimator with NVIL's
input-dependent plus decaying-average baselines and NVIL's variance normalization,
:class:`pyrogen.infer.score_function.NVIL_ELBO`); ``nvil-raw`` (the same without the variance
normalization, ``NVIL_ELBO(variance_normalization=False)``). Each method has its own model
(unique Pyro name, hence its own parameters and baseline network in the param store) and its
own loss object, which holds its decaying-average baselines and running statistics: nothing is
shared between methods trained in one process.

The :class:`pyrogen.models.HelmholtzMachine` models (``--layers``, layer-wise bottom-up
recognition network) are trained **interleaved** in one process: every round gives each method
one chunk of ``--chunk`` minibatch steps (rotated order) until every method has done
``--epochs`` epochs (the same budget for all) or ``--budget-min`` minutes of training wall time
are spent, so that the machine's load drifts hit every method alike. Time per epoch is the median
over chunks of (seconds per step) x (steps per epoch). Models are saved (atomically) to
``--save-dir`` right after training; ``--load-dir`` skips training and evaluates saved models.

Then the test log-likelihood is estimated by importance sampling with the recognition network
as proposal (:func:`pyrogen.infer.importance.importance_log_likelihood`, kind ``is_estimate``: a
stochastic lower bound in expectation) with ``--k`` particles on ``--n-eval`` evenly spaced
test images (the test set is ordered by writer, so its first images are not representative),
in interleaved blocks so that a time-truncated prefix is spread out too. Reported: the mean with
its Monte Carlo standard error (delta method; optimistic when the effective sample size of the
weights is small) and the test-set sampling standard error sd/sqrt(n), the ESS of the weights
(min, median, fraction of images below 10), and the ELBO on the same images.

Anchors (full training, hundreds of epochs): NVIL SBN 200-200 about -99.8 (Mnih & Gregor 2014),
VIMCO SBN 200-200-200 about -91.7 / -93.6 (Mnih & Rezende 2016), RWS SBN 200-200 about -93 to
-95 (Bornschein & Bengio 2015, with K = 5 to 10 and an SBN/NADE top).

Example::

    python benchmarks/bench_sbn.py --epochs 20 --lr 1e-3 --n-eval 1000 --k 5000 \
        --save-dir /tmp/sbn_models --json /tmp/sbn.json --log /tmp/sbn.log
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
from pyrogen.infer.refine import amortization_gap  # noqa: E402
from pyrogen.infer.rws import ReweightedWakeSleep  # noqa: E402
from pyrogen.infer.score_function import NVIL_ELBO, NeuralBaseline, with_baseline  # noqa: E402
from pyrogen.infer.wake_sleep import WakeSleep  # noqa: E402
from pyrogen.models import HelmholtzMachine, NADEGuide  # noqa: E402
from pyrogen.models.base import load  # noqa: E402


def make_method(name, x_train, layers, lr, rws_k, nade_hidden=50):
    """``(model, svi, guide)`` for one method; ``guide`` is the proposal used in evaluation."""
    model = HelmholtzMachine(layers)
    with torch.no_grad():  # output bias = logit of the pixel means (common initialisation)
        p = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
        model.gen[0].bias.copy_(torch.log(p) - torch.log1p(-p))
    guide = model.guide
    if name == "wake-sleep":
        loss = WakeSleep()
    elif name == "rws":
        loss = ReweightedWakeSleep(num_particles=rws_k)
    elif name == "rws-nade":  # the same RWS, a conditional-NADE guide (autoregressive q(h|x))
        guide = NADEGuide(model, n_hidden=nade_hidden)
        loss = ReweightedWakeSleep(num_particles=rws_k)
    elif name in ("nvil", "nvil-raw"):
        sites = [f"h{i}" for i in range(1, len(layers))]
        baseline = NeuralBaseline(layers[0], sites)
        guide = with_baseline(model.guide, "nvil", module=baseline,
                              name=f"{model._pyro_name}_nvil")
        # the loss object owns the decaying averages (Pyro's TraceGraph_ELBO would key them by
        # site name in the global param store, shared by nvil and nvil-raw in one process)
        loss = NVIL_ELBO(variance_normalization=(name == "nvil"))
    else:
        raise ValueError(name)
    svi = pyro.infer.SVI(model.model, guide, pyro.optim.Adam({"lr": lr}), loss)
    return model, svi, (guide if name == "rws-nade" else model.guide)


def test_elbo(model, x, num_particles, guide=None):
    """ELBO per example, mean of ``num_particles`` one-sample estimates, with its stderr."""
    guide = model.guide if guide is None else guide
    with torch.no_grad():
        lw = torch.cat([log_importance_weights(model.model, guide, xb,
                                               num_particles=num_particles, max_plate_nesting=1)
                        for xb in x.split(100)], dim=1).double()
    return LogLikelihood(values=lw.mean(0), kind="elbo",
                         stderr=lw.std(0) / math.sqrt(num_particles))


def _write_json(path, obj):
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(obj, f, indent=2)
        os.replace(path + ".tmp", path)


def spread_indices(n_total, n_eval, block):
    """``n_eval`` evenly spaced indices of ``range(n_total)``, reordered in interleaved blocks
    of about ``block`` so that every prefix of whole blocks is spread over the test set."""
    n_eval = min(n_eval, n_total)
    idx = torch.arange(0, n_total, max(n_total // max(n_eval, 1), 1))[:n_eval]
    nb = max(math.ceil(n_eval / block), 1)
    return torch.cat([idx[j::nb] for j in range(nb)])


def evaluate(model, x_eval, k, block, minutes, elbo_particles, on_block=None, per_image=False,
             start_block=0, guide=None):
    """IS log-likelihood (k particles) and ELBO on ``x_eval``, block by block; returns a dict.

    With ``per_image`` the dict also holds the per-image IS values and their Monte Carlo
    standard errors (in evaluation order), so that methods evaluated on the same images can be
    compared by paired differences. ``start_block`` skips the first blocks (to complete a
    time-capped run: the union of the two runs is the whole of ``x_eval``)."""
    guide = model.guide if guide is None else guide
    t0 = time.perf_counter()
    vals, ses, ess, elbos, elbo_ses = [], [], [], [], []
    res = {}
    for start in range(start_block * block, x_eval.shape[0], block):
        xb = x_eval[start : start + block]
        part = importance_log_likelihood(model.model, guide, xb, num_particles=k,
                                         batch_size=25, chunk=200, max_plate_nesting=1)
        el = test_elbo(model, xb, elbo_particles, guide)
        vals.append(part.values)
        ses.append(part.stderr)
        ess.append(part.info["ess"].double())
        elbos.append(el.values)
        elbo_ses.append(el.stderr)
        ll = LogLikelihood(values=torch.cat(vals), kind="is_estimate", stderr=torch.cat(ses))
        elbo = LogLikelihood(values=torch.cat(elbos), kind="elbo", stderr=torch.cat(elbo_ses))
        e = torch.cat(ess)
        n = len(ll)
        res = {
            "n_test": n, "k": k,
            "test_is": ll.to_dict(),
            "is_mean": ll.mean(), "is_mc_se": ll.mean_stderr(),
            "is_data_se": float(ll.values.std() / math.sqrt(n)) if n > 1 else None,
            "ess_min": float(e.min()), "ess_median": float(e.median()),
            "ess_mean": float(e.mean()), "frac_ess_below_10": float((e < 10).double().mean()),
            "test_elbo": elbo.to_dict(), "elbo_particles": elbo_particles,
            "elbo_mean": elbo.mean(), "elbo_mc_se": elbo.mean_stderr(),
            "elbo_data_se": float(elbo.values.std() / math.sqrt(n)) if n > 1 else None,
            "eval_seconds": time.perf_counter() - t0,
        }
        if per_image:
            res["is_values"] = ll.values.tolist()
            res["is_stderr"] = ll.stderr.tolist()
        if on_block is not None:
            on_block(res)
        if minutes is not None and time.perf_counter() - t0 > 60 * minutes:
            break
    return res


def main():
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=None,
                    help="epoch budget of every method (training stops when all reach it)")
    ap.add_argument("--budget-min", type=float, default=25.0,
                    help="cap on the training wall time, all methods together")
    ap.add_argument("--chunk", type=int, default=100, help="steps per method per round")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rws-k", type=int, default=5)
    ap.add_argument("--nade-hidden", type=int, default=50,
                    help="NADE hidden units per layer of the rws-nade guide")
    ap.add_argument("--layers", type=str, default="784,200,200")
    ap.add_argument("--methods", type=str, default="wake-sleep,rws,nvil,nvil-raw")
    ap.add_argument("--n-eval", type=int, default=100)
    ap.add_argument("--k", type=int, default=5000)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--log", type=str, default=None)
    ap.add_argument("--save-dir", type=str, default=None)
    ap.add_argument("--load-dir", type=str, default=None,
                    help="skip training: evaluate the models saved here by --save-dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-minutes", type=float, default=None,
                    help="per-method evaluation budget: stop after the block that exceeds it")
    ap.add_argument("--eval-block", type=int, default=100, help="test images per block")
    ap.add_argument("--eval-start-block", type=int, default=0,
                    help="skip this many blocks of the evaluation order (to complete a run "
                         "that --eval-minutes stopped)")
    ap.add_argument("--eval-methods", type=str, default=None,
                    help="comma-separated subset of --methods to evaluate (default all)")
    ap.add_argument("--json", type=str, default=None, help="write the results here")
    ap.add_argument("--elbo-particles", type=int, default=10)
    ap.add_argument("--gap-steps", type=int, default=0,
                    help="also refine the recognition network's q per test image for this many "
                         "steps (pyrogen.infer.refine) and report the ELBO before/after and IS "
                         "with the refined q as proposal, on the same images (0: off)")
    ap.add_argument("--gap-objectives", type=str, default="elbo,inclusive",
                    help="refinement objectives: elbo (amortization gap), inclusive (the "
                         "IS proposal)")
    ap.add_argument("--gap-particles", type=int, default=20, help="samples per refinement step")
    ap.add_argument("--gap-lr", type=float, default=0.05)
    ap.add_argument("--gap-k", type=int, default=1000, help="IS particles, refined proposal")
    ap.add_argument("--per-image", action="store_true",
                    help="store per-image IS values and the test indices in the JSON (for "
                         "paired comparisons between methods evaluated on the same images)")
    args = ap.parse_args()
    if args.quick:  # smoke test: tiny sizes
        args.budget_min, args.chunk, args.n_eval, args.k = 0.05, 5, 4, 50
        args.epochs = None
        args.train_limit = args.train_limit or 1000
    if args.eval_start_block < 0 or args.eval_start_block * args.eval_block >= args.n_eval:
        ap.error(f"--eval-start-block {args.eval_start_block} leaves no test image of the "
                 f"{args.n_eval} in blocks of {args.eval_block}")
    torch.set_num_threads(1)
    pyro.set_rng_seed(args.seed)

    def out(msg):
        print(msg, flush=True)
        if args.log:
            with open(args.log, "a") as f:
                f.write(msg + "\n")

    out(header())
    out("command: python " + " ".join(sys.argv))
    path = os.environ.get("PYROGEN_DATA") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
    train = load_binarized_mnist(path, split="train", limit=args.train_limit)
    test = load_binarized_mnist(path, split="test")
    x = train.x.float()
    x_test_all = test.x.float()
    # evenly spaced test images: the test set is ordered by writer (ink per image varies from
    # 54 to 143 pixels between blocks of 500 consecutive images), so "the first n" is biased
    test_idx = spread_indices(x_test_all.shape[0], args.n_eval, args.eval_block)
    x_test = x_test_all[test_idx]
    n = x.shape[0]
    layers = [int(s) for s in args.layers.split(",")]
    methods = args.methods.split(",")
    summary = {"command": "python " + " ".join(sys.argv), "header": header(),
               "data": str(train.info), "layers": layers, "batch_size": args.batch_size,
               "lr": args.lr, "optimizer": "Adam", "rws_k": args.rws_k,
               "epochs_budget": args.epochs, "budget_min": args.budget_min, "k": args.k,
               "methods": {m: {} for m in methods}}
    if args.per_image:
        summary["test_indices"] = test_idx.tolist()
    if args.load_dir:
        if "rws-nade" in methods:
            ap.error("--load-dir does not restore the rws-nade guide: train it in the same run")
        runs = {m: (load(os.path.join(args.load_dir, f"sbn_{m}.pt")), None, None)
                for m in methods}
        prev = os.path.join(args.load_dir, "train.json")
        if os.path.exists(prev):
            with open(prev) as f:
                summary["training"] = json.load(f)
        out(f"loaded {methods} from {args.load_dir}; test eval n={x_test.shape[0]}")
    else:
        out(f"data: {train.info}; train n={n}; test eval n={x_test.shape[0]}; layers={layers}; "
            f"batch={args.batch_size}; Adam lr={args.lr}; rws K={args.rws_k}; "
            f"epochs={args.epochs}; cap={args.budget_min} min interleaved")
        runs = {m: make_method(m, x, layers, args.lr, args.rws_k, args.nade_hidden)
                for m in methods}
        steps = dict.fromkeys(methods, 0)
        sec_per_step = {m: [] for m in methods}
        recent = {m: [] for m in methods}
        history = {m: [] for m in methods}  # (epochs, mean training loss/ex of the chunk)
        steps_per_epoch = math.ceil(n / args.batch_size)
        target = None if args.epochs is None else round(args.epochs * steps_per_epoch)
        t_start = time.perf_counter()
        rnd = 0
        while time.perf_counter() - t_start < args.budget_min * 60:
            todo = [m for m in methods if target is None or steps[m] < target]
            if not todo:
                break
            order = todo[rnd % len(todo):] + todo[: rnd % len(todo)]
            for m in order:
                model, svi, _ = runs[m]
                c = args.chunk if target is None else min(args.chunk, target - steps[m])
                losses = []
                t0 = time.perf_counter()
                for _ in range(c):
                    idx = torch.randint(0, n, (args.batch_size,))
                    losses.append(svi.step(x[idx], num_data=n) / n)
                sec_per_step[m].append((time.perf_counter() - t0) / c)
                steps[m] += c
                recent[m] = losses
                history[m].append((steps[m] / steps_per_epoch, statistics.mean(losses)))
            rnd += 1
            if rnd % 5 == 0:
                msg = "; ".join(
                    f"{m}: {steps[m] / steps_per_epoch:.2f} ep, "
                    f"loss {statistics.mean(recent[m]):.2f}" for m in methods
                )
                out(f"[{(time.perf_counter() - t_start) / 60:.1f} min] {msg}")
        out("loss column: wake-sleep = wake loss -E_q log p(x,h) (not a bound); rws = -IWAE(K) "
            "bound (rws-nade: the same, NADE guide); nvil = -ELBO; all per example, training "
            "minibatches")
        base = statistics.median(sec_per_step[methods[0]])
        training = {"train_minutes": (time.perf_counter() - t_start) / 60, "methods": {}}
        for m in methods:
            med = statistics.median(sec_per_step[m])
            training["methods"][m] = {
                "epochs": steps[m] / steps_per_epoch, "steps": steps[m],
                "sec_per_epoch_median": med * steps_per_epoch,
                "time_per_step_ratio_to_" + methods[0]: med / base,
                "final_train_loss_per_example": statistics.mean(recent[m]),
                "train_loss_history": history[m],
            }
            out(f"{m}: epochs={steps[m] / steps_per_epoch:.2f} steps={steps[m]} "
                f"sec/epoch(median)={med * steps_per_epoch:.1f} (ratio to {methods[0]} "
                f"{med / base:.2f}); final training loss/ex (last chunk) "
                f"{statistics.mean(recent[m]):.2f}")
        summary["training"] = training
        if args.save_dir:
            os.makedirs(args.save_dir, exist_ok=True)
            for m in methods:
                runs[m][0].save(os.path.join(args.save_dir, f"sbn_{m}.pt"))
            _write_json(os.path.join(args.save_dir, "train.json"), training)
        _write_json(args.json, summary)
    eval_methods = methods if not args.eval_methods else args.eval_methods.split(",")
    for m in eval_methods:
        model, _, guide = runs[m]
        pyro.set_rng_seed(args.seed + 1)

        def on_block(res, m=m):
            summary["methods"][m].update(res)
            _write_json(args.json, summary)
            out(f"  {m} [{res['n_test']} images, {res['eval_seconds']:.0f}s] IS "
                f"{res['is_mean']:.2f} ELBO {res['elbo_mean']:.2f} ESS min "
                f"{res['ess_min']:.1f} median {res['ess_median']:.1f}")

        res = evaluate(model, x_test, args.k, args.eval_block, args.eval_minutes,
                       args.elbo_particles, on_block, per_image=args.per_image,
                       start_block=args.eval_start_block, guide=guide)
        out(f"{m}: test IS log-lik (k={args.k}, {res['n_test']} evenly spaced test images) = "
            f"{res['is_mean']:.2f} +- {res['is_mc_se']:.3f} (MC stderr) "
            f"+- {res['is_data_se']:.2f} (test-set sampling) [is_estimate, stochastic lower "
            f"bound]; ESS of the weights: min {res['ess_min']:.1f}, median "
            f"{res['ess_median']:.1f}, {100 * res['frac_ess_below_10']:.0f}% of images below 10 "
            f"(MC stderr optimistic there); test ELBO ({args.elbo_particles} samples, same "
            f"images) = {res['elbo_mean']:.2f} +- {res['elbo_mc_se']:.3f} (MC) "
            f"+- {res['elbo_data_se']:.2f} (sampling); eval {res['eval_seconds']:.0f}s")
        if args.gap_steps:
            summary["methods"][m]["gap"] = {}
            for objective in args.gap_objectives.split(","):
                pyro.set_rng_seed(args.seed + 2)
                t0 = time.perf_counter()
                gap = amortization_gap(
                    model.model, guide or model.guide, x_test, num_steps=args.gap_steps,
                    lr=args.gap_lr,
                    num_particles=args.gap_particles, batch_size=50, elbo_particles=100,
                    is_particles=args.gap_k, objective=objective,
                )
                ll = gap.log_likelihood
                d = {**gap.to_dict(), "seconds": time.perf_counter() - t0,
                     "is_data_se": float(ll.values.std() / math.sqrt(len(ll))),
                     "ess_median": float(ll.info["ess"].median())
                     if "ess" in ll.info else None}
                if args.per_image:
                    d["is_values"] = ll.values.tolist()
                summary["methods"][m]["gap"][objective] = d
                _write_json(args.json, summary)
                out(f"{m}: refined q ({objective}, {args.gap_steps} steps x "
                    f"{args.gap_particles} samples, lr {args.gap_lr}) on the same "
                    f"{len(ll)} images: ELBO encoder {gap.elbo_amortized.mean():.2f} -> refined "
                    f"{gap.elbo_refined.mean():.2f} (gap {gap.amortization_gap:.2f}); IS with "
                    f"the refined proposal (k={args.gap_k}) {ll.mean():.2f} +- "
                    f"{ll.mean_stderr():.3f} (MC) [is_estimate, stochastic lower bound]; "
                    f"{d['seconds']:.0f}s")
    done = [m for m in eval_methods if "is_values" in summary["methods"][m]]
    if "rws" in done and "rws-nade" in done:  # paired over the same test images
        a = torch.tensor(summary["methods"]["rws-nade"]["is_values"], dtype=torch.float64)
        b = torch.tensor(summary["methods"]["rws"]["is_values"], dtype=torch.float64)
        nn_ = min(len(a), len(b))
        d = a[:nn_] - b[:nn_]
        se = float(d.std() / math.sqrt(nn_)) if nn_ > 1 else float("nan")
        summary["paired_is_rws_nade_minus_rws"] = {"n": nn_, "mean": float(d.mean()),
                                                   "se": se,
                                                   "frac_positive": float((d > 0).double().mean())}
        _write_json(args.json, summary)
        out(f"paired over {nn_} test images: IS(rws-nade) - IS(rws) = {float(d.mean()):.2f} +- "
            f"{se:.2f} (sd/sqrt(n) of the differences); rws-nade higher on "
            f"{100 * float((d > 0).double().mean()):.0f}% of images")
    return summary


if __name__ == "__main__":
    main()
