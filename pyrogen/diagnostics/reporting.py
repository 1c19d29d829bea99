r"""The Bayesian-workflow report of one run: :func:`report` and :class:`Report`.

r-hat [2]_, bulk/tail ESS, divergences, energy BFMI [3]_, PSIS-LOO [1]_ with Pareto-k counts
and posterior predictive checks [4]_ go into ``report.json``, ``report.txt`` and PNG plots
(every file written atomically through :mod:`pyrogen._io`), with what is wrong said in plain
words.

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

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._io import atomic_write_text
from .._validation import check_float, check_int
from ..plotting import save_figure
from .arviz_bridge import _arviz, _group, arviz_major_version, group_names
from .checks import bfmi, loo, loo_numbers, ppc_pvalues, summary
from .inference_data import _as_idata

__all__ = ["report", "Report"]


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


@dataclass
class Report:
    """What :func:`report` found for one run (also written to ``report.json``).

    Attributes
    ----------
    title : str
    inference_library : str or None
        ``"pyro"`` or ``"numpyro"`` where known.
    chains, draws : int
    summary : dict
        ``{quantity: {"mean", "sd", "ess_bulk", "ess_tail", "r_hat"}}`` per scalar.
    divergences : dict or None
        ``{"total": int, "per_chain": [...]}``; None without sampler statistics.
    bfmi : list of float or None
        Per chain; None when the run recorded no energy.
    loo : dict or None
        Per observed variable: ``elpd_loo``, ``se``, ``p_loo``, ``n_data``, ``good_k`` and
        ``pareto_k_counts`` (``"k<=0.5"``, ``"0.5<k<=0.7"``, ``"0.7<k<=1"``, ``"k>1"``).
    ppc : dict or None
        :func:`ppc_pvalues` output.
    problems : list of str
        Each failed check in plain words (empty: nothing flagged).
    notes : list of str
        Checks that could not be made and why, ArviZ warnings.
    files : dict
        Written files by kind (``json``, ``text``, ``trace``, ``rank``, ``ppc``).
    thresholds : dict
        The limits the checks used.
    """

    title: str
    inference_library: str | None
    chains: int
    draws: int
    summary: dict
    divergences: dict | None
    bfmi: list | None
    loo: dict | None
    ppc: dict | None
    problems: list
    notes: list
    files: dict
    thresholds: dict
    arviz_version: str

    @property
    def ok(self) -> bool:
        """True when no check flagged a problem."""
        return not self.problems

    def to_dict(self) -> dict:
        return _jsonable({
            "title": self.title, "inference_library": self.inference_library,
            "chains": self.chains, "draws": self.draws, "ok": self.ok,
            "problems": self.problems, "notes": self.notes, "thresholds": self.thresholds,
            "divergences": self.divergences, "bfmi": self.bfmi, "loo": self.loo,
            "ppc": self.ppc, "summary": self.summary, "files": self.files,
            "arviz_version": self.arviz_version,
        })

    def __str__(self) -> str:
        t = self.thresholds
        lines = [f"{self.title}: {self.chains} chain(s) x {self.draws} draws"
                 + (f" ({self.inference_library})" if self.inference_library else "")]
        if self.summary:
            rh = [v["r_hat"] for v in self.summary.values() if v["r_hat"] is not None
                  and math.isfinite(v["r_hat"])]
            eb = [v["ess_bulk"] for v in self.summary.values()]
            et = [v["ess_tail"] for v in self.summary.values()]
            lines.append(f"  {len(self.summary)} quantities: max r_hat "
                         + (f"{max(rh):.3f}" if rh else "n/a")
                         + f" (want <= {t['rhat_max']}), min ESS bulk {min(eb):.0f} / tail "
                         f"{min(et):.0f} (want >= {t['ess_min']})")
        if self.divergences is not None:
            lines.append(f"  divergences: {self.divergences['total']} "
                         f"(per chain {self.divergences['per_chain']})")
        if self.bfmi is not None:
            lines.append("  BFMI per chain: " + ", ".join(f"{b:.2f}" for b in self.bfmi)
                         + f" (want >= {t['bfmi_min']})")
        for var, res in (self.loo or {}).items():
            c = res["pareto_k_counts"]
            lines.append(f"  PSIS-LOO[{var}]: elpd_loo {res['elpd_loo']:.1f} +- "
                         f"{res['se']:.1f}, p_loo {res['p_loo']:.1f}; Pareto k: "
                         + ", ".join(f"{k} {n}" for k, n in c.items()))
        for var, stats in (self.ppc or {}).items():
            lines.append(f"  PPC[{var}] p-values: " + ", ".join(
                f"{s} {r['p_value']:.2f}" for s, r in stats.items()))
        lines.append("problems:" if self.problems else "problems: none flagged")
        lines += [f"  - {p}" for p in self.problems]
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {n}" for n in self.notes]
        if self.files:
            lines.append("files: " + ", ".join(os.path.basename(f) for f in self.files.values()))
        return "\n".join(lines)


def _save_plot(kind: str, idata, var_names, path: str, num_pp: int) -> None:
    """Draw one ArviZ plot and write it as a PNG through :func:`pyrogen.plotting.save_figure`
    (atomic); the figures it opened are closed."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    az = _arviz()
    before = set(plt.get_fignums())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if arviz_major_version() >= 1:
                fn = {"trace": az.plot_trace_dist, "rank": az.plot_rank,
                      "ppc": az.plot_ppc_dist}[kind]
                kw = {"num_samples": num_pp} if kind == "ppc" else {"var_names": var_names}
                fn(idata, backend="matplotlib", **kw)
                # arviz-plots draws with pyplot.subplots: the new figure is pyplot's newest
                fig = plt.figure(max(set(plt.get_fignums()) - before))
            else:
                if kind == "trace":
                    axes = az.plot_trace(idata, var_names=var_names, compact=True)
                elif kind == "rank":
                    axes = az.plot_rank(idata, var_names=var_names)
                else:
                    axes = az.plot_ppc(idata, num_pp_samples=num_pp)
                fig = np.ravel(axes)[0].figure
                fig.tight_layout()
            save_figure(fig, path, dpi=80)
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)


