"""Slow feature analysis: closed form, the noiseless generative model and probabilistic SFA.

Everything is float64 with fixed seeds; the data are deterministic functions of the seed, so the
tests are deterministic (their "failure rate" is 0 for the seeds used; the margins quoted in the
comments say how far the measured values are from the thresholds).
"""

import math

import numpy as np
import pyro
import pyro.infer
import pytest
import scipy.linalg
import torch

from pyrogen import ConvergenceWarning
from pyrogen.models import ProbabilisticSFA, SlowFeatureAnalysis
from pyrogen.models.sfa import (
    SlowFeatureSequence,
    _set_param,
    quadratic_expansion,
    sinusoid_mixture,
)

F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for this module (restored after it).

    The PSFA fits are many small tensor ops; on the shared 2-core machine two threads made each
    SVI step 10-15x slower (measured 4.0 s vs 0.27 s per step at load 14).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _corr(a, b):
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def _cancorr(a, b):
    """Canonical correlations between the column spans of a and b (centred)."""
    qa = torch.linalg.qr(a - a.mean(0))[0]
    qb = torch.linalg.qr(b - b.mean(0))[0]
    return torch.linalg.svdvals(qa.T @ qb)


def _toeplitz_lam(lam, t):
    """(T, T, K) array lam_k^|t-s|."""
    idx = torch.arange(t)
    lag = (idx[:, None] - idx[None, :]).abs().to(lam.dtype)
    return lam ** lag[..., None]


def _psfa_dense_cov(weight, lam, noise_var, t):
    d = weight.shape[0]
    ar = _toeplitz_lam(lam, t)  # (T, T, K)
    blocks = torch.einsum("dk,tsk,ek->tdse", weight, ar, weight)
    cov = blocks.reshape(t * d, t * d)
    return cov + torch.diag(noise_var.expand(d).repeat(t))


def _dense_step_logp(x, mean, cov):
    """log p(x_t | x_<t) from a dense MVN over the stacked sequence (prefix differences)."""
    t, d = x.shape
    flat = x.reshape(-1)
    mu = mean.repeat(t)
    prefix = [0.0]
    for k in range(1, t + 1):
        n = k * d
        mvn = torch.distributions.MultivariateNormal(mu[:n], covariance_matrix=cov[:n, :n])
        prefix.append(float(mvn.log_prob(flat[:n])))
    return torch.tensor(np.diff(prefix), dtype=F64)


def _small_psfa(d=3, k=2, noise="isotropic", noise_scale=None, seed=0):
    torch.manual_seed(seed)
    m = ProbabilisticSFA(d, k, noise=noise, noise_scale=noise_scale).double()
    _set_param(m, "lam", torch.linspace(0.9, 0.3, k, dtype=F64))
    _set_param(m, "loc", torch.linspace(-0.5, 0.5, d, dtype=F64))
    if noise_scale is None:
        size = 1 if noise == "isotropic" else d
        _set_param(m, "noise_scale", torch.linspace(0.3, 0.6, size, dtype=F64))
    return m


# ------------------------------------------------------------------------------ closed form
def test_slowest_feature_recovers_slowest_source():
    x, s = sinusoid_mixture(500, 4, seed=0)
    sfa = SlowFeatureAnalysis(4, n_components=3).double()
    hist = sfa.fit(x)
    y = sfa.transform(x)
    assert y.shape == (500, 3)
    # measured |corr| = 0.996, 0.995, 0.996 (seed 0)
    for k in range(3):
        assert abs(_corr(y[:, k], s[:, k])) > 0.99
    # slowness values reported, ascending, and the fit's loss is the SFA objective
    delta = sfa.slowness_
    assert delta.shape == (4,) and torch.all(delta[1:] >= delta[:-1]) and delta[0] > 0
    assert hist.losses == [pytest.approx(float(delta[:3].sum()))]
    # the slow sinusoid's slowness is near 2(1 - cos w) of a noiseless unit-variance sinusoid,
    # plus what the noise adds; the white-noise direction is near 2.
    assert delta[0] < 0.02 and delta[-1] > 1.5


