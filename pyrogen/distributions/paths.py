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
from torch.distributions import constraints

from .._random import bernoulli, normal_, uniform_
from .._validation import check_float, check_int

__all__ = [
    "RBMBaseRatePath",
    "GeometricPath",
    "DBMPath",
    "RBMInterpolationPath",
    "base_rate_visible_bias",
]


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

    def log_density_fn(self, x: torch.Tensor):
        r""":math:`\beta \mapsto \log f_\beta(v)` reusing one :math:`vW` product (for the
        adaptive SMC schedule's bisection)."""
        a = self._vw(x) + self.hidden_bias
        lin_base = (x * self.base_visible_bias).sum(-1)
        lin = (x * self.visible_bias).sum(-1)
        return lambda beta: (1 - beta) * lin_base + beta * lin + F.softplus(beta * a).sum(-1)

    # -- block Gibbs conditionals (pyrogen.infer.annealing.BlockGibbs uses them) ---------------
    def _sample_h(self, a, beta, generator):
        return bernoulli(torch.sigmoid(beta * a), generator)

    def sample_latent(self, x: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        r""":math:`h \sim \sigma(\beta(c + v^\top W))`, shape ``(M, *batch_shape, H)``."""
        return self._sample_h(self._vw(x) + self.hidden_bias, beta, generator)

    def sample_given_latent(self, h: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        r""":math:`v \sim \sigma((1-\beta) b^A + \beta(b + W h))`."""
        logits = (1 - beta) * self.base_visible_bias + beta * (self.visible_bias + self._hwt(h))
        return bernoulli(torch.sigmoid(logits), generator)

    def transition(self, x: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        """One block-Gibbs sweep :math:`v \to h \to v` of the intermediate RBM at ``beta``."""
        return self.sample_given_latent(self.sample_latent(x, beta, generator), beta, generator)

    def _fused_weights(self):
        """``([W | b - b^A], [c | 0], W^T)``, contiguous, built once per path."""
        if getattr(self, "_fused", None) is None:
            d = (self.visible_bias - self.base_visible_bias).unsqueeze(-1)
            w_aug = torch.cat([self.weight, d], -1).contiguous()
            c_aug = torch.cat([self.hidden_bias, torch.zeros_like(self.hidden_bias[..., :1])], -1)
            self._fused = (w_aug, c_aug, self.weight.transpose(-1, -2).contiguous())
        return self._fused

    def anneal_step(self, x, beta_prev: float, beta: float, generator=None):
        r"""Fused weight increment and block-Gibbs move.

        One product :math:`x\,[W \mid b - b^A] + [c \mid 0]` gives the hidden pre-activations
        (shared by the increment and :math:`h`'s conditional) and the linear term of the
        increment; the conditionals are computed in place and each Bernoulli draw is one uniform
        fill compared in place (the same random numbers, in the same order, as
        :meth:`transition`); the increment is summed in float64. Cost: two
        :math:`M \times V \times H` products and :math:`M(V + H)` uniforms.
        """
        w_aug, c_aug, wt = self._fused_weights()
        nh = self.n_hidden
        if self.batch_shape:
            ac = (x.movedim(0, -2) @ w_aug).movedim(-2, 0) + c_aug
        else:
            ac = torch.addmm(c_aug, x, w_aug)
        a = ac[..., :nh]
        inc = (beta - beta_prev) * ac[..., nh].double()
        inc += (F.softplus(beta * a) - F.softplus(beta_prev * a)).sum(-1, dtype=torch.float64)
        ph = a.mul_(beta).sigmoid_()
        h = uniform_(torch.empty_like(ph), generator).lt_(ph)
        bias = torch.lerp(self.base_visible_bias, self.visible_bias, beta)
        if self.batch_shape:
            logits = (h.movedim(0, -2) @ wt).movedim(-2, 0).mul_(beta).add_(bias)
        else:
            logits = torch.addmm(bias, h, wt, alpha=beta)
        p = logits.sigmoid_()
        return uniform_(torch.empty_like(p), generator).lt_(p), inc

    def __repr__(self) -> str:
        return (
            f"RBMBaseRatePath(n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"batch_shape={tuple(self.batch_shape)})"
        )


# --------------------------------------------------------------------------------------------
# The generic geometric path
# --------------------------------------------------------------------------------------------
def _base_leaf(base):
    d = base
    while isinstance(d, torch.distributions.Independent):
        d = d.base_dist
    return d


def _takes_generator(fn) -> bool:
    import inspect

    try:
        return "generator" in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _is_boolean(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.boolean


def _is_real(support) -> bool:
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    return support is constraints.real


class GeometricPath:
    r"""Geometric annealing :math:`f_\beta(x) = p_0(x)^{1-\beta}\, f_1(x)^{\beta}`.

    Parameters
    ----------
    base : torch.distributions.Distribution
        A normalized, tractable distribution with a non-empty ``event_shape`` (typically a
        factorial ``Bernoulli(probs).to_event(1)``); ``log_z0 = 0``. Its ``batch_shape`` is the
        path's batch shape.
    unnormalized_log_prob : callable
        ``x -> log f_1(x)`` for ``x`` of shape ``(num_chains, *batch_shape, *event_shape)``,
        returning ``(num_chains, *batch_shape)`` (e.g. ``-energy`` or ``-free_energy``).
    kernel : callable, optional
        ``kernel(x, beta) -> x`` or ``kernel(x, beta, generator=None) -> x``: a user Markov
        kernel that leaves :math:`f_\beta` invariant (with a ``generator`` parameter it gets the
        engine's chain-block ``torch.Generator``, so its runs are reproducible and split over
        processes like the engine's own kernels; without, it draws from the global RNG)
        (offered to the engine as ``transition``; it must be reversible for RAISE). Default:
        the engine picks single-site Gibbs (``num_sweeps`` sweeps) for binary events and
        random-walk Metropolis (``num_sweeps`` steps of scale ``step_size``) for real events
        (:func:`pyrogen.infer.annealing.resolve_kernel`).
    num_sweeps : int
        Sweeps (binary) or Metropolis steps (real) per move of the default kernels.
    step_size : float
        Proposal scale of the default random-walk Metropolis kernel.

    Notes
    -----
    The path is data: it holds no sampler code, so distributions can offer it without importing
    the engine. Exact draws from the base use the run's generator for Bernoulli and Normal
    bases and the global RNG (``base.sample``) otherwise.
    """

    def __init__(
        self,
        base,
        unnormalized_log_prob,
        kernel=None,
        *,
        num_sweeps: int = 1,
        step_size: float = 0.5,
    ):
        if not isinstance(base, torch.distributions.Distribution):
            raise TypeError(
                "base must be a torch.distributions.Distribution (e.g. "
                f"Bernoulli(probs).to_event(1)). Got {type(base).__name__} instead."
            )
        if len(base.event_shape) == 0:
            raise ValueError(
                "base must have a non-empty event_shape (the event is the whole state); wrap a "
                "factorial base with .to_event(1). Got event_shape () instead."
            )
        if not callable(unnormalized_log_prob):
            raise TypeError(
                "unnormalized_log_prob must be callable. "
                f"Got {type(unnormalized_log_prob).__name__} instead."
            )
        if kernel is not None and not callable(kernel):
            raise TypeError(f"kernel must be callable or None. Got {type(kernel).__name__}.")
        self.base = base
        self.target = unnormalized_log_prob
        self.num_sweeps = check_int(num_sweeps, "num_sweeps", low=1)
        self.step_size = check_float(step_size, "step_size", 0.0, None, "oo")
        self.binary = _is_boolean(base.support)
        if kernel is None and not self.binary and not _is_real(base.support):
            raise ValueError(
                "GeometricPath has default kernels for binary and real events only; pass "
                f"kernel=... for support {base.support}."
            )
        if kernel is not None:
            self.user_kernel = kernel
            if _takes_generator(kernel):  # the engine's chain-block generator reaches it
                self.transition = kernel
            else:
                self.transition = lambda x, beta, generator=None: kernel(x, beta)
        self.batch_shape = base.batch_shape
        self.event_shape = base.event_shape
        leaf = _base_leaf(base)
        self._leaf = leaf
        if isinstance(leaf, torch.distributions.Bernoulli):
            dtype = leaf.probs.dtype
        elif isinstance(leaf, torch.distributions.Normal):
            dtype = leaf.loc.dtype
        else:
            dtype = torch.get_default_dtype()
        self.log_z0 = torch.zeros(self.batch_shape, dtype=dtype)

    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from the base, shape ``(num_chains, *batch_shape, *event_shape)``."""
        shape = (num_chains, *self.batch_shape, *self.event_shape)
        leaf = self._leaf
        if isinstance(leaf, torch.distributions.Bernoulli):
            return bernoulli(leaf.probs.expand(shape), generator)
        if isinstance(leaf, torch.distributions.Normal):
            loc, scale = leaf.loc.expand(shape), leaf.scale.expand(shape)
            return loc + scale * normal_(torch.empty(shape, dtype=loc.dtype), generator)
        return self.base.sample((num_chains,))

    def log_density(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        r""":math:`(1-\beta)\log p_0(x) + \beta\log f_1(x)` (the zero-weight term is skipped)."""
        if beta == 0:
            return self.base.log_prob(x)
        if beta == 1:
            return self.target(x)
        return (1 - beta) * self.base.log_prob(x) + beta * self.target(x)

    def log_density_fn(self, x: torch.Tensor):
        r""":math:`\beta \mapsto \log f_\beta(x)` from one evaluation of each end."""
        lp0, lp1 = self.base.log_prob(x), self.target(x)
        return lambda beta: (1 - beta) * lp0 + beta * lp1

    def __repr__(self) -> str:
        return (
            f"GeometricPath(batch_shape={tuple(self.batch_shape)}, "
            f"event_shape={tuple(self.event_shape)}, binary={self.binary})"
        )


# --------------------------------------------------------------------------------------------
# Deep Boltzmann machines
# --------------------------------------------------------------------------------------------
def _binary_states(n, dtype):
    """All ``2**n`` binary vectors, bit ``i`` = unit ``i``, shape ``(2**n, n)``."""
    return ((torch.arange(2**n)[:, None] >> torch.arange(n)) & 1).to(dtype)


def _matmul_rows(x, w):
    """``x @ w`` with chains in front of the batch dims: (M, *batch, n) x (*batch, n, m)."""
    if w.dim() == 2:
        return x @ w
    return torch.matmul(x.unsqueeze(-2), w).squeeze(-2)


class DBMPath:
    r"""AIS path of a deep Boltzmann machine with the odd layers summed out (Salakhutdinov &
    Hinton 2009).

    A DBM has layers :math:`x_0 = v, x_1 = h^1, \dots, x_L` of binary units, weights
    :math:`W_l` of shape ``(n_{l-1}, n_l)`` and biases :math:`b_l`:

    .. math::

        E(x) = -\sum_{l=0}^{L} b_l^\top x_l - \sum_{l=1}^{L} x_{l-1}^\top W_l x_l .

    Given the even layers (:math:`v, h^2, \dots`) the odd layers are independent, so they are
    summed out analytically; the state of a chain is the concatenation of the even layers. The
    path scales every weight and hidden bias by :math:`\beta` and interpolates the visible bias
    from a base-rate model :math:`b^A` (as the RBM path of Salakhutdinov & Murray 2008):

    .. math::

        \log f_\beta(x_{\mathrm{even}}) = ((1-\beta) b^A + \beta b_0)^\top v
        + \sum_{l \text{ even} \ge 2} \beta\, b_l^\top x_l
        + \sum_{l \text{ odd}} \sum_j \operatorname{softplus}\big(\beta\,
          (b_l + x_{l-1}^\top W_l + W_{l+1} x_{l+1})_j\big),

    with :math:`\log Z_0 = \sum_i \operatorname{softplus}(b^A_i) + \log 2 \sum_{l\ge1} n_l`
    (at :math:`\beta = 0` every hidden unit is uniform). Block Gibbs alternates the odd layers
    given the even ones and the even layers given the odd ones (:meth:`sample_latent`,
    :meth:`sample_given_latent`). With one hidden layer this is :class:`RBMBaseRatePath`.

    Parameters
    ----------
    weights : sequence of torch.Tensor
        :math:`W_1, \dots, W_L`, shapes ``(*batch, n_{l-1}, n_l)``.
    biases : sequence of torch.Tensor
        :math:`b_0, \dots, b_L`, shapes ``(*batch, n_l)``.
    base_visible_bias : torch.Tensor, optional
        :math:`b^A`, shape ``(*batch, n_0)``; default zeros (use
        :func:`base_rate_visible_bias` on training data).

    Notes
    -----
    Cost per block-Gibbs step on :math:`M` chains: two products per weight matrix,
    :math:`4M\sum_l n_{l-1} n_l` flops. All tensors are detached (values, not gradients).
    """

    def __init__(self, weights, biases, base_visible_bias=None):
        weights, biases = list(weights), list(biases)
        if len(weights) < 1:
            raise ValueError("weights must hold at least one matrix W_1. Got none.")
        if len(biases) != len(weights) + 1:
            raise ValueError(
                f"biases must hold one vector per layer ({len(weights) + 1} for "
                f"{len(weights)} weight matrices). Got {len(biases)} instead."
            )
        for i, t in enumerate(weights + biases):
            if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
                name = f"weights[{i}]" if i < len(weights) else f"biases[{i - len(weights)}]"
                raise TypeError(f"{name} must be a floating-point torch.Tensor. Got {t!r:.60}.")
        sizes = [weights[0].shape[-2]] + [w.shape[-1] for w in weights]
        for i, w in enumerate(weights):
            if w.dim() < 2 or w.shape[-2] != sizes[i]:
                raise ValueError(
                    f"weights[{i}] must have shape (*batch, {sizes[i]}, n_{i + 1}) to chain with "
                    f"the layer below. Got shape {tuple(w.shape)} instead."
                )
        for i, b in enumerate(biases):
            if b.shape[-1:] != (sizes[i],):
                raise ValueError(
                    f"biases[{i}] must have shape (*batch, {sizes[i]}). Got shape "
                    f"{tuple(b.shape)} instead."
                )
        if base_visible_bias is None:
            base_visible_bias = torch.zeros_like(biases[0])
        if base_visible_bias.shape[-1:] != (sizes[0],):
            raise ValueError(
                f"base_visible_bias must have shape (*batch, {sizes[0]}). Got shape "
                f"{tuple(base_visible_bias.shape)} instead."
            )
        batch = torch.broadcast_shapes(
            *[w.shape[:-2] for w in weights],
            *[b.shape[:-1] for b in biases],
            base_visible_bias.shape[:-1],
        )
        self.batch_shape = batch
        self.sizes = sizes
        self.weights = [w.detach() for w in weights]
        self.biases = [b.detach().expand(*batch, n) for b, n in zip(biases, sizes)]
        self.base_visible_bias = base_visible_bias.detach().expand(*batch, sizes[0])
        self.even = list(range(0, len(sizes), 2))
        self.odd = list(range(1, len(sizes), 2))
        self.num_units = sum(sizes[i] for i in self.even)
        nh = sum(sizes[1:])
        self.log_z0 = F.softplus(self.base_visible_bias).sum(-1) + nh * math.log(2.0)

    # -- layer bookkeeping ---------------------------------------------------------------------
    def split(self, x):
        """The even layers ``{l: x_l}`` of a state ``(..., num_units)``."""
        out, start = {}, 0
        for layer in self.even:
            n = self.sizes[layer]
            out[layer] = x[..., start : start + n]
            start += n
        return out

    def _input(self, layers, lay, beta):
        """:math:`\\beta(b_l + x_{l-1} W_l + W_{l+1} x_{l+1})` for layer ``lay`` (hidden)."""
        a = self.biases[lay]
        if lay - 1 in layers:
            a = a + _matmul_rows(layers[lay - 1], self.weights[lay - 1])
        if lay + 1 in layers:
            a = a + _matmul_rows(layers[lay + 1], self.weights[lay].transpose(-1, -2))
        return beta * a

    def _visible_logits(self, layers, beta):
        a = beta * (self.biases[0] + _matmul_rows(layers[1], self.weights[0].transpose(-1, -2)))
        return a + (1 - beta) * self.base_visible_bias

    # -- the protocol --------------------------------------------------------------------------
    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from the base: visible ~ base rates, even hidden layers uniform."""
        parts = []
        for layer in self.even:
            if layer == 0:
                p = torch.sigmoid(self.base_visible_bias)
            else:
                p = torch.full_like(self.biases[layer], 0.5)
            parts.append(p.expand(num_chains, *p.shape))
        return bernoulli(torch.cat(parts, -1), generator)

    def log_density(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        r""":math:`\log f_\beta` of the even layers, odd layers summed out."""
        return self.log_density_fn(x)(beta)

    def log_density_fn(self, x: torch.Tensor):
        r""":math:`\beta \mapsto \log f_\beta(x)` reusing the layer products."""
        layers = self.split(x)
        pre = [self._input(layers, lay, 1.0) for lay in self.odd]
        lin_base = (layers[0] * self.base_visible_bias).sum(-1)
        lin = sum((layers[lay] * self.biases[lay]).sum(-1) for lay in self.even)

        def fn(beta):
            out = (1 - beta) * lin_base + beta * lin
            for a in pre:
                out = out + F.softplus(beta * a).sum(-1)
            return out

        return fn

    def sample_latent(self, x: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        """The odd layers given the even ones (concatenated), at ``beta``."""
        layers = self.split(x)
        parts = [torch.sigmoid(self._input(layers, lay, beta)) for lay in self.odd]
        return bernoulli(torch.cat(parts, -1), generator)

    def sample_given_latent(self, z: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        """The even layers given the odd ones, at ``beta``."""
        odd, start = {}, 0
        for layer in self.odd:
            n = self.sizes[layer]
            odd[layer] = z[..., start : start + n]
            start += n
        parts = []
        for layer in self.even:
            if layer == 0:
                parts.append(torch.sigmoid(self._visible_logits(odd, beta)))
            else:
                parts.append(torch.sigmoid(self._input(odd, layer, beta)))
        return bernoulli(torch.cat(parts, -1), generator)

    def __repr__(self) -> str:
        return f"DBMPath(sizes={self.sizes}, batch_shape={tuple(self.batch_shape)})"


# --------------------------------------------------------------------------------------------
# Parameter interpolation between two RBMs
# --------------------------------------------------------------------------------------------
class RBMInterpolationPath:
    r"""Interpolate the parameters of two binary RBMs: :math:`\theta_\beta = (1-\beta)\theta_0
    + \beta\theta_1`, for :math:`\log Z_1 - \log Z_0`.

    :math:`\log f_\beta(v) = b_\beta^\top v + \sum_j \operatorname{softplus}(c_{\beta,j} +
    (v^\top W_\beta)_j)`, the free energy of the RBM with interpolated weights and biases; every
    intermediate is an RBM, so block Gibbs applies. ``log_z0`` is 0: the estimate of
    :func:`~pyrogen.infer.annealing.ais` is then :math:`\log(Z_1/Z_0)` (add a known
    :math:`\log Z_0` for :math:`\log Z_1`). Useful to track log Z along training (Salakhutdinov
    & Murray 2008 §4) or to compare two models with a shared reference.

    Parameters
    ----------
    params0, params1 : tuple of torch.Tensor
        ``(weight, visible_bias, hidden_bias)`` of the two RBMs (same sizes; batch shapes
        broadcast).
    init_samples : torch.Tensor, optional
        Exact draws from RBM 0, shape ``(num_chains, *batch_shape, n_visible)``, used by
        :meth:`init` (which then requires ``num_chains`` to match). Default: exact draws by
        enumeration of RBM 0's hidden layer (at most :data:`MAX_ENUMERATED_HIDDEN` units).
    """

    #: largest hidden layer that :meth:`init` enumerates to draw exactly from RBM 0
    MAX_ENUMERATED_HIDDEN = 16

    def __init__(self, params0, params1, init_samples=None):
        p0, p1 = tuple(params0), tuple(params1)
        if len(p0) != 3 or len(p1) != 3:
            raise ValueError(
                "params0 and params1 must be (weight, visible_bias, hidden_bias) triples. Got "
                f"{len(p0)} and {len(p1)} tensors instead."
            )
        if p0[0].shape[-2:] != p1[0].shape[-2:]:
            raise ValueError(
                "the two RBMs must have the same sizes. Got weights of shape "
                f"{tuple(p0[0].shape)} and {tuple(p1[0].shape)} instead."
            )
        self.p0 = [t.detach() for t in p0]
        self.p1 = [t.detach() for t in p1]
        nv, nh = p0[0].shape[-2:]
        self.n_visible, self.n_hidden = nv, nh
        batch = torch.broadcast_shapes(
            *[p[0].shape[:-2] for p in (p0, p1)],
            *[p[1].shape[:-1] for p in (p0, p1)],
            *[p[2].shape[:-1] for p in (p0, p1)],
        )
        self.batch_shape = batch
        if init_samples is None and nh > self.MAX_ENUMERATED_HIDDEN:
            raise ValueError(
                f"init_samples must be given (exact draws from RBM 0) when n_hidden > "
                f"{self.MAX_ENUMERATED_HIDDEN}. Got n_hidden={nh} and no init_samples."
            )
        self.init_samples = init_samples
        self.log_z0 = torch.zeros(batch, dtype=p0[0].dtype)

    def params(self, beta: float):
        """``(W, b, c)`` of the intermediate RBM at ``beta``."""
        return [(1 - beta) * a + beta * b for a, b in zip(self.p0, self.p1)]

    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from RBM 0 (enumeration of its hidden layer, or ``init_samples``)."""
        if self.init_samples is not None:
            if self.init_samples.shape[0] != num_chains:
                raise ValueError(
                    f"init_samples has {self.init_samples.shape[0]} rows; num_chains must "
                    f"match. Got num_chains={num_chains}."
                )
            return self.init_samples.clone()
        W, b, c = self.p0
        nh, nb = self.n_hidden, len(self.batch_shape)
        states = _binary_states(nh, W.dtype)
        hs = states.reshape(-1, *[1] * nb, nh)
        # log p(h) = c.h + sum_i softplus(b_i + (W h)_i), (2^H, *batch)
        wh = _matmul_rows(hs, W.transpose(-1, -2))
        logits = (hs * c).sum(-1) + F.softplus(b + wh).sum(-1)
        logits = logits.expand(-1, *self.batch_shape)
        cdf = torch.softmax(logits.double(), 0).cumsum(0).movedim(0, -1)  # (*batch, 2^H)
        u = uniform_(torch.empty(num_chains, *self.batch_shape, 1, dtype=torch.float64), generator)
        idx = torch.searchsorted(cdf.expand(num_chains, *cdf.shape).contiguous(), u)
        idx = idx.squeeze(-1).clamp_max(2**nh - 1)
        h = states[idx]
        return self.sample_given_latent(h, 0.0, generator)

    def log_density(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        W, b, c = self.params(beta)
        return (x * b).sum(-1) + F.softplus(c + _matmul_rows(x, W)).sum(-1)

    def sample_latent(self, x, beta, generator=None):
        W, _, c = self.params(beta)
        return bernoulli(torch.sigmoid(c + _matmul_rows(x, W)), generator)

    def sample_given_latent(self, h, beta, generator=None):
        W, b, _ = self.params(beta)
        return bernoulli(torch.sigmoid(b + _matmul_rows(h, W.transpose(-1, -2))), generator)

    def __repr__(self) -> str:
        return (
            f"RBMInterpolationPath(n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
            f"batch_shape={tuple(self.batch_shape)})"
        )
