r"""Importance sampling with a Pyro guide as proposal: per-example log-weights and log p(x).

For a model :math:`p(x, z) = \prod_n p(x_n, z_n)` whose latent variables are local to the
examples (every sample site inside a plate named ``"data"``) and a guide
:math:`q(z \mid x) = \prod_n q(z_n \mid x_n)`, the importance weights

.. math::

    w_{kn} = \frac{p(x_n, z_{kn})}{q(z_{kn} \mid x_n)}, \qquad z_{kn} \sim q(\cdot \mid x_n),
    \quad k = 1, \dots, K,

are **per example**: :math:`\hat p(x_n) = \frac1K \sum_k w_{kn}` is unbiased for
:math:`p(x_n)`, so :math:`\log \hat p(x_n)` is a stochastic lower bound on
:math:`\log p(x_n)` (Jensen) whose expectation is the IWAE bound :math:`\mathcal L_K` [1], and
which converges to :math:`\log p(x_n)` as :math:`K \to \infty` [2].

:func:`per_example_log_weights` is the **one** per-example importance-weighting function of
pyrogen: it returns :math:`\log p` and :math:`\log q` as :math:`(K, n)` matrices with Pyro's
semantics (masks and scales applied, the data plate's subsampling scale :math:`N/B` returned
apart, subsample sites found by :func:`pyro.poutine.util.site_is_subsample`), with the samples'
graph kept (pathwise gradients, for the IWAE bound of :mod:`pyrogen.infer.iwae`) or cut as they
are drawn (``detach=True``: :math:`\log q` at fixed samples, for reweighted wake-sleep and
refinement). :func:`log_importance_weights` is its :math:`\log p - \log q` view;
:func:`importance_log_likelihood` is the evaluation routine: batched over examples, chunked over
particles (memory is :math:`O(\text{batch\_size} \times \text{chunk})`, independent of ``K`` and
of the number of examples), streaming :math:`\log \sum_k w_k` and :math:`\log \sum_k w_k^2`
through :class:`pyrogen.evaluation.LogMeanExpAccumulator` so that the standard error and the
effective sample size come for free.

References
----------
1. Y. Burda, R. Grosse, R. Salakhutdinov. *Importance Weighted Autoencoders*. ICLR 2016
   (arXiv:1509.00519).
2. D. P. Kingma, M. Welling. *Auto-Encoding Variational Bayes*. ICLR 2014, appendix D.
3. A. B. Owen. *Monte Carlo theory, methods and examples*, 2013, ch. 9 (delta method for
   ratio estimates, effective sample size).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.trace_struct import Trace
from pyro.poutine.util import site_is_subsample
from pyro.util import get_rng_state, set_rng_state

from .. import distributed as _dist
from .._random import derived_seed
from .._validation import check_int
from ..evaluation import LogLikelihood, LogMeanExpAccumulator

__all__ = [
    "ImportanceWeights",
    "per_example_log_weights",
    "log_importance_weights",
    "importance_log_likelihood",
    "guess_max_plate_nesting",
]

_PARTICLE_PLATE = "_pyrogen_particles"


def guess_max_plate_nesting(model: Callable, guide: Callable, args=(), kwargs=None) -> int:
    """Run ``guide`` and ``model`` once (no gradients) and return the deepest plate nesting.

    Cost: one forward pass of each. The result is what ``max_plate_nesting`` should be for
    vectorized particles. The random number generators are restored afterwards, so guessing
    does not change the draws that follow.
    """
    kwargs = kwargs or {}
    rng = get_rng_state()
    try:
        with torch.no_grad(), poutine.block():
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
                *args, **kwargs
            )
    finally:
        set_rng_state(rng)
    depth = 0
    for tr in (model_trace, guide_trace):
        for site in tr.nodes.values():
            if site["type"] == "sample" and not site_is_subsample(site):
                dims = [f.dim for f in site["cond_indep_stack"] if f.vectorized]
                depth = max(depth, *(-d for d in dims)) if dims else depth
    return depth


class ImportanceWeights(NamedTuple):
    r"""What :func:`per_example_log_weights` returns: :math:`\log p` and :math:`\log q` per
    particle and example, the data plate's subsampling scale, and the traces (fields below)."""

    log_p: torch.Tensor
    log_q: torch.Tensor
    data_scale: float
    guide_trace: Trace
    model_trace: Trace

    @property
    def log_weights(self) -> torch.Tensor:
        r""":math:`\log w_{kn} = \log p - \log q`, shape ``(K, n)``."""
        return self.log_p - self.log_q


