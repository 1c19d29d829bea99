r"""Discrete transition kernels on batched chains, each leaving :math:`f_\beta` invariant.

* :class:`BlockGibbs` -- draw the summed-out layers given the state, then the state given
  them: RBM :math:`v \to h \to v`; DBM odd layers then even layers. Uses the path's
  conditionals ``sample_latent`` / ``sample_given_latent``. Reversible in the state (the
  state's marginal chain is a data-augmentation sampler).
* :class:`SingleSiteGibbs` -- systematic-scan heat-bath sweep over the binary units,
  :math:`P(x_i = 1 \mid x_{-i}) = \sigma(\log f_\beta(x^{i\to1}) - \log f_\beta(x^{i\to0}))`
  (the path's ``conditional_logits`` when it has them, e.g. a Boltzmann machine's
  :math:`b_i + 2\sum_j U_{ij}x_j`; otherwise two evaluations of ``log_density``). Its time
  reversal is the sweep in reverse order (:meth:`SingleSiteGibbs.reverse`).
* :class:`BinaryMetropolis` -- ``num_proposals`` single-flip Metropolis updates at uniformly
  chosen sites, accepted with probability :math:`\min(1, f_\beta(x')/f_\beta(x))`
  (symmetric proposal: reversible).
* :class:`RandomWalkMetropolis` -- Gaussian random-walk Metropolis for real events
  (reversible).

Every kernel draws its random numbers through :mod:`pyrogen._random` with the chains first, so
chain-block generators work. Each kernel's ``init(x)`` returns a :class:`KernelState` and
``step`` a :class:`KernelInfo` with the per-chain ``acceptance_rate``.

Cost per step on :math:`M` chains with :math:`D` binary units: block Gibbs, two products of the
path; single-site Gibbs, :math:`D` conditional evaluations (:math:`O(D)` each for a Boltzmann
machine, :math:`2D` log-densities generically); binary Metropolis, ``num_proposals + 1``
log-densities.
"""

from __future__ import annotations

import torch

from ..._random import bernoulli, normal_, uniform_
from ..._validation import check_float, check_int
from .base import KernelInfo, KernelState, TransitionKernel

__all__ = [
    "BlockGibbs",
    "SingleSiteGibbs",
    "BinaryMetropolis",
    "RandomWalkMetropolis",
    "resolve_kernel",
]


def _lead(path, x):
    return x.shape[: 1 + len(path.log_z0.shape)]


def _event_ndim(path, x):
    return x.dim() - 1 - len(path.log_z0.shape)


class BlockGibbs:
    r"""Block Gibbs on a path with a bipartite split: latent block given state, state given it.

    The path offers ``sample_latent(x, beta, generator) -> z`` (a draw of the summed-out units
    from :math:`f_\beta(z \mid x)`) and ``sample_given_latent(z, beta, generator) -> x``. Both
    are exact conditionals of the joint :math:`f_\beta(x, z)` whose marginal in :math:`x` is
    the path's :math:`f_\beta(x)`, so one step leaves :math:`f_\beta(x)` invariant and is
    reversible with respect to it.
    """

    def __init__(self, path, num_sweeps: int = 1):
        for name in ("sample_latent", "sample_given_latent"):
            if not callable(getattr(path, name, None)):
                raise TypeError(
                    f"BlockGibbs needs a path with {name}(..., beta, generator) (e.g. "
                    f"RBMBaseRatePath, DBMPath). Got {type(path).__name__} instead."
                )
        self.path = path
        self.num_sweeps = check_int(num_sweeps, "num_sweeps", low=1)

    def init(self, x: torch.Tensor) -> KernelState:
        return KernelState(position=x)

    def step(self, generator, state: KernelState, beta: float):
        x = state.position
        for _ in range(self.num_sweeps):
            z = self.path.sample_latent(x, beta, generator)
            x = self.path.sample_given_latent(z, beta, generator)
        ones = torch.ones(_lead(self.path, x), dtype=x.dtype, device=x.device)
        return KernelState(position=x), KernelInfo(acceptance_rate=ones)

    def reverse(self) -> BlockGibbs:
        """Reversible: its own time reversal."""
        return self

    def __repr__(self) -> str:
        return f"BlockGibbs({type(self.path).__name__}, num_sweeps={self.num_sweeps})"


