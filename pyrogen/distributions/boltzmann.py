r"""Boltzmann machines (book §20.1), restricted Boltzmann machines (§20.2) and
Gaussian-Bernoulli RBMs (§20.5.1) as Pyro distributions over the visible vector.

=========================  =====================================================================
distribution               unnormalized log-density :math:`-F(x)`
=========================  =====================================================================
``BoltzmannMachine``       :math:`-E(x) = x^\top U x + b^\top x` (eq. 20.2), :math:`U`
                           symmetric with zero diagonal
``RBM``                    :math:`-F(v) = b^\top v + \sum_j \operatorname{softplus}(c_j +
                           v^\top W_{:j})`, from :math:`E(v,h) = -b^\top v - c^\top h -
                           v^\top W h` (eq. 20.5) with the hidden units summed out
``GaussianBernoulliRBM``   :math:`-F(v) = -\sum_i \frac{(v_i-b_i)^2}{2\sigma_i^2} + \sum_j
                           \operatorname{softplus}(c_j + \sum_i v_i W_{ij} / \sigma_i^2)`
=========================  =====================================================================

The energies follow the book [1]_; the RBM annealing path is the base-rate path of [2]_.
All three are :class:`~pyrogen.distributions.EnergyBasedDistribution`\ s: ``log_prob`` uses the
``normalizer`` passed at construction (``Exact()`` by default) and plugs into ``pyro.sample``.

References
----------
.. [1] I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016, ch. 20.
.. [2] R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks",
   ICML 2008.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints

from .._random import fast_uniform_ as _fast_uniform_
from .._random import normal_ as _normal_
from .._random import uniform_ as _uniform_
from .energy import (
    EXACT_SAMPLE_MAX_UNITS,
    BinaryEnergyBasedDistribution,
    EnergyBasedDistribution,
    broadcast_shapes,
    chunked_logsumexp,
    enumerate_binary_states,
)
from .log_normalizer import Normalizer

__all__ = ["BoltzmannMachine", "RBM", "GaussianBernoulliRBM"]


def _as_tensor(x, name, like=None):
    """A parameter as a floating tensor: tensors are taken as they are but must be floating (an
    integer weight would fail later, inside softplus) and of ``like``'s dtype (no silent
    promotion); numbers and lists become tensors of ``like``'s (or the default) dtype."""
    if isinstance(x, torch.Tensor):
        if not x.dtype.is_floating_point:
            raise TypeError(
                f"{name} must be a floating-point tensor. Got dtype {x.dtype} instead; convert "
                f"it with {name}.to(torch.get_default_dtype()) (or .double())."
            )
        if like is not None and x.dtype != like.dtype:
            raise TypeError(
                f"{name} must have the dtype of weight, {like.dtype}. Got {x.dtype} instead."
            )
        return x
    try:
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        return torch.as_tensor(x, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"{name} must be a tensor. Got {type(x).__name__} instead.") from e


def _vW(v, W):
    """``v @ W`` with broadcasting: (..., nv), (..., nv, nh) -> (..., nh)."""
    if W.dim() == 2:
        return v @ W
    return torch.matmul(v.unsqueeze(-2), W).squeeze(-2)


def _Wh(W, h):
    """``W @ h``: (..., nv, nh), (..., nh) -> (..., nv)."""
    if W.dim() == 2:
        return h @ W.mT
    return torch.matmul(W, h.unsqueeze(-1)).squeeze(-1)


def _bernoulli(logits, generator=None):
    return _bernoulli_probs_(torch.sigmoid(logits), generator=generator)


def _bernoulli_probs_(p, out=None, generator=None, fast=False):
    """Bernoulli draws with probabilities ``p`` as 0./1. in ``p``'s dtype: ``U < p`` with
    ``U ~ Uniform[0, 1)`` drawn in place (into ``out`` when given, else a new tensor; about 3x
    faster on CPU than ``torch.bernoulli``). ``fast`` (global RNG only): ``U`` from
    :func:`pyrogen._random.fast_uniform_` (numpy PCG64 seeded from torch's global state)."""
    u = torch.empty_like(p) if out is None else out
    if fast and generator is None:
        _fast_uniform_(u)
    else:
        _uniform_(u, generator)  # a ChainRNG, a torch.Generator or None
    return u.lt_(p)


def _resolve_validate_args(validate_args) -> bool:
    """The ``validate_args`` a distribution ends up with (``None``: the global default, which
    ``pyro.enable_validation`` sets)."""
    if validate_args is None:
        return bool(torch.distributions.Distribution._validate_args)
    return bool(validate_args)


def _check_no_nan(d, names):
    """The ``constraints.real`` check of ``names``, by one reduction per parameter.

    ``Distribution.__init__`` checks ``real`` elementwise (``value == value`` then ``all``),
    which for a 784 x 500 weight matrix costs more than half a millisecond at every construction
    (i.e. every SVI step); a NaN anywhere makes the sum NaN, so one sum finds the same NaNs (it
    also rejects a matrix holding both ``+inf`` and ``-inf``)."""
    for name in names:
        t = getattr(d, name).detach()
        if bool(torch.isnan(t.sum())):
            raise ValueError(
                f"Expected parameter {name} (Tensor of shape {tuple(t.shape)}) of distribution "
                f"{type(d).__name__} to satisfy the constraint Real(), but found NaN (or both "
                "+inf and -inf) values."
            )


