"""pyrogen.diagnostics.compare: model comparison by PSIS-LOO (compare_loo, compare_models)."""

import numpy as np
import pytest

from pyrogen import diagnostics

from ._models import data, exact_posterior_draws, pyro_model


def normal_mean_idata(x, scale, seed=0):
    return diagnostics.to_inference_data(exact_posterior_draws(x, 2, 500, seed), model=pyro_model,
                                         model_args=(x,), model_kwargs={"scale": scale},
                                         posterior_predictive=False)


def test_compare_models_rules():
    x = data(40)
    good, bad = normal_mean_idata(x, 1.0), normal_mean_idata(x, 3.0)
    # the true noise scale wins by far more than 2 dse, listed first or second
    for models in ({"scale=1": good, "scale=3": bad}, {"scale=3": bad, "scale=1": good}):
        res = diagnostics.compare_models(models)
        assert res.best == res.chosen == "scale=1"
        assert res.elpd_diff == 0.0 and res.dse == 0.0
        assert list(res.table.index) == ["scale=1", "scale=3"]
    assert res.simpler == "scale=3" and res.simpler_elpd_diff > 2 * res.simpler_dse
    # b = a plus a per-observation constant c_j: elpd_loo(b) - elpd_loo(a) = sum c_j = 2 exactly
    # (PSIS weights do not see a constant), with a pointwise spread giving dse = sqrt(n var c)
    # ~ 6.3: b ranks first, but a is within 2 dse, so the parsimonious rule keeps a
    c = np.random.default_rng(0).normal(size=40)
    c = c - c.mean() + 0.05
    shifted = diagnostics.from_arrays(
        {"mu": good.posterior["mu"].values},
        log_likelihood={"x": good.log_likelihood["x"].values + c},
        observed_data={"x": x.numpy()}, dims={"x": ["data"]})
    res = diagnostics.compare_models({"a": good, "b": shifted, "c": bad})
    assert res.best == "b" and res.chosen == "a" and res.simpler is None
    assert res.elpd_diff == pytest.approx(2.0, rel=1e-6)
    assert res.dse == pytest.approx(np.sqrt(40 * np.var(c)), rel=0.05)
    best = diagnostics.compare_models({"a": good, "b": shifted}, rule="best")
    assert best.chosen == best.best == "b"
    assert "chooses a" in str(res)


def test_bad_comparison_arguments():
    x = data(10)
    idata = normal_mean_idata(x, 1.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        diagnostics.compare_models({"a": idata, "b": idata}, rule="smallest")
    with pytest.raises(ValueError, match="models must be a dict of at least two"):
        diagnostics.compare_models({"a": idata})


def test_compare_loo_prefers_the_true_noise_scale():
    x = data(40)
    good = diagnostics.to_inference_data(exact_posterior_draws(x, 2, 500), model=pyro_model,
                                         model_args=(x,))
    bad = diagnostics.to_inference_data(exact_posterior_draws(x, 2, 500), model=pyro_model,
                                        model_args=(x,), model_kwargs={"scale": 3.0})
    df = diagnostics.compare_loo({"scale=1": good, "scale=3": bad})
    assert df.attrs["best"] == "scale=1"
    assert list(df.index) == ["scale=1", "scale=3"]
    assert "elpd_loo" in df.columns and isinstance(df.attrs["warnings"], list)


def test_compare_loo_needs_two_models():
    with pytest.raises(ValueError, match="models must be a dict of at least two"):
        diagnostics.compare_loo({"only": None})
