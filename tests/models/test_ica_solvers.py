"""Tests of pyrogen.models._ica_solvers: the FastICA fixed point against scikit-learn's, the
L-BFGS loop on a quadratic, the orthogonal helpers."""

import pytest
import torch

from pyrogen.models._ica_solvers import (
    fastica_symmetric,
    lbfgs_minimize,
    seeded_orthogonal,
    symmetric_decorrelation,
)
from pyrogen.models.ica_stats import amari_distance

from ._ica_data import mixture


def test_orthogonal_helpers():
    q = seeded_orthogonal(4, 3, torch.float64)
    torch.testing.assert_close(q @ q.T, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(seeded_orthogonal(4, 3, torch.float64), q)
    w = torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    o = symmetric_decorrelation(w)
    torch.testing.assert_close(o @ o.T, torch.eye(3, dtype=torch.float64))


def test_fastica_symmetric_separates_whitened_mixture():
    x, a = mixture(2, n=2000, kinds=("laplace", "uniform", "binary"))
    xc = x - x.mean(0)
    evals, evecs = torch.linalg.eigh(xc.T @ xc / x.shape[0])
    white = evecs.T / evals.sqrt().unsqueeze(-1)
    u, it, converged = fastica_symmetric(
        xc @ white.T, seeded_orthogonal(3, 0, x.dtype), num_steps=200, tol=1e-10
    )
    assert converged and it < 200
    assert amari_distance(u @ white, a) < 0.05


def test_lbfgs_minimize_quadratic_and_non_finite():
    target = torch.tensor([1.0, -2.0], dtype=torch.float64)
    p = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    steps = []
    hist = lbfgs_minimize(
        [p], lambda: ((p - target) ** 2).sum(), num_steps=20, lr=1.0, tol=1e-12,
        callback=lambda step, value: steps.append(step),
    )
    assert hist.converged and hist.method == "lbfgs"
    torch.testing.assert_close(p.detach(), target)
    assert steps == list(range(len(steps)))
    q = torch.ones(1, dtype=torch.float64, requires_grad=True)
    with pytest.raises(FloatingPointError, match="the nll became nan at L-BFGS step 0; hint"):
        lbfgs_minimize([q], lambda: (q * float("nan")).sum(), num_steps=3, lr=1.0, tol=0.0,
                       what="nll", hint="hint")
