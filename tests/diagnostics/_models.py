"""Shared small models for the diagnostics tests: a conjugate Normal-mean model, in Pyro and
in NumPyro, whose posterior, leave-one-out predictive and log joint have closed forms.

mu ~ N(0, 1) (Pyro: a vector of ``dim`` independent means), x_j ~ N(mu, 1) in the plate
"data"; posterior N(sum x / (n + 1), 1 / (n + 1)).
"""

import math

import pyro
import pyro.distributions as dist
import torch


def pyro_model(x, scale=1.0):
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=x.dtype), 1.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, scale), obs=x)


def pyro_vector_model(x):
    """mu (d,) ~ N(0, I), x_j (d,) ~ N(mu, I): d latent dimensions, event dim in the data."""
    d = x.shape[-1]
    mu = pyro.sample("mu", dist.Normal(torch.zeros(d, dtype=x.dtype), 1.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(mu, 1.0).to_event(1), obs=x)


def numpyro_model(x, scale=1.0):
    import numpyro
    import numpyro.distributions as ndist

    mu = numpyro.sample("mu", ndist.Normal(0.0, 1.0))
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("x", ndist.Normal(mu, scale), obs=x)


def data(n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=g, dtype=torch.float64) + 0.7


def exact_posterior_draws(x, chains, draws, seed=0):
    n = x.shape[0]
    g = torch.Generator().manual_seed(seed)
    mean, sd = float(x.sum()) / (n + 1), 1 / math.sqrt(n + 1)
    return {"mu": mean + sd * torch.randn(chains, draws, generator=g, dtype=torch.float64)}
