r"""The wake-sleep algorithm (Hinton, Dayan, Frey & Neal 1995) as a Pyro loss object.

For a generative model :math:`p_\theta(x, h)` and a recognition network (guide)
:math:`q_\phi(h \mid x)`, one step of wake-sleep updates each set of parameters with its own
objective:

* **wake phase** (generative parameters): draw :math:`h \sim q_\phi(h \mid x)` for each data
  example and maximize :math:`\log p_\theta(x, h)`; the gradient
  :math:`\mathbb E_{q_\phi(h\mid x)}[\nabla_\theta \log p_\theta(x, h)]` is that of the ELBO with
  respect to :math:`\theta` (exact when :math:`q` is the true posterior, book §19.5);
* **sleep phase** (recognition parameters): "dream" :math:`(\tilde x, \tilde h) \sim p_\theta`
  by ancestral sampling and maximize :math:`\log q_\phi(\tilde h \mid \tilde x)`, i.e. minimize
  :math:`\mathrm{KL}(p_\theta(h \mid x) \,\|\, q_\phi(h \mid x))` averaged over
  :math:`p_\theta(x)` — the reverse of the KL that variational inference minimizes, and under
  the model's data distribution rather than the training data's.

Neither phase needs a score-function (REINFORCE) estimator, which is why wake-sleep works with
discrete latent variables; but the pair of updates follows no single objective and is not
guaranteed to converge [1]_ [2]_.

Usage::

    ws = WakeSleep()
    svi = pyro.infer.SVI(sbn.model, sbn.guide, pyro.optim.Adam({"lr": 1e-3}), loss=ws)
    svi.step(x_batch, num_data=len(x))          # returns the wake loss
    wake, sleep = ws.last["wake"], ws.last["sleep"]

Requirements on the model/guide pair: the guide takes the data as its positional argument
``data_arg`` (default 0), the model observes it at a single observed site, and every latent site
of the model has a guide site of the same name. The sleep phase runs the model under
``poutine.uncondition`` (so the observed site is sampled) and calls the guide with that dream in
place of the data, replaying the dreamed latents; the data plate's subsampling scale
:math:`N/B` applies to both phases alike.

References
----------
.. [1] G. E. Hinton, P. Dayan, B. J. Frey, R. M. Neal, "The wake-sleep algorithm for
   unsupervised neural networks", Science 268, 1995.
.. [2] J. Bornschein, Y. Bengio, "Reweighted wake-sleep", ICLR 2015.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.infer.elbo import ELBO
from pyro.infer.util import torch_item
from pyro.poutine.util import site_is_subsample

from .._validation import check_int

__all__ = ["WakeSleep", "sleep_phase_loss"]


def _observed_site(trace, name: str | None):
    obs = [
        n for n, s in trace.nodes.items()
        if s["type"] == "sample" and (s["is_observed"] or "was_observed" in s["infer"])
    ]
    if name is not None:
        if name not in obs:
            raise ValueError(
                f"observed_site must name an observed site of the model {obs!r}. Got {name!r} "
                "instead."
            )
        return name
    if len(obs) != 1:
        raise ValueError(
            "the sleep phase needs a model with exactly one observed site (pass observed_site= "
            f"to choose). Got observed sites {obs!r} instead."
        )
    return obs[0]


def _latent_log_prob_sum(trace) -> torch.Tensor:
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        if site_is_subsample(site):
            continue
        total = total + site["log_prob_sum"]
    return total


def sleep_phase_loss(model, guide, args, kwargs, *, data_arg: int = 0,
                     observed_site: str | None = None) -> torch.Tensor:
    r"""Sleep-phase loss :math:`-\log q_\phi(\tilde h \mid \tilde x)` on one dream
    :math:`(\tilde x, \tilde h) \sim p_\theta` (scaled like the data plate).

    Differentiable with respect to the guide's parameters only (the dream is detached).
    """
    dream = poutine.trace(poutine.uncondition(model)).get_trace(*args, **kwargs)
    dream.detach_()
    site = _observed_site(dream, observed_site)
    if not 0 <= data_arg < len(args):
        raise ValueError(
            f"data_arg must index a positional argument of the model (0..{len(args) - 1}). "
            f"Got {data_arg} instead."
        )
    new_args = list(args)
    new_args[data_arg] = dream.nodes[site]["value"]
    guide_trace = poutine.trace(poutine.replay(guide, trace=dream)).get_trace(
        *new_args, **kwargs
    )
    guide_trace.compute_log_prob()
    return -_latent_log_prob_sum(guide_trace)


class WakeSleep(ELBO):
    r"""Wake-sleep as a Pyro loss: ``SVI(model, guide, optim, loss=WakeSleep())``.

    One call of :meth:`loss_and_grads` computes

    .. math::

        L_{\text{wake}}(\theta) = -\frac1K \sum_{k=1}^K \log p_\theta(x, h_k),\quad
        h_k \sim q_\phi(h \mid x);
        \qquad
        L_{\text{sleep}}(\phi) = -\frac1S \sum_{s=1}^S \log q_\phi(\tilde h_s \mid \tilde x_s),
        \quad (\tilde x_s, \tilde h_s) \sim p_\theta,

    and back-propagates :math:`L_{\text{wake}} + L_{\text{sleep}}`: the latent samples carry no
    gradient, so :math:`\theta` receives only the wake gradient and :math:`\phi` only the sleep
    gradient. Both are reported separately in :attr:`last` and :attr:`history`. The value
    returned to ``SVI`` is the wake loss (not a bound on :math:`-\log p(x)`: it also counts
    the entropy of :math:`q`).

    Parameters
    ----------
    num_particles : int
        :math:`K`, guide samples per example in the wake phase.
    num_sleep_particles : int, optional
        :math:`S`, dreams per step (each the size of the batch); defaults to ``num_particles``.
    data_arg : int
        Index of the data among the positional arguments of model and guide.
    observed_site : str, optional
        Name of the model's observed site (needed only when there are several).

    Attributes
    ----------
    last : dict
        ``{"wake": float, "sleep": float}`` of the latest step (sums over the batch, scaled to
        the full data set like Pyro's losses).
    history : dict
        ``{"wake": [...], "sleep": [...]}`` over every step.
    """

    def __init__(self, num_particles: int = 1, num_sleep_particles: int | None = None,
                 data_arg: int = 0, observed_site: str | None = None):
        super().__init__(num_particles=check_int(num_particles, "num_particles", low=1))
        self.num_sleep_particles = (
            self.num_particles if num_sleep_particles is None
            else check_int(num_sleep_particles, "num_sleep_particles", low=1)
        )
        self.data_arg = check_int(data_arg, "data_arg", low=0)
        self.observed_site = observed_site
        self.last: dict = {}
        self.history: dict = {"wake": [], "sleep": []}

    def _get_trace(self, model, guide, args, kwargs):  # required by pyro's ELBO base
        raise NotImplementedError("WakeSleep does not use ELBO traces")

    def wake_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        r"""Differentiable :math:`L_{\text{wake}}` (gradient to the model's parameters)."""
        total = 0.0
        for _ in range(self.num_particles):
            guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
            guide_trace.detach_()
            model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
                *args, **kwargs
            )
            total = total - model_trace.log_prob_sum()
        return total / self.num_particles

    def sleep_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        r"""Differentiable :math:`L_{\text{sleep}}` (gradient to the guide's parameters)."""
        total = 0.0
        for _ in range(self.num_sleep_particles):
            total = total + sleep_phase_loss(
                model, guide, args, kwargs, data_arg=self.data_arg,
                observed_site=self.observed_site,
            )
        return total / self.num_sleep_particles

    def _record(self, wake, sleep):
        self.last = {"wake": torch_item(wake), "sleep": torch_item(sleep)}
        self.history["wake"].append(self.last["wake"])
        self.history["sleep"].append(self.last["sleep"])

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Wake loss of one step without gradients (also records both phases)."""
        with torch.no_grad():
            wake = self.wake_loss(model, guide, *args, **kwargs)
            sleep = self.sleep_loss(model, guide, *args, **kwargs)
        self._record(wake, sleep)
        return self.last["wake"]

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Both phases' gradients in the parameters' ``.grad``; returns the wake loss."""
        wake = self.wake_loss(model, guide, *args, **kwargs)
        sleep = self.sleep_loss(model, guide, *args, **kwargs)
        surrogate = wake + sleep
        if torch.is_tensor(surrogate) and surrogate.requires_grad:
            surrogate.backward()
        self._record(wake, sleep)
        return self.last["wake"]
