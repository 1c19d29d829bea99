r"""Per-example refinement of an amortized guide (Gaussian or Bernoulli), and the amortization gap.

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

Every guide site must be a (possibly ``.to_event``) ``Normal`` or ``Bernoulli`` inside the
``"data"`` plate. The refined guide (:class:`RefinedGuide`) runs the amortized guide and shifts
each site's parameters by free per-example offsets: :math:`(\mu_\phi + \delta_n,
\sigma_\phi e^{\lambda_n})` for a Normal site, logits :math:`\eta_\phi + \delta_n` for a
Bernoulli site (binary latents of sigmoid belief nets and Helmholtz machines). It starts at
zero offsets, i.e. at the amortized guide, and a hierarchical guide
(:math:`q(z_1\mid x) q(z_2 \mid z_1)`, the bottom-up recognition network of a Helmholtz
machine) keeps its dependence between layers. (Replacing such a guide by free mean-field
parameters taken at one sampled :math:`z_1` was measured to *lose* 10 nats of ELBO on MNIST
Helmholtz machines before any refinement step.)

Two refinement objectives, estimated with :math:`K` samples
:math:`z_k \sim q_n` and log-weights :math:`\ell_k = \log p(x_n, z_k) - \log q_n(z_k)`:

* ``"elbo"`` maximizes :math:`\mathcal L[q_n] = \mathbb E_{q_n}[\ell]` (the gap decomposition
  above). Normal sites are reparametrized; for Bernoulli sites the score-function term
  :math:`\frac1K\sum_k (\ell_k - b_k)\nabla\log q_n(z_k)` is added with the leave-one-out
  baseline :math:`b_k = \frac{1}{K-1}\sum_{j\ne k}\ell_j`, which keeps it unbiased [4].
* ``"inclusive"`` minimizes :math:`\mathrm{KL}(p(z\mid x_n)\,\|\,q_n)` with the
  self-normalized gradient :math:`-\sum_k \tilde w_k \nabla \log q_n(z_k)`,
  :math:`\tilde w = \mathrm{softmax}(\ell)` (the wake-phase q-update of reweighted
  wake-sleep [5]). Its target is mass-covering, which is what an importance-sampling
  proposal needs, but its gradient is biased for finite :math:`K` and only as good as the
  self-normalized weights: when they collapse onto one or two samples it pulls :math:`q_n`
  towards those. Measured: on small SBNs it reaches the posterior marginals (tested); on a
  Helmholtz machine 784-200-200 on MNIST with :math:`K = 50` (median ESS of the weights ~4) it
  gave a *worse* proposal than ``"elbo"`` refinement (IS -108.08 vs -107.37, k = 1000, 500
  test images; ``benchmarks/README.md``). ``"elbo"`` is the default and what
  :func:`amortization_gap` means by the gap.

References
----------
1. C. Cremer, X. Li, D. Duvenaud. *Inference Suboptimality in Variational Autoencoders*.
   ICML 2018.
2. Y. Kim, S. Wiseman, A. C. Miller, D. Sontag, A. M. Rush. *Semi-Amortized Variational
   Autoencoders*. ICML 2018.
3. R. G. Krishnan, D. Liang, M. Hoffman. *On the challenges of learning with inference networks
   on sparse, high-dimensional data*. AISTATS 2018.
4. W. Kool, H. van Hoof, M. Welling. *Buy 4 REINFORCE samples, get a baseline for free!*
   ICLR 2019 workshop (leave-one-out baseline); A. Mnih, D. J. Rezende. *Variational inference
   for Monte Carlo objectives*. ICML 2016.
5. J. Bornschein, Y. Bengio. *Reweighted wake-sleep*. ICLR 2015.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from .._validation import check_float, check_int
from ..evaluation import LogLikelihood
from .importance import (
    _site_log_weight,
    guess_max_plate_nesting,
    importance_log_likelihood,
    log_importance_weights,
    per_example_log_weights,
)

__all__ = ["RefinedGuide", "refine", "amortization_gap", "AmortizationGap"]


_OBJECTIVES = ("elbo", "inclusive")


def _unwrap(fn):
    """``(base distribution, event_dims)`` of a site distribution, ``Independent`` removed;
    ``ValueError`` unless the base is Normal or Bernoulli."""
    event = 0
    d = fn
    while isinstance(d, dist.Independent):
        event += d.reinterpreted_batch_ndims
        d = d.base_dist
    if not isinstance(d, (dist.Normal, torch.distributions.Normal,
                          dist.Bernoulli, torch.distributions.Bernoulli)):
        raise ValueError(
            "refine needs Normal or Bernoulli guide sites (possibly .to_event). Got a site with "
            f"{type(d).__name__} instead."
        )
    return d, event


class _OffsetMessenger(Messenger):
    """Shifts the parameters of the guide's sites by per-example offsets (see RefinedGuide)."""

    def __init__(self, params):
        super().__init__()
        self.params = params

    def _pyro_sample(self, msg):
        if msg["is_observed"] or msg["name"] not in self.params:
            return
        shift, log_scale, event = self.params[msg["name"]]
        d, _ = _unwrap(msg["fn"])
        if log_scale is None:
            new = dist.Bernoulli(logits=d.logits + shift)
        else:
            new = dist.Normal(d.loc + shift, d.scale * log_scale.exp())
        msg["fn"] = new.to_event(event) if event else new


