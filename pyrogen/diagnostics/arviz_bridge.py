"""The ArviZ bridge: build and read ArviZ data the same way on arviz 0.x and 1.x.

The object is always assembled by pyrogen from NumPy dictionaries and handed to
``arviz.from_dict``; ``arviz.from_pyro`` is never used (it is gone in arviz 1.x, and it drops
the log-likelihood when the model does not vectorize). On arviz 0.x (tested: 0.23) the call is
``az.from_dict(posterior=..., log_likelihood=..., ...)`` returning ``InferenceData``; on arviz
>= 1 it is ``az.from_dict({"posterior": ..., ...})`` returning a ``DataTree`` with the same
groups. ArviZ is imported lazily, inside the functions, so that ``import pyrogen`` does not
import it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch

__all__ = ["from_arrays", "arviz_major_version", "group_names"]


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
    posterior_predictive: Mapping[str, np.ndarray] | None = None,
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
        ("posterior_predictive", posterior_predictive),
    ):
        if group:
            groups[name] = {k: _numpy(v) for k, v in group.items()}
    coords = dict(coords or {})
    dims = {k: list(v) for k, v in (dims or {}).items()}
    if arviz_major_version() >= 1:
        group_attrs = {"posterior": dict(attrs)} if attrs else None
        return az.from_dict(groups, coords=coords, dims=dims, attrs=group_attrs)
    extra = {"posterior_attrs": dict(attrs)} if attrs else {}
    return az.from_dict(**groups, coords=coords, dims=dims, attrs=dict(attrs or {}), **extra)


def group_names(idata) -> list[str]:
    """Names of the groups of ``InferenceData`` (arviz 0.x) or of a ``DataTree`` (arviz 1.x)."""
    if type(idata).__name__ == "DataTree":
        return [str(k) for k in idata.children]
    return list(idata.groups())


def _group(idata, name):
    """The group ``name`` as an ``xarray.Dataset`` (InferenceData or DataTree)."""
    if type(idata).__name__ == "DataTree":
        return idata[name].to_dataset()
    return getattr(idata, name)


def _is_arviz_data(obj) -> bool:
    return type(obj).__name__ in ("InferenceData", "DataTree")


def _captured(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [str(w.message) for w in caught]
