"""Choosing the size of a model by PSIS-LOO: :func:`choose_n_components` fits one model per
candidate number of components (any model class passed in: this module imports no model) and
compares them with :func:`~pyrogen.diagnostics.compare_models`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .compare import ModelComparison, compare_models

__all__ = ["choose_n_components"]


def choose_n_components(model_cls, x, ks: Sequence[int], *,
                        model_kwargs: Mapping | None = None,
                        fit_kwargs: Mapping | None = None, rule: str = "parsimonious",
                        se_factor: float = 2.0) -> ModelComparison:
    """Fit one model per number of components and choose K by PSIS-LOO.

    For each ``k`` in ``ks`` (increasing): ``model_cls(n_features, k, **model_kwargs)``,
    cast to the dtype of ``x``, ``fit(x, **fit_kwargs)``, ``to_inference_data()``; then
    :func:`compare_models`. Works for any model class with that constructor and a
    ``to_inference_data`` whose ``log_likelihood`` group is on ``x`` (the Bayesian factor
    models; their NumPyro backend via ``fit_kwargs={"backend": "numpyro", ...}`` where the
    model offers it).

    Parameters
    ----------
    model_cls : type
        E.g. :class:`pyrogen.models.BayesianPPCA`.
    x : Tensor, shape ``(n, n_features)``
    ks : sequence of int
        Candidate numbers of components, at least two, strictly increasing.
    model_kwargs, fit_kwargs : dict, optional
        Constructor and ``fit`` arguments (e.g. ``{"method": "nuts", "num_chains": 2}``).
    rule, se_factor
        See :func:`compare_models`.

    Returns
    -------
    ModelComparison
        ``chosen_value`` is the chosen K; ``models`` maps ``"K=k"`` to the fitted models.

    Raises
    ------
    ValueError
        ``ks`` not a strictly increasing sequence of at least two positive ints.
    """
    ks = list(ks) if isinstance(ks, Sequence) and not isinstance(ks, str) else None
    if (ks is None or len(ks) < 2 or any(isinstance(k, bool) or not isinstance(k, int)
                                         or k < 1 for k in ks)
            or any(b <= a for a, b in zip(ks, ks[1:]))):
        raise ValueError(
            "ks must be a strictly increasing sequence of at least two positive ints. "
            f"Got {ks!r} instead."
        )
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"x must be a 2-D array (n, n_features). Got shape {tuple(x.shape)}.")
    models, idatas = {}, {}
    for k in ks:
        m = model_cls(x.shape[1], k, **dict(model_kwargs or {}))
        if isinstance(m, torch.nn.Module) and x.is_floating_point():
            m = m.to(dtype=x.dtype)
        m.fit(x, **dict(fit_kwargs or {}))
        models[f"K={k}"] = m
        idatas[f"K={k}"] = m.to_inference_data(x)
    res = compare_models(idatas, rule=rule, se_factor=se_factor)
    res.models = models
    res.chosen_value = int(res.chosen.split("=")[1])
    return res
