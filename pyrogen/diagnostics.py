r"""The ArviZ bridge: ``InferenceData`` from Pyro MCMC runs and fitted SVI guides.

:func:`to_inference_data` builds an ArviZ object with the groups

==================  ==========================================================================
group               content
==================  ==========================================================================
``posterior``       latent sample sites, shape ``(chain, draw, ...)``
``sample_stats``    ``diverging`` (bool, ``(chain, draw)``; NUTS/HMC runs only)
``log_likelihood``  per observation :math:`\log p(x_j \mid \theta_s)` for every observed site,
                    shape ``(chain, draw, *batch)``: what ``az.loo`` / ``az.waic`` need
``observed_data``   the observed values
==================  ==========================================================================

``log_likelihood`` is what PSIS-LOO needs [1]_; :func:`summary` reports the rank-normalized
split r-hat and bulk/tail effective sample sizes [2]_.

with dimension names taken from the Pyro plates (a site in ``pyro.plate("data", n)`` gets the
dimension ``"data"``; event dimensions are ``"<site>_dim_<i>"``), overridable with ``dims``.

Version policy. The object is always assembled by pyrogen from NumPy dictionaries and handed to
``arviz.from_dict``; ``arviz.from_pyro`` is never used (it is gone in arviz 1.x, and it drops
the log-likelihood when the model does not vectorize). On arviz 0.x (tested: 0.23) the call is
``az.from_dict(posterior=..., log_likelihood=..., ...)`` returning ``InferenceData``; on arviz
>= 1 it is ``az.from_dict({"posterior": ..., ...})`` returning a ``DataTree`` with the same
groups. :func:`summary`, :func:`loo` and :func:`compare_loo` likewise call the function of the
installed major version. ArviZ is imported lazily, inside the functions, so that ``import
pyrogen`` never imports it.

Pointwise log-likelihood. For every posterior draw the model is replayed with its latent sites
set to the draw (``poutine.condition``) and each observed site's ``fn.log_prob(value)`` is
kept. pyrogen first tries one vectorized replay (``Predictive(...).get_vectorized_trace``,
which needs a model written with plates for every batch dimension) and falls back to one replay
per draw when that fails or returns the wrong shape. Models can pass a faster exact
``log_likelihood_fn`` (the Bayesian factor models pass the collapsed Gaussian density). The
number is :math:`\log p(x_j \mid \text{all latent sites})`: for a model with per-example latents
(``h`` in a data plate) it is the *conditional* density given ``h_j``, and LOO on it answers a
different question than LOO on the marginal :math:`p(x_j \mid \theta)`.

References
----------
.. [1] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model evaluation using
   leave-one-out cross-validation and WAIC", Statistics and Computing 27, 2017.
.. [2] A. Vehtari, A. Gelman, D. Simpson, B. Carpenter and P.-C. Bürkner, "Rank-normalization,
   folding, and localization: an improved R-hat for assessing convergence of MCMC",
   Bayesian Analysis 16(2), 2021.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyro
import pyro.infer
import torch
from pyro import poutine

from ._validation import check_int

__all__ = [
    "to_inference_data",
    "from_arrays",
    "mcmc_sample_stats",
    "summary",
    "loo",
    "compare_loo",
    "arviz_major_version",
]


def _arviz():
    """Import arviz lazily (arviz 0.23 emits a FutureWarning about 1.x on import)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        import arviz

    return arviz


def arviz_major_version() -> int:
    """Major version of the installed arviz (0 or 1)."""
    return int(str(_arviz().__version__).split(".")[0])


