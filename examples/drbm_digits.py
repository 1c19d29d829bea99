"""Classify binarized digits with a classification RBM trained three ways.

The story (book §20.8; Larochelle & Bengio 2008):

1. ``pyrogen.models.DiscriminativeRBM(64, 10, H)`` models the joint p(v, y) of 8x8 binary
   digits and their class; p(y | v) is exact (the hidden units are summed out);
2. the same model is trained with each objective, each a Pyro program run by SVI:
   ``"discriminative"`` (exact log p(y|v)), ``"generative"`` (CD-1 on log p(v, y)) and
   ``"hybrid"`` (log p(y|v) + alpha log p(v, y));
3. the test error of each, beside scikit-learn's logistic regression on the same pixels;
4. joint samples (v, y) of the generatively trained model by block Gibbs, their classes in the
   title, as a picture.

Usage::

    python examples/drbm_digits.py --quick          # seconds
    python examples/drbm_digits.py --hidden 200 --steps 3000
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from pyrogen.datasets import load_digits
from pyrogen.exceptions import ConvergenceWarning
from pyrogen.models import DiscriminativeRBM
from pyrogen.plotting import save_image_grid


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, a smoke test")
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="drbm_samples.png")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    hidden, steps = (40, 300) if args.quick else (args.hidden, args.steps)

    d = load_digits(binarize="threshold")
    perm = torch.randperm(len(d), generator=torch.Generator().manual_seed(args.seed))
    tr, te = perm[:1297], perm[1297:]
    x, y = d.x.float(), d.y
    print(f"8x8 digits thresholded at 0.5: {len(tr)} train, {len(te)} test images; "
          f"{hidden} hidden units, {steps} Adam steps (lr {args.lr}, batch 100) per objective")
    models = {}
    for objective in ("discriminative", "hybrid", "generative"):
        m = DiscriminativeRBM(64, 10, hidden, objective=objective, alpha=args.alpha,
                              seed=args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m.fit(x[tr], y[tr], num_steps=steps, lr=args.lr, batch_size=100, tol=None,
                  seed=args.seed, progress=False)
        nll = -float(m.conditional_log_likelihood(x[te], y[te]).values.mean())
        print(f"{objective:>14}: test error {100 * (1 - m.score(x[te], y[te])):5.1f}%, "
              f"test -log p(y|v) {nll:.3f} nats (exact)")
        models[objective] = m
    try:
        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lr = LogisticRegression(max_iter=500).fit(x[tr].numpy(), y[tr].numpy())
        err = 1 - lr.score(x[te].numpy(), y[te].numpy())
        print(f"{'logistic reg.':>14}: test error {100 * err:5.1f}% (scikit-learn, same pixels)")
    except ImportError:  # pragma: no cover - sklearn is a dependency of load_digits
        pass
    s = models["generative"].sample(16)
    labels = s[:, 64:].argmax(-1).tolist()
    title = "generative ClassRBM joint samples, classes " + " ".join(map(str, labels))
    save_image_grid(s[:, :64], (8, 8), args.out, title=title)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
