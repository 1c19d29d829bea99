"""pyrogen.diagnostics._replay: the vectorized and the per-draw replay give the same
pointwise log-likelihood, and the closed form."""


import pyro.distributions as dist
import torch

from pyrogen.diagnostics import _replay

from ._models import data
from ._models import pyro_model as model


def test_vectorized_and_replayed_log_likelihood_agree():
    x = data(7)
    flat = {"mu": torch.linspace(-1, 1, 5, dtype=torch.float64)}
    vec = _replay._loglik_vectorized(model, flat, ["x"], (x,), {}, {"x": (7,)})
    loop = _replay._loglik_loop(model, flat, ["x"], (x,), {})
    torch.testing.assert_close(vec["x"], loop["x"])
    torch.testing.assert_close(loop["x"], dist.Normal(flat["mu"][:, None], 1.0).log_prob(x))