class RefinedGuide:
    r"""The amortized guide with free per-example offsets on its sites' parameters.

    For a Normal site the guide's :math:`(\mu_\phi, \sigma_\phi)` become
    :math:`(\mu_\phi + \delta_n, \sigma_\phi e^{\lambda_n})`; for a Bernoulli site its logits
    :math:`\eta_\phi` become :math:`\eta_\phi + \delta_n`. The guide's own computation is kept,
    so a hierarchical guide keeps its dependence between layers (the logits of
    :math:`h^{(2)}` still read the sampled :math:`h^{(1)}`), and at zero offsets the refined
    guide *is* the amortized one. For a one-layer guide this is the free per-example family
    :math:`(\mu_n, \log\sigma_n)` (or logits) in shifted coordinates, in which Adam takes the
    same steps. It is only valid for the batch it was built for; the guide's own parameters
    are not changed.

    Attributes
    ----------
    params : dict of str -> (Tensor, Tensor or None, int)
        Site name -> ``(shift, log_scale, event_dims)`` for a Normal site, ``(logit_shift,
        None, event_dims)`` for a Bernoulli site; leaf tensors of shape ``(n, *event_shape)``.
    """

    def __init__(self, guide, params: dict, n: int):
        self.guide = guide
        self.params = params
        self.n = n

    def tensors(self) -> list[torch.Tensor]:
        return [t for a, b, _ in self.params.values() for t in (a, b) if t is not None]

    def __call__(self, *args, **kwargs):
        with _OffsetMessenger(self.params):
            return self.guide(*args, **kwargs)


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
        d, event = _unwrap(site["fn"])
        value = site["value"]
        zeros = torch.zeros(value.shape, dtype=value.dtype if value.is_floating_point()
                            else torch.get_default_dtype(), device=value.device)
        params[name] = (
            zeros.clone().requires_grad_(True),
            None if isinstance(d, (dist.Bernoulli, torch.distributions.Bernoulli))
            else zeros.clone().requires_grad_(True),
            event,
        )
    if not params:
        raise ValueError("the guide has no latent sample site to refine.")
    return RefinedGuide(guide, params, n)


def _score_function_log_q(guide_trace, mpn, plate_name):
    r"""Per-(particle, example) :math:`\log q` of the guide's sites without ``rsample``
    (masks and scales as in the weights), ``(K, n)``, or ``None`` when every site has one."""
    total = None
    n_dims = mpn + 1
    for site in guide_trace.nodes.values():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        if site["fn"].has_rsample:
            continue
        lp, _ = _site_log_weight(site, -n_dims, plate_name, n_dims)
        total = lp if total is None else total + lp
    return total


def _refine_loss(model, refined, args, kwargs, num_particles, mpn, plate_name, objective):
    """Surrogate loss (summed over the batch) whose gradient is the objective's estimate."""
    # inclusive: z fixed (detached as drawn), so log q carries the score at fixed z and no
    # pathwise gradient through reparametrized upper samples; elbo: pathwise gradients kept
    iw = per_example_log_weights(model, refined, args, kwargs, num_particles=num_particles,
                                 max_plate_nesting=mpn, plate_name=plate_name,
                                 detach=(objective == "inclusive"))
    lw = iw.log_weights
    if objective == "inclusive":
        return -(torch.softmax(lw.detach(), 0) * iw.log_q).sum(), lw
    loss = -lw.mean(0).sum()
    lq = _score_function_log_q(iw.guide_trace, mpn, plate_name)
    if lq is not None:  # score-function term with the leave-one-out baseline
        baseline = (lw.sum(0, keepdim=True) - lw) / (num_particles - 1)
        loss = loss - ((lw - baseline).detach() * lq).mean(0).sum()
    return loss, lw


