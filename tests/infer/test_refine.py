"""Per-example refinement of q and the amortization gap, checked where the answer is known: for
a linear-Gaussian VAE with orthogonal decoder columns the posterior is a diagonal Gaussian, so
the best ELBO in the family equals log p(x) exactly."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.infer.refine import AmortizationGap, RefinedGuide, amortization_gap, refine
from pyrogen.models import VAE


def diagonal_posterior_vae(seed=0):
    """x = W z + mu + 0.5 eps with orthogonal columns of W: p(z|x) has diagonal covariance."""
    g = torch.Generator().manual_seed(seed)
    m = VAE(4, latent_dims=2, hidden_dims=(), likelihood="gaussian",
            gaussian_scale="isotropic").double()
    q, _ = torch.linalg.qr(torch.randn(4, 2, generator=g, dtype=torch.float64))
    w = q * torch.tensor([2.0, 1.0], dtype=torch.float64)
    mu = torch.randn(4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        m.decoder[0].weight.copy_(w)
        m.decoder[0].bias.copy_(mu)
        m.decoder_log_scale.fill_(math.log(0.5))
        for p in m.encoder.parameters():  # a poor encoder
            p.copy_(0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    z = torch.randn(6, 2, generator=g, dtype=torch.float64)
    x = z @ w.T + mu + 0.5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    cov = w @ w.T + 0.25 * torch.eye(4, dtype=torch.float64)
    exact = dist.MultivariateNormal(mu, cov).log_prob(x)
    return m, x, exact


def test_refinement_closes_the_amortization_gap():
    m, x, exact = diagonal_posterior_vae()
    gap = amortization_gap(m.model, m.guide, x, num_steps=300, lr=0.05, num_particles=10,
                           elbo_particles=500, is_particles=2000)
    assert isinstance(gap, AmortizationGap)
    assert gap.elbo_amortized.kind == "elbo" and gap.elbo_refined.kind == "elbo"
    assert gap.log_likelihood.kind == "is_estimate"
    # the poor encoder leaves several nats; refinement recovers the exact posterior
    assert gap.amortization_gap > 1.0
    # best diagonal Gaussian = exact posterior: refined ELBO ~ log p(x) (SGD noise ~0.02)
    assert (gap.elbo_refined.values - exact).abs().max() < 0.05
    assert abs(gap.approximation_gap) < 0.05
    # the IS estimate with the refined proposal is essentially exact
    assert (gap.log_likelihood.values - exact).abs().max() < 0.01
    assert gap.info["refine_curve"][-1] < gap.info["refine_curve"][0]
    d = gap.to_dict()
    assert d["amortization_gap"] == pytest.approx(gap.amortization_gap)


def test_refine_leaves_model_parameters_alone():
    m, x, _ = diagonal_posterior_vae()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    refined, losses = refine(m.model, m.guide, x, num_steps=20)
    assert isinstance(refined, RefinedGuide) and len(losses) == 20
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    loc, log_scale, event = refined.params["z"]
    assert loc.shape == (6, 2) and event == 1 and not loc.requires_grad
    # starts from the encoder's output
    r0, _ = refine(m.model, m.guide, x, num_steps=0)
    enc_loc, enc_scale = m.encoder(x)
    torch.testing.assert_close(r0.params["z"][0], enc_loc.detach())
    torch.testing.assert_close(r0.params["z"][1].exp(), enc_scale.detach())


def test_vae_method_and_bad_input():
    m, x, _ = diagonal_posterior_vae()
    gap = m.amortization_gap(x, num_steps=5, elbo_particles=10, is_particles=20)
    assert len(gap.elbo_refined) == 6
    with pytest.raises(ValueError, match="num_steps must be an int"):
        refine(m.model, m.guide, x, num_steps=-1)
    with pytest.raises(ValueError, match="lr must be a float"):
        refine(m.model, m.guide, x, lr=0.0)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            b = pyro.sample("b", dist.Bernoulli(0.5 * torch.ones(x.shape[0], dtype=x.dtype)))
            pyro.sample("x", dist.Normal(b, 1.0), obs=x[:, 0])

    def guide(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("b", dist.Bernoulli(0.3 * torch.ones(x.shape[0], dtype=x.dtype)))

    with pytest.raises(ValueError, match="refine needs Normal guide sites"):
        refine(model, guide, x)
