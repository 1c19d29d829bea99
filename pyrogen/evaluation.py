"""Log-likelihood results and estimators, each named for what it is.

A pyrogen number is never "a log-likelihood" without a kind. :class:`LogLikelihood` carries the
per-example values, their kind and, for stochastic estimates, their standard errors:

========================  ====================================================================
kind                      meaning
========================  ====================================================================
``exact``                 log p(x) computed exactly (closed form or enumeration)
``ais_estimate``          log p(x) = -F(x) - log Z_AIS; Z_AIS unbiased for Z, so log p is a
                          stochastic *upper* bound in expectation (Jensen on -log Z)
``is_estimate``           log of an importance-sampled estimate of p(x); unbiased for p(x), so
                          a stochastic *lower* bound on log p(x) in expectation
``iwae_bound``            importance-weighted bound with k particles (lower bound)
``elbo``                  evidence lower bound (lower bound)
``pseudo_likelihood``     ``sum_i log p(x_i | x_{-i})``; not a likelihood at all
``posterior_predictive``  log (1/S) sum_s p(x | theta_s) over posterior draws theta_s: estimates
                          the log posterior predictive density log p(x | training data) per
                          example; log of an unbiased mean, so a stochastic *lower* bound in
                          expectation
========================  ====================================================================

This module does not import :mod:`pyrogen.models`: its estimators take callables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["LogLikelihood", "KINDS"]

#: kind -> (description, which side it bounds in expectation or None)
KINDS: dict[str, tuple[str, str | None]] = {
    "exact": ("exact log-likelihood", None),
    "ais_estimate": ("AIS estimate of the log-likelihood (stochastic upper bound)", "upper"),
    "is_estimate": ("importance-sampled log-likelihood (stochastic lower bound)", "lower"),
    "iwae_bound": ("importance-weighted lower bound (IWAE)", "lower"),
    "elbo": ("evidence lower bound (ELBO)", "lower"),
    "pseudo_likelihood": ("log pseudo-likelihood (not a likelihood)", None),
    "posterior_predictive": (
        "log posterior predictive density over posterior draws (stochastic lower bound)",
        "lower",
    ),
}


@dataclass(frozen=True)
class LogLikelihood:
    """Per-example log-likelihood values with their kind and standard errors.

    Attributes
    ----------
    values : torch.Tensor, shape ``(n,)``
        Per-example values in nats.
    kind : str
        One of :data:`KINDS` (``"exact"``, ``"ais_estimate"``, ``"is_estimate"``, ...).
    stderr : torch.Tensor or None, shape ``(n,)``
        Per-example Monte Carlo standard error (``None`` for exact values).
    shared_stderr : float or None
        Standard error of a component shared by all examples (e.g. of the AIS estimate of
        log Z); it does not shrink with ``n`` and is added in quadrature by :meth:`mean_stderr`.
    info : dict
        Anything else the estimator reports (number of particles, ESS, the data identity...).
    """

    values: torch.Tensor
    kind: str
    stderr: torch.Tensor | None = None
    shared_stderr: float | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {tuple(KINDS)}. Got {self.kind!r} instead.")
        if self.values.dim() != 1:
            raise ValueError(
                f"values must have shape (n,). Got shape {tuple(self.values.shape)} instead."
            )

    # -- tensor-like conveniences -------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def bound(self) -> str | None:
        """``"lower"``, ``"upper"`` or ``None``: which side the estimate bounds in expectation."""
        return KINDS[self.kind][1]

    @property
    def description(self) -> str:
        return KINDS[self.kind][0]

    def mean(self) -> float:
        """Mean over examples (nats per example)."""
        return float(self.values.mean())

    def mean_stderr(self) -> float | None:
        """Standard error of :meth:`mean` from the Monte Carlo noise of the estimator.

        This is the estimator's noise (not the sampling variability of the data set):
        ``sqrt(sum_i se_i^2) / n`` combined in quadrature with ``shared_stderr``. ``None`` for
        exact values.
        """
        if self.stderr is None and self.shared_stderr is None:
            return None
        var = 0.0
        if self.stderr is not None:
            var += float((self.stderr.double() ** 2).sum()) / len(self) ** 2
        if self.shared_stderr is not None:
            var += self.shared_stderr**2
        return math.sqrt(var)

    def to_dict(self) -> dict:
        """JSON-friendly summary (no per-example values)."""
        return {
            "kind": self.kind,
            "description": self.description,
            "bound": self.bound,
            "mean_nats": self.mean(),
            "mean_stderr": self.mean_stderr(),
            "n": len(self),
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool))},
        }

    def __str__(self) -> str:
        se = self.mean_stderr()
        se_txt = "" if se is None else f" ± {se:.3f}"
        return f"{self.mean():.3f}{se_txt} nats/example [{self.kind}]"

    def __repr__(self) -> str:
        return f"LogLikelihood(kind={self.kind!r}, mean={self.mean():.4f}, n={len(self)})"
