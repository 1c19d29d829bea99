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
    python examples/rbm_mnist.py --epochs 5       # 784-500, CD-1, five epochs of 50,000 images

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
        te = load_binarized_mnist(path, "test", limit=args.test_limit)
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
    p.add_argument("--k", type=int, default=1, help="CD-k (Salakhutdinov & Murray: up to 25)")
    p.add_argument("--epochs", type=float, default=5.0, help="passes over the training set")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam step size of fit()")
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
    p.add_argument("--save", default=None, help="save the trained model (BernoulliRBM.save)")
    args = p.parse_args(argv)
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
    num_steps = max(1, round(args.epochs * n / args.batch_size))
    t0 = time.perf_counter()
    hist = rbm.fit(
        x,
        method="cd",
        num_steps=num_steps,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.quick,
    )
    budget["train_s"] = time.perf_counter() - t0
    print(
        f"trained RBM {nv}-{args.hidden} with CD-{args.k} by SVI (Adam, lr {args.lr}): "
        f"{num_steps} steps of {args.batch_size} = {args.epochs:g} epochs in "
        f"{budget['train_s']:.1f} s"
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
    ll_train = path.log_density(x[:10000], 1.0).double().mean() - float(res.log_z)
    print(
        f"log Z (AIS estimate, {args.ais_chains} chains, {args.ais_betas} temperatures): "
        f"{float(res.log_z):.3f} ± {float(res.log_z_stderr):.3f}, ESS {float(res.ess):.1f} "
        f"({budget['ais_s']:.1f} s)"
    )
    print(
        f"test log-likelihood, AIS estimate (stochastic upper bound): {ll.mean():.2f} ± "
        f"{float(res.log_z_stderr):.2f} nats/image (stderr of log Z; shared by all images)"
    )
    print(f"train log-likelihood, AIS estimate: {float(ll_train):.2f} nats/image")

    # 3. RAISE on a subset of the test images: a stochastic lower bound
    sub = x_test[: args.raise_images]
    t0 = time.perf_counter()
    rr = reverse_ais(path, sub, args.raise_betas, args.raise_chains, generator=g, chunk_size=50)
    budget["raise_s"] = time.perf_counter() - t0
    se_raise = float((rr.log_prob_stderr.double() ** 2).sum().sqrt() / len(sub))
    ais_sub = float(ll[: len(sub)].mean())
    raise_mean = float(rr.log_prob.double().mean())
    print(
        f"RAISE check on {len(sub)} test images ({args.raise_chains} chains, "
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
        "k": args.k,
        "epochs": args.epochs,
        "lr": args.lr,
        "final_loss_kind": hist.info.get("loss_log_z_kind"),
        "log_z_ais": float(res.log_z),
        "log_z_stderr": float(res.log_z_stderr),
        "ess": float(res.ess),
        "test_ll_ais_estimate": float(ll.mean()),
        "raise_images": len(sub),
        "raise_lower_bound": raise_mean,
        "raise_stderr": se_raise,
        "ais_on_raise_images": ais_sub,
        "budget_s": budget,
        "anchor": ANCHOR,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
