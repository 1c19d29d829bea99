r"""The ONE annealing loop: AIS (no resampling) and SMC (resampling, adaptive schedule).

Both move ``M`` particles through :math:`f_{\beta_0}, \dots, f_{\beta_K}`,
:math:`0 = \beta_0 \le \dots \le \beta_K = 1`, from exact draws of :math:`f_0/Z_0`, with a
kernel leaving each :math:`f_{\beta_k}` invariant, and accumulate the incremental weights

.. math::

    \log w_k(x) = \log f_{\beta_k}(x) - \log f_{\beta_{k-1}}(x)

at the particles *before* the move at :math:`\beta_k`.

**AIS** (Neal 2001 [1]_) never resamples: each chain's weight :math:`w = \prod_k w_k` has
:math:`\mathbb E[w] = Z_1/Z_0`, so :math:`\hat Z = Z_0 \frac1M \sum_m w_m` is an *unbiased
estimate of Z* (not of :math:`\log Z`: by Jensen :math:`\mathbb E \log\hat Z \le \log Z`). Its
standard error is the delta-method value of :func:`pyrogen.evaluation.log_mean_exp`.

**SMC** (Del Moral, Doucet & Jasra 2006 [2]_) resamples (systematic resampling) whenever the ESS
of the normalized weights falls below ``resample_threshold * M``; the estimate
:math:`\hat Z = Z_0 \prod_k \sum_m W^{(k-1)}_m w_k(x_m)` is again unbiased for Z for a *fixed*
schedule (Del Moral 2004 [3]_). With the **adaptive schedule** (BlackJAX's adaptive tempered
SMC; Jasra et al. 2011 [4]_, Zhou, Johansen & Aston 2016 [5]_) the next temperature is the
largest :math:`\beta` whose conditional ESS

.. math::

    \mathrm{CESS}(\beta) = M\,\frac{\big(\sum_m W_m w_m(\beta)\big)^2}{\sum_m W_m w_m(\beta)^2}

is at least ``target_cess * M`` (bisection; the smallest CESS over the batch decides, so a batch
of models shares one schedule). The temperatures then depend on the particles, so the estimate
is only asymptotically unbiased (bias :math:`O(1/M)`); for an exactly unbiased estimate run
``smc`` once to choose the schedule and rerun it with those ``betas`` fixed and another seed.
The schedule is a deterministic function of the particles, hence reproducible for a seed.

With resampling the delta-method error does not apply (the weights are no longer independent).
SMC reports the **genealogy (Eve-index) estimate** of Chan & Lai (2013) [6]_ and Lee & Whiteley
(2018) [7]_: with :math:`E_m` the index of the time-0 ancestor of particle :math:`m` and
:math:`W_m` the final normalized weights,

.. math::

    \widehat{\mathrm{Var}}(\log\hat Z) \approx \sum_{i=1}^{M}
    \Big(\sum_{m: E_m = i} W_m - \frac1M\Big)^2,

which reduces to the delta-method value when nothing was resampled. It is asymptotic and
becomes unreliable when few time-0 ancestors survive (``num_eves``); SMC warns below
:data:`~pyrogen.infer.annealing.defaults.WARN_MIN_EVES`.

Precision: particles in the path's dtype (float32 for speed), log-weights in float64.
Vectorized over chains and over the path's batch (a parameter batch of models, data rows).
Random numbers: keyed by chain block (:class:`pyrogen._random.ChainRNG`) when a ``seed`` (or
nothing) is given, so that AIS over chains ``0..M`` equals the concatenation of runs over
blocks of them (``first_block``); SMC's resampling couples the chains, so only AIS splits.

NaN safety: a NaN (or :math:`+\infty`) incremental weight, or NaN particles, stop the run with a
``FloatingPointError`` naming the temperature: no NaN estimate is ever returned.

References
----------
.. [1] R. M. Neal. Annealed importance sampling. *Statistics and Computing* 11:125-139, 2001.
.. [2] P. Del Moral, A. Doucet and A. Jasra. Sequential Monte Carlo samplers. *JRSS B*
   68(3):411-436, 2006.
.. [3] P. Del Moral. *Feynman-Kac Formulae*. Springer, 2004.
.. [4] A. Jasra, D. Stephens, A. Doucet and T. Tsagaris. Inference for Lévy-driven stochastic
   volatility models via adaptive sequential Monte Carlo. *Scand. J. Stat.* 38:1-22, 2011.
.. [5] Y. Zhou, A. M. Johansen and J. A. D. Aston. Toward automatic model comparison: an
   adaptive sequential Monte Carlo approach. *JCGS* 25(3):701-726, 2016.
.. [6] H. P. Chan and T. L. Lai. A general theory of particle filters in hidden Markov models
   and some applications. *Annals of Statistics* 41(6):2877-2904, 2013.
.. [7] A. Lee and N. Whiteley. Variance estimation in the particle filter. *Biometrika*
   105(3):609-625, 2018.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import torch

from ... import distributed as _dist
from ..._random import ChainRNG
from ..._validation import check_float, check_int
from ...evaluation import log_mean_exp
from . import defaults
from .base import AISWarning, AnnealingPath, _field_docs, select_chains
from .kernels import resolve_kernel
from .schedules import check_betas

__all__ = [
    "AISState",
    "AISInfo",
    "AISResult",
    "SMCResult",
    "ais",
    "ais_init",
    "ais_step",
    "smc",
    "make_rng",
]


# --------------------------------------------------------------------------------------------
# Result and state types
# --------------------------------------------------------------------------------------------
class AISState(NamedTuple):
    """State of the annealing loop (BlackJAX style): particles, log-weights, temperature."""

    particles: torch.Tensor
    log_weights: torch.Tensor
    beta: float
    kernel_state: Any = None


_field_docs(
    AISState,
    particles="Current particles, shape ``(num_chains, *batch_shape, *event_shape)``.",
    log_weights="Accumulated importance log-weights excluding ``log_z0``, float64, shape "
    "``(num_chains, *batch_shape)``.",
    beta="The inverse temperature the particles were last moved at (float).",
    kernel_state="The kernel's own state (``None`` on the fused path's fast route).",
)


class AISInfo(NamedTuple):
    """What one annealing step did."""

    log_weight_increment: torch.Tensor
    beta: float
    acceptance_rate: torch.Tensor | None = None


_field_docs(
    AISInfo,
    log_weight_increment=r":math:`\log f_\beta(x) - \log f_{\beta_{prev}}(x)` at the particles "
    "before the move, shape ``(num_chains, *batch_shape)``.",
    beta="The new inverse temperature (float).",
    acceptance_rate="The kernel's per-chain acceptance rate of the move (``None`` on the fused "
    "fast route).",
)


class AISResult(NamedTuple):
    """Result of :func:`ais`: the estimate of log Z, its standard error, ESS, weights, samples."""

    log_z: torch.Tensor
    log_z_stderr: torch.Tensor
    ess: torch.Tensor
    log_weights: torch.Tensor
    samples: torch.Tensor
    num_betas: int
    betas: torch.Tensor | None = None


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
    betas="The temperatures used, float64, shape ``(num_betas,)``.",
)


class SMCResult(NamedTuple):
    """Result of :func:`smc`."""

    log_z: torch.Tensor
    log_z_stderr: torch.Tensor
    stderr_method: str
    ess: torch.Tensor
    num_eves: torch.Tensor
    log_weights: torch.Tensor
    samples: torch.Tensor
    betas: torch.Tensor
    num_betas: int
    resampled: torch.Tensor
    acceptance_rate: torch.Tensor | None


_field_docs(
    SMCResult,
    log_z=r":math:`\log\hat Z = \log Z_0 + \sum_k \log\sum_m W^{(k-1)}_m w_k(x_m)`, shape "
    "``batch_shape``: the log of an estimate of Z that is unbiased for a fixed schedule "
    "(asymptotically unbiased with the adaptive one).",
    log_z_stderr="Standard error of ``log_z`` by the genealogy (Eve-index) estimator of Chan & "
    "Lai (2013) / Lee & Whiteley (2018), shape ``batch_shape``: asymptotic; unreliable when "
    "``num_eves`` is small.",
    stderr_method='How ``log_z_stderr`` was computed: ``"genealogy (Eve-index)"``.',
    ess="ESS of the final normalized weights (since the last resampling), shape ``batch_shape``.",
    num_eves="Number of distinct time-0 ancestors among the final particles, shape "
    "``batch_shape``.",
    log_weights="Final log-weights scaled so that their log-mean-exp is ``log_z`` (as for "
    ":func:`ais`), shape ``(num_chains, *batch_shape)``.",
    samples="Final particles, shape ``(num_chains, *batch_shape, *event_shape)``.",
    betas="The temperatures used (adaptive or given), float64, shape ``(num_betas,)``.",
    num_betas="``len(betas)``.",
    resampled="Bool, shape ``(num_betas,)``: whether the particles were resampled at each "
    "temperature (after its move).",
    acceptance_rate="Mean acceptance rate of the kernel over chains and temperatures (a "
    "float tensor), or ``None`` on the fused route.",
)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------
def make_rng(
    num_chains, *, seed=None, generator=None, block_size=None, first_block=0, device="cpu"
):
    """The random-number source of a run: ``generator`` when given (one stream for all chains),
    else a :class:`~pyrogen._random.ChainRNG` from ``seed`` (drawn from the global torch RNG
    when ``None``, so ``torch.manual_seed`` still makes runs reproducible)."""
    if generator is not None:
        if seed is not None:
            raise ValueError("give either seed or generator, not both. Got both.")
        if not isinstance(generator, (torch.Generator, ChainRNG)):
            raise TypeError(
                "generator must be a torch.Generator or a pyrogen ChainRNG. Got "
                f"{type(generator).__name__} instead."
            )
        return generator
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    block_size = defaults.CHAIN_BLOCK_SIZE if block_size is None else block_size
    return ChainRNG(seed, num_chains, block_size, first_block, device)


def _call(fn, *args, generator=None):
    return fn(*args) if generator is None else fn(*args, generator=generator)


def _batch_shape(path) -> torch.Size:
    return torch.Size(path.log_z0.shape)


def _check_increment(inc: torch.Tensor, beta: float, k: int, num_betas: int) -> torch.Tensor:
    bad = torch.isnan(inc) | (inc == math.inf)
    if bool(bad.any()):
        n = int(bad.sum())
        raise FloatingPointError(
            f"the log-weight increment log f(x; beta={beta:.6g}) - log f(x; previous beta) is "
            f"NaN or +inf for {n} chain(s) at temperature {k} of {num_betas - 1} "
            f"(beta={beta:.6g}): the path's log density (the model's energy) is not finite "
            "there. No estimate is returned; check the parameters and the base."
        )
    return inc


def _check_particles(x: torch.Tensor, beta: float) -> None:
    if x.dtype.is_floating_point and bool(torch.isnan(x).any()):
        raise FloatingPointError(
            f"the particles became NaN after the move at beta={beta:.6g}: the kernel or the "
            "model's energy is not finite there. No estimate is returned."
        )


def _log_density_fn(path, x):
    fn = getattr(path, "log_density_fn", None)
    if callable(fn):
        return fn(x)
    return lambda beta: path.log_density(x, beta)


# --------------------------------------------------------------------------------------------
# The functional core (BlackJAX style)
# --------------------------------------------------------------------------------------------
def ais_init(path: AnnealingPath, num_chains: int, *, generator=None, kernel=None) -> AISState:
    """Draw ``num_chains`` exact particles from the base and start the weights at 0.

    With a ``kernel``, its state is initialized too (``kernel.init(x)``)."""
    num_chains = check_int(num_chains, "num_chains", low=1)
    x = _call(path.init, num_chains, generator=generator)
    lead = x.shape[: 1 + len(path.log_z0.shape)]
    log_w = torch.zeros(lead, dtype=torch.float64, device=x.device)
    kstate = kernel.init(x) if kernel is not None else None
    return AISState(particles=x, log_weights=log_w, beta=0.0, kernel_state=kstate)


def ais_step(
    path: AnnealingPath,
    state: AISState,
    beta: float,
    *,
    generator=None,
    kernel=None,
    num_moves: int = 1,
) -> tuple[AISState, AISInfo]:
    r"""One annealing step: add :math:`\log f_\beta(x) - \log f_{\beta_{prev}}(x)`, then move.

    Without a ``kernel`` (and ``num_moves == 1``) uses ``path.anneal_step`` when the path has
    one (one fused pass), otherwise ``log_density`` and the path's default kernel; with a
    ``kernel`` (whose state ``state.kernel_state`` carries, see :func:`ais_init`),
    ``num_moves`` of its steps at ``beta``.
    """
    x, beta_prev = state.particles, state.beta
    if kernel is None and num_moves == 1 and callable(getattr(path, "anneal_step", None)):
        x_new, inc = _call(path.anneal_step, x, beta_prev, beta, generator=generator)
        new = AISState(x_new, state.log_weights + inc.double(), beta, None)
        return new, AISInfo(log_weight_increment=inc, beta=beta)
    if kernel is None:
        kernel = resolve_kernel(path)
    kstate = state.kernel_state if state.kernel_state is not None else kernel.init(x)
    inc = path.log_density(x, beta) - path.log_density(x, beta_prev)
    acc = None
    for _ in range(num_moves):
        kstate, info = kernel.step(generator, kstate, beta)
        a = getattr(info, "acceptance_rate", None)
        acc = a if acc is None or a is None else acc + a
    if acc is not None:
        acc = acc / num_moves
    new = AISState(kstate.position, state.log_weights + inc.double(), beta, kstate)
    return new, AISInfo(log_weight_increment=inc, beta=beta, acceptance_rate=acc)


# --------------------------------------------------------------------------------------------
# Resampling and the adaptive schedule
# --------------------------------------------------------------------------------------------
def _systematic(log_w_norm: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Systematic resampling per batch element: ancestors, shape ``(M, *batch)``."""
    m = log_w_norm.shape[0]
    w = torch.exp(log_w_norm).movedim(0, -1)  # (*batch, M)
    cdf = torch.cumsum(w, -1)
    cdf = cdf / cdf[..., -1:]
    u = torch.rand(w.shape[:-1] + (1,), dtype=w.dtype, generator=generator)
    points = (torch.arange(m, dtype=w.dtype) + u) / m
    idx = torch.searchsorted(cdf.contiguous(), points.contiguous()).clamp_max(m - 1)
    return idx.movedim(-1, 0)


