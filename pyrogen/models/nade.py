r"""NADE as a model (maximum likelihood by SVI) and as a guide family for sigmoid belief nets.

:class:`NADEModel` observes binary data under the :class:`~pyrogen.distributions.NADE`
distribution (book §20.10.10, [1]_). It has no latent variables: the guide is empty and
``Trace_ELBO`` is then the exact negative log-likelihood, so SVI *is* maximum likelihood.
With ``order_agnostic=True`` each call of :meth:`NADEModel.model` draws a fresh random
ordering (order-agnostic training, Uria, Murray & Larochelle 2014 [2]_), which maximizes
:math:`\mathbb E_o \log p_o(x)`, a lower bound on the log-likelihood of the ensemble over all
orderings; :meth:`NADEModel.log_likelihood` then evaluates the ensemble of ``num_orderings``
fixed orderings exactly (:class:`~pyrogen.distributions.NADEEnsemble`: the log of the mean
probability, not the mean of log-probabilities or of conditionals).

:class:`NADEGuide` is a conditional NADE recognition distribution :math:`q(h \mid x)` for
:class:`~pyrogen.models.SigmoidBeliefNet` / :class:`~pyrogen.models.HelmholtzMachine`: each hidden
layer is a NADE over its units whose biases are affine in the layer below (Bornschein & Bengio
2015 used such NADE layers in reweighted wake-sleep [3]_); the units of a layer are no longer
independent given the layer below, which a factorial guide cannot express.

References
----------
.. [1] H. Larochelle, I. Murray, "The neural autoregressive distribution estimator",
   AISTATS 2011.
.. [2] B. Uria, I. Murray, H. Larochelle, "A deep and tractable density estimator", ICML 2014.
.. [3] J. Bornschein, Y. Bengio, "Reweighted wake-sleep", ICLR 2015.
"""

from __future__ import annotations

import itertools
import math

import pyro
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from torch import nn

from .._validation import check_binary, check_choice, check_int
from ..distributions.nade import NADE, NADEEnsemble, check_ordering
from ..evaluation import LogLikelihood, log_mean_exp
from .base import FitHistory, GenerativeModel, register_model

__all__ = ["NADEModel", "NADEGuide", "DeepNADEModel"]


def _init_uniform(shape, scale: float) -> nn.Parameter:
    return nn.Parameter((torch.rand(shape) * 2.0 - 1.0) * scale)


