"""Every discrete kernel leaves its tempered target invariant: exact check on tiny models.

For each kernel, path and beta in {0, 0.5, 1}:

1. the exact transition matrix T, built from first principles (the joint energy for block
   Gibbs, the path's log density for single-site kernels), has the enumerated f_beta / Z_beta as
   a stationary distribution (pi T = pi to 1e-10) and, where the kernel is reversible, satisfies
   detailed balance;
2. the kernel's code draws from T: one step from every start state, 4000 chains each, the
   empirical frequencies are within 5 standard errors (+1e-3) of T's rows. Per cell the failure
   rate is < 6e-7 under the normal approximation; over the <= 16 x 16 cells of one test and the
   ~20 tests it stays below 1e-3 (fixed seeds make each run deterministic anyway).
"""

from __future__ import annotations

import itertools

import pyro.distributions as pdist
import pytest
import torch

from pyrogen.infer.annealing import (
    BinaryMetropolis,
    BlockGibbs,
    ChainRNG,
    DBMPath,
    GeometricPath,
    RBMBaseRatePath,
    SingleSiteGibbs,
    resolve_kernel,
)

D64 = torch.float64
BETAS = (0.0, 0.5, 1.0)


def states(n):
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=D64)


def index_of(x):
    n = x.shape[-1]
    return (x * 2 ** torch.arange(n - 1, -1, -1, dtype=x.dtype)).sum(-1).long()


