r"""Reweighted wake-sleep (Bornschein & Bengio 2015) with per-example importance weights.

For each example :math:`x_n` of a (mini)batch draw :math:`K` particles
:math:`h_{kn} \sim q_\phi(h \mid x_n)` and form the per-example normalized weights

.. math::

    \log w_{kn} = \log p_\theta(x_n, h_{kn}) - \log q_\phi(h_{kn} \mid x_n), \qquad
    \tilde w_{kn} = \frac{w_{kn}}{\sum_{k'} w_{k'n}}.

Then, with :math:`s = N/B` the data plate's subsampling scale,

.. math::

    \nabla_\theta \approx s \sum_n \sum_k \tilde w_{kn} \nabla_\theta \log p_\theta(x_n, h_{kn})
    \quad\text{(wake-}\theta\text{)},\qquad
    \nabla_\phi \approx s \sum_n \sum_k \tilde w_{kn} \nabla_\phi \log q_\phi(h_{kn} \mid x_n)
    \quad\text{(wake-}\phi\text{)},

the self-normalized importance-sampling estimates of :math:`\nabla_\theta \sum_n \log p(x_n)`
and of the gradient of :math:`-\sum_n \mathrm{KL}(p(h \mid x_n) \| q(h \mid x_n))`
[1]_. Both gradients are taken **at fixed samples** :math:`h_{kn}`: the guide's samples are
detached as they are drawn (:func:`~pyrogen.infer.importance.per_example_log_weights` with
``detach=True``; Pyro's RWS detaches its guide trace too), so a reparametrized guide gets the
score :math:`\nabla_\phi \log q_\phi(h)` at fixed :math:`h` and no gradient from the
wake-:math:`\theta` term, and the model gets no gradient through the samples. The weights are
Pyro's per site (``poutine.mask``, ``Distribution.mask``, ``poutine.scale`` applied: a
masked-out observation contributes nothing to its example's weight); only the data plate's
subsampling scale is taken out of them and applied to the gradient as :math:`s`.

The sleep-:math:`\phi` update of wake-sleep can be mixed in (``insomnia < 1``). The loss
reported is the negative importance-weighted bound
:math:`-s \sum_n \log \frac1K \sum_k w_{kn}` (IWAE bound [2]_, a stochastic lower bound on
:math:`\log p`), per batch scaled to the data set.

**Difference from** :class:`pyro.infer.ReweightedWakeSleep` (Pyro 1.9): Pyro sums the log-weights
of all examples of the batch into *one* weight per particle,
:math:`\log W_k = \sum_n \log w_{kn}`, and normalizes over :math:`k` only. The self-normalized
estimate then uses the joint proposal :math:`\prod_n q(h_n \mid x_n)` for the joint posterior of
the whole batch, whose effective sample size collapses to about 1 as the batch grows (the
variance of :math:`\log W_k` grows linearly in :math:`B`), so its gradient approaches the
single-sample wake-sleep gradient; and with a subsampled data plate the scale :math:`N/B` enters
the log-weights themselves (:math:`W_k^{N/B}`), sharpening them further, so minibatches are not
supported (its documentation says so). Here the weights are normalized per
example: the estimator's bias and variance per example do not depend on the batch size, and the
gradient is scaled by :math:`N/B`. ``tests/infer/test_rws.py`` measures the difference against
the exact gradient computed by enumeration.

References
----------
.. [1] J. Bornschein, Y. Bengio, "Reweighted wake-sleep", ICLR 2015.
.. [2] Y. Burda, R. Grosse, R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
"""

from __future__ import annotations

import math

import torch
from pyro.infer.elbo import ELBO
from pyro.infer.util import torch_item

from .._validation import check_float, check_int
from .importance import per_example_log_weights
from .wake_sleep import sleep_phase_loss

__all__ = ["ReweightedWakeSleep"]

