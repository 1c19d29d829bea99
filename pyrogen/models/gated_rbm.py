r"""Factored third-order (gated) Boltzmann machine (Memisevic & Hinton 2010; book §20.8).

A higher-order Boltzmann machine [2]_ with three-way interactions: a gated RBM models how an
*output* image :math:`y \in \{0,1\}^{n_y}` relates to an *input* image
:math:`x \in \{0,1\}^{n_x}` through binary "mapping" units :math:`h \in \{0,1\}^{n_h}`,
with three-way interactions factored over :math:`F` factors:

.. math::

    E(y, h; x) = -\sum_{f=1}^F \Big(\sum_i x_i W^x_{if}\Big)\Big(\sum_j y_j W^y_{jf}\Big)
                 \Big(\sum_k h_k W^h_{kf}\Big) - b^\top y - c^\top h,
    \qquad P(y \mid x) = \frac{1}{Z(x)} \sum_h e^{-E(y, h; x)}.

For fixed :math:`x` this is an RBM over :math:`(y, h)` with the *gated* weight matrix

.. math:: W(x)_{jk} = \sum_f (x^\top W^x_{:f})\, W^y_{jf} W^h_{kf},

so :math:`P(y \mid x)` is :class:`pyrogen.distributions.RBM` with a batch of weights (one per
input), its free energy sums :math:`h` out exactly, and :math:`\log Z(x)` is exact by
enumerating the smaller of :math:`y, h` (``Exact``) or an AIS estimate per input. The filter
pairs :math:`(W^x_{:f}, W^y_{:f})` learned on (image, translated image) pairs are the
phase-shifted "Fourier-like" filters of [1]_.

The model protocol. A row of the data is the pair ``[x, y]`` (``n_features = n_input +
n_output``). ``log_likelihood`` is the **conditional** :math:`\log P(y \mid x)` (exact, or an AIS
estimate) -- the gated model has no density of :math:`x`; ``sample(n)`` draws :math:`x` from a
factorial Bernoulli of the training inputs' base rates (a stand-in, not a model of inputs)
and
:math:`y \sim P(y \mid x)`; ``sample_output(x)`` draws :math:`y` for given inputs; ``transform``
gives the mapping units :math:`P(h_k = 1 \mid x, y)`.

References
----------
.. [1] R. Memisevic and G. E. Hinton, "Learning to represent spatial transformations with
   factored higher-order Boltzmann machines", Neural Computation 22 (2010).
.. [2] I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016, §20.8.
"""

from __future__ import annotations

import pyro
import pyro.optim
import torch
from torch import nn

from .._validation import check_binary, check_choice, check_float, check_int
from ..distributions import RBM
from ..evaluation import LogLikelihood
from ..infer.ais import base_rate_visible_bias
from ..normalizers import AIS, CD, Exact
from .base import FitHistory, GenerativeModel, register_model

__all__ = ["GatedRBM"]