@register_model("nade")
class NADEModel(GenerativeModel):
    r"""Neural auto-regressive density estimator over binary vectors, fitted by maximum
    likelihood (book §20.10.10).

    .. math::

        \log p(x) = \sum_{k=1}^D \log \operatorname{Bernoulli}\bigl(x_{o_k};\,
        \sigma(b_{o_k} + V_{o_k,:} h_k)\bigr), \qquad
        h_k = \sigma\Bigl(c + \sum_{j<k} W_{:,o_j} x_{o_j}\Bigr),

    exact (kind ``"exact"``), :math:`O(DH)` per example. Pyro site ``"x"`` (observed) in the
    ``"data"`` plate; no latent sites, so ``guide`` is empty and SVI with ``Trace_ELBO`` is
    maximum likelihood (the reported loss is the exact negative log-likelihood per example).

    Parameters
    ----------
    n_features : int
        :math:`D`.
    n_hidden : int
        :math:`H` (500 in Larochelle & Murray 2011 on MNIST).
    order_agnostic : bool
        Train over random orderings: every call of :meth:`model` draws a uniformly random
        ordering (one per call, i.e. per minibatch; Uria, Murray & Larochelle 2014).
    num_orderings : int
        :math:`M`: :meth:`log_likelihood` and :meth:`sample` use the uniform mixture over the
        ``M`` orderings in the buffer ``orderings`` (row 0 is the identity, the others drawn at
        construction). ``1``: the single identity-order NADE.
    seed : int or None
        Seeds the initial parameters and the ensemble's orderings (see
        :class:`~pyrogen.models.GenerativeModel`).

    Attributes
    ----------
    weight : Parameter ``(H, D)``
        :math:`W`.
    hidden_bias : Parameter ``(H,)``
        :math:`c`.
    out_weight : Parameter ``(D, H)``
        :math:`V`.
    bias : Parameter ``(D,)``
        :math:`b`.
    orderings : buffer ``(M, D)``
    """

    def __init__(self, n_features: int, n_hidden: int = 500, order_agnostic: bool = False,
                 num_orderings: int = 1, seed: int | None = 0):
        n_features = check_int(n_features, "n_features", low=2)
        n_hidden = check_int(n_hidden, "n_hidden", low=1)
        if not isinstance(order_agnostic, bool):
            raise TypeError(
                f"order_agnostic must be a bool. Got {order_agnostic!r} of type "
                f"{type(order_agnostic).__name__} instead."
            )
        num_orderings = check_int(num_orderings, "num_orderings", low=1)
        super().__init__(
            n_features=n_features, n_hidden=n_hidden, order_agnostic=order_agnostic,
            num_orderings=num_orderings,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        D, H = n_features, n_hidden
        self.weight = _init_uniform((H, D), 1.0 / math.sqrt(D))
        self.hidden_bias = nn.Parameter(torch.zeros(H))
        self.out_weight = _init_uniform((D, H), 1.0 / math.sqrt(H))
        self.bias = nn.Parameter(torch.zeros(D))
        rows = [torch.arange(D)] + [torch.randperm(D) for _ in range(num_orderings - 1)]
        self.register_buffer("orderings", torch.stack(rows))

    # ------------------------------------------------------------------ distributions
    def distribution(self, ordering=None) -> NADE:
        """The :class:`~pyrogen.distributions.NADE` with this model's parameters and
        ``ordering`` (identity when ``None``)."""
        return NADE(self.weight, self.hidden_bias, self.out_weight, self.bias, ordering)

    def ensemble(self) -> NADE | NADEEnsemble:
        """The distribution :meth:`log_likelihood` and :meth:`sample` use: the NADE of
        ``orderings[0]`` when ``num_orderings == 1``, else the uniform
        :class:`~pyrogen.distributions.NADEEnsemble` over ``orderings``."""
        if self.orderings.shape[0] == 1:
            return self.distribution(None)
        return NADEEnsemble(self.distribution(None), self.orderings)

    def initialize_from_data(self, x) -> NADEModel:
        r"""Set the output biases to the logits of the pixel marginals of ``x`` (clamped to
        ``[1e-3, 1 - 1e-3]``): a common NADE initialisation that starts training at the
        factorial model's log-likelihood plus the contribution of :math:`V h`. Returns self."""
        x = self._check_x(x)
        check_binary(x, "x")
        with torch.no_grad():
            p = x.mean(0).clamp(1e-3, 1 - 1e-3)
            self.bias.copy_(torch.log(p) - torch.log1p(-p))
        return self

    # ------------------------------------------------------------------ Pyro programs
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None, ordering=None):
        """``x`` observed at site ``"x"`` under the NADE of ``ordering`` (identity, or a fresh
        random ordering per call when ``order_agnostic``)."""
        if ordering is None and self.config["order_agnostic"]:
            ordering = torch.randperm(self.n_features, device=x.device)
        with self._data_plate(x, num_data):
            return pyro.sample("x", self.distribution(ordering), obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None, ordering=None):
        """Empty: there are no latent variables."""

    # ------------------------------------------------------------------ protocol verbs
    def log_likelihood(self, x, batch_size: int = 1000) -> LogLikelihood:
        r"""Exact per-example :math:`\log p(x)` (kind ``"exact"``): of the single NADE, or of
        the ensemble over ``orderings`` (:math:`\log \frac1M \sum_m p_{o^{(m)}}(x)`).
        Evaluated in chunks of ``batch_size`` rows (memory :math:`O(\text{batch} \cdot DH)`)."""
        x = self._check_x(x)
        check_binary(x, "x")
        batch_size = check_int(batch_size, "batch_size", low=1)
        d = self.ensemble()
        with torch.no_grad():
            values = torch.cat([d.log_prob(c) for c in torch.split(x, batch_size)])
        m = int(self.orderings.shape[0])
        info = {"estimator": "NADE, exact" if m == 1 else
                f"ensemble of {m} orderings, exact log-mean-exp of probabilities"}
        return LogLikelihood(values=values, kind="exact", info=info)

    def sample(self, n: int) -> torch.Tensor:
        """Ancestral samples, shape ``(n, D)`` (:math:`D` sequential steps; from the ensemble,
        the ordering of each draw is uniform over ``orderings``)."""
        n = self._check_n(n)
        return self.ensemble().sample((n,))

    def transform(self, x, reduce: str = "full") -> torch.Tensor:
        r"""Hidden-unit activations, shape ``(n, H)``.

        ``reduce="full"`` (default): :math:`\sigma(c + W x)`, the hidden state after the whole
        vector (the state NADE would use for a :math:`(D{+}1)`-th variable; independent of
        the ordering). ``reduce="mean"``: the mean of :math:`h_k` over the :math:`D`
        positions of the identity ordering (each :math:`h_k` has seen :math:`x_{<k}`).
        """
        x = self._check_x(x)
        check_choice(reduce, "reduce", ("full", "mean"))
        with torch.no_grad():
            if reduce == "full":
                return torch.sigmoid(x @ self.weight.T + self.hidden_bias)
            return self.distribution(None).hidden(x).mean(-2)

    def fit(self, x, *, method: str = "svi", num_steps: int = 1000, lr: float = 1e-3,
            batch_size: int | None = 100, **kwargs) -> FitHistory:
        """Maximum likelihood by SVI (``Trace_ELBO`` on an empty guide = the exact negative
        log-likelihood per example); the shared training loop of
        :meth:`GenerativeModel.fit`."""
        xx = self._check_x(x)
        check_binary(xx, "x")
        return super().fit(xx, method=method, num_steps=num_steps, lr=lr,
                           batch_size=batch_size, **kwargs)