class SingleSiteGibbs:
    r"""Systematic-scan single-site Gibbs (heat bath) for binary events.

    Parameters
    ----------
    path : AnnealingPath
        With binary events of any shape (flattened for the scan). Uses
        ``path.conditional_logits(x, i, beta)`` (logit of :math:`x_i = 1` given the rest, for
        ``x`` flattened to ``(..., D)``) when offered.
    num_sweeps : int
        Sweeps per step.
    reverse : bool
        Scan the units in reverse order (the time reversal of the forward sweep).
    """

    def __init__(self, path, num_sweeps: int = 1, reverse: bool = False):
        self.path = path
        self.num_sweeps = check_int(num_sweeps, "num_sweeps", low=1)
        self.reversed = bool(reverse)

    def init(self, x: torch.Tensor) -> KernelState:
        return KernelState(position=x)

    def _logit(self, flat, shape, i, beta, logf=None):
        cond = getattr(self.path, "conditional_logits", None)
        if callable(cond):
            return cond(flat, i, beta), None
        one = flat.clone()
        one[..., i] = 1
        zero = flat.clone()
        zero[..., i] = 0
        lf1 = self.path.log_density(one.reshape(shape), beta)
        lf0 = self.path.log_density(zero.reshape(shape), beta)
        return lf1 - lf0, None

    def step(self, generator, state: KernelState, beta: float):
        x = state.position
        shape = x.shape
        ev = _event_ndim(self.path, x)
        lead = shape[: len(shape) - ev]
        flat = x.reshape(*lead, -1).clone()
        d = flat.shape[-1]
        order = range(d - 1, -1, -1) if self.reversed else range(d)
        for _ in range(self.num_sweeps):
            for i in order:
                logit, _ = self._logit(flat, shape, i, beta)
                flat[..., i] = bernoulli(torch.sigmoid(logit), generator)
        ones = torch.ones(lead, dtype=x.dtype, device=x.device)
        return KernelState(position=flat.reshape(shape)), KernelInfo(acceptance_rate=ones)

    def reverse(self) -> SingleSiteGibbs:
        """The sweep in the opposite order: the time reversal of this kernel."""
        return SingleSiteGibbs(self.path, self.num_sweeps, reverse=not self.reversed)

    def __repr__(self) -> str:
        return f"SingleSiteGibbs(num_sweeps={self.num_sweeps}, reverse={self.reversed})"


class BinaryMetropolis:
    r"""Single-flip Metropolis for binary events: ``num_proposals`` updates per step.

    Each update picks a site :math:`i` uniformly, proposes :math:`x' = x` with :math:`x_i`
    flipped and accepts with probability :math:`\min(1, f_\beta(x')/f_\beta(x))`. The proposal
    is symmetric, so each update satisfies detailed balance with respect to :math:`f_\beta`;
    ``num_proposals`` of them with independently drawn sites are a power of that one reversible
    kernel, hence reversible too.

    Parameters
    ----------
    path : AnnealingPath with binary events
    num_proposals : int, optional
        Updates per step; default the number of units :math:`D` (one sweep's worth).
    """

    def __init__(self, path, num_proposals: int | None = None):
        self.path = path
        self.num_proposals = (
            None if num_proposals is None else check_int(num_proposals, "num_proposals", low=1)
        )

    def init(self, x: torch.Tensor) -> KernelState:
        return KernelState(position=x)

    def step(self, generator, state: KernelState, beta: float):
        x = state.position
        shape = x.shape
        ev = _event_ndim(self.path, x)
        lead = shape[: len(shape) - ev]
        flat = x.reshape(*lead, -1).clone()
        d = flat.shape[-1]
        n = d if self.num_proposals is None else self.num_proposals
        logf = self.path.log_density(flat.reshape(shape), beta)
        accepted = torch.zeros(lead, dtype=torch.float64, device=x.device)
        for _ in range(n):
            u_site = uniform_(torch.empty(lead, dtype=torch.float64, device=x.device), generator)
            site = (u_site * d).long().clamp_max(d - 1)
            onehot = torch.nn.functional.one_hot(site, d).to(flat.dtype)
            prop = flat + onehot * (1 - 2 * flat)
            logf_prop = self.path.log_density(prop.reshape(shape), beta)
            u = uniform_(torch.empty(lead, dtype=torch.float64, device=x.device), generator)
            acc = torch.log(u) < (logf_prop - logf).double()
            flat = torch.where(acc.unsqueeze(-1), prop, flat)
            logf = torch.where(acc, logf_prop, logf)
            accepted += acc
        rate = (accepted / n).to(x.dtype)
        return KernelState(position=flat.reshape(shape)), KernelInfo(acceptance_rate=rate)

    def reverse(self) -> BinaryMetropolis:
        """Reversible: its own time reversal."""
        return self

    def __repr__(self) -> str:
        return f"BinaryMetropolis(num_proposals={self.num_proposals})"


