r"""Deep Boltzmann machines (book §20.4) as a Pyro distribution over the visible vector.

A DBM has binary layers :math:`x_0 = v, x_1 = h^{(1)}, \dots, x_L = h^{(L)}` (:math:`L \ge 2`),
weights :math:`W_l` of shape ``(n_{l-1}, n_l)`` and biases :math:`b_l` (eqs. 20.24-20.25
generalised to :math:`L` layers):

.. math::

    E(x) = -\sum_{l=0}^{L} b_l^\top x_l - \sum_{l=1}^{L} x_{l-1}^\top W_l x_l,
    \qquad P(v) = \frac{1}{Z} \sum_{h} e^{-E(v, h)}.

The layers are bipartite (odd / even): given the even layers the odd layers are independent
Bernoullis (eqs. 20.26-20.27) and vice versa, which gives

* exact :math:`\log Z` (:class:`~pyrogen.normalizers.Exact`) by summing one parity out
  analytically (a softplus per unit) and enumerating the other, smaller one;
* block Gibbs sampling over odd/even layers (§20.4.1, :meth:`DeepBoltzmannMachine.gibbs_step`);
* the annealing path of Salakhutdinov & Hinton (2009)
  (:class:`~pyrogen.distributions.paths.DBMPath`, odd layers summed out) for
  :class:`~pyrogen.normalizers.AIS`;
* persistent chains over all layers for :class:`~pyrogen.normalizers.PCD` (Algorithm 20.1's
  negative phase).

``log_prob(v)`` also needs :math:`\log \tilde p(v) = \log\sum_h e^{-E(v,h)}`: exact by
enumeration of the smaller hidden parity when it has at most ``marginal_max_units`` units,
otherwise the mean-field lower bound :math:`-E(v,\mu) + \sum_l H(\mu_l)` (eqs. 20.29-20.34);
:attr:`DeepBoltzmannMachine.last_marginal_kind` says which.

References
----------
1. R. Salakhutdinov and G. Hinton. Deep Boltzmann machines. *AISTATS* 2009.
2. I. Goodfellow, Y. Bengio and A. Courville. *Deep Learning*, MIT Press 2016, §20.4.
"""

from __future__ import annotations

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints

from .._random import bernoulli
from .._validation import check_choice, check_int
from .energy import (
    EXACT_SAMPLE_MAX_UNITS,
    BinaryEnergyBasedDistribution,
    broadcast_shapes,
    chunked_logsumexp,
    enumerate_binary_states,
)
from .log_normalizer import LogZEstimate, Normalizer

__all__ = [
    "DeepBoltzmannMachine",
    "DBMJoint",
    "MARGINAL_KINDS",
    "check_offsets",
    "center_dbm_parameters",
    "uncenter_dbm_parameters",
    "centered_dbm_energy",
]

#: kinds of :math:`\log\tilde p(v)` (``DeepBoltzmannMachine.last_marginal_kind``)
MARGINAL_KINDS = ("exact", "mean_field_lower_bound")

#: default mean-field fixed-point iterations
DEFAULT_MEAN_FIELD_ITERS = 10


def _check_params(weights, biases):
    if isinstance(weights, torch.Tensor) or not hasattr(weights, "__len__"):
        raise TypeError(
            "weights must be a list [W_1, ..., W_L] of 2-D tensors. Got "
            f"{type(weights).__name__} instead."
        )
    if isinstance(biases, torch.Tensor) or not hasattr(biases, "__len__"):
        raise TypeError(
            "biases must be a list [b_0, ..., b_L] of 1-D tensors. Got "
            f"{type(biases).__name__} instead."
        )
    weights, biases = list(weights), list(biases)
    if len(weights) < 2:
        raise ValueError(
            "weights must hold at least two matrices (a DBM has depth >= 2; for one hidden "
            f"layer use pyrogen.distributions.RBM). Got {len(weights)} instead."
        )
    if len(biases) != len(weights) + 1:
        raise ValueError(
            f"biases must hold one vector per layer: {len(weights) + 1} for {len(weights)} "
            f"weight matrices. Got {len(biases)} instead."
        )
    for i, t in enumerate(weights):
        if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point or t.dim() != 2:
            raise TypeError(
                f"weights[{i}] must be a 2-D floating-point tensor of shape (n_{i}, n_{i + 1}). "
                f"Got {getattr(t, 'dtype', type(t).__name__)} of shape "
                f"{tuple(getattr(t, 'shape', ()))} instead."
            )
    dtype = weights[0].dtype
    sizes = [int(weights[0].shape[0])] + [int(w.shape[1]) for w in weights]
    for i, w in enumerate(weights):
        if w.dtype != dtype:
            raise TypeError(f"weights[{i}] must have dtype {dtype}. Got {w.dtype} instead.")
        if w.shape[0] != sizes[i]:
            raise ValueError(
                f"layer sizes do not chain: weights[{i}] must have shape ({sizes[i]}, n_{i + 1}) "
                f"(its rows = the columns of weights[{i - 1}]). Got shape {tuple(w.shape)} instead."
            )
    for i, b in enumerate(biases):
        if not isinstance(b, torch.Tensor) or b.dtype != dtype:
            raise TypeError(
                f"biases[{i}] must be a tensor of dtype {dtype}. Got "
                f"{getattr(b, 'dtype', type(b).__name__)} instead."
            )
        if tuple(b.shape) != (sizes[i],):
            raise ValueError(
                f"biases[{i}] must have shape ({sizes[i]},) (layer {i} has {sizes[i]} units). "
                f"Got shape {tuple(b.shape)} instead."
            )
    return weights, biases, sizes


