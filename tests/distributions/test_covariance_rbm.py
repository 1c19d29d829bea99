"""Models of conditional covariance (mcRBM, mPoT, ssRBM; book §20.5.2) on tiny models.

Against brute force: each free energy equals the joint energy summed over the binary hidden
units and integrated over the continuous ones (scipy quadrature); exact log Z (enumeration of
the binary hidden states, Gaussian integrals over x) equals trapezoidal quadrature over x;
AIS (Gibbs and HMC transitions) agrees with it within 4 standard errors; every sampler passes
``pyro.distributions.testing.gof`` against the normalized density. Float64, fixed seeds: the
tests are deterministic; with fresh seeds each statistical check would fail with probability
below ``TEST_FAILURE_RATE`` (gof) or about 1e-4 (4 standard errors).
"""

from __future__ import annotations

import math

import pytest
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit
from scipy import integrate

from pyrogen.distributions import MeanCovarianceRBM, MeanProductStudentT, SpikeSlabRBM
from pyrogen.distributions.energy import enumerate_binary_states
from pyrogen.infer.annealing import HMC, ais
from pyrogen.normalizers import AIS, PCD, Exact

TEST_FAILURE_RATE = 1e-3
D64 = torch.float64


def _g(seed):
    return torch.Generator().manual_seed(seed)


def make_mcrbm(d=2, j=2, k=2, seed=0, **kw):
    g = _g(seed)
    return MeanCovarianceRBM(
        torch.randn(d, j, generator=g, dtype=D64), torch.randn(j, generator=g, dtype=D64),
        torch.randn(d, k, generator=g, dtype=D64), torch.randn(k, generator=g, dtype=D64),
        0.3 * torch.randn(d, generator=g, dtype=D64), **kw)


def make_mpot(d=2, j=2, k=2, seed=0, **kw):
    g = _g(seed)
    return MeanProductStudentT(
        torch.randn(d, j, generator=g, dtype=D64), torch.randn(j, generator=g, dtype=D64),
        torch.randn(d, k, generator=g, dtype=D64), torch.rand(k, generator=g, dtype=D64) + 0.5,
        0.3 * torch.randn(d, generator=g, dtype=D64), **kw)


def make_ssrbm(d=2, n=3, seed=0, **kw):
    g = _g(seed)
    return SpikeSlabRBM(
        0.5 * torch.randn(d, n, generator=g, dtype=D64), torch.randn(n, generator=g, dtype=D64),
        torch.rand(n, generator=g, dtype=D64) + 1.0, torch.randn(n, generator=g, dtype=D64),
        torch.rand(d, generator=g, dtype=D64) + 1.0, torch.rand(d, n, generator=g, dtype=D64),
        0.3 * torch.randn(d, generator=g, dtype=D64), **kw)


MAKERS = {"mcrbm": make_mcrbm, "mpot": make_mpot, "ssrbm": make_ssrbm}


# ------------------------------------------------------------------ free energies
def test_mcrbm_free_energy_is_the_sum_over_hidden_states():
    d = make_mcrbm()
    x = torch.randn(7, 2, generator=_g(1), dtype=D64)
    h = enumerate_binary_states(4, dtype=D64)
    brute = -torch.logsumexp(-d.energy(x[:, None], h[:, :2], h[:, 2:]), 1)
    torch.testing.assert_close(d.free_energy(x), brute, rtol=0, atol=1e-12)


def test_mpot_free_energy_is_the_sum_and_integral_over_hidden_units():
    d = make_mpot()
    x = torch.randn(4, 2, generator=_g(1), dtype=D64)
    hm_states = enumerate_binary_states(2, dtype=D64)
    for xi in x:
        q = xi @ d.cov_weight
        # mean units: sum; covariance units: one-dimensional integrals (the energy separates)
        ones = torch.ones(2, dtype=D64)
        e_mean = torch.stack([d.energy(xi, hm, ones) for hm in hm_states])
        e_mean = e_mean - (1 + 0.5 * q**2).sum()  # remove the h_c = 1 covariance terms
        log_cov = 0.0
        for k in range(2):
            g, u = float(d.gamma[k]), float(1 + 0.5 * q[k] ** 2)
            val, _ = integrate.quad(lambda t, g=g, u=u: t ** (g - 1) * math.exp(-t * u),
                                    0, math.inf, epsabs=0, epsrel=1e-12)
            log_cov += math.log(val)
        brute = -(torch.logsumexp(-e_mean, 0) + log_cov)
        assert abs(float(d.free_energy(xi)) - float(brute)) < 1e-9


