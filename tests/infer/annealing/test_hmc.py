"""Tests of pyrogen.infer.annealing.hmc: HMC and MALA leave their target invariant, adapt.

Statistical tests use float64, fixed seeds and thresholds of 4 standard errors; each states the
failure rate it would have over random seeds (with the fixed seed they are deterministic).
"""

from __future__ import annotations

import math

import pytest
import torch

from pyrogen.infer.annealing.hmc import HMC, MALA, HMCKernelInfo, HMCKernelState

D64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class GaussianPath:
    r"""Geometric path from N(0, I) to N(mu, S) in 2-D: f_beta is Gaussian with precision
    P_beta = (1 - beta) I + beta S^-1 and mean P_beta^-1 beta S^-1 mu (exact moments)."""

    def __init__(self, batch=(), dtype=D64):
        self.mu = torch.tensor([1.0, -2.0], dtype=dtype)
        self.cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]], dtype=dtype) * 0.25
        self.prec = torch.linalg.inv(self.cov)
        self.log_z0 = torch.zeros(batch, dtype=dtype)
        self.batch = batch
        self.dtype = dtype

    def moments(self, beta):
        p = (1 - beta) * torch.eye(2, dtype=self.dtype) + beta * self.prec
        cov = torch.linalg.inv(p)
        return cov @ (beta * self.prec @ self.mu), cov

    def log_density(self, x, beta):
        d = x - self.mu
        q1 = torch.einsum("...i,ij,...j->...", d, self.prec, d)
        return -0.5 * (1 - beta) * (x * x).sum(-1) - 0.5 * beta * q1

    def exact(self, num_chains, beta, generator):
        mean, cov = self.moments(beta)
        eps = torch.randn(num_chains, *self.batch, 2, dtype=self.dtype, generator=generator)
        return mean + eps @ torch.linalg.cholesky(cov).T


def _z_scores(x, mean, cov):
    """z-scores of the sample mean and of the sample second moments about the exact mean."""
    m = x.shape[0]
    zs = []
    xm = x.mean(0)
    zs.append((xm - mean) / torch.sqrt(torch.diag(cov) / m))
    d = x - mean
    for i, j in ((0, 0), (1, 1), (0, 1)):
        prod = d[:, i] * d[:, j]
        zs.append(((prod.mean() - cov[i, j]) / (prod.std() / math.sqrt(m))).reshape(1))
    return torch.cat(zs)


@pytest.mark.parametrize("kernel_cls", [HMC, MALA])
def test_kernel_leaves_target_invariant(kernel_cls):
    # 20,000 chains started from exact draws of f_beta, 5 transitions with a large fixed step
    # size (acceptance ~0.47 HMC, ~0.57 MALA): the final draws are again exact, independent
    # across chains. Five z-scores (2 means, 3 second moments) against |z| < 4: failure rate
    # over seeds 5 * 6.3e-5 = 3e-4. Power: the same run without the Metropolis correction
    # (always accept) gives max |z| = 31.5 (HMC) and 30.4 (MALA) (measured with this seed), so a
    # missing or wrong correction fails.
    g = torch.Generator().manual_seed(1)
    path = GaussianPath()
    beta = 0.7
    x = path.exact(20000, beta, g)
    kern = kernel_cls(path, step_size=0.35, adapt=False)
    state = kern.init(x)
    acc = []
    for _ in range(5):
        state, info = kern.step(g, state, beta)
        acc.append(float(info.mean_acceptance))
    assert 0.4 < min(acc) and max(acc) < 0.7, acc
    mean, cov = path.moments(beta)
    z = _z_scores(state.position, mean, cov)
    assert z.abs().max() < 4, z


def test_cached_log_density_matches_path():
    g = torch.Generator().manual_seed(2)
    path = GaussianPath(batch=(3,))
    kern = HMC(path, step_size=0.2, num_leapfrog=3)
    state = kern.init(path.exact(7, 0.3, g))
    for beta in (0.3, 0.3, 0.6):
        state, info = kern.step(g, state, beta)
        assert isinstance(state, HMCKernelState) and isinstance(info, HMCKernelInfo)
        torch.testing.assert_close(state.log_density, path.log_density(state.position, beta))
    assert state.step_size.shape == (3,)
    assert info.acceptance_rate.shape == (7, 3)