def _entropy(mu):
    r""":math:`\sum_j H(\mu_j)` of factorial Bernoullis, shape ``mu.shape[:-1]``."""
    return -(torch.xlogy(mu, mu) + torch.xlogy(1 - mu, 1 - mu)).sum(-1)  # 0 log 0 = 0


# ---------------------------------------------------------------------------- centering
def check_offsets(offsets, sizes, dtype=None, name: str = "offsets") -> list:
    r"""Validate the offsets :math:`[\mu_0, \dots, \mu_L]` of a centered DBM.

    Parameters
    ----------
    offsets : sequence of torch.Tensor
        One 1-D tensor per layer (visible first), ``offsets[l]`` of shape ``(n_l,)``, entries
        in :math:`[0, 1]` (an offset is a mean of binary units).
    sizes : sequence of int
        :math:`[n_0, \dots, n_L]`.
    dtype : torch.dtype, optional
        The parameters' dtype, which the offsets must have.
    name : str
        The argument's name in error messages.

    Returns
    -------
    list of torch.Tensor

    Raises
    ------
    TypeError
        Not a sequence of floating-point tensors (of ``dtype``).
    ValueError
        Wrong number of layers, a wrong shape, or a value outside :math:`[0, 1]` (or NaN).
    """
    if isinstance(offsets, torch.Tensor) or not hasattr(offsets, "__len__"):
        raise TypeError(
            f"{name} must be a list [mu_0, ..., mu_L] of 1-D tensors, one per layer. Got "
            f"{type(offsets).__name__} instead."
        )
    offsets = list(offsets)
    if len(offsets) != len(sizes):
        raise ValueError(
            f"{name} must hold one vector per layer: {len(sizes)} (visible + {len(sizes) - 1} "
            f"hidden). Got {len(offsets)} instead."
        )
    for i, (m, n) in enumerate(zip(offsets, sizes)):
        if not isinstance(m, torch.Tensor) or not m.dtype.is_floating_point:
            raise TypeError(
                f"{name}[{i}] must be a floating-point tensor of shape ({n},). Got "
                f"{getattr(m, 'dtype', type(m).__name__)} instead."
            )
        if dtype is not None and m.dtype != dtype:
            raise TypeError(f"{name}[{i}] must have dtype {dtype}. Got {m.dtype} instead.")
        if tuple(m.shape) != (n,):
            raise ValueError(
                f"{name}[{i}] must have shape ({n},) (layer {i} has {n} units). Got shape "
                f"{tuple(m.shape)} instead."
            )
        if not bool(((m >= 0) & (m <= 1)).all()):
            raise ValueError(
                f"{name}[{i}] must lie in [0, 1] (an offset is a mean of binary units). Got "
                f"values in [{float(m.min()):.4g}, {float(m.max()):.4g}] (or NaN)."
            )
    return offsets


def _offset_inputs(weights, offsets) -> list:
    r""":math:`W_{l+1}\mu_{l+1} + W_l^\top\mu_{l-1}` per layer :math:`l` (the input the
    offsets of the neighbouring layers give layer :math:`l`)."""
    L = len(weights)
    out = []
    for lay in range(L + 1):
        a = 0.0
        if lay >= 1:
            a = a + offsets[lay - 1] @ weights[lay - 1]
        if lay < L:
            a = a + weights[lay] @ offsets[lay + 1]
        out.append(a)
    return out


def uncenter_dbm_parameters(weights, biases, offsets):
    r"""The ordinary DBM equivalent to a centered one (Montavon & Müller 2012).

    The centered energy

    .. math::

        E_c(x) = -\sum_{l=0}^{L} (x_l - \mu_l)^\top \tilde b_l
        - \sum_{l=1}^{L} (x_{l-1} - \mu_{l-1})^\top W_l (x_l - \mu_l)

    equals :math:`E(x) + C` for the ordinary energy :math:`E` with the same weights and biases

    .. math::

        b_l = \tilde b_l - W_{l+1}\mu_{l+1} - W_l^\top\mu_{l-1}, \qquad
        C = \sum_l \mu_l^\top\tilde b_l - \sum_l \mu_{l-1}^\top W_l \mu_l,

    a constant of the state; so both define the same :math:`p(x)` and
    :math:`\log Z_c = \log Z - C`. Differentiable (autograd through this map turns the
    ordinary gradient into the centered one).

    Parameters
    ----------
    weights : list of torch.Tensor
        :math:`[W_1, \dots, W_L]`, ``W_l`` of shape ``(n_{l-1}, n_l)``.
    biases : list of torch.Tensor
        Centered biases :math:`[\tilde b_0, \dots, \tilde b_L]`, ``(n_l,)``.
    offsets : list of torch.Tensor
        :math:`[\mu_0, \dots, \mu_L]`, ``(n_l,)``, in :math:`[0, 1]`.

    Returns
    -------
    weights, biases : list of torch.Tensor
        The ordinary parameters (the weights are the same tensors).
    constant : torch.Tensor
        :math:`C`, a scalar.
    """
    weights, biases, sizes = _check_params(weights, biases)
    offsets = check_offsets(offsets, sizes, weights[0].dtype)
    inputs = _offset_inputs(weights, offsets)
    plain = [b - a for b, a in zip(biases, inputs)]
    const = sum((m * b).sum() for m, b in zip(offsets, biases))
    const = const - sum(offsets[i] @ w @ offsets[i + 1] for i, w in enumerate(weights))
    return list(weights), plain, const


