"""Train a binary RBM on the fixed binarized MNIST and estimate its test log-likelihood by AIS.

The story (book §20.2, Salakhutdinov & Murray 2008):

1. ``pyrogen.models.BernoulliRBM(784, 500)`` trained with CD-k through Pyro SVI (``fit``: the
   SVI gradient of ``pyro.sample("x", RBM(W, b, c, normalizer=CD(k)), obs=x)`` *is* the CD-k
   learning rule);
2. ``log Z`` by annealed importance sampling on the Salakhutdinov & Murray base-rate path
   (:mod:`pyrogen.infer.ais`), giving the AIS estimate of the test log-likelihood, a
   stochastic *upper* bound, with its standard error;
3. the RAISE check (Burda et al. 2015) on a subset of test images: a stochastic *lower* bound.
   When the two agree, the number can be trusted.

Anchor: Salakhutdinov & Murray (2008), CD-25, 500 hidden units: -86.34 nats (AIS, 100 chains,
14,500 temperatures, after a long training run). This script reproduces the recipe only as far as
the time you give it: the number it lands on is printed with the budget it took.

Usage::

    python examples/rbm_mnist.py --quick          # tiny hidden layer, a few hundred images
    python examples/rbm_mnist.py --epochs 5       # 784-500, CD-1 by Adam, five epochs
    # the Salakhutdinov & Murray style recipe: SGD + momentum 0.5 -> 0.9 + weight decay,
    # CD-k with k rising linearly from 1 to 25 (reached at 80% of the epochs)
    python examples/rbm_mnist.py --recipe sm --epochs 60 --save rbm.pt

The data: the fixed binarized MNIST ``.npz`` (``--data`` or ``PYROGEN_DATA`` or
``../shared/data/binarized_mnist.npz`` next to the repository). With ``--quick`` and no MNIST
file, the script falls back to scikit-learn's 8x8 digits thresholded at 0.5 (and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.infer.ais import RBMBaseRatePath, ais, base_rate_visible_bias, reverse_ais
from pyrogen.models import BernoulliRBM

ANCHOR = -86.34  # Salakhutdinov & Murray (2008), CD-25, 500 hidden units, test set


def find_mnist(path):
    cands = [path, os.environ.get("PYROGEN_DATA")]
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "..", "..", "shared", "data", "binarized_mnist.npz"))
    return next((c for c in cands if c and os.path.exists(c)), None)


def load_data(args):
    path = find_mnist(args.data)
    if path is not None:
        tr = load_binarized_mnist(path, "train", limit=args.train_limit)
        te = load_binarized_mnist(path, "test", limit=args.test_limit, subset="spaced")
        return tr.x, te.x, tr.identity
    if not args.quick:
        raise SystemExit(
            "binarized MNIST not found: pass --data PATH or set PYROGEN_DATA "
            "(the full run needs it; --quick falls back to the 8x8 digits)."
        )
    d = load_digits(binarize="threshold")
    x = d.x[torch.randperm(len(d.x), generator=torch.Generator().manual_seed(0))]
    n = min(args.train_limit or 300, len(x) - 100)
    return x[:n], x[n : n + 100], d.identity + " (fallback: MNIST not found)"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, a smoke test")
    p.add_argument("--data", default=None, help="binarized_mnist.npz")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--k", type=int, default=1, help="CD-k (with --k-final: the starting k)")
    p.add_argument(
        "--k-final",
        type=int,
        default=None,
        help="raise k linearly from --k to this, reached at --k-ramp of the epochs "
        "(Salakhutdinov & Murray: 1 -> 25)",
    )
    p.add_argument("--k-ramp", type=float, default=0.8, help="fraction of training to reach k")
    p.add_argument("--epochs", type=float, default=5.0, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument(
        "--lr", type=float, default=None, help="step size (default 1e-3 for adam, 0.05 for sgd)"
    )
    p.add_argument("--momentum", type=float, default=0.9, help="sgd: final momentum")
    p.add_argument("--momentum-start", type=float, default=0.5, help="sgd: first epochs")
    p.add_argument("--momentum-epochs", type=float, default=5.0, help="sgd: epochs at start")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 on W, per example")
    p.add_argument(
        "--recipe",
        choices=("none", "sm"),
        default="none",
        help="sm: SGD lr 0.05, momentum 0.5 -> 0.9 after 5 epochs, weight decay 2e-4, "
        "CD-k with k rising 1 -> 25 (the classic Hinton / Salakhutdinov & Murray recipe)",
    )
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=10000)
    p.add_argument("--raise-images", type=int, default=20)
    p.add_argument("--raise-chains", type=int, default=5)
    p.add_argument("--raise-betas", type=int, default=10000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the results to this file")
    p.add_argument("--out", default="rbm_filters.png",
                   help="PNG of the filters of the first hidden units ('' for none)")
    p.add_argument("--save", default=None, help="save the trained model (BernoulliRBM.save)")
    args = p.parse_args(argv)
    if args.recipe == "sm":
        args.optimizer, args.weight_decay = "sgd", args.weight_decay or 2e-4
        args.k, args.k_final = 1, args.k_final or 25
    if args.lr is None:
        args.lr = 0.05 if args.optimizer == "sgd" else 1e-3
    if args.quick:
        args.hidden, args.epochs = 10, 2.0
        args.train_limit, args.test_limit = args.train_limit or 300, args.test_limit or 200
        args.ais_chains, args.ais_betas = 50, 300
        args.raise_images, args.raise_chains, args.raise_betas = 20, 5, 100
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x, x_test, identity = load_data(args)
    n, nv = x.shape
    print(f"data: {identity}; test: {len(x_test)} images")
    budget = {}

    # 1. training: CD-k through Pyro SVI
    rbm = BernoulliRBM(nv, args.hidden, training="cd", k=args.k, seed=args.seed)
    # the training loss's log Z is only a monitoring number: refresh it (a small AIS run)
    # every 1,000 steps instead of 100, so that training time goes to training
    rbm.normalizer("cd").refresh_every = 1000
    steps_per_epoch = n / args.batch_size
    num_steps = max(1, round(args.epochs * steps_per_epoch))
    k_final = args.k if args.k_final is None else args.k_final
    ramp = max(1.0, args.k_ramp * num_steps)

    def k_at(step):  # k rising linearly from args.k to k_final over the first k_ramp
        return int(min(k_final, args.k + (k_final - args.k) * step // ramp))

    def momentum_at(step):
        early = step < args.momentum_epochs * steps_per_epoch
        return args.momentum_start if early else args.momentum

    t0, c0 = time.perf_counter(), time.process_time()
    hist = rbm.fit(
        x,
        method="cd",
        num_steps=num_steps,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.quick,
        optimizer=args.optimizer,
        momentum=momentum_at if args.optimizer == "sgd" else 0.0,
        weight_decay=args.weight_decay,
        k=k_at,
    )
    budget["train_s"] = time.perf_counter() - t0
    budget["train_cpu_s"] = time.process_time() - c0
    k_sched = hist.info["k"]
    opt = (
        f"SGD lr {args.lr}, momentum {args.momentum_start} -> {args.momentum} after "
        f"{args.momentum_epochs:g} epochs"
        if args.optimizer == "sgd"
        else f"Adam lr {args.lr}"
    )
    print(
        f"trained RBM {nv}-{args.hidden} with CD-k, k {k_sched[0][1]} -> {k_sched[-1][1]} "
        f"(k reached {k_final} at step {k_sched[-1][0]}) by SVI ({opt}, weight decay "
        f"{args.weight_decay:g}): {num_steps} steps of {args.batch_size} = {args.epochs:g} "
        f"epochs in {budget['train_s']:.1f} s wall, {budget['train_cpu_s']:.1f} s CPU"
    )

    if args.save:
        rbm.save(args.save)

    # 2. AIS estimate of log Z on the base-rate path (base fitted to the training data)
    W, b, c = (t.detach() for t in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    path = RBMBaseRatePath(W, b, c, base_rate_visible_bias(x))
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    res = ais(path, args.ais_betas, args.ais_chains, generator=g)
    budget["ais_s"] = time.perf_counter() - t0
    neg_free = path.log_density(x_test, 1.0).double()
    ll = neg_free - float(res.log_z)
    se_test = float(ll.std() / len(ll) ** 0.5)  # test-set sampling error of the mean
    ll_train = path.log_density(x[:10000], 1.0).double().mean() - float(res.log_z)
    print(
        f"log Z (AIS estimate, {args.ais_chains} chains, {args.ais_betas} temperatures): "
        f"{float(res.log_z):.3f} ± {float(res.log_z_stderr):.3f}, ESS {float(res.ess):.1f} "
        f"({budget['ais_s']:.1f} s)"
    )
    print(
        f"test log-likelihood on {len(ll)} images, AIS estimate (stochastic upper bound): "
        f"{ll.mean():.2f} ± {float(res.log_z_stderr):.2f} (AIS stderr of log Z, shared by all "
        f"images) ± {se_test:.2f} (test-set sampling) nats/image"
    )
    print(f"train log-likelihood, AIS estimate: {float(ll_train):.2f} nats/image")

    # 3. RAISE on evenly spaced test images (the test set is ordered by writer, so its
    # first rows are not representative): a stochastic lower bound
    m = min(args.raise_images, len(x_test))
    idx = torch.linspace(0, len(x_test) - 1, m).round().long()
    sub = x_test[idx]
    t0 = time.perf_counter()
    rr = reverse_ais(path, sub, args.raise_betas, args.raise_chains, generator=g, chunk_size=50)
    budget["raise_s"] = time.perf_counter() - t0
    se_raise = float((rr.log_prob_stderr.double() ** 2).sum().sqrt() / len(sub))
    ais_sub = float(ll[idx].mean())
    raise_mean = float(rr.log_prob.double().mean())
    print(
        f"RAISE check on {len(sub)} evenly spaced test images ({args.raise_chains} chains, "
        f"{args.raise_betas} temperatures, {budget['raise_s']:.1f} s): "
        f"RAISE (stochastic lower bound) {raise_mean:.2f} ± {se_raise:.2f} vs AIS (upper) "
        f"{ais_sub:.2f} on the same images: gap {ais_sub - raise_mean:.2f} nats"
    )
    print(
        f"anchor: Salakhutdinov & Murray (2008), CD-25, 500 hidden: {ANCHOR} nats "
        "(long CD-25 training; this run's budget is above)"
    )
    out = {
        "data": identity,
        "n_hidden": args.hidden,
        "k_schedule": k_sched,
        "epochs": args.epochs,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "momentum": [args.momentum_start, args.momentum] if args.optimizer == "sgd" else None,
        "weight_decay": args.weight_decay,
        "final_loss_kind": hist.info.get("loss_log_z_kind"),
        "log_z_ais": float(res.log_z),
        "log_z_stderr": float(res.log_z_stderr),
        "ess": float(res.ess),
        "test_images": len(ll),
        "test_ll_ais_estimate": float(ll.mean()),
        "test_ll_sampling_stderr": se_test,
        "raise_images": len(sub),
        "raise_lower_bound": raise_mean,
        "raise_stderr": se_raise,
        "ais_on_raise_images": ais_sub,
        "budget_s": budget,
        "anchor": ANCHOR,
    }
    if args.out:
        from pyrogen.plotting import save_image_grid

        side = int(round(nv ** 0.5))
        if side * side == nv:
            save_image_grid(rbm.weight.detach().T[:30], (side, side), args.out, ncols=10,
                            symmetric=True,
                            title="RBM filters: W[:, j] for the first 30 hidden units")
            print(f"filters written to {args.out}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
