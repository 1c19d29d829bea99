"""pyrogen.diagnostics.inference_data (to_inference_data) on a conjugate Normal-mean model,
where everything has a closed form.

Model: mu ~ N(0, 1), x_j ~ N(mu, 1) in the plate "data". Posterior N(sum x / (n + 1),
1 / (n + 1)); leave-one-out predictive p(x_j | x_-j) = N(x_j; m_-j, 1 + v_-j).
"""


import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS

from pyrogen import diagnostics

from ._models import data, exact_posterior_draws
from ._models import pyro_model as model


@pytest.fixture(scope="module")
def mcmc_runs():
    pyro.set_rng_seed(0)
    x = data()
    runs = []
    for _ in range(2):
        m = MCMC(NUTS(model), num_samples=40, warmup_steps=40, disable_progbar=True)
        m.run(x)
        runs.append(m)
    return x, runs


def test_from_single_mcmc_run(mcmc_runs):
    x, runs = mcmc_runs
    idata = diagnostics.to_inference_data(runs[0])
    assert set(diagnostics.group_names(idata)) >= {"posterior", "sample_stats", "log_likelihood",
                                   "observed_data"}
    assert idata.posterior["mu"].shape == (1, 40)
    assert idata.sample_stats["diverging"].dtype == bool
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "data")
    mu = torch.as_tensor(idata.posterior["mu"].values)[0]
    expected = dist.Normal(mu[:, None], 1.0).log_prob(x)
    np.testing.assert_allclose(idata.log_likelihood["x"].values[0], expected.numpy(),
                               rtol=1e-12)
    np.testing.assert_allclose(idata.observed_data["x"].values, x.numpy())


def test_list_of_runs_become_chains_and_summary(mcmc_runs):
    _, runs = mcmc_runs
    idata = diagnostics.to_inference_data(runs)
    assert idata.posterior["mu"].shape == (2, 40)
    assert idata.sample_stats["diverging"].shape == (2, 40)
    df = diagnostics.summary(idata, var_names=["mu"])
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(df.columns)
    assert np.isfinite(df.loc["mu", "r_hat"])


def test_from_svi_guide_uses_predictive():
    x = data()
    guide = pyro.infer.autoguide.AutoNormal(model)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
    for _ in range(200):
        svi.step(x)
    idata = diagnostics.to_inference_data(guide=guide, model=model, model_args=(x,),
                                          num_samples=300)
    assert idata.posterior["mu"].shape == (1, 300)
    assert "log_likelihood" in diagnostics.group_names(idata)
    # the guide approximates the exact posterior N(sum x / (n+1), 1/(n+1)) after 200 Adam
    # steps: tolerance 0.1 = half a posterior sd (Monte Carlo sd of the mean is 0.013; the
    # rest is optimisation slack); deterministic given the seed
    n = x.shape[0]
    assert abs(float(idata.posterior["mu"].mean()) - float(x.sum()) / (n + 1)) < 0.1


def test_dims_override_and_extra_posterior():
    x = data(5)
    idata = diagnostics.to_inference_data(
        exact_posterior_draws(x, 1, 10), model=model, model_args=(x,),
        dims={"x": ["obs"]}, extra_posterior={"mu2": np.ones((1, 10))},
    )
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "obs")
    assert "mu2" in idata.posterior


def test_bad_input():
    x = data(5)
    with pytest.raises(TypeError, match="source must be a pyro.infer.MCMC"):
        diagnostics.to_inference_data(42, model=model, model_args=(x,))
    with pytest.raises(ValueError, match="source must be .* or guide"):
        diagnostics.to_inference_data(model=model, model_args=(x,))
    with pytest.raises(ValueError, match="model must be given"):
        diagnostics.to_inference_data(exact_posterior_draws(x, 1, 3))