# field docstrings on the fields themselves (an "Attributes" section would make Sphinx
# describe each field twice)
ImportanceWeights.log_p.__doc__ = (
    r":math:`\log p(x_n, h_{kn})`, shape ``(K, n)``: the model's log-density of everything the "
    "guide proposed and of the observations, masks and ``poutine.scale`` applied, the data "
    "plate's subsampling scale :math:`N/B` removed."
)
ImportanceWeights.log_q.__doc__ = (
    r":math:`\log q(h_{kn} \mid x_n)`, shape ``(K, n)``, likewise (zeros when the guide samples "
    "nothing)."
)
ImportanceWeights.data_scale.__doc__ = (
    "The data plate's subsampling scale :math:`N/B` (1 without subsampling); estimators of a "
    "data-set sum multiply their per-example sums by it."
)
ImportanceWeights.guide_trace.__doc__ = (
    "The guide's trace (particle plate included), e.g. to find sites without ``rsample``."
)
ImportanceWeights.model_trace.__doc__ = "The model's trace, replayed against the guide's."


class _DetachSamples(Messenger):
    """Cut sampled latent values from the autograd graph as they are drawn, so that whatever
    the program computes from them downstream (and the trace) sees fixed values."""

    def _pyro_post_sample(self, msg):
        if msg["is_observed"] or site_is_subsample(msg) or not torch.is_tensor(msg["value"]):
            return
        msg["value"] = msg["value"].detach()


def _data_frame(site, plate_name: str):
    frame = next((f for f in site["cond_indep_stack"] if f.name == plate_name), None)
    if frame is None:
        raise ValueError(
            f"site {site['name']!r} is outside the plate {plate_name!r}: every sample site of "
            f"the model and of the guide must lie inside the plate {plate_name!r} (importance "
            "weights are per example only without global latent variables). Got a site with "
            f"plates {[f.name for f in site['cond_indep_stack']]} instead."
        )
    if frame.dim is None:
        raise ValueError(
            f"the plate {plate_name!r} must be vectorized (pyro.plate used as a context "
            f"manager, not iterated). Got a sequential plate at site {site['name']!r} instead."
        )
    return frame


def _site_log_weight(site, particle_dim: int, plate_name: str, n_dims: int):
    """Per-(particle, example) log-prob of one site, shape ``(K or 1, n or 1)``, and its data
    frame: ``site["log_prob"]`` (masks and scales applied, as Pyro computes it) with the data
    plate's subsampling scale N/B divided out and every other plate summed."""
    frame = _data_frame(site, plate_name)
    lp = site["log_prob"]
    if not torch.is_tensor(lp):
        lp = torch.as_tensor(lp)
    # undo the subsampling scale N/B of the data plate (keep any other poutine.scale)
    if frame.full_size is not None and frame.full_size != frame.size:
        lp = lp * (frame.size / frame.full_size)
    lp = lp.reshape((1,) * (n_dims - lp.dim()) + tuple(lp.shape))
    keep = {n_dims + particle_dim, n_dims + frame.dim}
    other = [d for d in range(n_dims) if d not in keep]
    if other:
        lp = lp.sum(dim=other, keepdim=True)
    return lp.reshape(lp.shape[n_dims + particle_dim], lp.shape[n_dims + frame.dim]), frame


