"""pyrogen.diagnostics.inference_data: to_inference_data for NumPyro MCMC (multi-chain), NumPyro
SVI and dicts of NumPyro draws.

Closed forms from the conjugate Normal-mean model (see ``_models``); float32 (JAX default), so
exact comparisons use rtol 1e-5.
"""


import numpy as np
import pytest

from pyrogen import diagnostics
from pyrogen.diagnostics.sample_stats import SAMPLE_STATS

from ._models import data, exact_posterior_draws, numpyro_model

numpyro = pytest.importorskip("numpyro")
jax = pytest.importorskip("jax")


def normal_logpdf(x, mu, sd=1.0):
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi)


@pytest.fixture(scope="module")
def nmcmc():
    from numpyro.infer import MCMC, NUTS

    x = data().numpy().astype(np.float32)
    m = MCMC(NUTS(numpyro_model), num_warmup=100, num_samples=100, num_chains=2,
             chain_method="vectorized", progress_bar=False)
    m.run(jax.random.PRNGKey(0), x, extra_fields=diagnostics.NUMPYRO_EXTRA_FIELDS)
    return x, m, diagnostics.to_inference_data(m)


def test_mcmc_groups_dims_and_exact_values(nmcmc):
    x, m, idata = nmcmc
    assert set(diagnostics.group_names(idata)) == {"posterior", "sample_stats", "log_likelihood",
                                   "observed_data", "posterior_predictive"}
    assert idata.posterior.attrs["inference_library"] == "numpyro"
    mu = idata.posterior["mu"].values
    assert mu.shape == (2, 100)
    np.testing.assert_array_equal(mu, np.asarray(m.get_samples(group_by_chain=True)["mu"]))
    assert idata.log_likelihood["x"].dims == ("chain", "draw", "data")
    np.testing.assert_allclose(idata.log_likelihood["x"].values,
                               normal_logpdf(x, mu[..., None]), rtol=1e-5)
    np.testing.assert_allclose(idata.observed_data["x"].values, x)
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "data")
    assert idata.posterior_predictive["x"].shape == (2, 100, 20)


def test_mcmc_sample_stats(nmcmc):
    x, m, idata = nmcmc
    st = idata.sample_stats
    assert set(st.data_vars) == set(SAMPLE_STATS)
    assert st["diverging"].dtype == bool and st["energy"].shape == (2, 100)
    # lp = -potential energy = log joint at the draw (mu unconstrained)
    mu = idata.posterior["mu"].values
    lp = normal_logpdf(mu, 0.0) + normal_logpdf(x, mu[..., None]).sum(-1)
    np.testing.assert_allclose(st["lp"].values, lp, rtol=1e-5)
    assert (st["energy"].values + st["lp"].values >= -1e-3).all()  # kinetic >= 0
    n, d = st["n_steps"].values, st["tree_depth"].values
    assert ((2 ** (d - 1) <= n) & (n <= 2 ** d - 1)).all()
    b = diagnostics.bfmi(idata)
    assert b.shape == (2,) and np.isfinite(b).all()


def test_posterior_predictive_is_fresh_data():
    """y_rep[s, j] - mu_s ~ N(0, 1): 2 x 500 draws x 20 points; the sample mean and sd of the
    residuals are within 0.03 of 0 and 1 (about 6 standard errors; seeded)."""
    x = data().numpy().astype(np.float32)
    draws = {k: v.numpy().astype(np.float32)
             for k, v in exact_posterior_draws(data(), 2, 500).items()}
    idata = diagnostics.to_inference_data(draws, model=numpyro_model, model_args=(x,),
                                          backend="numpyro")
    res = idata.posterior_predictive["x"].values - draws["mu"][..., None]
    assert abs(res.mean()) < 0.03 and abs(res.std() - 1) < 0.03
    assert not np.allclose(idata.posterior_predictive["x"].values[0, 0], x)
    np.testing.assert_allclose(idata.log_likelihood["x"].values,
                               normal_logpdf(x, draws["mu"][..., None]), rtol=1e-5)


def test_svi_guide_with_params():
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    x = data().numpy().astype(np.float32)
    guide = AutoNormal(numpyro_model)
    svi = SVI(numpyro_model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    result = svi.run(jax.random.PRNGKey(0), 300, x, progress_bar=False)
    idata = diagnostics.to_inference_data(guide=guide, params=result.params,
                                          model=numpyro_model, model_args=(x,),
                                          num_samples=400)
    assert set(diagnostics.group_names(idata)) == {"posterior", "log_likelihood", "observed_data",
                                   "posterior_predictive"}
    assert list(idata.posterior.data_vars) == ["mu"]  # guide-internal sites dropped
    assert idata.posterior["mu"].shape == (1, 400)
    # exact posterior N(sum x / 21, 1/21): sd 0.22; the fitted guide's mean within 0.1
    # (Monte Carlo sd of the mean of 400 draws 0.011; the rest is optimisation slack)
    assert abs(float(idata.posterior["mu"].mean()) - x.sum() / 21) < 0.1


def test_backend_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        diagnostics.to_inference_data({"mu": np.zeros((1, 2))}, model=numpyro_model,
                                      model_args=(np.zeros(3),), backend="stan")