def _min_cess(log_w_norm: torch.Tensor, inc: torch.Tensor) -> float:
    """Smallest (over the batch) conditional ESS divided by M."""
    a = log_w_norm + inc
    num = 2 * torch.logsumexp(a, 0)
    den = torch.logsumexp(log_w_norm + 2 * inc, 0)
    cess = torch.exp(num - den)  # in (0, 1]
    cess = torch.where(torch.isnan(cess), torch.zeros_like(cess), cess)
    return float(cess.min())


def _next_beta(fn, log_w_norm, beta_prev, target, lp_prev, tol=1e-10):
    """Largest beta in (beta_prev, 1] with min CESS(beta) >= target (bisection)."""
    inc1 = fn(1.0).double() - lp_prev
    if _min_cess(log_w_norm, inc1) >= target:
        return 1.0, inc1
    lo, hi = beta_prev, 1.0
    best_inc = None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        inc = fn(mid).double() - lp_prev
        if _min_cess(log_w_norm, inc) >= target:
            lo, best_inc = mid, inc
        else:
            hi = mid
        if hi - lo < tol:
            break
    if best_inc is None:  # even the smallest step fails the target: take it anyway
        lo = hi
        best_inc = fn(lo).double() - lp_prev
    return lo, best_inc


# --------------------------------------------------------------------------------------------
# The one loop
# --------------------------------------------------------------------------------------------
def _anneal(
    path, betas, num_chains, rng, *, kernel, num_moves, resample_threshold, target_cess, max_betas
):
    """The loop behind :func:`ais` (``resample_threshold=None``) and :func:`smc`.

    ``betas`` is a list of floats (fixed schedule) or ``None`` (adaptive, ``target_cess``).
    Returns a dict of float64 tensors and lists.
    """
    batch = _batch_shape(path)
    fused = kernel is None and num_moves == 1 and callable(getattr(path, "anneal_step", None))
    adaptive = betas is None
    if adaptive:
        fused = False  # the increments come from the bisection, the move from the kernel
    if not fused and kernel is None:
        kernel = resolve_kernel(path)
    x = _call(path.init, num_chains, generator=rng)
    kstate = None if fused else kernel.init(x)
    lead = (num_chains, *batch)
    log_w = torch.zeros(lead, dtype=torch.float64, device=x.device)
    if resample_threshold is not None:  # SMC keeps normalized weights (logsumexp 0)
        log_w = log_w - math.log(num_chains)
    log_z = path.log_z0.detach().double().clone()
    eve = torch.arange(num_chains, device=x.device).reshape(-1, *([1] * len(batch)))
    eve = eve.expand(lead).clone()
    resample_gen = rng.generator(0) if isinstance(rng, ChainRNG) else rng
    used = [0.0]
    resampled = [False]
    acc_sum, acc_n = 0.0, 0
    beta_prev, k = 0.0, 0
    num_total = len(betas) if betas is not None else max_betas
    while (k < len(betas) - 1) if betas is not None else (beta_prev < 1.0):
        k += 1
        if adaptive and k >= max_betas:
            raise RuntimeError(
                f"the adaptive schedule needed more than max_betas={max_betas} temperatures "
                f"(reached beta={beta_prev:.6g}); lower target_cess or raise max_betas."
            )
        pos = x if fused else kstate.position
        if adaptive:
            fn = _log_density_fn(path, pos)
            lp_prev = fn(beta_prev).double()
            beta, inc = _next_beta(fn, log_w, beta_prev, target_cess, lp_prev)
        else:
            beta = betas[k]
        if fused:
            x, inc = _call(path.anneal_step, x, beta_prev, beta, generator=rng)
            inc = inc.double()
        else:
            if not adaptive:  # one pass over the shared terms when the path offers it
                fn = _log_density_fn(path, pos)
                inc = (fn(beta) - fn(beta_prev)).double()
            for _ in range(num_moves):
                kstate, info = kernel.step(rng, kstate, beta)
                a = getattr(info, "acceptance_rate", None)
                if a is not None:
                    acc_sum += float(a.double().mean())
                    acc_n += 1
        _check_increment(inc, beta, k, num_total if not adaptive else k + 1)
        log_w = log_w + inc
        did = False
        if resample_threshold is not None:
            lse = torch.logsumexp(log_w, 0)
            log_z = log_z + lse  # log_w was normalized: this adds log sum_m W_m w_m
            log_w = log_w - lse
            ess = torch.exp(-torch.logsumexp(2 * log_w, 0))
            if beta < 1.0 and bool((ess < resample_threshold * num_chains).any()):
                idx = _systematic(log_w, resample_gen)
                if fused:
                    x = select_chains(x, idx, num_chains, batch)
                else:
                    kstate = select_chains(kstate, idx, num_chains, batch)
                eve = torch.gather(eve, 0, idx)
                log_w = torch.full_like(log_w, -math.log(num_chains))
                did = True
        used.append(beta)
        resampled.append(did)
        beta_prev = beta
    x = x if fused else kstate.position
    _check_particles(x, 1.0)
    return {
        "log_w": log_w,
        "log_z": log_z,
        "samples": x,
        "betas": torch.tensor(used, dtype=torch.float64),
        "resampled": torch.tensor(resampled),
        "eve": eve,
        "acceptance": None if acc_n == 0 else torch.tensor(acc_sum / acc_n),
    }


