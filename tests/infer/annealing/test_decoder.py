"""Tests of pyrogen.infer.annealing.decoder: prior->posterior AIS and BDMC against closed forms.

Statistical tests use fixed seeds and state the failure rate they would have over seeds. The
models are tiny (Pyro's tracing overhead, ~5 ms per model run, dominates their cost).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from pyrogen.infer.annealing.decoder import (
    BDMCResult,
    PriorPosteriorPath,
    ais_log_likelihood,
    bdmc,
)

D64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ppca(D=5, d=2, sigma=0.7, seed=0):
    """PPCA z ~ N(0, I_d), x | z ~ N(W z + b, sigma^2 I): exact marginal N(b, W W^T + s^2 I)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(D, d, generator=g, dtype=D64)
    b = torch.randn(D, generator=g, dtype=D64)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], d), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ W.T + b, sigma).to_event(1), obs=x)

    marginal = dist.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(D, dtype=D64))
    return model, marginal


def test_ais_matches_ppca_closed_form():
    # 50 examples, 32 chains, 200 temperatures, MALA. Measured at this setting (6 examples, 6
    # seeds): per-example stderr 0.07-0.09, mean errors -0.015..+0.038, max |z| 1.9. Over 50
    # examples the mean error has sd ~0.08/sqrt(50) = 0.011 and a bias (lower bound) of under
    # 0.01, so |mean error| < 0.05 is a > 3.5-sd event: failure rate < 3e-4 over seeds. Each
    # example within 5 reported stderrs + 0.02: rate 50 * 6e-7 when the stderr is right.
    model, marginal = ppca()
    x = marginal.sample((50,))
    exact = marginal.log_prob(x)
    ll = ais_log_likelihood(model, x, num_chains=32, betas=200, kernel="mala", seed=3)
    assert ll.kind == "ais_marginal" and ll.bound == "lower"
    err = ll.values - exact
    assert abs(float(err.mean())) < 0.05, err
    assert (err.abs() < 5 * ll.stderr + 0.02).all(), (err, ll.stderr)
    assert ll.values.shape == (50,) and ll.stderr.shape == (50,)
    assert ll.info["num_betas"] == 200 and ll.info["num_chains"] == 32


def test_bdmc_brackets_ppca():
    # On data simulated from the model, forward AIS is a stochastic lower bound and reverse AIS
    # from the simulated latent a stochastic upper bound. A short schedule (10 temperatures) on
    # a peaked posterior (sigma = 0.3) makes the gap large: measured over 3 seeds (40 examples
    # each) lower - exact = -0.27..-2.86 (se ~0.12), upper - exact = +1.58..+1.95 (se ~0.06).
    # Checks on the means over 40 examples: lower <= exact + 4 se and upper >= exact - 4 se
    # (each is on its side in expectation: failure rate < 1e-4 each, more so given the
    # measured margins), and lower < upper. A sign or direction error in the reverse run
    # moves the upper bound by several nats and fails.
    model, marginal = ppca(seed=1, sigma=0.3)
    x = torch.zeros(40, 5, dtype=D64)
    res = bdmc(model, x, num_chains=16, betas=10, kernel="mala", seed=0)
    assert isinstance(res, BDMCResult)
    exact = float(marginal.log_prob(res.data).mean())
    assert res.lower.bound == "lower" and res.upper.bound == "upper"
    assert res.lower.kind == "ais_marginal" and res.upper.kind == "reverse_ais_upper"
    assert res.lower.mean() <= exact + 4 * res.lower.mean_stderr()
    assert res.upper.mean() >= exact - 4 * res.upper.mean_stderr()
    assert res.upper.mean() - exact < 5.0
    assert float(res.gap.mean()) > 0
    assert res.latents.shape == (1, 40, 2) and res.data.shape == (40, 5)
    assert "gap" in str(res)


def test_constrained_latent_against_quadrature():
    # x | s ~ N(0, s^2), s ~ LogNormal(0, 0.5): the path anneals log s (biject_to(positive)),
    # with the Jacobian in the prior. Exact log p(x) by quadrature on a fine grid of log s.
    def model(x):
        with pyro.plate("data", x.shape[0]):
            s = pyro.sample("s", dist.LogNormal(x.new_zeros(x.shape[0]), 0.5))
            pyro.sample("x", dist.Normal(0.0, s), obs=x)

    x = torch.tensor([0.3, 2.0, -1.2], dtype=D64)
    u = torch.linspace(-6, 6, 20001, dtype=D64)
    lp = dist.Normal(0.0, 0.5).log_prob(u)[:, None] + dist.Normal(0.0, u.exp()[:, None]).log_prob(x)
    exact = torch.logsumexp(lp, 0) + math.log(float(u[1] - u[0]))
    ll = ais_log_likelihood(model, x, num_chains=32, betas=50, kernel="mala", seed=0)
    # 1-D posteriors: the estimate is near-exact (measured errors < 0.01, stderr ~0.005)
    assert (ll.values - exact).abs().max() < 0.03, (ll.values, exact)


def test_path_draws_the_prior_and_splits_the_density():
    model, _ = ppca()
    x = torch.zeros(3, 5, dtype=D64)
    path = PriorPosteriorPath(model, x)
    assert path.event_shape == (2,) and path.log_z0.shape == (3,)
    z = path.init(4000, torch.Generator().manual_seed(0))
    assert z.shape == (4000, 3, 2)
    # exact N(0, 1) draws: sample mean within 4 sd (failure rate 6e-5 per coordinate)
    assert (z.mean(0).abs() < 4 / math.sqrt(4000)).all()
    lp, ll = path.log_prior_and_likelihood(z[:5])
    torch.testing.assert_close(lp, dist.Normal(0.0, 1.0).log_prob(z[:5]).sum(-1))
    torch.testing.assert_close(path.log_density(z[:5], 0.25), lp + 0.25 * ll)
    assert "z" in repr(path)


def test_discrete_latent_refused():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            c = pyro.sample("c", dist.Bernoulli(0.5 * x.new_ones(x.shape[0])))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    with pytest.raises(ValueError, match="'c' is discrete"):
        ais_log_likelihood(model, torch.zeros(3), num_chains=2, betas=3)


def test_site_outside_data_plate_refused():
    def model(x):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", dist.Normal(w, 1.0), obs=x)

    with pytest.raises(ValueError, match="'w' is outside the plate 'data'"):
        PriorPosteriorPath(model, torch.zeros(3))


@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_nan_likelihood_stops_with_the_temperature():
    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0]), 1.0))
            loc = torch.where(z > 10.0, z, z * math.nan)  # NaN everywhere in practice
            pyro.sample("x", dist.Normal(loc, 1.0, validate_args=False), obs=x)

    with pytest.raises(FloatingPointError, match="beta="):
        ais_log_likelihood(model, torch.zeros(2), num_chains=2, betas=5, seed=0)


def test_bad_arguments():
    model, _ = ppca()
    x = torch.zeros(2, 5, dtype=D64)
    with pytest.raises(ValueError, match="num_chains"):
        ais_log_likelihood(model, x, num_chains=0)
    with pytest.raises(ValueError, match="kernel"):
        ais_log_likelihood(model, x, kernel="nuts", betas=3)
    with pytest.raises(ValueError, match="betas"):
        ais_log_likelihood(model, x, betas=torch.tensor([0.0, 0.7, 0.5, 1.0]))
    with pytest.raises(TypeError, match="x must be"):
        ais_log_likelihood(model, [1.0, 2.0])
