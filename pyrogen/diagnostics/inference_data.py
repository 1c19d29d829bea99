r"""ArviZ data from Pyro and NumPyro runs: :func:`to_inference_data`.

:func:`to_inference_data` builds one ArviZ object, with the same groups, from four sources: a
Pyro ``MCMC`` run (or a list of single-chain runs), a NumPyro ``MCMC`` run (all chains), a
fitted Pyro SVI guide, and a fitted NumPyro SVI guide with its parameters (or a dict of
draws):

========================  ====================================================================
group                     content
========================  ====================================================================
``posterior``             latent sample sites, shape ``(chain, draw, ...)``
``sample_stats``          ``diverging``, and where the sampler records them ``energy``,
                          ``lp``, ``n_steps``, ``tree_depth``, ``step_size``,
                          ``acceptance_rate`` (MCMC only; see the table below)
``log_likelihood``        per observation :math:`\log p(y_j \mid \theta_s)` for every observed
                          site, shape ``(chain, draw, *batch)``: what ``az.loo`` needs
``observed_data``         the observed values
``posterior_predictive``  one replicated data set per draw, :math:`y^\mathrm{rep}_s \sim
                          p(y \mid \theta_s)`, same shape as the observed site
========================  ====================================================================

Dimension names come from the plates (a site in ``plate("data", n)`` gets the dimension
``"data"``; other dimensions are ``"<site>_dim_<i>"``), overridable with ``dims``.

Sampler statistics: see :mod:`pyrogen.diagnostics.sample_stats`. ``energy`` is the Hamiltonian
:math:`H = U(q) + \tfrac12 p^\top M^{-1} p` of the sampled state (its potential plus the kinetic
energy of its momentum) and ``lp`` is :math:`-U(q)`, the log joint density in the unconstrained
space (with the log-Jacobian of the transforms); both follow NumPyro's (and Stan's) conventions,
so the energy BFMI (Betancourt 2016)

.. math::

    \widehat{\mathrm{BFMI}} = \frac{\sum_{n=2}^{N} (E_n - E_{n-1})^2}
    {\sum_{n=1}^{N} (E_n - \bar E)^2}

means the same for both libraries.

Pointwise log-likelihood. For every posterior draw the model is replayed with its latent sites
set to the draw and each observed site's ``fn.log_prob(value)`` is kept. Pyro: pyrogen first
tries one vectorized replay (``Predictive(...).get_vectorized_trace``, which needs a model
written with plates for every batch dimension) and falls back to one replay per draw when that
fails or returns the wrong shape. NumPyro: ``numpyro.infer.util.log_likelihood`` (``vmap``).
Models can pass a faster exact ``log_likelihood_fn`` (the Bayesian factor models pass the
collapsed Gaussian density). The number is :math:`\log p(y_j \mid \text{all latent sites})`:
for a model with per-example latents (``h`` in a data plate) it is the *conditional* density
given ``h_j``, and LOO on it answers a different question than LOO on the marginal
:math:`p(y_j \mid \theta)`.

Posterior predictive. The model is run with its observations removed (Pyro:
``poutine.uncondition``; NumPyro: an equivalent handler) and its latent sites set to each draw
(``Predictive``), so that every observed site is drawn afresh from its likelihood.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .._validation import check_int
from ._replay import _pick_backend, _site_dims
from .arviz_bridge import _is_arviz_data, _numpy, from_arrays
from .recording import mcmc_run_args
from .sample_stats import (
    _as_chain_list,
    _is_numpyro_mcmc,
    _mcmc_samples,
    _numpyro_sample_stats,
    _pyro_sample_stats,
)

__all__ = ["to_inference_data"]


def to_inference_data(
    source=None,
    *,
    model: Callable | None = None,
    guide: Callable | None = None,
    params: Mapping | None = None,
    backend: str | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    num_samples: int = 500,
    log_likelihood: bool = True,
    log_likelihood_fn: Callable | None = None,
    posterior_predictive: bool = True,
    seed: int = 0,
    coords: Mapping | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    extra_posterior: Mapping[str, np.ndarray] | None = None,
):
    """ArviZ data from a Pyro or NumPyro MCMC run, a fitted SVI guide or a dict of draws.

    Parameters
    ----------
    source : pyro.infer.MCMC, list of them, numpyro.infer.MCMC, or dict, optional
        A finished ``MCMC`` run (its ``model`` and ``run`` arguments are reused); for Pyro
        also a list of single-chain runs (each becomes one chain); NumPyro runs keep their
        chains (``get_samples(group_by_chain=True)``); or a dict of posterior draws shaped
        ``(chain, draw, ...)`` (then ``model`` and ``model_args`` are needed for the
        log-likelihood, and ``backend="numpyro"`` for a NumPyro model). Leave ``None`` with
        ``guide=`` for SVI.
    model : callable, optional
        The Pyro or NumPyro model. Taken from the MCMC kernel when ``source`` is an MCMC run.
    guide : callable, optional
        A fitted guide: ``num_samples`` posterior draws via ``Predictive(guide, ...)`` (one
        chain). Pyro guides keep their parameters in the param store; NumPyro guides need
        ``params``.
    params : dict, optional
        NumPyro SVI parameters (``svi.run(...).params``); implies ``backend="numpyro"``.
    backend : {"pyro", "numpyro"}, optional
        Inferred from ``source`` / ``guide`` / ``params``; needed only for a dict of draws of
        a NumPyro model.
    model_args, model_kwargs
        Arguments of ``model`` (and ``guide``); default: those of ``MCMC.run``.
    num_samples : int
        Guide draws (SVI only).
    log_likelihood : bool
        Add the ``log_likelihood`` and ``observed_data`` groups.
    log_likelihood_fn : callable ``(draws: dict of (S, ...) arrays) -> dict``, optional
        Pointwise log-likelihood ``{obs_site: (S, *batch)}`` computed by the caller (exact
        and fast for models that know their marginal); default: model replay (module
        docstring).
    posterior_predictive : bool
        Add the ``posterior_predictive`` group (one replicated data set per draw).
    seed : int
        Seed of the guide draws and of the posterior predictive draws.
    coords, dims : dict, optional
        ArviZ coordinates and dimension names; ``dims`` overrides the plate-derived names.
    extra_posterior : dict, optional
        Further ``(chain, draw, ...)`` arrays for the posterior group (e.g. rotation-invariant
        functions of the draws).

    Returns
    -------
    arviz.InferenceData (arviz 0.x) or xarray.DataTree (arviz >= 1)

    Raises
    ------
    TypeError
        ``source`` of an unsupported type.
    ValueError
        Neither ``source`` nor ``guide``, no ``model`` to compute the log-likelihood with, or
        an unknown ``backend``.
    """
    model_kwargs = dict(model_kwargs or {})
    seed = check_int(seed, "seed", low=0)
    be = _pick_backend(backend, source, guide, params)
    runs = _as_chain_list(source)
    sample_stats = None
    latent_only = False
    if runs is not None:
        model = model if model is not None else getattr(runs[0].kernel, "model", None)
        run_args, run_kwargs = mcmc_run_args(runs[0])
        if not model_args and run_args is not None:
            model_args = run_args
            model_kwargs = {**run_kwargs, **model_kwargs}
        grouped = {k: _numpy(v) for k, v in _mcmc_samples(runs).items()}
        sample_stats = _pyro_sample_stats(runs)
    elif _is_numpyro_mcmc(source):
        model = model if model is not None else getattr(source.sampler, "model", None)
        run_args, run_kwargs = mcmc_run_args(source)
        if not model_args and run_args is not None:
            model_args = run_args
            model_kwargs = {**run_kwargs, **model_kwargs}
        grouped = {k: np.asarray(v)
                   for k, v in source.get_samples(group_by_chain=True).items()}
        sample_stats = _numpyro_sample_stats(source)
    elif isinstance(source, Mapping):
        grouped = {k: np.asarray(_numpy(v)) for k, v in source.items()}
    elif source is None:
        if guide is None:
            raise ValueError(
                "source must be a pyro.infer.MCMC, a list of them, a numpyro.infer.MCMC or a "
                "dict of draws, or guide must be a fitted guide. Got neither."
            )
        if model is None:
            raise ValueError("model must be given with guide=. Got None instead.")
        num_samples = check_int(num_samples, "num_samples", low=1)
        draws = be.guide_draws(guide, params, num_samples, model_args, model_kwargs, seed)
        grouped = {k: _numpy(v)[None] for k, v in draws.items()}
        latent_only = True
    else:
        raise TypeError(
            "source must be a pyro.infer.MCMC, a list of MCMC runs, a numpyro.infer.MCMC, a "
            f"dict of draws or None (with guide=). Got {type(source).__name__} instead."
        )
    if model is None and (log_likelihood or posterior_predictive or latent_only):
        raise ValueError(
            "model must be given to compute the log-likelihood and posterior predictive (or "
            "pass log_likelihood=False, posterior_predictive=False). Got None instead."
        )
    sites = be.trace(model, model_args, model_kwargs) if model is not None else {}
    obs = {k: s for k, s in sites.items() if s["is_observed"] and not k.startswith("_")}
    if latent_only:  # guide draws: keep the model's latent sites only
        latent = {k for k, s in sites.items() if not s["is_observed"] and not k.startswith("_")}
        grouped = {k: v for k, v in grouped.items() if k in latent}
    grouped = {k: v for k, v in grouped.items() if k not in obs}
    if not grouped:
        raise ValueError("source holds no posterior draws of latent sites. Got none.")
    C, S = next(iter(grouped.values())).shape[:2]
    posterior = dict(grouped)
    if extra_posterior:
        posterior.update({k: _numpy(v) for k, v in extra_posterior.items()})
    all_dims = {k: _site_dims(k, s) for k, s in sites.items()}
    loglik = observed = predictive = None
    if obs and (log_likelihood or posterior_predictive):
        flat = be.as_draws({k: v.reshape(C * S, *v.shape[2:]) for k, v in grouped.items()})
        batch_shapes = {k: tuple(s["fn"].batch_shape) for k, s in obs.items()}
        observed = {k: _numpy(s["value"]) for k, s in obs.items()}
        if log_likelihood:
            values = (log_likelihood_fn(flat) if log_likelihood_fn is not None else
                      be.log_likelihood(model, flat, list(obs), model_args, model_kwargs,
                                        batch_shapes))
            loglik = {k: _numpy(v).reshape(C, S, *np.shape(v)[1:]) for k, v in values.items()}
        if posterior_predictive:
            full = {k: tuple(np.shape(v)) for k, v in observed.items()}
            draws = be.predictive(model, flat, list(obs), model_args, model_kwargs, full, seed)
            predictive = {k: _numpy(draws[k]).reshape(C, S, *full[k]) for k in obs}
    # one dims entry per name: the observed / predicted value has the site's batch and event
    # dims, its log-likelihood only the leading (batch) ones; ArviZ uses the leading names
    keep = set(posterior) | set(obs)
    all_dims = {k: v for k, v in all_dims.items() if k in keep}
    all_dims.update({k: list(v) for k, v in (dims or {}).items()})
    return from_arrays(
        posterior,
        sample_stats=sample_stats,
        log_likelihood=loglik if log_likelihood else None,
        observed_data=observed if (log_likelihood or posterior_predictive) else None,
        posterior_predictive=predictive,
        coords=coords,
        dims=all_dims,
        attrs={"inference_library": be.name},
    )


def _as_idata(data, **kwargs):
    if _is_arviz_data(data):
        return data
    if hasattr(data, "to_inference_data") and callable(data.to_inference_data):
        return data.to_inference_data(**kwargs)
    return to_inference_data(data, **kwargs)
