"""``fit(method="nuts", backend="numpyro")`` of :class:`pyrogen.models.BayesianFactorAnalysis`
and :class:`pyrogen.models.BayesianPPCA`: NumPyro NUTS on the twin, draws stored in the Pyro
model's posterior buffers."""

from __future__ import annotations

import contextlib
import time

import jax
import numpy as np
import torch

from .._history import FitHistory
from .mcmc import run_nuts, sample_stats
from .models import bayesian_fa, bayesian_ppca

__all__ = ["twin_model", "twin_kwargs", "fit_nuts_numpyro"]

_CONFIG_KEYS = ("w_prior", "w_scale", "ard_concentration", "ard_rate", "noise_prior",
                "noise_params", "loc_scale", "noise_floor", "likelihood")


def twin_model(model):
    """The NumPyro twin function of a pyrogen Bayesian FA / PPCA instance."""
    return bayesian_ppca if model._isotropic else bayesian_fa


def twin_kwargs(model) -> dict:
    """Keyword arguments that configure the twin exactly as ``model`` (priors, likelihood)."""
    cfg = model.config
    kw = {k: cfg[k] for k in _CONFIG_KEYS}
    kw["noise_params"] = tuple(kw["noise_params"])
    kw["n_components"] = int(cfg["n_components"])
    return kw


def _x64(dtype):
    if dtype == torch.float64 and not jax.config.jax_enable_x64:
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def _unconstrained_start(values: dict, noncentered: bool, latent: bool) -> dict:
    """A chain start (constrained torch values) in numpyro's unconstrained coordinates."""
    out = {"loc": values["loc"], "noise": values["noise"].log()}
    if "alpha" in values:
        out["alpha"] = values["alpha"].log()
    if noncentered:
        out["W_decentered"] = values["W"] * values["alpha"].sqrt()
    else:
        out["W"] = values["W"]
    if latent:
        out["h"] = values["h"]
    return out


def fit_nuts_numpyro(model, x: torch.Tensor, *, num_samples: int, warmup_steps: int,
                     num_chains: int, chain_method: str, target_accept_prob: float,
                     max_tree_depth: int, init: str, progress: bool,
                     seed: int | None = None, sufficient_stats: bool = True) -> FitHistory:
    """NumPyro NUTS for a fitted-to-be pyrogen Bayesian FA / PPCA ``model`` (see
    :meth:`pyrogen.models.BayesianFactorAnalysis.fit` with ``backend="numpyro"``).

    Chain starts are the Pyro path's (``init="pca"``: PCA solution, W randomly rotated per
    chain, noise jittered, from torch's RNG), so a seeded Pyro and NumPyro fit start at the same
    points; ``init="prior"`` draws starts from the prior (numpyro ``init_to_sample``). The
    NumPyro seed is ``seed`` or, if ``None``, drawn from torch's RNG. ``sufficient_stats``
    (collapsed form only): the NUTS target evaluates the likelihood from the data's sufficient
    statistics (:func:`pyrogen.numpyro.run_nuts`); ``False``: row by row.
    """
    from numpyro.infer import init_to_sample

    history = FitHistory(
        method="nuts",
        info={"num_samples": num_samples, "warmup_steps": warmup_steps,
              "num_chains": num_chains, "chain_method": chain_method, "backend": "numpyro"},
    )
    t0 = time.perf_counter()
    kw = twin_kwargs(model)
    noncentered = kw["w_prior"] == "ard"
    latent = kw["likelihood"] == "latent"
    fn = twin_model(model)
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
    dtype = model.dtype
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    with _x64(dtype):
        init_params = None
        init_strategy = None
        if init == "pca":
            starts = [model._chain_init(model._init_values) for _ in range(num_chains)]
            if latent:
                for s in starts:
                    s["h"], _ = model._posterior_h(x, s["W"], model._noise_diag(s["noise"]),
                                                   s["loc"])
            unc = [_unconstrained_start(s, noncentered, latent) for s in starts]
            # NumPy arrays (not jax ones): creating a jax array here would initialise JAX's
            # backend before run_nuts can ask for one CPU device per parallel chain
            init_params = {
                k: np.stack([u[k].detach().cpu().numpy() for u in unc]).astype(np_dtype)
                for k in unc[0]
            }
            if num_chains == 1:
                init_params = {k: v[0] for k, v in init_params.items()}
        else:
            init_strategy = init_to_sample
        xj = x.detach().cpu().numpy().astype(np_dtype)
        mcmc = run_nuts(
            fn, xj, num_chains=num_chains, chain_method=chain_method,
            num_warmup=warmup_steps, num_samples=num_samples, seed=seed,
            progress_bar=progress, target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth, init_params=init_params,
            init_strategy=init_strategy, noncentered=noncentered,
            sufficient_stats="auto" if sufficient_stats else False, **kw,
        )
        samples = mcmc.get_samples(group_by_chain=True)
        stats = sample_stats(mcmc)
    C, S = num_chains, num_samples
    flat = {k: torch.tensor(np.array(v).reshape(C * S, *np.shape(v)[2:]), dtype=dtype)
            for k, v in samples.items() if k in ("alpha", "W", "noise", "loc")}
    model._store_draws(flat, torch.arange(C).repeat_interleave(S))
    model.mcmc = mcmc
    history.seconds = time.perf_counter() - t0
    ll = model.pointwise_log_likelihood(x)
    history.losses = (-ll.mean(1)).tolist()
    div = stats["diverging"]
    history.info["divergences"] = int(div.sum())
    history.info["acceptance_rate"] = float(stats["acceptance_rate"].mean())
    history.info["seed"] = seed
    history.info.update({k: v for k, v in mcmc.pyrogen_timing.items()})
    history.metrics["divergences_per_chain"] = [int(d) for d in div.sum(1)]
    return history