def per_example_log_weights(
    model: Callable,
    guide: Callable,
    args: tuple = (),
    kwargs: dict | None = None,
    *,
    num_particles: int = 1,
    max_plate_nesting: int | None = None,
    plate_name: str = "data",
    detach: bool = False,
) -> ImportanceWeights:
    r"""The one per-example importance-weighting core: :math:`\log p` and :math:`\log q` as
    :math:`(K, n)` tensors.

    Runs ``guide(*args, **kwargs)`` once under a vectorized particle plate of size
    :math:`K` = ``num_particles`` (dim ``-(max_plate_nesting + 1)``; the guide's networks run
    once per example, only the sampled latents carry the particle dimension) and replays
    ``model`` against it. Every estimator of :mod:`pyrogen.infer` that weights particles per
    example (importance-sampled evaluation, :class:`~pyrogen.infer.rws.ReweightedWakeSleep`,
    :class:`~pyrogen.infer.iwae.IWAE_ELBO`, :func:`~pyrogen.infer.refine.refine`) takes what
    it needs from the result.

    Semantics (Pyro's, per example):

    * each site contributes its ``log_prob`` as Pyro computes it, i.e. with ``poutine.mask``,
      ``Distribution.mask`` and ``obs_mask`` applied (a masked-out entry contributes 0 to its
      row) and any ``poutine.scale`` applied, **except** the data plate's subsampling scale
      :math:`N/B`, which is divided out and returned as ``data_scale`` (so that it multiplies
      the per-example sums outside any log-mean-exp);
    * subsample sites are recognized with :func:`pyro.poutine.util.site_is_subsample`;
      observed sites of the guide are ignored;
    * latent sites of the model that the guide does not sample (e.g. the ``name_unobserved``
      site that ``obs_mask`` creates, if the guide leaves it out) are drawn from the model
      during replay, i.e. proposed from their own conditional, whose density then cancels in
      the weight: they are left out of ``log_p`` (:class:`pyro.infer.Importance` would count
      them in :math:`\log p` only, which biases the weight);
    * every sample site must lie inside the vectorized plate ``plate_name``.

    Parameters
    ----------
    model, guide : callable
        Pyro model and guide.
    args : tuple
    kwargs : dict, optional
        Passed to both.
    num_particles : int
        :math:`K`.
    max_plate_nesting : int, optional
        Plate nesting of the model; guessed by one extra forward pass when ``None``.
    plate_name : str
        Name of the plate over examples.
    detach : bool
        ``False``: the sampled latents keep their autograd graph (pathwise gradients through
        reparametrized samples, as the IWAE bound needs). ``True``: every latent is cut from
        the graph as it is drawn, so the guide's later sites are built from fixed values and
        ``log_q`` is :math:`\log q_\phi(h)` **at fixed** :math:`h` (its gradient is the score
        :math:`\nabla_\phi \log q_\phi(h)`, no pathwise part) and ``log_p`` is
        :math:`\log p_\theta(x, h)` at fixed :math:`h` (gradient to the model's parameters
        only): what estimators defined at fixed samples need (reweighted wake-sleep, the
        wake phase, the inclusive-KL refinement).

    Returns
    -------
    ImportanceWeights
        ``log_p``, ``log_q`` of shape ``(num_particles, n)`` (``n`` = size of the data plate
        in this call), ``data_scale``, ``guide_trace``, ``model_trace``.

    Raises
    ------
    ValueError
        If a sample site lies outside the data plate, the plate is not vectorized, or the
        model has no sample site.
    """
    kwargs = {} if kwargs is None else kwargs
    num_particles = check_int(num_particles, "num_particles", low=1)
    if max_plate_nesting is None:
        max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)
    max_plate_nesting = check_int(max_plate_nesting, "max_plate_nesting", low=0)
    particle_dim = -(max_plate_nesting + 1)
    n_dims = max_plate_nesting + 1
    with pyro.plate(_PARTICLE_PLATE, num_particles, dim=particle_dim):
        # _DetachSamples outside trace: its post-processing runs first, so the trace records
        # the detached values too
        with _DetachSamples() if detach else contextlib.nullcontext():
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
    guide_latents = {
        name for name, site in guide_trace.nodes.items()
        if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site)
    }
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    sums = {}
    data_scale = 1.0
    n = None
    for key, trace in (("p", model_trace), ("q", guide_trace)):
        total = None
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            if key == "q" and site["is_observed"]:
                continue
            if key == "p" and not site["is_observed"] and name not in guide_latents:
                _data_frame(site, plate_name)  # proposed from the model: cancels
                continue
            lp, frame = _site_log_weight(site, particle_dim, plate_name, n_dims)
            n = frame.size
            if frame.full_size is not None and frame.full_size != frame.size:
                data_scale = frame.full_size / frame.size
            total = lp if total is None else total + lp
        sums[key] = total
    if sums["p"] is None:
        raise ValueError("the model has no sample site inside the data plate; nothing to weight.")
    log_p = sums["p"].expand(num_particles, n)
    log_q = torch.zeros_like(log_p) if sums["q"] is None else sums["q"].expand(num_particles, n)
    return ImportanceWeights(log_p, log_q, data_scale, guide_trace, model_trace)


