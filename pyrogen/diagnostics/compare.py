r"""Model comparison by PSIS-LOO [1]_: :func:`compare_loo` (ArviZ's table, one convention on
arviz 0.x and 1.x) and :func:`compare_models` (rank and choose, with a parsimony rule).

References
----------
.. [1] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model evaluation using
   leave-one-out cross-validation and WAIC", Statistics and Computing 27, 2017.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_choice, check_float
from .arviz_bridge import _arviz, _captured, arviz_major_version

__all__ = ["compare_loo", "compare_models", "ModelComparison"]


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
        ``p_loo``, ``elpd_diff`` (best minus this model, >= 0) and its standard error
        ``dse``, ``weight``... (on arviz 1.x, whose names are ``elpd`` / ``p`` and whose
        ``elpd_diff`` has the opposite sign, the table is converted to these).
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
        kwargs.setdefault("round_to", "none")  # 1.x rounds by default
        df, messages = _captured(az.compare, dict(models), **kwargs)
        # arviz 1.x: elpd / p, and elpd_diff = elpd_m - elpd_best <= 0; 0.x: elpd_loo / p_loo
        # and elpd_diff = elpd_best - elpd_m >= 0. pyrogen returns the 0.x convention.
        df = df.rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
        df["elpd_diff"] = -df["elpd_diff"]
    else:
        kwargs.setdefault("ic", "loo")
        kwargs.setdefault("scale", "log")
        df, messages = _captured(az.compare, dict(models), **kwargs)
    df.attrs["warnings"] = messages
    df.attrs["best"] = str(df.index[0])
    return df


@dataclass
class ModelComparison:
    """Result of :func:`compare_models` / :func:`choose_n_components`.

    Attributes
    ----------
    table : pandas.DataFrame
        The :func:`compare_loo` table (best first).
    best : str
        Highest ``elpd_loo``.
    chosen : str
        The model the rule picks (see :func:`compare_models`).
    elpd_diff, dse : float
        ``elpd_loo`` of ``best`` minus that of ``chosen`` and the standard error of that
        difference (0 and 0 when ``chosen == best``).
    simpler : str or None
        The model listed just before ``chosen`` (None for the first), with
        ``simpler_elpd_diff`` / ``simpler_dse``: how much worse it is than the best model,
        the evidence that ``chosen`` is not too large.
    rule, se_factor
        How ``chosen`` was picked.
    warnings : list of str
        ArviZ warnings (Pareto k) raised on the way.
    models : dict
        Fitted models by name (:func:`choose_n_components` only).
    chosen_value : int or None
        The number of components of ``chosen`` (:func:`choose_n_components` only).
    """

    table: object
    best: str
    chosen: str
    elpd_diff: float
    dse: float
    simpler: str | None
    simpler_elpd_diff: float | None
    simpler_dse: float | None
    rule: str
    se_factor: float
    warnings: list = field(default_factory=list)
    models: dict = field(default_factory=dict)
    chosen_value: int | None = None

    def __str__(self) -> str:
        lines = [f"PSIS-LOO ranks first: {self.best}; the {self.rule} rule chooses "
                 f"{self.chosen} (elpd_loo {self.elpd_diff:.1f} +- {self.dse:.1f} below the "
                 f"best)"]
        if self.simpler is not None:
            lines.append(f"next simpler model {self.simpler}: elpd_loo "
                         f"{self.simpler_elpd_diff:.1f} +- {self.simpler_dse:.1f} below the "
                         "best")
        if self.warnings:
            lines.append(f"ArviZ warnings: {len(self.warnings)} (Pareto k; see .warnings)")
        return "\n".join(lines)


def compare_models(models: Mapping[str, object], *, rule: str = "parsimonious",
                   se_factor: float = 2.0, **kwargs) -> ModelComparison:
    r"""Rank models by PSIS-LOO and choose one, in one call.

    Parameters
    ----------
    models : dict of name -> InferenceData
        On the same observations, listed from the simplest to the most complex (e.g.
        ``{"K=1": ..., "K=2": ..., "K=3": ...}``).
    rule : {"parsimonious", "best"}
        ``"best"``: the highest ``elpd_loo``. ``"parsimonious"``: the first (simplest) model
        whose ``elpd_loo`` is within ``se_factor`` standard errors of the best,
        :math:`\mathrm{elpd}_\mathrm{best} - \mathrm{elpd}_m \le c\,
        \mathrm{se}(\mathrm{elpd}_\mathrm{best} - \mathrm{elpd}_m)`; a larger model has to
        earn its place by more than the noise of the estimate [1]_.
    se_factor : float
        :math:`c` above (default 2).
    **kwargs
        Passed to ``arviz.compare``.

    Returns
    -------
    ModelComparison
    """
    rule = check_choice(rule, "rule", ("parsimonious", "best"))
    se_factor = check_float(se_factor, "se_factor", 0.0, None, "cc")
    df = compare_loo(models, **kwargs)
    names = [str(n) for n in models]

    def diff(name):
        return float(df.loc[name, "elpd_diff"]), float(np.nan_to_num(df.loc[name, "dse"]))

    best = df.attrs["best"]
    chosen = best
    if rule == "parsimonious":
        for name in names:
            d, s = diff(name)
            if d <= se_factor * s or name == best:
                chosen = name
                break
    i = names.index(chosen)
    simpler = names[i - 1] if i > 0 else None
    d, s = diff(chosen)
    sd, ss = diff(simpler) if simpler is not None else (None, None)
    return ModelComparison(table=df, best=best, chosen=chosen, elpd_diff=d, dse=s,
                           simpler=simpler, simpler_elpd_diff=sd, simpler_dse=ss, rule=rule,
                           se_factor=se_factor, warnings=list(df.attrs["warnings"]))
