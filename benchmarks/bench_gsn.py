"""How close does a trained DAE's Markov chain get to the data distribution? (issue 17)

Bengio et al. (2013): if the reconstruction distribution P(x | x~) is the true posterior, the
chain x -> x~ -> x has the data distribution as its stationary distribution. On tiny binary
problems (2 and 3 bits) everything is exact: the data set has an empirical distribution equal to
p (rows in exact proportion), the chain's transition matrix is enumerated
(``DenoisingAutoencoder.transition_matrix``) and its stationary distribution solved
(``stationary_distribution``). Printed per configuration: the expected reconstruction loss of
the fitted model and of the true posterior (its optimum), the largest error of P(x | x~), and the
total-variation distance between the chain's stationary distribution and p. No timing: this is
an accuracy table.

Usage::

    python benchmarks/bench_gsn.py            # the table in benchmarks/README.md
    python benchmarks/bench_gsn.py --quick    # smoke test
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch
from harness import bench_parser, header

from pyrogen.models import DenoisingAutoencoder
from pyrogen.models.gsn import _all_binary_states, stationary_distribution

P = {
    2: torch.tensor([0.45, 0.05, 0.15, 0.35], dtype=torch.float64),
    3: torch.tensor([0.30, 0.02, 0.05, 0.13, 0.04, 0.16, 0.08, 0.22], dtype=torch.float64),
}


def run(d, reconstruction, steps, noise, walkback=1, hidden=16):
    p = P[d]
    x = _all_binary_states(d, torch.float64).repeat_interleave((p * 1000).round().long(), 0)
    m = DenoisingAutoencoder(d, (hidden,), noise=noise, reconstruction=reconstruction,
                             walkback=walkback, seed=0).double()
    m.fit(x, num_steps=steps, lr=1e-2, tol=None, seed=0, progress=False)
    c, r = m.corruption_matrix(), m.reconstruction_matrix()
    r_true = p[None, :] * c.T
    r_true = r_true / r_true.sum(1, keepdim=True)
    joint = p[:, None] * c  # p(x) C(x~ | x)
    loss_opt = float(-(joint * r_true.T.log()).sum())
    loss = float(-(joint * r.T.log()).sum())
    pi = stationary_distribution(m.transition_matrix())
    tv = float(0.5 * (pi - p).abs().sum())
    print(f"| {d} | {reconstruction} | {noise} | {walkback} | {steps} | {loss:.4f} | "
          f"{loss_opt:.4f} | {float((r - r_true).abs().max()):.4f} | **{tv:.4f}** |", flush=True)


def discriminant(steps, seed=0):
    """Discriminant GSN (§20.12.1) on the threshold-binarized 8x8 digits: test accuracy and
    log loss of ``predict_proba`` against scikit-learn's LogisticRegression on the same split."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    from pyrogen.datasets import load_digits
    from pyrogen.models import GSN

    d = load_digits(binarize="threshold", seed=seed)
    perm = torch.randperm(d.x.shape[0], generator=torch.Generator().manual_seed(seed))
    x, y = d.x.double()[perm], d.y[perm]
    xtr, ytr, xte, yte = x[:1500], y[:1500], x[1500:], y[1500:]
    m = GSN(64, 128, n_classes=10, noise=0.2, hidden_noise=0.1, walkback=2, seed=seed).double()
    m.fit(xtr, ytr, num_steps=steps, lr=1e-2, batch_size=100, tol=None, seed=seed,
          progress=False)
    p = m.predict_proba(xte, num_steps=20, seed=seed)
    acc = float((p.argmax(1) == yte).double().mean())
    nll = float(-p.clamp_min(1e-12).log().gather(1, yte[:, None]).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(max_iter=2000).fit(xtr.numpy(), ytr.numpy())
    pl = torch.as_tensor(lr.predict_proba(xte.numpy()))
    acc_lr = float((pl.argmax(1) == yte).double().mean())
    nll_lr = float(-pl.clamp_min(1e-12).log().gather(1, yte[:, None]).mean())
    print(f"\ndiscriminant GSN (64 -> 128 latent, walk-back 2, {steps} Adam steps, batch 100) on "
          f"digits 1500/297: test accuracy {acc:.3f}, log loss {nll:.3f} nats; "
          f"LogisticRegression: accuracy {acc_lr:.3f}, log loss {nll_lr:.3f}", flush=True)


def main(argv=None):
    ap = bench_parser(__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.3])
    ap.add_argument("--walkback", type=int, nargs="+", default=[1],
                    help="walk-back steps per example (the loss is then a sum of that many terms)")
    ap.add_argument("--bits", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    ap.add_argument("--reconstruction", nargs="+", default=["factorial", "autoregressive"],
                    choices=["factorial", "autoregressive"])
    ap.add_argument("--discriminant", action="store_true",
                    help="only the discriminant GSN on the 8x8 digits")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or 1)
    steps = 20 if args.quick else args.steps
    print(header())
    if args.discriminant:
        discriminant(steps)
        return
    print("\n| bits | reconstruction | salt-and-pepper | walk-back | Adam steps | "
          "E one-step recon NLL (nats) | "
          "optimum (true posterior) | max abs error of P(x|x~) | TV(stationary, p) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for noise in args.noise:
        for d in args.bits:
            for rec in args.reconstruction:
                for wb in args.walkback:
                    run(d, rec, steps, noise, wb)


if __name__ == "__main__":
    main()