def _numpy(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def from_arrays(
    posterior: Mapping[str, np.ndarray],
    *,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    log_likelihood: Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, np.ndarray] | None = None,
    coords: Mapping | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    attrs: Mapping | None = None,
):
    """Assemble ArviZ data from arrays ``(chain, draw, ...)`` (observed data: no sample dims).

    Calls ``arviz.from_dict`` with the signature of the installed major version (see the
    module docstring); returns ``InferenceData`` (arviz 0.x) or ``DataTree`` (arviz >= 1).
    """
    az = _arviz()
    groups = {"posterior": {k: _numpy(v) for k, v in posterior.items()}}
    for name, group in (
        ("sample_stats", sample_stats),
        ("log_likelihood", log_likelihood),
        ("observed_data", observed_data),
    ):
        if group:
            groups[name] = {k: _numpy(v) for k, v in group.items()}
    coords = dict(coords or {})
    dims = {k: list(v) for k, v in (dims or {}).items()}
    if arviz_major_version() >= 1:
        group_attrs = {"posterior": dict(attrs)} if attrs else None
        return az.from_dict(groups, coords=coords, dims=dims, attrs=group_attrs)
    return az.from_dict(**groups, coords=coords, dims=dims, attrs=dict(attrs or {}))


def _as_chain_list(source) -> list[pyro.infer.MCMC] | None:
    if isinstance(source, pyro.infer.MCMC):
        return [source]
    if isinstance(source, (list, tuple)) and source and all(
        isinstance(m, pyro.infer.MCMC) for m in source
    ):
        return list(source)
    return None


def mcmc_sample_stats(source) -> dict[str, np.ndarray]:
    """``{"diverging": bool array (chain, draw)}`` from a Pyro ``MCMC`` (or a list of
    single-chain runs, one per chain). Pyro records divergent transitions of HMC/NUTS as
    post-warmup draw indices per chain; other kernels give all ``False``."""
    runs = _as_chain_list(source)
    if runs is None:
        raise TypeError(
            "source must be a pyro.infer.MCMC or a list of them. "
            f"Got {type(source).__name__} instead."
        )
    rows = []
    for m in runs:
        for c in range(m.num_chains):
            d = m._diagnostics[c] or {}
            div = np.zeros(m.num_samples, dtype=bool)
            idx = np.asarray(list(d.get("divergences", [])), dtype=int)
            idx = idx[(idx >= 0) & (idx < m.num_samples)]
            div[idx] = True
            rows.append(div)
    return {"diverging": np.stack(rows)}


def _mcmc_samples(runs) -> dict[str, torch.Tensor]:
    per = [m.get_samples(group_by_chain=True) for m in runs]
    return {k: torch.cat([p[k] for p in per]) for k in per[0]}


def _is_random(site) -> bool:
    """A real sample site (not a plate's subsample site, not an auxiliary guide site)."""
    return (
        site["type"] == "sample"
        and hasattr(site["fn"], "batch_shape")
        and not site["infer"].get("is_auxiliary", False)
    )


def _plate_dims(trace) -> dict[str, list[str]]:
    """Dimension names of each sample site from its plates (batch) and ``<site>_dim_<i>``."""
    out = {}
    for name, site in trace.nodes.items():
        if not _is_random(site):
            continue
        value = site["value"]
        batch_ndim = len(site["fn"].batch_shape)
        frames = {f.dim: f.name for f in site["cond_indep_stack"] if f.vectorized}
        names = []
        for i in range(value.dim()):
            dim = i - batch_ndim
            if i < batch_ndim and dim in frames:
                names.append(frames[dim])
            else:
                names.append(f"{name}_dim_{i}")
        out[name] = names
    return out


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


