"""NumPyro twins have the same sites, shapes and log densities as the Pyro models (exact)."""

import numpy as np
import pytest

pytest.importorskip("numpyro")

import jax  # noqa: E402
import numpyro  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from numpyro.infer.util import log_density  # noqa: E402
from pyro import poutine  # noqa: E402

from pyrogen.models import BayesianFactorAnalysis, BayesianNoisyICA, BayesianPPCA  # noqa: E402
from pyrogen.models.bayesian_sparse_coding import bayesian_sparse_coding_model  # noqa: E402
from pyrogen.numpyro import (  # noqa: E402
    bayesian_fa,
    bayesian_noisy_ica,
    bayesian_ppca,
    bayesian_sparse_coding,
)
from pyrogen.numpyro.backend import twin_kwargs, twin_model  # noqa: E402

jax.config.update("jax_enable_x64", True)

D, K, N = 4, 2, 7


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(N, D, generator=g, dtype=torch.float64)


def _pyro_log_joint(fn, values, *args, **kwargs):
    cond = poutine.condition(fn, data=values)
    tr = poutine.trace(cond).get_trace(*args, **kwargs)
    return float(tr.log_prob_sum().detach())


def _np_log_joint(fn, values, *args, **kwargs):
    params = {k: jax.numpy.asarray(v.numpy()) for k, v in values.items()}
    lp, _ = log_density(fn, args, kwargs, params)
    return float(lp)


def _prior_values(fn, *args, **kwargs):
    """Site values drawn from the Pyro model's prior (torch float64)."""
    pyro.set_rng_seed(1)
    tr = poutine.trace(fn).get_trace(*args, **kwargs)
    return {k: v["value"].detach() for k, v in tr.nodes.items()
            if v["type"] == "sample" and not v["is_observed"]
            and v["value"].dtype.is_floating_point}  # (not the plates' index sites)


CASES = [
    dict(cls=BayesianFactorAnalysis),
    dict(cls=BayesianPPCA),
    dict(cls=BayesianFactorAnalysis, w_prior="normal", w_scale=0.7, noise_prior="lognormal"),
    dict(cls=BayesianPPCA, noise_prior="half_cauchy", noise_params=(0.5,), loc_scale=3.0),
    dict(cls=BayesianFactorAnalysis, likelihood="latent", ard_concentration=2.0, ard_rate=0.5),
    dict(cls=BayesianPPCA, likelihood="latent", noise_floor=1e-3),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(
    [c["cls"].__name__] + [f"{k}={v}" for k, v in c.items() if k != "cls"]))
def test_factor_twin_log_joint_equals_pyro(case):
    case = dict(case)
    cls = case.pop("cls")
    m = cls(D, K, **case).double()
    x = _data()
    values = _prior_values(m.model, x)
    expected = _pyro_log_joint(m.model, values, x)
    kw = twin_kwargs(m)
    got = _np_log_joint(twin_model(m), values, x.numpy(), noncentered=False, **kw)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-8)
    # the site names and shapes are the Pyro ones
    tr = numpyro.handlers.trace(numpyro.handlers.seed(twin_model(m), 0)).get_trace(
        x.numpy(), noncentered=False, **kw)
    sites = {k: tuple(v["value"].shape) for k, v in tr.items() if v["type"] == "sample"}
    assert sites == {k: tuple(v.shape) for k, v in values.items()} | {"x": (N, D)}


def test_noncentered_twin_records_W_and_matches_centered_density():
    x = _data().numpy()
    kw = dict(n_components=K)
    tr = numpyro.handlers.trace(numpyro.handlers.seed(bayesian_fa, 3)).get_trace(x, **kw)
    assert tr["W"]["type"] == "deterministic"
    z, alpha = tr["W_decentered"]["value"], tr["alpha"]["value"]
    np.testing.assert_allclose(tr["W"]["value"], z / np.sqrt(alpha), rtol=1e-12)
    # log p(W_dec, ...) = log p(W, ...) + log|dW/dW_dec| = log p(W, ...) - D/2 sum log alpha
    params = {k: tr[k]["value"] for k in ("alpha", "W_decentered", "noise", "loc")}
    lp_nc, _ = log_density(bayesian_fa, (x,), kw, params)
    cparams = dict(params)
    cparams["W"] = cparams.pop("W_decentered") / np.sqrt(alpha)
    lp_c, _ = log_density(bayesian_fa, (x,), dict(kw, noncentered=False), cparams)
    assert float(lp_nc) == pytest.approx(float(lp_c) - 0.5 * D * float(np.log(alpha).sum()),
                                         rel=1e-10)


