r"""The annealing loop: AIS (Neal 2001) over any path and kernel.

(Moved from ``pyrogen/infer/ais.py``; see :mod:`pyrogen.infer.annealing.base` for the layout.)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..._validation import check_int
from ...evaluation import log_mean_exp
from .base import AnnealingPath, _field_docs
from .schedules import check_betas as _check_betas

__all__ = ["AISState", "AISInfo", "AISResult", "ais", "ais_init", "ais_step"]


class AISState(NamedTuple):
    """State of the annealing loop (BlackJAX style): particles, log-weights, temperature."""

    particles: torch.Tensor
    log_weights: torch.Tensor
    beta: float


_field_docs(
    AISState,
    particles="Current particles, shape ``(num_chains, *batch_shape, *event_shape)``.",
    log_weights="Accumulated importance log-weights excluding ``log_z0``, float64, shape "
    "``(num_chains, *batch_shape)``.",
    beta="The inverse temperature the particles were last moved at (float).",
)


class AISInfo(NamedTuple):
    """What one annealing step did."""

    log_weight_increment: torch.Tensor
    beta: float


_field_docs(
    AISInfo,
    log_weight_increment=r":math:`\log f_\beta(x) - \log f_{\beta_{prev}}(x)` at the particles "
    "before the move, shape ``(num_chains, *batch_shape)``.",
    beta="The new inverse temperature (float).",
)


class AISResult(NamedTuple):
    """Result of :func:`ais`: the estimate of log Z, its standard error, ESS, weights, samples."""

    log_z: torch.Tensor
    log_z_stderr: torch.Tensor
    ess: torch.Tensor
    log_weights: torch.Tensor
    samples: torch.Tensor
    num_betas: int


_field_docs(
    AISResult,
    log_z=r":math:`\log\hat Z = \log Z_0 + \log\frac1M\sum_m w_m`, shape ``batch_shape``: "
    r"the log of an *unbiased estimate of Z*; in expectation it underestimates :math:`\log Z`.",
    log_z_stderr=r"Delta-method standard error of ``log_z``, :math:`s_w/(\sqrt M \bar w)`, "
    "shape ``batch_shape`` (inf when ``num_chains == 1``).",
    ess=r"Effective sample size :math:`(\sum_m w_m)^2/\sum_m w_m^2` in ``[1, num_chains]``, "
    "shape ``batch_shape``.",
    log_weights=r":math:`\log Z_0 + \log w_m`, shape ``(num_chains, *batch_shape)``: each "
    "exponentiates to an unbiased estimate of Z.",
    samples="Final particles, approximate draws from the target (weight them by "
    "``log_weights``), shape ``(num_chains, *batch_shape, *event_shape)``.",
    num_betas="Number of inverse temperatures used (int).",
)


# --------------------------------------------------------------------------------------------
# Weight statistics
# --------------------------------------------------------------------------------------------
def _weight_stats(log_w: torch.Tensor):
    """Log-mean-exp, its delta-method stderr and the ESS over dim 0, by the ONE
    :func:`pyrogen.evaluation.log_mean_exp` (float64)."""
    r = log_mean_exp(log_w.double(), dim=0)
    return r.value, r.stderr, r.ess


def _call(fn, *args, generator=None):
    return fn(*args) if generator is None else fn(*args, generator=generator)


# --------------------------------------------------------------------------------------------
# The functional core
# --------------------------------------------------------------------------------------------
def ais_init(path: AnnealingPath, num_chains: int, *, generator=None) -> AISState:
    """Draw ``num_chains`` exact particles from the base and start the weights at 0."""
    num_chains = check_int(num_chains, "num_chains", low=1)
    x = _call(path.init, num_chains, generator=generator)
    lead = x.shape[: 1 + len(path.log_z0.shape)]
    log_w = torch.zeros(lead, dtype=torch.float64, device=x.device)
    return AISState(particles=x, log_weights=log_w, beta=0.0)


def ais_step(
    path: AnnealingPath, state: AISState, beta: float, *, generator=None
) -> tuple[AISState, AISInfo]:
    r"""One annealing step: add :math:`\log f_\beta(x) - \log f_{\beta_{prev}}(x)`, then move.

    Uses ``path.anneal_step`` when the path has one (one fused pass), otherwise
    ``log_density`` twice and ``transition``.
    """
    x, beta_prev = state.particles, state.beta
    if hasattr(path, "anneal_step"):
        x_new, inc = _call(path.anneal_step, x, beta_prev, beta, generator=generator)
    else:
        inc = path.log_density(x, beta) - path.log_density(x, beta_prev)
        x_new = _call(path.transition, x, beta, generator=generator)
    new = AISState(particles=x_new, log_weights=state.log_weights + inc.double(), beta=beta)
    return new, AISInfo(log_weight_increment=inc, beta=beta)


def ais(
    path: AnnealingPath,
    betas: torch.Tensor | int | None = None,
    num_chains: int = 100,
    *,
    generator: torch.Generator | None = None,
) -> AISResult:
    r"""Annealed importance sampling estimate of :math:`\log Z` of ``path``'s target.

    Parameters
    ----------
    path : AnnealingPath
        E.g. :class:`RBMBaseRatePath` or :class:`GeometricPath`.
    betas : int or torch.Tensor, optional
        Either the number of inverse temperatures (the :func:`schedule` ``"sm"`` shape) or the
        schedule itself (1-D, from 0 to 1, non-decreasing). Default :data:`DEFAULT_NUM_BETAS`
        (10,000), which with 100 chains brings the estimate within 0.1 nats of the exact
        :math:`\log Z` on 784-visible RBMs trained on MNIST (``tests/infer/test_ais.py``;
        1,000 temperatures gave errors up to 0.2 nats there). Salakhutdinov & Murray used
        14,501 (``schedule(14501)``).
    num_chains : int
        Number of independent particles :math:`M`.
    generator : torch.Generator, optional
        Source of randomness, for reproducible runs (passed to the path's sampler).

    Returns
    -------
    AISResult
        ``log_z`` (the log of an unbiased estimate of Z, shape ``batch_shape``), its
        delta-method ``log_z_stderr``, the ``ess`` of the weights, the ``log_weights`` (including
        :math:`\log Z_0`) and the final ``samples``.

    Notes
    -----
    Log-weights are accumulated in float64 whatever the path's dtype; ``log_z``,
    ``log_z_stderr``, ``ess`` and ``log_weights`` are returned in the dtype of ``path.log_z0``.
    Cost: ``len(betas) - 1`` transitions of all chains.
    """
    betas = _check_betas(betas)
    state = ais_init(path, num_chains, generator=generator)
    for beta in betas[1:]:
        state, _ = ais_step(path, state, beta, generator=generator)
    log_z0 = path.log_z0.detach().double()
    log_mean, se, ess = _weight_stats(state.log_weights)
    dtype = path.log_z0.dtype
    return AISResult(
        log_z=(log_z0 + log_mean).to(dtype),
        log_z_stderr=se.to(dtype),
        ess=ess.to(dtype),
        log_weights=(state.log_weights + log_z0).to(dtype),
        samples=state.particles,
        num_betas=len(betas),
    )

