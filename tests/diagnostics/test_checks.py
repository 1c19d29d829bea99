"""pyrogen.diagnostics.checks: PSIS-LOO against the closed-form leave-one-out of a conjugate
Normal-mean model; posterior predictive p-values."""

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch

from pyrogen import diagnostics

from ._models import data, exact_posterior_draws
from ._models import pyro_model as model


def test_psis_loo_matches_exact_leave_one_out():
    """4000 exact posterior draws: PSIS-LOO equals the closed-form LOO to Monte Carlo error
    (tolerance 0.05 nats on the sum of 20 terms; the PSIS error here is ~0.005)."""
    x = data()
    n = x.shape[0]
    idata = diagnostics.to_inference_data(exact_posterior_draws(x, 4, 1000), model=model,
                                          model_args=(x,))
    res, messages = diagnostics.loo(idata)
    exact = 0.0
    for j in range(n):
        rest = torch.cat([x[:j], x[j + 1:]])
        m, v = float(rest.sum()) / n, 1.0 / n  # posterior from n-1 points: (n-1)+1 = n
        exact += float(dist.Normal(m, math.sqrt(1 + v)).log_prob(x[j]))
    assert abs(diagnostics.loo_numbers(res)["elpd_loo"] - exact) < 0.05
    assert messages == []


def test_ppc_pvalues_custom_statistic():
    x = data()
    idata = diagnostics.to_inference_data(exact_posterior_draws(x, 4, 500), model=model,
                                          model_args=(x,))
    x = idata.observed_data["x"].values
    res = diagnostics.ppc_pvalues(idata, {"q90": lambda a: np.quantile(a, 0.9)})
    assert set(res["x"]) == {"q90"}
    assert res["x"]["q90"]["observed"] == pytest.approx(np.quantile(x, 0.9))
    rep = idata.posterior_predictive["x"].values.reshape(-1, x.size)
    expected = np.mean(np.quantile(rep, 0.9, axis=1) >= np.quantile(x, 0.9))
    assert res["x"]["q90"]["p_value"] == pytest.approx(expected)