def center_dbm_parameters(weights, biases, offsets):
    r"""The centered parameters of an ordinary DBM for given offsets: the inverse of
    :func:`uncenter_dbm_parameters`, :math:`\tilde b_l = b_l + W_{l+1}\mu_{l+1} +
    W_l^\top\mu_{l-1}` (weights unchanged).

    Returns
    -------
    weights, biases : list of torch.Tensor
    """
    weights, biases, sizes = _check_params(weights, biases)
    offsets = check_offsets(offsets, sizes, weights[0].dtype)
    inputs = _offset_inputs(weights, offsets)
    return list(weights), [b + a for b, a in zip(biases, inputs)]


def centered_dbm_energy(layers, weights, biases, offsets) -> torch.Tensor:
    r"""The centered energy :math:`E_c(x)` (see :func:`uncenter_dbm_parameters`) of a list of
    layer tensors :math:`[x_0, \dots, x_L]` (leading dimensions broadcast), shape the
    broadcast batch shape. Written directly from its definition (not through the conversion),
    so that the two can be checked against each other."""
    weights, biases, sizes = _check_params(weights, biases)
    offsets = check_offsets(offsets, sizes, weights[0].dtype)
    layers = list(layers)
    if len(layers) != len(sizes):
        raise ValueError(
            f"layers must hold {len(sizes)} tensors (v, h1, ..., h{len(sizes) - 1}). Got "
            f"{len(layers)} instead."
        )
    c = [x - m for x, m in zip(layers, offsets)]
    out = 0.0
    for lay, x in enumerate(c):
        out = out - (x * biases[lay]).sum(-1)
    for lay in range(1, len(sizes)):
        out = out - ((c[lay - 1] @ weights[lay - 1]) * c[lay]).sum(-1)
    return out


