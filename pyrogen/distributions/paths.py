r"""Annealing paths that energy-based distributions offer (data for the annealing engine).

A path is a family of unnormalized densities :math:`f_\beta` from a tractable base
(:math:`\beta = 0`: known ``log_z0``, exact draws by ``init``) to a distribution's unnormalized
density (:math:`\beta = 1`), with ``log_density(x, beta)`` and its own moves
(``transition(x, beta, generator)``); see :class:`pyrogen.infer.annealing.AnnealingPath` for
the protocol. The paths live here, at the distribution level, so that a distribution can offer
its path (``dist.annealing_path(...)``) without importing the engine
(:mod:`pyrogen.infer.annealing`), which consumes them and re-exports them.

* :class:`RBMBaseRatePath` -- Salakhutdinov & Murray (2008) [1]_ for binary RBMs.
* :class:`DBMPath` -- Salakhutdinov & Hinton (2009) [2]_ for deep Boltzmann machines, the odd
  layers summed out analytically.

References
----------
.. [1] R. Salakhutdinov and I. Murray. On the quantitative analysis of deep belief networks.
   *ICML* 2008.
.. [2] R. Salakhutdinov and G. Hinton. Deep Boltzmann machines. *AISTATS* 2009.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._random import bernoulli
from .._validation import check_float

__all__ = ["RBMBaseRatePath", "base_rate_visible_bias"]


def base_rate_visible_bias(data: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    r"""Visible biases of the base-rate model: the logits of the smoothed pixel means.

    :math:`b^A_i = \operatorname{logit}\big((1-2\epsilon)\,\bar v_i + \epsilon\big)`, the
    maximum-likelihood factorial Bernoulli model of ``data`` shrunk towards 1/2 by ``eps`` so
    that pixels that are always 0 or 1 get finite biases (Salakhutdinov & Murray 2008).

    Parameters
    ----------
    data : torch.Tensor, shape ``(n, *batch_shape, n_visible)``
        Binary training data.
    eps : float in (0, 0.5)
        Smoothing.

    Returns
    -------
    torch.Tensor, shape ``(*batch_shape, n_visible)``
    """
    if not isinstance(data, torch.Tensor):
        raise TypeError(f"data must be a torch.Tensor. Got {type(data).__name__} instead.")
    if data.dim() < 2 or data.shape[0] < 1:
        raise ValueError(
            f"data must have shape (n, ..., n_visible) with n >= 1. Got shape "
            f"{tuple(data.shape)} instead."
        )
    eps = check_float(eps, "eps", 0.0, 0.5, "oo")
    dtype = data.dtype if data.dtype.is_floating_point else torch.get_default_dtype()
    p = data.to(dtype).mean(dim=0) * (1 - 2 * eps) + eps
    return torch.log(p) - torch.log1p(-p)


def _bernoulli(p, generator=None):
    return bernoulli(p, generator)


class RBMBaseRatePath:
    r"""The Salakhutdinov & Murray (2008) annealing path for a binary RBM.

    Target: :math:`E(v,h) = -b^\top v - c^\top h - v^\top W h`, unnormalized marginal
    :math:`f_1(v) = e^{-F(v)} = e^{b^\top v}\prod_j (1+e^{c_j + (v^\top W)_j})`. Base: the
    factorial "base-rate" model with visible biases :math:`b^A`. Intermediate RBMs

    .. math::

        f_\beta(v) = \exp\big(((1-\beta) b^A + \beta b)^\top v\big)
        \prod_{j=1}^{H}\big(1 + e^{\beta (c_j + (v^\top W)_j)}\big),

    i.e. weights and hidden biases scaled by :math:`\beta`, visible biases interpolated.
    :math:`Z_0 = 2^H \prod_i (1+e^{b^A_i})`. Transition at :math:`\beta`: block Gibbs
    :math:`h \sim \sigma(\beta(c + v^\top W))`, then
    :math:`v \sim \sigma((1-\beta) b^A + \beta(b + W h))` — reversible in :math:`v`, so it
    serves :func:`reverse_ais` as it is.

    Parameters
    ----------
    weight : torch.Tensor, shape ``(*batch_shape, n_visible, n_hidden)``
    visible_bias : torch.Tensor, shape ``(*batch_shape, n_visible)``
    hidden_bias : torch.Tensor, shape ``(*batch_shape, n_hidden)``
    base_visible_bias : torch.Tensor, optional, shape ``(*batch_shape, n_visible)``
        :math:`b^A`; use :func:`base_rate_visible_bias` on training data (recommended: a much
        better start than the default, zeros, i.e. the uniform distribution).

    Notes
    -----
    All tensors are detached: the path estimates a value, not a gradient. Cost per annealing
    step on :math:`M` chains: two :math:`M\times V\times H` matrix products.
    """

    def __init__(self, weight, visible_bias, hidden_bias, base_visible_bias=None):
        for name, t in (
            ("weight", weight),
            ("visible_bias", visible_bias),
            ("hidden_bias", hidden_bias),
        ):
            if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
                raise TypeError(
                    f"{name} must be a floating-point torch.Tensor. Got "
                    f"{getattr(t, 'dtype', type(t).__name__)} instead."
                )
        if weight.dim() < 2:
            raise ValueError(
                "weight must have shape (*batch_shape, n_visible, n_hidden). "
                f"Got shape {tuple(weight.shape)} instead."
            )
        nv, nh = weight.shape[-2:]
        if visible_bias.dim() < 1 or visible_bias.shape[-1] != nv:
            raise ValueError(
                f"visible_bias must have shape (*batch_shape, {nv}) to match weight. "
                f"Got shape {tuple(visible_bias.shape)} instead."
            )
        if hidden_bias.dim() < 1 or hidden_bias.shape[-1] != nh:
            raise ValueError(
                f"hidden_bias must have shape (*batch_shape, {nh}) to match weight. "
                f"Got shape {tuple(hidden_bias.shape)} instead."
            )
        if base_visible_bias is None:
            base_visible_bias = torch.zeros_like(visible_bias)
        elif not isinstance(base_visible_bias, torch.Tensor) or base_visible_bias.shape[-1:] != (
            nv,
        ):
            raise ValueError(
                f"base_visible_bias must be a tensor of shape (*batch_shape, {nv}). Got "
                f"{tuple(getattr(base_visible_bias, 'shape', ()))} instead."
            )
        dtype = weight.dtype
        try:
            batch_shape = torch.broadcast_shapes(
                weight.shape[:-2],
                visible_bias.shape[:-1],
                hidden_bias.shape[:-1],
                base_visible_bias.shape[:-1],
            )
        except RuntimeError:
            raise ValueError(
                "weight, visible_bias, hidden_bias and base_visible_bias must have broadcastable "
                f"batch shapes. Got {tuple(weight.shape[:-2])}, {tuple(visible_bias.shape[:-1])}"
                f", {tuple(hidden_bias.shape[:-1])} and {tuple(base_visible_bias.shape[:-1])}."
            ) from None
        self.batch_shape = batch_shape
        self.n_visible, self.n_hidden = nv, nh
        self.weight = weight.detach().expand(*batch_shape, nv, nh)
        self.visible_bias = visible_bias.detach().to(dtype).expand(*batch_shape, nv)
        self.hidden_bias = hidden_bias.detach().to(dtype).expand(*batch_shape, nh)
        self.base_visible_bias = base_visible_bias.detach().to(dtype).expand(*batch_shape, nv)
        self.log_z0 = F.softplus(self.base_visible_bias).sum(-1) + nh * math.log(2.0)

    # -- linear algebra with chains in front of the batch dims ---------------------------------
    def _vw(self, v):
        """``v W`` for ``v`` of shape (M, *batch, V) -> (M, *batch, H)."""
        if not self.batch_shape:
            return v @ self.weight
        return (v.movedim(0, -2) @ self.weight).movedim(-2, 0)

    def _hwt(self, h):
        if not self.batch_shape:
            return h @ self.weight.transpose(-1, -2)
        return (h.movedim(0, -2) @ self.weight.transpose(-1, -2)).movedim(-2, 0)

    # -- the protocol --------------------------------------------------------------------------
    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from the base-rate model, shape ``(num_chains, *batch_shape, V)``."""
        p = torch.sigmoid(self.base_visible_bias).expand(num_chains, *self.base_visible_bias.shape)
        return _bernoulli(p, generator)

    def log_density(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        r""":math:`\log f_\beta(v)`, shape ``x.shape[:-1]``."""
        a = self._vw(x) + self.hidden_bias
        bias = (1 - beta) * self.base_visible_bias + beta * self.visible_bias
        return (x * bias).sum(-1) + F.softplus(beta * a).sum(-1)

    def _gibbs(self, x, a, beta, generator):
        h = _bernoulli(torch.sigmoid(beta * a), generator)
        logits = (1 - beta) * self.base_visible_bias + beta * (self.visible_bias + self._hwt(h))
        return _bernoulli(torch.sigmoid(logits), generator)

    def transition(self, x: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        """One block-Gibbs sweep :math:`v \\to h \\to v` of the intermediate RBM at ``beta``."""
        return self._gibbs(x, self._vw(x) + self.hidden_bias, beta, generator)

    def anneal_step(self, x, beta_prev: float, beta: float, generator=None):
        """Fused weight increment and transition (one ``v W`` product shared by both)."""
        a = self._vw(x) + self.hidden_bias
        inc = (beta - beta_prev) * (x * (self.visible_bias - self.base_visible_bias)).sum(-1)
        inc = inc + (F.softplus(beta * a) - F.softplus(beta_prev * a)).sum(-1)
        return self._gibbs(x, a, beta, generator), inc

    def __repr__(self) -> str:
        return (
            f"RBMBaseRatePath(n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"batch_shape={tuple(self.batch_shape)})"
        )