def test_ssrbm_free_energy_is_the_sum_and_integral_over_spikes_and_slabs():
    d = make_ssrbm()
    x = torch.randn(3, 2, generator=_g(1), dtype=D64)
    hs = enumerate_binary_states(3, dtype=D64)
    t = torch.linspace(-40, 40, 40001, dtype=D64)  # trapezoid: the slab integrands are Gaussian
    lw = math.log(float(t[1] - t[0]))
    for xi in x:
        terms = []
        for h in hs:
            base = d.energy(xi, torch.zeros(3, dtype=D64), h)
            log_slabs = 0.0
            for i in range(3):  # the energy separates over the slabs given x and h
                s = torch.zeros(t.shape[0], 3, dtype=D64)
                s[:, i] = t
                log_slabs += torch.logsumexp(-(d.energy(xi, s, h) - base), 0) + lw
            terms.append(-base + log_slabs)
        brute = -torch.logsumexp(torch.stack(terms), 0)
        assert abs(float(d.free_energy(xi)) - float(brute)) < 1e-9


# ------------------------------------------------------------------ log Z
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("name", ["mcrbm", "ssrbm"])
def test_exact_log_z_equals_quadrature(name, dim):
    d = MAKERS[name](d=dim)
    exact = Exact()(d)
    assert exact.kind == "exact"
    quad = d.quadrature_log_z(bound=12.0, num_points=1201 if dim == 2 else 4001)
    assert abs(float(exact.log_z) - float(quad)) < 1e-7


def test_exact_log_z_gradient_is_autograd_of_the_enumeration():
    g = _g(3)
    R = torch.randn(2, 2, generator=g, dtype=D64, requires_grad=True)

    def log_z(R):
        return MeanCovarianceRBM(torch.ones(2, 1, dtype=D64), torch.zeros(1, dtype=D64), R,
                                 torch.ones(2, dtype=D64)).enumerate_log_z()

    assert torch.autograd.gradcheck(log_z, (R,))


@pytest.mark.parametrize("name", ["mcrbm", "mpot", "ssrbm"])
def test_path_ends(name):
    """log f_1 is the unnormalized target; log Z_0 is the integral of f_0 (quadrature)."""
    d = MAKERS[name]()
    path = d.annealing_path()
    x = torch.randn(5, 2, generator=_g(2), dtype=D64)
    torch.testing.assert_close(path.log_density(x, 1.0), d.unnormalized_log_prob(x))
    t = torch.linspace(-12, 12, 1201, dtype=D64)
    g1, g2 = torch.meshgrid(t, t, indexing="ij")
    pts = torch.stack([g1.reshape(-1), g2.reshape(-1)], -1)
    step = float(t[1] - t[0])
    quad0 = torch.logsumexp(path.log_density(pts, 0.0), 0) + 2 * math.log(step)
    assert abs(float(quad0) - float(path.log_z0)) < 1e-6