@register_model("gated-rbm")
class GatedRBM(GenerativeModel):
    r"""Factored gated RBM :math:`P(y \mid x)` (Memisevic & Hinton 2010) as a Pyro model.

    Parameters
    ----------
    n_input : int
        Input units :math:`n_x`.
    n_output : int
        Output units :math:`n_y`.
    n_hidden : int
        Mapping units :math:`n_h`.
    n_factors : int
        Factors :math:`F`.
    k : int
        Gibbs steps of CD-k (chains start at the observed :math:`y` under the gated weights of
        its own :math:`x`).
    init_scale : float
        Standard deviation of the initial factor weights.
    exact_max_units : int
        ``log_likelihood`` is exact when :math:`\min(n_y, n_h)` is at most this (at most 24).
    ais_num_chains, ais_num_betas : int
        AIS settings otherwise (one :math:`\log Z(x)` per input).
    sample_steps : int
        Block Gibbs steps of the samplers when :math:`\min(n_y, n_h) > 16`.
    refresh_every : int
        Refresh period of the (monitoring) value of :math:`\log Z(x)` in the SVI loss.
    seed : int
        Seed of the initial weights.

    Notes
    -----
    Cost per example: :math:`O(F(n_x + n_y n_h))` to form :math:`W(x)`, then an RBM step of
    :math:`O(k\,n_y n_h)`. ``model(data)`` is ``pyro.sample("y", RBM(W(x), b, c,
    normalizer=CD(k)), obs=y)`` in a data plate; the guide is empty.
    """

    def __init__(
        self,
        n_input: int,
        n_output: int,
        n_hidden: int = 16,
        n_factors: int = 32,
        *,
        k: int = 1,
        init_scale: float = 0.1,
        exact_max_units: int = 16,
        ais_num_chains: int = 100,
        ais_num_betas: int = 1000,
        sample_steps: int = 100,
        refresh_every: int = 100,
        seed: int = 0,
    ):
        n_input = check_int(n_input, "n_input", low=1)
        n_output = check_int(n_output, "n_output", low=1)
        super().__init__(
            n_input=n_input,
            n_output=n_output,
            n_hidden=check_int(n_hidden, "n_hidden", low=1),
            n_factors=check_int(n_factors, "n_factors", low=1),
            k=check_int(k, "k", low=1),
            init_scale=check_float(init_scale, "init_scale", 0.0, None),
            exact_max_units=check_int(exact_max_units, "exact_max_units", low=1, high=24),
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=2),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            sample_steps=check_int(sample_steps, "sample_steps", low=0),
            refresh_every=check_int(refresh_every, "refresh_every", low=1),
            seed=check_int(seed, "seed", low=0),
        )
        cfg = self.config
        g = torch.Generator().manual_seed(cfg["seed"])
        s, f = cfg["init_scale"], cfg["n_factors"]
        self.input_factors = nn.Parameter(s * torch.randn(n_input, f, generator=g))
        self.output_factors = nn.Parameter(s * torch.randn(n_output, f, generator=g))
        self.hidden_factors = nn.Parameter(s * torch.randn(cfg["n_hidden"], f, generator=g))
        self.output_bias = nn.Parameter(torch.zeros(n_output))
        self.hidden_bias = nn.Parameter(torch.zeros(cfg["n_hidden"]))
        self.register_buffer("input_base_rate_logits", torch.zeros(n_input))
        self.register_buffer("output_base_rate_logits", torch.zeros(n_output))
        self._normalizer = None

    # ------------------------------------------------------------------ properties
    @property
    def n_features(self) -> int:
        """Width of a data row ``[x, y]``: ``n_input + n_output``."""
        return self.n_input + self.n_output

    @property
    def n_input(self) -> int:
        return int(self.config["n_input"])

    @property
    def n_output(self) -> int:
        return int(self.config["n_output"])

    @property
    def n_hidden(self) -> int:
        return int(self.config["n_hidden"])

    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact (smaller of output / hidden enumerable)."""
        return min(self.n_output, self.n_hidden) <= self.config["exact_max_units"]

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "ais_estimate"

    # ------------------------------------------------------------------ the gated RBM
    def split(self, data) -> tuple[torch.Tensor, torch.Tensor]:
        """Validate rows ``[x, y]`` (binary) and split them into ``x`` and ``y``."""
        data = check_binary(self._check_x(data, "x"), "x")
        return data[:, : self.n_input], data[:, self.n_input :]

    def gated_weight(self, x: torch.Tensor) -> torch.Tensor:
        r""":math:`W(x)_{jk} = \sum_f (x^\top W^x_{:f}) W^y_{jf} W^h_{kf}`, shape
        ``(n, n_output, n_hidden)`` for inputs of shape ``(n, n_input)``."""
        gate = x @ self.input_factors  # (n, F)
        return torch.einsum("nf,jf,kf->njk", gate, self.output_factors, self.hidden_factors)

    def energy(self, x, y, h) -> torch.Tensor:
        r"""The three-way energy :math:`E(y, h; x)` (factored form), broadcasting over rows."""
        fx = x @ self.input_factors
        fy = y @ self.output_factors
        fh = h @ self.hidden_factors
        return -(fx * fy * fh).sum(-1) - y @ self.output_bias - h @ self.hidden_bias

    def conditional(self, x: torch.Tensor, normalizer=None) -> RBM:
        r""":math:`P(y \mid x)` as an :class:`~pyrogen.distributions.RBM` of batch shape
        ``(n,)`` (weights :meth:`gated_weight`), normalizer default ``Exact()``."""
        return RBM(self.gated_weight(x), self.output_bias, self.hidden_bias,
                   normalizer=normalizer or Exact(max_units=24),
                   mcmc_steps=self.config["sample_steps"])

    def normalizer(self) -> CD:
        """The CD-k normalizer of :meth:`model`; the value of each :math:`\\log Z(x)` in the
        SVI loss is refreshed every ``refresh_every`` steps (exact when :math:`\\min(n_y, n_h)
        \\le 12`, else a short AIS run) and stale in between: a monitoring number."""
        if self._normalizer is None:
            if min(self.n_output, self.n_hidden) <= 12:
                est = Exact(chunk_size=256)
            else:
                est = AIS(num_chains=16, num_betas=300, base=self.output_base_rate_logits)
            self._normalizer = CD(num_steps=self.config["k"], estimator=est,
                                  refresh_every=self.config["refresh_every"])
        return self._normalizer

    @pyro.nn.pyro_method
    def model(self, data: torch.Tensor, num_data: int | None = None):
        """``pyro.sample("y", RBM(W(x), b, c, normalizer=CD(k)), obs=y)`` in the data plate."""
        x, y = self.split(data)
        d = RBM(self.gated_weight(x), self.output_bias, self.hidden_bias,
                normalizer=self.normalizer(), validate_args=False)
        with self._data_plate(data, num_data):
            return pyro.sample("y", d, obs=y)

    @pyro.nn.pyro_method
    def guide(self, data: torch.Tensor, num_data: int | None = None):
        """Empty: the mapping units are summed out."""

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("cd",)

    def fit(self, x, *, method: str = "cd", num_steps: int = 500, lr: float = 0.01,
            batch_size: int | None = None, tol: float | None = None, seed: int | None = None,
            progress: bool = True, callback=None, data_info: dict | None = None) -> FitHistory:
        r"""Train by ``pyro.infer.SVI`` (``Trace_ELBO``, Adam) with CD-k on rows ``[x, y]``.

        ``tol`` defaults to ``None`` (a fixed number of steps): the SVI loss carries a stale
        :math:`\log Z(x)` of the batch scored at the last refresh, a monitoring number; judge
        a fit by :meth:`log_likelihood` on held-out pairs. Other arguments as for
        :meth:`pyrogen.models.base.GenerativeModel.fit`.
        """
        check_choice(method, "method", self.fit_methods())
        xs, ys = self.split(x)
        with torch.no_grad():
            first = not bool(self.output_base_rate_logits.any())
            self.input_base_rate_logits.copy_(base_rate_visible_bias(xs))
            self.output_base_rate_logits.copy_(base_rate_visible_bias(ys))
            if first and not bool(self.output_bias.any()):
                self.output_bias.copy_(self.output_base_rate_logits)
        hist = self._fit_svi(torch.cat([xs, ys], -1), num_steps=num_steps, lr=lr,
                             batch_size=batch_size, tol=tol, seed=seed, progress=progress,
                             callback=callback, data_info=data_info)
        hist.method = "cd"
        hist.info["learning_rule"] = f"CD-{self.config['k']} on P(y | x)"
        return hist

    # ------------------------------------------------------------------ evaluation
    def log_likelihood(self, x, *, method: str | None = None, num_chains: int | None = None,
                       num_betas: int | None = None, seed: int | None = None) -> LogLikelihood:
        r"""The **conditional** :math:`\log P(y \mid x)` of every row ``[x, y]``, shape ``(n,)``.

        Exact (``kind="exact"``) when :attr:`exact`, else (or with ``method="ais"``) an AIS
        estimate of each :math:`\log Z(x)` (``kind="ais_estimate"``, a stochastic upper bound
        in expectation) with per-row standard errors.
        """
        method = ("exact" if self.exact else "ais") if method is None else method
        check_choice(method, "method", ("exact", "ais"))
        xs, ys = self.split(x)
        with torch.no_grad():
            d = self.conditional(xs)
            unnorm = d.unnormalized_log_prob(ys)
            info = {"conditional": "log P(y | x)"}
            if method == "exact":
                units = min(self.n_output, self.n_hidden)
                chunk = max(1, 2**22 // (xs.shape[0] * max(self.n_output, self.n_hidden)))
                log_z = d.enumerate_log_z(chunk_size=min(chunk, 2**units))
                return LogLikelihood(values=unnorm - log_z, kind="exact", info=info)
            ais = AIS(num_chains=num_chains or self.config["ais_num_chains"],
                      num_betas=num_betas or self.config["ais_num_betas"],
                      base=self.output_base_rate_logits, seed=seed)
            est = ais(d)
        info.update(num_chains=ais.num_chains, num_betas=est.info["num_betas"],
                    min_ess=float(est.ess.min()))
        return LogLikelihood(values=unnorm - est.log_z, kind="ais_estimate", stderr=est.stderr,
                             info=info)

    def sample_output(self, x, *, num_steps: int | None = None) -> torch.Tensor:
        """Draws :math:`y \\sim P(y \\mid x)` for inputs ``x`` of shape ``(n, n_input)``: exact
        (enumeration) when :math:`\\min(n_y, n_h) \\le 16`, otherwise ``num_steps`` (default
        ``sample_steps``) block Gibbs steps from the output base rates."""
        from .._validation import check_data

        x = check_binary(check_data(x, "x", n_features=self.n_input, dtype=self.dtype,
                                    device=self.device), "x")
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        with torch.no_grad():
            init = torch.bernoulli(torch.sigmoid(self.output_base_rate_logits).expand(
                x.shape[0], self.n_output))
            d = RBM(self.gated_weight(x), self.output_bias, self.hidden_bias,
                    mcmc_steps=steps, mcmc_init=init)
            return d.sample()

    def sample(self, n, *, num_steps: int | None = None) -> torch.Tensor:
        """Rows ``[x, y]``: :math:`x` from the factorial Bernoulli of the training inputs' base
        rates (the gated model has no density of :math:`x`; uniform before ``fit``), then
        :math:`y \\sim P(y \\mid x)` (:meth:`sample_output`). Shape ``(n, n_input + n_output)``."""
        n = self._check_n(n)
        with torch.no_grad():
            x = torch.bernoulli(torch.sigmoid(self.input_base_rate_logits).expand(
                n, self.n_input))
        return torch.cat([x, self.sample_output(x, num_steps=num_steps)], -1)

    def transform(self, x) -> torch.Tensor:
        r"""Mapping units :math:`P(h_k = 1 \mid x, y) = \sigma(c_k + \sum_f W^h_{kf}
        (x^\top W^x_{:f})(y^\top W^y_{:f}))`, shape ``(n, n_hidden)``."""
        xs, ys = self.split(x)
        with torch.no_grad():
            pre = ((xs @ self.input_factors) * (ys @ self.output_factors)) @ self.hidden_factors.T
            return torch.sigmoid(self.hidden_bias + pre)