@pytest.mark.parametrize("kernel_cls,start", [(HMC, 1e-3), (HMC, 3.0), (MALA, 1e-3), (MALA, 3.0)])
def test_step_size_adapts_to_target_acceptance(kernel_cls, start):
    # 64 chains x 4 batch elements, 200 transitions at fixed beta from a step size far too small
    # or too large; the mean acceptance over the last 100 transitions is within 0.05 of the
    # target (its Monte Carlo sd there is ~0.006: a failure needs an 8-sd excursion).
    g = torch.Generator().manual_seed(3)
    path = GaussianPath(batch=(4,))
    kern = kernel_cls(path, step_size=start, num_leapfrog=3) if kernel_cls is HMC else (
        kernel_cls(path, step_size=start)
    )
    state = kern.init(path.exact(64, 1.0, g))
    accs = []
    for t in range(200):
        state, info = kern.step(g, state, 1.0)
        if t >= 100:
            accs.append(info.mean_acceptance)
    mean_acc = torch.stack(accs).mean(0)
    assert (mean_acc - kern.target_accept).abs().max() < 0.05, (mean_acc, kern.target_accept)


def test_divergent_proposals_are_rejected_not_returned():
    g = torch.Generator().manual_seed(4)

    class Steep(GaussianPath):
        def log_density(self, x, beta):
            return -(x**4).sum(-1) * 1e3

    path = Steep()
    kern = HMC(path, step_size=5.0, adapt=False)
    x0 = torch.full((16, 2), 0.1, dtype=D64)
    state, info = kern.step(g, kern.init(x0), 1.0)
    assert info.divergent.any()
    assert torch.isfinite(state.position).all() and torch.isfinite(state.log_density).all()
    assert torch.equal(state.position[info.divergent], x0[info.divergent])


def test_nan_at_current_state_names_the_temperature():
    class Broken(GaussianPath):
        def log_density(self, x, beta):
            return super().log_density(x, beta) * (torch.nan if beta > 0.5 else 1.0)

    path = Broken()
    kern = MALA(path)
    state, _ = kern.step(None, kern.init(torch.zeros(4, 2, dtype=D64)), 0.25)
    with pytest.raises(FloatingPointError, match=r"beta=0\.75"):
        kern.step(None, state, 0.75)


def test_bad_arguments():
    path = GaussianPath()
    with pytest.raises(ValueError, match="step_size"):
        HMC(path, step_size=0.0)
    with pytest.raises(TypeError, match="num_leapfrog"):
        HMC(path, num_leapfrog=2.5)
    with pytest.raises(ValueError, match="target_accept"):
        MALA(path, target_accept=1.0)
    with pytest.raises(TypeError, match="path"):
        HMC(object())
    with pytest.raises(TypeError, match="x must be"):
        HMC(path).init(torch.zeros(3, dtype=torch.int64))


def test_hmc_anneals_a_gaussian_bernoulli_rbm_to_its_exact_log_z():
    # The GB-RBM's visible units are continuous: AIS on its scaled-weight path with HMC moves
    # instead of block Gibbs. Exact log Z by summing the 2^4 hidden states (the visibles
    # integrate in closed form). 200 chains, 200 temperatures: |error| < 4 reported stderr
    # (+0.01 for the AIS bias), failure rate ~6e-5 if the stderr is right.
    from pyrogen.distributions.boltzmann import GaussianBernoulliRBMPath
    from pyrogen.infer.annealing import ais

    g = torch.Generator().manual_seed(7)
    nv, nh = 3, 4
    W = torch.randn(nv, nh, generator=g, dtype=D64)
    b = torch.randn(nv, generator=g, dtype=D64)
    c = torch.randn(nh, generator=g, dtype=D64)
    sigma = torch.full((nv,), 0.8, dtype=D64)
    path = GaussianBernoulliRBMPath(W, b, c, sigma)
    h = torch.tensor([[(i >> j) & 1 for j in range(nh)] for i in range(2**nh)], dtype=D64)
    m = h @ W.T
    var = sigma**2
    per_h = h @ c + (((b + m) ** 2 - b**2) / (2 * var)).sum(-1)
    log_z = torch.logsumexp(per_h, 0) + 0.5 * torch.log(2 * math.pi * var).sum()
    res = ais(path, 200, 200, kernel=HMC(path, step_size=0.3, num_leapfrog=5), seed=0)
    err = float(res.log_z - log_z)
    assert abs(err) < 4 * float(res.log_z_stderr) + 0.01, (err, float(res.log_z_stderr))


def test_fixed_per_element_step_sizes():
    path = GaussianPath(batch=(3,))
    eps = torch.tensor([0.05, 0.1, 0.2], dtype=D64)
    kern = HMC(path, step_size=eps, num_leapfrog=2, adapt=False)
    state = kern.init(path.exact(5, 0.5, torch.Generator().manual_seed(0)))
    state, info = kern.step(None, state, 0.5)
    torch.testing.assert_close(info.step_size, eps)
    torch.testing.assert_close(state.step_size, eps)
    with pytest.raises(ValueError, match="step_size"):
        HMC(path, step_size=torch.tensor([0.1, -1.0]))
