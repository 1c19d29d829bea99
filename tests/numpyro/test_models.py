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
    LowRankGaussianSufficientStatistics,
    bayesian_fa,
    bayesian_noisy_ica,
    bayesian_ppca,
    bayesian_sparse_coding,
    gaussian_sufficient_statistics,
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


# ---------------------------------------------------------------- sufficient statistics
# FA and PPCA each with every noise prior and every W parameterization (a Latin square, not
# the full product: the likelihood term is the same code in all of them)
SS_CASES = [
    dict(fn=fn, w_prior=w, noise_prior=p, noncentered=nc)
    for fn, rows in (
        (bayesian_fa, [("ard", False, "inverse_gamma"), ("ard", True, "lognormal"),
                       ("normal", False, "half_cauchy")]),
        (bayesian_ppca, [("ard", False, "lognormal"), ("ard", True, "half_cauchy"),
                         ("normal", False, "inverse_gamma")]),
    )
    for w, nc, p in rows
]


@pytest.mark.parametrize("case", SS_CASES, ids=lambda c: "-".join(
    [c["fn"].__name__] + [f"{k}={v}" for k, v in c.items() if k != "fn"]))
def test_sufficient_statistics_log_joint_equals_per_row_and_pyro(case):
    """float64: the log joint with the sufficient-statistics site equals the per-row one
    (and the Pyro model's, centred case) to 1e-10 relative, at several parameter values."""
    case = dict(case)
    fn = case.pop("fn")
    n, d, k = 37, 5, 3
    g = np.random.default_rng(11)
    x = g.normal(size=(n, d)) @ np.diag([3.0, 1.0, 0.3, 1.0, 2.0]) + 2.0  # off-centre data
    kw = dict(n_components=k, w_scale=0.7, loc_scale=3.0, **case)
    stats = gaussian_sufficient_statistics(x)
    cls = BayesianPPCA if fn is bayesian_ppca else BayesianFactorAnalysis
    m = cls(d, k, w_prior=case["w_prior"], noise_prior=case["noise_prior"], w_scale=0.7,
            loc_scale=3.0).double()
    for seed in range(2):
        tr = numpyro.handlers.trace(numpyro.handlers.seed(fn, seed)).get_trace(x, **kw)
        params = {s: v["value"] for s, v in tr.items()
                  if v["type"] == "sample" and not v["is_observed"]}
        per_row, _ = log_density(fn, (x,), kw, params)
        for ss in (True, stats):
            got, tr_ss = log_density(fn, (x,), dict(kw, sufficient_stats=ss), params)
            assert float(got) == pytest.approx(float(per_row), rel=1e-10)
        assert tr_ss["x"]["fn"].event_shape == (n, d) and tr_ss["x"]["value"].shape == (n, d)
        # the parameter sites are the per-row model's (and the Pyro model's)
        assert {s for s, v in tr_ss.items() if v["type"] in ("sample", "deterministic")} == {
            s for s, v in tr.items() if v["type"] in ("sample", "deterministic")}
        if not case["noncentered"]:
            values = {s: torch.tensor(np.array(v)) for s, v in params.items()}
            expected = _pyro_log_joint(m.model, values, torch.as_tensor(x))
            assert float(got) == pytest.approx(expected, rel=1e-10)


def test_sufficient_statistics_potential_does_not_touch_the_rows():
    """The log joint (and gradient) with the statistics has no array of size n (=53, prime)
    in its jaxpr: its cost does not grow with n. The per-row one does."""
    n = 53
    x = np.random.default_rng(0).normal(size=(n, 6))
    tr = numpyro.handlers.trace(numpyro.handlers.seed(bayesian_fa, 0)).get_trace(
        x, n_components=2)
    params = {s: v["value"] for s, v in tr.items()
              if v["type"] == "sample" and not v["is_observed"]}
    shapes = {}
    for ss in (gaussian_sufficient_statistics(x), False):
        kw = dict(n_components=2, sufficient_stats=ss)

        def log_joint(p, kw=kw):
            return log_density(bayesian_fa, (x,), kw, p)[0]

        jaxpr = jax.make_jaxpr(jax.value_and_grad(log_joint))(params)
        dims = set()
        for eqn in jaxpr.jaxpr.eqns:
            for v in list(eqn.invars) + list(eqn.outvars):
                dims.update(getattr(getattr(v, "aval", None), "shape", ()))
        for c in jaxpr.consts:
            dims.update(np.shape(c))
        shapes[ss is False] = dims
    assert n not in shapes[False]
    assert n in shapes[True]


def test_sufficient_statistics_helpers_and_errors():
    x = np.random.default_rng(1).normal(size=(9, 3))
    st = gaussian_sufficient_statistics(x)
    np.testing.assert_allclose(st.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.scatter, np.cov(x.T, bias=True), rtol=1e-12)
    leaves, tree = jax.tree_util.tree_flatten(st)
    assert len(leaves) == 2 and jax.tree_util.tree_unflatten(tree, leaves).num_data == 9
    # inside a trace the statistics are jnp operations with the same values
    traced = jax.jit(lambda a: gaussian_sufficient_statistics(a).scatter)(x)
    np.testing.assert_allclose(traced, st.scatter, rtol=1e-12)
    d = LowRankGaussianSufficientStatistics(np.zeros(3), np.ones((3, 1)), np.ones(3), st)
    assert d.sample(jax.random.PRNGKey(0), (2,)).shape == (2, 9, 3)
    with pytest.raises(ValueError, match="value must have shape"):
        d.log_prob(np.zeros((8, 3)))
    with pytest.raises(ValueError, match="unbatched"):
        LowRankGaussianSufficientStatistics(np.zeros((2, 3)), np.ones((3, 1)), np.ones(3), st)
    with pytest.raises(TypeError, match="stats must be"):
        LowRankGaussianSufficientStatistics(np.zeros(3), np.ones((3, 1)), np.ones(3), (9,))
    with pytest.raises(ValueError, match="x must be a 2-d"):
        gaussian_sufficient_statistics(np.zeros(3))
    seeded = numpyro.handlers.seed(bayesian_fa, 0)
    with pytest.raises(ValueError, match="sufficient_stats must summarize x"):
        seeded(x[:5], n_components=1, sufficient_stats=st)
    with pytest.raises(ValueError, match="likelihood='collapsed'"):
        seeded(x, n_components=1, sufficient_stats=st, likelihood="latent")
    with pytest.raises(TypeError, match="sufficient_stats must be a bool"):
        seeded(x, n_components=1, sufficient_stats="yes")
    # True without data or with the latent form: the per-row model (prior predictive)
    tr = numpyro.handlers.trace(seeded).get_trace(None, n_components=1, n_features=3,
                                                  num_data=4, sufficient_stats=True)
    assert tr["x"]["value"].shape == (4, 3) and tr["x"]["fn"].batch_shape == (4,)
