"""Deep belief net on the fixed binarized MNIST: greedy layer-wise RBM pretraining, up-down
fine-tuning (wake-sleep with an RBM prior), and the Salakhutdinov & Murray (2008) estimate
(variational bound over the lower layers + AIS log Z of the top RBM), labelled.

    python examples/dbn_mnist.py --data ../shared/data/binarized_mnist.npz   # small budget
    python examples/dbn_mnist.py --quick   # CI smoke run (8x8 digits, tiny DBN, seconds)

The quick run uses a first hidden layer small enough for the exact log-likelihood, so the bound
is printed next to the exact value.
"""

from __future__ import annotations

import argparse
import warnings

import pyro
import torch

from pyrogen import ConvergenceWarning
from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import DBN


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--data", default=None, help="binarized_mnist.npz (default: the shared copy)")
    ap.add_argument("--sizes", default="784,500,500,2000")
    ap.add_argument("--train", type=int, default=10000, help="training images used")
    ap.add_argument("--test", type=int, default=1000, help="test images evaluated")
    ap.add_argument("--rbm-steps", type=int, default=2000, help="CD-1 steps per RBM")
    ap.add_argument("--up-down-steps", type=int, default=1000)
    ap.add_argument("--ais-betas", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="dbn_samples.png", help="PNG of model samples ('' for none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pyro.set_rng_seed(args.seed)
    if args.quick:
        d = load_digits(binarize="threshold", seed=args.seed)
        x = d.x.float()
        x_train, x_test = x[:1500], x[1500:1700]
        sizes, rbm_steps, ud_steps, betas = [64, 12, 8, 16], 40, 40, 200
    else:
        d = load_binarized_mnist(args.data, "train", limit=args.train)
        x_train = d.x.float()
        x_test = load_binarized_mnist(args.data, "test", limit=args.test).x.float()
        sizes = [int(s) for s in args.sizes.split(",")]
        rbm_steps, ud_steps, betas = args.rbm_steps, args.up_down_steps, args.ais_betas
    dbn = DBN(sizes, training="cd", ais_num_betas=betas, ais_num_chains=100, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fixed budgets: reported below
        g = dbn.fit(x_train, method="greedy", num_steps=rbm_steps, lr=1e-3, batch_size=100,
                    tol=None, progress=not args.quick, seed=args.seed)
        print(f"greedy: {len(sizes) - 1} RBMs x {rbm_steps} CD-1 steps, "
              f"{g.seconds:.1f}s, per layer {[round(s, 1) for s in g.info['layer_seconds']]}")
        ll0 = dbn.log_likelihood(x_test, method="bound", num_samples=10, seed=args.seed)
        print(f"after greedy:   {ll0}")
        if ud_steps > 0:  # 0: the greedy stack alone (the paper's figure)
            u = dbn.fit(x_train, method="up_down", num_steps=ud_steps, lr=1e-4,
                        batch_size=100, tol=None, progress=not args.quick, seed=args.seed,
                        dream_steps=10)
            print(f"up-down: {ud_steps} wake-sleep steps, {u.seconds:.1f}s")
    ll = dbn.log_likelihood(x_test, method="bound", num_samples=10, seed=args.seed)
    print(f"after up-down:  {ll}  [{ll.description}]")
    if dbn.exact:
        print(f"exact:          {dbn.log_likelihood(x_test, method='exact')}")
    imp = dbn.log_likelihood(x_test, method="importance", num_samples=100 if args.quick else 1000,
                             seed=args.seed)
    print(f"importance:     {imp}")
    if args.out:
        from pyrogen.plotting import save_image_grid

        side = int(round(sizes[0] ** 0.5))
        save_image_grid(dbn.sample(30), (side, side), args.out, ncols=10,
                        title="DBN samples (Gibbs in the top RBM, then down the sigmoid layers)")
        print(f"samples written to {args.out}")


if __name__ == "__main__":
    main()
