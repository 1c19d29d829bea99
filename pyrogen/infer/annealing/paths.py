r"""Annealing paths: the engine's own (geometric, parameter interpolation) and those the
distributions offer (re-exported from :mod:`pyrogen.distributions.paths`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.distributions import constraints

from ..._random import bernoulli
from ..._validation import check_float, check_int
from ...distributions.paths import RBMBaseRatePath, base_rate_visible_bias

__all__ = ["GeometricPath", "RBMBaseRatePath", "base_rate_visible_bias"]


def _bernoulli(p, generator=None):
    return bernoulli(p, generator)


def _base_bernoulli_probs(base):
    """Probabilities of a (possibly Independent-wrapped) Bernoulli base, else None."""
    d = base
    while isinstance(d, torch.distributions.Independent):
        d = d.base_dist
    if isinstance(d, torch.distributions.Bernoulli):
        return d.probs
    return None


def _is_boolean(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.boolean


class GeometricPath:
    r"""Geometric annealing :math:`f_\beta(x) = p_0(x)^{1-\beta}\, f_1(x)^{\beta}`.

    Parameters
    ----------
    base : torch.distributions.Distribution
        A normalized, tractable distribution with a non-empty ``event_shape`` (typically a
        factorial ``Bernoulli(probs).to_event(1)``); ``log_z0 = 0``. Its ``batch_shape`` is the
        path's batch shape.
    unnormalized_log_prob : callable
        ``x -> log f_1(x)`` for ``x`` of shape ``(num_chains, *batch_shape, *event_shape)``,
        returning ``(num_chains, *batch_shape)`` (e.g. ``-energy`` or ``-free_energy``).
    kernel : callable, optional
        ``kernel(x, beta) -> x``: a user Markov kernel that leaves :math:`f_\beta` invariant
        (it uses the global torch RNG; it must be reversible for :func:`reverse_ais`). Default:
        ``num_sweeps`` systematic single-site Gibbs (heat-bath) sweeps for binary events,
        random-walk Metropolis with Gaussian proposals of scale ``step_size`` for real events.
    num_sweeps : int
        Gibbs sweeps (binary events) or Metropolis steps (real events) per transition of the
        default kernels.
    step_size : float
        Proposal scale of the default random-walk Metropolis kernel.

    Notes
    -----
    The single-site Gibbs sweep costs :math:`D + 1` evaluations of ``unnormalized_log_prob``
    per sweep on an event of :math:`D` units; it is meant for small models (a fully visible
    Boltzmann machine with a few dozen units). Structured models should pass their own kernel
    (or use a dedicated path such as :class:`RBMBaseRatePath`). Samples of the base use the
    ``generator`` for Bernoulli bases and the global RNG otherwise.
    """

    def __init__(
        self,
        base,
        unnormalized_log_prob: Callable[[torch.Tensor], torch.Tensor],
        kernel: Callable | None = None,
        *,
        num_sweeps: int = 1,
        step_size: float = 0.5,
    ):
        if not isinstance(base, torch.distributions.Distribution):
            raise TypeError(
                "base must be a torch.distributions.Distribution (e.g. "
                f"Bernoulli(probs).to_event(1)). Got {type(base).__name__} instead."
            )
        if len(base.event_shape) == 0:
            raise ValueError(
                "base must have a non-empty event_shape (the event is the whole state); wrap a "
                "factorial base with .to_event(1). Got event_shape () instead."
            )
        if not callable(unnormalized_log_prob):
            raise TypeError(
                "unnormalized_log_prob must be callable. "
                f"Got {type(unnormalized_log_prob).__name__} instead."
            )
        if kernel is not None and not callable(kernel):
            raise TypeError(f"kernel must be callable or None. Got {type(kernel).__name__}.")
        self.base = base
        self.target = unnormalized_log_prob
        self.kernel = kernel
        self.num_sweeps = check_int(num_sweeps, "num_sweeps", low=1)
        self.step_size = check_float(step_size, "step_size", 0.0, None, "oo")
        self.binary = _is_boolean(base.support)
        if kernel is None and not self.binary and base.support is not constraints.real_vector:
            sup = base.support
            while isinstance(sup, constraints.independent):
                sup = sup.base_constraint
            if sup is not constraints.real:
                raise ValueError(
                    "GeometricPath has default kernels for binary and real events only; pass "
                    f"kernel=... for support {base.support}."
                )
        self.batch_shape = base.batch_shape
        self.event_shape = base.event_shape
        probs = _base_bernoulli_probs(base)
        dtype = probs.dtype if probs is not None else torch.get_default_dtype()
        self._probs = probs
        self.log_z0 = torch.zeros(self.batch_shape, dtype=dtype)

    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from the base, shape ``(num_chains, *batch_shape, *event_shape)``."""
        if self._probs is not None:
            shape = (num_chains, *self.batch_shape, *self.event_shape)
            return _bernoulli(self._probs.expand(shape), generator)
        return self.base.sample((num_chains,))

    def log_density(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        r""":math:`(1-\beta)\log p_0(x) + \beta\log f_1(x)` (the zero-weight term is skipped)."""
        if beta == 0:
            return self.base.log_prob(x)
        if beta == 1:
            return self.target(x)
        return (1 - beta) * self.base.log_prob(x) + beta * self.target(x)

    # -- default kernels -----------------------------------------------------------------------
    def _gibbs_sweep(self, x, beta, generator, order):
        lead = x.shape[: x.dim() - len(self.event_shape)]
        flat = x.reshape(*lead, -1).clone()
        d = flat.shape[-1]
        shape = x.shape
        logf = self.log_density(flat.reshape(shape), beta)
        for i in order(d):
            prop = flat.clone()
            prop[..., i] = 1 - prop[..., i]
            logf_prop = self.log_density(prop.reshape(shape), beta)
            u = torch.rand(logf.shape, dtype=logf.dtype, device=logf.device, generator=generator)
            flip = u < torch.sigmoid(logf_prop - logf)
            flat = torch.where(flip.unsqueeze(-1), prop, flat)
            logf = torch.where(flip, logf_prop, logf)
        return flat.reshape(shape)

    def _metropolis(self, x, beta, generator):
        logf = self.log_density(x, beta)
        noise = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
        prop = x + self.step_size * noise
        logf_prop = self.log_density(prop, beta)
        u = torch.rand(logf.shape, dtype=logf.dtype, device=logf.device, generator=generator)
        accept = torch.log(u) < logf_prop - logf
        mask = accept.reshape(*accept.shape, *([1] * len(self.event_shape)))
        return torch.where(mask, prop, x)

    def _move(self, x, beta, generator, reverse):
        if self.kernel is not None:
            return self.kernel(x, beta)
        order = (lambda d: range(d - 1, -1, -1)) if reverse else range
        for _ in range(self.num_sweeps):
            if self.binary:
                x = self._gibbs_sweep(x, beta, generator, order)
            else:
                x = self._metropolis(x, beta, generator)
        return x

    def transition(self, x: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        r"""``num_sweeps`` default-kernel moves (or the user kernel) leaving :math:`f_\beta`."""
        return self._move(x, beta, generator, reverse=False)

    def reverse_transition(self, x: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        """Time reversal of :meth:`transition` (Gibbs sweep in reverse site order)."""
        return self._move(x, beta, generator, reverse=True)

    def __repr__(self) -> str:
        return (
            f"GeometricPath(batch_shape={tuple(self.batch_shape)}, "
            f"event_shape={tuple(self.event_shape)}, binary={self.binary})"
        )
