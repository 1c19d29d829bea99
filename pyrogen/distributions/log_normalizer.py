r"""The normalizer protocol at the distribution level: :class:`LogZEstimate`,
:class:`Normalizer` and the enumeration-based :class:`Exact`.

An :class:`~pyrogen.distributions.EnergyBasedDistribution` takes a *normalizer*, a callable
``normalizer(dist, value=None) -> LogZEstimate`` supplying :math:`\log Z` and its gradient.
The protocol and the exact strategy live here so that the distributions need nothing above
them; the estimating strategies (``AIS``, ``SMC``, ``PCD``, ``CD``), which use the annealing
engine, live in :mod:`pyrogen.normalizers`, which re-exports everything defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._validation import check_int

__all__ = [
    "LogZEstimate",
    "Normalizer",
    "Exact",
    "ExactLimitError",
    "EXACT_MAX_UNITS",
    "ESTIMATE_KINDS",
]

#: default largest number of binary units :class:`Exact` enumerates (2^20 ~ one million states)
EXACT_MAX_UNITS = 20

#: the kinds an estimate can have
ESTIMATE_KINDS = (
    "exact",
    "ais_estimate",
    "smc_estimate",
    "stale_exact",
    "stale_ais_estimate",
    "stale_smc_estimate",
)


class ExactLimitError(ValueError):
    """Exact enumeration was requested for a model past the enumeration limit."""


@dataclass
class LogZEstimate:
    r"""What a normalizer returns.

    Attributes
    ----------
    log_z : torch.Tensor, shape ``param_batch_shape``
        The value of :math:`\log Z` (exact or estimated) carrying the gradient of the strategy
        (see the module docstring).
    kind : str
        ``"exact"``, ``"ais_estimate"`` or, for PCD/CD between refreshes, ``"stale_exact"`` /
        ``"stale_ais_estimate"`` (the value was computed for earlier parameters).
    stderr : torch.Tensor or None
        Standard error of the *value* of ``log_z`` (delta method on the AIS weights); ``None``
        when exact.
    ess : torch.Tensor or None
        Effective sample size of the importance weights, :math:`(\sum w)^2 / \sum w^2`.
    log_weights : torch.Tensor or None, shape ``(num_chains, *param_batch_shape)``
        AIS log importance weights (including :math:`\log Z_0`).
    stale : bool
        True when the value was computed for other (earlier) parameters than the gradient.
    info : dict
        Anything else (number of chains and temperatures, the step of the last refresh...).
    """

    log_z: torch.Tensor
    kind: str = "exact"
    stderr: torch.Tensor | None = None
    ess: torch.Tensor | None = None
    log_weights: torch.Tensor | None = None
    stale: bool = False
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ESTIMATE_KINDS:
            raise ValueError(f"kind must be one of {ESTIMATE_KINDS}. Got {self.kind!r} instead.")

    @property
    def is_exact(self) -> bool:
        return self.kind == "exact"

    def __repr__(self) -> str:
        lz = self.log_z.detach()
        val = f"{float(lz):.4f}" if lz.numel() == 1 else f"shape {tuple(lz.shape)}"
        se = ""
        if self.stderr is not None and self.stderr.numel() == 1:
            se = f" ± {float(self.stderr):.4f}"
        return f"LogZEstimate({val}{se}, kind={self.kind!r})"


def _surrogate(value: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``value`` (detached) with the gradient of ``s``: the gradient trick."""
    return value.detach() + (s - s.detach())


class Normalizer:
    """Base class: ``normalizer(dist, value=None) -> LogZEstimate``.

    ``dist`` is an :class:`~pyrogen.distributions.EnergyBasedDistribution`; the estimate has the
    distribution's *parameter* batch shape (``dist.param_batch_shape``), which broadcasts against
    its (possibly expanded) ``batch_shape``. ``value`` is the data being scored by ``log_prob``;
    only :class:`CD` uses it.
    """

    #: True when the estimate depends on the value being scored (CD)
    uses_value: bool = False
    #: ``"pcd"`` / ``"cd"`` for the contrastive strategies (the RBM's fused step checks it)
    contrastive: str | None = None

    def __call__(self, dist, value: torch.Tensor | None = None) -> LogZEstimate:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"

    def _repr_args(self) -> dict:
        return {}


class Exact(Normalizer):
    r"""Exact :math:`\log Z` by enumeration of the smaller binary layer.

    For a Boltzmann machine with :math:`n` units the :math:`2^n` states are enumerated; for an RBM
    the smaller of the two layers is enumerated and the other one summed out analytically
    (:math:`\log Z = \operatorname{logsumexp}_h [c^\top h + \sum_i \operatorname{softplus}(b_i +
    W_{i:} h)]`), for a Gaussian-Bernoulli RBM the hidden layer. States are processed in chunks
    of ``chunk_size`` so that :math:`2^{20}` states fit in memory. Cost :math:`O(2^k \cdot n
    \cdot m)` for :math:`k` enumerated units.

    Value and gradient are exact (the gradient is autograd through the log-sum-exp).

    Parameters
    ----------
    max_units : int
        Refuse to enumerate more than ``2**max_units`` states (default 20, at most 30): past the
        limit a :class:`ExactLimitError` (a ``ValueError``) suggests :class:`AIS`.
    chunk_size : int
        States per chunk (default ``2**14``).
    """

    def __init__(self, max_units: int = EXACT_MAX_UNITS, chunk_size: int = 2**14):
        self.max_units = check_int(max_units, "max_units", low=1, high=30)
        self.chunk_size = check_int(chunk_size, "chunk_size", low=1)

    def _repr_args(self):
        return {"max_units": self.max_units}

    def __call__(self, dist, value=None) -> LogZEstimate:
        units = getattr(dist, "enumeration_units", None)
        if units is None:
            raise TypeError(
                f"normalizer=Exact() needs a distribution that can enumerate its states; "
                f"{type(dist).__name__} cannot. Use normalizer=AIS(...) instead."
            )
        if units > self.max_units:
            raise ExactLimitError(
                f"Exact() enumerates 2**{units} states for this {type(dist).__name__}, past its "
                f"limit max_units={self.max_units} (2**{self.max_units} states). Use "
                "normalizer=AIS(num_chains=..., num_betas=...) for an estimate of log Z, or "
                "raise max_units (at most 30) if you have the time and memory."
            )
        log_z = dist.enumerate_log_z(chunk_size=self.chunk_size)
        return LogZEstimate(log_z=log_z, kind="exact", info={"enumerated_units": units})
