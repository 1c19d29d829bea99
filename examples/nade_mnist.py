"""Train a NADE on the fixed binarized MNIST and report its exact test log-likelihood.

The story (book §20.10.10, Larochelle & Murray 2011; Uria, Murray & Larochelle 2014):

1. ``pyrogen.models.NADEModel(784, H)``: the observed site ``"x"`` has the
   :class:`pyrogen.distributions.NADE` distribution, the guide is empty, so Pyro SVI with
   ``Trace_ELBO`` is maximum likelihood (the loss is the exact negative log-likelihood);
2. the test log-likelihood is **exact** (kind ``"exact"``): no AIS, no bound;
3. with ``--order-agnostic --orderings M``: training draws a random ordering per minibatch and
   the test number is the exact log-likelihood of the ensemble over ``M`` orderings (log of the
   mean probability);
4. samples, drawn ancestrally pixel by pixel, as a picture.

Anchors (test nats): NADE -88.86 (Larochelle & Murray 2011, 500 hidden units, long SGD run);
EoNADE 2 hidden layers, 128 orderings, about -85.10. This script gets as far as the time you give
it; the number is printed with the budget it took.

Usage::

    python examples/nade_mnist.py --quick            # tiny: a few hundred images, seconds
    python examples/nade_mnist.py --hidden 500 --epochs 5 --save nade.pt

Data: ``--data`` or ``PYROGEN_DATA`` or ``../shared/data/binarized_mnist.npz`` next to the
repository. With ``--quick`` and no MNIST file the script uses scikit-learn's 8x8 digits
thresholded at 0.5 (and says so).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import NADEModel
from pyrogen.plotting import save_image_grid

ANCHOR = -88.86  # Larochelle & Murray (2011), NADE 500 hidden units, test set


def find_mnist(path):
    cands = [path, os.environ.get("PYROGEN_DATA")]
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "..", "..", "shared", "data", "binarized_mnist.npz"))
    return next((c for c in cands if c and os.path.exists(c)), None)


def load_data(args):
    path = find_mnist(args.data)
    if path is not None:
        limit = 300 if args.quick else None
        tr = load_binarized_mnist(path, "train", limit=limit)
        te = load_binarized_mnist(path, "test", limit=100 if args.quick else None,
                                  subset="spaced")  # the test split is ordered by class
        return tr.x.float(), te.x.float(), (28, 28), tr.info
    if not args.quick:
        raise SystemExit("binarized MNIST not found: pass --data PATH or set PYROGEN_DATA "
                         "(the full run needs it; --quick falls back to the 8x8 digits).")
    d = load_digits(binarize="threshold")
    x = d.x.float()[torch.randperm(len(d.x), generator=torch.Generator().manual_seed(0))]
    print("MNIST not found: using the 8x8 digits thresholded at 0.5 (fallback)")
    return x[:300], x[300:400], (8, 8), d.info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, a smoke test")
    p.add_argument("--data", default=None, help="binarized_mnist.npz")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--order-agnostic", action="store_true")
    p.add_argument("--orderings", type=int, default=1, help="ensemble size at test time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None)
    p.add_argument("--out", default="nade_samples.png")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    xtr, xte, shape, info = load_data(args)
    H = 16 if args.quick else args.hidden
    epochs = 1 if args.quick else args.epochs
    model = NADEModel(xtr.shape[1], H, order_agnostic=args.order_agnostic,
                      num_orderings=args.orderings, seed=args.seed)
    model.initialize_from_data(xtr)
    steps = epochs * -(-xtr.shape[0] // args.batch_size)
    t0 = time.perf_counter()
    model.fit(xtr, num_steps=steps, lr=args.lr * (10 if args.quick else 1),
              batch_size=args.batch_size, seed=args.seed, tol=None, progress=not args.quick,
              data_info=info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(xte)
    print(f"NADE({H}) {epochs} epoch(s), {seconds:.1f}s: test log-likelihood "
          f"{ll.mean():.2f} nats [{ll.kind}] on {len(ll)} images "
          f"(anchor {ANCHOR} after a long run; data: {info.get('name')})")
    save_image_grid(model.sample(16), shape, args.out, title="NADE samples")
    if args.save:
        model.save(args.save)


if __name__ == "__main__":
    main()
