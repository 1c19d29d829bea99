r"""Score-function (REINFORCE) gradient estimators for discrete latent variables.

For a guide :math:`q_\phi(h \mid x)` over discrete :math:`h` the ELBO (REINFORCE [2]_)
:math:`\mathcal L(\phi) = \mathbb E_{q_\phi}[f(h)]`, :math:`f(h) = \log p(x, h) - \log q_\phi(h
\mid x)`, has the gradient (book §20.9.1, eq. 20.63)

.. math::

    \nabla_\phi \mathcal L = \mathbb E_{q_\phi}\bigl[(f(h) - b)\,
    \nabla_\phi \log q_\phi(h \mid x)\bigr]

for any baseline :math:`b` independent of :math:`h`, because
:math:`\mathbb E_q[\nabla_\phi \log q] = 0`. A good :math:`b` reduces the variance. Three
families are provided:

* **Pyro's** :class:`~pyro.infer.TraceGraph_ELBO` uses the dependency structure (only the
  *downstream* cost of a site multiplies its score) and per-site baselines given in the site's
  ``infer["baseline"]``: a decaying average of the downstream cost
  (``use_decaying_avg_baseline``) and/or a learned input-dependent network (``nn_baseline``,
  fitted by least squares to the downstream cost). :func:`with_baseline` adds them to any guide
  without touching its code; ``"nvil"`` is both at once, the input-dependent baseline plus
  constant of NVIL [1]_. :class:`NVIL_ELBO` is ``TraceGraph_ELBO`` plus NVIL's variance
  normalization [1]_ (§3.3): each site's centred learning signal is divided by a running
  estimate of its standard deviation.
* :class:`OptimalBaselineReinforce`: the per-parameter optimal baseline of book §20.9.1,

  .. math::

      b^*(\omega_i) = \frac{\mathbb E_q\bigl[f(h)\, (\partial_{\omega_i}\log q(h))^2\bigr]}
      {\mathbb E_q\bigl[(\partial_{\omega_i}\log q(h))^2\bigr]},

  estimated leave-one-out from the other :math:`K - 1` particles so that the estimator stays
  unbiased. Costs :math:`K` backward passes.
* The relaxed alternative: Concrete / Gumbel-softmax straight-through samples
  (:meth:`pyrogen.models.SigmoidBeliefNet.relaxed_guide`), low variance but biased.

References
----------
.. [1] A. Mnih, K. Gregor, "Neural variational inference and learning in belief networks",
   ICML 2014.
.. [2] R. J. Williams, "Simple statistical gradient-following algorithms for connectionist
   reinforcement learning", Machine Learning 8, 1992.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import defaultdict

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import detach as _detach
from pyro.distributions.util import is_identically_zero
from pyro.infer.elbo import ELBO
from pyro.infer.tracegraph_elbo import TraceGraph_ELBO, _get_baseline_options
from pyro.infer.util import MultiFrameTensor, torch_item
from pyro.ops.provenance import detach_provenance, get_provenance
from pyro.poutine.util import site_is_subsample
from torch import nn

from .._validation import check_choice, check_float, check_int

__all__ = [
    "BASELINES",
    "NeuralBaseline",
    "with_baseline",
    "NVIL_ELBO",
    "OptimalBaselineReinforce",
]

_baseline_counter = itertools.count()

#: the values ``with_baseline(kind=...)`` accepts
BASELINES = ("none", "decaying_avg", "nn", "nvil")


class NeuralBaseline(nn.Module):
    r"""Input-dependent baselines :math:`b_\psi(x)`, one small MLP per latent site (NVIL [1]_).

    Parameters
    ----------
    n_features : int
        Width of the data ``x``.
    sites : list of str
        Latent site names, each getting its own network ``x -> hidden -> 1`` (tanh).
    hidden : int
        Hidden width (100 in [1]_).
    """

    def __init__(self, n_features: int, sites, hidden: int = 100):
        super().__init__()
        n_features = check_int(n_features, "n_features", low=1)
        hidden = check_int(hidden, "hidden", low=1)
        self.sites = list(sites)
        self.nets = nn.ModuleDict(
            {
                s: nn.Sequential(nn.Linear(n_features, hidden), nn.Tanh(), nn.Linear(hidden, 1))
                for s in self.sites
            }
        )

    def site(self, name: str) -> nn.Module:
        """The baseline network of one site, mapping ``(n, D) -> (n,)``."""
        if name not in self.nets:
            raise ValueError(f"site must be one of {self.sites!r}. Got {name!r} instead.")
        return _Squeeze(self.nets[name])


class _Squeeze(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(-1)


def with_baseline(guide, kind: str = "decaying_avg", *, beta: float = 0.9,
                  module: NeuralBaseline | None = None, name: str | None = None,
                  data_arg: int = 0):
    r"""Wrap ``guide`` so that its non-reparametrized sites carry a baseline for
    :class:`~pyro.infer.TraceGraph_ELBO`.

    Parameters
    ----------
    guide : callable
        A Pyro guide whose positional argument ``data_arg`` is the data batch.
    kind : {"none", "decaying_avg", "nn", "nvil"}
        ``"decaying_avg"``: :math:`b \leftarrow \beta b + (1 - \beta)\,\text{cost}` per site
        (Pyro keeps it in the param store); ``"nn"``: ``module.site(name)(x)``, trained by
        ``TraceGraph_ELBO`` on the squared error to the downstream cost; ``"nvil"``: both
        summed.
    beta : float
        Decay of the average.
    module : NeuralBaseline
        Required for ``"nn"`` and ``"nvil"``; registered with ``pyro.module(name, module)`` so
        that ``SVI``'s optimizer updates it.
    name : str, optional
        Param-store name of ``module``; default a fresh ``"sf_baseline_<n>"`` per call, so two
        wrapped guides never share (and overwrite) one baseline network.

    Notes
    -----
    Where the decaying averages live depends on the loss: :class:`NVIL_ELBO` keeps them on the
    loss object (one per training run). Pyro's own ``TraceGraph_ELBO`` keeps them in the global
    param store under ``"__baseline_avg_downstream_cost_" + site name`` (Pyro 1.9.2), so two
    guides with the same site names trained in one process share them, and a later run starts
    from an earlier run's averages; use ``NVIL_ELBO(variance_normalization=False)`` (otherwise
    the same estimator) to keep runs apart, or ``pyro.clear_param_store()`` between runs.
    """
    check_choice(kind, "kind", BASELINES)
    beta = check_float(beta, "beta", 0.0, 1.0, "co")
    if kind in ("nn", "nvil") and not isinstance(module, NeuralBaseline):
        raise TypeError(
            f"module must be a NeuralBaseline for kind={kind!r}. Got {type(module).__name__} "
            "instead."
        )
    if kind == "none":
        return guide
    if name is None:
        name = f"sf_baseline_{next(_baseline_counter)}"

    @functools.wraps(guide)
    def wrapped(*args, **kwargs):
        x = args[data_arg]
        if module is not None:
            pyro.module(name, module)

        def config_fn(site):
            if site["type"] != "sample" or site["is_observed"]:
                return {}
            if getattr(site["fn"], "has_rsample", False):
                return {}
            if site_is_subsample(site):
                return {}
            opts = {}
            if kind in ("decaying_avg", "nvil"):
                opts.update(use_decaying_avg_baseline=True, baseline_beta=beta)
            if kind in ("nn", "nvil"):
                opts.update(nn_baseline=module.site(site["name"]), nn_baseline_input=x)
            return {"baseline": opts}

        return poutine.infer_config(guide, config_fn)(*args, **kwargs)

    return wrapped


class NVIL_ELBO(TraceGraph_ELBO):
    r""":class:`~pyro.infer.TraceGraph_ELBO` with NVIL's variance normalization [1]_ (§3.3).

    For each non-reparametrized guide site :math:`s` ``TraceGraph_ELBO`` forms the centred
    learning signal :math:`\ell_s = c_s - b_s` (downstream cost :math:`c_s` minus the site's
    baselines, e.g. those of :func:`with_baseline`) and the surrogate term
    :math:`\log q(h_s)\, \ell_s`. NVIL divides the signal by a running estimate of its
    standard deviation,

    .. math::

        m_s \leftarrow \alpha\, m_s + (1 - \alpha)\, \overline{\ell_s^2}, \qquad
        \sigma_s = \max\Bigl(\sigma_{\min}, \sqrt{m_s / (1 - \alpha^{t_s})}\Bigr),
        \qquad \text{surrogate term } \log q(h_s)\, \ell_s / \sigma_s,

    where :math:`\overline{\ell_s^2}` is the mean over the minibatch of the squared centred
    signal (its second moment: the baselines already centre it), :math:`t_s` the number of
    updates so far (the :math:`1 - \alpha^{t}` correction removes the bias of starting
    :math:`m_s` at zero, as in Adam) and :math:`\sigma_{\min} = 1` as in [1]_ (the signal is
    never amplified). From the second step on, :math:`\sigma_s` is computed **before** the
    current minibatch enters :math:`m_s`, so it depends on past draws only: conditionally on the
    past, the site's score-function gradient is an unbiased estimate of the exact gradient
    divided by :math:`\sigma_s` ("unbiased up to the scale"). The first step, with no history,
    uses its own minibatch (as NVIL's Algorithm 1 does at every step): left unnormalized, its
    signal (of order :math:`N/B` times a per-example cost) would dominate Adam's running second
    moment for thousands of steps and freeze the recognition network (measured on binarized
    MNIST, ``benchmarks/README.md``). Only the score-function terms are scaled; pathwise
    gradients (the model's parameters, reparametrized sites) and the baselines' own
    least-squares losses are unchanged.

    What it buys: the raw signal's magnitude grows with the data-plate scale :math:`N/B` and
    drifts during training by orders of magnitude; the normalized one is of order one, so the
    recognition network's effective step size stays stable. At fixed parameters it does not
    change the *relative* variance of a one-step estimate (it is a nearly constant factor);
    see ``benchmarks/README.md`` for what it gives in training.

    Parameters
    ----------
    num_particles : int
        As for ``TraceGraph_ELBO``.
    variance_normalization : bool
        ``False`` gives exactly ``TraceGraph_ELBO``.
    alpha : float in [0, 1)
        Decay of the running second moment (0.8 in [1]_).
    min_scale : float > 0
        :math:`\sigma_{\min}`.
    **kwargs
        Passed to ``TraceGraph_ELBO``.

    Attributes
    ----------
    last_scales : dict
        Site name -> :math:`\sigma_s` used in the latest particle.
    running_second_moment : dict
        Site name -> bias-corrected :math:`m_s`.

    Notes
    -----
    Re-implements the per-particle body of Pyro 1.9's ``TraceGraph_ELBO`` (uses its private
    ``_get_baseline_options``), with three changes: the division by :math:`\sigma_s`, where the
    decaying averages live (below), and **masks**: where a guide site is masked out
    (``poutine.mask``; typically a padding row masked in model and guide, whose downstream cost
    is then zero) Pyro would still subtract the baseline (adding :math:`-b\,\nabla\log q`,
    zero-mean noise, to the gradient), fit the baseline network to that zero and average it
    into the decaying baseline; here masked positions get no baseline and do not enter the
    averages, the network's loss or :math:`\sigma_s`, so a masked row contributes exactly
    nothing. Without masks and
    with ``variance_normalization=False`` the two agree to rounding (tested). The running
    statistics **and the decaying-average baselines** live on the loss object (attribute
    ``decaying_averages``), not in Pyro's global param store where ``TraceGraph_ELBO`` keys them
    by site name: use one ``NVIL_ELBO`` per training run, and runs in one process stay apart.
    """

    def __init__(self, num_particles: int = 1, variance_normalization: bool = True,
                 alpha: float = 0.8, min_scale: float = 1.0, **kwargs):
        super().__init__(num_particles=check_int(num_particles, "num_particles", low=1),
                         **kwargs)
        self.variance_normalization = bool(variance_normalization)
        self.alpha = check_float(alpha, "alpha", 0.0, 1.0, "co")
        self.min_scale = check_float(min_scale, "min_scale", 0.0, None, "oo")
        self._m2: dict[str, float] = {}
        self._t: dict[str, int] = defaultdict(int)
        self.last_scales: dict[str, float] = {}
        self.decaying_averages: dict[str, torch.Tensor] = {}

    @property
    def running_second_moment(self) -> dict[str, float]:
        return {s: m / (1.0 - self.alpha ** self._t[s]) for s, m in self._m2.items()}

    def _scale(self, site: str) -> float:
        t = self._t[site]
        if t == 0:
            return self.min_scale
        m = self._m2[site] / (1.0 - self.alpha**t)
        return max(self.min_scale, math.sqrt(m))

    def _update(self, site: str, signal: torch.Tensor, keep=None) -> None:
        if keep is not None:
            signal = signal[keep]  # the masked positions are not part of the batch
        second = float((signal.double() ** 2).mean()) if signal.numel() else 0.0
        if not math.isfinite(second):
            return  # a non-finite signal does not poison the running estimate
        self._m2[site] = self.alpha * self._m2.get(site, 0.0) + (1.0 - self.alpha) * second
        self._t[site] += 1

    def _construct_baseline(self, node, guide_site, downstream_cost, keep=None):
        """Pyro 1.9.2 ``tracegraph_elbo._construct_baseline`` with the decaying average kept on
        this loss object (``self.decaying_averages[node]``) instead of the global param store
        under ``"__baseline_avg_downstream_cost_" + node``, which every guide with a site of that
        name in the process shares; and with the positions where the guide site is masked out
        (``keep`` False) left alone: no baseline subtracted there, the average not updated, the
        baseline network not fitted there."""
        nn_baseline, nn_input, use_avg, beta, baseline_value = _get_baseline_options(guide_site)
        use_nn = nn_baseline is not None
        use_value = baseline_value is not None
        if use_nn and use_value:
            raise ValueError(
                f"site {node!r}: baseline options nn_baseline and baseline_value cannot be used "
                "together. Got both."
            )
        baseline = 0.0
        baseline_loss = 0.0
        if use_avg:
            cost = detach_provenance(downstream_cost.detach())
            old = self.decaying_averages.get(node)
            if old is None:
                old = torch.zeros_like(cost)
            elif old.shape != cost.shape:
                # another batch size (e.g. the last, smaller minibatch of an epoch): Pyro's
                # per-position average would raise here; continue from its mean instead
                old = old.mean().expand(cost.shape)
            new = (1.0 - beta) * cost + beta * old
            self.decaying_averages[node] = new if keep is None else torch.where(keep, new, old)
            baseline = baseline + old
        if use_nn:
            baseline = baseline + nn_baseline(_detach(nn_input))
        elif use_value:
            baseline = baseline + baseline_value
        if use_nn or use_value:
            residual = downstream_cost.detach() - baseline
            if keep is not None:
                residual = torch.where(keep, residual, torch.zeros_like(residual))
            baseline_loss = baseline_loss + torch.pow(residual, 2.0).sum()
        use_baseline = use_nn or use_avg or use_value
        if use_baseline and downstream_cost.shape != baseline.shape:
            raise ValueError(
                f"baseline at site {node!r} must have the downstream cost's shape "
                f"{tuple(downstream_cost.shape)}. Got {tuple(baseline.shape)} instead."
            )
        return use_baseline, baseline_loss, baseline

    def _loss_and_surrogate_loss_particle(self, model_trace, guide_trace):
        # Pyro 1.9.2 pyro/infer/tracegraph_elbo.py::_compute_elbo, plus the normalization
        elbo = 0.0
        surrogate_elbo = 0.0
        baseline_loss = 0.0
        downstream_costs = defaultdict(lambda: MultiFrameTensor())
        for site in model_trace.nodes.values():
            if site["type"] == "sample":
                elbo += site["log_prob_sum"]
                surrogate_elbo += site["log_prob_sum"]
                for key in get_provenance(site["log_prob_sum"]):
                    downstream_costs[key].add((site["cond_indep_stack"], site["log_prob"]))
        for site in guide_trace.nodes.values():
            if site["type"] == "sample":
                elbo -= site["log_prob_sum"]
                entropy_term = site["score_parts"].entropy_term
                if not is_identically_zero(entropy_term):
                    surrogate_elbo -= entropy_term.sum()
                for key in get_provenance(site["log_prob_sum"]):
                    downstream_costs[key].add((site["cond_indep_stack"], -site["log_prob"]))
        for node, downstream_cost in downstream_costs.items():
            guide_site = guide_trace.nodes[node]
            downstream_cost = downstream_cost.sum_to(guide_site["cond_indep_stack"])
            score_function = guide_site["score_parts"].score_function
            keep = _kept_positions(guide_site, downstream_cost)
            use_baseline, baseline_loss_term, baseline = self._construct_baseline(
                node, guide_site, downstream_cost, keep
            )
            if use_baseline:
                centred = downstream_cost - baseline
                downstream_cost = (
                    centred if keep is None else torch.where(keep, centred, downstream_cost)
                )
                baseline_loss = baseline_loss + baseline_loss_term
            signal = detach_provenance(downstream_cost.detach())
            if self.variance_normalization:
                if self._t[node] == 0:
                    # no history yet: the first step uses its own minibatch (as NVIL's
                    # Algorithm 1 does at every step); an unnormalized first signal (N/B times
                    # the per-example cost) would dominate Adam's second moment for thousands
                    # of steps and freeze the recognition network
                    self._update(node, signal, keep)
                    scale = self._scale(node)
                else:
                    scale = self._scale(node)
                    self._update(node, signal, keep)
                self.last_scales[node] = scale
                signal = signal / scale
            surrogate_elbo += (score_function * signal).sum()
        surrogate_loss = -surrogate_elbo + baseline_loss
        return detach_provenance(elbo), detach_provenance(surrogate_loss)


def _kept_positions(guide_site, cost):
    """The guide site's mask as a boolean tensor of the downstream cost's shape (``None`` when
    the site is not masked, or its mask does not line up with the cost's plates)."""
    mask = guide_site["mask"]
    if mask is None or mask is True or not torch.is_tensor(cost) or cost.dim() == 0:
        return None
    if mask is False:
        return torch.zeros(cost.shape, dtype=torch.bool, device=cost.device)
    try:
        return torch.broadcast_to(mask.to(device=cost.device, dtype=torch.bool), cost.shape)
    except RuntimeError:
        return None


def _param_tensors(trace) -> list[torch.Tensor]:
    out, seen = [], set()
    for site in trace.nodes.values():
        if site["type"] != "param":
            continue
        v = site["value"]
        v = v.unconstrained() if hasattr(v, "unconstrained") else v
        if v.requires_grad and id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _log_prob(trace, latent_only: bool) -> torch.Tensor:
    """Sum of the sites' ``log_prob_sum``: scaled (data plate :math:`N/B`, ``poutine.scale``)
    and masked, as in the ELBO."""
    trace.compute_log_prob()
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] != "sample" or site_is_subsample(site):
            continue
        if latent_only and site["is_observed"]:
            continue
        total = total + site["log_prob_sum"]
    return total


def _score(trace) -> torch.Tensor:
    r""":math:`\log q(h \mid x)` of the guide's latent sites at the sampled :math:`h`, **neither
    scaled nor masked**: the score :math:`\nabla_\phi \log q` is that of the sampling
    distribution (Pyro's ``ScoreParts.scale_and_mask`` leaves ``score_function`` alone too);
    scales and masks belong to the learning signal only."""
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        total = total + site["fn"].log_prob(site["value"]).sum()
    return total


def _fixed_sample_guide_trace(guide, args, kwargs):
    r"""Trace ``guide``; if a latent site was reparametrized, replay the guide on the detached
    values so that every :math:`\log q` term is a function of :math:`\phi` at fixed
    :math:`h` (the score-function estimator holds the samples fixed)."""
    guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
    if any(
        site["type"] == "sample" and not site["is_observed"] and torch.is_tensor(site["value"])
        and site["value"].requires_grad
        for site in guide_trace.nodes.values()
    ):
        guide_trace.detach_()
        guide_trace = poutine.trace(poutine.replay(guide, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
    return guide_trace


class OptimalBaselineReinforce(ELBO):
    r"""ELBO gradient with the per-parameter optimal REINFORCE baseline (book §20.9.1).

    For :math:`K \ge 2` independent particles :math:`h_k \sim q_\phi(h \mid x)` of the whole
    batch, with learning signal :math:`f_k = \log p(x, h_k) - \log q(h_k \mid x)` and score
    :math:`g_k = \nabla_\phi \log q(h_k \mid x)`:

    .. math::

        \widehat{\nabla_\phi \mathcal L}_i = \frac1K \sum_k \bigl(f_k - b^{(-k)}_i\bigr)
        g_{k,i}, \qquad
        b^{(-k)}_i = \frac{\sum_{j \ne k} f_j g_{j,i}^2}{\sum_{j \ne k} g_{j,i}^2}

    (leave-one-out, so :math:`b^{(-k)}` is independent of :math:`h_k` and the estimator is
    unbiased), and the model's parameters get the pathwise
    :math:`\frac1K \sum_k \nabla_\theta \log p(x, h_k)`. The learning signal is that of the
    whole batch (per-example signals would need per-example gradients).

    **Scales and masks** follow Pyro's semantics: they enter the learning signal :math:`f_k`
    (each site's ``log_prob`` is scaled — by the data plate's :math:`N/B` under subsampling,
    by ``poutine.scale`` — and masked, exactly as in the ELBO's value), never the score
    :math:`g_k`, which is the gradient of the log-density of the distribution the particles
    were drawn from (Pyro's ``ScoreParts.scale_and_mask`` leaves ``score_function`` unscaled
    and unmasked for the same reason). With a subsampled plate the estimate is then unbiased
    for the full-data gradient :math:`\nabla_\phi \sum_{n=1}^N \mathbb E_q[f_n]`: the
    :math:`N/B` appears once. A row masked out in model and guide adds nothing to :math:`f_k`
    and a zero-mean term to :math:`g_k`, so it changes the gradient in expectation by nothing
    (it adds variance, not bias). Reparametrized guide sites are treated as any other: the
    samples are held fixed (the guide is replayed on the detached values) and only their
    score is used.

    Cost: :math:`K` model/guide passes and :math:`K` backward passes through the guide.

    Parameters
    ----------
    num_particles : int
        :math:`K \ge 2`.
    use_baseline : bool
        ``False`` gives plain REINFORCE with the same batch-level learning signal
        (:math:`b = 0`), the reference for the baseline's variance reduction.

    Attributes
    ----------
    last_elbo : float
        The ELBO estimate of the latest step (mean over particles).
    """

    def __init__(self, num_particles: int = 10, use_baseline: bool = True):
        super().__init__(num_particles=check_int(num_particles, "num_particles", low=2))
        self.use_baseline = bool(use_baseline)
        self.last_elbo = float("nan")

    def _get_trace(self, model, guide, args, kwargs):  # required by pyro's ELBO base
        raise NotImplementedError("OptimalBaselineReinforce runs its own traces")

    def _traces(self, model, guide, args, kwargs):
        for _ in range(self.num_particles):
            guide_trace = _fixed_sample_guide_trace(guide, args, kwargs)
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
                *args, **kwargs
            )
            yield model_trace, guide_trace

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Negative ELBO estimate (no gradients)."""
        with torch.no_grad():
            vals = [
                torch_item(_log_prob(mt, False) - _log_prob(gt, True))
                for mt, gt in self._traces(model, guide, args, kwargs)
            ]
        self.last_elbo = sum(vals) / len(vals)
        return -self.last_elbo

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Write the estimator into the parameters' ``.grad``; returns the negative ELBO."""
        K = self.num_particles
        f, scores, model_loss = [], [], 0.0
        guide_params = model_params = None
        for model_trace, guide_trace in self._traces(model, guide, args, kwargs):
            if guide_params is None:
                guide_params = _param_tensors(guide_trace)
                gids = {id(p) for p in guide_params}
                model_params = [p for p in _param_tensors(model_trace) if id(p) not in gids]
            log_p = _log_prob(model_trace, False)
            log_q = _log_prob(guide_trace, True)
            # the learning signal is scaled and masked; the score is neither (bug fixed: the
            # score of the scaled log q put N/B in twice, the gradient grew as (N/B)^2)
            f.append(torch_item(log_p) - torch_item(log_q))
            model_loss = model_loss - log_p / K
            score = _score(guide_trace)
            if guide_params and torch.is_tensor(score) and score.requires_grad:
                scores.append(torch.autograd.grad(score, guide_params, allow_unused=True))
        if model_params and torch.is_tensor(model_loss) and model_loss.requires_grad:
            grads = torch.autograd.grad(model_loss, model_params, allow_unused=True)
            for p, g in zip(model_params, grads):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad + g
        if scores:
            fk = torch.tensor(f, dtype=torch.float64)
            for i, p in enumerate(guide_params):
                if all(s[i] is None for s in scores):
                    continue
                g = torch.stack(
                    [torch.zeros_like(p) if s[i] is None else s[i] for s in scores]
                ).double()
                fb = fk.reshape((K,) + (1,) * p.dim())
                g2 = g * g
                num = (fb * g2).sum(0) - fb * g2
                den = g2.sum(0) - g2
                b = torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(num))
                if not self.use_baseline:
                    b = torch.zeros_like(b)
                est = ((fb - b) * g).mean(0)
                grad = (-est).to(p.dtype)
                p.grad = grad if p.grad is None else p.grad + grad
        self.last_elbo = sum(f) / K
        return -self.last_elbo
