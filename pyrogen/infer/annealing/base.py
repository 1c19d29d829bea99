r"""The protocol of the annealing engine: paths, kernels, their states and infos.

Layout of :mod:`pyrogen.infer.annealing` (one mechanism each):

* ``base`` -- this protocol: :class:`AnnealingPath`, :class:`Kernel`, :class:`KernelState`,
  :class:`KernelInfo`, :class:`TransitionKernel`, :class:`AISWarning`;
* ``defaults`` -- the module constants the defaults of ``ais``/``smc``/``AIS()`` read;
* ``schedules`` -- fixed schedules (``schedule``) and their validation (``check_betas``);
* ``kernels`` -- discrete kernels: block Gibbs, single-site Gibbs, binary Metropolis,
  random-walk Metropolis, and ``resolve_kernel``;
* ``paths`` -- the paths: base-rate RBM, geometric, DBM, parameter interpolation (defined in
  :mod:`pyrogen.distributions.paths`, re-exported);
* ``loop`` -- the ONE annealing loop: ``ais`` (no resampling) and ``smc`` (resampling +
  adaptive schedule), ``ais_init``/``ais_step``;
* ``reverse`` -- RAISE (``reverse_ais``);
* ``hmc`` -- continuous kernels (HMC, MALA with step-size adaptation);
* ``decoder`` -- AIS from prior to posterior for decoder models (``ais_log_likelihood``).

:mod:`pyrogen.infer.ais` is a façade that re-exports the historical names from here.

A **path** is a family of unnormalized densities :math:`f_\beta`, :math:`\beta \in [0, 1]`, from
a tractable :math:`f_0` (known :math:`\log Z_0`, exact draws) to the target :math:`f_1`. It is
*data*: plain torch code with no import of the engine, so an energy-based distribution can
offer its own path (``dist.annealing_path(...)``) without importing :mod:`pyrogen.infer`.

A **kernel** (BlackJAX style [1]_) is built on a path and moves a batch of chains:
``state = kernel.init(x)`` and ``state, info = kernel.step(generator, state, beta)`` leave
:math:`f_\beta` invariant for every :math:`\beta`. States and infos are NamedTuples whose
tensor fields have the chains in front, so the loop can resample them
(:func:`select_chains`).

Shapes, everywhere: particles ``(num_chains, *batch_shape, *event_shape)``; log-densities and
log-weights ``(num_chains, *batch_shape)``; ``log_z0`` ``batch_shape``. The batch holds a
parameter batch of models and/or data rows (RAISE, decoder AIS): chains are independent across
it. Particles are kept in the path's dtype (float32 for speed), log-weights in float64.

Random numbers. Every sampler draws through :func:`pyrogen._random.uniform_`,
:func:`~pyrogen._random.normal_` and :func:`~pyrogen._random.bernoulli`, which accept a
:class:`~pyrogen._random.ChainRNG` (generators keyed by chain block: splitting the chains over
processes changes nothing), a ``torch.Generator`` or ``None`` (global RNG). Kernels and paths
must draw every per-chain random number with the chains as dimension 0 of the drawn tensor.

References
----------
.. [1] J. Cabezas, A. Corenflos, J. Lao, R. Louf et al. BlackJAX: composable Bayesian inference
   in JAX. arXiv:2402.10797, 2024.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from ..._random import ChainRNG, bernoulli, normal_, uniform_

__all__ = [
    "AnnealingPath",
    "Kernel",
    "KernelState",
    "KernelInfo",
    "TransitionKernel",
    "AISWarning",
    "select_chains",
    "ChainRNG",
    "uniform_",
    "normal_",
    "bernoulli",
]


class AISWarning(UserWarning):
    """The annealing estimate is unreliable by its own diagnostics.

    Raised (as a warning) by :func:`~pyrogen.infer.annealing.ais` and
    :func:`~pyrogen.infer.annealing.smc` when the effective sample size of the final weights
    falls below :data:`~pyrogen.infer.annealing.defaults.WARN_ESS_FRACTION` of the chains:
    the weights are then dominated by a few chains and the reported standard error itself is
    unreliable (usually too small). Remedy: more temperatures, more chains, or SMC.
    """


def _field_docs(cls, **docs):
    """Give the fields of a NamedTuple their own docstrings (rendered by autodoc)."""
    for name, doc in docs.items():
        getattr(cls, name).__doc__ = doc


@runtime_checkable
class AnnealingPath(Protocol):
    r"""A family of unnormalized densities :math:`f_\beta`, :math:`\beta \in [0, 1]`.

    Required:

    ``log_z0`` : torch.Tensor, shape ``batch_shape``
        :math:`\log Z_0 = \log \sum_x f_0(x)` exactly.
    ``init(num_chains, generator=None) -> x``
        Exact draws from :math:`f_0 / Z_0`, shape ``(num_chains, *batch_shape, *event_shape)``.
    ``log_density(x, beta) -> Tensor``
        :math:`\log f_\beta(x)` per chain, shape ``(num_chains, *batch_shape)``.

    Optional (the engine checks with ``hasattr``):

    ``anneal_step(x, beta_prev, beta, generator=None) -> (x_new, increment)``
        Fused fast path of one AIS step: the increment :math:`\log f_\beta(x) -
        \log f_{\beta_{prev}}(x)` at the *old* particles and one move of the path's default
        kernel at :math:`\beta` (sharing work, e.g. the :math:`vW` product of an RBM).
    ``default_kernel() -> Kernel``
        The kernel the engine uses when none is given.
    ``transition(x, beta, generator=None) -> x``
        One move leaving :math:`f_\beta` invariant, offered by paths that live at the
        distribution level (they cannot build an engine kernel); wrapped by
        :class:`TransitionKernel`. ``reverse_transition`` is its time reversal when the move
        is not reversible (RAISE needs it).
    ``log_density_fn(x) -> (beta -> Tensor)``
        :math:`\beta \mapsto \log f_\beta(x)` reusing work across many :math:`\beta` (the
        adaptive SMC schedule bisects on it).
    """

    log_z0: torch.Tensor

    def init(self, num_chains: int, generator=None) -> torch.Tensor:  # pragma: no cover
        """Exact draws from :math:`f_0 / Z_0`."""

    def log_density(self, x: torch.Tensor, beta: float) -> torch.Tensor:  # pragma: no cover
        r""":math:`\log f_\beta(x)`, shape ``(num_chains, *batch_shape)``."""


class KernelState(NamedTuple):
    """State of the discrete kernels: just the particles."""

    position: torch.Tensor


_field_docs(
    KernelState,
    position="Particles, shape ``(num_chains, *batch_shape, *event_shape)``.",
)


class KernelInfo(NamedTuple):
    """What one kernel step did."""

    acceptance_rate: torch.Tensor


_field_docs(
    KernelInfo,
    acceptance_rate="Per chain, shape ``(num_chains, *batch_shape)``: the fraction of proposals "
    "accepted in this step (1 for Gibbs kernels, whose updates are always taken; for a sweep "
    "of single-site Metropolis updates, the fraction of the sites flipped).",
)


@runtime_checkable
class Kernel(Protocol):
    r"""A Markov kernel on batched chains that leaves :math:`f_\beta` invariant.

    ``init(x) -> state`` builds a state (a NamedTuple with a ``position`` field and possibly
    kernel-specific fields, e.g. an adapted step size) from particles ``x``;
    ``step(generator, state, beta) -> (state, info)`` makes one move at inverse temperature
    ``beta`` (``info`` a NamedTuple, at least ``acceptance_rate`` where it applies). A kernel
    that is not reversible offers ``reverse()`` returning its time reversal (for RAISE).
    """

    def init(self, x: torch.Tensor) -> Any:  # pragma: no cover
        ...

    def step(self, generator, state: Any, beta: float) -> tuple[Any, Any]:  # pragma: no cover
        ...


class TransitionKernel:
    r"""A :class:`Kernel` from a path's own ``transition(x, beta, generator)``.

    Paths that live at the distribution level (they may not import the engine) offer their
    moves as a plain ``transition`` callable; this wraps it. ``acceptance_rate`` is reported
    as 1 (the move's internals are not visible).

    Parameters
    ----------
    path : AnnealingPath with ``transition``
    reverse : bool
        Use ``path.reverse_transition`` (the time reversal) when the path has one.
    """

    def __init__(self, path, reverse: bool = False):
        if not callable(getattr(path, "transition", None)):
            raise TypeError(
                "path must offer transition(x, beta, generator) or default_kernel() to be "
                f"annealed without an explicit kernel. Got {type(path).__name__} instead."
            )
        self.path = path
        self._move = path.transition
        if reverse and callable(getattr(path, "reverse_transition", None)):
            self._move = path.reverse_transition
        self.is_reversed = reverse

    def init(self, x: torch.Tensor) -> KernelState:
        return KernelState(position=x)

    def step(self, generator, state: KernelState, beta: float):
        x = state.position
        new = self._move(x, beta) if generator is None else self._move(x, beta, generator=generator)
        ones = torch.ones(new.shape[: 1 + _batch_dims(self.path)], dtype=new.dtype)
        return KernelState(position=new), KernelInfo(acceptance_rate=ones)

    def reverse(self) -> TransitionKernel:
        return TransitionKernel(self.path, reverse=not self.is_reversed)

    def __repr__(self) -> str:
        return f"TransitionKernel({type(self.path).__name__}, reverse={self.is_reversed})"


def _batch_dims(path) -> int:
    return len(path.log_z0.shape)


def select_chains(tree, index: torch.Tensor, num_chains: int, batch_shape: torch.Size):
    r"""Resample the chains of a state: ``out[m, b] = tree[index[m, b], b]`` for every tensor
    field whose leading shape is ``(num_chains, *batch_shape)`` (other fields are kept).

    ``index`` has shape ``(num_chains, *batch_shape)`` (ancestor of each new chain, per batch
    element). Works on tensors and on (nested) NamedTuples/tuples of them.
    """
    lead = (num_chains, *batch_shape)
    if isinstance(tree, torch.Tensor):
        if tuple(tree.shape[: len(lead)]) != lead:
            return tree
        idx = index.reshape(*index.shape, *([1] * (tree.dim() - len(lead)))).expand(tree.shape)
        return torch.gather(tree, 0, idx)
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(select_chains(t, index, num_chains, batch_shape) for t in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(select_chains(t, index, num_chains, batch_shape) for t in tree)
    return tree
