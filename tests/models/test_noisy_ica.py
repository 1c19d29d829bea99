"""Tests of pyrogen.models.noisy_ica: importance-sampled likelihoods against the exact Gaussian
marginal, fitting, canonicalization symmetries, identifiability warnings, bad input."""


import numpy as np
import pyro
import pyro.distributions as dist
import pyro.infer
import pytest
import torch

from pyrogen import ConvergenceWarning
from pyrogen.models import BayesianNoisyICA, NoisyICA
from pyrogen.models.ica import NonIdentifiableWarning, amari_distance

from ._ica_data import fastica_amari, mixture, one_thread  # noqa: F401 (autouse fixture)


# ---------------------------------------------------------------------- noisy ICA
def _orthogonal_gaussian_noisy(cls, **kw):
    """Noisy ICA with a N(0,1) source, orthogonal-column W and isotropic noise: p(x) is
    N(b, W W^T + s^2 I) and the exact posterior of h is a diagonal Normal, linear in x."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(4, 2, generator=g, dtype=torch.float64))
    w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)
    src = dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)
    m = cls(4, 2, source=src, noise="isotropic", **kw).double()
    b = torch.randn(4, generator=g, dtype=torch.float64)
    s2 = 0.3**2
    with torch.no_grad():
        if cls is NoisyICA:
            m.mixing = w.contiguous()
        else:
            m.mixing_loc = w.contiguous()
            m.mixing_scale = torch.full((4, 2), 1e-12, dtype=torch.float64)
        m.bias = b
        m.noise_scale = torch.tensor([0.3], dtype=torch.float64)
        # exact posterior: cov = (I + W^T W / s2)^-1 (diagonal), mean = cov W^T (x - b) / s2
        cov = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + w.T @ w / s2)
        m.enc_in.weight.copy_(cov @ w.T / s2)
        m.enc_in.bias.zero_()
        sd = torch.diagonal(cov).sqrt()
        m.enc_log_scale = torch.log(torch.expm1(sd - 1e-6))
    marginal = dist.MultivariateNormal(b, w @ w.T + s2 * torch.eye(4, dtype=torch.float64))
    return m, marginal


@pytest.mark.parametrize("cls", [NoisyICA, BayesianNoisyICA])
def test_noisy_is_estimate_exact_with_exact_proposal(cls):
    m, marginal = _orthogonal_gaussian_noisy(cls)
    x = marginal.sample((30,))
    ll = m.log_likelihood(x, num_samples=50, seed=0)
    assert ll.kind == "is_estimate" and ll.bound == "lower"
    # exact proposal: every importance weight equals p(x), so the estimate is exact
    tol = 1e-8 if cls is NoisyICA else 1e-5
    torch.testing.assert_close(ll.values, marginal.log_prob(x), atol=tol, rtol=0)
    assert float(ll.stderr.max()) < tol


def test_noisy_is_estimate_within_stderr_with_inexact_proposal():
    m, marginal = _orthogonal_gaussian_noisy(NoisyICA)
    with torch.no_grad():
        m.enc_log_scale = m.enc_log_scale + 0.5  # wider proposal than the posterior
        m.enc_in.bias.fill_(0.2)  # and shifted
    torch.manual_seed(1)
    x = marginal.sample((40,))
    ll = m.log_likelihood(x, num_samples=4000, seed=0)
    exact = marginal.log_prob(x)
    z = (ll.values - exact) / ll.stderr
    # per-example z-scores of an asymptotically normal estimator: |z| < 4.5 fails with
    # probability ~ 40 * 7e-6 (plus the O(1/S) log bias, ~1e-3 here); the estimator is noisy
    assert float(ll.stderr.mean()) > 1e-4
    assert float(z.abs().max()) < 4.5
    assert abs(ll.mean() - float(exact.mean())) < 4 * ll.mean_stderr() + 1e-3


def test_noisy_ica_fit_improves_elbo_and_canonicalizes():
    x, a = mixture(15, n=200, kinds=("laplace", "laplace"), d=3)
    m = NoisyICA(3, 2).double()
    with pytest.warns(ConvergenceWarning):
        hist = m.fit(x, num_steps=60, lr=0.03, seed=0, progress=False)
    assert np.mean(hist.losses[-10:]) < np.mean(hist.losses[:10])
    w = m.mixing.detach()
    assert w.norm(dim=0)[0] >= w.norm(dim=0)[1]
    assert (w[w.abs().argmax(0), torch.arange(2)] > 0).all()
    ll = m.log_likelihood(x, num_samples=200, seed=0)
    assert torch.isfinite(ll.values).all() and 0 < ll.mean_stderr() < 0.1


@pytest.mark.parametrize("hidden_dim", [None, 5])
def test_noisy_canonicalization_is_an_exact_symmetry(hidden_dim):
    torch.manual_seed(0)
    m = NoisyICA(4, 3, hidden_dim=hidden_dim).double()
    with torch.no_grad():
        m.mixing = torch.randn(4, 3, dtype=torch.float64)
    x = torch.randn(10, 4, dtype=torch.float64)
    w0, z0 = m.mixing.detach().clone(), m.transform(x)
    m._canonicalize()
    w1, z1 = m.mixing.detach(), m.transform(x)
    # the reconstruction W E[h|x] is unchanged; components are reordered with signs
    torch.testing.assert_close(z1 @ w1.T, z0 @ w0.T)
    assert (w1.norm(dim=0)[:-1] >= w1.norm(dim=0)[1:]).all()


@pytest.mark.parametrize("cls", [NoisyICA, BayesianNoisyICA])
def test_noisy_bad_arguments(cls):
    with pytest.raises(ValueError, match="noise must be one of"):
        cls(3, 2, noise="full")
    with pytest.raises(ValueError, match="n_components must be an int in the range"):
        cls(3, 0)
    with pytest.raises(ValueError, match="hidden_dim must be an int"):
        cls(3, 2, hidden_dim=0)
    m = cls(3, 2).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="num_samples must be an int in the range"):
        m.log_likelihood(x, num_samples=1)


def test_bayesian_prior_and_guide_sites():
    with pytest.raises(ValueError, match="prior_scale must be a float"):
        BayesianNoisyICA(3, 2, prior_scale=0.0)
    m = BayesianNoisyICA(3, 2, prior_scale=0.5).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    tr = pyro.poutine.trace(m.model).get_trace(x)
    gtr = pyro.poutine.trace(m.guide).get_trace(x)
    assert tr.nodes["W"]["fn"].base_dist.scale.max() == 0.5
    assert {"W", "h"} <= set(gtr.stochastic_nodes)
    assert m.config["prior_scale"] == 0.5
    with pytest.warns(ConvergenceWarning):
        hist = m.fit(x, num_steps=3, progress=False, seed=0)
    assert len(hist.losses) == 3
    assert m.sample(5).shape == (5, 3)


@pytest.mark.parametrize("cls", [NoisyICA, BayesianNoisyICA])
def test_noisy_gaussian_sources_warn_not_identifiable(cls):
    # 3 Gaussian sources + noise: any rotation fits as well. Same data and level as the
    # noiseless test (all three Jarque-Bera p-values > 0.02 there); the recovered posterior
    # means are linear in x, so they are Gaussian too.
    x, _ = mixture(12, n=600, kinds=("gaussian",) * 3)
    m = cls(3, 3).double()
    # (5 steps are short: the ConvergenceWarning says so)
    with pytest.warns(ConvergenceWarning), pytest.warns(
        NonIdentifiableWarning, match="indistinguishable from Gaussian"
    ):
        m.fit(x, num_steps=5, seed=0, progress=False)
    assert (m.gaussianity_["p_value"] > 0.01).sum() >= 2
    # no warning when asked not to check (warnings are errors in the test suite)
    with pytest.warns(ConvergenceWarning):  # and only that one
        cls(3, 3).double().fit(x, num_steps=5, seed=0, progress=False,
                               check_identifiability=False)
    with pytest.raises(TypeError, match="check_identifiability must be a bool"):
        cls(3, 3).double().fit(x, num_steps=1, progress=False, check_identifiability=1)
    with pytest.raises(ValueError, match="alpha must be a float in the range"):
        cls(3, 3).double().fit(x, num_steps=1, progress=False, alpha=1.5)


def test_noisy_non_gaussian_sources_do_not_warn():
    x, _ = mixture(15, n=300, kinds=("laplace", "uniform"), d=3)
    m = NoisyICA(3, 2).double()
    with pytest.warns(ConvergenceWarning):  # any other warning would be an error here
        m.fit(x, num_steps=5, seed=0, progress=False)
    assert (m.gaussianity_["p_value"] < 0.01).all()


@pytest.mark.slow
def test_noisy_ica_recovers_mixing():
    x, a = mixture(16, n=1000, kinds=("laplace", "laplace", "laplace"), d=5)
    x = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64)
    for cls in (NoisyICA, BayesianNoisyICA):
        pyro.clear_param_store()
        m = cls(5, 3).double()
        m.fit(x, num_steps=1500, lr=0.02, seed=0, progress=False)
        d = amari_distance(torch.linalg.pinv(m._mixing_value().detach()), a)
        print(cls.__name__, "Amari", d, "FastICA", fastica_amari(x, a, 0))
        assert d < 0.2
