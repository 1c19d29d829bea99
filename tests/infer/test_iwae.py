"""IWAE_ELBO: per-example weights, the subsampling scale, agreement with Pyro's RenyiELBO(alpha=0)
where that is right and the documented difference where it is not."""

import math

import pyro
import pyro.distributions as dist
import pyro.infer
import pytest
import torch

from pyrogen.infer.importance import log_importance_weights
from pyrogen.infer.iwae import IWAE_ELBO

N_DATA = 40


def make(num_data=None):
    """z_n ~ N(0,1), x_n | z_n ~ N(z_n, 0.5^2); guide N(a x_n, s) with learnable a, log s."""

    def model(x, num_data=None):
        with pyro.plate("data", x.shape[0] if num_data is None else num_data,
                        subsample=torch.arange(x.shape[0])):
            z = pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
            pyro.sample("x", dist.Normal(z, 0.5), obs=x)

    def guide(x, num_data=None):
        a = pyro.param("a", torch.tensor(0.3, dtype=x.dtype))
        log_s = pyro.param("log_s", torch.tensor(0.2, dtype=x.dtype))
        with pyro.plate("data", x.shape[0] if num_data is None else num_data,
                        subsample=torch.arange(x.shape[0])):
            pyro.sample("z", dist.Normal(a * x, log_s.exp()))

    return model, guide


def exact(x):
    return dist.Normal(0.0, math.sqrt(1.25)).log_prob(x)


@pytest.fixture
def x():
    return torch.linspace(-2, 2, 10, dtype=torch.float64)


def test_k1_equals_trace_elbo(x):
    model, guide = make()
    for num_data in (None, N_DATA):
        pyro.set_rng_seed(3)
        a = IWAE_ELBO(num_particles=1).loss(model, guide, x, num_data=num_data)
        pyro.set_rng_seed(3)
        b = pyro.infer.Trace_ELBO().loss(model, guide, x, num_data=num_data)
        assert a == pytest.approx(b, rel=1e-12)


def test_matches_renyi_alpha0_without_subsampling(x):
    """Finding: with every site in the data plate and no subsampling, Pyro's
    RenyiELBO(alpha=0) keeps per-example weights: same value as IWAE_ELBO."""
    model, guide = make()
    pyro.set_rng_seed(5)
    ours = IWAE_ELBO(num_particles=7).loss(model, guide, x)
    pyro.set_rng_seed(5)
    renyi = pyro.infer.RenyiELBO(
        alpha=0, num_particles=7, vectorize_particles=True, max_plate_nesting=1
    ).loss(model, guide, x)
    assert ours == pytest.approx(renyi, rel=1e-12)
    pyro.set_rng_seed(5)
    lw = log_importance_weights(model, guide, x, num_particles=7, max_plate_nesting=1)
    manual = -(torch.logsumexp(lw, 0) - math.log(7)).sum()
    assert ours == pytest.approx(float(manual.detach()), rel=1e-12)


def test_subsampling_scale_outside_logmeanexp_unlike_renyi(x):
    """Finding: with subsampling, RenyiELBO puts the N/B scale inside the log-mean-exp
    (sum_n log mean_k w^(N/B)); IWAE_ELBO computes (N/B) sum_n log mean_k w."""
    model, guide = make()
    scale = N_DATA / x.shape[0]
    pyro.set_rng_seed(9)
    lw = log_importance_weights(model, guide, x, N_DATA, num_particles=6,
                                max_plate_nesting=1).detach()
    pyro.set_rng_seed(9)
    ours = IWAE_ELBO(num_particles=6).loss(model, guide, x, num_data=N_DATA)
    pyro.set_rng_seed(9)
    renyi = pyro.infer.RenyiELBO(
        alpha=0, num_particles=6, vectorize_particles=True, max_plate_nesting=1
    ).loss(model, guide, x, num_data=N_DATA)
    right = -scale * float((torch.logsumexp(lw, 0) - math.log(6)).sum())
    renyi_formula = -float((torch.logsumexp(scale * lw, 0) - math.log(6)).sum())
    assert ours == pytest.approx(right, rel=1e-12)
    assert renyi == pytest.approx(renyi_formula, rel=1e-10)
    assert abs(renyi - right) > 1.0