_guide_counter = itertools.count()


class NADEGuide(PyroModule):
    r"""Conditional NADE recognition distribution :math:`q(h \mid x)` for a
    :class:`~pyrogen.models.SigmoidBeliefNet` (or Helmholtz machine).

    .. math::

        q(h \mid x) = \prod_{l=1}^L \operatorname{NADE}\bigl(h^{(l)};\,
        W_l, V_l,\; c_l + U_l h^{(l-1)},\; b_l + R_l h^{(l-1)}\bigr), \quad h^{(0)} = x,

    one NADE per hidden layer over its :math:`h_l` units (identity ordering), with ``n_hidden``
    NADE hidden units and biases affine in the layer below (a conditional NADE: per-example
    biases, shared :math:`W_l, V_l`). A drop-in replacement of ``sbn.guide``: same signature,
    same sites ``"h1" ... "hL"`` in the ``"data"`` plate, so
    ``SVI(sbn.model, NADEGuide(sbn), optim, ReweightedWakeSleep(K))`` trains both (RWS's
    wake-:math:`\phi` phase trains the guide). Cost per example: :math:`O(\sum_l h_l
    (h_{l-1} + 2\,\text{n\_hidden}))` to score, :math:`h_l` sequential steps to sample.

    Parameters
    ----------
    sbn : pyrogen.models.SigmoidBeliefNet
        The generative model (its ``layer_sizes``, dtype, data plate).
    n_hidden : int
        NADE hidden units per layer.
    """

    def __init__(self, sbn, n_hidden: int = 50):
        layer_sizes = getattr(sbn, "layer_sizes", None)
        if layer_sizes is None or not isinstance(sbn, GenerativeModel):
            raise TypeError(
                "sbn must be a SigmoidBeliefNet or HelmholtzMachine. Got "
                f"{type(sbn).__name__} instead."
            )
        n_hidden = check_int(n_hidden, "n_hidden", low=1)
        super().__init__(name=f"NADEGuide_{next(_guide_counter)}")
        self.layer_sizes = list(layer_sizes)
        self.n_hidden = n_hidden
        self._plate = sbn._data_plate
        self.input = nn.ModuleList()  # lower layer -> (c_l, b_l)
        self.weight = nn.ParameterList()
        self.out_weight = nn.ParameterList()
        for l in range(1, len(layer_sizes)):
            lower, size = layer_sizes[l - 1], layer_sizes[l]
            lin = nn.Linear(lower, n_hidden + size)
            with torch.no_grad():
                lin.weight.mul_(0.3)
                lin.bias.zero_()
            self.input.append(lin)
            self.weight.append(_init_uniform((n_hidden, size), 0.1 / math.sqrt(size)))
            self.out_weight.append(_init_uniform((size, n_hidden), 0.1 / math.sqrt(n_hidden)))
        self.to(sbn.dtype)

    def layer_distribution(self, l: int, lower: torch.Tensor) -> NADE:
        r""":math:`q(h^{(l)} \mid h^{(l-1)} = \text{lower})`, batch shape
        ``lower.shape[:-1]``."""
        cb = self.input[l - 1](lower)
        c, b = cb[..., : self.n_hidden], cb[..., self.n_hidden :]
        return NADE(self.weight[l - 1], c, self.out_weight[l - 1], b)

    def log_prob(self, x: torch.Tensor, hs: list[torch.Tensor]) -> torch.Tensor:
        r""":math:`\log q(h \mid x)` for ``hs = [h1, ..., hL]`` (broadcasting)."""
        lower, lq = x, 0.0
        for l, h in enumerate(hs, start=1):
            lq = lq + self.layer_distribution(l, lower).log_prob(h)
            lower = h
        return lq

    def forward(self, x: torch.Tensor, num_data: int | None = None, observations=None):
        """Sample ``h1 ... hL`` bottom-up inside the ``"data"`` plate (the guide)."""
        if observations is not None and "x" in observations:
            x = observations["x"]
        with self._plate(x, num_data):
            lower, hs = x, []
            for l in range(1, len(self.layer_sizes)):
                lower = pyro.sample(f"h{l}", self.layer_distribution(l, lower))
                hs.append(lower)
        return hs