def log_importance_weights(
    model: Callable,
    guide: Callable,
    *args,
    num_particles: int = 1,
    max_plate_nesting: int | None = None,
    plate_name: str = "data",
    **kwargs,
) -> torch.Tensor:
    r"""The :math:`(K, n)` log-weights :math:`\log p(x_n, z_{kn}) - \log q(z_{kn} \mid x_n)`.

    A view of :func:`per_example_log_weights` (same semantics: masks and scales applied, the
    data plate's subsampling scale removed) with the samples' autograd graph kept: gradients
    flow through reparametrized samples (the IWAE bound's pathwise gradient).

    Parameters
    ----------
    model, guide : callable
        A Pyro model and guide whose every sample site lies inside a vectorized
        ``pyro.plate(plate_name, ...)`` over examples (possibly subsampled: the subsampling
        scale :math:`N/B` is removed; any other ``poutine.scale`` is kept).
    *args, **kwargs
        Passed to ``model`` and ``guide``.
    num_particles : int
        :math:`K`.
    max_plate_nesting : int, optional
        Plate nesting of the model; guessed by one extra forward pass when ``None``.
    plate_name : str
        Name of the plate over examples.

    Returns
    -------
    Tensor, shape ``(num_particles, n)``
        Unscaled per-example log-weights (``n`` = size of the data plate in this call).

    Raises
    ------
    ValueError
        If a sample site lies outside the data plate (the weights would not factor over
        examples).
    """
    return per_example_log_weights(
        model, guide, args, kwargs, num_particles=num_particles,
        max_plate_nesting=max_plate_nesting, plate_name=plate_name,
    ).log_weights


def _rows(d, start, stop):
    if isinstance(d, np.ndarray):  # a memory-mapped array streams: one batch in memory
        return torch.from_numpy(np.array(d[start:stop]))  # a writable copy of the rows
    return d[start:stop]


def _split(data, batch_size, batches=None):
    n = data[0].shape[0]
    starts = range(0, n, batch_size)
    for b in range(len(starts)) if batches is None else batches:
        yield b, tuple(_rows(d, starts[b], starts[b] + batch_size) for d in data)


