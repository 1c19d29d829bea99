"""pyrogen.models.gan: generators as Pyro models (the generic protocol tests run the registry
rows "GAN-gaussian" and "GAN-conv-bernoulli"; here: what is particular to GANs).

Exact checks use a linear generator x = W z + c with a Gaussian observation model, whose
marginal N(c, W W^T + sigma^2 I) and posterior mode are closed forms.
"""

import math

import pyro
import pyro.infer
import pytest
import torch

from pyrogen.models import GAN

DT = torch.float64


@pytest.fixture(autouse=True)
def _clean_store():
    pyro.clear_param_store()
    yield


def _linear_gan(sigma=0.5):
    m = GAN(3, latent_dim=2, hidden_dims=(), observation="gaussian", obs_scale=sigma).double()
    lin = m.generator.net[0]
    return m, lin.weight.detach(), lin.bias.detach()


def test_predictive_draws_from_the_generator():
    m = GAN(4, latent_dim=2, hidden_dims=(5,), seed=1).double()
    out = pyro.infer.Predictive(m.model, num_samples=3)(n=7)
    assert out["x"].shape == (3, 7, 4) and out["z"].shape == (3, 7, 2)
    # observation=None: x = G(z) exactly
    torch.testing.assert_close(out["x"][0], m.generate(out["z"][0]))
    s = m.sample(6)
    assert s.shape == (6, 4)


@pytest.mark.parametrize("shape,channels", [((8, 8), (16, 8)), ((28, 28), (16, 8))])
def test_conv_networks_for_images(shape, channels):
    d = shape[0] * shape[1]
    m = GAN(d, latent_dim=3, architecture="conv", image_shape=shape, conv_channels=channels,
            output="sigmoid", n_classes=10)
    y = torch.arange(5) % 10
    x = m.sample(5, y=y)
    assert x.shape == (5, d) and bool(((x > 0) & (x < 1)).all())
    assert m.discriminator(x, y).shape == (5,)
    # the generator is a stack of transposed convolutions (book section 20.10.6)
    kinds = [type(layer).__name__ for layer in m.generator.net]
    assert kinds.count("ConvTranspose2d") == len(channels)


def test_conditional_gan_fit_sample_and_log_likelihood_sum_over_classes():
    torch.manual_seed(0)
    m = GAN(4, latent_dim=2, hidden_dims=(6,), observation="gaussian", obs_scale=0.5,
            n_classes=2, ais_num_chains=4, ais_num_betas=10, ais_num_leapfrog=2).double()
    x = torch.randn(20, 4, dtype=DT)
    y = torch.arange(20) % 2
    h = m.fit(x, y, num_epochs=2, batch_size=10, progress=False, seed=0)
    assert len(h.losses) == 4 and h.converged is None
    assert set(h.metrics) >= {"d_loss", "g_loss", "d_accuracy", "d_grad_norm", "g_grad_norm"}
    assert m.sample(3, y=torch.tensor([0, 1, 1])).shape == (3, 4)
    ll = m.log_likelihood(x[:3], seed=5)
    parts = [m.log_likelihood(x[:3], torch.full((3,), c), seed=5 + c).values for c in (0, 1)]
    torch.testing.assert_close(ll.values, torch.logsumexp(torch.stack(parts), 0) - math.log(2))
    assert ll.kind == "ais_marginal" and ll.info["classes_summed"] == 2
    with pytest.raises(ValueError, match="y must be given to fit a conditional GAN"):
        m.fit(x, progress=False)


@pytest.mark.slow
def test_log_likelihood_of_linear_generator_matches_closed_form():
    """AIS (kind "ais_marginal") vs the exact N(c, W W^T + sigma^2 I) log-density: within
    4 standard errors + 0.02 nats per example (5 examples, 16 chains, 200 temperatures;
    80 s at load 20 on 2 cores)."""
    m, w, c = _linear_gan()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=DT)
    cov = w @ w.T + 0.25 * torch.eye(3, dtype=DT)
    exact = torch.distributions.MultivariateNormal(c, cov).log_prob(x)
    ll = m.log_likelihood(x, num_chains=16, num_betas=200, seed=0)
    assert ll.kind == "ais_marginal" and ll.bound == "lower"
    assert ((ll.values - exact).abs() < 4 * ll.stderr + 0.02).all(), (ll.values, exact)


def test_transform_is_the_posterior_mode():
    m, w, c = _linear_gan(sigma=0.5)
    x = torch.randn(4, 3, dtype=DT)
    prec = w.T @ w / 0.25 + torch.eye(2, dtype=DT)
    mode = torch.linalg.solve(prec, (w.T @ (x - c).T) / 0.25).T
    torch.testing.assert_close(m.transform(x, num_steps=600, lr=0.05), mode, atol=2e-3,
                               rtol=0)


def test_without_observation_model_no_density():
    m = GAN(3, latent_dim=2, hidden_dims=(4,)).double()
    x = torch.randn(4, 3, dtype=DT)
    with pytest.raises(ValueError, match="needs an observation model"):
        m.log_likelihood(x)
    with pytest.raises(ValueError, match="needs an observation model"):
        m.transform(x)


def test_gmmn_fit_reduces_mmd():
    torch.manual_seed(0)
    x = torch.randn(64, 2, dtype=DT) * 0.3 + 2.0
    m = GAN(2, latent_dim=2, hidden_dims=(16,), seed=0).double()
    h = m.fit(x, method="mmd", num_epochs=30, batch_size=64, lr=0.02, progress=False, seed=0,
              bandwidths=[0.5, 1.0, 2.0])
    assert h.metrics["mmd2"][-1] < 0.5 * h.metrics["mmd2"][0]


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="output must be 'sigmoid' for observation='bernoulli'"):
        GAN(4, observation="bernoulli")
    with pytest.raises(ValueError, match="n_classes must be 0"):
        GAN(4, n_classes=1)
    with pytest.raises(ValueError, match="image_shape must be"):
        GAN(64, architecture="conv", image_shape=(8, 6))
    with pytest.raises(ValueError, match="observation must be one of"):
        GAN(4, observation="poisson")
    with pytest.raises(ValueError, match="loss must be one of"):
        GAN(4, loss="hinge")
    m = GAN(4).double()
    with pytest.raises(ValueError, match="y must be None"):
        m.sample(2, y=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_disc_steps"):
        m.fit(torch.randn(8, 4, dtype=DT), num_disc_steps=0, progress=False)
