"""Convolutional RBM with probabilistic max pooling (book §20.6, Lee et al. 2009) on binarized
digits or MNIST: filters as a picture, samples, the AIS test log-likelihood with its standard
error, time per epoch, and a two-layer convolutional DBN stacked greedily.

The story:

1. ``pyrogen.models.ConvRBM(image_shape, n_filters, filter_size, pool_size)`` trained by Pyro SVI
   with the PCD normalizer (the SVI gradient of ``pyro.sample("x", ConvolutionalRBM(...,
   normalizer=PCD()), obs=x)`` *is* the PCD rule), a few epochs;
2. its log-likelihood: exact when a side is enumerable, otherwise ``log Z`` by AIS along the
   base-rate path with the detection inputs scaled by beta (the pooling blocks stay exactly
   summable), reported with its standard error;
3. a ``ConvDBN``: a second convolutional RBM fitted to the first one's pooling probabilities
   through :func:`pyrogen.infer.layerwise.greedy_layerwise`.

Usage::

    python examples/conv_rbm_digits.py --quick          # seconds: 8x8 digits, tiny budget
    python examples/conv_rbm_digits.py --epochs 20      # 8x8 digits, 8 filters 5x5, pool 2
    python examples/conv_rbm_digits.py --mnist --filters 16 --filter-size 9 --epochs 1 \\
        --train-limit 10000 --test-limit 1000          # fixed binarized MNIST, short run

Writes ``conv_rbm_filters.png`` and ``conv_rbm_samples.png`` (``--out-dir``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from pyrogen import ConvergenceWarning
from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import ConvDBN, ConvRBM
from pyrogen.plotting import save_image_grid


def find_mnist(path):
    here = os.path.dirname(os.path.abspath(__file__))
    cands = [path, os.environ.get("PYROGEN_DATA"),
             os.path.join(here, "..", "..", "shared", "data", "binarized_mnist.npz")]
    return next((c for c in cands if c and os.path.exists(c)), None)


def load(args):
    if args.mnist:
        path = find_mnist(args.data)
        if path is None:
            raise SystemExit("binarized MNIST not found: pass --data PATH or set PYROGEN_DATA.")
        tr = load_binarized_mnist(path, "train", limit=args.train_limit)
        te = load_binarized_mnist(path, "test", limit=args.test_limit, subset="spaced")
        return tr.x.float(), te.x.float(), (28, 28), tr.identity
    d = load_digits(binarize="threshold", seed=args.seed)
    x = d.x.float()[torch.randperm(len(d.x), generator=torch.Generator().manual_seed(0))]
    n_test = 297
    return x[n_test:], x[:n_test], (8, 8), d.identity + " (1500 train / 297 test)"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budget: a smoke test")
    p.add_argument("--mnist", action="store_true", help="fixed binarized MNIST (28x28)")
    p.add_argument("--data", default=None, help="binarized_mnist.npz (default: shared copy)")
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--filter-size", type=int, default=5)
    p.add_argument("--pool", type=int, default=2)
    p.add_argument("--epochs", type=float, default=20.0)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--sparsity-cost", type=float, default=0.0)
    p.add_argument("--pixel-bias", action="store_true", help="one visible bias per pixel")
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=3000)
    p.add_argument("--dbn", action="store_true", help="also stack a second layer (ConvDBN)")
    p.add_argument("--out-dir", default=".")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.filters, args.filter_size, args.epochs = 4, 5, 1.0
        args.ais_chains, args.ais_betas, args.dbn = 20, 100, True
    x, x_test, hw, identity = load(args)
    print(f"data: {identity}; {len(x)} train, {len(x_test)} test images of {hw[0]}x{hw[1]}")

    model = ConvRBM(hw, args.filters, args.filter_size, args.pool, training="pcd",
                    sparsity_cost=args.sparsity_cost, pixel_bias=args.pixel_bias, seed=args.seed)
    # the training loss's log Z is a monitoring number: refresh it rarely
    model.normalizer("pcd").refresh_every = 10**9
    steps_per_epoch = max(1, round(len(x) / args.batch_size))
    num_steps = max(1, round(args.epochs * steps_per_epoch))
    hist = model.fit(x, num_steps=num_steps, lr=args.lr, batch_size=args.batch_size, tol=None,
                     seed=args.seed, progress=not args.quick)
    per_epoch = hist.seconds / (num_steps / steps_per_epoch)
    print(f"ConvRBM {args.filters} filters {args.filter_size}x{args.filter_size}, pool "
          f"{args.pool} ({sum(p.numel() for p in model.parameters())} parameters, "
          f"{model.n_hidden} detection / {model.n_pooled} pooling units): PCD-1 via SVI, "
          f"{num_steps} steps = {args.epochs:g} epochs in {hist.seconds:.1f} s "
          f"({per_epoch:.2f} s/epoch, 1 thread)")

    t0 = time.perf_counter()
    ll = model.log_likelihood(x_test, num_chains=args.ais_chains, num_betas=args.ais_betas,
                              seed=args.seed)
    se = f" ± {ll.shared_stderr:.3f} (AIS s.e. of log Z)" if ll.shared_stderr else ""
    extra = f", ESS {ll.info['ess']:.1f}/{args.ais_chains}" if "ess" in ll.info else ""
    print(f"test log-likelihood [{ll.kind}]: {ll.mean():.3f}{se} nats/image "
          f"({time.perf_counter() - t0:.1f} s{extra})")

    os.makedirs(args.out_dir, exist_ok=True)
    f = save_image_grid(model.filters(), (args.filter_size, args.filter_size),
                        os.path.join(args.out_dir, "conv_rbm_filters.png"),
                        title="ConvRBM filters", symmetric=True)
    s = save_image_grid(model.sample(20, num_steps=100 if args.quick else 1000), hw,
                        os.path.join(args.out_dir, "conv_rbm_samples.png"),
                        title="ConvRBM samples (block Gibbs)")
    print(f"wrote {f} and {s}")

    if args.dbn:
        k2 = max(2, args.filters // 2)
        dbn = ConvDBN(hw, [dict(n_filters=args.filters, filter_size=args.filter_size,
                                pool_size=args.pool),
                           dict(n_filters=k2, filter_size=2 if not args.mnist else 5,
                                pool_size=1, sample_steps=200)], seed=args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fixed budgets, stated
            res = dbn.fit(x, fit_kwargs={"num_steps": num_steps, "lr": args.lr,
                                         "batch_size": args.batch_size, "tol": None},
                          seed=args.seed, progress=False)
        print(f"ConvDBN: layer 2 ({k2} filters over the {dbn.layers[0].pooled_shape} pooling "
              f"maps) fitted greedily; seconds per layer {[round(t, 1) for t in res.seconds]}; "
              f"top features {tuple(dbn.transform(x_test[:5]).shape)} per 5 images")
    return {"log_likelihood": ll.mean(), "kind": ll.kind, "seconds_per_epoch": per_epoch}


if __name__ == "__main__":
    main()