def _resolve_common(path, num_chains, kernel, num_moves):
    if not hasattr(path, "log_z0") or not callable(getattr(path, "log_density", None)):
        raise TypeError(
            "path must be an AnnealingPath (log_z0, init(num_chains, generator), "
            f"log_density(x, beta)). Got {type(path).__name__} instead."
        )
    if num_chains is None:
        num_chains = defaults.DEFAULT_NUM_CHAINS
    num_chains = check_int(num_chains, "num_chains", low=1)
    num_moves = check_int(num_moves, "num_moves", low=1)
    if kernel is not None:
        kernel = resolve_kernel(path, kernel)
    return num_chains, kernel, num_moves


def ais(
    path: AnnealingPath,
    betas: torch.Tensor | int | None = None,
    num_chains: int | None = None,
    *,
    kernel=None,
    num_moves: int = 1,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    chain_block_size: int | None = None,
    first_block: int = 0,
    warn: bool = True,
    distribute: bool | None = None,
) -> AISResult:
    r"""Annealed importance sampling estimate of :math:`\log Z` of ``path``'s target.

    Parameters
    ----------
    path : AnnealingPath
        E.g. :class:`~pyrogen.infer.annealing.RBMBaseRatePath`,
        :class:`~pyrogen.infer.annealing.GeometricPath`, :class:`~pyrogen.infer.annealing.
        DBMPath`.
    betas : int or torch.Tensor, optional
        The number of inverse temperatures (the :func:`~pyrogen.infer.annealing.schedule`
        ``"sm"`` shape) or the schedule itself (1-D, from 0 to 1, non-decreasing). Default
        :data:`~pyrogen.infer.annealing.defaults.DEFAULT_NUM_BETAS`.
    num_chains : int, optional
        Independent chains :math:`M` (default
        :data:`~pyrogen.infer.annealing.defaults.DEFAULT_NUM_CHAINS`).
    kernel : Kernel, optional
        The transition kernel; default: the path's fused ``anneal_step`` when it has one (one
        move per temperature), else ``path.default_kernel()`` or its ``transition``.
    num_moves : int
        Kernel moves per temperature (default 1).
    seed : int, optional
        Seeds the chain-block random numbers (:class:`~pyrogen._random.ChainRNG`). Default:
        a seed drawn from the global torch RNG.
    generator : torch.Generator, optional
        One stream for all chains instead (the split property below then does not hold).
    chain_block_size, first_block : int
        Chains per random-number block (default
        :data:`~pyrogen.infer.annealing.defaults.CHAIN_BLOCK_SIZE`) and the index of the first
        block: ``ais(..., num_chains=B*k, seed=s, first_block=j)`` runs exactly the chains
        ``B*j .. B*(j+k)`` of one big run with the same seed, so chains can be split over
        processes and their ``log_weights`` concatenated.
    warn : bool
        Warn (:class:`~pyrogen.infer.annealing.AISWarning`) when the final ESS is below
        :data:`~pyrogen.infer.annealing.defaults.WARN_ESS_FRACTION` of the chains.
    distribute : bool, optional
        Split the chain blocks over the processes of a ``torch.distributed`` process group
        (contiguous blocks per rank, :func:`pyrogen.distributed.block_range`), gather the final
        log-weights and samples in block order on every rank and reduce them there: the result
        is bitwise identical to one process with the same ``seed`` (a seed drawn when ``None``
        is rank 0's, broadcast). Default: when a group of more than one process is
        initialized, no ``generator`` is given and ``first_block`` is 0. Every rank must call
        ``ais`` with the same arguments.

    Returns
    -------
    AISResult
        ``log_z`` (the log of an unbiased estimate of Z, shape ``batch_shape``), its
        delta-method ``log_z_stderr``, the ``ess`` of the weights, the ``log_weights`` (including
        :math:`\log Z_0`), the final ``samples`` and the ``betas``.

    Raises
    ------
    FloatingPointError
        A NaN/+inf incremental weight or NaN particles during the run (names the temperature).

    Notes
    -----
    Log-weights are accumulated in float64 whatever the path's dtype; ``log_z``,
    ``log_z_stderr``, ``ess`` and ``log_weights`` are returned in the dtype of ``path.log_z0``.
    Cost: ``(len(betas) - 1) * num_moves`` kernel moves of all chains plus one increment each
    (fused with the move on the RBM path: two :math:`M \times V \times H` products per
    temperature).
    """
    num_chains, kernel, num_moves = _resolve_common(path, num_chains, kernel, num_moves)
    betas = check_betas(betas)
    if distribute is None:
        distribute = _dist.world_size() > 1 and generator is None and first_block == 0
    if distribute and generator is not None:
        raise ValueError("distribute=True needs seed (chain-block random numbers), not "
                         "generator. Got a generator.")
    run = dict(kernel=kernel, num_moves=num_moves, resample_threshold=None, target_cess=None,
               max_betas=None)
    if distribute and _dist.world_size() > 1:
        out = _ais_distributed(path, betas, num_chains, seed, chain_block_size, first_block,
                               run)
    else:
        rng = make_rng(
            num_chains,
            seed=seed,
            generator=generator,
            block_size=chain_block_size,
            first_block=first_block,
            device=path.log_z0.device,
        )
        out = _anneal(path, betas, num_chains, rng, **run)
    log_z0 = path.log_z0.detach().double()
    stats = log_mean_exp(out["log_w"], dim=0)
    dtype = path.log_z0.dtype
    if warn:
        _warn_ess(stats.ess, num_chains, "AIS")
    return AISResult(
        log_z=(log_z0 + stats.value).to(dtype),
        log_z_stderr=stats.stderr.to(dtype),
        ess=stats.ess.to(dtype),
        log_weights=(out["log_w"] + log_z0).to(dtype),
        samples=out["samples"],
        num_betas=len(betas),
        betas=out["betas"],
    )


