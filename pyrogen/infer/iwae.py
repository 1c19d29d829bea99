r"""The importance-weighted bound (IWAE) as a Pyro loss, with per-example weights.

.. math::

    \mathcal L_K(x_n) = \mathbb E_{z_{1..K} \sim q(\cdot\mid x_n)}
    \Big[\log \frac1K \sum_{k=1}^K \frac{p(x_n, z_k)}{q(z_k \mid x_n)}\Big]
    \;\le\; \log p(x_n),

with :math:`\mathcal L_1` the ELBO, :math:`\mathcal L_K \le \mathcal L_{K+1}` and
:math:`\mathcal L_K \to \log p(x_n)` [1]. The data set bound is
:math:`\sum_n \mathcal L_K(x_n)`: the weights are normalized **within each example**. A
minibatch of :math:`B` out of :math:`N` examples gives the unbiased estimate
:math:`\frac NB \sum_{n \in \text{batch}} \log \frac1K \sum_k w_{kn}`.

Pyro's own ``RenyiELBO(alpha=0)`` (pyro-ppl 1.9.2) — what we found
-------------------------------------------------------------------
``RenyiELBO`` sums each site's ``log_prob`` only over the plates that are *not common to all
sites* (``get_dependent_plate_dims``). So:

* when every sample site lies inside the data plate and the plate is **not subsampled**,
  ``RenyiELBO(alpha=0, num_particles=K)`` keeps one weight per example and per particle and its
  value equals :class:`IWAE_ELBO`'s (checked in ``tests/infer/test_iwae.py``);
* with **subsampling** (``pyro.plate("data", N, subsample_size=B)``, or ``num_data`` in the
  pyrogen models) the site ``log_prob`` already carries the factor :math:`N/B`, and
  ``RenyiELBO`` puts it *inside* the log-mean-exp: it computes
  :math:`\sum_n \log \frac1K\sum_k w_{kn}^{N/B}`, not :math:`\frac NB \sum_n \log\frac1K\sum_k
  w_{kn}`, a different objective whose optimum is not the IWAE one (also checked in the tests);
* when any site lies outside the data plate (a global latent), it silently sums over the data
  plate and normalizes the weights over the whole batch.

:class:`IWAE_ELBO` removes the subsampling factor before the log-mean-exp and puts it back
outside, and refuses (``ValueError``) models with sample sites outside the data plate.

The log-weights are those of :func:`pyrogen.infer.importance.per_example_log_weights` (masks
and scales as Pyro applies them: a masked-out observation contributes nothing to its example's
weight), with the samples' graph kept.

Gradient: with reparametrized guide sites the gradient of :math:`\log\frac1K\sum_k w_k` is
:math:`\sum_k \tilde w_k \nabla \log w_k` with normalized weights :math:`\tilde w_k` [1]; it is
obtained by differentiating the log-mean-exp directly. Non-reparametrizable guide sites would need
score-function terms (and the variance reduction of [2]); they raise ``NotImplementedError``.

References
----------
1. Y. Burda, R. Grosse, R. Salakhutdinov. *Importance Weighted Autoencoders*. ICLR 2016.
2. A. Mnih, D. J. Rezende. *Variational inference for Monte Carlo objectives*. ICML 2016.
3. Y. Li, R. E. Turner. *Rényi Divergence Variational Inference*. NeurIPS 2016.
"""

from __future__ import annotations

import math

import torch
from pyro.infer.elbo import ELBO
from pyro.poutine.util import site_is_subsample
from pyro.util import warn_if_nan

from .._validation import check_int
from .importance import guess_max_plate_nesting, per_example_log_weights

__all__ = ["IWAE_ELBO"]


class IWAE_ELBO(ELBO):
    r"""Importance-weighted autoencoder bound :math:`\mathcal L_K` with per-example weights.

    A Pyro loss: ``SVI(model, guide, optim, IWAE_ELBO(num_particles=50))``. Particles are
    vectorized (one guide pass per step; the guide's networks run once per example).

    Parameters
    ----------
    num_particles : int
        :math:`K` (``K = 1`` is the ELBO, estimated like ``Trace_ELBO``).
    max_plate_nesting : int, optional
        Plate nesting of the model (the particle plate goes to its left); guessed on the first
        call when ``None``.
    plate_name : str
        Name of the plate over examples (``"data"`` in every pyrogen model).

    Notes
    -----
    ``loss`` returns :math:`-\frac NB\sum_{n\in\text{batch}}\log\frac1K\sum_k w_{kn}`, a single
    draw of the (negative) IWAE bound estimator: the **IWAE bound**, not a log-likelihood.
    Cost per step: one guide pass and :math:`K` model passes per example.
    """

    def __init__(
        self,
        num_particles: int = 5,
        max_plate_nesting: int | None = None,
        plate_name: str = "data",
    ):
        num_particles = check_int(num_particles, "num_particles", low=1)
        if max_plate_nesting is not None:
            max_plate_nesting = check_int(max_plate_nesting, "max_plate_nesting", low=1)
        super().__init__(
            num_particles=num_particles,
            max_plate_nesting=float("inf") if max_plate_nesting is None else max_plate_nesting,
            vectorize_particles=True,
        )
        self.plate_name = plate_name

    def _get_trace(self, model, guide, args, kwargs):  # pragma: no cover - not used
        raise NotImplementedError("IWAE_ELBO builds its traces in per_example_log_weights")

    def _nesting(self, model, guide, args, kwargs) -> int:
        if self.max_plate_nesting == float("inf"):
            self.max_plate_nesting = guess_max_plate_nesting(model, guide, args, kwargs)
        return int(self.max_plate_nesting)

    def _bound(self, model, guide, args, kwargs):
        mpn = self._nesting(model, guide, args, kwargs)
        iw = per_example_log_weights(
            model, guide, args, kwargs, num_particles=self.num_particles,
            max_plate_nesting=mpn, plate_name=self.plate_name, detach=False,
        )
        for site in iw.guide_trace.nodes.values():
            if site["type"] == "sample" and not site["is_observed"] and not site_is_subsample(site):
                if not getattr(site["fn"], "has_rsample", False):
                    raise NotImplementedError(
                        f"IWAE_ELBO needs reparametrizable guide sites; site {site['name']!r} "
                        f"has distribution {type(site['fn']).__name__} without rsample."
                    )
        per_example = torch.logsumexp(iw.log_weights, dim=0) - math.log(self.num_particles)
        return iw.data_scale * per_example.sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        """Negative IWAE bound estimate (nats, scaled to the full data set)."""
        with torch.no_grad():
            loss = -float(self._bound(model, guide, args, kwargs))
        warn_if_nan(loss, "loss")
        return loss

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """Negative IWAE bound estimate as a tensor with autograd graph."""
        return -self._bound(model, guide, args, kwargs)

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        """Negative IWAE bound estimate; backpropagates its gradient."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if loss.requires_grad:
            loss.backward(retain_graph=self.retain_graph)
        value = float(loss.detach())
        warn_if_nan(value, "loss")
        return value