def test_constraints_and_objective_hold_exactly():
    x, _ = sinusoid_mixture(300, 4, seed=1)
    sfa = SlowFeatureAnalysis(4).double()
    sfa.fit(x)
    y = sfa.transform(x)
    torch.testing.assert_close(y.mean(0), torch.zeros(4, dtype=F64), atol=1e-10, rtol=0)
    torch.testing.assert_close(y.T @ y / 300, torch.eye(4, dtype=F64), atol=1e-10, rtol=0)
    dy = y[1:] - y[:-1]
    torch.testing.assert_close(dy.T @ dy / 299, torch.diag(sfa.slowness_), atol=1e-10, rtol=0)


def test_slowness_equals_scipy_generalized_eigenvalues_on_several_sequences():
    """Several sequences: pooled covariance, differences only within sequences (scipy eigh)."""
    x, _ = sinusoid_mixture(400, 4, seed=2)
    parts = [x[:150], x[150:230], x[230:]]
    sfa = SlowFeatureAnalysis(4).double()
    sfa.fit(parts)
    xc = (x - x.mean(0)).numpy()
    cov = xc.T @ xc / 400
    d = np.concatenate([np.diff(p.numpy(), axis=0) for p in parts])
    dcov = d.T @ d / d.shape[0]
    evals = scipy.linalg.eigh(dcov, cov, eigvals_only=True)
    np.testing.assert_allclose(sfa.slowness_.numpy(), evals, rtol=1e-9)
    # and it differs from treating the concatenation as one sequence (the 2 boundary jumps)
    whole = SlowFeatureAnalysis(4).double()
    whole.fit(x)
    assert not torch.allclose(whole.slowness_, sfa.slowness_, rtol=1e-6)
    # the (S, T, D) layout equals the list layout
    three = SlowFeatureAnalysis(4).double()
    three.fit(x[:400].reshape(4, 100, 4))
    four = SlowFeatureAnalysis(4).double()
    four.fit(list(x.reshape(4, 100, 4)))
    torch.testing.assert_close(three.slowness_, four.slowness_)
    out = three.transform(x.reshape(4, 100, 4))
    assert out.shape == (4, 100, 4)
    assert isinstance(three.transform(parts), list)


