"""Annealing paths against exact enumeration: DBM (odd layers summed out), parameter
interpolation between two RBMs, and the endpoints of every path.

Estimates are checked within 5 reported standard errors: failure rate ~6e-7 each under the
normal approximation (fixed seeds: deterministic).
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from pyrogen.infer.annealing import DBMPath, RBMBaseRatePath, RBMInterpolationPath, ais, smc

D64 = torch.float64


def all_binary(n):
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=D64)


def dbm_params(sizes, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    Ws = [scale * torch.randn(a, b, generator=g, dtype=D64) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [0.5 * torch.randn(n, generator=g, dtype=D64) for n in sizes]
    return Ws, bs


def dbm_exact_log_z(Ws, bs):
    """Enumerate every layer jointly (independent of the path's code)."""
    sizes = [b.shape[0] for b in bs]
    X = all_binary(sum(sizes))
    parts, start = [], 0
    for n in sizes:
        parts.append(X[:, start : start + n])
        start += n
    neg_e = sum(p @ b for p, b in zip(parts, bs))
    neg_e = neg_e + sum(((parts[i] @ W) * parts[i + 1]).sum(-1) for i, W in enumerate(Ws))
    return torch.logsumexp(neg_e, 0)


@pytest.mark.parametrize("sizes", [(4, 3, 3), (3, 2, 3, 2)])
def test_dbm_path_matches_enumeration(sizes):
    Ws, bs = dbm_params(sizes, seed=len(sizes))
    path = DBMPath(Ws, bs, base_visible_bias=0.3 * torch.ones(sizes[0], dtype=D64))
    exact = dbm_exact_log_z(Ws, bs)
    # the endpoints: f_1 sums to Z, f_0 to Z_0
    S = all_binary(path.num_units)
    torch.testing.assert_close(torch.logsumexp(path.log_density(S, 1.0), 0), exact)
    torch.testing.assert_close(torch.logsumexp(path.log_density(S, 0.0), 0), path.log_z0)
    res = ais(path, 200, 1000, seed=1)
    assert abs(float(res.log_z - exact)) < 5 * float(res.log_z_stderr), (res.log_z, exact)
    assert float(res.log_z_stderr) < 0.05
    s = smc(path, num_chains=1000, seed=2)
    assert abs(float(s.log_z - exact)) < 5 * float(s.log_z_stderr) + 1e-3


def test_dbm_with_one_hidden_layer_is_the_rbm_path():
    Ws, bs = dbm_params((5, 3))
    bA = torch.linspace(-1, 1, 5, dtype=D64)
    dbm = DBMPath(Ws, bs, bA)
    rbm = RBMBaseRatePath(Ws[0], bs[0], bs[1], bA)
    v = all_binary(5)
    for beta in (0.0, 0.3, 1.0):
        torch.testing.assert_close(dbm.log_density(v, beta), rbm.log_density(v, beta))
    torch.testing.assert_close(dbm.log_z0, rbm.log_z0)


def test_dbm_batched_parameters():
    Ws1, bs1 = dbm_params((3, 2, 2), seed=5)
    Ws2, bs2 = dbm_params((3, 2, 2), seed=6)
    Ws = [torch.stack([a, b]) for a, b in zip(Ws1, Ws2)]
    bs = [torch.stack([a, b]) for a, b in zip(bs1, bs2)]
    res = ais(DBMPath(Ws, bs), 100, 800, seed=3)
    assert res.log_z.shape == (2,)
    for i, (w, b) in enumerate([(Ws1, bs1), (Ws2, bs2)]):
        exact = dbm_exact_log_z(w, b)
        assert abs(float(res.log_z[i] - exact)) < 5 * float(res.log_z_stderr[i])


def rbm_exact_log_z(W, b, c):
    v = all_binary(W.shape[0])
    return torch.logsumexp(v @ b + F.softplus(v @ W + c).sum(-1), 0)


def test_rbm_interpolation_estimates_log_z_ratio():
    g = torch.Generator().manual_seed(7)
    p0 = (
        torch.randn(6, 3, generator=g, dtype=D64),
        torch.randn(6, generator=g, dtype=D64),
        torch.randn(3, generator=g, dtype=D64),
    )
    p1 = tuple(t + 0.7 * torch.randn(t.shape, generator=g, dtype=D64) for t in p0)
    path = RBMInterpolationPath(p0, p1)
    exact = rbm_exact_log_z(*p1) - rbm_exact_log_z(*p0)
    res = ais(path, 100, 1000, seed=4)
    assert abs(float(res.log_z - exact)) < 5 * float(res.log_z_stderr), (res.log_z, exact)
    # init draws exactly from RBM 0: empirical frequencies of the 64 states (20000 draws),
    # 5 se per cell (+1e-3): failure rate < 4e-5 over the 64 cells
    v = path.init(20000, generator=torch.Generator().manual_seed(0))
    idx = (v * 2 ** torch.arange(5, -1, -1, dtype=D64)).sum(-1).long()
    freq = torch.bincount(idx, minlength=64).to(D64) / 20000
    states = all_binary(6)
    W, b, c = p0
    p = torch.softmax(states @ b + F.softplus(states @ W + c).sum(-1), 0)
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / 20000).sqrt() + 1e-3).all()


def test_path_bad_input():
    Ws, bs = dbm_params((3, 2))
    with pytest.raises(ValueError, match="biases must hold one vector per layer"):
        DBMPath(Ws, bs[:1])
    with pytest.raises(ValueError, match=r"weights\[1\] must have shape"):
        DBMPath([Ws[0], torch.zeros(3, 2, dtype=D64)], bs + [torch.zeros(2, dtype=D64)])
    with pytest.raises(TypeError, match="must be a floating-point"):
        DBMPath([Ws[0].long()], bs)
    with pytest.raises(ValueError, match="weights must hold at least one"):
        DBMPath([], bs[:1])
    big = (torch.zeros(3, 20, dtype=D64), torch.zeros(3, dtype=D64), torch.zeros(20, dtype=D64))
    with pytest.raises(ValueError, match="init_samples must be given"):
        RBMInterpolationPath(big, big)
    with pytest.raises(ValueError, match="same sizes"):
        RBMInterpolationPath(big, (torch.zeros(4, 20, dtype=D64),) + big[1:])