def to_inference_data(
    source=None,
    *,
    model: Callable | None = None,
    guide: Callable | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    num_samples: int = 500,
    log_likelihood: bool = True,
    log_likelihood_fn: Callable | None = None,
    coords: Mapping | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    extra_posterior: Mapping[str, np.ndarray] | None = None,
):
    """ArviZ data from a Pyro MCMC run or a fitted SVI guide.

    Parameters
    ----------
    source : pyro.infer.MCMC, list of MCMC, or dict, optional
        A finished ``MCMC`` run (its ``model`` and ``run`` arguments are reused); a list of
        single-chain runs (each becomes one chain); or a dict of posterior draws shaped
        ``(chain, draw, ...)`` (then ``model`` and ``model_args`` are needed for the
        log-likelihood). Leave ``None`` with ``guide=`` for SVI.
    model : callable, optional
        The Pyro model. Taken from the MCMC kernel when ``source`` is an MCMC run.
    guide : callable, optional
        A fitted guide: ``num_samples`` posterior draws are taken with
        ``pyro.infer.Predictive(guide, num_samples=...)`` (one chain).
    model_args, model_kwargs
        Arguments of ``model`` (and ``guide``); default: those of ``MCMC.run``.
    num_samples : int
        Guide draws (SVI only).
    log_likelihood : bool
        Add the ``log_likelihood`` and ``observed_data`` groups.
    log_likelihood_fn : callable ``(draws: dict of (S, ...) tensors) -> dict``, optional
        Pointwise log-likelihood ``{obs_site: (S, *batch)}`` computed by the caller (exact
        and fast for models that know their marginal); default: model replay (module
        docstring).
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
        Neither ``source`` nor ``guide``, or no ``model`` to compute the log-likelihood with.
    """
    model_kwargs = dict(model_kwargs or {})
    runs = _as_chain_list(source)
    sample_stats = None
    if runs is not None:
        kernel_model = getattr(runs[0].kernel, "model", None)
        model = model if model is not None else kernel_model
        if not model_args and runs[0]._args is not None:
            model_args = tuple(runs[0]._args)
            model_kwargs = {**(runs[0]._kwargs or {}), **model_kwargs}
        grouped = _mcmc_samples(runs)
        sample_stats = mcmc_sample_stats(runs)
    elif isinstance(source, Mapping):
        grouped = {k: torch.as_tensor(np.asarray(_numpy(v))) for k, v in source.items()}
    elif source is None:
        if guide is None:
            raise ValueError(
                "source must be a pyro.infer.MCMC, a list of them or a dict of draws, or guide "
                "must be a fitted guide. Got neither."
            )
        if model is None:
            raise ValueError("model must be given with guide=. Got None instead.")
        num_samples = check_int(num_samples, "num_samples", low=1)
        latent = _latent_sites(model, model_args, model_kwargs)
        with torch.no_grad():
            draws = pyro.infer.Predictive(guide, num_samples=num_samples)(
                *model_args, **model_kwargs
            )
        grouped = {k: v.detach().unsqueeze(0) for k, v in draws.items() if k in latent}
    else:
        raise TypeError(
            "source must be a pyro.infer.MCMC, a list of MCMC runs, a dict of draws or None "
            f"(with guide=). Got {type(source).__name__} instead."
        )
    C, S = next(iter(grouped.values())).shape[:2]
    posterior = {k: _numpy(v) for k, v in grouped.items()}
    if extra_posterior:
        posterior.update({k: _numpy(v) for k, v in extra_posterior.items()})
    all_dims: dict[str, list[str]] = {}
    loglik = observed = None
    if model is not None and (log_likelihood or dims is None):
        tr = poutine.trace(model).get_trace(*model_args, **model_kwargs)
        all_dims = {k: v for k, v in _plate_dims(tr).items()}
        obs = {
            k: site["value"]
            for k, site in tr.nodes.items()
            if _is_random(site) and site["is_observed"] and not k.startswith("_")
        }
        if log_likelihood:
            flat = {k: v.reshape(C * S, *v.shape[2:]) for k, v in grouped.items()}
            if log_likelihood_fn is not None:
                values = log_likelihood_fn(flat)
            else:
                shapes = {k: tuple(tr.nodes[k]["fn"].batch_shape) for k in obs}
                values = None
                try:
                    values = _loglik_vectorized(model, flat, obs, model_args, model_kwargs,
                                                shapes)
                except Exception:  # noqa: BLE001 - any failure: fall back to exact replays
                    values = None
                if values is None:
                    values = _loglik_loop(model, flat, obs, model_args, model_kwargs)
            loglik = {k: _numpy(v).reshape(C, S, *v.shape[1:]) for k, v in values.items()}
            observed = {k: _numpy(v) for k, v in obs.items()}
            for k in obs:
                batch = len(tr.nodes[k]["fn"].batch_shape)
                all_dims[k] = all_dims[k][:batch] if loglik[k].ndim - 2 == batch else all_dims[k]
                if observed[k].ndim != len(all_dims[k]):
                    all_dims[k] = all_dims[k] + [
                        f"{k}_dim_{i}" for i in range(len(all_dims[k]), observed[k].ndim)
                    ]
    elif log_likelihood:
        raise ValueError(
            "model must be given to compute the log-likelihood (or pass log_likelihood=False). "
            "Got None instead."
        )
    all_dims = {k: v for k, v in all_dims.items() if k in posterior or (loglik and k in loglik)}
    all_dims.update({k: list(v) for k, v in (dims or {}).items()})
    return from_arrays(
        posterior,
        sample_stats=sample_stats,
        log_likelihood=loglik,
        observed_data=observed,
        coords=coords,
        dims=all_dims,
    )


