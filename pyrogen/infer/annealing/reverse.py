r"""RAISE: reverse annealed importance sampling (Burda, Grosse & Salakhutdinov 2015)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from ... import distributed as _dist
from ..._random import derived_seed
from ..._validation import check_int
from ...evaluation import log_mean_exp
from .base import AnnealingPath, _field_docs
from .kernels import resolve_kernel
from .loop import _call, _check_increment, make_rng
from .schedules import check_betas as _check_betas

__all__ = ["RAISEResult", "reverse_ais"]


class RAISEResult(NamedTuple):
    """Result of :func:`reverse_ais`: a conservative estimate of log p(x) per data point."""

    log_prob: torch.Tensor
    log_prob_stderr: torch.Tensor
    ess: torch.Tensor
    log_weights: torch.Tensor
    num_betas: int


_field_docs(
    RAISEResult,
    log_prob=r":math:`\log\frac1M\sum_m w_m`, shape ``(n, *batch_shape)``: the log of an "
    "unbiased estimate of the annealing model's probability of each data point, a stochastic "
    r"*lower* bound on :math:`\log p_{\mathrm{ann}}(x)`.",
    log_prob_stderr="Delta-method standard error of ``log_prob``, shape ``(n, *batch_shape)`` "
    "(inf when ``num_chains == 1``).",
    ess="Effective sample size of the reverse weights of each data point.",
    log_weights="The reverse log-weights, shape ``(num_chains, n, *batch_shape)``.",
    num_betas="Number of inverse temperatures used (int).",
)


def reverse_ais(
    path: AnnealingPath,
    data: torch.Tensor,
    betas: torch.Tensor | int | None = None,
    num_chains: int = 10,
    *,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    kernel=None,
    seed: int | None = None,
) -> RAISEResult:
    r"""RAISE: reverse annealed importance sampling of :math:`\log p(x)` at data points.

    Burda, Grosse & Salakhutdinov (2015), *Accurate and conservative estimates of MRF
    log-likelihood using reverse annealing*. The forward annealing chain defines a tractable
    generative model :math:`p_{\mathrm{ann}}(x_K) = \sum p_0(x_0) \prod_k T_k(x_k\mid x_{k-1})`,
    which tends to the target :math:`f_1/Z` as the schedule gets finer. Starting at the data,
    :math:`x_K = x`, the chain is run backwards with the reversed kernels,
    :math:`x_{k-1} \sim \tilde T_k(\cdot\mid x_k)`, and each chain carries

    .. math::

        \log w = \log f_1(x) - \log Z_0 + \sum_{k=1}^{K}
        \left[\log f_{\beta_{k-1}}(x_{k-1}) - \log f_{\beta_k}(x_{k-1})\right],

    with :math:`\mathbb{E}[w] = p_{\mathrm{ann}}(x)`. So ``log_prob`` (:math:`\log` of the mean
    weight) is a stochastic **lower** bound on :math:`\log p_{\mathrm{ann}}(x)`: the opposite
    side from the AIS log-likelihood :math:`\log f_1(x) - \log\hat Z`, which is a stochastic
    upper bound on :math:`\log p(x)`. When the two agree, both are accurate; a gap says the
    annealing is too short. (Strictly, RAISE bounds the annealing model, not the target; Burda
    et al. show the bias is conservative in practice because :math:`p_{\mathrm{ann}}` is a
    poorer fit to the data than the target.)

    The kernels must be reversible with respect to :math:`f_\beta` (block Gibbs
    :math:`v\to h\to v` in :class:`RBMBaseRatePath` is), or the path must provide
    ``reverse_transition`` (:class:`GeometricPath` reverses the order of its Gibbs sweep).

    Parameters
    ----------
    path : AnnealingPath
        The annealing path (for RBMs, :class:`RBMBaseRatePath` with a base fitted to training
        data, as in Burda et al.).
    data : torch.Tensor, shape ``(n, *batch_shape, *event_shape)``
        The data points to evaluate.
    betas : int or torch.Tensor, optional
        As for :func:`ais`.
    num_chains : int
        Reverse chains per data point.
    generator : torch.Generator, optional
        Source of randomness (one stream).
    chunk_size : int, optional
        Number of data points processed together (memory is
        ``num_chains * chunk_size * event_size``); default all.
    kernel : Kernel, optional
        The forward kernel (default: :func:`~pyrogen.infer.annealing.resolve_kernel`); the
        reverse chain uses ``kernel.reverse()`` when it has one (single-site Gibbs in reverse
        order), else the kernel itself, which must then be reversible.
    seed : int, optional
        Seeds chain-block generators (:class:`~pyrogen._random.ChainRNG`), one per chunk of
        data points (derived from ``(seed, first row of the chunk)``). Under a
        ``torch.distributed`` process group of more than one process (and no ``generator``)
        the chunks are split over the ranks and gathered in order on every rank: bitwise
        identical to one process with the same seed (drawn on rank 0 when ``None``); set
        ``chunk_size`` so that there are several chunks.

    Returns
    -------
    RAISEResult
        ``log_prob`` (shape ``(n, *batch_shape)``) with ``log_prob_stderr``, ``ess`` and
        ``log_weights``.

    Notes
    -----
    Cost: ``len(betas)`` transitions of ``num_chains * n`` chains.
    """
    betas = _check_betas(betas)
    num_chains = check_int(num_chains, "num_chains", low=1)
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data must be a torch.Tensor. Got {type(data).__name__} instead.")
    batch_dims = len(path.log_z0.shape)
    if data.dim() < 1 + batch_dims + 1:
        raise ValueError(
            "data must have shape (n, *batch_shape, *event_shape) with batch_shape "
            f"{tuple(path.log_z0.shape)}. Got shape {tuple(data.shape)} instead."
        )
    n = data.shape[0]
    chunk_size = n if chunk_size is None else check_int(chunk_size, "chunk_size", low=1)
    user_kernel = kernel is not None
    kernel = resolve_kernel(path, kernel)
    rev_kernel = kernel.reverse() if callable(getattr(kernel, "reverse", None)) else kernel
    # a reversible default kernel lets the path's fused forward step serve backwards
    fused = (
        not user_kernel
        and callable(getattr(path, "anneal_step", None))
        and not callable(getattr(path, "reverse_transition", None))
        and rev_kernel is kernel
    )
    if seed is not None and generator is not None:
        raise ValueError("give either seed or generator, not both. Got both.")
    rev_betas = betas[::-1]
    log_z0 = path.log_z0.detach().double()
    out = []
    starts = range(0, n, chunk_size)
    world = _dist.world_size() if generator is None else 1
    if world > 1:  # chunks of data points over the ranks, keyed by the chunk's first row
        seed = _dist.agreed_seed(seed)
        starts = [starts[i] for i in _dist.block_range(len(starts))]
    for start in starts:
        chunk = data[start : start + chunk_size]
        nc = chunk.shape[0]
        x = chunk.unsqueeze(0).expand(num_chains, *chunk.shape).reshape(-1, *chunk.shape[1:])
        x = x.clone()
        rng = generator
        if seed is not None:
            rng = make_rng(x.shape[0], seed=derived_seed(seed, start), device=x.device)
        log_w = path.log_density(x, 1.0).double() - log_z0
        kstate = rev_kernel.init(x)
        kstate, _ = rev_kernel.step(rng, kstate, rev_betas[0])
        x = kstate.position
        for k in range(1, len(rev_betas)):
            b_hi, b_lo = rev_betas[k - 1], rev_betas[k]
            last = k == len(rev_betas) - 1
            if fused and not last:
                # increment log f_lo(x) - log f_hi(x), then the move at b_lo, in one pass
                x, inc = _call(path.anneal_step, x, b_hi, b_lo, generator=rng)
            else:
                inc = path.log_density(x, b_lo) - path.log_density(x, b_hi)
                if not last:
                    kstate = rev_kernel.init(x) if fused else kstate._replace(position=x)
                    kstate, _ = rev_kernel.step(rng, kstate, b_lo)
                    x = kstate.position
            _check_increment(inc, b_lo, k, len(rev_betas))
            log_w = log_w + inc.double()
        out.append(log_w.reshape(num_chains, nc, *log_w.shape[1:]))
    if world > 1:  # gathered in chunk order on every rank: bitwise equal to one process
        parts = _dist.gather_in_order(torch.cat(out, dim=1).cpu() if out else None)
        out = [p.to(data.device) for p in parts if p is not None]
    log_w = torch.cat(out, dim=1)
    stats = log_mean_exp(log_w.double(), dim=0)
    log_mean, se, ess = stats.value, stats.stderr, stats.ess
    dtype = path.log_z0.dtype
    return RAISEResult(
        log_prob=log_mean.to(dtype),
        log_prob_stderr=se.to(dtype),
        ess=ess.to(dtype),
        log_weights=log_w.to(dtype),
        num_betas=len(betas),
    )