def test_bound_increases_with_k_and_stays_below_log_p(x):
    model, guide = make()
    pyro.param("a", torch.tensor(0.3, dtype=torch.float64))
    reps = 200
    means = {}
    for k in (1, 5, 50):
        vals = []
        for r in range(reps):
            pyro.set_rng_seed(r)
            vals.append(-IWAE_ELBO(num_particles=k).loss(model, guide, x))
        v = torch.tensor(vals, dtype=torch.float64)
        means[k] = (float(v.mean()), float(v.std() / math.sqrt(reps)))
    truth = float(exact(x).sum())
    # L_1 < L_5 < L_50 < log p(x); differences are > 10 standard errors here (failure ~0)
    assert means[1][0] + 5 * means[1][1] < means[5][0]
    assert means[5][0] + 5 * means[5][1] < means[50][0]
    assert means[50][0] < truth


def test_gradient_is_self_normalized_weighted_score(x):
    """grad log mean_k w_k = sum_k w~_k grad log w_k (Burda et al. eq. 14)."""
    model, guide = make()
    pyro.param("a", torch.tensor(0.3, dtype=torch.float64))
    pyro.param("log_s", torch.tensor(0.2, dtype=torch.float64))
    a = pyro.param("a").unconstrained()
    pyro.set_rng_seed(1)
    loss = IWAE_ELBO(num_particles=5).differentiable_loss(model, guide, x)
    (g,) = torch.autograd.grad(loss, [a])
    pyro.set_rng_seed(1)
    lw = log_importance_weights(model, guide, x, num_particles=5, max_plate_nesting=1)
    wn = torch.softmax(lw, 0).detach()
    (g2,) = torch.autograd.grad(-(wn * lw).sum(), [a])
    assert float(g) == pytest.approx(float(g2), rel=1e-10)


def test_trains_under_svi(x):
    model, guide = make()
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), IWAE_ELBO(num_particles=10))
    for _ in range(300):
        svi.step(x)
    # the exact posterior mean is x / 1.25 = 0.8 x
    assert float(pyro.param("a").detach()) == pytest.approx(0.8, abs=0.1)


def test_refuses_global_latents_and_non_reparam_sites(x):
    def model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def guide(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="site 'mu' is outside the plate 'data'"):
        IWAE_ELBO(num_particles=3).loss(model, guide, x)

    def model2(x):
        with pyro.plate("data", x.shape[0]):
            b = pyro.sample("b", dist.Bernoulli(0.5 * torch.ones_like(x)))
            pyro.sample("x", dist.Normal(b, 1.0), obs=x)

    def guide2(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("b", dist.Bernoulli(0.3 * torch.ones_like(x)))

    with pytest.raises(NotImplementedError, match="reparametrizable"):
        IWAE_ELBO(num_particles=3).loss(model2, guide2, x)
    with pytest.raises(ValueError, match="num_particles must be an int"):
        IWAE_ELBO(num_particles=0)
    with pytest.raises(TypeError, match="num_particles must be an int"):
        IWAE_ELBO(num_particles=2.5)


def test_masked_row_contributes_only_its_latent_log_weight():
    """Issue 13, bug 2: guide = prior (latent log-weights cancel exactly) and row 1's
    observation masked out: the bound is log N(x_0; 0, 1) + 0 for every draw."""

    def model(x, mask):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))
            with pyro.poutine.mask(mask=mask):
                pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)

    def guide(x, mask):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(torch.zeros_like(x), 1.0))

    x = torch.tensor([1.2, 1.2], dtype=torch.float64)
    mask = torch.tensor([True, False])
    expected = -float(dist.Normal(0.0, 1.0).log_prob(torch.tensor(1.2, dtype=torch.float64)))
    assert IWAE_ELBO(num_particles=3).loss(model, guide, x, mask) == pytest.approx(expected,
                                                                                  abs=1e-12)