def test_quadratic_expansion_finds_a_slow_amplitude():
    """x = a(t) (cos phi, sin phi) with fast phi: the slow a(t)^2 = x1^2 + x2^2 is quadratic."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(800, dtype=F64) / 800
    amp = 1.5 + torch.sin(2 * math.pi * 2 * t)
    phase = 2 * math.pi * 37 * t + 0.3 * torch.randn(800, generator=g, dtype=F64).cumsum(0)
    x = amp[:, None] * torch.stack([torch.cos(phase), torch.sin(phase)], 1)
    x = x + 0.01 * torch.randn(800, 2, generator=g, dtype=F64)
    quad = SlowFeatureAnalysis(2, n_components=1, expansion="quadratic").double()
    hist = quad.fit(x)
    assert quad.slowness_.shape == (5,)
    assert "log_likelihood" not in hist.metrics
    lin = SlowFeatureAnalysis(2, n_components=1).double()
    lin.fit(x)
    # measured: quadratic |corr| = 0.9999, linear 0.06
    assert abs(_corr(quad.transform(x)[:, 0], amp**2)) > 0.99
    assert abs(_corr(lin.transform(x)[:, 0], amp**2)) < 0.5
    assert quad.slowness_[0] < 0.1 * lin.slowness_[0]


def test_quadratic_expansion_monomials():
    x = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    z = quadratic_expansion(x)
    assert z.tolist() == [[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 6.0, 9.0]]


# ------------------------------------------------------------------------------ noiseless model
def test_sfa_exact_log_likelihood_matches_dense_mvn():
    x, _ = sinusoid_mixture(60, 3, seed=3)
    sfa = SlowFeatureAnalysis(3).double()
    sfa.fit(x)
    xs = x[:5]
    mixing = torch.linalg.inv(sfa.unmixing.detach())
    ar = _toeplitz_lam(sfa.lam.detach(), 5)
    cov = torch.einsum("kd,tsk,ke->tdse", mixing, ar, mixing).reshape(15, 15)
    dense = _dense_step_logp(xs, sfa.loc.detach(), cov)
    ll = sfa.log_likelihood(xs)
    assert ll.kind == "exact" and ll.info["per"] == "step"
    torch.testing.assert_close(ll.values, dense, rtol=1e-9, atol=1e-9)
    seq = sfa.log_likelihood([xs, x[5:9]], per="sequence")
    torch.testing.assert_close(seq.values[0], dense.sum())
    assert seq.shape == (2,)
    # the Pyro model's observation log-density is the same number, for every input layout
    tr = pyro.poutine.trace(sfa.model).get_trace(xs)
    torch.testing.assert_close(tr.log_prob_sum().detach(), dense.sum())
    for layout in (x.reshape(3, 20, 3), [x[:25], x[25:]]):
        tr = pyro.poutine.trace(sfa.model).get_trace(layout)
        total = sfa.log_likelihood(layout).values.sum()
        torch.testing.assert_close(tr.log_prob_sum().detach(), total)


def test_closed_form_is_a_stationary_point_of_the_noiseless_likelihood():
    """Turner & Sahani: SFA (with lambda = 1 - delta/2) maximizes the zero-noise likelihood.

    The gradient of the exact per-step log-likelihood at the closed form is only the O(1/T)
    boundary terms; 1% perturbations of U give gradients > 10x larger (measured: 0.0026 vs
    0.042 for U, 0.0005 vs 1.5 for lambda).
    """
    x, _ = sinusoid_mixture(500, 3, seed=0)
    sfa = SlowFeatureAnalysis(3).double()
    sfa.fit(x)
    u0, lam0, mu0 = (p.detach() for p in (sfa.unmixing, sfa.lam, sfa.loc))

    def grads(u):
        u = u.clone().requires_grad_()
        lam = lam0.clone().requires_grad_()
        lp = SlowFeatureSequence(mu0, u, lam, 500).log_prob(x) / 500
        gu, gl = torch.autograd.grad(lp, [u, lam])
        return float(lp.detach()), float(gu.norm()), float(gl.norm())

    lp0, gu0, gl0 = grads(u0)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        u = u0 + 0.01 * u0.norm() / 3 * torch.randn(3, 3, generator=g, dtype=F64)
        lp, gu, gl = grads(u)
        assert lp < lp0
        assert gu0 < 0.1 * gu and gl0 < 0.1 * gl


def test_sfa_sample_has_the_model_dynamics():
    x, _ = sinusoid_mixture(300, 3, cycles=(20.0, 50.0, 90.0), seed=4)
    sfa = SlowFeatureAnalysis(3).double()
    sfa.fit(x)
    pyro.set_rng_seed(1)
    draw = sfa.sample(20000)
    assert draw.shape == (20000, 3)
    y = sfa.transform(draw)  # the latent AR(1) processes, unit variance, lag-1 corr lambda
    lam = sfa.lam.detach()
    # slowest lambda ~ 0.96: effective sample size n (1 - lam) / (1 + lam) >= 400, so the
    # sample variance has standard error <= 0.07 (tolerance 0.3 > 4 s.e.); the lag-one
    # autocorrelation's is <= 0.002 (tolerance 0.03).
    torch.testing.assert_close(y.var(0), torch.ones(3, dtype=F64), atol=0.3, rtol=0)
    lag1 = ((y[1:] - y.mean(0)) * (y[:-1] - y.mean(0))).mean(0) / y.var(0)
    torch.testing.assert_close(lag1, lam, atol=0.03, rtol=0)


# ------------------------------------------------------------------------------ probabilistic
@pytest.mark.parametrize("noise", ["isotropic", "diagonal"])
def test_psfa_exact_log_likelihood_matches_dense_mvn(noise):
    m = _small_psfa(3, 2, noise=noise)
    x = m.sample(5)
    ll = m.log_likelihood(x)
    assert ll.kind == "exact" and ll.shape == (5,)
    nv = m.noise_scale.detach() ** 2
    cov = _psfa_dense_cov(m.weight.detach(), m.lam.detach(), nv, 5)
    dense = _dense_step_logp(x, m.loc.detach(), cov)
    torch.testing.assert_close(ll.values, dense, rtol=1e-9, atol=1e-9)
    # and equals the Pyro model (GaussianHMM) on the whole sequence
    tr = pyro.poutine.trace(m.model).get_trace(x)
    torch.testing.assert_close(tr.log_prob_sum().detach(), dense.sum())


def test_psfa_kalman_filter_matches_gaussian_hmm_on_a_long_sequence():
    """Long enough for the Riccati recursion to reach its steady state (then reused)."""
    m = _small_psfa(3, 2)
    x = m.sample(400)
    ll = m.log_likelihood(x).values.sum()
    torch.testing.assert_close(ll, m.hmm(duration=400).log_prob(x).detach(), rtol=1e-10, atol=0)


def test_psfa_transform_is_the_dense_posterior_mean():
    m = _small_psfa(3, 2)
    x = m.sample(6)
    lam, w = m.lam.detach(), m.weight.detach()
    nv = m.noise_scale.detach() ** 2
    cov_x = _psfa_dense_cov(w, lam, nv, 6)
    ar = _toeplitz_lam(lam, 6)  # Cov(h_t, h_s) = diag(lam^|t-s|)
    cov_hx = torch.einsum("tsk,dk->tksd", ar, w).reshape(12, 18)
    resid = (x - m.loc.detach()).reshape(-1)
    post = (cov_hx @ torch.linalg.solve(cov_x, resid)).reshape(6, 2)
    order = torch.argsort(lam, descending=True)
    torch.testing.assert_close(m.transform(x), post[:, order], rtol=1e-8, atol=1e-10)


def test_psfa_several_sequences():
    m = _small_psfa(3, 2)
    a, b, c = m.sample(7), m.sample(4), m.sample(7)
    one = [m.log_likelihood(s).values for s in (a, b, c)]
    ragged = m.log_likelihood([a, b, c])
    torch.testing.assert_close(ragged.values, torch.cat(one))
    per_seq = m.log_likelihood([a, b, c], per="sequence")
    torch.testing.assert_close(per_seq.values, torch.stack([v.sum() for v in one]))
    stacked = m.log_likelihood(torch.stack([a, c]), per="sequence")
    torch.testing.assert_close(stacked.values, per_seq.values[[0, 2]])
    # the Pyro model over a ragged list: one site per sequence, same total
    tr = pyro.poutine.trace(m.model).get_trace([a, b, c])
    assert {"x_0", "x_1", "x_2"} <= set(tr.nodes)
    torch.testing.assert_close(tr.log_prob_sum().detach(), per_seq.values.sum())
    out = m.transform([a, b])
    assert [o.shape for o in out] == [(7, 2), (4, 2)]
    # fitting on several sequences (ragged, and (S, T, D) with minibatches of sequences)
    with pytest.warns(ConvergenceWarning):
        h = m.fit([a, b, c], num_steps=3, progress=False, seed=0)
    assert len(h.losses) == 3 and all(math.isfinite(v) for v in h.losses)
    with pytest.warns(ConvergenceWarning):
        h = m.fit(torch.stack([a, c]), num_steps=3, batch_size=1, progress=False, seed=0)
    assert len(h.losses) == 3


def test_psfa_sample_statistics():
    m = _small_psfa(3, 2)
    _set_param(m, "lam", torch.tensor([0.8, 0.5], dtype=F64))
    pyro.set_rng_seed(2)
    x = m.sample(20000)
    w, lam = m.weight.detach(), m.lam.detach()
    nv = m.noise_scale.detach() ** 2
    xc = x - x.mean(0)
    cov0 = xc.T @ xc / 20000
    cov1 = xc[1:].T @ xc[:-1] / 19999
    # effective n >= 20000 * 0.2 / 1.8 ~ 2200: standard errors <= 0.03 at these scales; the
    # tolerance 0.1 is > 3 standard errors.
    torch.testing.assert_close(cov0, w @ w.T + torch.diag(nv.expand(3)), atol=0.1, rtol=0)
    torch.testing.assert_close(cov1, w @ torch.diag(lam) @ w.T, atol=0.1, rtol=0)
    torch.testing.assert_close(x.mean(0), m.loc.detach(), atol=0.1, rtol=0)


def test_psfa_recovers_slowest_source():
    x, s = sinusoid_mixture(400, 4, seed=0)
    m = ProbabilisticSFA(4, 3).double()
    # starts from closed-form SFA (the default init); the slow test below starts at random
    with pytest.warns(ConvergenceWarning):
        hist = m.fit(x, num_steps=10, progress=False, seed=0)
    assert hist.losses[-1] < hist.losses[0]
    z = m.transform(x)
    # measured |corr| 0.999 (slowest)
    assert abs(_corr(z[:, 0], s[:, 0])) > 0.99
    assert torch.all(m.slowness_[1:] >= m.slowness_[:-1])


def test_psfa_tends_to_the_sfa_likelihood_as_noise_vanishes():
    """PSFA (K = D) at the SFA parameters: its exact log-likelihood -> the noiseless SFA one.

    The gap shrinks like sigma^2 (measured max over steps: 0.15, 1.6e-3, 1.6e-5, 1.6e-7 nats at
    sigma = 1e-2 ... 1e-5; posterior means within 8e-9 of the SFA features at 1e-5).
    """
    x, _ = sinusoid_mixture(300, 3, seed=0)
    sfa = SlowFeatureAnalysis(3).double()
    sfa.fit(x)
    target = sfa.log_likelihood(x).values
    gaps = []
    for sigma in (1e-2, 1e-3, 1e-4, 1e-5):
        p = ProbabilisticSFA(3, 3, noise_scale=sigma).double()
        _set_param(p, "weight", torch.linalg.inv(sfa.unmixing.detach()).T)
        _set_param(p, "loc", sfa.loc.detach())
        _set_param(p, "lam", sfa.lam.detach())
        gaps.append(float((p.log_likelihood(x).values - target).abs().max()))
        # the posterior means of h are the SFA features in this limit
        if sigma == 1e-5:
            torch.testing.assert_close(p.transform(x), sfa.transform(x), atol=1e-6, rtol=0)
    assert all(b < 0.05 * a for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-5


@pytest.mark.slow
def test_psfa_fitted_from_random_init_agrees_with_sfa():
    """Maximum likelihood from a random start (noise fixed small, K = D) finds SFA's features.

    Nested slow subspaces agree (canonical correlations), each latent matches the SFA feature
    of the same rank (ordering by lambda = ordering by delta), slowness values are close and the
    fitted exact log-likelihood is within 1e-3 nats/step of the SFA model's. Measured (300
    steps): matched |corr| 0.997, 0.986, 0.99995; 2-d slow subspace cancorr >= 0.99997;
    slowness 0.0135, 0.0288, 0.1675 vs SFA 0.0114, 0.0258, 0.1645; log-lik 1.59019 vs 1.59010.
    """
    x, _ = sinusoid_mixture(500, 3, seed=0)
    sfa = SlowFeatureAnalysis(3).double()
    sfa.fit(x)
    y = sfa.transform(x)
    m = ProbabilisticSFA(3, 3, noise_scale=1e-3, seed=1).double()
    hist = m.fit(x, num_steps=300, lr=0.1, init="current", progress=False, seed=1)
    z = m.transform(x)
    for k in range(3):
        assert abs(_corr(y[:, k], z[:, k])) > 0.98
    # the two slowest span the same plane (within it, the likelihood is flat: 0.997 above)
    assert _cancorr(y[:, :2], z[:, :2]).min() > 0.999
    torch.testing.assert_close(m.slowness_, sfa.slowness_, rtol=0.25, atol=0)
    assert abs(-hist.losses[-1] - sfa.log_likelihood(x).mean()) < 1e-3


@pytest.mark.slow
def test_psfa_beats_sfa_when_white_noise_sets_the_slowness_floor():
    """Sources very slow per step + white noise: every SFA feature gets a noise floor
    2 sigma^2 |u|^2 on its slowness, the two slowest collapse (delta 0.0095 vs 0.0107) and SFA
    mixes them (measured |corr| 0.24, 0.21); PSFA models the noise and separates them
    (measured 0.9995, 0.9991 after 150 SVI steps from the SFA start)."""
    x, s = sinusoid_mixture(1000, 4, cycles=(2.3, 11.7, 31.1), noise=0.05, seed=0)
    sfa = SlowFeatureAnalysis(4, n_components=3).double()
    sfa.fit(x)
    y = sfa.transform(x)
    m = ProbabilisticSFA(4, 3).double()
    m.fit(x, num_steps=150, progress=False, seed=0)
    z = m.transform(x)
    assert abs(_corr(y[:, 0], s[:, 0])) < 0.5
    assert sfa.slowness_[1] < 1.2 * sfa.slowness_[0]
    for k in range(2):
        assert abs(_corr(z[:, k], s[:, k])) > 0.99


def test_psfa_svi_loss_is_the_exact_negative_log_likelihood():
    m = _small_psfa(3, 2)
    x = m.sample(20)
    loss = pyro.infer.Trace_ELBO().loss(m.model, m.guide, x)
    assert loss == pytest.approx(-float(m.log_likelihood(x).values.sum()), rel=1e-10)


def test_save_load_keeps_psfa_and_fixed_noise(tmp_path):
    m = _small_psfa(3, 2, noise_scale=0.2)
    x = m.sample(10)
    m.save(tmp_path / "p.pt")
    back = ProbabilisticSFA.load(tmp_path / "p.pt")
    assert back.config["noise_scale"] == 0.2
    torch.testing.assert_close(back.log_likelihood(x).values, m.log_likelihood(x).values)
    q = SlowFeatureAnalysis(2, expansion="quadratic").double()
    q.fit(torch.randn(50, 2, dtype=F64))
    q.save(tmp_path / "q.pt")
    back = SlowFeatureAnalysis.load(tmp_path / "q.pt")
    torch.testing.assert_close(back.slowness_, q.slowness_)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_sfa():
    x, _ = sinusoid_mixture(50, 4, seed=0)
    sfa = SlowFeatureAnalysis(4).double()
    with pytest.raises(ValueError, match="x must have at least 2 time step"):
        sfa.fit(x[:1])
    with pytest.raises(ValueError, match=r"every sequence of x must have at least 2 time step"):
        sfa.fit([x[:10], x[10:11]])
    with pytest.raises(ValueError, match="at least 5 time steps in total"):
        sfa.fit(x[:4])
    with pytest.raises(ValueError, match="at least 10 time steps in total.*expanded"):
        SlowFeatureAnalysis(3, expansion="quadratic").double().fit(x[:8, :3])
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="x must be finite"):
        sfa.fit(bad)
    with pytest.raises(ValueError, match=r"x\[1\] must be finite"):
        sfa.fit([x, bad])
    with pytest.raises(ValueError, match="4 features"):
        sfa.fit(x[:, :3])
    with pytest.raises(ValueError, match=r"x\[0\] must have 4 features"):
        sfa.transform([x[:, :3]])
    with pytest.raises(ValueError, match="shape"):
        sfa.fit(x.reshape(1, 1, 50, 4))
    with pytest.raises(TypeError, match="x must be"):
        sfa.fit([[0.0] * 4] * 10)
    with pytest.raises(TypeError, match="x must be"):
        sfa.fit("data")
    with pytest.raises(ValueError, match="x must be .* Got an empty list"):
        sfa.fit([])
    with pytest.raises(ValueError, match="singular"):
        sfa.fit(torch.cat([x[:, :3], x[:, :1]], 1))
    with pytest.raises(ValueError, match=r"n_components must be an int in the range \[1, 4\]"):
        SlowFeatureAnalysis(4, n_components=5)
    with pytest.raises(ValueError, match="expansion must be one of"):
        SlowFeatureAnalysis(4, expansion="cubic")
    with pytest.raises(ValueError, match="slowness_ is available after fit"):
        _ = SlowFeatureAnalysis(4).slowness_
    with pytest.raises(ValueError, match="per must be one of"):
        sfa.log_likelihood(x, per="token")
    with pytest.raises(ValueError, match="num_steps does not apply to SlowFeatureAnalysis"):
        sfa.fit(x, num_steps=10)
    with pytest.raises(ValueError, match="rtol must be a float"):
        sfa.fit(x, rtol=2.0)
    quad = SlowFeatureAnalysis(2, expansion="quadratic").double()
    for call in (quad.log_likelihood, quad.model):
        with pytest.raises(ValueError, match="needs a density on x"):
            call(x[:, :2])
    with pytest.raises(ValueError, match="needs a density on x"):
        quad.sample(3)


def test_bad_input_psfa():
    x, _ = sinusoid_mixture(50, 4, seed=0)
    m = ProbabilisticSFA(4, 2).double()
    with pytest.raises(ValueError, match="x must have at least 2 time step"):
        m.fit(x[:1], progress=False)
    with pytest.raises(ValueError, match=r"n_components must be an int in the range \[1, 4\]"):
        ProbabilisticSFA(4, 5)
    with pytest.raises(ValueError, match="noise_scale must be a float"):
        ProbabilisticSFA(4, 2, noise_scale=0.0)
    with pytest.raises(ValueError, match="noise must be one of"):
        ProbabilisticSFA(4, 2, noise="full")
    with pytest.raises(ValueError, match="init must be one of"):
        m.fit(x, init="pca", progress=False)
    with pytest.raises(ValueError, match="batch_size needs sequences of one length"):
        m.fit([x, x[:30]], batch_size=1, progress=False)
    with pytest.raises(ValueError, match="x must be finite"):
        m.log_likelihood(torch.full((5, 4), float("inf"), dtype=F64))
    with pytest.raises(ValueError, match="features"):
        m.transform(x[:, :2])
    with pytest.raises(TypeError, match="dtype"):
        m.log_likelihood(x.float())
    with pytest.raises(ValueError, match="num_steps must be"):
        m.fit(x, num_steps=0, progress=False)
    const = x.clone()
    const[:, 2] = 1.0  # a constant feature: SFA cannot whiten, PSFA can still start elsewhere
    with pytest.raises(ValueError, match="init='sfa' needs closed-form SFA.*singular"):
        m.fit(const, num_steps=1, progress=False)
    with pytest.warns(ConvergenceWarning):
        hist = m.fit(const, num_steps=2, init="current", progress=False)
    assert all(math.isfinite(v) for v in hist.losses)