@pytest.mark.parametrize("source", ["laplace", "logistic", "student_t"])
def test_noisy_ica_twin_log_joint_equals_pyro(source):
    m = BayesianNoisyICA(D, K, source=source, prior_scale=0.8).double()
    with torch.no_grad():
        m.bias = torch.linspace(-1, 1, D, dtype=torch.float64)
        m.noise_scale = torch.linspace(0.5, 1.5, D, dtype=torch.float64)
    x = _data()
    values = _prior_values(m.model, x)
    expected = _pyro_log_joint(m.model, values, x)
    got = _np_log_joint(bayesian_noisy_ica, values, x.numpy(), n_components=K, source=source,
                        prior_scale=0.8, bias=m.bias.detach().numpy(),
                        noise_scale=m.noise_scale.detach().numpy())
    assert got == pytest.approx(expected, rel=1e-10)


def test_noisy_ica_twin_samples_bias_and_noise_when_not_given():
    tr = numpyro.handlers.trace(numpyro.handlers.seed(bayesian_noisy_ica, 0)).get_trace(
        None, n_components=3, n_features=D, num_data=5, noise="isotropic")
    assert tr["bias"]["value"].shape == (D,)
    assert tr["noise_scale"]["value"].shape == ()
    assert tr["h"]["value"].shape == (5, 3) and tr["x"]["value"].shape == (5, D)


@pytest.mark.parametrize("fit_bias", [True, False])
def test_sparse_coding_twin_log_joint_equals_pyro(fit_bias):
    x = _data()
    kw = dict(n_components=5, lam=2.0, fit_bias=fit_bias)  # overcomplete: K > D
    values = _prior_values(bayesian_sparse_coding_model, x, **kw)
    assert values["W"].shape == (D, 5) and values["h"].shape == (N, 5)
    assert ("loc" in values) == fit_bias
    expected = _pyro_log_joint(bayesian_sparse_coding_model, values, x, **kw)
    got = _np_log_joint(bayesian_sparse_coding, values, x.numpy(), **kw)
    assert got == pytest.approx(expected, rel=1e-10)


def test_prior_predictive_shapes():
    for fn in (bayesian_fa, bayesian_ppca, bayesian_sparse_coding, bayesian_noisy_ica):
        tr = numpyro.handlers.trace(numpyro.handlers.seed(fn, 0)).get_trace(
            None, n_components=2, n_features=3, num_data=6)
        assert tr["x"]["value"].shape == (6, 3)
    x = bayesian_sparse_coding_model(None, n_components=2, n_features=3, num_data=6)
    assert x.shape == (6, 3)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="num_data and n_features must be ints"):
        numpyro.handlers.seed(bayesian_fa, 0)(None, n_components=2)
    with pytest.raises(ValueError, match="n_components"):
        numpyro.handlers.seed(bayesian_fa, 0)(np.zeros((5, 3)), n_components=4)
    with pytest.raises(ValueError, match="noise_prior"):
        numpyro.handlers.seed(bayesian_ppca, 0)(np.zeros((5, 3)), n_components=1,
                                                noise_prior="gamma")
    with pytest.raises(ValueError, match="noise_params"):
        numpyro.handlers.seed(bayesian_ppca, 0)(np.zeros((5, 3)), n_components=1,
                                                noise_params=(1.0,))
    with pytest.raises(ValueError, match="source"):
        numpyro.handlers.seed(bayesian_noisy_ica, 0)(np.zeros((5, 3)), n_components=1,
                                                     source="gennorm")
    with pytest.raises(ValueError, match="x must be a 2-d"):
        numpyro.handlers.seed(bayesian_sparse_coding, 0)(np.zeros(5), n_components=1)
    with pytest.raises(ValueError, match="x must be a 2-d"):
        bayesian_sparse_coding_model(torch.zeros(5), n_components=1)
    with pytest.raises(ValueError, match="lam"):
        bayesian_sparse_coding_model(torch.zeros(5, 2), n_components=1, lam=0.0)