def importance_log_likelihood(
    model_fn: Callable,
    guide_fn: Callable,
    x,
    *args,
    num_particles: int = 1000,
    batch_size: int = 100,
    chunk: int = 100,
    max_plate_nesting: int | None = None,
    plate_name: str = "data",
    seed: int | None = None,
    **kwargs,
) -> LogLikelihood:
    r"""Importance-sampled :math:`\log p(x_n)` per example, with the guide as proposal.

    .. math::

        \log \hat p(x_n) = \log \frac1K \sum_{k=1}^K w_{kn}, \qquad
        \operatorname{se}_n \approx \frac{\hat\sigma_{w,n}}{\sqrt K\, \bar w_n}

    (delta method: :math:`\operatorname{Var}\log\bar w \approx \operatorname{Var}\bar w /
    \bar w^2`, with the unbiased sample variance of the weights [3]). :math:`\hat p` is unbiased
    for :math:`p(x_n)`, so the returned values are a stochastic **lower** bound on
    :math:`\log p(x_n)` that tightens as ``num_particles`` grows; kind ``"is_estimate"``. The
    delta-method standard error is itself an estimate and is optimistic when the weights are
    heavy-tailed: check ``info["min_ess"]``.

    Parameters
    ----------
    model_fn, guide_fn : callable
        Pyro model and guide taking ``(*batch, *args, **kwargs)``; every sample site inside a
        vectorized plate named ``plate_name`` over the rows of ``batch``.
    x : Tensor, numpy array (memory-mapped arrays stream) or tuple of them
        The data, rows are examples; a tuple (e.g. ``(x, y)`` for a conditional model) is
        batched jointly and passed as positional arguments. A numpy array (e.g.
        ``np.load(path, mmap_mode="r")``) is read one batch at a time, in its own dtype.
    num_particles : int
        :math:`K`, e.g. 5000 for the evaluation protocol of [1].
    batch_size : int
        Examples per forward pass.
    chunk : int
        Particles per forward pass. Peak memory is proportional to ``batch_size * chunk``
        (times the widest layer), independent of ``num_particles`` and of ``n``.
    max_plate_nesting : int, optional
        Guessed from one forward pass when ``None``.
    seed : int, optional
        Keys the random numbers by batch: batch ``b`` (rows ``b * batch_size`` onwards) runs
        with torch's global RNG seeded from ``(seed, b)`` (the global state is restored
        afterwards), so an example's estimate depends only on the seed, its batch and
        ``batch_size, chunk``. Under a ``torch.distributed`` process group of more than one
        process the batches are split over the ranks (contiguous ranges) and gathered in
        order on every rank: bitwise identical to one process with the same seed (a seed
        drawn on rank 0 and broadcast when ``None``). ``None`` in one process: the global RNG
        as it is (not keyed).

    Returns
    -------
    LogLikelihood
        ``kind="is_estimate"``, ``values`` and ``stderr`` of shape ``(n,)``; ``info`` holds
        ``num_particles``, ``mean_ess``, ``min_ess``, ``ess`` (the effective sample size
        :math:`(\sum w)^2 / \sum w^2` of each example, shape ``(n,)``) and ``seconds``.

    Notes
    -----
    Cost: :math:`n K` model evaluations and :math:`n \lceil K / \text{chunk} \rceil` guide
    evaluations (the guide's networks run once per chunk; only sampling is per particle).
    Runs under ``torch.no_grad()`` and does not touch the parameter store.
    """
    num_particles = check_int(num_particles, "num_particles", low=1)
    batch_size = check_int(batch_size, "batch_size", low=1)
    chunk = check_int(chunk, "chunk", low=1)
    data = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    for i, d in enumerate(data):
        if not (torch.is_tensor(d) or isinstance(d, np.ndarray)):
            raise TypeError(
                f"x must be a Tensor, a numpy array or a tuple of them. Got "
                f"{type(d).__name__} at position {i} instead."
            )
    n = data[0].shape[0]
    if any(d.shape[0] != n for d in data):
        raise ValueError(
            "x must be tensors with the same number of rows. Got shapes "
            f"{[tuple(d.shape) for d in data]} instead."
        )
    t0 = time.perf_counter()
    values, stderrs, ess = [], [], []
    world = _dist.world_size()
    keyed = seed is not None or world > 1
    if keyed:
        seed = _dist.agreed_seed(seed)
    mine = _dist.block_range(math.ceil(n / batch_size)) if world > 1 else None
    devices = sorted({d.device for d in data if torch.is_tensor(d) and d.device.type != "cpu"},
                     key=str)
    fork = torch.random.fork_rng(devices=devices) if keyed else contextlib.nullcontext()
    with torch.no_grad(), poutine.block(), fork:
        if max_plate_nesting is None:
            first = tuple(_rows(d, 0, min(n, 2)) for d in data)
            max_plate_nesting = guess_max_plate_nesting(
                model_fn, guide_fn, (*first, *args), kwargs
            )
        for b, batch in _split(data, batch_size, mine):
            if keyed:
                torch.manual_seed(derived_seed(seed, b))
            acc = LogMeanExpAccumulator()
            while acc.count < num_particles:
                k = min(chunk, num_particles - acc.count)
                acc.add(per_example_log_weights(
                    model_fn, guide_fn, (*batch, *args), kwargs, num_particles=k,
                    max_plate_nesting=max_plate_nesting, plate_name=plate_name,
                ).log_weights)
            res = acc.result()
            values.append(res.value)
            stderrs.append(res.stderr)
            ess.append(res.ess)
    if world > 1:  # gather the ranks' batches in order (on every rank)
        dev = values[0].device if values else torch.device("cpu")
        parts = _dist.gather_in_order(
            [torch.cat(t).cpu() if t else None for t in (values, stderrs, ess)])
        values, stderrs, ess = (
            [p[j].to(dev) for p in parts if p[j] is not None] for j in range(3))
    values_t = torch.cat(values)  # float64: log-weights are accumulated in double
    ess_t = torch.cat(ess)
    return LogLikelihood(
        values=values_t,
        kind="is_estimate",
        stderr=torch.cat(stderrs).to(values_t.dtype),
        info={
            "num_particles": num_particles,
            "batch_size": batch_size,
            "chunk": chunk,
            "mean_ess": float(ess_t.mean()),
            "min_ess": float(ess_t.min()),
            "ess": ess_t,
            "seconds": time.perf_counter() - t0,
            "estimator": "importance sampling, guide as proposal",
            "seed": seed if keyed else None,
            "world_size": world,
        },
    )