def _k_counts(k: np.ndarray) -> dict:
    return {"k<=0.5": int((k <= 0.5).sum()), "0.5<k<=0.7": int(((k > 0.5) & (k <= 0.7)).sum()),
            "0.7<k<=1": int(((k > 0.7) & (k <= 1)).sum()), "k>1": int((k > 1).sum())}


def _fmt_worst(items, n=3, fmt="{:.3f}"):
    return ", ".join(f"{name} {fmt.format(v)}" for name, v in items[:n])


def report(
    data,
    out_dir: str | os.PathLike,
    *,
    var_names: Sequence[str] | None = None,
    title: str = "pyrogen diagnostics report",
    plots: bool = True,
    max_plot_vars: int = 6,
    ppc_statistics: Mapping[str, Callable] | None = None,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
    pareto_k_max: float = 0.7,
    ppc_alpha: float = 0.05,
    idata_kwargs: Mapping | None = None,
) -> Report:
    r"""Diagnose one run: r-hat, ESS, divergences, BFMI, PSIS-LOO, posterior predictive checks.

    Writes into ``out_dir`` (created if missing; every file written atomically through
    :mod:`pyrogen._io`: a temporary name, fsync, then ``os.replace``): ``report.json``
    (machine-readable, :meth:`Report.to_dict`), ``report.txt`` (the short text, ``str(report)``)
    and, with ``plots=True``, ``trace.png``, ``rank.png`` (rank histograms per chain: uniform
    when the chains agree) and ``ppc.png`` (observed versus replicated data).

    Checks, each failure worded in ``Report.problems``:

    - rank-normalized split :math:`\hat R` [2]_ above ``rhat_max`` (needs >= 2 chains);
    - bulk or tail effective sample size below ``ess_min``;
    - any divergent transition (the sampler met curvature it could not integrate: the
      posterior estimate may be biased);
    - energy BFMI [3]_ below ``bfmi_min`` in a chain (only where the run recorded energy);
    - PSIS-LOO [1]_ Pareto :math:`\hat k` above ``pareto_k_max`` for some observation (its
      LOO term is unreliable);
    - a posterior predictive p-value [4]_ (:func:`ppc_pvalues`) below :math:`\alpha/2` or
      above :math:`1-\alpha/2`, with :math:`\alpha` = ``ppc_alpha``.

    Parameters
    ----------
    data
        ``InferenceData`` / ``DataTree``; a fitted pyrogen model (its ``to_inference_data()``
        is used); or anything :func:`to_inference_data` accepts (with ``idata_kwargs``).
    out_dir : path
    var_names : sequence of str, optional
        Posterior variables to check. Default: every posterior variable with at most 100
        elements per draw (per-example latents are skipped and noted). For factor models
        pass rotation-invariant ones (``noise``, ``WWt_diag``, ``col_norm2``).
    title : str
    plots : bool
        Write the PNGs (the trace and rank plots show the first ``max_plot_vars`` checked
        variables with at most 16 elements each).
    ppc_statistics : dict, optional
        Discrepancy statistics for :func:`ppc_pvalues`.
    rhat_max, ess_min, bfmi_min, pareto_k_max, ppc_alpha : float
        Thresholds (defaults: 1.01, 400, 0.3, 0.7, 0.05).
    idata_kwargs : dict, optional
        Passed to ``to_inference_data`` when ``data`` is not ArviZ data yet.

    Returns
    -------
    Report

    Raises
    ------
    ValueError
        Bad thresholds, or ``var_names`` naming no posterior variable.
    """
    rhat_max = check_float(rhat_max, "rhat_max", 1.0, None, "co")
    ess_min = check_float(ess_min, "ess_min", 0.0, None, "co")
    bfmi_min = check_float(bfmi_min, "bfmi_min", 0.0, None, "co")
    pareto_k_max = check_float(pareto_k_max, "pareto_k_max", 0.0, None, "co")
    ppc_alpha = check_float(ppc_alpha, "ppc_alpha", 0.0, 1.0, "oo")
    max_plot_vars = check_int(max_plot_vars, "max_plot_vars", low=1)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    idata = _as_idata(data, **dict(idata_kwargs or {}))
    groups = group_names(idata)
    post = _group(idata, "posterior")
    C, S = int(post.sizes["chain"]), int(post.sizes["draw"])
    problems: list[str] = []
    notes: list[str] = []

    # ---- r-hat and ESS
    sizes = {str(v): int(np.prod(post[v].shape[2:])) for v in post.data_vars}
    if var_names is None:
        names = [v for v, n in sizes.items() if n <= 100]
        skipped = [v for v, n in sizes.items() if n > 100]
        if skipped:
            notes.append("not checked (more than 100 elements per draw; name them in "
                         f"var_names to include them): {', '.join(skipped)}")
    else:
        names = [str(v) for v in var_names]
        missing = [v for v in names if v not in sizes]
        if missing or not names:
            raise ValueError(
                f"var_names must name posterior variables ({', '.join(sizes)}). Got "
                f"{names!r} instead."
            )
    table = {}
    if names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # r-hat of one chain: NaN, said below
            df = summary(idata, var_names=names)
        for q, row in df.iterrows():
            table[str(q)] = {c: float(row[c]) for c in ("mean", "sd", "ess_bulk", "ess_tail",
                                                        "r_hat")}
    if C < 2:
        notes.append("r_hat needs at least 2 chains: not checked (run more chains)")
    else:
        bad = sorted(((q, v["r_hat"]) for q, v in table.items()
                      if math.isfinite(v["r_hat"]) and v["r_hat"] > rhat_max),
                     key=lambda t: -t[1])
        if bad:
            problems.append(
                f"r_hat above {rhat_max} for {len(bad)} of {len(table)} quantities (worst: "
                f"{_fmt_worst(bad)}): the chains disagree, so the draws do not yet represent "
                "the posterior. Run longer chains, or check for several modes (for factor "
                "models check rotation-invariant quantities)."
            )
    for kind in ("bulk", "tail"):
        low = sorted(((q, v[f"ess_{kind}"]) for q, v in table.items()
                      if v[f"ess_{kind}"] < ess_min), key=lambda t: t[1])
        if low:
            problems.append(
                f"{kind} effective sample size below {ess_min:g} for {len(low)} of "
                f"{len(table)} quantities (lowest: {_fmt_worst(low, fmt='{:.0f}')}): "
                + ("posterior means" if kind == "bulk" else "posterior intervals")
                + " are estimated from too few effective draws. Draw more samples."
            )

    # ---- sampler statistics
    divergences = bfmi_values = None
    if "sample_stats" in groups:
        stats = _group(idata, "sample_stats")
        if "diverging" in stats:
            per = np.asarray(stats["diverging"].values, dtype=bool).reshape(C, -1).sum(1)
            divergences = {"total": int(per.sum()), "per_chain": [int(p) for p in per]}
            if per.sum() > 0:
                problems.append(
                    f"{int(per.sum())} divergent transition(s) after warm-up (per chain "
                    f"{divergences['per_chain']}): the sampler met curvature it could not "
                    "follow, so the draws may be biased. Raise target_accept_prob or "
                    "reparameterize (non-centred)."
                )
        b = bfmi(idata)
        if b is None:
            notes.append(
                "BFMI unavailable: the run recorded no per-draw energy (Pyro's NUTS/HMC keep "
                "none: sample with pyrogen.diagnostics.RecordingNUTS, or run NumPyro with "
                "extra_fields=NUMPYRO_EXTRA_FIELDS)"
            )
        else:
            bfmi_values = [float(v) for v in b]
            low = [(f"chain {c}", v) for c, v in enumerate(bfmi_values) if v < bfmi_min]
            if low:
                problems.append(
                    f"BFMI below {bfmi_min} ({_fmt_worst(low, n=len(low), fmt='{:.2f}')}): "
                    "resampling the momentum barely changes the energy, so the sampler "
                    "explores the tails slowly (heavy tails or a funnel). Reparameterize."
                )
    else:
        notes.append("no sampler statistics (draws from an SVI guide or a dict of draws): "
                     "divergences and BFMI do not apply")

    # ---- PSIS-LOO
    loo_out = None
    if "log_likelihood" in groups:
        loo_out = {}
        for var in _group(idata, "log_likelihood").data_vars:
            res, messages = loo(idata, var_name=str(var))
            nums = loo_numbers(res)
            k = nums.pop("pareto_k")
            nums["pareto_k_counts"] = _k_counts(k)
            nums["pareto_k_max"] = float(np.max(k)) if k.size else None
            loo_out[str(var)] = nums
            notes += [f"ArviZ (loo {var}): {m.splitlines()[0][:200]}" for m in messages]
            n_bad = int((k > pareto_k_max).sum())
            if n_bad:
                problems.append(
                    f"Pareto k above {pareto_k_max} for {n_bad} of {k.size} observations of "
                    f"'{var}' (max {float(k.max()):.2f}): PSIS-LOO is unreliable for them "
                    "(influential points or a posterior that leaving one out changes much); "
                    "refit without them (k-fold) or use a more robust model."
                )
    else:
        notes.append("no log_likelihood group: PSIS-LOO not computed")

    # ---- posterior predictive checks
    ppc = ppc_pvalues(idata, ppc_statistics) or None
    if ppc is None:
        notes.append("no posterior_predictive / observed_data group: no posterior "
                     "predictive check")
    else:
        lo, hi = ppc_alpha / 2, 1 - ppc_alpha / 2
        for var, res in ppc.items():
            bad = [(s, r["p_value"]) for s, r in res.items()
                   if r["p_value"] < lo or r["p_value"] > hi]
            if bad:
                problems.append(
                    f"posterior predictive p-value outside [{lo:g}, {hi:g}] for '{var}' "
                    f"({_fmt_worst(bad, n=len(bad), fmt='{:.3f}')}): replicated data rarely "
                    "reproduce this feature of the observed data (model misfit)."
                )

    # ---- files
    files = {}
    if plots:
        small = [v for v in names if v in sizes and sizes[v] <= 16][:max_plot_vars]
        kinds = []
        if small:
            kinds += ["trace", "rank"]
        else:
            notes.append("no trace/rank plots: no checked variable has at most 16 elements")
        if ppc is not None:
            kinds.append("ppc")
        for kind in kinds:
            path = os.path.join(out_dir, f"{kind}.png")
            try:
                _save_plot(kind, idata, small, path, num_pp=min(50, C * S))
                files[kind] = path
            except Exception as err:  # noqa: BLE001 - a failed plot is reported, not fatal
                notes.append(f"{kind} plot failed: {type(err).__name__}: {err}")
    files["json"] = os.path.join(out_dir, "report.json")
    files["text"] = os.path.join(out_dir, "report.txt")
    attrs = dict(getattr(post, "attrs", {}) or {})
    rep = Report(
        title=str(title), inference_library=attrs.get("inference_library"), chains=C,
        draws=S, summary=table, divergences=divergences, bfmi=bfmi_values, loo=loo_out,
        ppc=ppc, problems=problems, notes=notes, files=files,
        thresholds={"rhat_max": rhat_max, "ess_min": ess_min, "bfmi_min": bfmi_min,
                    "pareto_k_max": pareto_k_max, "ppc_alpha": ppc_alpha},
        arviz_version=str(_arviz().__version__),
    )
    atomic_write_text(files["json"], json.dumps(rep.to_dict(), indent=2) + "\n")
    atomic_write_text(files["text"], str(rep) + "\n")
    return rep
