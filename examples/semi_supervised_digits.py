"""Semi-supervised learning on digits: M2, M1+M2 and linear probes with few labels.

The story (book §15.3, Kingma et al. 2014): with only ``k`` labels per class, does a generative
model of *all* the images help the classifier? Three answers, each with the same labelled
examples and each with a confidence interval over the draws of the labelled set:

1. a logistic regression on the labelled images alone (the baseline);
2. the semi-supervised VAE M2: the label observed where known, summed out by
   ``TraceEnum_ELBO`` where not, with the classifier's extra classification term;
3. M1+M2: M2 on the codes of a VAE (M1) trained on all the images.

and, on the side, the few-label linear probe of the M1 codes (a representation judged by how
well a linear classifier reads the labels from it).

    python examples/semi_supervised_digits.py            # 8x8 digits, 10 labels/class, 3 draws
    python examples/semi_supervised_digits.py --quick    # seconds (CI)

Writes a figure of M2's class-conditional samples into ``--out``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from pyrogen.datasets import load_digits
from pyrogen.models import M1M2, VAE, SemiSupervisedVAE
from pyrogen.plotting import save_image_grid
from pyrogen.probes import few_label_probe, t_interval


def labelled_rows(y, k, seed):
    """``k`` rows per class drawn as :func:`pyrogen.probes.few_label_probe` draws them."""
    rng = np.random.default_rng(seed)
    yn = y.numpy()
    return torch.as_tensor(np.concatenate(
        [rng.choice(np.flatnonzero(yn == c), k, replace=False) for c in np.unique(yn)]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets (CI)")
    p.add_argument("--k", type=int, default=10, help="labels per class")
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--out", default="semi_supervised_out")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.seeds, args.epochs = [0], 2
    os.makedirs(args.out, exist_ok=True)

    ds = load_digits(binarize="threshold")
    x, y = ds.x, ds.y
    xtr, ytr, xte, yte = x[:1500], y[:1500], x[1500:], y[1500:]
    print(f"data: {ds.identity}; train 1500 / test {xte.shape[0]}; {args.k} labels per class")

    # M1: a VAE of all training images (no labels), shared by the seeds
    m1 = VAE(64, latent_dims=8, hidden_dims=(64,), seed=0)
    m1.fit(xtr, loss="analytic_kl", num_epochs=args.epochs, batch_size=100, lr=3e-3, seed=0,
           tol=None, progress=False)
    probe = few_label_probe(m1.transform(xtr), ytr, m1.transform(xte), yte, args.k,
                            seeds=args.seeds)
    print(f"linear probe of M1's codes (k={args.k}): {probe}")

    acc = {"logistic regression, labelled only": [], "M2": [], "M1+M2": []}
    m2 = None
    for seed in args.seeds:
        lab = labelled_rows(ytr, args.k, seed)
        y_semi = torch.full_like(ytr, -1)  # -1: label missing
        y_semi[lab] = ytr[lab]
        base = few_label_probe(xtr, ytr, xte, yte, args.k, seeds=(seed,))
        acc["logistic regression, labelled only"].append(base.mean)

        m2 = SemiSupervisedVAE(64, 10, latent_dims=8, hidden_dims=(64,), seed=seed)
        m2.fit(xtr, y_semi, num_epochs=args.epochs, batch_size=100, lr=3e-3,
               classification_weight=20.0, seed=seed, tol=None, progress=False)
        acc["M2"].append(float((m2.predict(xte) == yte).double().mean()))

        mm = M1M2(m1, 10, latent_dims=4, hidden_dims=(32,), seed=seed)
        mm.fit(xtr, y_semi, num_epochs=args.epochs, batch_size=100, lr=3e-3,
               classification_weight=20.0, seed=seed, tol=None, progress=False)
        acc["M1+M2"].append(float((mm.predict(xte) == yte).double().mean()))
        print(f"seed {seed}: " + ", ".join(f"{k} {100 * v[-1]:.1f}%" for k, v in acc.items()))

    print(f"\ntest accuracy, {len(args.seeds)} draw(s) of the labelled set "
          "(mean and 95% t-interval):")
    for name, v in acc.items():
        m, lo, hi = t_interval(v)
        ci = "" if np.isnan(lo) else f" [{100 * lo:.1f}, {100 * hi:.1f}]"
        print(f"  {name:<38} {100 * m:.1f}%{ci}")
    elbo = m2.elbo(xte[:50], num_particles=5)
    print(f"M2 held-out ELBO with y summed out (lower bound on log p(x)): {elbo}")
    labels = torch.arange(10).repeat_interleave(4)
    path = save_image_grid(m2.sample(40, labels, mean=True), (8, 8),
                           os.path.join(args.out, "m2_samples_by_class.png"), ncols=4,
                           title="M2: decoder means given y = 0..9")
    print("wrote", path)


if __name__ == "__main__":
    main()