class DeepBoltzmannMachine(BinaryEnergyBasedDistribution):
    r"""Deep Boltzmann machine over the visible units (book §20.4, Salakhutdinov & Hinton 2009).

    .. math::

        E(v, h^{(1)}, \dots, h^{(L)}) = -\sum_{l=0}^{L} b_l^\top x_l
        - \sum_{l=1}^{L} x_{l-1}^\top W_l x_l, \qquad x_0 = v,\ x_l = h^{(l)},

    event = the visible vector :math:`v \in \{0,1\}^{n_0}`,
    :math:`\log p(v) = \log\tilde p(v) - \log Z` with :math:`\tilde p(v) = \sum_h e^{-E(v,h)}`.

    Parameters
    ----------
    weights : list of torch.Tensor
        :math:`[W_1, \dots, W_L]`, :math:`L \ge 2`, ``W_l`` of shape ``(n_{l-1}, n_l)``.
    biases : list of torch.Tensor
        :math:`[b_0, \dots, b_L]`, ``b_l`` of shape ``(n_l,)``.
    normalizer : Normalizer, optional
        Default ``Exact()``: sums the odd (or even) layers out analytically and enumerates the
        other parity, whichever has fewer units (:attr:`enumeration_units`), refusing past its
        ``max_units``. ``AIS(...)`` anneals along
        :class:`~pyrogen.distributions.paths.DBMPath`; ``PCD(...)`` keeps persistent chains over
        *all* layers, advanced by ``num_steps`` block-Gibbs steps per call (:meth:`gibbs_step`),
        whose gradient is :math:`\mathbb E_{\text{chains}}[-\nabla E(x)]` (Algorithm 20.1's
        negative phase). ``CD`` is refused (book §20.4.3: CD needs a burnt-in chain per example).
    marginal : {"auto", "exact", "mean_field"}
        How :meth:`unnormalized_log_prob` gets :math:`\log\tilde p(v)`: exact enumeration of the
        smaller hidden parity, the mean-field lower bound, or ``"auto"`` (exact when
        :attr:`marginal_units` is at most ``marginal_max_units``).
    marginal_max_units : int
        The ``"auto"`` limit (default 20).
    mean_field_iters : int
        Fixed-point iterations of :meth:`mean_field` (default 10).
    mcmc_steps, mcmc_init :
        Block-Gibbs steps of :meth:`sample` when it cannot enumerate, and the initial visible
        state of those chains (hidden layers start from :math:`\sigma(b_l)`).
    validate_args : bool, optional
        Keyword-only.

    Attributes
    ----------
    last_marginal_kind : str or None
        ``"exact"`` or ``"mean_field_lower_bound"``: what the last :meth:`unnormalized_log_prob`
        computed. With ``last_log_z.kind`` it labels the last :meth:`log_prob`
        (:attr:`last_log_prob_kind`).

    Notes
    -----
    Parameters are unbatched (``batch_shape`` comes from ``expand``). Cost per example:
    :math:`O(\sum_l n_{l-1} n_l)` for the energy, one block-Gibbs step and one mean-field
    iteration; ``Exact`` costs :math:`O(2^k \sum_l n_{l-1}n_l)` for :math:`k` enumerated units.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.boolean, 1)

    def __init__(
        self,
        weights,
        biases,
        *,
        normalizer: Normalizer | None = None,
        marginal: str = "auto",
        marginal_max_units: int = 20,
        mean_field_iters: int = DEFAULT_MEAN_FIELD_ITERS,
        mcmc_steps: int = 1000,
        mcmc_init: torch.Tensor | None = None,
        validate_args=None,
    ):
        self.weights, self.biases, self.sizes = _check_params(weights, biases)
        self.marginal = check_choice(marginal, "marginal", ("auto", "exact", "mean_field"))
        self.marginal_max_units = check_int(marginal_max_units, "marginal_max_units", 1, 30)
        self.mean_field_iters = check_int(mean_field_iters, "mean_field_iters", low=0)
        if getattr(normalizer, "contrastive", None) == "cd":
            raise ValueError(
                "normalizer=CD(...) is not supported by DeepBoltzmannMachine: sampling the hidden "
                "units given v needs a burnt-in chain per example (book §20.4.3). Use "
                "normalizer=PCD(...) (Algorithm 20.1) instead."
            )
        self.last_marginal_kind: str | None = None
        super().__init__(
            torch.Size(()),
            (self.sizes[0],),
            normalizer=normalizer,
            mcmc_steps=mcmc_steps,
            mcmc_init=mcmc_init,
            validate_args=validate_args,
        )
        if self._validate_args:
            for name, ts in (("weights", self.weights), ("biases", self.biases)):
                for i, t in enumerate(ts):
                    if not bool(torch.isfinite(t.detach()).all()):
                        raise ValueError(f"{name}[{i}] must be finite. Got NaN or inf values.")

    @classmethod
    def from_centered(cls, weights, biases, offsets, **kwargs) -> DeepBoltzmannMachine:
        r"""The ordinary DBM equivalent to the centered one with weights :math:`W_l`, centered
        biases :math:`\tilde b_l` and offsets :math:`\mu_l` (Montavon & Müller 2012; see
        :func:`uncenter_dbm_parameters`): same :math:`p(v)`, so ``log_prob``, ``sample``, the
        normalizers and mean field apply unchanged; its :math:`\log Z` is that of the ordinary
        energy, :math:`\log Z_c + C`. ``kwargs`` go to the constructor."""
        w, b, _ = uncenter_dbm_parameters(weights, biases, offsets)
        return cls(w, b, **kwargs)

    # ------------------------------------------------------------------ sizes
    @property
    def depth(self) -> int:
        """Number of hidden layers :math:`L`."""
        return len(self.weights)

    @property
    def dtype(self):
        return self.weights[0].dtype

    @property
    def device(self):
        return self.weights[0].device

    @property
    def num_units(self) -> int:
        return self.sizes[0]

    def _units(self, layers) -> int:
        return sum(self.sizes[i] for i in layers)

    @property
    def _even(self):
        return list(range(0, self.depth + 1, 2))

    @property
    def _odd(self):
        return list(range(1, self.depth + 1, 2))

    @property
    def enumeration_units(self) -> int:
        """Units :class:`~pyrogen.normalizers.Exact` enumerates: the smaller parity."""
        return min(self._units(self._even), self._units(self._odd))

    @property
    def marginal_units(self) -> int:
        r"""Units enumerated for the exact :math:`\log\tilde p(v)`: the smaller hidden parity."""
        return min(self._units(self._even[1:]), self._units(self._odd))

    # ------------------------------------------------------------------ energies
    def energy(self, layers) -> torch.Tensor:
        r""":math:`E(x_0, \dots, x_L)` for a list of layer tensors (values or mean-field
        probabilities: the energy is multilinear, so :math:`\mathbb E_q[E] = E(\mu)` for a
        factorial :math:`q`), broadcasting over leading dimensions."""
        layers = list(layers)
        if len(layers) != self.depth + 1:
            raise ValueError(
                f"layers must hold {self.depth + 1} tensors (v, h1, ..., h{self.depth}). Got "
                f"{len(layers)} instead."
            )
        out = 0.0
        for lay, x in enumerate(layers):
            out = out - (x * self.biases[lay]).sum(-1)
        for lay in range(1, self.depth + 1):
            out = out - ((layers[lay - 1] @ self.weights[lay - 1]) * layers[lay]).sum(-1)
        return out

    def _input(self, fixed: dict, lay: int) -> torch.Tensor:
        """Total input :math:`b_l + x_{l-1} W_l + W_{l+1} x_{l+1}` of layer ``lay`` from the
        fixed neighbouring layers."""
        a = self.biases[lay]
        if lay - 1 in fixed:
            a = a + fixed[lay - 1] @ self.weights[lay - 1]
        if lay + 1 in fixed:
            a = a + fixed[lay + 1] @ self.weights[lay].T
        return a

    def _log_f(self, fixed: dict, summed) -> torch.Tensor:
        r""":math:`\log\sum_{x_S} e^{-E}` with the layers ``fixed`` given and the layers ``summed``
        (whose neighbours must all be fixed) summed out analytically."""
        out = 0.0
        for lay, x in fixed.items():
            out = out + (x * self.biases[lay]).sum(-1)
            if lay - 1 in fixed:
                out = out + ((fixed[lay - 1] @ self.weights[lay - 1]) * x).sum(-1)
        for lay in summed:
            out = out + F.softplus(self._input(fixed, lay)).sum(-1)
        return out

    def _split(self, states, layers) -> dict:
        out, start = {}, 0
        for lay in layers:
            out[lay] = states[..., start : start + self.sizes[lay]]
            start += self.sizes[lay]
        return out

    def _enumerate(self, enum_layers, summed, fixed=None, chunk_size: int = 2**14):
        """logsumexp over the states of ``enum_layers`` of :meth:`_log_f`; ``fixed`` layers
        have a leading batch (e.g. ``(n, n_0)``), the result its batch shape."""
        fixed = {} if fixed is None else fixed
        k = self._units(enum_layers)
        nb = max((x.dim() - 1 for x in fixed.values()), default=0)
        rows = max(1, max((x.shape[:-1].numel() for x in fixed.values()), default=1))
        chunk = max(1, chunk_size // rows)

        def fn(states):
            s = states.reshape(states.shape[0], *[1] * nb, k)
            return self._log_f({**fixed, **self._split(s, enum_layers)}, summed)

        return chunked_logsumexp(fn, k, chunk, dtype=self.dtype, device=self.device)

    def enumerate_log_z(self, chunk_size: int = 2**14) -> torch.Tensor:
        r"""Exact :math:`\log Z`: the smaller parity enumerated, the other summed out; cost
        :math:`O(2^k \sum_l n_{l-1} n_l)`, differentiable."""
        even, odd = self._even, self._odd
        if self._units(odd) <= self._units(even):
            return self._enumerate(odd, even, chunk_size=chunk_size)
        return self._enumerate(even, odd, chunk_size=chunk_size)

    def annealing_state_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`\log f_1` of a :class:`DBMPath` state (the even layers concatenated, odd layers
        summed out), differentiable in the parameters: what ``AIS`` weights its particles by."""
        return self._log_f(self._split(x, self._even), self._odd)

    # ------------------------------------------------------------------ log p~(v)
    def exact_marginal(self, v: torch.Tensor, chunk_size: int = 2**14) -> torch.Tensor:
        r"""Exact :math:`\log\tilde p(v) = \log\sum_h e^{-E(v,h)}` by enumerating the smaller
        hidden parity (:attr:`marginal_units` units); shape ``v.shape[:-1]``."""
        v = v.to(self.dtype)
        hid_even, odd = self._even[1:], self._odd
        if self._units(odd) <= self._units(hid_even):
            return self._enumerate(odd, hid_even, {0: v}, chunk_size)
        return self._enumerate(hid_even, odd, {0: v}, chunk_size)

    def mean_field(self, v: torch.Tensor, num_iters: int | None = None, init=None) -> list:
        r"""Mean-field posterior :math:`q(h \mid v) = \prod_l \prod_j
        \operatorname{Bernoulli}(\mu_{l,j})` (eqs. 20.29-20.34), detached.

        Initialised by a bottom-up pass with doubled weights below the top layer,
        :math:`\mu_l = \sigma(b_l + 2\,\mu_{l-1} W_l)`, :math:`\mu_L = \sigma(b_L +
        \mu_{L-1} W_L)` (Salakhutdinov & Hinton 2009), or from ``init`` (a list of
        :math:`L` tensors); then ``num_iters`` block updates, odd layers then even layers,
        :math:`\mu_l \leftarrow \sigma(b_l + \mu_{l-1} W_l + W_{l+1}\mu_{l+1})` (eqs.
        20.33-20.34 for :math:`L = 2`). Each block update maximises the mean-field ELBO over
        that block exactly, so the bound never decreases.

        Returns the list :math:`[\mu_1, \dots, \mu_L]`, each of shape
        ``(*v.shape[:-1], n_l)``.
        """
        iters = self.mean_field_iters if num_iters is None else check_int(num_iters, "num_iters", 0)
        with torch.no_grad():
            v = v.to(self.dtype)
            # v never changes: its input to layer 1 is computed once, not once per iteration
            # (the largest product of the update when n_0 is the widest layer, e.g. 784 pixels)
            vw = v @ self.weights[0]
            b1 = self.biases[1] + vw
            if init is None:
                mus = [v]
                for lay in range(1, self.depth + 1):
                    scale = 2.0 if lay < self.depth else 1.0
                    if lay == 1:
                        a = self.biases[1] + scale * vw
                    else:
                        a = self.biases[lay] + scale * (mus[-1] @ self.weights[lay - 1])
                    mus.append(torch.sigmoid(a))
            else:
                mus = [v] + [m.to(self.dtype) for m in init]
            for _ in range(iters):
                for lay in self._odd + self._even[1:]:
                    if lay == 1:
                        a = b1 if self.depth < 2 else b1 + mus[2] @ self.weights[1].T
                        mus[1] = torch.sigmoid(a)
                        continue
                    fixed = {lay - 1: mus[lay - 1]}
                    if lay + 1 <= self.depth:
                        fixed[lay + 1] = mus[lay + 1]
                    mus[lay] = torch.sigmoid(self._input(fixed, lay))
            return [m.detach() for m in mus[1:]]

    def mean_field_masked(self, v: torch.Tensor, mask: torch.Tensor, num_iters: int | None = None):
        r"""Mean field with part of the visible layer unknown: the recurrent net of
        multi-prediction training (Goodfellow, Mirza, Courville & Bengio 2013), differentiable.

        The visible units where ``mask`` is true are treated like hidden units (their mean-field
        parameters start at :math:`\sigma(b_0)` and are updated with the even layers,
        :math:`\mu_{0} \leftarrow \sigma(b_0 + W_1\mu_1)`); the others stay clamped at
        ``v``. Initialised by the bottom-up pass of :meth:`mean_field`, then ``num_iters``
        (default ``mean_field_iters``) sweeps, odd layers then even layers. Not detached: the
        gradient flows through every iteration (back-propagation through the unrolled net).

        Parameters
        ----------
        v : torch.Tensor
            ``(..., n_0)``, binary where ``mask`` is false (other entries are ignored).
        mask : torch.Tensor
            Bool, broadcastable to ``v``: the units to predict.
        num_iters : int, optional

        Returns
        -------
        mus : list of torch.Tensor
            :math:`[\mu_0, \mu_1, \dots, \mu_L]`, :math:`\mu_0` equal to ``v`` off the mask.
        visible_logits : torch.Tensor
            :math:`b_0 + W_1\mu_1` of the last sweep, ``(..., n_0)`` (the prediction of
            :math:`\mu_0` on the mask, as logits for a stable cross-entropy).
        """
        iters = self.mean_field_iters if num_iters is None else check_int(num_iters, "num_iters", 0)
        v = v.to(self.dtype)
        mask = torch.as_tensor(mask, device=self.device).to(torch.bool)
        try:
            mask = mask.expand_as(v)
        except RuntimeError as e:
            raise ValueError(
                f"mask must broadcast to v's shape {tuple(v.shape)}. Got shape "
                f"{tuple(mask.shape)} instead."
            ) from e
        mus = [torch.where(mask, torch.sigmoid(self.biases[0]).expand_as(v), v)]
        for lay in range(1, self.depth + 1):
            scale = 2.0 if lay < self.depth else 1.0
            mus.append(torch.sigmoid(self.biases[lay] + scale * (mus[-1] @ self.weights[lay - 1])))
        logits0 = self.biases[0] + mus[1] @ self.weights[0].T
        for _ in range(iters):
            for lay in self._odd + self._even:
                fixed = {k: mus[k] for k in (lay - 1, lay + 1) if 0 <= k <= self.depth}
                a = self._input(fixed, lay)
                if lay == 0:
                    logits0 = a
                    mus[0] = torch.where(mask, torch.sigmoid(a), v)
                else:
                    mus[lay] = torch.sigmoid(a)
        return mus, logits0

    def mean_field_bound(self, v: torch.Tensor, mu=None) -> torch.Tensor:
        r"""The mean-field lower bound :math:`\log\tilde p(v) \ge -E(v, \mu) + \sum_l H(\mu_l)`,
        shape ``v.shape[:-1]``; differentiable in the parameters with :math:`\mu` held fixed
        (at a fixed point this is the total gradient)."""
        v = v.to(self.dtype)
        mu = self.mean_field(v) if mu is None else mu
        return -self.energy([v, *mu]) + sum(_entropy(m) for m in mu)

    def unnormalized_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`\log\tilde p(v)`: exact or the mean-field lower bound (see ``marginal``);
        :attr:`last_marginal_kind` records which."""
        exact = self.marginal == "exact" or (
            self.marginal == "auto" and self.marginal_units <= self.marginal_max_units
        )
        if exact:
            self.last_marginal_kind = "exact"
            return self.exact_marginal(value)
        self.last_marginal_kind = "mean_field_lower_bound"
        return self.mean_field_bound(value)

    @property
    def last_log_prob_kind(self) -> str | None:
        """Label of the last :meth:`log_prob`: ``"exact"``, or ``"<marginal> - <log Z kind>"``.

        An exact :math:`\\log Z` with the mean-field marginal gives a lower bound; an AIS
        :math:`\\log Z` (which underestimates :math:`\\log Z` in expectation) with the exact
        marginal an upper bound in expectation, and with the mean-field marginal neither."""
        if self.last_marginal_kind is None or self.last_log_z is None:
            return None
        if self.last_marginal_kind == "exact" and self.last_log_z.kind == "exact":
            return "exact"
        return f"{self.last_marginal_kind} - log Z {self.last_log_z.kind}"

    # ------------------------------------------------------------------ normalizer hooks
    def log_normalizer(self, value=None) -> LogZEstimate:
        """As for every energy-based distribution; ``PCD`` runs the DBM's own persistent
        chains over all layers (:meth:`gibbs_step`)."""
        if getattr(self.normalizer, "contrastive", None) == "pcd":
            est = self._pcd_log_z(self.normalizer)
            self.last_log_z = est
            return est
        return super().log_normalizer(value)

    def _pcd_log_z(self, norm) -> LogZEstimate:
        total = sum(self.sizes)
        with torch.no_grad():
            chains = getattr(norm, "chains", None)
            if (
                chains is None
                or tuple(chains.shape) != (norm.num_chains, total)
                or chains.dtype != self.dtype
            ):
                chains = self.init_chains(norm.num_chains, init=getattr(norm, "init", None))
            layers = self._split_all(chains)
            for _ in range(norm.num_steps):
                layers = self.gibbs_step(layers)
            norm.chains = torch.cat(layers, -1)
            norm.hidden = None
        s = (-self.energy([x.detach() for x in layers])).mean(0)
        return norm.estimate_from_score(self, s, {"negative_samples": norm.num_chains})

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`\log\tilde p(v) - \log Z` (see :attr:`last_log_prob_kind` for what it is).

        Shape ``broadcast(value.shape[:-1], batch_shape)``. A floating ``value`` must have the
        distribution's dtype; with ``validate_args`` non-binary values raise ``ValueError``."""
        _check_value(self, value)
        return super().log_prob(value)

    # ------------------------------------------------------------------ the joint
    def joint_log_prob(self, value: torch.Tensor, hiddens) -> torch.Tensor:
        r""":math:`\log p(v, h) = -E(v, h) - \log Z`, with :math:`\log Z` (value and gradient)
        from the normalizer; ``hiddens`` = :math:`[h^{(1)}, \dots, h^{(L)}]` (binary, or
        mean-field probabilities :math:`\mu`, for which this is
        :math:`\mathbb E_q[\log p(v, h)]`)."""
        hiddens = list(hiddens)
        v = value.to(self.dtype)
        out = -self.energy([v, *hiddens]) - self.log_normalizer(value=value).log_z
        return out

    def joint(self, hiddens) -> DBMJoint:
        """The observation distribution of :class:`DBMJoint` for these hidden layers."""
        return DBMJoint(self, hiddens)

    # ------------------------------------------------------------------ sampling
    def _split_all(self, state) -> list:
        d = self._split(state, range(self.depth + 1))
        return [d[i] for i in range(self.depth + 1)]

    def init_chains(self, num_chains: int, init=None) -> torch.Tensor:
        """Full states (all layers concatenated), shape ``(num_chains, sum(sizes))``: visible
        from ``init`` (broadcast) or :math:`\\sigma(b_0)`, hidden layers from
        :math:`\\sigma(b_l)`."""
        parts = []
        with torch.no_grad():
            for lay, b in enumerate(self.biases):
                p = torch.sigmoid(b.detach()).expand(num_chains, self.sizes[lay])
                if lay == 0 and init is not None:
                    x0 = torch.as_tensor(init, dtype=self.dtype, device=self.device)
                    try:
                        parts.append(x0.expand(num_chains, self.sizes[0]).clone())
                    except RuntimeError as e:
                        raise ValueError(
                            f"init must broadcast to ({num_chains}, {self.sizes[0]}). Got shape "
                            f"{tuple(x0.shape)} instead."
                        ) from e
                    continue
                parts.append(bernoulli(p.contiguous()))
        return torch.cat(parts, -1)

    def gibbs_step(self, layers, generator=None) -> list:
        r"""One block-Gibbs step (§20.4.1, Algorithm 20.1): the even layers given the odd ones
        (``v`` first, then ``h2``, ...), then the odd layers given the even ones, each layer one
        Bernoulli draw :math:`U < p` through :func:`pyrogen._random.bernoulli` in that order.
        ``layers`` is a list of :math:`L+1` tensors; returns the new list (no gradient)."""
        with torch.no_grad():
            layers = [x.to(self.dtype) for x in layers]
            for block in (self._even, self._odd):
                fixed = {i: x for i, x in enumerate(layers)}
                for lay in block:
                    nb = {k: fixed[k] for k in (lay - 1, lay + 1) if k in fixed}
                    layers[lay] = bernoulli(torch.sigmoid(self._input(nb, lay)), generator)
            return layers

    def transition(self, x, num_steps: int = 1, generator=None):
        """``num_steps`` block-Gibbs steps on full states ``(..., sum(sizes))`` (all layers
        concatenated; the event alone is not a Markov state of a DBM)."""
        layers = self._split_all(x)
        for _ in range(num_steps):
            layers = self.gibbs_step(layers, generator)
        return torch.cat(layers, -1)

    def _sample_exact(self, sample_shape):
        if self.enumeration_units > EXACT_SAMPLE_MAX_UNITS:
            return None
        even, odd = self._even, self._odd
        enum, summed = (odd, even) if self._units(odd) <= self._units(even) else (even, odd)
        k = self._units(enum)
        states = enumerate_binary_states(k, dtype=self.dtype, device=self.device)
        logits = self._log_f(self._split(states, enum), summed)
        n = torch.Size(sample_shape).numel()
        idx = torch.distributions.Categorical(logits=logits).sample((n,))
        drawn = self._split(states[idx], enum)
        if 0 in drawn:
            v = drawn[0]
        else:
            v = bernoulli(torch.sigmoid(self._input(drawn, 0)))
        return v.reshape(*sample_shape, self.sizes[0])

    def sample(self, sample_shape=()) -> torch.Tensor:
        """Draws of :math:`v`, shape ``sample_shape + batch_shape + (n_0,)``: exact (enumeration
        of the smaller parity) when it has at most 16 units, otherwise ``mcmc_steps`` block-Gibbs
        steps from ``mcmc_init`` (approximate draws)."""
        shape = torch.Size(sample_shape) + self.batch_shape
        with torch.no_grad():
            v = self._sample_exact(shape)
            if v is not None:
                return v
            n = max(shape.numel(), 1)
            init = None
            if self.mcmc_init is not None:
                init = torch.as_tensor(self.mcmc_init, dtype=self.dtype, device=self.device)
                init = init.expand(*shape, self.sizes[0]).reshape(n, self.sizes[0])
            x = self.transition(self.init_chains(n, init=init), self.mcmc_steps)
            return x[..., : self.sizes[0]].reshape(*shape, self.sizes[0])

    # ------------------------------------------------------------------ annealing
    def annealing_path(self, base=None, data=None):
        r"""The Salakhutdinov & Hinton (2009) path
        (:class:`~pyrogen.distributions.paths.DBMPath`): odd layers summed out, weights and
        hidden biases scaled by :math:`\beta`, visible biases interpolated from a base-rate model
        (``base``: logits or a factorial Bernoulli; else fitted to ``data``; else zeros)."""
        from .paths import DBMPath, base_rate_visible_bias

        if base is None:
            logits = None
            if data is not None:
                data = torch.as_tensor(data, dtype=self.dtype, device=self.device)
                logits = base_rate_visible_bias(data.reshape(-1, self.sizes[0]))
        elif isinstance(base, torch.Tensor):
            logits = base.to(self.dtype)
        else:
            leaf = base.base_dist if isinstance(base, dist.Independent) else base
            if not isinstance(leaf, dist.Bernoulli):
                raise TypeError(
                    "base must be None, a tensor of logits or a factorial Bernoulli. Got "
                    f"{type(base).__name__} instead."
                )
            logits = leaf.logits
        return DBMPath(self.weights, self.biases, base_visible_bias=logits)


