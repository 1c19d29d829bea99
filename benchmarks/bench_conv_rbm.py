"""Convolutional RBM (probabilistic max pooling) vs BernoulliRBMs on binarized digits / MNIST.

Trains, with the same recipe (Pyro SVI, PCD-1, Adam, batch 100, the same number of epochs, one
thread), a :class:`pyrogen.models.ConvRBM` and two :class:`pyrogen.models.BernoulliRBM`\\ s:
one with (at least) the same number of parameters, one with as many hidden units as the
ConvRBM has detection units. Reports the test log-likelihood of each, labelled (exact or AIS
estimate with the standard error of log Z), the seconds per epoch, and, on digits, the AIS
error of a small ConvRBM whose log Z is exact (a check of the ConvRBM annealing path on a
trained model).

    PYTHONPATH=. python benchmarks/bench_conv_rbm.py --dataset digits --epochs 20
    PYTHONPATH=. python benchmarks/bench_conv_rbm.py --dataset mnist --epochs 1 \\
        --train-limit 10000 --test-limit 1000 --filters 16 --filter-size 9
    PYTHONPATH=. python benchmarks/bench_conv_rbm.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings

import torch

from pyrogen import ConvergenceWarning
from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import BernoulliRBM, ConvRBM


def _mnist_path(path):
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [path, os.environ.get("PYROGEN_DATA"),
             os.path.join(here, "..", "..", "shared", "data", "binarized_mnist.npz")]
    return next((c for c in cands if c and os.path.exists(c)), None)


def _data(args):
    if args.dataset == "mnist":
        path = _mnist_path(args.data)
        try:
            tr = load_binarized_mnist(path, "train", limit=args.train_limit)
            te = load_binarized_mnist(path, "test", limit=args.test_limit, subset="spaced")
        except FileNotFoundError as e:
            raise SystemExit(f"MNIST section skipped: {e}") from None
        return tr.x.float(), te.x.float(), (28, 28), tr.identity
    d = load_digits(binarize="threshold")
    x = d.x.float()[torch.randperm(len(d.x), generator=torch.Generator().manual_seed(0))]
    return x[297:], x[:297], (8, 8), d.identity + " (1500 train / 297 test, seeded split)"


def _fit(model, x, args, steps):
    model.normalizer("pcd").refresh_every = 10**9  # monitoring value: once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        h = model.fit(x, method="pcd", num_steps=steps, lr=args.lr, batch_size=100, tol=None,
                      seed=args.seed, progress=False)
    return h.seconds


def _row(name, model, x, x_test, args, steps, per_epoch_steps):
    secs = _fit(model, x, args, steps)
    t0 = time.perf_counter()
    ll = model.log_likelihood(x_test, num_chains=args.ais_chains, num_betas=args.ais_betas,
                              seed=args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    row = {
        "model": name,
        "parameters": n_params,
        "test_ll": ll.mean(),
        "kind": ll.kind,
        "log_z_stderr": ll.shared_stderr,
        "ess": ll.info.get("ess"),
        "test_sampling_se": float(ll.values.std() / math.sqrt(len(ll.values))),
        "seconds_per_epoch": secs / (steps / per_epoch_steps),
        "eval_seconds": time.perf_counter() - t0,
    }
    se = f" ± {row['log_z_stderr']:.3f}" if row["log_z_stderr"] else ""
    print(f"{name:<44} {n_params:>6} params | test {row['test_ll']:8.3f}{se} "
          f"[{ll.kind}] (± {row['test_sampling_se']:.2f} test sampling) | "
          f"{row['seconds_per_epoch']:.2f} s/epoch | eval {row['eval_seconds']:.1f} s", flush=True)
    return row, model


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument("--data", default=None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--epochs", type=float, default=20.0)
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--filter-size", type=int, default=5)
    p.add_argument("--pool", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=3000)
    p.add_argument("--skip-wide", action="store_true", help="skip the equal-hidden-units RBM")
    p.add_argument("--pixel-bias", action="store_true",
                   help="also a ConvRBM with one visible bias per pixel")
    p.add_argument("--rbm-hidden", type=int, action="append", default=[],
                   help="also a BernoulliRBM with this many hidden units (repeatable)")
    p.add_argument("--no-conv", action="store_true",
                   help="only the --rbm-hidden reference rows (no ConvRBM, no matched RBMs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.epochs, args.ais_chains, args.ais_betas, args.filters = 1.0, 20, 100, 4
    x, x_test, hw, identity = _data(args)
    per_epoch = max(1, round(len(x) / 100))
    steps = max(1, round(args.epochs * per_epoch))
    print(f"data: {identity}; {steps} PCD-1 steps of 100 ({args.epochs:g} epochs), Adam lr "
          f"{args.lr}; AIS {args.ais_chains} chains x {args.ais_betas} temperatures")
    rows = []
    nv = x.shape[1]
    for h in args.rbm_hidden:
        r, _ = _row(f"BernoulliRBM {nv}-{h}", BernoulliRBM(nv, h, seed=args.seed), x, x_test,
                    args, steps, per_epoch)
        rows.append(r)
    if args.no_conv:
        out = {"data": identity, "epochs": args.epochs, "rows": rows}
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
        return out
    conv = ConvRBM(hw, args.filters, args.filter_size, args.pool, seed=args.seed)
    r, conv = _row(f"ConvRBM {args.filters}x{args.filter_size}^2 pool {args.pool}", conv, x,
                   x_test, args, steps, per_epoch)
    rows.append(r)
    n_conv = r["parameters"]
    if args.pixel_bias:
        r, _ = _row(f"ConvRBM {args.filters}x{args.filter_size}^2 pool {args.pool} pixel bias",
                    ConvRBM(hw, args.filters, args.filter_size, args.pool, pixel_bias=True,
                            seed=args.seed), x, x_test, args, steps, per_epoch)
        rows.append(r)
    h_par = max(1, math.ceil((n_conv - nv) / (nv + 1)))  # (nv+1) h + nv >= conv's
    r, _ = _row(f"BernoulliRBM {nv}-{h_par} (>= params)", BernoulliRBM(nv, h_par, seed=args.seed),
                x, x_test, args, steps, per_epoch)
    rows.append(r)
    if not args.skip_wide:
        h_units = conv.n_hidden
        r, _ = _row(f"BernoulliRBM {nv}-{h_units} (= hidden units)",
                    BernoulliRBM(nv, h_units, seed=args.seed), x, x_test, args, steps, per_epoch)
        rows.append(r)
    check = None
    if args.dataset == "digits":
        small = ConvRBM(hw, 2, args.filter_size, args.pool, seed=args.seed)
        if small.exact:
            _fit(small, x, args, steps)
            exact = small.log_normalizer(method="exact")
            est = small.log_normalizer(method="ais", num_chains=args.ais_chains,
                                       num_betas=args.ais_betas, seed=args.seed)
            err = float(est.log_z) - float(exact.log_z)
            check = {"exact_log_z": float(exact.log_z), "ais_log_z": float(est.log_z),
                     "ais_stderr": float(est.stderr), "error": err,
                     "error_in_se": err / float(est.stderr)}
            print(f"AIS check, ConvRBM 2x{args.filter_size}^2 pool {args.pool} (exact by "
                  f"{small._enumeration_units}-bit enumeration): log Z exact {exact.log_z:.3f}, "
                  f"AIS {float(est.log_z):.3f} ± {float(est.stderr):.3f}: error {err:+.3f} "
                  f"({check['error_in_se']:+.1f} se)")
    out = {"data": identity, "epochs": args.epochs, "rows": rows, "ais_check": check}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
