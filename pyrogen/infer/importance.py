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

:func:`log_importance_weights` computes the :math:`(K, n)` matrix of log-weights (with autograd
graph, so the IWAE loss in :mod:`pyrogen.infer.iwae` is built on it);
:func:`importance_log_likelihood` is the evaluation routine: batched over examples, chunked over
particles (memory is :math:`O(\text{batch\_size} \times \text{chunk})`, independent of ``K`` and
of the number of examples), streaming :math:`\log \sum_k w_k` and :math:`\log \sum_k w_k^2` so
that the standard error and the effective sample size come for free.

References
----------
1. Y. Burda, R. Grosse, R. Salakhutdinov. *Importance Weighted Autoencoders*. ICLR 2016
   (arXiv:1509.00519).
2. D. P. Kingma, M. Welling. *Auto-Encoding Variational Bayes*. ICLR 2014, appendix D.
3. A. B. Owen. *Monte Carlo theory, methods and examples*, 2013, ch. 9 (delta method for
   ratio estimates, effective sample size).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample
from pyro.util import get_rng_state, set_rng_state

from .._validation import check_int
from ..evaluation import LogLikelihood

__all__ = ["log_importance_weights", "importance_log_likelihood", "guess_max_plate_nesting"]

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


def _site_log_weight(site, particle_dim: int, plate_name: str, n_dims: int):
    """Per-(particle, example) log-prob of one site, unscaled by the data-plate subsampling."""
    frames = [f for f in site["cond_indep_stack"] if f.name == plate_name]
    if not frames:
        raise ValueError(
            f"site {site['name']!r} is outside the plate {plate_name!r}: importance weights "
            "are per example only when every sample site of the model and of the guide lies "
            f"inside the {plate_name!r} plate (no global latent variables). Got a site with "
            f"plates {[f.name for f in site['cond_indep_stack']]} instead."
        )
    frame = frames[0]
    if frame.dim is None:
        raise ValueError(
            f"the plate {plate_name!r} must be vectorized (pyro.plate used as a context "
            "manager, not iterated)."
        )
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

    The guide is run once under a vectorized particle plate of size ``num_particles`` (so the
    encoder runs once per example, and only the sampled latents carry the particle dimension),
    then the model is replayed against it. Gradients flow through reparametrized samples.

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
    lw, _, _ = _log_weights(
        model, guide, args, kwargs, num_particles, max_plate_nesting, plate_name
    )
    return lw


def _log_weights(model, guide, args, kwargs, num_particles, max_plate_nesting, plate_name):
    """Return ``(log_weights (K, n), data_scale N/B, guide_trace)``."""
    num_particles = check_int(num_particles, "num_particles", low=1)
    if max_plate_nesting is None:
        max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)
    particle_dim = -(max_plate_nesting + 1)
    n_dims = max_plate_nesting + 1
    with pyro.plate(_PARTICLE_PLATE, num_particles, dim=particle_dim):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
    model_trace.compute_log_prob()
    guide_trace.compute_log_prob()
    total = None
    data_scale = 1.0
    for trace, sign in ((model_trace, 1.0), (guide_trace, -1.0)):
        for site in trace.nodes.values():
            if site["type"] != "sample" or site_is_subsample(site):
                continue
            if sign < 0 and site["is_observed"]:
                continue
            lp, frame = _site_log_weight(site, particle_dim, plate_name, n_dims)
            if frame.full_size is not None:
                data_scale = frame.full_size / frame.size
            total = sign * lp if total is None else total + sign * lp
    if total is None:
        raise ValueError("the model has no sample site; nothing to weight.")
    return total.expand(num_particles, total.shape[-1]), data_scale, guide_trace


def _split(data, batch_size):
    n = data[0].shape[0]
    for start in range(0, n, batch_size):
        yield tuple(d[start : start + batch_size] for d in data)


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
    x : Tensor or tuple of Tensors
        The data, rows are examples; a tuple (e.g. ``(x, y)`` for a conditional model) is
        batched jointly and passed as positional arguments.
    num_particles : int
        :math:`K`, e.g. 5000 for the evaluation protocol of [1].
    batch_size : int
        Examples per forward pass.
    chunk : int
        Particles per forward pass. Peak memory is proportional to ``batch_size * chunk``
        (times the widest layer), independent of ``num_particles`` and of ``n``.
    max_plate_nesting : int, optional
        Guessed from one forward pass when ``None``.

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
        if not torch.is_tensor(d):
            raise TypeError(
                f"x must be a Tensor or a tuple of Tensors. Got {type(d).__name__} at "
                f"position {i} instead."
            )
    n = data[0].shape[0]
    if any(d.shape[0] != n for d in data):
        raise ValueError(
            "x must be tensors with the same number of rows. Got shapes "
            f"{[tuple(d.shape) for d in data]} instead."
        )
    t0 = time.perf_counter()
    values, stderrs, ess = [], [], []
    with torch.no_grad(), poutine.block():
        if max_plate_nesting is None:
            first = tuple(d[: min(n, 2)] for d in data)
            max_plate_nesting = guess_max_plate_nesting(
                model_fn, guide_fn, (*first, *args), kwargs
            )
        for batch in _split(data, batch_size):
            lse1 = lse2 = None
            done = 0
            while done < num_particles:
                k = min(chunk, num_particles - done)
                lw = log_importance_weights(
                    model_fn,
                    guide_fn,
                    *batch,
                    *args,
                    num_particles=k,
                    max_plate_nesting=max_plate_nesting,
                    plate_name=plate_name,
                    **kwargs,
                ).double()
                s1 = torch.logsumexp(lw, 0)
                s2 = torch.logsumexp(2.0 * lw, 0)
                lse1 = s1 if lse1 is None else torch.logaddexp(lse1, s1)
                lse2 = s2 if lse2 is None else torch.logaddexp(lse2, s2)
                done += k
            K = float(num_particles)
            values.append(lse1 - math.log(K))
            # relative variance of the weights: E[w^2]/E[w]^2 - 1, unbiased (K/(K-1))
            rel = torch.expm1(lse2 + math.log(K) - 2.0 * lse1).clamp_min(0.0)
            if num_particles > 1:
                rel = rel * K / (K - 1.0)
                stderrs.append(torch.sqrt(rel / K))
            else:
                stderrs.append(torch.full_like(lse1, float("inf")))
            ess.append(torch.exp(2.0 * lse1 - lse2))
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
        },
    )
