"""Slow feature analysis: recover the slowest of several mixed sinusoids (book §13.3).

The story: four sensors record a linear mixture of three sinusoids of different frequencies plus
white noise. Closed-form SFA finds the directions whose output changes most slowly; the slowest
one is the slowest source. Probabilistic SFA (Turner & Sahani 2007) is the same idea as a
state-space model with an exact likelihood: we fit it with Pyro SVI (starting from SFA), compare
its exact log-likelihood per time step with a held-out continuation of the series, and check that
its posterior means agree with SFA.

Run ``python examples/slow_features.py`` (or ``--quick`` for a few seconds).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyrogen.models import ProbabilisticSFA, SlowFeatureAnalysis  # noqa: E402
from pyrogen.models.sfa import sinusoid_mixture  # noqa: E402


def abs_corr(a, b) -> float:
    return abs(float(torch.corrcoef(torch.stack([a, b]))[0, 1]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="slow_features.png",
                        help="PNG of sources and recovered slow features ('' for none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    n_steps = 500 if args.quick else 2000
    # 2 T steps, train on the first T, held out the rest; the sources make 2.3, 11.7 and 31.1
    # cycles per 500 steps. (Much slower sources per step put the slowness of the slowest SFA
    # features on the floor set by the white noise: see docs/models/sfa.rst.)
    cycles = tuple(c * 2 * n_steps / 500 for c in (2.3, 11.7, 31.1))
    x, sources = sinusoid_mixture(2 * n_steps, 4, cycles=cycles, noise=0.05, seed=args.seed)
    train, test = x[:n_steps], x[n_steps:]
    s_train = sources[:n_steps]

    sfa = SlowFeatureAnalysis(4, n_components=3).double()
    sfa.fit(train)
    y = sfa.transform(train)
    print("SFA slowness values (ascending):", [round(float(d), 4) for d in sfa.slowness_])
    for k in range(3):
        c = abs_corr(y[:, k], s_train[:, k])
        print(f"  feature {k + 1}: |corr| with source {k + 1} = {c:.4f}")

    psfa = ProbabilisticSFA(4, 3).double()
    hist = psfa.fit(train, num_steps=10 if args.quick else 200, seed=args.seed, progress=False)
    z = psfa.transform(train)
    ll_train = psfa.log_likelihood(train)
    ll_test = psfa.log_likelihood(test)
    print(
        f"PSFA: {len(hist.losses)} SVI steps; exact log-lik per time step "
        f"train {ll_train.mean():.4f}, held-out {ll_test.mean():.4f} [{ll_test.kind}]"
    )
    print(
        "  lambda (slowest first):",
        [round(float(v), 4) for v in psfa.lam.detach().sort(descending=True).values],
    )
    print("  2(1 - lambda) vs SFA slowness:", [round(float(v), 4) for v in psfa.slowness_])
    agree = [abs_corr(z[:, k], y[:, k]) for k in range(3)]
    print("  |corr| PSFA posterior mean vs SFA feature:", [round(a, 4) for a in agree])
    print(f"  slowest latent vs slowest source: |corr| = {abs_corr(z[:, 0], s_train[:, 0]):.4f}")
    if args.out:
        from pyrogen.plotting import save_line_plot

        t = slice(0, min(n_steps, 300))
        sign = lambda a, b: 1.0 if float((a * b).sum()) >= 0 else -1.0  # noqa: E731
        series = {}
        for k in range(3):
            s_k = (s_train[t, k] - s_train[t, k].mean()) / s_train[t, k].std()
            series[f"source {k + 1} (+{3 * k})"] = (s_k + 3 * k).tolist()
            series[f"SFA feature {k + 1} (+{3 * k})"] = (
                sign(y[t, k], s_train[t, k]) * y[t, k] / y[t, k].std() + 3 * k).tolist()
        save_line_plot(series, args.out, title="sources and recovered slow features, offset",
                       xlabel="time step")
        print(f"figure written to {args.out}")
    return {"sfa_corr": abs_corr(y[:, 0], s_train[:, 0]), "psfa_test_ll": ll_test.mean()}


if __name__ == "__main__":
    main()
