"""Model replays behind :func:`~pyrogen.diagnostics.to_inference_data`, one backend per library.

Pointwise log-likelihood: for every posterior draw the model is replayed with its latent sites
set to the draw and each observed site's ``fn.log_prob(value)`` is kept. Pyro: one vectorized
replay (``Predictive(...).get_vectorized_trace``) first, one replay per draw when that fails or
returns the wrong shape. NumPyro: ``numpyro.infer.util.log_likelihood`` (``vmap``).

Posterior predictive: the model is run with its observations removed (Pyro:
``poutine.uncondition``; NumPyro: an equivalent handler) and its latent sites set to each draw.
NumPyro and JAX are imported lazily.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.infer
import torch
from pyro import poutine

from .._validation import check_choice
from .arviz_bridge import _numpy
from .sample_stats import _is_numpyro_mcmc


def _is_random(site) -> bool:
    """A real sample site (not a plate's subsample site, not an auxiliary guide site)."""
    return (
        site["type"] == "sample"
        and hasattr(site["fn"], "batch_shape")
        and not (site.get("infer") or {}).get("is_auxiliary", False)
    )


def _site_dims(name, site) -> list[str]:
    value = site["value"]
    batch_ndim = len(site["fn"].batch_shape)
    frames = {f.dim: f.name for f in site["cond_indep_stack"]
              if getattr(f, "vectorized", True) and f.dim is not None}
    names = []
    for i in range(np.ndim(value)):
        dim = i - batch_ndim
        if i < batch_ndim and dim in frames:
            names.append(frames[dim])
        else:
            names.append(f"{name}_dim_{i}")
    return names


def _plate_dims(trace) -> dict[str, list[str]]:
    """Dimension names of each sample site from its plates (batch) and ``<site>_dim_<i>``."""
    return {name: _site_dims(name, site) for name, site in trace.nodes.items()
            if _is_random(site)}


def _loglik_loop(model, flat: dict[str, torch.Tensor], obs_names, args, kwargs):
    S = next(iter(flat.values())).shape[0]
    acc = {k: [] for k in obs_names}
    with torch.no_grad():
        for s in range(S):
            cond = poutine.condition(model, data={k: v[s] for k, v in flat.items()})
            tr = poutine.trace(cond).get_trace(*args, **kwargs)
            for k in obs_names:
                acc[k].append(tr.nodes[k]["fn"].log_prob(tr.nodes[k]["value"]))
    return {k: torch.stack(v) for k, v in acc.items()}


def _loglik_vectorized(model, flat, obs_names, args, kwargs, shapes):
    S = next(iter(flat.values())).shape[0]
    with torch.no_grad():
        pred = pyro.infer.Predictive(model, posterior_samples=flat, num_samples=S)
        tr = pred.get_vectorized_trace(*args, **kwargs)
    out = {}
    for k in obs_names:
        lp = tr.nodes[k]["fn"].log_prob(tr.nodes[k]["value"])
        lp = lp.reshape(-1, *lp.shape[-len(shapes[k]):]) if shapes[k] else lp.reshape(-1)
        if tuple(lp.shape) != (S, *shapes[k]):
            return None
        out[k] = lp
    return out


class _PyroBackend:
    name = "pyro"

    @staticmethod
    def trace(model, args, kwargs):
        with torch.no_grad():
            tr = poutine.trace(model).get_trace(*args, **kwargs)
        return {k: s for k, s in tr.nodes.items() if _is_random(s)}

    @staticmethod
    def as_draws(grouped):
        return {k: torch.as_tensor(np.asarray(_numpy(v))) for k, v in grouped.items()}

    @staticmethod
    def log_likelihood(model, flat, obs, args, kwargs, shapes):
        values = None
        try:
            values = _loglik_vectorized(model, flat, obs, args, kwargs, shapes)
        except Exception:  # noqa: BLE001 - any failure: fall back to exact replays
            values = None
        if values is None:
            values = _loglik_loop(model, flat, obs, args, kwargs)
        return values

    @staticmethod
    def predictive(model, flat, obs, args, kwargs, shapes, seed):
        S = next(iter(flat.values())).shape[0]
        free = poutine.uncondition(model)
        with torch.no_grad(), pyro.poutine.seed(rng_seed=seed):
            try:
                out = pyro.infer.Predictive(free, posterior_samples=flat, num_samples=S,
                                            return_sites=list(obs), parallel=True)(
                    *args, **kwargs)
                if all(tuple(out[k].shape) == (S, *shapes[k]) for k in obs):
                    return out
            except Exception:  # noqa: BLE001 - not vectorizable: one replay per draw
                pass
            return pyro.infer.Predictive(free, posterior_samples=flat, num_samples=S,
                                         return_sites=list(obs), parallel=False)(
                *args, **kwargs)

    @staticmethod
    def guide_draws(guide, params, num_samples, args, kwargs, seed):
        with torch.no_grad(), pyro.poutine.seed(rng_seed=seed):
            return pyro.infer.Predictive(guide, num_samples=num_samples)(*args, **kwargs)


def _numpyro_uncondition(model):
    """NumPyro twin of ``poutine.uncondition``: observed sites are sampled instead."""
    from numpyro.primitives import Messenger

    class _Uncondition(Messenger):
        def process_message(self, msg):
            if msg["type"] == "sample" and msg.get("is_observed"):
                msg["value"] = None
                msg["is_observed"] = False

    return _Uncondition(model)


class _NumPyroBackend:
    name = "numpyro"

    @staticmethod
    def trace(model, args, kwargs):
        from numpyro import handlers

        tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)
        return {k: s for k, s in tr.items() if _is_random(s)}

    @staticmethod
    def as_draws(grouped):
        import jax.numpy as jnp

        return {k: jnp.asarray(np.asarray(_numpy(v))) for k, v in grouped.items()}

    @staticmethod
    def log_likelihood(model, flat, obs, args, kwargs, shapes):
        from numpyro.infer.util import log_likelihood

        out = log_likelihood(model, flat, *args, batch_ndims=1, **kwargs)
        return {k: out[k] for k in obs}

    @staticmethod
    def predictive(model, flat, obs, args, kwargs, shapes, seed):
        import jax
        from numpyro.infer import Predictive

        pred = Predictive(_numpyro_uncondition(model), posterior_samples=flat,
                          return_sites=list(obs), batch_ndims=1)
        return pred(jax.random.PRNGKey(seed), *args, **kwargs)

    @staticmethod
    def guide_draws(guide, params, num_samples, args, kwargs, seed):
        import jax
        from numpyro.infer import Predictive

        pred = Predictive(guide, params=params, num_samples=num_samples)
        return pred(jax.random.PRNGKey(seed), *args, **kwargs)


def _pick_backend(backend, source, guide, params):
    if backend is not None:
        backend = check_choice(backend, "backend", ("pyro", "numpyro"))
    elif _is_numpyro_mcmc(source) or params is not None or (
        guide is not None and type(guide).__module__.startswith("numpyro")
    ):
        backend = "numpyro"
    else:
        backend = "pyro"
    return _NumPyroBackend if backend == "numpyro" else _PyroBackend