def _check_value(d, value):
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"value must be a torch.Tensor. Got {type(value).__name__} instead.")
    if value.dtype.is_floating_point and value.dtype != d.dtype:
        raise TypeError(
            f"value must have the DeepBoltzmannMachine's dtype {d.dtype}. Got {value.dtype} "
            f"instead; convert it with value.to({d.dtype})."
        )
    if value.dim() < 1 or value.shape[-1] != d.sizes[0]:
        raise ValueError(
            f"value must have last dimension {d.sizes[0]} (the visible units). Got shape "
            f"{tuple(value.shape)} instead."
        )
    if d._validate_args and not bool(((value == 0) | (value == 1)).all()):
        raise ValueError("value must be binary (0/1 entries). Got non-binary values.")


class DBMJoint(TorchDistribution):
    r"""The observed site of a DBM's joint: :math:`\log p(v, h) = -E(v,h) - \log Z` scored at
    ``v`` for given hidden layers.

    It is how :class:`pyrogen.models.DBM` writes the joint in a Pyro model (the hidden layers are
    sample sites whose model density is the counting measure; this site supplies
    :math:`e^{-E(v,h)}/Z`). It is *not* a normalized distribution over :math:`v` given
    :math:`h` (that would be :math:`\sigma(b_0 + W_1 h^{(1)})`), so it cannot be sampled.

    Parameters
    ----------
    dbm : DeepBoltzmannMachine
        Supplies the energy and the normalizer.
    hiddens : list of torch.Tensor
        :math:`[h^{(1)}, \dots, h^{(L)}]`, shapes ``(*batch, n_l)`` (binary values or mean-field
        probabilities).
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, dbm: DeepBoltzmannMachine, hiddens, *, validate_args=None):
        if not isinstance(dbm, DeepBoltzmannMachine):
            raise TypeError(f"dbm must be a DeepBoltzmannMachine. Got {type(dbm).__name__}.")
        hiddens = list(hiddens)
        if len(hiddens) != dbm.depth:
            raise ValueError(
                f"hiddens must hold {dbm.depth} tensors (h1..h{dbm.depth}). Got {len(hiddens)}."
            )
        for i, h in enumerate(hiddens):
            if h.shape[-1:] != (dbm.sizes[i + 1],):
                raise ValueError(
                    f"hiddens[{i}] must have last dimension {dbm.sizes[i + 1]}. Got shape "
                    f"{tuple(h.shape)} instead."
                )
        self.dbm, self.hiddens = dbm, hiddens
        batch = broadcast_shapes(*[h.shape[:-1] for h in hiddens])
        super().__init__(batch, torch.Size((dbm.sizes[0],)), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        hs = [h.expand(*batch_shape, h.shape[-1]) for h in self.hiddens]
        return DBMJoint(self.dbm, hs, validate_args=self._validate_args)

    def log_prob(self, value):
        _check_value(self.dbm, value)
        out = self.dbm.joint_log_prob(value, self.hiddens)
        return out.expand(broadcast_shapes(value.shape[:-1], self.batch_shape))

    def sample(self, sample_shape=()):
        raise NotImplementedError(
            "DBMJoint scores v jointly with given hidden layers; it is not a distribution of v "
            "given h. Draw from the DBM with DeepBoltzmannMachine.sample()."
        )
