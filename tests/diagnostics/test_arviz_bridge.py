"""pyrogen.diagnostics.arviz_bridge: the call made on arviz 1.x (faked) and group access."""

import types

import numpy as np

from pyrogen import diagnostics
from pyrogen.diagnostics import arviz_bridge

from ._models import data, exact_posterior_draws
from ._models import pyro_model as model


def test_arviz_1x_call_shape(monkeypatch):
    """Under arviz >= 1 the groups go to from_dict as one nested dict (no from_pyro)."""
    calls = {}

    def fake_from_dict(groups, **kwargs):
        calls["groups"], calls["kwargs"] = groups, kwargs
        return "datatree"

    fake = types.SimpleNamespace(__version__="1.0.0", from_dict=fake_from_dict)
    monkeypatch.setattr(arviz_bridge, "_arviz", lambda: fake)
    out = diagnostics.from_arrays({"mu": np.zeros((1, 3))},
                                  log_likelihood={"x": np.zeros((1, 3, 2))},
                                  observed_data={"x": np.zeros(2)}, dims={"x": ["data"]})
    assert out == "datatree"
    assert set(calls["groups"]) == {"posterior", "log_likelihood", "observed_data"}
    assert calls["kwargs"]["dims"] == {"x": ["data"]}


def test_group_names_of_inference_data():
    x = data(5)
    idata = diagnostics.to_inference_data(exact_posterior_draws(x, 1, 10), model=model,
                                          model_args=(x,))
    assert set(arviz_bridge.group_names(idata)) == {
        "posterior", "log_likelihood", "observed_data", "posterior_predictive"}
    assert arviz_bridge.arviz_major_version() in (0, 1)