def refine(
    model,
    guide,
    x,
    *args,
    num_steps: int = 100,
    lr: float = 0.02,
    num_particles: int = 10,
    objective: str = "elbo",
    plate_name: str = "data",
    **kwargs,
) -> tuple[RefinedGuide, list[float]]:
    r"""Refine the guide's output for the examples ``x`` by SVI on per-example parameters.

    Starts from the amortized guide's output (:math:`(\mu_\phi(x_n), \sigma_\phi(x_n))` of a
    Normal site, the logits of a Bernoulli site) and takes ``num_steps`` Adam steps on the
    per-example ``objective`` (module docstring; estimated with ``num_particles`` samples),
    with the model's parameters fixed (no gradient reaches them); the learning rate decays
    linearly to ``lr / 10`` so that the final iterate is not dominated by gradient noise. Adam
    is elementwise, so optimizing the batch jointly is per-example optimization.

    Parameters
    ----------
    model, guide : callable
        A Pyro model and a guide with Normal and/or Bernoulli sites, all inside the
        ``plate_name`` plate.
    x : Tensor or tuple of Tensors
        The batch (a tuple is passed as positional arguments).
    num_steps, lr, num_particles
        Refinement budget (``num_particles >= 2`` where a baseline or self-normalized weights
        are needed: Bernoulli sites, or ``objective="inclusive"``).
    objective : {"elbo", "inclusive"}
        ``"elbo"``: maximize the ELBO (for the amortization gap); ``"inclusive"``: minimize
        :math:`\mathrm{KL}(p(z\mid x)\,\|\,q)`, a mass-covering proposal when the
        self-normalized weights are not degenerate (module docstring).

    Returns
    -------
    (RefinedGuide, list of float)
        The refined guide for this batch and, at each step, the mean over the batch of the
        particles' mean log-weight, negated (the negative ELBO estimate of the current
        :math:`q`, nats per example, whatever the objective).

    Notes
    -----
    Cost: ``num_steps * num_particles`` model passes per example, on top of one guide pass.
    """
    num_steps = check_int(num_steps, "num_steps", low=0)
    lr = check_float(lr, "lr", 0.0, None, "oc")
    num_particles = check_int(num_particles, "num_particles", low=1)
    if objective not in _OBJECTIVES:
        raise ValueError(f"objective must be one of {_OBJECTIVES}; got {objective!r}.")
    data = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    all_args = (*data, *args)
    n = data[0].shape[0]
    refined = _init_params(guide, all_args, kwargs, plate_name, n)
    discrete = any(b is None for _, b, _ in refined.params.values())
    if num_particles < 2 and num_steps and (discrete or objective == "inclusive"):
        raise ValueError(
            "num_particles must be >= 2 for Bernoulli sites (leave-one-out baseline) or "
            f"objective='inclusive' (self-normalized weights); got {num_particles}."
        )
    mpn = guess_max_plate_nesting(model, guide, all_args, kwargs)
    opt = torch.optim.Adam(refined.tensors(), lr=lr)
    losses = []
    with poutine.block():
        for step in range(num_steps):
            for group in opt.param_groups:
                group["lr"] = lr * (1.0 - 0.9 * step / max(num_steps - 1, 1))
            loss, lw = _refine_loss(model, refined, all_args, kwargs, num_particles, mpn,
                                    plate_name, objective)
            grads = torch.autograd.grad(loss, refined.tensors())
            for t, g in zip(refined.tensors(), grads):
                t.grad = g
            opt.step()
            losses.append(-float(lw.detach().mean(0).sum()) / n)
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
        """Mean of ELBO(refined) - ELBO(amortized), the part of the gap the encoder causes."""
        return self.elbo_refined.mean() - self.elbo_amortized.mean()

    @property
    def approximation_gap(self) -> float:
        """Mean of log p(x) (IS estimate) - ELBO(refined), the part the variational family
        causes."""
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
    objective: str = "elbo",
    plate_name: str = "data",
    **kwargs,
) -> AmortizationGap:
    r"""Measure the amortization gap of ``guide`` on ``x`` by refining it per example.

    For each batch: the ELBO of the amortized guide (``elbo_particles`` samples), :func:`refine`
    for ``num_steps`` steps, the ELBO of the refined guide, and the importance-sampled
    :math:`\log p(x)` with the refined guide as proposal (``is_particles``). All three carry
    standard errors; the gap means are in :class:`AmortizationGap`.

    ``objective`` is passed to :func:`refine`: with the default ``"elbo"`` the refined ELBO
    estimates the best ELBO in the guide's family and the two gaps are Cremer et al.'s; with
    ``"inclusive"`` the refined guide is tuned as an importance-sampling proposal (the refined
    ELBO is then no longer the family's best, and the ``log_likelihood`` is better only where
    the self-normalized weights are not degenerate: see the module docstring).
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
                                 num_particles=num_particles, objective=objective,
                                 plate_name=plate_name, **kwargs)
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
            "objective": objective, "elbo_particles": elbo_particles,
            "is_particles": is_particles}
    if curves and num_steps:
        info["refine_curve"] = [sum(c[i] for c in curves) / len(curves) for i in range(num_steps)]
    ll = LogLikelihood(
        torch.cat([p.values for p in ll_parts]),
        "is_estimate",
        torch.cat([p.stderr for p in ll_parts]),
        info={"num_particles": is_particles, "proposal": "refined guide",
              "ess": torch.cat([p.info["ess"] for p in ll_parts])},
    )
    return AmortizationGap(
        LogLikelihood(torch.cat(a_vals), "elbo", torch.cat(a_se),
                      info={"num_particles": elbo_particles, "guide": "amortized"}),
        LogLikelihood(torch.cat(r_vals), "elbo", torch.cat(r_se),
                      info={"num_particles": elbo_particles, "guide": "refined"}),
        ll,
        info,
    )
