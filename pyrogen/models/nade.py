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
from pyro.nn import PyroModule
from torch import nn

from .._validation import check_binary, check_choice, check_int
from ..distributions.nade import NADE, NADEEnsemble
from ..evaluation import LogLikelihood
from .base import FitHistory, GenerativeModel, register_model

__all__ = ["NADEModel", "NADEGuide"]


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