class ReweightedWakeSleep(ELBO):
    r"""Per-example, minibatch-correct reweighted wake-sleep as a Pyro loss.

    ``SVI(model, guide, optim, loss=ReweightedWakeSleep(num_particles=5))``; every sample site
    of model and guide must lie inside a vectorized plate named ``plate_name`` over the
    examples (subsampling allowed), nested at most ``max_plate_nesting`` deep.

    Parameters
    ----------
    num_particles : int
        :math:`K` per example.
    insomnia : float in [0, 1]
        Weight of the wake-:math:`\phi` update; ``1 - insomnia`` goes to the sleep-:math:`\phi`
        update (dreams from the model). Bornschein & Bengio recommend wake-phi alone or both
        (0.5).
    num_sleep_particles : int
        Dreams per step when ``insomnia < 1``.
    max_plate_nesting : int
    plate_name : str
    data_arg : int
        Index of the data among the positional arguments (sleep phase only).

    Attributes
    ----------
    last : dict
        ``{"iwae": float, "wake_theta": float, "phi": float, "ess": float}`` of the latest step:
        the negative IWAE bound (scaled), the surrogate losses and the mean per-example
        effective sample size :math:`(\sum_k w)^2 / \sum_k w^2`.
    """

    def __init__(self, num_particles: int = 5, insomnia: float = 1.0,
                 num_sleep_particles: int = 1, max_plate_nesting: int = 1,
                 plate_name: str = "data", data_arg: int = 0):
        super().__init__(
            num_particles=check_int(num_particles, "num_particles", low=1),
            max_plate_nesting=check_int(max_plate_nesting, "max_plate_nesting", low=1),
        )
        self.insomnia = check_float(insomnia, "insomnia", 0.0, 1.0, "cc")
        self.num_sleep_particles = check_int(num_sleep_particles, "num_sleep_particles", low=1)
        self.plate_name = plate_name
        self.data_arg = check_int(data_arg, "data_arg", low=0)
        self.last: dict = {}

    def _get_trace(self, model, guide, args, kwargs):  # required by pyro's ELBO base
        raise NotImplementedError("ReweightedWakeSleep does not use ELBO traces")

    def _losses(self, model, guide, args, kwargs):
        # at fixed samples: log_p carries gradient to theta only, log_q the score in phi only
        log_p, log_q, scale, _, _ = per_example_log_weights(
            model, guide, args, kwargs, num_particles=self.num_particles,
            max_plate_nesting=self.max_plate_nesting, plate_name=self.plate_name, detach=True,
        )
        lw = (log_p - log_q).detach()
        lse = torch.logsumexp(lw, 0)
        w = torch.exp(lw - lse)
        iwae = -scale * (lse - math.log(self.num_particles)).sum()
        wake_theta = -scale * (w * log_p).sum()
        phi = 0.0
        if self.insomnia > 0:
            phi = phi - self.insomnia * scale * (w * log_q).sum()
        if self.insomnia < 1:
            sleep = 0.0
            for _ in range(self.num_sleep_particles):
                sleep = sleep + sleep_phase_loss(model, guide, args, kwargs,
                                                 data_arg=self.data_arg)
            phi = phi + (1.0 - self.insomnia) * sleep / self.num_sleep_particles
        ess = float((1.0 / (w**2).sum(0)).mean())
        return iwae, wake_theta, phi, ess

    def _record(self, iwae, wake_theta, phi, ess):
        self.last = {"iwae": torch_item(iwae), "wake_theta": torch_item(wake_theta),
                     "phi": torch_item(phi), "ess": ess}

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Negative IWAE bound of one draw (no gradients)."""
        with torch.no_grad():
            out = self._losses(model, guide, args, kwargs)
        self._record(*out)
        return self.last["iwae"]

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Wake-theta and phi gradients into ``.grad``; returns the negative IWAE bound."""
        iwae, wake_theta, phi, ess = self._losses(model, guide, args, kwargs)
        surrogate = wake_theta + phi
        if torch.is_tensor(surrogate) and surrogate.requires_grad:
            surrogate.backward()
        self._record(iwae, wake_theta, phi, ess)
        return self.last["iwae"]