def tiny_rbm(nv=3, nh=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(nv, nh, generator=g, dtype=D64)
    b = torch.randn(nv, generator=g, dtype=D64)
    c = torch.randn(nh, generator=g, dtype=D64)
    bA = 0.5 * torch.randn(nv, generator=g, dtype=D64)
    return W, b, c, bA


def tiny_dbm(sizes=(2, 2, 2), seed=1):
    g = torch.Generator().manual_seed(seed)
    Ws = [torch.randn(a, b, generator=g, dtype=D64) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [torch.randn(n, generator=g, dtype=D64) for n in sizes]
    bA = 0.5 * torch.randn(sizes[0], generator=g, dtype=D64)
    return Ws, bs, bA


def bm_log_f(U, b):
    return lambda x: ((x @ U) * x).sum(-1) + x @ b


def tiny_bm_path(d=3, seed=2):
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(d, d, generator=g, dtype=D64)
    U = (U + U.T) / 2
    U.fill_diagonal_(0)
    b = torch.randn(d, generator=g, dtype=D64)
    base = pdist.Bernoulli(probs=torch.tensor([0.3, 0.6, 0.5], dtype=D64)).to_event(1)
    return GeometricPath(base, bm_log_f(U, b))


def check_stationary(T, pi, reversible):
    torch.testing.assert_close(T.sum(1), torch.ones(len(pi), dtype=D64))
    torch.testing.assert_close(pi @ T, pi, atol=1e-10, rtol=0)
    if reversible:
        flow = pi[:, None] * T
        torch.testing.assert_close(flow, flow.T, atol=1e-10, rtol=0)


def check_code_draws_from(kernel, S, T, beta, seed, n=4000):
    x = S.repeat_interleave(n, 0)
    state = kernel.init(x)
    rng = ChainRNG(seed, x.shape[0])
    new, info = kernel.step(rng, state, beta)
    assert info.acceptance_rate.shape == (x.shape[0],)
    idx = index_of(new.position).reshape(len(S), n)
    freq = torch.stack([torch.bincount(r, minlength=len(S)) for r in idx]).to(D64) / n
    se = (T * (1 - T) / n).sqrt()
    assert ((freq - T).abs() <= 5 * se + 1e-3).all(), (freq - T).abs().max()


def bernoulli_pmf(x, p):
    return torch.exp((x * p.log() + (1 - x) * (1 - p).log()).sum(-1))


# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", BETAS)
def test_block_gibbs_rbm_invariant(beta):
    W, b, c, bA = tiny_rbm()
    path = RBMBaseRatePath(W, b, c, bA)
    V, H = states(3), states(2)
    # joint log f_beta(v, h) from the energy, not from the path's code
    joint = ((1 - beta) * bA + beta * b) @ V.T
    joint = joint[:, None] + beta * (H @ c)[None] + beta * (V @ W @ H.T)  # (8, 4)
    p_h_v = torch.softmax(joint, 1)
    p_v_h = torch.softmax(joint, 0).T  # (4, 8)
    T = p_h_v @ p_v_h
    pi = torch.softmax(torch.logsumexp(joint, 1), 0)
    torch.testing.assert_close(pi, torch.softmax(path.log_density(V, beta), 0))
    check_stationary(T, pi, reversible=True)
    kernel = resolve_kernel(path)
    assert isinstance(kernel, BlockGibbs)
    check_code_draws_from(kernel, V, T, beta, seed=1)


@pytest.mark.parametrize("beta", BETAS)
def test_block_gibbs_dbm_invariant(beta):
    """DBM v-h1-h2 (2 units each): state = (v, h2), h1 summed out."""
    Ws, bs, bA = tiny_dbm()
    path = DBMPath(Ws, bs, bA)
    S = states(4)  # (v, h2)
    H1 = states(2)
    v, h2 = S[:, :2], S[:, 2:]
    lin = ((1 - beta) * bA + beta * bs[0]) @ v.T + beta * (h2 @ bs[2])  # (16,)
    inter = beta * (
        (H1 @ bs[1])[None] + (v @ Ws[0] @ H1.T) + (h2 @ Ws[1].T @ H1.T)
    )  # (16, 4)
    joint = lin[:, None] + inter
    T = torch.softmax(joint, 1) @ torch.softmax(joint, 0).T
    pi = torch.softmax(torch.logsumexp(joint, 1), 0)
    torch.testing.assert_close(pi, torch.softmax(path.log_density(S, beta), 0))
    check_stationary(T, pi, reversible=True)
    check_code_draws_from(BlockGibbs(path), S, T, beta, seed=2)


def gibbs_matrix(path, S, beta, order):
    logf = path.log_density(S, beta)
    d = S.shape[1]
    T = torch.eye(len(S), dtype=D64)
    for i in order:
        G = torch.zeros(len(S), len(S), dtype=D64)
        for a, x in enumerate(S):
            x1, x0 = x.clone(), x.clone()
            x1[i], x0[i] = 1, 0
            j1, j0 = int(index_of(x1)), int(index_of(x0))
            p1 = torch.sigmoid(logf[j1] - logf[j0])
            G[a, j1] += p1
            G[a, j0] += 1 - p1
        T = T @ G
    assert d == S.shape[1]
    return T


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("reverse", [False, True])
def test_single_site_gibbs_invariant(beta, reverse):
    path = tiny_bm_path()
    S = states(3)
    order = range(2, -1, -1) if reverse else range(3)
    T = gibbs_matrix(path, S, beta, order)
    pi = torch.softmax(path.log_density(S, beta), 0)
    check_stationary(T, pi, reversible=False)
    # the reverse sweep is the time reversal: pi_x T(x, y) = pi_y T_rev(y, x)
    T_rev = gibbs_matrix(path, S, beta, range(2, -1, -1) if not reverse else range(3))
    torch.testing.assert_close(pi[:, None] * T, (pi[:, None] * T_rev).T, atol=1e-10, rtol=0)
    kernel = SingleSiteGibbs(path, reverse=reverse)
    assert kernel.reverse().reversed != reverse
    check_code_draws_from(kernel, S, T, beta, seed=3)


@pytest.mark.parametrize("beta", BETAS)
def test_single_site_gibbs_boltzmann_path_conditionals(beta):
    """The Boltzmann machine's own path offers conditional logits: same matrix."""
    from pyrogen.distributions import BoltzmannMachine

    g = torch.Generator().manual_seed(4)
    U = torch.randn(3, 3, generator=g, dtype=D64)
    U = (U + U.T) / 2
    U.fill_diagonal_(0)
    path = BoltzmannMachine(U, torch.randn(3, generator=g, dtype=D64)).annealing_path()
    S = states(3)
    T = gibbs_matrix(path, S, beta, range(3))
    check_stationary(T, torch.softmax(path.log_density(S, beta), 0), reversible=False)
    check_code_draws_from(SingleSiteGibbs(path), S, T, beta, seed=5)


@pytest.mark.parametrize("beta", BETAS)
def test_binary_metropolis_invariant(beta):
    path = tiny_bm_path()
    S = states(3)
    logf = path.log_density(S, beta)
    M = torch.zeros(len(S), len(S), dtype=D64)
    for a, x in enumerate(S):
        for i in range(3):
            y = x.clone()
            y[i] = 1 - y[i]
            j = int(index_of(y))
            acc = torch.clamp(torch.exp(logf[j] - logf[a]), max=1.0) / 3
            M[a, j] += acc
            M[a, a] += 1 / 3 - acc
    T = torch.linalg.matrix_power(M, 3)  # num_proposals = D = 3 by default
    pi = torch.softmax(logf, 0)
    check_stationary(M, pi, reversible=True)
    check_stationary(T, pi, reversible=True)
    check_code_draws_from(BinaryMetropolis(path), S, T, beta, seed=6)
