r"""Per-example refinement of an amortized Gaussian guide, and the amortization gap.

An amortized guide :math:`q_\phi(z\mid x)` (an encoder) is fast but its output for a given
:math:`x` is generally not the best member :math:`q^*_x` of its family. Cremer et al. [1] split
the inference gap:

.. math::

    \log p(x) - \mathcal L[q_\phi] =
    \underbrace{\log p(x) - \mathcal L[q^*_x]}_{\text{approximation gap}} +
    \underbrace{\mathcal L[q^*_x] - \mathcal L[q_\phi]}_{\text{amortization gap}} .

The lecture's remedy — "combine amortized and stochastic inference" (Kim et al. [2], Krishnan
et al. [3]) — starts from the encoder's output and takes a few SVI steps on **per-example**
variational parameters :math:`(\mu_n, \log\sigma_n)`, model parameters fixed. :func:`refine`
does that; :func:`amortization_gap` measures the ELBO before and after, and the importance
sampled :math:`\log p(x)`, so the two gaps are reported with standard errors.

Every guide site must be a (possibly ``.to_event``) ``Normal`` inside the ``"data"`` plate.
For hierarchical guides (:math:`q(z_1\mid x) q(z_2 \mid z_1)`) the initial parameters of
:math:`z_2` are those at one sampled :math:`z_1`; the refined guide is then mean-field over
sites.

References
----------
1. C. Cremer, X. Li, D. Duvenaud. *Inference Suboptimality in Variational Autoencoders*.
   ICML 2018.
2. Y. Kim, S. Wiseman, A. C. Miller, D. Sontag, A. M. Rush. *Semi-Amortized Variational
   Autoencoders*. ICML 2018.
3. R. G. Krishnan, D. Liang, M. Hoffman. *On the challenges of learning with inference networks
   on sparse, high-dimensional data*. AISTATS 2018.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample

from .._validation import check_float, check_int
from ..evaluation import LogLikelihood
from .importance import guess_max_plate_nesting, importance_log_likelihood, log_importance_weights

__all__ = ["RefinedGuide", "refine", "amortization_gap", "AmortizationGap"]


def _normal_parts(fn):
    """``(loc, scale, event_dims)`` of a Normal or Independent(Normal) site distribution."""
    event = 0
    d = fn
    while isinstance(d, dist.Independent):
        event += d.reinterpreted_batch_ndims
        d = d.base_dist
    if not isinstance(d, (dist.Normal, torch.distributions.Normal)):
        raise ValueError(
            "refine needs Normal guide sites (possibly .to_event). Got a site with "
            f"{type(d).__name__} instead."
        )
    return d.loc, d.scale, event


class RefinedGuide:
    r"""A guide with free per-example parameters :math:`(\mu_{n}, \log\sigma_{n})` per site.

    Calling it with the same arguments as the model samples every site from
    ``Normal(loc, exp(log_scale)).to_event(event_dims)`` inside ``pyro.plate(plate_name, n)``.
    It is only valid for the batch it was built for.

    Attributes
    ----------
    params : dict of str -> (Tensor, Tensor, int)
        Site name -> ``(loc, log_scale, event_dims)``, leaf tensors of shape
        ``(n, *event_shape)``.
    """

    def __init__(self, params: dict, n: int, plate_name: str = "data"):
        self.params = params
        self.n = n
        self.plate_name = plate_name

    def tensors(self) -> list[torch.Tensor]:
        return [t for loc, log_scale, _ in self.params.values() for t in (loc, log_scale)]

    def __call__(self, *args, **kwargs):
        with pyro.plate(self.plate_name, self.n):
            for name, (loc, log_scale, event) in self.params.items():
                pyro.sample(name, dist.Normal(loc, log_scale.exp()).to_event(event))


def _init_params(guide, args, kwargs, plate_name, n):
    with torch.no_grad(), poutine.block():
        tr = poutine.trace(guide).get_trace(*args, **kwargs)
    params = {}
    for name, site in tr.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        if not any(f.name == plate_name for f in site["cond_indep_stack"]):
            raise ValueError(
                f"refine needs every guide site inside the {plate_name!r} plate; site {name!r} "
                "is not."
            )
        loc, scale, event = _normal_parts(site["fn"])
        shape = site["value"].shape
        params[name] = (
            loc.detach().expand(shape).clone().requires_grad_(True),
            scale.detach().log().expand(shape).clone().requires_grad_(True),
            event,
        )
    if not params:
        raise ValueError("the guide has no latent sample site to refine.")
    return RefinedGuide(params, n, plate_name)


def refine(
    model,
    guide,
    x,
    *args,
    num_steps: int = 100,
    lr: float = 0.02,
    num_particles: int = 10,
    plate_name: str = "data",
    **kwargs,
) -> tuple[RefinedGuide, list[float]]:
    r"""Refine the guide's output for the examples ``x`` by SVI on per-example parameters.

    Starts from the amortized guide's :math:`(\mu_\phi(x_n), \sigma_\phi(x_n))` and takes
    ``num_steps`` Adam steps on the per-example ELBO (reparametrized, averaged over
    ``num_particles`` samples), with the model's parameters fixed (no gradient reaches them);
    the learning rate decays linearly to ``lr / 10`` so that the final iterate is not dominated
    by gradient noise. Adam is elementwise, so optimizing the batch jointly is per-example
    optimization.

    Parameters
    ----------
    model, guide : callable
        A Pyro model and a guide with Normal sites, all inside the ``plate_name`` plate.
    x : Tensor or tuple of Tensors
        The batch (a tuple is passed as positional arguments).
    num_steps, lr, num_particles
        Refinement budget.

    Returns
    -------
    (RefinedGuide, list of float)
        The refined guide for this batch and the loss per example at each step (negative
        bound, nats).

    Notes
    -----
    Cost: ``num_steps * num_particles`` model passes per example, on top of one guide pass.
    """
    num_steps = check_int(num_steps, "num_steps", low=0)
    lr = check_float(lr, "lr", 0.0, None, "oc")
    num_particles = check_int(num_particles, "num_particles", low=1)
    data = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    all_args = (*data, *args)
    n = data[0].shape[0]
    refined = _init_params(guide, all_args, kwargs, plate_name, n)
    mpn = guess_max_plate_nesting(model, guide, all_args, kwargs)
    opt = torch.optim.Adam(refined.tensors(), lr=lr)
    losses = []
    with poutine.block():
        for step in range(num_steps):
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 - 0.9 * step / max(num_steps - 1, 1))
            lw = log_importance_weights(
                model, refined, *all_args, num_particles=num_particles,
                max_plate_nesting=mpn, plate_name=plate_name, **kwargs,
            )
            loss = -lw.mean(0).sum()
            grads = torch.autograd.grad(loss, refined.tensors())
            for t, g in zip(refined.tensors(), grads):
                t.grad = g
            opt.step()
            losses.append(float(loss.detach()) / n)
    for t in refined.tensors():
        t.grad = None
        t.requires_grad_(False)
    return refined, losses


def _elbo(model, guide, data, args, kwargs, num_particles, mpn, plate_name):
    with torch.no_grad(), poutine.block():
        lw = log_importance_weights(
            model, guide, *data, *args, num_particles=num_particles, max_plate_nesting=mpn,
            plate_name=plate_name, **kwargs,
        ).double()
    return lw.mean(0), lw.std(0) / math.sqrt(num_particles)


@dataclass
class AmortizationGap:
    """What :func:`amortization_gap` measures (per example, nats).

    Attributes
    ----------
    elbo_amortized : pyrogen.evaluation.LogLikelihood
        ELBO of the encoder's guide (kind ``"elbo"``).
    elbo_refined : pyrogen.evaluation.LogLikelihood
        ELBO after per-example refinement (kind ``"elbo"``), an estimate of the best ELBO in
        the family from below.
    log_likelihood : pyrogen.evaluation.LogLikelihood
        Importance-sampled :math:`\\log p(x)` (kind ``"is_estimate"``), proposal = refined guide.
    info : dict
        Refinement settings and the loss curve (mean over batches).
    """

    elbo_amortized: LogLikelihood
    elbo_refined: LogLikelihood
    log_likelihood: LogLikelihood
    info: dict = field(default_factory=dict)

    @property
    def amortization_gap(self) -> float:
        """Mean of ELBO(refined) - ELBO(amortized): the part of the gap the encoder causes."""
        return self.elbo_refined.mean() - self.elbo_amortized.mean()

    @property
    def approximation_gap(self) -> float:
        """Mean of log p(x) (IS estimate) - ELBO(refined): the part the Gaussian family causes."""
        return self.log_likelihood.mean() - self.elbo_refined.mean()

    def to_dict(self) -> dict:
        return {
            "elbo_amortized": self.elbo_amortized.to_dict(),
            "elbo_refined": self.elbo_refined.to_dict(),
            "log_likelihood": self.log_likelihood.to_dict(),
            "amortization_gap": self.amortization_gap,
            "approximation_gap": self.approximation_gap,
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str))},
        }


def amortization_gap(
    model,
    guide,
    x,
    *args,
    num_steps: int = 100,
    lr: float = 0.02,
    num_particles: int = 10,
    batch_size: int = 100,
    elbo_particles: int = 100,
    is_particles: int = 1000,
    plate_name: str = "data",
    **kwargs,
) -> AmortizationGap:
    r"""Measure the amortization gap of ``guide`` on ``x`` by refining it per example.

    For each batch: the ELBO of the amortized guide (``elbo_particles`` samples), :func:`refine`
    for ``num_steps`` steps, the ELBO of the refined guide, and the importance-sampled
    :math:`\log p(x)` with the refined guide as proposal (``is_particles``). All three carry
    standard errors; the gap means are in :class:`AmortizationGap`.
    """
    batch_size = check_int(batch_size, "batch_size", low=1)
    elbo_particles = check_int(elbo_particles, "elbo_particles", low=2)
    data = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    n = data[0].shape[0]
    first = tuple(d[: min(n, 2)] for d in data)
    mpn = guess_max_plate_nesting(model, guide, (*first, *args), kwargs)
    a_vals, a_se, r_vals, r_se, ll_parts, curves = [], [], [], [], [], []
    for s in range(0, n, batch_size):
        batch = tuple(d[s : s + batch_size] for d in data)
        v, se = _elbo(model, guide, batch, args, kwargs, elbo_particles, mpn, plate_name)
        a_vals.append(v)
        a_se.append(se)
        refined, losses = refine(model, guide, batch, *args, num_steps=num_steps, lr=lr,
                                 num_particles=num_particles, plate_name=plate_name, **kwargs)
        curves.append(losses)
        v, se = _elbo(model, refined, batch, args, kwargs, elbo_particles, mpn, plate_name)
        r_vals.append(v)
        r_se.append(se)
        ll_parts.append(
            importance_log_likelihood(
                model, refined, batch, *args, num_particles=is_particles,
                batch_size=batch[0].shape[0], chunk=min(is_particles, 500),
                max_plate_nesting=mpn, plate_name=plate_name, **kwargs,
            )
        )
    info = {"num_steps": num_steps, "lr": lr, "num_particles": num_particles,
            "elbo_particles": elbo_particles,
            "is_particles": is_particles}
    if curves and num_steps:
        info["refine_curve"] = [sum(c[i] for c in curves) / len(curves) for i in range(num_steps)]
    ll = LogLikelihood(
        torch.cat([p.values for p in ll_parts]),
        "is_estimate",
        torch.cat([p.stderr for p in ll_parts]),
        info={"num_particles": is_particles, "proposal": "refined guide"},
    )
    return AmortizationGap(
        LogLikelihood(torch.cat(a_vals), "elbo", torch.cat(a_se),
                      info={"num_particles": elbo_particles, "guide": "amortized"}),
        LogLikelihood(torch.cat(r_vals), "elbo", torch.cat(r_se),
                      info={"num_particles": elbo_particles, "guide": "refined"}),
        ll,
        info,
    )
