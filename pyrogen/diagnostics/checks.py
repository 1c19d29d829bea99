r"""Convergence and model checks of ArviZ data, the same on arviz 0.x and 1.x.

:func:`summary` (r-hat [2]_, bulk/tail ESS), :func:`loo` and :func:`loo_numbers` (PSIS-LOO
[1]_ with ArviZ's warnings captured), :func:`bfmi` (energy BFMI [3]_),
:func:`ppc_pvalues` (posterior predictive p-values [4]_).

References
----------
.. [1] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model evaluation using
   leave-one-out cross-validation and WAIC", Statistics and Computing 27, 2017.
.. [2] A. Vehtari, A. Gelman, D. Simpson, B. Carpenter and P.-C. Bürkner, "Rank-normalization,
   folding, and localization: an improved R-hat for assessing convergence of MCMC",
   Bayesian Analysis 16(2), 2021.
.. [3] M. Betancourt, "Diagnosing suboptimal cotangent disintegrations in Hamiltonian Monte
   Carlo", arXiv:1604.00695, 2016.
.. [4] A. Gelman, X.-L. Meng and H. Stern, "Posterior predictive assessment of model fitness
   via realized discrepancies", Statistica Sinica 6, 1996.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .arviz_bridge import _arviz, _captured, _group, arviz_major_version, group_names

__all__ = ["summary", "loo", "loo_numbers", "bfmi", "ppc_pvalues"]


def summary(idata, var_names: Sequence[str] | None = None, **kwargs):
    """``arviz.summary``: mean, sd, credible interval, MCSE, ``ess_bulk``, ``ess_tail`` and the
    rank-normalized split ``r_hat`` [2]_ per scalar.

    With fewer than 2 chains ``r_hat`` is NaN. For factor models ask for rotation-invariant
    variables (``noise``, ``WWt_diag``, ``col_norm2``): r-hat of raw ``W`` compares chains that
    sit in different symmetric modes (see :mod:`pyrogen.models.bayesian_factor`). The columns
    ``mean``, ``sd``, ``ess_bulk``, ``ess_tail`` and ``r_hat`` exist on arviz 0.x and 1.x; on
    1.x the numbers are not rounded (``round_to="none"`` unless given).

    Returns
    -------
    pandas.DataFrame
    """
    az = _arviz()
    if arviz_major_version() >= 1:  # 1.x rounds to a few significant digits by default
        kwargs.setdefault("round_to", "none")
    return az.summary(idata, var_names=list(var_names) if var_names else None, **kwargs)


def loo(idata, **kwargs):
    """PSIS-LOO (``arviz.loo(..., pointwise=True)``) with ArviZ's warnings captured.

    Returns
    -------
    result : ELPDData
        ``elpd_loo`` (arviz 1.x: ``elpd``), ``se``, ``p_loo`` (1.x: ``p``), pointwise
        ``pareto_k``...
    messages : list of str
        Warnings ArviZ raised (e.g. Pareto k above 0.7: the LOO estimate is unreliable for
        those observations). They are returned rather than re-raised so that callers can
        report them next to the number.
    """
    az = _arviz()
    return _captured(az.loo, idata, pointwise=True, **kwargs)


def loo_numbers(res) -> dict:
    """``{"elpd_loo", "se", "p_loo", "n_data", "pareto_k", "good_k"}`` of a :func:`loo`
    result, whichever arviz major version made it."""
    elpd = getattr(res, "elpd_loo", None)
    if elpd is None:
        elpd = res.elpd
    p = getattr(res, "p_loo", None)
    if p is None:
        p = res.p
    k = np.asarray(res.pareto_k).ravel()
    good = getattr(res, "good_k", None)
    return {"elpd_loo": float(elpd), "se": float(res.se), "p_loo": float(p),
            "n_data": int(k.size), "pareto_k": k,
            "good_k": float(good) if good is not None else 0.7}


def bfmi(idata) -> np.ndarray | None:
    r"""Energy Bayesian fraction of missing information per chain [3]_ (``arviz.bfmi``),
    :math:`\sum_{n=2}^N (E_n - E_{n-1})^2 \big/ \sum_{n=1}^N (E_n - \bar E)^2`, or ``None``
    when ``sample_stats`` has no ``energy``. Values below 0.3 mean that resampling the
    momentum moves the energy too little to explore its distribution (heavy tails,
    funnels)."""
    if "sample_stats" not in group_names(idata) or "energy" not in _group(idata,
                                                                            "sample_stats"):
        return None
    out = _arviz().bfmi(idata)
    if hasattr(out, "children") or hasattr(out, "data_vars"):  # arviz 1.x: a tree / dataset
        node = out.to_dataset() if hasattr(out, "to_dataset") else out
        out = node["energy"].values
    return np.asarray(out, dtype=float).ravel()


_PPC_STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": np.mean,
    "sd": np.std,
    "min": np.min,
    "max": np.max,
}


def ppc_pvalues(idata, statistics: Mapping[str, Callable] | None = None) -> dict:
    r"""Posterior predictive p-values of discrepancy statistics [4]_.

    For each observed variable :math:`y` and statistic :math:`T` (a function of the whole
    data set), :math:`p = \Pr(T(y^\mathrm{rep}) \ge T(y) \mid y)`, estimated by the fraction
    of posterior predictive draws :math:`y^\mathrm{rep}_s` with :math:`T(y^\mathrm{rep}_s)
    \ge T(y)`. Values near 0 or 1 say that the model rarely reproduces that feature of the
    data. These p-values are not uniform under a correct model (they concentrate near 0.5),
    so they flag gross misfit only.

    Parameters
    ----------
    idata
        With ``observed_data`` and ``posterior_predictive`` groups.
    statistics : dict of name -> callable ``(array) -> float``, optional
        Default: mean, standard deviation, minimum and maximum over all elements.

    Returns
    -------
    dict
        ``{var: {stat: {"observed": T(y), "replicated_mean": mean_s T(y_s), "p_value": p}}}``
        (empty without the two groups).
    """
    groups = group_names(idata)
    if "posterior_predictive" not in groups or "observed_data" not in groups:
        return {}
    stats = dict(statistics) if statistics is not None else dict(_PPC_STATISTICS)
    pp, od = _group(idata, "posterior_predictive"), _group(idata, "observed_data")
    out = {}
    for var in pp.data_vars:
        if var not in od:
            continue
        y = np.asarray(od[var].values)
        rep = np.asarray(pp[var].values)
        rep = rep.reshape(-1, *y.shape)
        res = {}
        for name, fn in stats.items():
            t_obs = float(fn(y))
            t_rep = np.asarray([float(fn(r)) for r in rep])
            res[name] = {"observed": t_obs, "replicated_mean": float(t_rep.mean()),
                         "p_value": float(np.mean(t_rep >= t_obs))}
        out[str(var)] = res
    return out
