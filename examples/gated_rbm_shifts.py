"""A factored gated Boltzmann machine learns translations of digits (book §20.8).

The story: pairs (digit, digit shifted by one pixel up, down, left or right) from scikit-learn's
8x8 digits (``pyrogen.datasets.shifted_digit_pairs``). A gated RBM (Memisevic & Hinton 2010)
models the shifted image y given the original x through mapping units whose three-way
interactions are factored into filter pairs. Trained by Pyro SVI with CD-1, it is compared on
held-out pairs with an RBM of y alone (same hidden units, steps and step size): the exact
conditional log P(y | x) against the exact log P(y). The mapping units encode *which* shift
relates x to y: a logistic regression on them predicts the shift (chance: 25%). The learned
filter pairs (input filter over output filter) are saved as a picture.

Run ``python examples/gated_rbm_shifts.py`` (or ``--quick`` for a few seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyrogen.datasets import shifted_digit_pairs  # noqa: E402
from pyrogen.models import BernoulliRBM, GatedRBM  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--out", default="gated_rbm_filters.png",
                        help="PNG of the learned filter pairs ('' for none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    n_train, n_test = (200, 100) if args.quick else (1500, 500)
    steps = args.steps or (40 if args.quick else 1500)
    n_hidden, n_factors = (8, 16) if args.quick else (12, 64)
    x, y, _ = shifted_digit_pairs(n_train, seed=args.seed)
    tx, ty, tshift = shifted_digit_pairs(n_test, seed=args.seed + 1000)
    train, test = torch.cat([x, y], -1), torch.cat([tx, ty], -1)
    print(f"{n_train} training / {n_test} test pairs (digit, digit shifted by one pixel); "
          f"{steps} SVI steps of CD-1, batch 100, lr 0.01, {n_hidden} hidden units")

    gated = GatedRBM(64, 64, n_hidden, n_factors, seed=args.seed)
    t0 = time.perf_counter()
    gated.fit(train, num_steps=steps, lr=0.01, batch_size=100, seed=args.seed, progress=False)
    t_gated = time.perf_counter() - t0
    rbm = BernoulliRBM(64, n_hidden, training="cd", seed=args.seed)
    t0 = time.perf_counter()
    rbm.fit(y, num_steps=steps, lr=0.01, batch_size=100, seed=args.seed, progress=False,
            tol=None)
    t_rbm = time.perf_counter() - t0
    cond = gated.log_likelihood(test)
    marg = rbm.log_likelihood(ty)
    print(f"gated RBM  log P(y | x) = {cond.mean():8.3f} nats/pair ({cond.kind}), "
          f"fit {t_gated:.1f}s")
    print(f"RBM of y   log P(y)     = {marg.mean():8.3f} nats/pair ({marg.kind}), "
          f"fit {t_rbm:.1f}s")

    out = {"conditional_log_likelihood": cond.mean(), "rbm_log_likelihood": marg.mean()}
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:  # pragma: no cover
        LogisticRegression = None
    if LogisticRegression is not None:
        h_train = gated.transform(train).numpy()
        _, _, shift = shifted_digit_pairs(n_train, seed=args.seed)
        clf = LogisticRegression(max_iter=2000).fit(h_train, shift.numpy())
        acc = float(clf.score(gated.transform(test).numpy(), tshift.numpy()))
        out["shift_accuracy"] = acc
        print(f"shift predicted from the mapping units P(h | x, y): {acc:.1%} of test pairs "
              "(chance 25%)")
    if args.out:
        from pyrogen.plotting import save_image_grid

        k = min(10, n_factors)
        norms = gated.input_factors.detach().norm(dim=0) * gated.output_factors.detach().norm(
            dim=0)
        top = norms.argsort(descending=True)[:k]
        filters = torch.cat([gated.input_factors.detach()[:, top].T,
                             gated.output_factors.detach()[:, top].T])
        save_image_grid(filters, (8, 8), args.out, ncols=k, symmetric=True,
                        title="factor filter pairs: input W^x (top) / output W^y (bottom)")
        print("wrote", args.out)
    return out


if __name__ == "__main__":
    main()