def _check_value_dtype(d, value) -> None:
    """``log_prob``'s value: binary (bool/int) values are cast exactly; a floating value must
    have the distribution's dtype (a float64 value to a float32 RBM is refused, not cast: the
    models' rule, because a silent cast changes log-probabilities)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"value must be a torch.Tensor. Got {type(value).__name__} instead.")
    if value.dtype.is_floating_point and value.dtype != d.dtype:
        raise TypeError(
            f"value must have the {type(d).__name__}'s dtype {d.dtype}. Got {value.dtype} "
            f"instead; convert the value with value.to({d.dtype}) or the parameters to "
            f"{value.dtype}."
        )
    if value.dtype.is_complex:
        raise TypeError(f"value must be real-valued. Got dtype {value.dtype} instead.")


def _check_last(t, name, size, what):
    if t.dim() < 1 or t.shape[-1] != size:
        raise ValueError(
            f"{name} must have last dimension {size} ({what}). Got shape {tuple(t.shape)} instead."
        )


class BoltzmannMachine(BinaryEnergyBasedDistribution):
    r"""Fully visible binary Boltzmann machine (book eq. 20.1-20.2).

    .. math::

        P(x) = \frac{e^{-E(x)}}{Z}, \qquad E(x) = -x^\top U x - b^\top x,
        \qquad x \in \{0, 1\}^n,

    with :math:`U` symmetric and zero on the diagonal (checked when ``validate_args``). Each
    pair :math:`i \ne j` therefore contributes :math:`2 U_{ij} x_i x_j`, and the Gibbs
    conditional is :math:`P(x_i = 1 \mid x_{-i}) = \sigma(b_i + 2 \sum_j U_{ij} x_j)`.

    Parameters
    ----------
    weight : torch.Tensor, shape ``(*batch, n, n)``
        Couplings :math:`U`.
    bias : torch.Tensor, shape ``(*batch, n)``
        Biases :math:`b`.
    normalizer : Normalizer, optional
        Default ``Exact()`` (all :math:`2^n` states; up to :math:`n = 20`).
    mcmc_steps, mcmc_init :
        Gibbs sweeps and initial state of :meth:`sample` when :math:`n > 16`
        (see :class:`~pyrogen.distributions.EnergyBasedDistribution`).
    validate_args : bool, optional
        Keyword-only.

    Notes
    -----
    Cost: :math:`O(n^2)` per energy; a Gibbs sweep is :math:`n` sequential updates of
    :math:`O(n)` each; ``Exact`` costs :math:`O(2^n n^2)`. Sampling is exact (enumeration)
    for :math:`n \le 16`.
    """

    arg_constraints = {"weight": constraints.real, "bias": constraints.real}

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor,
        *,
        normalizer: Normalizer | None = None,
        mcmc_steps: int = 1000,
        mcmc_init: torch.Tensor | None = None,
        validate_args=None,
    ):
        weight = _as_tensor(weight, "weight")
        bias = _as_tensor(bias, "bias", weight)
        if weight.dim() < 2 or weight.shape[-1] != weight.shape[-2]:
            raise ValueError(
                f"weight must be a square matrix U of shape (*batch, n, n). Got shape "
                f"{tuple(weight.shape)} instead."
            )
        n = weight.shape[-1]
        _check_last(bias, "bias", n, "the number of units, as weight")
        pb = broadcast_shapes(weight.shape[:-2], bias.shape[:-1])
        self.weight = weight.expand(*pb, n, n)
        self.bias = bias.expand(*pb, n)
        super().__init__(
            pb,
            (n,),
            normalizer=normalizer,
            mcmc_steps=mcmc_steps,
            mcmc_init=mcmc_init,
            validate_args=validate_args,
        )
        if self._validate_args:
            w = self.weight.detach()
            if not torch.allclose(w, w.mT, rtol=1e-5, atol=1e-6):
                err = float((w - w.mT).abs().max())
                raise ValueError(
                    "weight must be symmetric (U = U^T, book eq. 20.2). Got a matrix with "
                    f"max |U - U^T| = {err:.3g} instead; use (A + A.T) / 2."
                )
            diag = w.diagonal(dim1=-2, dim2=-1)
            if (diag != 0).any():
                raise ValueError(
                    "weight must have a zero diagonal (book eq. 20.2). Got max |U_ii| = "
                    f"{float(diag.abs().max()):.3g} instead; fold diagonal terms into bias."
                )

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def device(self):
        return self.weight.device

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """:math:`-E(x) - \\log Z`; a floating ``value`` must have this distribution's dtype."""
        _check_value_dtype(self, value)
        return super().log_prob(value)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`E(x) = -x^\top U x - b^\top x`, shape ``broadcast(x.shape[:-1], batch)``."""
        return -self.unnormalized_log_prob(x)

    def unnormalized_log_prob(self, value):
        x = value.to(self.dtype)
        ux = torch.matmul(self.weight, x.unsqueeze(-1)).squeeze(-1)
        return (x * ux).sum(-1) + (x * self.bias).sum(-1)

    def conditional_logits(self, x: torch.Tensor, i: int) -> torch.Tensor:
        r"""Logit of :math:`P(x_i = 1 \mid x_{-i}) = \sigma(b_i + 2 \sum_j U_{ij} x_j)`."""
        return self.bias[..., i] + 2.0 * (x * self.weight[..., i, :]).sum(-1)

    def transition(self, x, num_steps: int = 1, generator=None):
        """``num_steps`` sequential Gibbs sweeps over the units (in order)."""
        return _bm_gibbs(self.weight, self.bias, x, num_steps, generator)

    def annealing_path(self, base=None, data=None):
        r"""Tempered Boltzmann machines :math:`U_\beta = \beta U`,
        :math:`b_\beta = (1-\beta) a + \beta b` (the geometric path from the factorial base
        :math:`\operatorname{Bernoulli}(\sigma(a))`, which is itself a Boltzmann machine), with
        Gibbs sweeps as transitions. ``base``: logits :math:`a` or a Bernoulli; default: the
        base rates of ``data`` (uniform without data)."""
        logits = _base_logits(self, base, data)
        return BoltzmannMachinePath(self.weight.detach(), self.bias.detach(), logits)


def _bm_gibbs(U, b, x, num_steps, generator=None, reverse=False):
    with torch.no_grad():
        x = x.to(U.dtype).clone()
        n = x.shape[-1]
        order = range(n - 1, -1, -1) if reverse else range(n)
        for _ in range(num_steps):
            for i in order:
                logit = b[..., i] + 2.0 * (x * U[..., i, :]).sum(-1)
                x[..., i] = _bernoulli(logit, generator)
        return x


def _base_logits(d, base, data):
    if base is None:
        if data is not None:
            from .paths import base_rate_visible_bias

            data = torch.as_tensor(data, dtype=d.dtype, device=d.device)
            logits = base_rate_visible_bias(data.reshape(-1, *d.event_shape))
            return logits.expand(*d.param_batch_shape, *d.event_shape)
        return d.base_distribution().base_dist.logits.detach()
    if isinstance(base, torch.Tensor):
        return base.to(d.dtype).expand(*d.param_batch_shape, *d.event_shape)
    if isinstance(base, dist.Independent):
        base = base.base_dist
    if isinstance(base, dist.Bernoulli):
        return base.logits.detach().expand(*d.param_batch_shape, *d.event_shape)
    raise TypeError(
        "base must be None, a tensor of logits or a factorial Bernoulli distribution. Got "
        f"{type(base).__name__} instead."
    )


class BoltzmannMachinePath:
    r"""AIS path of tempered Boltzmann machines (implements the ``AnnealingPath`` protocol).

    :math:`\log f_\beta(x) = \beta\, x^\top U x + ((1-\beta) a + \beta b)^\top x`, i.e. the
    geometric path :math:`p_0^{1-\beta}\tilde p^{\beta}` from :math:`p_0 = \prod_i
    \operatorname{Bernoulli}(\sigma(a_i))`; :math:`\log Z_0 = \sum_i \operatorname{softplus}
    (a_i)`. Transitions are Gibbs sweeps of the intermediate machine.
    """

    def __init__(self, weight, bias, base_logits):
        self.weight, self.bias, self.base_logits = weight, bias, base_logits
        self.log_z0 = F.softplus(base_logits).sum(-1)

    def _params(self, beta):
        beta = float(beta)
        return beta * self.weight, (1 - beta) * self.base_logits + beta * self.bias

    def init(self, num_chains, generator=None):
        p = torch.sigmoid(self.base_logits).expand(num_chains, *self.base_logits.shape)
        return _bernoulli_probs_(p, generator=generator)

    def log_density(self, x, beta):
        U, b = self._params(beta)
        return (x * torch.matmul(U, x.unsqueeze(-1)).squeeze(-1)).sum(-1) + (x * b).sum(-1)

    #: binary events (the engine's single-site kernels apply)
    binary = True

    def conditional_logits(self, x, i, beta):
        r"""Logit of :math:`x_i = 1` given the rest at ``beta``:
        :math:`b_{\beta,i} + 2\beta\sum_j U_{ij} x_j` (used by the engine's
        ``SingleSiteGibbs``)."""
        U, b = self._params(beta)
        return b[..., i] + 2.0 * (x * U[..., i, :]).sum(-1)

    def transition(self, x, beta, generator=None):
        U, b = self._params(beta)
        return _bm_gibbs(U, b, x, 1, generator)

    def reverse_transition(self, x, beta, generator=None):
        """The time reversal of :meth:`transition` (sweep in reverse order), for RAISE."""
        U, b = self._params(beta)
        return _bm_gibbs(U, b, x, 1, generator, reverse=True)


class RBM(BinaryEnergyBasedDistribution):
    r"""Restricted Boltzmann machine over the visible units (book §20.2).

    .. math::

        E(v, h) = -b^\top v - c^\top h - v^\top W h, \qquad
        P(v) = \frac{e^{-F(v)}}{Z}, \quad
        F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j}),

    :math:`v \in \{0,1\}^{n_v}`, :math:`h \in \{0,1\}^{n_h}`, ``weight`` :math:`W` of shape
    ``(n_visible, n_hidden)`` (eq. 20.5). The conditionals factorize (eqs. 20.10-20.12):
    :math:`P(h_j = 1 \mid v) = \sigma(c_j + v^\top W_{:j})`, :math:`P(v_i = 1 \mid h) =
    \sigma(b_i + W_{i:} h)`, which gives block Gibbs sampling.

    Parameters
    ----------
    weight : torch.Tensor, shape ``(*batch, n_visible, n_hidden)``
    visible_bias : torch.Tensor, shape ``(*batch, n_visible)``
    hidden_bias : torch.Tensor, shape ``(*batch, n_hidden)``
    normalizer : Normalizer, optional
        Default ``Exact()``: enumerates the smaller layer (up to 20 units).
    mcmc_steps, mcmc_init :
        Block Gibbs steps and initial visible state of :meth:`sample` when both layers have
        more than 16 units (exact sampling otherwise).
    validate_args : bool, optional
        Keyword-only.

    Notes
    -----
    Cost per example: :math:`O(n_v n_h)` for the free energy and for one block Gibbs step;
    ``Exact`` costs :math:`O(2^{\min(n_v,n_h)} n_v n_h)`.
    """

    arg_constraints = {
        "weight": constraints.real,
        "visible_bias": constraints.real,
        "hidden_bias": constraints.real,
    }

    def __init__(
        self,
        weight: torch.Tensor,
        visible_bias: torch.Tensor,
        hidden_bias: torch.Tensor,
        *,
        normalizer: Normalizer | None = None,
        mcmc_steps: int = 1000,
        mcmc_init: torch.Tensor | None = None,
        validate_args=None,
    ):
        weight = _as_tensor(weight, "weight")
        visible_bias = _as_tensor(visible_bias, "visible_bias", weight)
        hidden_bias = _as_tensor(hidden_bias, "hidden_bias", weight)
        if weight.dim() < 2:
            raise ValueError(
                "weight must have shape (*batch, n_visible, n_hidden). Got shape "
                f"{tuple(weight.shape)} instead."
            )
        nv, nh = weight.shape[-2:]
        _check_last(visible_bias, "visible_bias", nv, "n_visible = weight.shape[-2]")
        _check_last(hidden_bias, "hidden_bias", nh, "n_hidden = weight.shape[-1]")
        pb = broadcast_shapes(weight.shape[:-2], visible_bias.shape[:-1], hidden_bias.shape[:-1])
        self.weight = weight if weight.shape[:-2] == pb else weight.expand(*pb, nv, nh)
        self.visible_bias = visible_bias
        self.hidden_bias = hidden_bias
        validate = _resolve_validate_args(validate_args)
        super().__init__(
            pb,
            (nv,),
            normalizer=normalizer,
            mcmc_steps=mcmc_steps,
            mcmc_init=mcmc_init,
            validate_args=False,
        )
        if validate:
            self._validate_args = True
            _check_no_nan(self, ("weight", "visible_bias", "hidden_bias"))

    @property
    def n_visible(self) -> int:
        return int(self.weight.shape[-2])

    @property
    def n_hidden(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def device(self):
        return self.weight.device

    @property
    def enumeration_units(self):
        return min(self.n_visible, self.n_hidden)

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r"""Joint energy :math:`E(v,h) = -b^\top v - c^\top h - v^\top W h` (eq. 20.5)."""
        v, h = v.to(self.dtype), h.to(self.dtype)
        return (
            -(v * self.visible_bias).sum(-1)
            - (h * self.hidden_bias).sum(-1)
            - (_vW(v, self.weight) * h).sum(-1)
        )

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v) = -b^\top v - \sum_j \operatorname{softplus}(c_j + v^\top W_{:j})`."""
        v = v.to(self.dtype)
        return -(v * self.visible_bias).sum(-1) - F.softplus(
            self.hidden_bias + _vW(v, self.weight)
        ).sum(-1)

    def unnormalized_log_prob(self, value):
        return -self.free_energy(value)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`-F(v) - \log Z` with :math:`\log Z` from the normalizer.

        With a :class:`~pyrogen.normalizers.PCD` or :class:`~pyrogen.normalizers.CD` normalizer
        (``fused=True``, the default), an unbatched RBM and a ``(n, n_visible)`` value, the
        CD/PCD step is fused (:func:`_fused_contrastive_log_prob`): the same value and the same
        distribution of the gradient as the generic path, with one forward and one backward
        product for data and chains together (five products per CD-1 step, six per PCD-1 step,
        five with ``PCD(reuse_hidden=True)``). ``last_log_z`` then holds the (detached) value
        of :math:`\log Z` used.

        A bool or integer ``value`` is cast exactly; a floating one must have the RBM's dtype
        (``TypeError`` naming both otherwise: a float64 value is not silently rounded to
        float32).
        """
        _check_value_dtype(self, value)
        if _fusable(self, value):
            if self._validate_args:
                self._validate_sample(value)
            out = _fused_contrastive_log_prob(self, value)
            return out.expand(broadcast_shapes(value.shape[:-1], self.batch_shape))
        return super().log_prob(value)

    def hidden_given_visible(self, v: torch.Tensor):
        r""":math:`P(h \mid v) = \prod_j \operatorname{Bernoulli}(\sigma(c_j + v^\top W_{:j}))`
        (eq. 20.10-20.11), a Pyro distribution with event shape ``(n_hidden,)``."""
        return dist.Bernoulli(
            logits=self.hidden_bias + _vW(v.to(self.dtype), self.weight)
        ).to_event(1)

    def visible_given_hidden(self, h: torch.Tensor):
        r""":math:`P(v \mid h) = \prod_i \operatorname{Bernoulli}(\sigma(b_i + W_{i:} h))`
        (eq. 20.12), a Pyro distribution with event shape ``(n_visible,)``."""
        return dist.Bernoulli(
            logits=self.visible_bias + _Wh(self.weight, h.to(self.dtype))
        ).to_event(1)

    def transition(self, x, num_steps: int = 1, generator=None):
        """``num_steps`` block Gibbs steps :math:`v \\to h \\to v` (eqs. 20.10-20.12)."""
        return _rbm_gibbs(self.weight, self.visible_bias, self.hidden_bias, x, num_steps, generator)

    def enumerate_log_z(self, chunk_size: int = 2**14):
        nv, nh = self.n_visible, self.n_hidden
        pb = len(self.param_batch_shape)
        W, b, c = self.weight, self.visible_bias, self.hidden_bias
        if nh <= nv:

            def fn(h):
                h = h.reshape(h.shape[0], *[1] * pb, nh)
                return (h * c).sum(-1) + F.softplus(b + _Wh(W, h)).sum(-1)

            units = nh
        else:

            def fn(v):
                return self.unnormalized_log_prob(v.reshape(v.shape[0], *[1] * pb, nv))

            units = nv
        out = chunked_logsumexp(fn, units, chunk_size, dtype=self.dtype, device=self.device)
        return out.expand(self.param_batch_shape)

    def _sample_exact(self, sample_shape):
        nv, nh = self.n_visible, self.n_hidden
        if min(nv, nh) > EXACT_SAMPLE_MAX_UNITS:
            return None
        pb = len(self.param_batch_shape)
        if nv <= nh:
            states = enumerate_binary_states(nv, dtype=self.dtype, device=self.device)
            logits = self.unnormalized_log_prob(states.reshape(-1, *[1] * pb, nv))
        else:
            states = enumerate_binary_states(nh, dtype=self.dtype, device=self.device)
            hs = states.reshape(-1, *[1] * pb, nh)
            logits = (hs * self.hidden_bias).sum(-1) + F.softplus(
                self.visible_bias + _Wh(self.weight, hs)
            ).sum(-1)
        logits = logits.expand(states.shape[0], *self.param_batch_shape).movedim(0, -1)
        idx = torch.distributions.Categorical(logits=logits).expand(self.batch_shape)
        drawn = states[idx.sample(sample_shape)]
        if nv <= nh:
            return drawn
        return _bernoulli(self.visible_bias + _Wh(self.weight, drawn))

    def annealing_path(self, base=None, data=None):
        r"""The base-rate path of Salakhutdinov & Murray (2008):
        :class:`pyrogen.infer.ais.RBMBaseRatePath` with base visible biases ``base`` (logits or
        a factorial Bernoulli) or fitted to ``data`` (smoothed base rates), else zero."""
        from .paths import RBMBaseRatePath

        logits = _base_logits(self, base, data)
        return RBMBaseRatePath(
            self.weight.detach(),
            self.visible_bias.detach().expand(*self.param_batch_shape, self.n_visible),
            self.hidden_bias.detach().expand(*self.param_batch_shape, self.n_hidden),
            base_visible_bias=logits,
        )


def _rbm_gibbs(W, b, c, v, num_steps, generator=None):
    with torch.no_grad():
        v = v.to(W.dtype)
        for _ in range(num_steps):
            h = _bernoulli(c + _vW(v, W), generator)
            v = _bernoulli(b + _Wh(W, h), generator)
        return v


# --------------------------------------------------------------------------------------------
# The fused CD-k / PCD-k step (RBM.log_prob with a PCD or CD normalizer)
# --------------------------------------------------------------------------------------------
#: ``True``: the fused CD/PCD step draws its Bernoulli variables through
#: :func:`pyrogen._random.fast_uniform_` (numpy PCG64 seeded from torch's global RNG) instead
#: of torch's ``uniform_``. Off by default: measured no faster inside ``fit`` at 784-500 on the
#: 2-core VM (``runs/rbm_speed/ab_draws.py``: CD-1 0.940 vs 0.961 s, PCD-1 1.134 vs 1.081 s
#: per 100 steps, IQRs 0.07-0.37 s), and it would change the random numbers of every seeded fit.
FAST_DRAWS = False


class _ContrastiveLogProb(torch.autograd.Function):
    r"""``log p(x_i)`` of the PCD/CD surrogate with one fused backward product.

    Inputs: parameters ``W, b, c`` (only routed for the gradient), ``vv`` = the ``n`` data rows
    followed by the ``K`` negative (chain) rows, shape ``(n + K, n_v)``; ``sig`` =
    :math:`\sigma(vv\, W + c)`, shape ``(n + K, n_h)``; ``data_term`` = :math:`-F(x_i)` (values,
    shape ``(n,)``) and the (detached) value of :math:`\log Z`. The output is
    ``data_term - log_z`` and its gradient is that of

    .. math::

        -F(x_i) - \Big[\log Z + s - \operatorname{stop\_grad}(s)\Big],
        \qquad s = \frac1K \sum_k -F(v'_k),

    i.e. for upstream gradients :math:`g_i`, with coefficients :math:`\gamma = (g_1, \dots,
    g_n, -\bar g, \dots, -\bar g)`, :math:`\bar g = \sum_i g_i / K`:
    :math:`\nabla_W = vv^\top (\gamma \odot \sigma)`, :math:`\nabla_b = \gamma^\top vv`,
    :math:`\nabla_c = \gamma^\top \sigma` -- one :math:`n_v \times (n+K) \times n_h` product
    instead of two, and no product at all in the forward pass.
    """

    @staticmethod
    def forward(ctx, W, b, c, vv, sig, data_term, log_z):
        ctx.save_for_backward(vv, sig)
        ctx.n = data_term.shape[0]
        return data_term - log_z

    @staticmethod
    def backward(ctx, g):
        vv, sig = ctx.saved_tensors
        n = ctx.n
        k = vv.shape[0] - n
        coef = torch.empty(vv.shape[0], dtype=sig.dtype, device=sig.device)
        coef[:n] = g
        coef[n:] = -g.sum() / k
        gp = sig * coef[:, None]
        gW = gb = gc = None
        if ctx.needs_input_grad[0]:
            gW = vv.T @ gp
        if ctx.needs_input_grad[1]:
            gb = coef @ vv
        if ctx.needs_input_grad[2]:
            gc = gp.sum(0)
        return gW, gb, gc, None, None, None, None


def _fusable(d, value):
    """Whether ``d.log_prob(value)`` can take the fused CD/PCD path: a single (unbatched) RBM,
    a PCD/CD normalizer with ``fused=True`` and a ``(n, n_visible)`` floating value. The
    normalizer is recognized by its ``contrastive`` attribute (``"pcd"`` or ``"cd"``), not by
    importing :mod:`pyrogen.normalizers` (which sits above the distributions)."""
    norm = d.normalizer
    return (
        getattr(norm, "contrastive", None) in ("pcd", "cd")
        and norm.fused
        and d.weight.dim() == 2
        and d.visible_bias.dim() == 1
        and d.hidden_bias.dim() == 1
        and isinstance(value, torch.Tensor)
        and value.dim() == 2
        and value.shape[0] > 0
        and value.shape[-1] == d.n_visible
        and not value.requires_grad
    )


def _fused_contrastive_log_prob(d, value):
    r"""``d.log_prob(value)`` for an RBM with a PCD-k or CD-k normalizer, fused.

    A plain CD-1 / PCD-1 step costs six :math:`B \times n_v \times n_h` products through the
    generic path (free energy of the data and its backward; the Gibbs step's two products; the
    free energy of the chains and its backward). Here:

    * the data and the chain rows share one forward product ``[x; v'] W`` and one backward
      product (:class:`_ContrastiveLogProb`);
    * CD: the Gibbs step's :math:`x W` is that same data pre-activation (computed first, reused);
    * PCD with ``reuse_hidden=True``: the chain state is the pair :math:`(v', h')`;
      :math:`h' \sim P(h \mid v')` is drawn from the pre-activation of the joint forward
      product, so the next call starts at :math:`v \sim P(v \mid h')` and needs only the
      :math:`h W^\top` product. With fixed parameters this is exactly the same Markov chain;
      during training the :math:`h` half-step uses the parameters of the previous call (as in
      scikit-learn's ``BernoulliRBM``). By default (``reuse_hidden=False``) the :math:`h`
      half-step is redone with the current parameters (one more product: the generic chain).

    Five products per CD-1 step and per PCD-1 step with ``reuse_hidden`` (the minimum), six for
    default PCD-1; Bernoulli draws by in-place uniforms; no value of :math:`F` computed for the
    chains (only its gradient is used).
    """
    from .log_normalizer import LogZEstimate

    norm = d.normalizer
    W, b, c = d.weight, d.visible_bias, d.hidden_bias
    n = value.shape[0]
    fast = FAST_DRAWS
    with torch.no_grad():
        Wd, bd, cd = W.detach(), b.detach(), c.detach()
        x = value.detach().to(Wd.dtype)
        if norm.contrastive == "pcd":
            chains, hidden = norm._chain_state(d)
            if hidden is None:  # the h half-step with the current parameters (one product)
                hidden = _bernoulli_probs_(torch.addmm(cd, chains, Wd).sigmoid_(), fast=fast)
            k = chains.shape[0]
            vv = torch.empty(n + k, d.n_visible, dtype=Wd.dtype, device=Wd.device)
            vv[:n] = x
            neg = vv[n:]
            for step in range(norm.num_steps):
                if step:
                    hidden = _bernoulli_probs_(torch.addmm(cd, neg, Wd).sigmoid_(), fast=fast)
                _bernoulli_probs_(torch.addmm(bd, hidden, Wd.T).sigmoid_(), out=neg, fast=fast)
            pre = torch.addmm(cd, vv, Wd)
        else:  # CD-k: one chain per data row
            k = n
            vv = torch.empty(2 * n, d.n_visible, dtype=Wd.dtype, device=Wd.device)
            vv[:n] = x
            neg = vv[n:]
            pre = torch.empty(2 * n, d.n_hidden, dtype=Wd.dtype, device=Wd.device)
            torch.addmm(cd, x, Wd, out=pre[:n])
            data_term = torch.addmv(F.softplus(pre[:n]).sum(-1), x, bd)
            p = pre[:n].sigmoid_()  # P(h | x): the first half-step and the gradient share it
            for step in range(norm.num_steps):
                if step:
                    p = torch.addmm(cd, neg, Wd).sigmoid_()
                hidden = _bernoulli_probs_(p, fast=fast)
                _bernoulli_probs_(torch.addmm(bd, hidden, Wd.T).sigmoid_(), out=neg, fast=fast)
            torch.addmm(cd, neg, Wd, out=pre[n:])
            pre[n:].sigmoid_()
        if norm.contrastive == "pcd":
            data_term = torch.addmv(F.softplus(pre[:n]).sum(-1), x, bd)
            pre.sigmoid_()
        sig = pre
        if norm.contrastive == "pcd":
            h_next = _bernoulli_probs_(sig[n:], fast=fast) if norm.reuse_hidden else None
            norm._set_chain_state(neg, h_next)
        v = norm._value_for(d, torch.Size(()))
        norm.calls += 1
    log_z = v.log_z.detach().to(Wd.dtype)
    out = _ContrastiveLogProb.apply(W, b, c, vv, sig, data_term, log_z)
    d.last_log_z = LogZEstimate(
        log_z=log_z,
        kind=v.kind,
        stderr=v.stderr,
        ess=v.ess,
        log_weights=v.log_weights,
        stale=v.stale,
        info={**v.info, "fused": True, "negative_samples": k},
    )
    return out


class GaussianBernoulliRBM(EnergyBasedDistribution):
    r"""Gaussian-Bernoulli RBM: real visible, binary hidden units (book §20.5.1).

    .. math::

        E(v, h) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2}
                  - \sum_{ij} \frac{v_i}{\sigma_i^2} W_{ij} h_j - c^\top h,

    the precision formulation of eq. 20.42 with :math:`\beta = \sigma^{-2}` and a visible bias,
    so that :math:`p(v \mid h) = \mathcal N(v;\, b + W h,\, \operatorname{diag}\sigma^2)`
    (eq. 20.38) and :math:`P(h_j = 1 \mid v) = \sigma(c_j + \sum_i v_i W_{ij}/\sigma_i^2)`.
    Summing out :math:`h`,

    .. math::

        -F(v) = -\sum_i \frac{(v_i-b_i)^2}{2\sigma_i^2}
                + \sum_j \operatorname{softplus}\Big(c_j + \sum_i \frac{v_i W_{ij}}
                {\sigma_i^2}\Big),

    which is smooth in :math:`v`: ``log_prob`` is differentiable in the value, so NUTS/HMC can
    sample :math:`v` (e.g. a denoising model with this prior). Integrating out :math:`v`
    analytically for each :math:`h` (with :math:`m = W h`),

    .. math::

        \log Z = \operatorname{logsumexp}_h \Big[c^\top h + \sum_i
        \frac{b_i m_i + m_i^2/2}{\sigma_i^2}\Big] + \sum_i \tfrac12 \log(2\pi\sigma_i^2),

    which ``Exact`` enumerates over the hidden layer (up to 20 hidden units).

    Parameters
    ----------
    weight : torch.Tensor, shape ``(*batch, n_visible, n_hidden)``
    visible_bias : torch.Tensor, shape ``(*batch, n_visible)``
    hidden_bias : torch.Tensor, shape ``(*batch, n_hidden)``
    sigma : torch.Tensor or float, shape ``(*batch, n_visible)`` or broadcastable
        Standard deviations of the visible units (positive).
    normalizer, mcmc_steps, mcmc_init, validate_args :
        As for :class:`RBM`; sampling is exact when ``n_hidden <= 16`` (draw :math:`h` from its
        marginal, then :math:`v \mid h`), block Gibbs otherwise.
    """

    arg_constraints = {
        "weight": constraints.real,
        "visible_bias": constraints.real,
        "hidden_bias": constraints.real,
        "sigma": constraints.positive,
    }
    support = constraints.independent(constraints.real, 1)

    def __init__(
        self,
        weight: torch.Tensor,
        visible_bias: torch.Tensor,
        hidden_bias: torch.Tensor,
        sigma: torch.Tensor | float = 1.0,
        *,
        normalizer: Normalizer | None = None,
        mcmc_steps: int = 1000,
        mcmc_init: torch.Tensor | None = None,
        validate_args=None,
    ):
        weight = _as_tensor(weight, "weight")
        visible_bias = _as_tensor(visible_bias, "visible_bias", weight)
        hidden_bias = _as_tensor(hidden_bias, "hidden_bias", weight)
        sigma = _as_tensor(sigma, "sigma", weight)
        if weight.dim() < 2:
            raise ValueError(
                "weight must have shape (*batch, n_visible, n_hidden). Got shape "
                f"{tuple(weight.shape)} instead."
            )
        nv, nh = weight.shape[-2:]
        _check_last(visible_bias, "visible_bias", nv, "n_visible = weight.shape[-2]")
        _check_last(hidden_bias, "hidden_bias", nh, "n_hidden = weight.shape[-1]")
        if sigma.dim() == 0:
            sigma = sigma.expand(nv)
        _check_last(sigma, "sigma", nv, "n_visible = weight.shape[-2]")
        pb = broadcast_shapes(
            weight.shape[:-2], visible_bias.shape[:-1], hidden_bias.shape[:-1], sigma.shape[:-1]
        )
        self.weight = weight if weight.shape[:-2] == pb else weight.expand(*pb, nv, nh)
        self.visible_bias = visible_bias
        self.hidden_bias = hidden_bias
        self.sigma = sigma
        super().__init__(
            pb,
            (nv,),
            normalizer=normalizer,
            mcmc_steps=mcmc_steps,
            mcmc_init=mcmc_init,
            validate_args=validate_args,
        )

    @property
    def n_visible(self) -> int:
        return int(self.weight.shape[-2])

    @property
    def n_hidden(self) -> int:
        return int(self.weight.shape[-1])

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def device(self):
        return self.weight.device

    @property
    def enumeration_units(self):
        return self.n_hidden

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """:math:`-F(v) - \\log Z`; ``value`` must have this distribution's dtype."""
        _check_value_dtype(self, value)
        return super().log_prob(value)

    def energy(self, v, h):
        r"""Joint energy :math:`E(v, h)`."""
        v, h = v.to(self.dtype), h.to(self.dtype)
        var = self.sigma**2
        return (
            ((v - self.visible_bias) ** 2 / (2 * var)).sum(-1)
            - (_vW(v / var, self.weight) * h).sum(-1)
            - (h * self.hidden_bias).sum(-1)
        )

    def free_energy(self, v):
        r""":math:`F(v) = \sum_i (v_i-b_i)^2/(2\sigma_i^2) - \sum_j \operatorname{softplus}
        (c_j + \sum_i v_i W_{ij}/\sigma_i^2)`."""
        v = v.to(self.dtype)
        var = self.sigma**2
        return ((v - self.visible_bias) ** 2 / (2 * var)).sum(-1) - F.softplus(
            self.hidden_bias + _vW(v / var, self.weight)
        ).sum(-1)

    def unnormalized_log_prob(self, value):
        return -self.free_energy(value)

    def hidden_given_visible(self, v):
        r""":math:`P(h \mid v) = \prod_j \operatorname{Bernoulli}(\sigma(c_j + \sum_i v_i
        W_{ij}/\sigma_i^2))`, event shape ``(n_hidden,)``."""
        v = v.to(self.dtype)
        return dist.Bernoulli(
            logits=self.hidden_bias + _vW(v / self.sigma**2, self.weight)
        ).to_event(1)

    def visible_given_hidden(self, h):
        r""":math:`p(v \mid h) = \mathcal N(b + W h, \operatorname{diag}\sigma^2)`, event shape
        ``(n_visible,)``."""
        h = h.to(self.dtype)
        mean = self.visible_bias + _Wh(self.weight, h)
        return dist.Normal(mean, self.sigma.expand(mean.shape)).to_event(1)

    def transition(self, x, num_steps: int = 1, generator=None):
        """``num_steps`` block Gibbs steps :math:`v \\to h \\to v`."""
        return _gbrbm_gibbs(
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.sigma,
            x,
            num_steps,
            1.0,
            generator,
        )

    def _hidden_marginal_logits(self, h):
        m = _Wh(self.weight, h)
        var = self.sigma**2
        return (h * self.hidden_bias).sum(-1) + ((self.visible_bias * m + 0.5 * m**2) / var).sum(-1)

    def enumerate_log_z(self, chunk_size: int = 2**14):
        nh = self.n_hidden
        pb = len(self.param_batch_shape)

        def fn(h):
            return self._hidden_marginal_logits(h.reshape(h.shape[0], *[1] * pb, nh))

        out = chunked_logsumexp(fn, nh, chunk_size, dtype=self.dtype, device=self.device)
        const = (0.5 * torch.log(2 * math.pi * self.sigma**2)).sum(-1)
        return (out + const).expand(self.param_batch_shape)

    def _sample_exact(self, sample_shape):
        nh = self.n_hidden
        if nh > EXACT_SAMPLE_MAX_UNITS:
            return None
        pb = len(self.param_batch_shape)
        states = enumerate_binary_states(nh, dtype=self.dtype, device=self.device)
        logits = self._hidden_marginal_logits(states.reshape(-1, *[1] * pb, nh))
        logits = logits.expand(states.shape[0], *self.param_batch_shape).movedim(0, -1)
        idx = torch.distributions.Categorical(logits=logits).expand(self.batch_shape)
        h = states[idx.sample(sample_shape)]
        return self.visible_given_hidden(h).sample()

    def base_distribution(self, data=None):
        """Factorial Normal :math:`\\mathcal N(b, \\sigma^2)` (the :math:`\\beta = 0` end of
        the annealing path)."""
        shape = (*self.param_batch_shape, self.n_visible)
        return dist.Normal(self.visible_bias.expand(shape), self.sigma.expand(shape)).to_event(1)

    def annealing_path(self, base=None, data=None):
        r"""Path of GB-RBMs with weights :math:`\beta W` (the analogue of the base-rate path):
        at :math:`\beta = 0` visible and hidden units are independent,
        :math:`\log Z_0 = \sum_i \frac12\log(2\pi\sigma_i^2) + \sum_j \operatorname{softplus}
        (c_j)`. ``base`` and ``data`` are not used."""
        shape = (*self.param_batch_shape, self.n_visible)
        return GaussianBernoulliRBMPath(
            self.weight.detach(),
            self.visible_bias.detach().expand(shape),
            self.hidden_bias.detach().expand(*self.param_batch_shape, self.n_hidden),
            self.sigma.detach().expand(shape),
        )


def _gbrbm_gibbs(W, b, c, sigma, v, num_steps, beta=1.0, generator=None):
    with torch.no_grad():
        v = v.to(W.dtype)
        var = sigma**2
        for _ in range(num_steps):
            h = _bernoulli(c + beta * _vW(v / var, W), generator)
            mean = b + beta * _Wh(W, h)
            v = mean + sigma * _normal_(torch.empty_like(mean), generator)
        return v


class GaussianBernoulliRBMPath:
    r"""AIS path of GB-RBMs with scaled weights :math:`\beta W` (``AnnealingPath`` protocol).

    :math:`\log f_\beta(v) = -\sum_i \frac{(v_i-b_i)^2}{2\sigma_i^2} + \sum_j
    \operatorname{softplus}(c_j + \beta \sum_i v_i W_{ij}/\sigma_i^2)`.
    """

    def __init__(self, weight, visible_bias, hidden_bias, sigma):
        self.weight, self.visible_bias, self.hidden_bias, self.sigma = (
            weight,
            visible_bias,
            hidden_bias,
            sigma,
        )
        self.log_z0 = (0.5 * torch.log(2 * math.pi * sigma**2)).sum(-1) + F.softplus(
            hidden_bias
        ).sum(-1)

    def init(self, num_chains, generator=None):
        shape = (num_chains, *self.visible_bias.shape)
        noise = torch.empty(shape, dtype=self.weight.dtype, device=self.weight.device)
        return self.visible_bias + self.sigma * _normal_(noise, generator)

    def log_density(self, v, beta):
        var = self.sigma**2
        return -((v - self.visible_bias) ** 2 / (2 * var)).sum(-1) + F.softplus(
            self.hidden_bias + float(beta) * _vW(v / var, self.weight)
        ).sum(-1)

    def transition(self, v, beta, generator=None):
        return _gbrbm_gibbs(
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.sigma,
            v,
            1,
            float(beta),
            generator,
        )
