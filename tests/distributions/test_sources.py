"""Tests of pyrogen.distributions.sources: GeneralizedNormal against scipy (density, variance,
sampler goodness of fit, gradients), FactorialSources, the kurtosis-matched shape."""

import math

import numpy as np
import pytest
import scipy.stats
import torch
from pyro.distributions.testing.gof import auto_goodness_of_fit

from pyrogen.distributions.sources import (
    FactorialSources,
    GeneralizedNormal,
    gennorm_shape_from_kurtosis,
)

TEST_FAILURE_RATE = 1e-3  # for the goodness-of-fit tests (fixed seeds, so deterministic)


# ---------------------------------------------------------------------- GeneralizedNormal
@pytest.mark.parametrize("beta", [1.0, 1.5, 2.0, 4.0, 9.0])
def test_gennorm_log_prob_matches_scipy_and_unit_variance(beta):
    d = GeneralizedNormal(torch.tensor(0.3, dtype=torch.float64), 2.0, beta)
    x = torch.linspace(-6, 6, 41, dtype=torch.float64)
    alpha = 2.0 * math.sqrt(math.gamma(1 / beta) / math.gamma(3 / beta))
    ref = scipy.stats.gennorm(beta, loc=0.3, scale=alpha).logpdf(x.numpy())
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref, rtol=1e-10, atol=1e-12)
    var = scipy.stats.gennorm(beta, scale=alpha).var()
    assert abs(var - 4.0) < 1e-8


@pytest.mark.parametrize("beta", [1.0, 1.7, 6.0])
def test_gennorm_sampler_goodness_of_fit(beta):
    torch.manual_seed(0)
    d = GeneralizedNormal(torch.tensor(0.0, dtype=torch.float64), 1.0, beta)
    x = d.sample((5000,))
    assert auto_goodness_of_fit(x, d.log_prob(x).exp()) > TEST_FAILURE_RATE
    assert d.expand((3,)).sample((2,)).shape == (2, 3)


def test_gennorm_rsample_has_gradients():
    beta = torch.tensor(1.5, requires_grad=True)
    GeneralizedNormal(0.0, 1.0, beta).rsample((100,)).pow(2).mean().backward()
    assert beta.grad is not None and torch.isfinite(beta.grad)


def test_gennorm_log_prob_gradient_is_finite_at_the_mode():
    beta = torch.tensor([1.5, 3.0], dtype=torch.float64, requires_grad=True)
    v = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    d = GeneralizedNormal(torch.zeros(2, dtype=torch.float64), 1.0, beta)
    lp = d.log_prob(v)
    ref = scipy.stats.gennorm(beta.detach().numpy(), scale=torch.exp(d._log_alpha()).detach()
                              .numpy()).logpdf(0.0)
    np.testing.assert_allclose(lp.detach().numpy(), ref, rtol=1e-12)
    lp.sum().backward()
    assert torch.isfinite(beta.grad).all() and torch.isfinite(v.grad).all()
    assert (v.grad == 0).all()


# ---------------------------------------------------------------------- FactorialSources
def test_factorial_sources_log_prob_is_sum_of_margins_and_gaussian_complement():
    src = GeneralizedNormal(torch.zeros(2, dtype=torch.float64), 1.0, torch.tensor([1.0, 4.0]))
    d = FactorialSources(src, 2, n_gaussian=1)
    assert d.event_shape == (3,) and d.batch_shape == ()
    v = torch.tensor([[0.3, -1.2, 0.7], [2.0, 0.1, -0.4]], dtype=torch.float64)
    ref = src.log_prob(v[:, :2]).sum(-1).numpy() + scipy.stats.norm.logpdf(v[:, 2].numpy())
    np.testing.assert_allclose(d.log_prob(v).numpy(), ref, rtol=1e-12)
    torch.manual_seed(0)
    assert d.sample((5,)).shape == (5, 3) and d.rsample((4,)).shape == (4, 3)
    assert d.expand((6,)).sample().shape == (6, 3)


def test_gennorm_shape_from_kurtosis_inverts_the_kurtosis():
    betas = torch.tensor([1.0, 1.5, 3.0, 8.0], dtype=torch.float64)
    kurt = torch.tensor(
        [scipy.stats.gennorm(float(b)).stats(moments="k") for b in betas], dtype=torch.float64
    )
    torch.testing.assert_close(gennorm_shape_from_kurtosis(kurt), betas, atol=1e-8, rtol=0)