@pytest.mark.parametrize(
    "kernel", ["gibbs", pytest.param("hmc", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", ["mcrbm", "mpot", "ssrbm"])
def test_ais_agrees_with_quadrature_within_its_standard_error(name, kernel):
    torch.manual_seed(0)  # the Gamma draws of the mPoT path use the global RNG
    d = MAKERS[name]()
    truth = float(d.quadrature_log_z(bound=12.0, num_points=1201))
    path = d.annealing_path()
    k = HMC(path, step_size=0.3, num_leapfrog=5) if kernel == "hmc" else None
    res = ais(path, 300, 100, kernel=k, seed=1)
    err = abs(float(res.log_z) - truth)
    assert err < 4 * float(res.log_z_stderr) + 0.02, (err, float(res.log_z_stderr))


def test_ais_with_hmc_transitions_mcrbm():
    """The issue's combination: the mcRBM's log Z by AIS with the engine's HMC kernel."""
    d = make_mcrbm()
    truth = float(d.enumerate_log_z())
    path = d.annealing_path()
    res = ais(path, 150, 64, kernel=HMC(path, step_size=0.4, num_leapfrog=3), seed=3)
    err = abs(float(res.log_z) - truth)
    assert err < 4 * float(res.log_z_stderr) + 0.02, (err, float(res.log_z_stderr))


def test_ais_normalizer_labels_its_estimate():
    d = make_ssrbm(normalizer=AIS(num_chains=50, num_betas=100, seed=0))
    x = torch.zeros(3, 2, dtype=D64)
    lp = d.log_prob(x)
    assert lp.shape == (3,)
    assert d.last_log_z.kind == "ais_estimate" and d.last_log_z.stderr is not None


# ------------------------------------------------------------------ samplers
def _density(d, x):
    log_z = d.quadrature_log_z(bound=12.0, num_points=1201)
    return torch.exp(d.unnormalized_log_prob(x) - log_z)


@pytest.mark.parametrize("name", ["mcrbm", "ssrbm"])
def test_exact_sampler_passes_gof(name):
    torch.manual_seed(0)
    d = MAKERS[name]()
    x = d.sample((4000,))
    assert x.shape == (4000, 2)
    assert auto_goodness_of_fit(x, _density(d, x)) > TEST_FAILURE_RATE


@pytest.mark.parametrize("name", ["mcrbm", "mpot", "ssrbm"])
def test_block_gibbs_passes_gof(name):
    torch.manual_seed(1)
    d = MAKERS[name]()
    x = d.transition(d.init_chains(3000), num_steps=60)  # one draw per independent chain
    assert auto_goodness_of_fit(x, _density(d, x)) > TEST_FAILURE_RATE


@pytest.mark.slow
def test_hmc_kernel_passes_gof_for_the_mcrbm():
    """The mcRBM's visible conditional by HMC on the free energy (the engine's kernel)."""
    torch.manual_seed(2)
    holder = []

    def kernel(x, num_steps):
        hmc = HMC(holder[0].annealing_path(), step_size=0.3, num_leapfrog=8, adapt=False)
        state = hmc.init(x)
        for _ in range(num_steps):
            state, _ = hmc.step(None, state, 1.0)
        return state.position

    d = make_mcrbm(kernel=kernel, mcmc_steps=60)
    holder.append(d)
    d._enum_units = 99  # force the MCMC branch of sample()
    x = d.sample((3000,))
    assert auto_goodness_of_fit(x, _density(d, x)) > TEST_FAILURE_RATE


def test_pcd_gradient_trick_gives_gradients():
    g = _g(4)
    W = (0.3 * torch.randn(2, 3, generator=g, dtype=D64)).requires_grad_(True)
    d = SpikeSlabRBM(W, torch.zeros(3, dtype=D64), torch.ones(3, dtype=D64),
                     torch.zeros(3, dtype=D64), 2 * torch.ones(2, dtype=D64),
                     torch.ones(2, 3, dtype=D64), normalizer=PCD(num_chains=10))
    d.log_prob(torch.randn(5, 2, generator=g, dtype=D64)).sum().backward()
    assert W.grad is not None and torch.isfinite(W.grad).all()


# ------------------------------------------------------------------ bad input
def test_bad_shapes_raise_naming_the_argument():
    w, b = torch.zeros(3, 2, dtype=D64), torch.zeros(2, dtype=D64)
    with pytest.raises(ValueError, match="cov_weight"):
        MeanCovarianceRBM(w, b, torch.zeros(4, 2, dtype=D64), b)
    with pytest.raises(ValueError, match="cov_bias"):
        MeanCovarianceRBM(w, b, w, torch.zeros(3, dtype=D64))
    with pytest.raises(ValueError, match="mean_weight"):
        MeanCovarianceRBM(torch.zeros(2, 3, 2, dtype=D64), b, w, b)
    with pytest.raises(ValueError, match="gamma"):
        MeanProductStudentT(w, b, w, torch.ones(3, dtype=D64))
    with pytest.raises(ValueError, match="phi"):
        SpikeSlabRBM(w, b, b + 1, b, torch.ones(3, dtype=D64), torch.ones(2, 3, dtype=D64))
    with pytest.raises(ValueError, match="visible_precision"):
        SpikeSlabRBM(w, b, b + 1, b, torch.ones(2, dtype=D64), torch.ones(3, 2, dtype=D64))
    with pytest.raises(TypeError, match="cov_weight"):
        MeanCovarianceRBM(w, b, torch.zeros(3, 2), b)


def test_non_positive_precisions_raise():
    w, b = torch.zeros(3, 2, dtype=D64), torch.zeros(2, dtype=D64)
    one3, phi = torch.ones(3, dtype=D64), torch.ones(3, 2, dtype=D64)
    with pytest.raises(ValueError, match="gamma must be positive"):
        MeanProductStudentT(w, b, w, torch.tensor([1.0, 0.0], dtype=D64))
    with pytest.raises(ValueError, match="slab_precision must be positive"):
        SpikeSlabRBM(w, b, torch.tensor([1.0, -1.0], dtype=D64), b, one3, phi)
    with pytest.raises(ValueError, match="visible_precision must be positive"):
        SpikeSlabRBM(w, b, b + 1, b, torch.tensor([1.0, 0.0, 1.0], dtype=D64), phi)
    with pytest.raises(ValueError, match="phi must be non-negative"):
        SpikeSlabRBM(w, b, b + 1, b, one3, -phi)


def test_non_normalizable_ssrbm_is_refused():
    big = 3 * torch.ones(2, 1, dtype=D64)  # W W^T / alpha = 9 per entry > Lambda + Phi
    args = (big, torch.zeros(1, dtype=D64), torch.ones(1, dtype=D64), torch.zeros(1, dtype=D64),
            torch.ones(2, dtype=D64), torch.zeros(2, 1, dtype=D64))
    with pytest.raises(ValueError, match="positive definite"):
        SpikeSlabRBM(*args, validate_args=True)
    d = SpikeSlabRBM(*args, validate_args=False)
    with pytest.raises(ValueError, match="not normalizable"):
        Exact()(d)


def test_mpot_has_no_exact_log_z_and_quadrature_is_limited():
    d = make_mpot()
    with pytest.raises(TypeError, match="AIS"):
        d.log_prob(torch.zeros(1, 2, dtype=D64))
    with pytest.raises(ValueError, match="n_visible"):
        make_mcrbm(d=3).quadrature_log_z()
    with pytest.raises(TypeError, match="dtype"):
        make_mcrbm().log_prob(torch.zeros(1, 2, dtype=torch.float32))


def test_gamma_draws_follow_the_generator_and_the_gamma_law():
    """The mPoT path's Gamma draws come from the run's generator (same seed, same draws) and
    have the Gamma law: KS test against scipy at several shapes (alpha < 1 included), float64,
    fixed seed (deterministic; with fresh seeds each check fails with probability ~1e-3)."""
    from scipy import stats

    from pyrogen._random import ChainRNG
    from pyrogen.distributions.covariance_rbm import _gamma_draw

    for alpha, rate in ((0.3, 1.0), (1.0, 2.0), (4.5, 0.5)):
        shape = torch.tensor([alpha], dtype=torch.float64)
        r = torch.full((20000, 1), rate, dtype=torch.float64)
        x1 = _gamma_draw(shape, r, _g(3))
        x2 = _gamma_draw(shape, r, _g(3))
        assert torch.equal(x1, x2)
        assert not torch.equal(x1, _gamma_draw(shape, r, _g(4)))
        p = stats.kstest(x1.squeeze(-1).numpy(), stats.gamma(alpha, scale=1 / rate).cdf).pvalue
        assert p > 1e-3, (alpha, rate, p)
    # chain blocks: chains 64.. drawn alone equal the same chains drawn with the first block
    shape = torch.tensor([2.0, 0.7], dtype=torch.float64)
    r = torch.ones(128, 2, dtype=torch.float64)
    full = _gamma_draw(shape, r, ChainRNG(5, 128, block_size=64))
    tail = _gamma_draw(shape, r[64:], ChainRNG(5, 64, block_size=64, first_block=1))
    assert torch.equal(full[64:], tail)
