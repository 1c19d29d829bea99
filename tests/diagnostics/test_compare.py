"""Model comparison by PSIS-LOO in one call: compare_models and choose_n_components."""

import numpy as np
import pytest
import torch

from pyrogen import diagnostics
from pyrogen.models import BayesianPPCA

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


def test_choose_n_components_svi():
    """Rank-2 data, D=4, n=40: K=1 misses a direction of variance ~4 against noise 0.09 (elpd
    gap ~100 nats, dse a few nats); K=3 adds nothing, so the parsimonious rule gives K=2.
    SVI draws (AutoNormal, 60 steps) keep it fast; deterministic given the seed."""
    g = torch.Generator().manual_seed(0)
    W = 1.5 * torch.randn(4, 2, generator=g, dtype=torch.float64)
    x = torch.randn(40, 2, generator=g, dtype=torch.float64) @ W.T + 0.3 * torch.randn(
        40, 4, generator=g, dtype=torch.float64)
    res = diagnostics.choose_n_components(
        BayesianPPCA, x, [1, 2, 3], model_kwargs={"w_prior": "normal"},
        fit_kwargs={"num_steps": 60, "lr": 0.05, "progress": False, "seed": 0,
                    "num_posterior_samples": 50})
    assert res.chosen_value == 2 and res.chosen == "K=2"
    assert res.best in ("K=2", "K=3")  # K=3 may edge ahead by noise; the rule keeps K=2
    assert res.simpler == "K=1" and res.simpler_elpd_diff > 4 * res.simpler_dse
    assert set(res.models) == {"K=1", "K=2", "K=3"}
    assert res.models["K=2"].n_components == 2


def test_bad_comparison_arguments():
    x = data(10)
    idata = normal_mean_idata(x, 1.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        diagnostics.compare_models({"a": idata, "b": idata}, rule="smallest")
    with pytest.raises(ValueError, match="models must be a dict of at least two"):
        diagnostics.compare_models({"a": idata})
    with pytest.raises(ValueError, match="ks must be a strictly increasing sequence"):
        diagnostics.choose_n_components(BayesianPPCA, np.zeros((5, 3)), [2, 1])
    with pytest.raises(ValueError, match="ks must be a strictly increasing sequence"):
        diagnostics.choose_n_components(BayesianPPCA, np.zeros((5, 3)), [1])
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        diagnostics.choose_n_components(BayesianPPCA, np.zeros(5), [1, 2])