def _ais_distributed(path, betas, num_chains, seed, block_size, first_block, run):
    """:func:`ais` with its chain blocks split over the ranks, gathered in block order."""
    seed = _dist.agreed_seed(seed)
    block_size = check_int(defaults.CHAIN_BLOCK_SIZE if block_size is None else block_size,
                           "chain_block_size", low=1)
    blocks = _dist.block_range(math.ceil(num_chains / block_size))
    lo, hi = blocks.start * block_size, min(blocks.stop * block_size, num_chains)
    part = None
    if hi > lo:
        rng = ChainRNG(seed, hi - lo, block_size, first_block + blocks.start,
                       path.log_z0.device)
        out = _anneal(path, betas, hi - lo, rng, **run)
        part = (out["log_w"].cpu(), out["samples"].cpu(), out["betas"])
    parts = [p for p in _dist.gather_in_order(part) if p is not None]
    dev = path.log_z0.device
    return {
        "log_w": torch.cat([p[0] for p in parts]).to(dev),
        "samples": torch.cat([p[1] for p in parts]).to(dev),
        "betas": parts[0][2],
    }


def _warn_ess(ess, num_chains, what):
    frac = defaults.WARN_ESS_FRACTION
    if num_chains >= 2 and bool((ess < frac * num_chains).any()):
        warnings.warn(
            f"{what}: the effective sample size of the final weights is {float(ess.min()):.1f} "
            f"of {num_chains} chains (below {frac:g} of them): the estimate is dominated by a "
            "few chains and its standard error is unreliable. Use more temperatures or chains, "
            "or smc().",
            AISWarning,
            stacklevel=3,
        )