class RandomWalkMetropolis:
    r"""Gaussian random-walk Metropolis for real events: ``num_steps`` proposals
    :math:`x' = x + s\,\xi`, :math:`\xi\sim\mathcal N(0, I)`, accepted with probability
    :math:`\min(1, f_\beta(x')/f_\beta(x))` (symmetric: reversible). For gradient-based moves
    see :mod:`pyrogen.infer.annealing.hmc`."""

    def __init__(self, path, step_size: float = 0.5, num_steps: int = 1):
        self.path = path
        self.step_size = check_float(step_size, "step_size", 0.0, None, "oo")
        self.num_steps = check_int(num_steps, "num_steps", low=1)

    def init(self, x: torch.Tensor) -> KernelState:
        return KernelState(position=x)

    def step(self, generator, state: KernelState, beta: float):
        x = state.position
        ev = _event_ndim(self.path, x)
        logf = self.path.log_density(x, beta)
        accepted = torch.zeros(logf.shape, dtype=torch.float64, device=x.device)
        for _ in range(self.num_steps):
            prop = x + self.step_size * normal_(torch.empty_like(x), generator)
            logf_prop = self.path.log_density(prop, beta)
            u = uniform_(torch.empty(logf.shape, dtype=torch.float64, device=x.device), generator)
            acc = torch.log(u) < (logf_prop - logf).double()
            x = torch.where(acc.reshape(*acc.shape, *([1] * ev)), prop, x)
            logf = torch.where(acc, logf_prop, logf)
            accepted += acc
        rate = (accepted / self.num_steps).to(x.dtype)
        return KernelState(position=x), KernelInfo(acceptance_rate=rate)

    def reverse(self) -> RandomWalkMetropolis:
        return self

    def __repr__(self) -> str:
        return f"RandomWalkMetropolis(step_size={self.step_size}, num_steps={self.num_steps})"


def resolve_kernel(path, kernel=None):
    """The kernel to anneal ``path`` with, in this order: ``kernel`` if given;
    ``path.default_kernel()``; :class:`BlockGibbs` when the path offers its conditionals;
    a :class:`~pyrogen.infer.annealing.TransitionKernel` on ``path.transition``;
    :class:`SingleSiteGibbs` for binary events (``path.binary``); :class:`RandomWalkMetropolis`
    for real events (``path.binary is False``), with the path's ``num_sweeps``/``step_size``."""
    if kernel is not None:
        ok = callable(getattr(kernel, "init", None)) and callable(getattr(kernel, "step", None))
        if not ok:
            raise TypeError(
                "kernel must have init(x) and step(generator, state, beta) (a pyrogen.infer."
                f"annealing Kernel). Got {type(kernel).__name__} instead."
            )
        return kernel
    if callable(getattr(path, "default_kernel", None)):
        return path.default_kernel()
    if callable(getattr(path, "sample_latent", None)) and callable(
        getattr(path, "sample_given_latent", None)
    ):
        return BlockGibbs(path)
    if callable(getattr(path, "transition", None)):
        return TransitionKernel(path)
    binary = getattr(path, "binary", None)
    sweeps = getattr(path, "num_sweeps", 1)
    if binary is True:
        return SingleSiteGibbs(path, num_sweeps=sweeps)
    if binary is False:
        return RandomWalkMetropolis(path, getattr(path, "step_size", 0.5), num_steps=sweeps)
    raise TypeError(
        f"no kernel for {type(path).__name__}: pass kernel=..., or give the path "
        "default_kernel(), sample_latent/sample_given_latent, transition, or binary=True/False."
    )
