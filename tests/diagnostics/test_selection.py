"""pyrogen.diagnostics.selection: choose_n_components fits one model per K and picks by
PSIS-LOO."""

import numpy as np
import pytest
import torch

from pyrogen import ConvergenceWarning, diagnostics
from pyrogen.models import BayesianPPCA


def test_choose_n_components_svi():
    """Rank-2 data, D=4, n=40: K=1 misses a direction of variance ~4 against noise 0.09 (elpd
    gap ~100 nats, dse a few nats); K=3 adds nothing, so the parsimonious rule gives K=2.
    SVI draws (AutoNormal, 60 steps) keep it fast; deterministic given the seed."""
    g = torch.Generator().manual_seed(0)
    W = 1.5 * torch.randn(4, 2, generator=g, dtype=torch.float64)
    x = torch.randn(40, 2, generator=g, dtype=torch.float64) @ W.T + 0.3 * torch.randn(
        40, 4, generator=g, dtype=torch.float64)
    with pytest.warns(ConvergenceWarning):  # 60 SVI steps: short, and the fits say so
        res = diagnostics.choose_n_components(
            BayesianPPCA, x, [1, 2, 3], model_kwargs={"w_prior": "normal"},
            fit_kwargs={"num_steps": 60, "lr": 0.05, "progress": False, "seed": 0,
                        "num_posterior_samples": 50})
    assert res.chosen_value == 2 and res.chosen == "K=2"
    assert res.best in ("K=2", "K=3")  # K=3 may edge ahead by noise; the rule keeps K=2
    assert res.simpler == "K=1" and res.simpler_elpd_diff > 4 * res.simpler_dse
    assert set(res.models) == {"K=1", "K=2", "K=3"}
    assert res.models["K=2"].n_components == 2


def test_bad_selection_arguments():
    with pytest.raises(ValueError, match="ks must be a strictly increasing sequence"):
        diagnostics.choose_n_components(BayesianPPCA, np.zeros((5, 3)), [2, 1])
    with pytest.raises(ValueError, match="ks must be a strictly increasing sequence"):
        diagnostics.choose_n_components(BayesianPPCA, np.zeros((5, 3)), [1])
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        diagnostics.choose_n_components(BayesianPPCA, np.zeros(5), [1, 2])