def smc(
    path: AnnealingPath,
    betas: torch.Tensor | int | None = None,
    num_chains: int | None = None,
    *,
    kernel=None,
    num_moves: int | None = None,
    target_cess: float | None = None,
    resample_threshold: float | None = None,
    max_betas: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    chain_block_size: int | None = None,
    warn: bool = True,
) -> SMCResult:
    r"""Sequential Monte Carlo sampler estimate of :math:`\log Z`: resampling + adaptive schedule.

    The same loop as :func:`ais` (see the module docstring for the estimator and its standard
    error), with systematic resampling whenever the ESS of the normalized weights falls below
    ``resample_threshold * num_chains``, and, when ``betas`` is ``None``, the adaptive schedule
    (next temperature by bisection for a conditional ESS of ``target_cess * num_chains``).

    Parameters
    ----------
    path : AnnealingPath
    betas : int or torch.Tensor, optional
        ``None`` (default): adaptive. Otherwise a fixed schedule as for :func:`ais` (the
        estimate of Z is then exactly unbiased).
    num_chains : int, optional
        Particles (default :data:`~pyrogen.infer.annealing.defaults.DEFAULT_NUM_CHAINS`).
    kernel : Kernel, optional
        As for :func:`ais` (the adaptive schedule moves with ``path.default_kernel()`` /
        ``transition``, not the fused step).
    num_moves : int, optional
        Kernel moves per temperature (default
        :data:`~pyrogen.infer.annealing.defaults.SMC_NUM_MOVES`).
    target_cess : float in (0, 1), optional
        Default :data:`~pyrogen.infer.annealing.defaults.SMC_TARGET_CESS`.
    resample_threshold : float in [0, 1], optional
        Default :data:`~pyrogen.infer.annealing.defaults.SMC_RESAMPLE_THRESHOLD` (0.5).
    max_betas : int, optional
        Give up (``RuntimeError``) past this many adaptive temperatures (default
        :data:`~pyrogen.infer.annealing.defaults.SMC_MAX_BETAS`).
    seed, generator, chain_block_size :
        As for :func:`ais` (the resampling uniforms come from a stream derived from the seed).
    warn : bool
        Warn (:class:`~pyrogen.infer.annealing.AISWarning`) when fewer than
        :data:`~pyrogen.infer.annealing.defaults.WARN_MIN_EVES` time-0 ancestors survive (the
        standard error is then unreliable) or the final ESS is below
        :data:`~pyrogen.infer.annealing.defaults.WARN_ESS_FRACTION` of the chains.

    Returns
    -------
    SMCResult

    Notes
    -----
    Cost per temperature: ``num_moves`` kernel moves; the adaptive schedule adds up to 60
    evaluations of :math:`\beta \mapsto \log f_\beta(x)` per temperature (cheap when the path
    offers ``log_density_fn``, e.g. the RBM path reuses its :math:`vW` product), resampling
    :math:`O(M \log M)`.
    """
    if num_moves is None:
        num_moves = defaults.SMC_NUM_MOVES
    num_chains, kernel, num_moves = _resolve_common(path, num_chains, kernel, num_moves)
    if target_cess is None:
        target_cess = defaults.SMC_TARGET_CESS
    target_cess = check_float(target_cess, "target_cess", 0.0, 1.0, "oo")
    if resample_threshold is None:
        resample_threshold = defaults.SMC_RESAMPLE_THRESHOLD
    resample_threshold = check_float(resample_threshold, "resample_threshold", 0.0, 1.0)
    if max_betas is None:
        max_betas = defaults.SMC_MAX_BETAS
    max_betas = check_int(max_betas, "max_betas", low=2)
    fixed = None if betas is None else check_betas(betas)
    rng = make_rng(
        num_chains,
        seed=seed,
        generator=generator,
        block_size=chain_block_size,
        device=path.log_z0.device,
    )
    out = _anneal(
        path,
        fixed,
        num_chains,
        rng,
        kernel=kernel,
        num_moves=num_moves,
        resample_threshold=resample_threshold,
        target_cess=target_cess,
        max_betas=max_betas,
    )
    log_w, eve = out["log_w"], out["eve"]  # log_w normalized (logsumexp 0)
    w = torch.exp(log_w)
    share = torch.zeros_like(w).scatter_add_(0, eve, w)  # weight mass of each Eve
    alive = torch.zeros_like(w).scatter_add_(0, eve, torch.ones_like(w)) > 0
    var = ((share - 1.0 / num_chains) ** 2).sum(0)
    num_eves = alive.sum(0)
    ess = torch.exp(-torch.logsumexp(2 * log_w, 0))
    dtype = path.log_z0.dtype
    if warn:
        _warn_ess(ess, num_chains, "SMC")
        if num_chains >= 2 and bool((num_eves < defaults.WARN_MIN_EVES).any()):
            warnings.warn(
                f"SMC: only {int(num_eves.min())} time-0 ancestors of {num_chains} survive the "
                "resampling steps: the genealogy estimate of the standard error is unreliable. "
                "Use more particles or a lower resample_threshold.",
                AISWarning,
                stacklevel=2,
            )
    return SMCResult(
        log_z=out["log_z"].to(dtype),
        log_z_stderr=var.sqrt().to(dtype),
        stderr_method="genealogy (Eve-index)",
        ess=ess.to(dtype),
        num_eves=num_eves,
        log_weights=(log_w + out["log_z"] + math.log(num_chains)).to(dtype),
        samples=out["samples"],
        betas=out["betas"],
        num_betas=len(out["betas"]),
        resampled=out["resampled"],
        acceptance_rate=out["acceptance"],
    )
