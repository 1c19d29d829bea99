r"""The classification RBM (book §20.8's discriminative RBM; Larochelle & Bengio 2008).

An RBM over binary inputs :math:`v \in \{0,1\}^D` **and** a one-hot class vector
:math:`e_y \in \{0,1\}^C`, both connected to the binary hidden layer :math:`h \in \{0,1\}^H`:

.. math::

    E(v, y, h) = -b^\top v - c^\top h - d^\top e_y - v^\top W h - e_y^\top U h .

The event of :class:`ClassRBM` is the concatenation ``[v, e_y]`` of length :math:`D + C` (the
last :math:`C` entries one-hot), so that it is one Pyro sample site and one
:class:`~pyrogen.distributions.EnergyBasedDistribution`: the normalizers of
:mod:`pyrogen.normalizers` (``Exact`` by enumerating the hidden layer, ``CD``/``PCD`` through the
block Gibbs :meth:`ClassRBM.transition`, which samples the class block from its softmax) give
:math:`\log p(v, y)` and its (approximate) gradient, so training it generatively is SVI on
``pyro.sample("xy", ClassRBM(..., normalizer=CD()), obs=xy)``.

The class posterior is exact and cheap (the hidden units are summed out, :math:`O(DH + CH)` per
example):

.. math::

    p(y \mid v) = \operatorname{softmax}_y\Bigl(d_y + \sum_{j=1}^H
    \operatorname{softplus}\bigl(c_j + U_{yj} + \textstyle\sum_i W_{ij} v_i\bigr)\Bigr).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pyro.distributions import constraints

from .._random import uniform_ as _uniform_
from .boltzmann import _as_tensor, _bernoulli, _check_no_nan, _resolve_validate_args
from .energy import EnergyBasedDistribution, chunked_logsumexp

__all__ = ["ClassRBM", "ClassRBMBaseRatePath", "class_logits"]


def _categorical(logits, generator=None):
    """One-hot draws from ``softmax(logits)`` by inversion of one uniform per row (the
    generator may be a ``torch.Generator``, a chain-keyed RNG or None)."""
    p = torch.softmax(logits, -1).cumsum(-1)
    u = torch.empty_like(p[..., :1])
    _uniform_(u, generator)
    y = (p < u * p[..., -1:]).sum(-1).clamp_(max=logits.shape[-1] - 1)
    return F.one_hot(y, logits.shape[-1]).to(logits.dtype)


def class_logits(v, weight, hidden_bias, class_weight, class_bias) -> torch.Tensor:
    r"""Unnormalized :math:`\log p(y \mid v)` of a classification RBM, shape ``(..., C)``.

    .. math::

        \ell_y(v) = d_y + \sum_j \operatorname{softplus}\bigl(c_j + U_{yj} + (v^\top W)_j\bigr)
        = -F(v, y) + b^\top v,

    so that ``log_softmax(class_logits(...))`` is the exact :math:`\log p(y \mid v)`.

    Parameters
    ----------
    v : torch.Tensor, shape ``(..., D)``
    weight : torch.Tensor, shape ``(D, H)``
    hidden_bias : torch.Tensor, shape ``(H,)``
    class_weight : torch.Tensor, shape ``(C, H)``
    class_bias : torch.Tensor, shape ``(C,)``

    Notes
    -----
    Cost :math:`O(DH + CH)` per example; memory ``(..., C, H)``.
    """
    pre = hidden_bias + v @ weight  # (..., H)
    return class_bias + F.softplus(pre.unsqueeze(-2) + class_weight).sum(-1)


class ClassRBM(EnergyBasedDistribution):
    r"""Joint distribution :math:`p(v, y)` of a classification RBM over ``[v, e_y]``.

    .. math::

        p(v, y) = \frac{e^{-F(v, y)}}{Z}, \qquad
        F(v, y) = -b^\top v - d_y - \sum_{j=1}^H \operatorname{softplus}\bigl(c_j + U_{yj}
        + (v^\top W)_j\bigr),

        \log Z = \operatorname{logsumexp}_{h \in \{0,1\}^H}\Bigl[c^\top h
        + \operatorname{logsumexp}_y (d_y + U_{y:} h) + \sum_i \operatorname{softplus}(b_i +
        W_{i:} h)\Bigr]

    (Larochelle & Bengio 2008 [1]_; book §20.8). The event is ``[v, e_y]``, shape
    ``(D + C,)``, whose last ``C`` entries are one-hot. ``Exact()`` enumerates the :math:`2^H`
    hidden states (small ``H`` only); ``CD(k)`` / ``PCD(...)`` train it by block Gibbs,
    :math:`h \mid v, y` factorial Bernoulli, then :math:`v \mid h` factorial Bernoulli and
    :math:`y \mid h` categorical, :math:`p(y \mid h) = \operatorname{softmax}(d + U h)`.

    Parameters
    ----------
    weight : torch.Tensor, shape ``(D, H)``
        :math:`W`, visible-hidden weights.
    visible_bias : torch.Tensor, shape ``(D,)``
        :math:`b`.
    hidden_bias : torch.Tensor, shape ``(H,)``
        :math:`c`.
    class_weight : torch.Tensor, shape ``(C, H)``
        :math:`U`, class-hidden weights.
    class_bias : torch.Tensor, shape ``(C,)``
        :math:`d`.
    normalizer : Normalizer, optional
        Default ``Exact()`` (enumerates the hidden layer).
    mcmc_steps : int
        Block Gibbs steps of :meth:`sample` (default 1000; sampling is always by MCMC).
    validate_args : bool, optional
        Keyword-only; checks values are binary with a one-hot class block.

    References
    ----------
    .. [1] H. Larochelle, Y. Bengio, "Classification using discriminative restricted Boltzmann
       machines", ICML 2008.
    """

    arg_constraints = {
        "weight": constraints.real,
        "visible_bias": constraints.real,
        "hidden_bias": constraints.real,
        "class_weight": constraints.real,
        "class_bias": constraints.real,
    }
    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, weight, visible_bias, hidden_bias, class_weight, class_bias, *,
                 normalizer=None, mcmc_steps: int = 1000, validate_args=None):
        weight = _as_tensor(weight, "weight")
        if weight.dim() != 2:
            raise ValueError(
                f"weight must have shape (n_visible, n_hidden). Got shape {tuple(weight.shape)} "
                "instead."
            )
        D, H = weight.shape
        params = {"visible_bias": (D,), "hidden_bias": (H,)}
        self.weight = weight
        for name, shape in params.items():
            t = _as_tensor(locals()[name], name, weight)
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}. Got {tuple(t.shape)} instead.")
            setattr(self, name, t)
        U = _as_tensor(class_weight, "class_weight", weight)
        if U.dim() != 2 or U.shape[1] != H or U.shape[0] < 2:
            raise ValueError(
                f"class_weight must have shape (n_classes >= 2, n_hidden={H}). Got shape "
                f"{tuple(U.shape)} instead."
            )
        d = _as_tensor(class_bias, "class_bias", weight)
        if tuple(d.shape) != (U.shape[0],):
            raise ValueError(
                f"class_bias must have shape ({U.shape[0]},). Got {tuple(d.shape)} instead."
            )
        self.class_weight, self.class_bias = U, d
        validate = _resolve_validate_args(validate_args)
        super().__init__((), (D + U.shape[0],), normalizer=normalizer, mcmc_steps=mcmc_steps,
                         validate_args=False)
        if validate:
            self._validate_args = True
            _check_no_nan(self, tuple(self.arg_constraints))

    # ------------------------------------------------------------------ sizes
    @property
    def n_visible(self) -> int:
        return int(self.weight.shape[0])

    @property
    def n_hidden(self) -> int:
        return int(self.weight.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.class_weight.shape[0])

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def device(self):
        return self.weight.device

    @property
    def enumeration_units(self):
        return self.n_hidden

    def split(self, value: torch.Tensor):
        """``(v, e_y)``: the first ``n_visible`` and the last ``n_classes`` entries."""
        return value[..., : self.n_visible], value[..., self.n_visible :]

    def _validate_sample(self, value):
        super()._validate_sample(value)
        _, e = self.split(value)
        if not bool((e.sum(-1) == 1).all()):
            raise ValueError(
                f"the last n_classes={self.n_classes} entries of value must be one-hot (the "
                "class). Got a class block that does not sum to 1 instead."
            )

    # ------------------------------------------------------------------ densities
    def class_logits(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`d_y + \sum_j \operatorname{softplus}(c_j + U_{yj} + (v^\top W)_j)`, shape
        ``(..., C)``; its log-softmax is the exact :math:`\log p(y \mid v)`."""
        return class_logits(v.to(self.dtype), self.weight, self.hidden_bias,
                            self.class_weight, self.class_bias)

    def energy(self, value: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r""":math:`E(v, y, h) = -b^\top v - c^\top h - d^\top e_y - v^\top W h - e_y^\top U h`."""
        v, e = self.split(value.to(self.dtype))
        h = h.to(self.dtype)
        return -(v @ self.visible_bias + h @ self.hidden_bias + e @ self.class_bias
                 + ((v @ self.weight + e @ self.class_weight) * h).sum(-1))

    def free_energy(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v, y) = -\log \sum_h e^{-E(v, y, h)}`, shape ``value.shape[:-1]``."""
        v, e = self.split(value.to(self.dtype))
        pre = self.hidden_bias + v @ self.weight + e @ self.class_weight
        return -(v @ self.visible_bias + e @ self.class_bias + F.softplus(pre).sum(-1))

    def unnormalized_log_prob(self, value):
        return -self.free_energy(value)

    def enumerate_log_z(self, chunk_size: int = 2**14):
        W, b, c, U, d = (self.weight, self.visible_bias, self.hidden_bias, self.class_weight,
                         self.class_bias)

        def fn(h):
            return (h @ c + torch.logsumexp(d + h @ U.T, -1)
                    + F.softplus(b + h @ W.T).sum(-1))

        return chunked_logsumexp(fn, self.n_hidden, chunk_size, dtype=self.dtype,
                                 device=self.device)

    # ------------------------------------------------------------------ sampling
    def init_chains(self, num_chains: int) -> torch.Tensor:
        """Independent fair-coin visible units and a uniform class."""
        with torch.no_grad():
            v = torch.bernoulli(torch.full((num_chains, self.n_visible), 0.5, dtype=self.dtype,
                                           device=self.device))
            y = torch.randint(self.n_classes, (num_chains,), device=self.device)
            return torch.cat([v, F.one_hot(y, self.n_classes).to(self.dtype)], -1)

    def transition(self, x, num_steps: int = 1):
        """``num_steps`` block Gibbs steps ``(v, y) -> h -> (v, y)``; ``v`` and ``y`` are
        independent given ``h`` (factorial Bernoulli and a softmax)."""
        path = self.annealing_path()
        with torch.no_grad():
            x = x.to(self.dtype)
            for _ in range(num_steps):
                x = path.transition(x, 1.0)
            return x

    def annealing_path(self, base=None, data=None):
        r"""The base-rate AIS path (Salakhutdinov & Murray 2008) extended to the class block:
        :class:`ClassRBMBaseRatePath` with base visible logits ``base`` or the smoothed base
        rates of ``data`` (rows ``[v, e_y]``), else zero."""
        D = self.n_visible
        logits = torch.zeros(D + self.n_classes, dtype=self.dtype, device=self.device)
        if base is not None:
            logits = torch.as_tensor(base, dtype=self.dtype, device=self.device)
        elif data is not None:
            x = torch.as_tensor(data, dtype=self.dtype, device=self.device)
            x = x.reshape(-1, D + self.n_classes)
            m = (x.sum(0) + 1.0) / (x.shape[0] + 2.0)  # smoothed rates
            logits = torch.cat([torch.log(m[:D]) - torch.log1p(-m[:D]), torch.log(m[D:])])
        return ClassRBMBaseRatePath(self.weight, self.visible_bias, self.hidden_bias,
                                    self.class_weight, self.class_bias, logits)


class ClassRBMBaseRatePath:
    r"""AIS path from a factorial base to a :class:`ClassRBM` (the base-rate path of
    Salakhutdinov & Murray 2008 with a categorical class block).

    .. math::

        f_\beta(v, y) = \exp\bigl(((1-\beta) b^A + \beta b)^\top v + (1-\beta) d^A_y
        + \beta d_y\bigr) \prod_{j=1}^H \bigl(1 + e^{\beta(c_j + U_{yj} + (v^\top W)_j)}\bigr),

    :math:`Z_0 = 2^H \prod_i (1 + e^{b^A_i}) \sum_y e^{d^A_y}`. Transition at :math:`\beta`:
    :math:`h \sim \sigma(\beta(c + U_{y:} + v^\top W))`, then
    :math:`v \sim \sigma((1-\beta) b^A + \beta(b + W h))` and
    :math:`y \sim \operatorname{softmax}((1-\beta) d^A + \beta(d + U h))`.

    Parameters
    ----------
    weight, visible_bias, hidden_bias, class_weight, class_bias : torch.Tensor
        The :class:`ClassRBM`'s parameters (detached here).
    base_logits : torch.Tensor, shape ``(D + C,)``
        :math:`b^A` (Bernoulli logits of ``v``) then :math:`d^A` (class log-weights).
    """

    def __init__(self, weight, visible_bias, hidden_bias, class_weight, class_bias,
                 base_logits):
        self.weight, self.visible_bias, self.hidden_bias = (
            t.detach() for t in (weight, visible_bias, hidden_bias))
        self.class_weight, self.class_bias = class_weight.detach(), class_bias.detach()
        D, H = self.weight.shape
        C = self.class_weight.shape[0]
        if tuple(base_logits.shape) != (D + C,):
            raise ValueError(
                f"base_logits must have shape ({D + C},). Got {tuple(base_logits.shape)} instead."
            )
        self.n_visible, self.n_hidden, self.n_classes = D, H, C
        self.base_visible = base_logits[:D].detach()
        self.base_class = base_logits[D:].detach()
        self.log_z0 = (F.softplus(self.base_visible).sum() + torch.logsumexp(self.base_class, 0)
                       + H * math.log(2.0))

    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from the factorial base, shape ``(num_chains, D + C)``."""
        p = torch.sigmoid(self.base_visible).expand(num_chains, self.n_visible).clone()
        v = _uniform_(torch.empty_like(p), generator).lt_(p).to(p.dtype)
        e = _categorical(self.base_class.expand(num_chains, self.n_classes), generator)
        return torch.cat([v, e], -1)

    def log_density(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        r""":math:`\log f_\beta(v, y)`, shape ``x.shape[:-1]``."""
        v, e = x[..., : self.n_visible], x[..., self.n_visible :]
        a = self.hidden_bias + v @ self.weight + e @ self.class_weight
        return (v @ ((1 - beta) * self.base_visible + beta * self.visible_bias)
                + e @ ((1 - beta) * self.base_class + beta * self.class_bias)
                + F.softplus(beta * a).sum(-1))

    def transition(self, x: torch.Tensor, beta: float, generator=None) -> torch.Tensor:
        """One block Gibbs sweep ``(v, y) -> h -> (v, y)`` at ``beta``."""
        v, e = x[..., : self.n_visible], x[..., self.n_visible :]
        a = self.hidden_bias + v @ self.weight + e @ self.class_weight
        h = _bernoulli(beta * a, generator)
        v = _bernoulli((1 - beta) * self.base_visible
                       + beta * (self.visible_bias + h @ self.weight.T), generator)
        e = _categorical((1 - beta) * self.base_class
                         + beta * (self.class_bias + h @ self.class_weight.T), generator)
        return torch.cat([v, e], -1)