def _latent_sites(model, args, kwargs) -> set[str]:
    tr = poutine.trace(model).get_trace(*args, **kwargs)
    return {
        k
        for k, s in tr.nodes.items()
        if _is_random(s) and not s["is_observed"] and not k.startswith("_")
    }


def summary(idata, var_names: Sequence[str] | None = None, **kwargs):
    """``arviz.summary``: mean, sd, credible interval, MCSE, ``ess_bulk``, ``ess_tail`` and the
    rank-normalized split ``r_hat`` (Vehtari et al. 2021) per scalar.

    With fewer than 2 chains ``r_hat`` is NaN. For factor models ask for rotation-invariant
    variables (``noise``, ``WWt_diag``, ``col_norm2``): r-hat of raw ``W`` compares chains that
    sit in different symmetric modes (see :mod:`pyrogen.models.bayesian_factor`).

    Returns
    -------
    pandas.DataFrame
    """
    az = _arviz()
    return az.summary(idata, var_names=list(var_names) if var_names else None, **kwargs)


def _captured(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [str(w.message) for w in caught]


def loo(idata, **kwargs):
    """PSIS-LOO (``arviz.loo(..., pointwise=True)``) with ArviZ's warnings captured.

    Returns
    -------
    result : ELPDData
        ``elpd_loo``, ``se``, ``p_loo``, pointwise ``pareto_k``...
    messages : list of str
        Warnings ArviZ raised (e.g. Pareto k above 0.7: the LOO estimate is unreliable for
        those observations). They are returned rather than re-raised so that callers can
        report them next to the number.
    """
    az = _arviz()
    return _captured(az.loo, idata, pointwise=True, **kwargs)


def compare_loo(models: Mapping[str, object], **kwargs):
    """Compare models by PSIS-LOO expected log pointwise predictive density.

    Parameters
    ----------
    models : dict of name -> InferenceData
        Each with a ``log_likelihood`` group on the **same** observations (e.g. one Bayesian
        PPCA per number of components K).

    Returns
    -------
    pandas.DataFrame
        ``arviz.compare`` ranking (best first): ``elpd_loo`` (log scale, higher is better),
        ``p_loo``, ``elpd_diff`` and its standard error ``dse``, ``weight``, ``warning``.
        ``df.attrs["warnings"]`` lists the ArviZ warnings (Pareto k) raised while computing
        it, and ``df.attrs["best"]`` is the top-ranked name.
    """
    if not isinstance(models, Mapping) or len(models) < 2:
        raise ValueError(
            "models must be a dict of at least two name -> InferenceData entries. "
            f"Got {type(models).__name__} with {len(models) if hasattr(models, '__len__') else 0}"
            " entries instead."
        )
    az = _arviz()
    if arviz_major_version() >= 1:
        df, messages = _captured(az.compare, dict(models), **kwargs)
    else:
        kwargs.setdefault("ic", "loo")
        kwargs.setdefault("scale", "log")
        df, messages = _captured(az.compare, dict(models), **kwargs)
    df.attrs["warnings"] = messages
    df.attrs["best"] = str(df.index[0])
    return df
