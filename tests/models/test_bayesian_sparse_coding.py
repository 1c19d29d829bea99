"""The Pyro Bayesian sparse coding model: sites, shapes, and its log joint written out by hand."""

import math

import pyro
import pytest
import torch
from pyro import poutine

from pyrogen.models.bayesian_sparse_coding import bayesian_sparse_coding_model


def _trace(x=None, **kw):
    pyro.set_rng_seed(0)
    return poutine.trace(bayesian_sparse_coding_model).get_trace(x, **kw)


def test_sites_and_shapes_overcomplete():
    x = torch.randn(9, 4, dtype=torch.float64)
    tr = _trace(x, n_components=6)
    assert tr.nodes["W"]["value"].shape == (4, 6)
    assert tr.nodes["loc"]["value"].shape == (4,)
    assert tr.nodes["noise"]["value"].shape == ()
    assert tr.nodes["h"]["value"].shape == (9, 6)
    assert tr.nodes["x"]["is_observed"] and tr.nodes["x"]["value"] is x
    assert tr.nodes["W"]["value"].dtype == torch.float64
    no_bias = _trace(x, n_components=2, fit_bias=False)
    assert "loc" not in no_bias.nodes


def test_log_joint_matches_hand_written_density():
    x = torch.randn(5, 3, dtype=torch.float64)
    lam = 2.5
    tr = _trace(x, n_components=2, lam=lam)
    v = {k: tr.nodes[k]["value"] for k in ("W", "loc", "noise", "h")}
    D = 3
    s_w = 1 / math.sqrt(D)
    lp = torch.distributions.Normal(0.0, s_w).log_prob(v["W"]).sum()
    lp += torch.distributions.Normal(0.0, 10.0).log_prob(v["loc"]).sum()
    a, b = 1.0, 0.1  # InverseGamma(1, 0.1)
    s2 = v["noise"]
    lp += a * math.log(b) - math.lgamma(a) - (a + 1) * torch.log(s2) - b / s2
    # Laplace(0, 2/lam): log density log(lam/4) - lam |h| / 2
    lp += (math.log(lam / 4) - lam * v["h"].abs() / 2).sum()
    mean = v["h"] @ v["W"].T + v["loc"]
    var = s2 + 1e-6
    lp += (-0.5 * (x - mean) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum()
    # the terms reach ~1e4 in magnitude (a small prior draw of the noise): float64 round-off
    assert float(tr.log_prob_sum()) == pytest.approx(float(lp), rel=1e-9)


def test_prior_predictive_and_errors():
    pyro.set_rng_seed(1)
    out = bayesian_sparse_coding_model(None, n_components=3, n_features=4, num_data=10)
    assert out.shape == (10, 4)
    with pytest.raises(ValueError, match="num_data and n_features"):
        bayesian_sparse_coding_model(None, n_components=3)
    with pytest.raises(ValueError, match="x must be a 2-d tensor"):
        bayesian_sparse_coding_model(torch.zeros(3), n_components=3)
    with pytest.raises(ValueError, match="n_components"):
        bayesian_sparse_coding_model(torch.zeros(3, 2), n_components=0)
    with pytest.raises(ValueError, match="noise_prior"):
        bayesian_sparse_coding_model(torch.zeros(3, 2), n_components=1, noise_prior="gamma")
    with pytest.raises(ValueError, match="noise_params"):
        bayesian_sparse_coding_model(torch.zeros(3, 2), n_components=1, noise_params=(1.0,))


def test_pyro_nuts_runs_on_it():
    from pyro.infer import MCMC, NUTS

    pyro.set_rng_seed(2)
    x = torch.randn(8, 2, dtype=torch.float64)
    mcmc = MCMC(NUTS(bayesian_sparse_coding_model, max_tree_depth=4), num_samples=5,
                warmup_steps=5, disable_progbar=True)
    mcmc.run(x, n_components=2)
    s = mcmc.get_samples()
    assert s["W"].shape == (5, 2, 2) and s["h"].shape == (5, 8, 2)
    assert torch.isfinite(s["noise"]).all() and (s["noise"] > 0).all()