_DEEP_ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


@register_model("deep_nade")
class DeepNADEModel(GenerativeModel):
    r"""Deep NADE with order-agnostic training (DeepNADE / EoNADE, Uria, Murray & Larochelle
    2014 [2]_; book §20.10.10).

    One feed-forward network computes every conditional of every ordering from the observed
    subset: for a mask :math:`m \in \{0,1\}^D` (1 = observed),

    .. math::

        p(x_i \mid x_{m}) = \operatorname{Bernoulli}\bigl(x_i;\ \sigma(f_\theta([x\odot m,\ m])_i)
        \bigr), \qquad i \notin m,

    with :math:`f_\theta` an MLP (``hidden_dims`` layers, ``activation``). An ordering
    :math:`o` defines the NADE :math:`\log p_o(x) = \sum_{d=1}^D \log p(x_{o_d} \mid
    x_{o_{<d}})` (exact, normalized). Training maximizes :math:`\mathbb E_{o}\log p_o(x)` over
    uniformly random orderings by the unbiased one-mask estimator of [2]_ (eq. 9):

    .. math::

        \widehat{\mathcal J}(x) = \frac{D}{D - d} \sum_{i \notin m} \log p(x_i \mid x_{m}),
        \qquad d \sim \mathcal U\{0, \dots, D-1\},\ m \text{ a uniform subset of size } d,

    one draw per example (:meth:`order_agnostic_objective`). :meth:`model` holds it as a
    ``pyro.factor`` in the ``"data"`` plate with an empty :meth:`guide`, so ``Trace_ELBO``
    on them is SVI on :math:`-\mathbb E_o \log p_o(x)` (not a bound on an ensemble; a
    stochastic objective whose expectation is exact).

    The model of the data is the **ensemble** over the ``num_orderings`` orderings in the
    buffer ``orderings`` (row 0 the identity, the others drawn at construction),
    :math:`p(x) = \frac1M \sum_m p_{o^{(m)}}(x)` ("EoNADE"); :meth:`log_likelihood` computes its
    log exactly as the log of the **mean probability** (never the mean of log-probabilities,
    which by Jensen is lower, nor of the conditionals). :math:`\mathbb E_o\log p_o(x) \le
    \log \mathbb E_o p_o(x)`.

    Registered as ``"deep_nade"`` (``pyrogen.models.MODELS``); the :class:`NADEModel` with
    ``order_agnostic=True`` is the one-hidden-layer, weight-shared variant.

    Parameters
    ----------
    n_features : int
        :math:`D \ge 2`.
    hidden_dims : tuple of int
        Hidden layers of :math:`f_\theta` (``(500, 500)``: the 2-hidden-layer model of [2]_).
    activation : {"relu", "sigmoid", "tanh"}
    num_orderings : int
        :math:`M` of the ensemble used by :meth:`log_likelihood` and :meth:`sample`.
    seed : int or None
        Seeds the initial weights and the orderings (see
        :class:`~pyrogen.models.GenerativeModel`).

    Notes
    -----
    Cost: training, one network pass per example (input width :math:`2D`). Exact
    :math:`\log p_o(x)`: the first layer's pre-activations for the :math:`D` masks of one
    ordering are a cumulative sum (:math:`O(DH_1)`), the higher layers cost
    :math:`O(D H_l H_{l+1})` per example and ordering, and only the output unit of the next
    variable is computed (:math:`O(D H_L)`); memory :math:`O(\text{batch}\cdot D\cdot H)`.
    Sampling: :math:`D` sequential passes.
    """

    def __init__(self, n_features: int, hidden_dims=(500, 500), activation: str = "relu",
                 num_orderings: int = 1, seed: int | None = 0):
        n_features = check_int(n_features, "n_features", low=2)
        if isinstance(hidden_dims, (int, str)) or not hasattr(hidden_dims, "__iter__"):
            raise TypeError(
                f"hidden_dims must be a sequence of positive ints. Got {hidden_dims!r} of type "
                f"{type(hidden_dims).__name__} instead."
            )
        hidden = tuple(check_int(h, "hidden_dims entries", low=1) for h in hidden_dims)
        if not hidden:
            raise ValueError("hidden_dims must hold at least one layer. Got () instead.")
        check_choice(activation, "activation", tuple(_DEEP_ACTIVATIONS))
        num_orderings = check_int(num_orderings, "num_orderings", low=1)
        super().__init__(n_features=n_features, hidden_dims=list(hidden), activation=activation,
                         num_orderings=num_orderings,
                         seed=None if seed is None else check_int(seed, "seed", low=0))
        D = n_features
        sizes = [2 * D, *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.act = _DEEP_ACTIVATIONS[activation]()
        self.out = nn.Linear(hidden[-1], D)
        rows = [torch.arange(D)] + [torch.randperm(D) for _ in range(num_orderings - 1)]
        self.register_buffer("orderings", torch.stack(rows))

    # ------------------------------------------------------------------ the network
    def conditional_logits(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        r"""Logits of :math:`p(x_i \mid x_{m})` for every :math:`i`, shape ``x.shape``
        (entries at observed :math:`i \in m` are computed but meaningless).

        ``mask`` (0/1, broadcasting against ``x``) marks the observed variables."""
        mask = mask.to(x.dtype)
        h = torch.cat([x * mask, mask.expand_as(x)], -1)
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.out(h)

    def initialize_from_data(self, x) -> DeepNADEModel:
        """Output biases at the logits of the pixel marginals of ``x`` (clamped to
        ``[1e-3, 1 - 1e-3]``). Returns self."""
        x = check_binary(self._check_x(x), "x")
        with torch.no_grad():
            p = x.mean(0).clamp(1e-3, 1 - 1e-3)
            self.out.bias.copy_(torch.log(p) - torch.log1p(-p))
        return self

    def order_agnostic_objective(self, x: torch.Tensor) -> torch.Tensor:
        r"""One draw per example of :math:`\widehat{\mathcal J}(x)` (class docstring), shape
        ``(n,)``: unbiased for :math:`\mathbb E_o \log p_o(x)`, differentiable in
        :math:`\theta`."""
        n, D = x.shape
        d = torch.randint(0, D, (n, 1), device=x.device)
        ranks = torch.rand(n, D, device=x.device).argsort(-1).argsort(-1)
        mask = (ranks < d).to(x.dtype)
        ll = -F.binary_cross_entropy_with_logits(self.conditional_logits(x, mask), x,
                                                 reduction="none")
        return D / (D - d[:, 0]).to(x.dtype) * ((1.0 - mask) * ll).sum(-1)

    # ------------------------------------------------------------------ Pyro programs
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        r"""``pyro.factor("order_agnostic", ...)`` of :meth:`order_agnostic_objective` in the
        ``"data"`` plate: ``Trace_ELBO`` on ``model``/``guide`` is an unbiased estimate of
        :math:`-\sum_n \mathbb E_o \log p_o(x_n)` (scaled to ``num_data``)."""
        pyro.module(self._pyro_name, self)
        with self._data_plate(x, num_data):
            pyro.factor("order_agnostic", self.order_agnostic_objective(x))

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        """Empty: there are no latent variables."""

    # ------------------------------------------------------------------ exact evaluation
    def log_prob_ordering(self, x: torch.Tensor, ordering=None) -> torch.Tensor:
        r"""Exact :math:`\log p_o(x)` of the NADE of one ordering, shape ``(n,)`` (autograd
        through it works; wrap in ``torch.no_grad()`` to evaluate)."""
        x = check_binary(self._check_x(x), "x")
        D = self.n_features
        o = (torch.arange(D, device=x.device) if ordering is None
             else check_ordering(ordering, D).to(x.device))
        first = self.hidden[0]
        wx, wm = first.weight[:, :D].T[o], first.weight[:, D:].T[o]  # (D, H1), ordered
        xo = x[:, o]  # (n, D)
        contrib = xo[..., None] * wx + wm  # (n, D, H1): what variable o_j adds once observed
        pre = torch.cumsum(contrib, 1) - contrib + first.bias  # exclusive: o_<d observed
        h = self.act(pre)
        for layer in self.hidden[1:]:
            h = self.act(layer(h))
        logits = (h * self.out.weight[o]).sum(-1) + self.out.bias[o]  # (n, D)
        return -F.binary_cross_entropy_with_logits(logits, xo, reduction="none").sum(-1)

    @torch.no_grad()
    def log_prob_orderings(self, x, orderings=None, batch_size: int = 50) -> torch.Tensor:
        r""":math:`\log p_{o^{(m)}}(x_n)` for every ordering (rows) and example (columns), shape
        ``(M, n)``; ``orderings`` defaults to the buffer ``orderings``."""
        x = check_binary(self._check_x(x), "x")
        batch_size = check_int(batch_size, "batch_size", low=1)
        orderings = self.orderings if orderings is None else orderings
        return torch.stack([
            torch.cat([self.log_prob_ordering(c, o) for c in torch.split(x, batch_size)])
            for o in orderings
        ])

    def log_likelihood(self, x, batch_size: int = 50) -> LogLikelihood:
        r"""Exact per-example log-likelihood of the ensemble (kind ``"exact"``),
        :math:`\log \frac1M \sum_m p_{o^{(m)}}(x)`, computed by
        :func:`~pyrogen.evaluation.log_mean_exp` over the orderings (its ``stderr`` is
        returned in ``info["ordering_stderr"]``: the delta-method error of this value as an
        estimate of the ensemble over **all** :math:`D!` orderings, for which the finite
        ensemble is a stochastic lower bound in expectation). ``info["mean_single"]`` holds
        :math:`\frac1M\sum_m \log p_{o^{(m)}}(x)` per example (the mean of log-probabilities,
        lower by Jensen)."""
        lp = self.log_prob_orderings(x, batch_size=batch_size)
        lme = log_mean_exp(lp, 0)
        m = lp.shape[0]
        info = {"estimator": f"ensemble of {m} orderings, exact log-mean-exp of probabilities",
                "ordering_stderr": lme.stderr if m > 1 else None,
                "mean_single": lp.double().mean(0)}
        return LogLikelihood(values=lme.value.to(lp.dtype), kind="exact", info=info)

    # ------------------------------------------------------------------ sampling / features
    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Ancestral samples, shape ``(n, D)``: each draw picks an ordering of the ensemble
        uniformly, then :math:`D` sequential network passes."""
        n = self._check_n(n)
        D = self.n_features
        dtype, dev = self.dtype, self.device
        which = torch.randint(0, self.orderings.shape[0], (n,), device=dev)
        o = self.orderings[which]  # (n, D)
        x = torch.zeros(n, D, dtype=dtype, device=dev)
        mask = torch.zeros(n, D, dtype=dtype, device=dev)
        rows = torch.arange(n, device=dev)
        for d in range(D):
            i = o[:, d]
            p = torch.sigmoid(self.conditional_logits(x, mask)[rows, i])
            x[rows, i] = torch.bernoulli(p)
            mask[rows, i] = 1.0
        return x

    @torch.no_grad()
    def transform(self, x) -> torch.Tensor:
        """Last hidden layer with every variable observed, shape ``(n, H_L)``."""
        x = self._check_x(x)
        h = torch.cat([x, torch.ones_like(x)], -1)
        for layer in self.hidden:
            h = self.act(layer(h))
        return h

    def fit(self, x, *, method: str = "svi", num_steps: int = 1000, lr: float = 1e-3,
            batch_size: int | None = 100, **kwargs) -> FitHistory:
        """Order-agnostic training by SVI on :meth:`model`/:meth:`guide` (the shared training
        loop of :meth:`GenerativeModel.fit`; recorded loss: the per-example estimate of
        :math:`-\\mathbb E_o\\log p_o(x)`)."""
        xx = check_binary(self._check_x(x), "x")
        return super().fit(xx, method=method, num_steps=num_steps, lr=lr,
                           batch_size=batch_size, **kwargs)
