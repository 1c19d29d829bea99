"""pyrogen.diagnostics.sample_stats: what each kind of run yields, and bad input."""

import types

import numpy as np
import pytest
from pyro.infer import HMC, MCMC, NUTS

from pyrogen import diagnostics
from pyrogen.diagnostics import sample_stats

from ._models import data, pyro_model


def run(kernel, x, samples, warmup):
    m = MCMC(kernel, num_samples=samples, warmup_steps=warmup, disable_progbar=True)
    m.run(x)
    return m


def test_plain_kernels_give_diverging_only():
    x = data(8)
    st = diagnostics.mcmc_sample_stats(run(HMC(pyro_model, num_steps=3), x, 5, 5))
    assert set(st) == {"diverging"} and st["diverging"].shape == (1, 5)
    idata = diagnostics.to_inference_data(run(NUTS(pyro_model), x, 5, 5))
    assert diagnostics.bfmi(idata) is None


def test_default_fields_give_diverging_only():
    fake = types.SimpleNamespace(get_extra_fields=lambda group_by_chain: {
        "diverging": np.array([[0, 1, 0]])})
    st = sample_stats._numpyro_sample_stats(fake)
    assert set(st) == {"diverging"} and st["diverging"].dtype == bool


def test_bad_source():
    with pytest.raises(TypeError, match="source must be a pyro.infer.MCMC or a list"):
        diagnostics.mcmc_sample_stats("nope")
