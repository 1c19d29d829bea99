r"""Auto-regressive distributions (book §20.10.7-20.10.10): NADE, ordering ensembles of NADE,
and masked auto-regressive networks (MADE) with Bernoulli or mixture-of-Gaussians outputs.

===========================  ===================================================================
distribution                 :math:`\log p(x)`
===========================  ===================================================================
``NADE``                     :math:`\sum_{k} \log \operatorname{Bernoulli}(x_{o_k};
                             \sigma(b_{o_k} + V_{o_k,:} h_k))`, :math:`h_k = \sigma(c +
                             \sum_{j<k} W_{:,o_j} x_{o_j})` [1]_ (eq. 20.83's weight sharing)
``NADEEnsemble``             :math:`\log \frac1M \sum_m p_{o^{(m)}}(x)`: the uniform mixture of
                             one NADE's parameters under :math:`M` orderings [3]_
``MADE``                     Bernoulli conditionals from a masked network [2]_
                             (:class:`pyro.nn.AutoRegressiveNN`, §20.10.9)
``MADEMixture``              mixture-of-Gaussians conditionals from a masked network, for
                             real-valued data (the output layer of RNADE [4]_)
===========================  ===================================================================

All are exact: ``log_prob`` is the log-likelihood, not a bound. They are
:class:`~pyro.distributions.TorchDistribution`\ s, so they serve as the likelihood of observed
data in a Pyro model (``pyro.sample("x", NADE(...), obs=x)``), as a prior over binary latent
vectors, and as a guide family: give :class:`NADE` biases with a batch dimension computed from
the data (a conditional NADE, :math:`q(h \mid x)`).

References
----------
.. [1] H. Larochelle, I. Murray, "The neural autoregressive distribution estimator",
   AISTATS 2011.
.. [2] M. Germain, K. Gregor, I. Murray, H. Larochelle, "MADE: masked autoencoder for
   distribution estimation", ICML 2015.
.. [3] B. Uria, I. Murray, H. Larochelle, "A deep and tractable density estimator", ICML 2014.
.. [4] B. Uria, I. Murray, H. Larochelle, "RNADE: the real-valued neural autoregressive
   density-estimator", NeurIPS 2013.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints

from .energy import broadcast_shapes

__all__ = ["NADE", "NADEEnsemble", "MADE", "MADEMixture", "check_ordering", "nade_logits"]


# ------------------------------------------------------------------------------------------------
# functional core
# ------------------------------------------------------------------------------------------------
def check_ordering(ordering, n_features: int, name: str = "ordering") -> torch.Tensor:
    """Return ``ordering`` as a ``LongTensor`` permutation of ``range(n_features)`` or raise.

    ``ordering[k]`` is the index of the variable visited ``k``-th. A list or an integer tensor
    of shape ``(n_features,)`` holding every index ``0 .. n_features - 1`` exactly once.
    """
    if isinstance(ordering, torch.Tensor):
        if ordering.dtype.is_floating_point or ordering.dtype == torch.bool:
            raise TypeError(
                f"{name} must be an integer tensor (a permutation of range({n_features})). "
                f"Got dtype {ordering.dtype} instead."
            )
        o = ordering.long()
    else:
        try:
            o = torch.as_tensor(list(ordering), dtype=torch.long)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(
                f"{name} must be a sequence of ints (a permutation of range({n_features})). "
                f"Got {type(ordering).__name__} instead."
            ) from e
    if o.dim() != 1 or o.shape[0] != n_features:
        raise ValueError(
            f"{name} must have shape ({n_features},), a permutation of range({n_features}). "
            f"Got shape {tuple(o.shape)} instead."
        )
    seen = torch.zeros(n_features, dtype=torch.long, device=o.device)
    inside = bool(((o >= 0) & (o < n_features)).all())
    if inside:
        seen.scatter_add_(0, o, torch.ones_like(o))
    if not inside or not bool((seen == 1).all()):
        raise ValueError(
            f"{name} must be a permutation of range({n_features}) (every index exactly once). "
            f"Got {o.tolist() if n_features <= 20 else 'a tensor'} instead."
        )
    return o


#: positions between saved hidden states in :class:`_NADEHiddenDot` (backward recomputation)
_BLOCK = 16


class _NADEHiddenDot(torch.autograd.Function):
    r""":math:`z_{nd} = V_{d,:} \cdot \sigma(a_{nd})`, :math:`a_{nd} = c_n + \sum_{j<d}
    W_{:,j} x_{nj}`, for ``x (N, D)``, ``W (H, D)``, ``c (N, H)``, ``V (D, H)``, with a
    hand-written backward.

    Larochelle & Murray's algorithm: the forward pass walks the positions keeping one running
    ``(N, H)`` pre-activation (updated in place by a rank-one ``addr_``), so the working set
    stays in cache; it saves the hidden state every :data:`_BLOCK` positions (``(N, D /
    16, H)``), not the ``(N, D, H)`` activations autograd would keep. The backward pass walks
    the blocks in reverse, recomputes a block's activations from its saved start, and
    accumulates the :math:`O(DH)` gradient: with :math:`\delta_{nd} = \partial L / \partial
    a_{nd}`, :math:`\partial L/\partial W_{:,j} = \sum_n x_{nj} \sum_{d>j} \delta_{nd}`
    (a reverse running sum) and :math:`\partial L / \partial c_n = \sum_d \delta_{nd}`.
    No gradient flows to ``x`` (binary data).
    """

    @staticmethod
    def forward(ctx, x, W, c, V):
        N, D = x.shape
        Wt, xt = W.T.contiguous(), x.T.contiguous()
        a = c.clone()
        out = torch.empty(D, N, dtype=W.dtype, device=W.device)
        starts = []
        for d in range(D):
            if d % _BLOCK == 0:
                starts.append(a.clone())
            torch.mv(torch.sigmoid(a), V[d], out=out[d])
            a.addr_(xt[d], Wt[d])
        ctx.save_for_backward(xt, Wt, V, torch.stack(starts))
        return out.T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gz):
        xt, Wt, V, starts = ctx.saved_tensors
        D = xt.shape[0]
        gt = gz.T.contiguous()
        dWt, dV = torch.empty_like(Wt), torch.empty_like(V)
        later = torch.zeros_like(starts[0])  # sum of delta over the positions after d
        for k in range(starts.shape[0] - 1, -1, -1):
            lo, hi = k * _BLOCK, min(D, (k + 1) * _BLOCK)
            a, hs = starts[k].clone(), []
            for d in range(lo, hi):
                hs.append(torch.sigmoid(a))
                a.addr_(xt[d], Wt[d])
            for d in range(hi - 1, lo - 1, -1):
                h = hs[d - lo]
                torch.mv(h.T, gt[d], out=dV[d])
                torch.mv(later.T, xt[d], out=dWt[d])
                later.addcmul_(torch.outer(gt[d], V[d]), h * (1.0 - h))
        return None, dWt.T, later, dV


def nade_logits(value, weight, hidden_bias, out_weight, bias, ordering=None,
                return_hidden: bool = False):
    r"""Logits of every NADE conditional :math:`p(x_{o_k} = 1 \mid x_{o_{<k}})` in O(DH).

    .. math::

        a_k = c + \sum_{j<k} W_{:,o_j} x_{o_j} \;(\text{a cumulative sum}),\quad
        h_k = \sigma(a_k), \quad \ell_{o_k} = b_{o_k} + V_{o_k,:} h_k.

    Parameters
    ----------
    value : Tensor, shape ``(..., D)``
        Binary vectors in variable order.
    weight, hidden_bias, out_weight, bias : Tensor
        :math:`W` ``(..., H, D)``, :math:`c` ``(..., H)``, :math:`V` ``(..., D, H)``,
        :math:`b` ``(..., D)``; all broadcast with ``value``'s batch dimensions.
    ordering : LongTensor ``(D,)``, optional
        A validated permutation (identity when ``None``).
    return_hidden : bool
        Also return the hidden activations :math:`h_k`, shape ``(..., D, H)`` in *position*
        order (row ``k`` is the state before visiting variable ``o_k``).

    Returns
    -------
    logits : Tensor, shape ``(..., D)``, in *variable* order.

    Cost: :math:`O(DH)` time per vector. With unbatched ``weight`` and ``out_weight`` (the
    common case, including a conditional NADE with per-example biases) the pass walks the
    positions with one running pre-activation and a hand-written backward, memory
    :math:`O(DH/16)` per vector (:class:`_NADEHiddenDot`); batched weights or
    ``return_hidden`` materialize the ``(..., D, H)`` pre-activations (one cumulative sum)
    and use autograd.
    """
    if ordering is not None:
        value = value[..., ordering]
        weight = weight[..., :, ordering]
        out_weight = out_weight[..., ordering, :]
        bias = bias[..., ordering]
    D = weight.shape[-1]
    if weight.dim() == 2 and out_weight.dim() == 2 and not return_hidden:
        batch = broadcast_shapes(value.shape[:-1], hidden_bias.shape[:-1])
        x = value.expand(batch + (D,)).reshape(-1, D).to(weight.dtype)
        c = hidden_bias.expand(batch + hidden_bias.shape[-1:]).reshape(-1, weight.shape[0])
        z = _NADEHiddenDot.apply(x, weight, c, out_weight).reshape(batch + (D,))
        logits = z + bias
    else:
        contrib = value.unsqueeze(-1) * weight.mT  # (..., D, H)
        # exclusive cumulative sum: a_k uses the variables strictly before position k
        acc = torch.cumsum(contrib[..., :-1, :], dim=-2)
        a = F.pad(acc, (0, 0, 1, 0)) + hidden_bias.unsqueeze(-2)
        h = torch.sigmoid(a)
        logits = (h * out_weight).sum(-1) + bias
    if ordering is not None:
        logits = logits[..., torch.argsort(ordering)]
    return (logits, h) if return_hidden else logits


def _bernoulli_log_prob(logits, value):
    logits, value = torch.broadcast_tensors(logits, value)
    return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")


# ------------------------------------------------------------------------------------------------
# NADE
# ------------------------------------------------------------------------------------------------
class NADE(dist.TorchDistribution):
    r"""Neural auto-regressive distribution estimator over binary vectors (book §20.10.10;
    Larochelle & Murray 2011).

    .. math::

        p(x) = \prod_{k=1}^D p(x_{o_k} \mid x_{o_{<k}}), \qquad
        p(x_{o_k} = 1 \mid x_{o_{<k}}) = \sigma\bigl(b_{o_k} + V_{o_k,:}\, h_k\bigr), \qquad
        h_k = \sigma\Bigl(c + \sum_{j<k} W_{:,o_j}\, x_{o_j}\Bigr).

    The input weights :math:`W_{:,i}` of variable :math:`i` are shared by every hidden group
    after it (eq. 20.83), so all :math:`D` pre-activations are one cumulative sum: ``log_prob``
    costs :math:`O(DH)` per vector, not :math:`O(D^2 H)` (see :func:`nade_logits`).

    Parameters belong to *variables* (``weight[:, i]``, ``out_weight[i]``, ``bias[i]`` are
    variable :math:`i`'s whatever the ordering), so one parameter set defines a NADE for every
    ordering :math:`o` — what order-agnostic training and :class:`NADEEnsemble` use
    (Uria et al. 2014).

    Parameters
    ----------
    weight : Tensor, shape ``(..., H, D)``
        :math:`W`, input-to-hidden weights.
    hidden_bias : Tensor, shape ``(..., H)``
        :math:`c`.
    out_weight : Tensor, shape ``(..., D, H)``
        :math:`V`, hidden-to-output weights.
    bias : Tensor, shape ``(..., D)``
        :math:`b`, output biases.
    ordering : sequence of int or LongTensor ``(D,)``, optional
        The permutation :math:`o` (``ordering[k]`` is the variable visited ``k``-th); identity by
        default. Validated: anything but a permutation of ``range(D)`` is a ``ValueError``.
    validate_args : bool, optional
        Keyword only. Validates parameters and that values are binary (Pyro's default).

    Notes
    -----
    Shapes: ``event_shape = (D,)``; ``batch_shape`` is the broadcast of the parameters' leading
    dimensions. Parameters are kept as given (broadcasting happens in the computation, so a
    conditional NADE with per-example biases ``(n, H)``, ``(n, D)`` and shared weights does not
    copy the weights ``n`` times). A *conditional* NADE :math:`q(h \mid x)` is exactly that:
    biases computed from :math:`x`, weights shared.

    Cost: ``log_prob`` :math:`O(DH)` time and memory per vector; ``sample`` :math:`D` sequential
    steps of :math:`O(H)` each.
    """

    arg_constraints = {
        "weight": constraints.real,
        "hidden_bias": constraints.real,
        "out_weight": constraints.real,
        "bias": constraints.real,
    }
    support = constraints.independent(constraints.boolean, 1)
    has_enumerate_support = False

    def __init__(self, weight, hidden_bias, out_weight, bias, ordering=None, *,
                 validate_args=None):
        tensors = {"weight": weight, "hidden_bias": hidden_bias, "out_weight": out_weight,
                   "bias": bias}
        for name, t in tensors.items():
            if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
                raise TypeError(
                    f"{name} must be a floating-point torch.Tensor. Got "
                    f"{type(t).__name__ if not isinstance(t, torch.Tensor) else t.dtype} instead."
                )
        if weight.dim() < 2:
            raise ValueError(
                f"weight must have shape (..., H, D). Got shape {tuple(weight.shape)} instead."
            )
        H, D = weight.shape[-2:]
        want = {"hidden_bias": (H,), "out_weight": (D, H), "bias": (D,)}
        for name, tail in want.items():
            t = tensors[name]
            if t.dim() < len(tail) or tuple(t.shape[t.dim() - len(tail):]) != tail:
                raise ValueError(
                    f"{name} must have shape (..., {', '.join(map(str, tail))}) to match weight "
                    f"of shape (..., H={H}, D={D}). Got shape {tuple(t.shape)} instead."
                )
        try:
            batch_shape = broadcast_shapes(
                weight.shape[:-2], hidden_bias.shape[:-1], out_weight.shape[:-2], bias.shape[:-1]
            )
        except ValueError as e:
            raise ValueError(f"NADE parameters' batch shapes do not broadcast: {e}") from e
        self.weight, self.hidden_bias, self.out_weight, self.bias = (
            weight, hidden_bias, out_weight, bias
        )
        self.ordering = None if ordering is None else check_ordering(ordering, D).to(
            weight.device
        )
        self.n_hidden = int(H)
        super().__init__(batch_shape, torch.Size((D,)), validate_args=validate_args)

    # ---------------------------------------------------------------------------- Pyro API
    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NADE, _instance)
        batch_shape = torch.Size(batch_shape)
        broadcast_shapes(batch_shape, self.batch_shape)  # raises if incompatible
        if broadcast_shapes(batch_shape, self.batch_shape) != batch_shape:
            raise ValueError(
                f"cannot expand NADE of batch_shape {tuple(self.batch_shape)} to "
                f"{tuple(batch_shape)}."
            )
        new.weight, new.hidden_bias = self.weight, self.hidden_bias
        new.out_weight, new.bias = self.out_weight, self.bias
        new.ordering, new.n_hidden = self.ordering, self.n_hidden
        super(NADE, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def logits(self, value: torch.Tensor) -> torch.Tensor:
        r"""Logits of :math:`p(x_i = 1 \mid x_{\text{before } i})` for each variable ``i``,
        shape ``broadcast(value.shape[:-1], batch_shape) + (D,)``, in variable order."""
        return nade_logits(value, self.weight, self.hidden_bias, self.out_weight, self.bias,
                           self.ordering)

    def hidden(self, value: torch.Tensor) -> torch.Tensor:
        r"""Hidden activations :math:`h_k`, shape ``(..., D, H)`` in position order: row
        ``k`` is computed from the variables visited before position ``k`` (row ``D-1`` has
        seen all but the last variable)."""
        return nade_logits(value, self.weight, self.hidden_bias, self.out_weight, self.bias,
                           self.ordering, return_hidden=True)[1]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        lp = _bernoulli_log_prob(self.logits(value), value).sum(-1)
        shape = broadcast_shapes(lp.shape, self.batch_shape)
        return lp.expand(shape) if lp.shape != shape else lp

    def sample(self, sample_shape=()) -> torch.Tensor:
        """Ancestral sampling: :math:`D` sequential Bernoulli draws, :math:`O(H)` each."""
        shape = self._extended_shape(torch.Size(sample_shape))
        D = self.event_shape[0]
        with torch.no_grad():
            W, V, b = self.weight, self.out_weight, self.bias
            x = torch.zeros(shape, dtype=W.dtype, device=W.device)
            a = self.hidden_bias.expand(shape[:-1] + (self.n_hidden,)).clone()
            order = range(D) if self.ordering is None else self.ordering.tolist()
            for i in order:
                h = torch.sigmoid(a)
                logit = (h * V[..., i, :]).sum(-1) + b[..., i]
                xi = (torch.rand(logit.shape, dtype=W.dtype, device=W.device)
                      < torch.sigmoid(logit)).to(W.dtype)
                x[..., i] = xi
                a = a + xi.unsqueeze(-1) * W[..., :, i]
        return x

    def enumerate_support(self, expand=True):  # pragma: no cover - not offered
        raise NotImplementedError("NADE does not enumerate its 2^D support.")

    @property
    def mean(self):
        raise NotImplementedError(
            "the NADE mean has no closed form (it needs 2^D terms); estimate it from samples."
        )

    @property
    def variance(self):
        raise NotImplementedError(
            "the NADE variance has no closed form; estimate it from samples."
        )


# ------------------------------------------------------------------------------------------------
# Ensemble over orderings
# ------------------------------------------------------------------------------------------------
class NADEEnsemble(dist.TorchDistribution):
    r"""Uniform mixture of one NADE's parameters under :math:`M` orderings (EoNADE,
    Uria et al. 2014).

    .. math::

        p(x) = \frac1M \sum_{m=1}^M p_{o^{(m)}}(x), \qquad
        \log p(x) = \operatorname{logsumexp}_m \log p_{o^{(m)}}(x) - \log M.

    This is the ensemble's exact log-likelihood: the log of the *mean of probabilities* over
    orderings. Averaging the per-variable conditionals over orderings, or averaging the
    per-ordering log-likelihoods, is not the likelihood of any mixture (the second is a lower
    bound by Jensen's inequality; both are wrong as a log-likelihood).

    Parameters
    ----------
    nade : NADE
        The shared parameters (its own ``ordering`` is ignored).
    orderings : LongTensor, shape ``(M, D)``
        Each row a permutation of ``range(D)`` (validated).
    validate_args : bool, optional
        Keyword only.

    Notes
    -----
    Cost: ``log_prob`` is :math:`M` NADE evaluations, :math:`O(MDH)` per vector; ``sample``
    draws the component of each vector uniformly, then samples that ordering's NADE.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, nade: NADE, orderings, *, validate_args=None):
        if not isinstance(nade, NADE):
            raise TypeError(f"nade must be a NADE. Got {type(nade).__name__} instead.")
        D = nade.event_shape[0]
        if isinstance(orderings, torch.Tensor):
            rows = list(orderings) if orderings.dim() == 2 else None
        else:
            rows = list(orderings) if isinstance(orderings, (list, tuple)) else None
        if not rows:
            raise ValueError(
                f"orderings must be a non-empty (M, {D}) tensor or a list of permutations of "
                f"range({D}). Got {type(orderings).__name__} "
                f"{tuple(getattr(orderings, 'shape', ()))} instead."
            )
        self.orderings = torch.stack(
            [check_ordering(r, D, name=f"orderings[{m}]") for m, r in enumerate(rows)]
        ).to(nade.weight.device)
        self.nade = nade
        self.components = [self._component(m) for m in range(self.orderings.shape[0])]
        super().__init__(nade.batch_shape, nade.event_shape, validate_args=validate_args)

    @property
    def num_orderings(self) -> int:
        return int(self.orderings.shape[0])

    def _component(self, m: int) -> NADE:
        n = self.nade
        return NADE(n.weight, n.hidden_bias, n.out_weight, n.bias, self.orderings[m],
                    validate_args=False)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NADEEnsemble, _instance)
        new.nade = self.nade.expand(batch_shape)
        new.orderings = self.orderings
        new.components = [c.expand(batch_shape) for c in self.components]
        super(NADEEnsemble, new).__init__(new.nade.batch_shape, self.event_shape,
                                          validate_args=False)
        new._validate_args = self._validate_args
        return new

    def component_log_probs(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`\log p_{o^{(m)}}(x)` for every ordering, shape ``(M,) + log_prob shape``."""
        if self._validate_args:
            self._validate_sample(value)
        return torch.stack([c.log_prob(value) for c in self.components])

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = self.component_log_probs(value)
        return torch.logsumexp(lp, 0) - math.log(self.num_orderings)

    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        with torch.no_grad():
            pick = torch.randint(self.num_orderings, shape[:-1], device=self.orderings.device)
            x = torch.zeros(shape, dtype=self.nade.weight.dtype, device=self.nade.weight.device)
            for m in torch.unique(pick).tolist():
                xm = self.components[m].sample(sample_shape)
                x = torch.where((pick == m).unsqueeze(-1), xm, x)
        return x


# ------------------------------------------------------------------------------------------------
# Masked auto-regressive networks (MADE) with Bernoulli or mixture outputs
# ------------------------------------------------------------------------------------------------
def _arn_ordering(arn) -> torch.Tensor:
    perm = getattr(arn, "permutation", None)
    if perm is None:
        raise TypeError(
            "autoregressive_nn must be a pyro.nn.AutoRegressiveNN (or have a 'permutation' "
            f"buffer giving its variable ordering). Got {type(arn).__name__} instead."
        )
    return perm


class _MaskedAutoregressive(dist.TorchDistribution):
    """Shared part of :class:`MADE` and :class:`MADEMixture`: the network, its ordering,
    ancestral sampling in :math:`D` network passes."""

    arg_constraints: dict = {}

    def __init__(self, autoregressive_nn, input_dim: int, batch_shape=(), *,
                 validate_args=None):
        self.autoregressive_nn = autoregressive_nn
        self.ordering = _arn_ordering(autoregressive_nn)
        if self.ordering.shape != (input_dim,):
            raise ValueError(
                f"autoregressive_nn's permutation must have shape ({input_dim},). Got "
                f"{tuple(self.ordering.shape)} instead."
            )
        super().__init__(torch.Size(batch_shape), torch.Size((input_dim,)),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(type(self), _instance)
        new.__dict__.update({k: v for k, v in self.__dict__.items()
                             if k not in ("_batch_shape", "_event_shape")})
        super(_MaskedAutoregressive, new).__init__(torch.Size(batch_shape), self.event_shape,
                                                   validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _param_dtype(self):
        p = next(iter(self.autoregressive_nn.parameters()), None)
        return (p.dtype, p.device) if p is not None else (torch.get_default_dtype(), "cpu")

    def _sample_conditional(self, params, i):  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, sample_shape=()) -> torch.Tensor:
        """Ancestral sampling: :math:`D` passes of the network, one variable per pass."""
        shape = self._extended_shape(torch.Size(sample_shape))
        dtype, device = self._param_dtype()
        with torch.no_grad():
            x = torch.zeros(shape, dtype=dtype, device=device)
            for i in self.ordering.tolist():
                x[..., i] = self._sample_conditional(self.autoregressive_nn(x), i)
        return x


class MADE(_MaskedAutoregressive):
    r"""Binary vectors with Bernoulli conditionals from a masked auto-regressive network
    (MADE, Germain et al. 2015; a neural auto-regressive network, book §20.10.9).

    .. math::

        \log p(x) = \sum_i \log \operatorname{Bernoulli}\bigl(x_i;\,
        \sigma(f_i(x_{o_{<k(i)}}))\bigr)

    with :math:`f` a :class:`pyro.nn.AutoRegressiveNN` built with ``param_dims=[1]`` (its
    masks make output :math:`i` depend only on the variables before :math:`i` in its
    ``permutation``, the ordering). Exact ``log_prob`` in one network pass; ``sample`` in
    :math:`D` passes.

    Parameters
    ----------
    autoregressive_nn : pyro.nn.AutoRegressiveNN
        ``AutoRegressiveNN(D, hidden_dims, param_dims=[1])``.
    validate_args : bool, optional
    """

    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, autoregressive_nn, *, validate_args=None):
        d = int(getattr(autoregressive_nn, "input_dim", 0) or 0)
        if list(getattr(autoregressive_nn, "param_dims", [])) != [1]:
            raise ValueError(
                "autoregressive_nn must output one logit per variable (param_dims=[1]). Got "
                f"param_dims={getattr(autoregressive_nn, 'param_dims', None)!r} instead."
            )
        super().__init__(autoregressive_nn, d, validate_args=validate_args)

    def logits(self, value):
        return self.autoregressive_nn(value)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        lp = _bernoulli_log_prob(self.logits(value), value).sum(-1)
        shape = broadcast_shapes(lp.shape, self.batch_shape)
        return lp.expand(shape) if lp.shape != shape else lp

    def _sample_conditional(self, logits, i):
        p = torch.sigmoid(logits[..., i])
        return (torch.rand_like(p) < p).to(p.dtype)


class MADEMixture(_MaskedAutoregressive):
    r"""Real vectors with mixture-of-Gaussians conditionals from a masked auto-regressive
    network (MADE, Germain et al. 2015, with the output layer of RNADE, Uria et al. 2013).

    .. math::

        p(x_i \mid x_{o_{<k(i)}}) = \sum_{j=1}^K \pi_{ij}\,
        \mathcal N\bigl(x_i;\, \mu_{ij}, \sigma_{ij}^2\bigr), \qquad
        (\operatorname{logit}\pi_{i\cdot}, \mu_{i\cdot}, \log\sigma_{i\cdot}) = f_i(x_{o_{<k(i)}}),

    :math:`f` an ``AutoRegressiveNN(D, hidden_dims, param_dims=[K, K, K])``. The log-scales
    are clamped to ``[log_scale_min, 10]`` so that a collapsing component cannot produce an
    infinite density. Exact ``log_prob`` in one network pass (:math:`O(K D)` after it).

    Parameters
    ----------
    autoregressive_nn : pyro.nn.AutoRegressiveNN
        With ``param_dims=[K, K, K]``, ``K >= 2``: mixture logits, means, log-scales.
    log_scale_min : float
        Lower clamp of :math:`\log\sigma` (default -7).
    validate_args : bool, optional
    """

    support = constraints.independent(constraints.real, 1)

    def __init__(self, autoregressive_nn, log_scale_min: float = -7.0, *, validate_args=None):
        pd = list(getattr(autoregressive_nn, "param_dims", []))
        if len(pd) != 3 or len(set(pd)) != 1 or pd[0] < 2:
            raise ValueError(
                "autoregressive_nn must output mixture logits, means and log-scales "
                f"(param_dims=[K, K, K] with K >= 2). Got param_dims={pd!r} instead."
            )
        self.num_components = int(pd[0])
        self.log_scale_min = float(log_scale_min)
        super().__init__(autoregressive_nn, int(autoregressive_nn.input_dim),
                         validate_args=validate_args)

    def conditionals(self, value):
        """Per-variable mixture parameters ``(log_weights, means, log_scales)``, each of shape
        ``(..., D, K)``."""
        logit, mu, log_s = self.autoregressive_nn(value)  # each (..., K, D)
        log_w = torch.log_softmax(logit.transpose(-1, -2), -1)
        return (log_w, mu.transpose(-1, -2),
                log_s.transpose(-1, -2).clamp(self.log_scale_min, 10.0))

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        log_w, mu, log_s = self.conditionals(value)
        z = (value.unsqueeze(-1) - mu) * torch.exp(-log_s)
        comp = -0.5 * z**2 - log_s - 0.5 * math.log(2 * math.pi)
        lp = torch.logsumexp(log_w + comp, -1).sum(-1)
        shape = broadcast_shapes(lp.shape, self.batch_shape)
        return lp.expand(shape) if lp.shape != shape else lp

    def _sample_conditional(self, params, i):
        logit, mu, log_s = (p[..., :, i] for p in params)  # (..., K)
        j = torch.distributions.Categorical(logits=logit).sample().unsqueeze(-1)
        m = mu.gather(-1, j).squeeze(-1)
        s = log_s.clamp(self.log_scale_min, 10.0).gather(-1, j).squeeze(-1).exp()
        return m + s * torch.randn_like(m)
