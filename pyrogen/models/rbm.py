r"""Restricted Boltzmann machines following the model protocol (book §20.2, §20.5.1).

:class:`BernoulliRBM` is a PyroModule over the :class:`pyrogen.distributions.RBM`
distribution: ``model(x)`` is ``pyro.sample("x", RBM(W, b, c, normalizer=...), obs=x)`` in a data
plate, with no latent sample sites (the hidden units are summed out in the free energy), and the
guide is empty. Training is ``pyro.infer.SVI`` + ``Trace_ELBO`` on that model: with the
:class:`~pyrogen.normalizers.PCD` normalizer the SVI gradient *is* the PCD learning rule, with
:class:`~pyrogen.normalizers.CD` it is CD-k, with :class:`~pyrogen.normalizers.Exact` it is the
exact likelihood gradient (small hidden or visible layers only).

``log_likelihood`` is exact (enumeration of the smaller layer) when that layer has at most
``exact_max_units`` units, otherwise an AIS estimate (Salakhutdinov & Murray 2008 base-rate path,
base fitted to the training data) with its standard error; :meth:`BernoulliRBM.raise_check`
gives the conservative RAISE estimate (Burda et al. 2015) to compare it with.

:class:`GaussianBernoulliRBM` is the same construction over the
:class:`pyrogen.distributions.GaussianBernoulliRBM` distribution (real-valued visible units):
fit by SVI with PCD / CD / the exact gradient, log-likelihood exact by enumerating the hidden
layer when it is small, else an AIS estimate (path of GB-RBMs with weights scaled by
:math:`\beta`) with its standard error.
"""

from __future__ import annotations

import pyro
import torch
from torch import nn

from .._validation import check_binary, check_choice, check_float, check_int
from ..distributions import RBM
from ..distributions import GaussianBernoulliRBM as _GBRBMDistribution
from ..evaluation import LogLikelihood
from ..infer.ais import DEFAULT_NUM_BETAS
from ..normalizers import AIS, CD, PCD, Exact
from .base import FitHistory, GenerativeModel, register_model

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM"]

_TRAINING = ("pcd", "cd", "exact")


@register_model("rbm")
class BernoulliRBM(GenerativeModel):
    r"""Binary RBM :math:`E(v,h) = -b^\top v - c^\top h - v^\top W h` (eq. 20.5) as a Pyro model.

    Parameters
    ----------
    n_features : int
        Visible units :math:`n_v`.
    n_hidden : int
        Hidden units :math:`n_h`.
    training : {"pcd", "cd", "exact"}
        Normalizer used by :meth:`model` (and the default ``method`` of :meth:`fit`).
    k : int
        Gibbs steps per SVI step for PCD-k / CD-k.
    num_chains : int
        Persistent chains of PCD.
    init_scale : float
        Standard deviation of the initial weights (biases start at 0; at the first ``fit`` the
        visible biases are set to the log-odds of the data's base rates, Hinton's recipe).
    exact_max_units : int
        ``log_likelihood`` is exact when :math:`\min(n_v, n_h)` is at most this (at most 24).
    ais_num_chains, ais_num_betas : int
        Defaults of the AIS estimate of ``log_likelihood`` when it is not exact (100 chains and
        :data:`pyrogen.infer.ais.DEFAULT_NUM_BETAS` temperatures: the measured 0.1-nat schedule).
    sample_steps : int
        Block Gibbs steps of :meth:`sample` when both layers exceed 16 units (otherwise
        sampling is exact); chains start from the base-rate model.
    seed : int
        Seed of the initial weights.

    Notes
    -----
    Cost: one SVI step on a batch of :math:`B` rows is :math:`O((B + k S) n_v n_h)` for
    :math:`S` PCD chains; the value of :math:`\log Z` shown in the SVI loss is refreshed every
    100 steps (``Exact`` when :math:`\min(n_v,n_h) \le 16`, else a small AIS run) and is
    *stale* in between: the training loss is a monitoring number, not a log-likelihood.
    """

    def __init__(
        self,
        n_features: int,
        n_hidden: int = 64,
        *,
        training: str = "pcd",
        k: int = 1,
        num_chains: int = 100,
        init_scale: float = 0.01,
        exact_max_units: int = 20,
        ais_num_chains: int = 100,
        ais_num_betas: int = DEFAULT_NUM_BETAS,
        sample_steps: int = 1000,
        seed: int = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        n_hidden = check_int(n_hidden, "n_hidden", low=1)
        check_choice(training, "training", _TRAINING)
        k = check_int(k, "k", low=1)
        num_chains = check_int(num_chains, "num_chains", low=1)
        init_scale = check_float(init_scale, "init_scale", 0.0, None)
        exact_max_units = check_int(exact_max_units, "exact_max_units", low=1, high=24)
        ais_num_chains = check_int(ais_num_chains, "ais_num_chains", low=2)
        ais_num_betas = check_int(ais_num_betas, "ais_num_betas", low=2)
        sample_steps = check_int(sample_steps, "sample_steps", low=0)
        seed = check_int(seed, "seed", low=0)
        super().__init__(
            n_features=n_features,
            n_hidden=n_hidden,
            training=training,
            k=k,
            num_chains=num_chains,
            init_scale=init_scale,
            exact_max_units=exact_max_units,
            ais_num_chains=ais_num_chains,
            ais_num_betas=ais_num_betas,
            sample_steps=sample_steps,
            seed=seed,
        )
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(init_scale * torch.randn(n_features, n_hidden, generator=g))
        self.visible_bias = nn.Parameter(torch.zeros(n_features))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        #: log-odds of the training data's base rates (the AIS base model and sampler start)
        self.register_buffer("base_rate_logits", torch.zeros(n_features))
        self._normalizers: dict = {}

    # ------------------------------------------------------------------ the Pyro program
    @property
    def n_hidden(self) -> int:
        return int(self.config["n_hidden"])

    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact (the smaller layer is small enough)."""
        return min(self.n_features, self.n_hidden) <= self.config["exact_max_units"]

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "ais_estimate"

    def normalizer(self, training: str | None = None):
        """The normalizer :meth:`model` uses for ``training`` (kept, so PCD chains persist)."""
        training = training or self.config["training"]
        check_choice(training, "training", _TRAINING)
        if training not in self._normalizers:
            cfg = self.config
            est = self._monitor_estimator()
            if training == "pcd":
                norm = PCD(num_chains=cfg["num_chains"], num_steps=cfg["k"], estimator=est)
            elif training == "cd":
                norm = CD(num_steps=cfg["k"], estimator=est)
            else:
                norm = Exact(max_units=max(20, cfg["exact_max_units"]))
            self._normalizers[training] = norm
        return self._normalizers[training]

    def _monitor_estimator(self):
        """How PCD/CD refresh the (stale) value of log Z in the training loss: exact when the
        smaller layer has at most 16 units, else a short AIS run (a monitoring number)."""
        if min(self.n_features, self.n_hidden) <= 16:
            return Exact()
        return AIS(
            num_chains=min(32, self.config["ais_num_chains"]),
            num_betas=min(300, self.config["ais_num_betas"]),
            base=self.base_rate_logits,
        )

    def distribution(self, normalizer=None) -> RBM:
        """The :class:`~pyrogen.distributions.RBM` with the current parameters."""
        return RBM(
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            normalizer=normalizer if normalizer is not None else self.normalizer(),
            mcmc_steps=self.config["sample_steps"],
        )

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """``pyro.sample("x", RBM(W, b, c, normalizer=...), obs=x)`` in the data plate.

        Also records ``hidden_mean`` :math:`= P(h = 1 \\mid v)` as a deterministic site
        (except inside :meth:`fit`, where it would cost one more matrix product per step).
        """
        d = self.distribution(self._active_normalizer())
        if x is None:
            n = 1 if num_data is None else num_data
            with pyro.plate("data", n):
                return pyro.sample("x", d)
        with self._data_plate(x, num_data):
            v = pyro.sample("x", d, obs=x)
            if getattr(self, "_fit_normalizer", None) is None:  # not inside fit: save a matmul
                h = torch.sigmoid(self.hidden_bias + v @ self.weight)
                pyro.deterministic("hidden_mean", h)
        return v

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """Empty: the model has no latent sample sites (hidden units are summed out)."""

    def _active_normalizer(self):
        return getattr(self, "_fit_normalizer", None) or self.normalizer()

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return _TRAINING

    def fit(
        self,
        x,
        *,
        method: str | None = None,
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss=None,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        """Train by ``pyro.infer.SVI`` (Adam) on :meth:`model` with the PCD, CD or exact
        normalizer.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``, binary
        method : {"pcd", "cd", "exact"}, optional
            The learning rule (default: the constructor's ``training``). ``"exact"`` needs
            :math:`\\min(n_v, n_h) \\le 20`.
        num_steps, lr, batch_size, loss, seed, progress, callback, data_info :
            As in :meth:`GenerativeModel.fit`.

        Returns
        -------
        FitHistory
            ``method`` is the learning rule; ``losses`` are per-example SVI losses, i.e.
            :math:`F(x) + \\log Z` with the (possibly stale) value of :math:`\\log Z`.
        """
        method = self.config["training"] if method is None else method
        check_choice(method, "method", _TRAINING)
        x = self._check_x(x)
        check_binary(x, "x")
        if seed is not None:
            pyro.set_rng_seed(check_int(seed, "seed", low=0))
        self._init_from_data(x)
        self._fit_normalizer = self.normalizer(method)
        try:
            hist = self._fit_svi(
                x,
                num_steps=num_steps,
                lr=lr,
                batch_size=batch_size,
                loss=loss,
                seed=None,
                progress=progress,
                callback=callback,
                data_info=data_info,
            )
        finally:
            self._fit_normalizer = None
        hist.method = method
        hist.info["learning_rule"] = {"pcd": "PCD-k", "cd": "CD-k", "exact": "exact gradient"}[
            method
        ]
        hist.info["k"] = self.config["k"]
        last = self.normalizer(method)
        if isinstance(last, (PCD, CD)) and last._value is not None:
            hist.info["loss_log_z_kind"] = last._value.kind
        return hist

    def _init_from_data(self, x):
        from ..infer.ais import base_rate_visible_bias

        with torch.no_grad():
            logits = base_rate_visible_bias(x)
            first = not bool(self.base_rate_logits.any())
            self.base_rate_logits.copy_(logits)
            if first and not bool(self.visible_bias.any()):
                self.visible_bias.copy_(logits)

    # ------------------------------------------------------------------ evaluation
    def _check_binary_x(self, x):
        x = self._check_x(x)
        return check_binary(x, "x")

    def log_normalizer(self, *, num_chains=None, num_betas=None, seed=None, method=None):
        """:math:`\\log Z` as a :class:`~pyrogen.normalizers.LogZEstimate`.

        ``method``: ``"exact"`` or ``"ais"``; default exact when :attr:`exact`, else an AIS
        estimate (``num_chains`` x ``num_betas``, base-rate path) with its standard error.
        """
        method = ("exact" if self.exact else "ais") if method is None else method
        check_choice(method, "method", ("exact", "ais"))
        d = self.distribution(Exact(max_units=24))
        with torch.no_grad():
            if method == "exact":
                return d.log_normalizer()
            ais = AIS(
                num_chains=num_chains or self.config["ais_num_chains"],
                num_betas=num_betas or self.config["ais_num_betas"],
                base=self.base_rate_logits,
                seed=seed,
            )
            return ais(d)

    def log_likelihood(self, x, *, num_chains=None, num_betas=None, seed=None) -> LogLikelihood:
        """Per-example :math:`\\log p(x) = -F(x) - \\log Z`.

        Exact (``kind="exact"``) when :math:`\\min(n_v, n_h) \\le` ``exact_max_units``;
        otherwise ``kind="ais_estimate"``: :math:`\\log Z` by AIS with ``num_chains`` chains and
        ``num_betas`` temperatures (defaults from the constructor) on the base-rate path. The
        AIS :math:`\\hat Z` is unbiased for :math:`Z`, so the values are a stochastic *upper*
        bound on the log-likelihood in expectation; ``shared_stderr`` is the standard error of
        :math:`\\log \\hat Z` (shared by all examples).
        """
        x = self._check_binary_x(x)
        with torch.no_grad():
            d = self.distribution(Exact(max_units=24))
            est = self.log_normalizer(num_chains=num_chains, num_betas=num_betas, seed=seed)
            values = d.unnormalized_log_prob(x) - est.log_z
        if est.kind == "exact":
            return LogLikelihood(values=values, kind="exact", info={"log_z": float(est.log_z)})
        info = {
            "log_z": float(est.log_z),
            "log_z_stderr": float(est.stderr),
            "ess": float(est.ess),
            "num_chains": est.info["num_chains"],
            "num_betas": est.info["num_betas"],
        }
        return LogLikelihood(
            values=values, kind="ais_estimate", shared_stderr=float(est.stderr), info=info
        )

    def raise_check(self, x, *, num_chains: int = 10, num_betas: int | None = None, seed=None):
        """RAISE (Burda, Grosse & Salakhutdinov 2015): a conservative estimate of log p(x).

        Runs the base-rate annealing path backwards from each data row
        (:func:`pyrogen.infer.ais.reverse_ais`); the result is an importance-sampled estimate
        (``kind="is_estimate"``), a stochastic *lower* bound on the annealing model's
        log-likelihood, to be compared with the AIS estimate of :meth:`log_likelihood` (an
        upper bound in expectation): agreement means both are accurate.
        """
        from ..infer.ais import reverse_ais

        x = self._check_binary_x(x)
        num_chains = check_int(num_chains, "num_chains", low=2)
        num_betas = num_betas or self.config["ais_num_betas"]
        g = None if seed is None else torch.Generator().manual_seed(check_int(seed, "seed", 0))
        with torch.no_grad():
            path = self.distribution(Exact()).annealing_path(base=self.base_rate_logits)
            res = reverse_ais(path, x, num_betas, num_chains, generator=g)
        return LogLikelihood(
            values=res.log_prob,
            kind="is_estimate",
            stderr=res.log_prob_stderr,
            info={"method": "RAISE", "num_chains": num_chains, "num_betas": res.num_betas},
        )

    # ------------------------------------------------------------------ the rest of the protocol
    def sample(self, n, *, num_steps: int | None = None) -> torch.Tensor:
        """``n`` draws of :math:`v`: exact when :math:`\\min(n_v, n_h) \\le 16`, otherwise
        ``num_steps`` (default ``sample_steps``) block Gibbs steps from the base-rate model."""
        n = self._check_n(n)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        with torch.no_grad():
            init = torch.bernoulli(torch.sigmoid(self.base_rate_logits).expand(n, self.n_features))
            d = RBM(
                self.weight,
                self.visible_bias,
                self.hidden_bias,
                mcmc_steps=steps,
                mcmc_init=init,
            )
            return d.sample((n,))

    def transform(self, x) -> torch.Tensor:
        """Hidden-unit probabilities :math:`P(h_j = 1 \\mid v) = \\sigma(c_j + v^\\top W_{:j})`,
        shape ``(n, n_hidden)``."""
        x = self._check_x(x)
        with torch.no_grad():
            return torch.sigmoid(self.hidden_bias + x @ self.weight)


@register_model("gb-rbm")
class GaussianBernoulliRBM(GenerativeModel):
    r"""Gaussian-Bernoulli RBM (book §20.5.1) as a Pyro model: real visible, binary hidden units.

    .. math::

        E(v, h) = \sum_i \frac{(v_i - b_i)^2}{2\sigma_i^2}
                  - \sum_{ij} \frac{v_i}{\sigma_i^2} W_{ij} h_j - c^\top h,

    so that :math:`p(v \mid h) = \mathcal N(b + W h, \operatorname{diag}\sigma^2)` and
    :math:`P(h_j = 1 \mid v) = \sigma(c_j + \sum_i v_i W_{ij} / \sigma_i^2)`. ``model(x)`` is
    ``pyro.sample("x", GaussianBernoulliRBM(W, b, c, sigma, normalizer=...), obs=x)`` in a data
    plate (hidden units summed out in the free energy); the guide is empty. ``fit`` is
    ``pyro.infer.SVI`` on it: with :class:`~pyrogen.normalizers.PCD` the SVI gradient is the
    PCD rule, with :class:`~pyrogen.normalizers.CD` CD-k, with
    :class:`~pyrogen.normalizers.Exact` the exact likelihood gradient (at most 20 hidden units).

    Parameters
    ----------
    n_features : int
        Visible units :math:`n_v`.
    n_hidden : int
        Hidden units :math:`n_h`.
    training : {"pcd", "cd", "exact"}
        Normalizer of :meth:`model` and default ``method`` of :meth:`fit`.
    k : int
        Gibbs steps per SVI step (PCD-k / CD-k).
    num_chains : int
        Persistent chains of PCD.
    sigma : float
        Initial (and, with ``learn_sigma=False``, fixed) standard deviation of every visible
        unit. The usual recipe: standardize the data and keep :math:`\sigma = 1`.
    learn_sigma : bool
        Learn :math:`\log \sigma_i` too (known to make GB-RBM training less stable).
    init_scale : float
        Standard deviation of the initial weights; at the first ``fit`` the visible biases
        are set to the data mean.
    exact_max_units : int
        ``log_likelihood`` is exact when ``n_hidden`` is at most this (at most 24).
    ais_num_chains, ais_num_betas : int
        AIS defaults of ``log_likelihood`` when it is not exact.
    sample_steps : int
        Block Gibbs steps of :meth:`sample` when ``n_hidden > 16`` (else sampling is exact).
    seed : int
        Seed of the initial weights.

    Notes
    -----
    Cost: one SVI step on :math:`B` rows is :math:`O((B + kS) n_v n_h)`; exact
    :math:`\log Z` is :math:`O(2^{n_h} n_v n_h)` (the visible units integrate out in closed
    form for each hidden state). AIS runs along GB-RBMs with weights :math:`\beta W`, from
    independent visible and hidden units (:math:`\beta = 0`, tractable) to the model.
    """

    def __init__(
        self,
        n_features: int,
        n_hidden: int = 16,
        *,
        training: str = "pcd",
        k: int = 1,
        num_chains: int = 100,
        sigma: float = 1.0,
        learn_sigma: bool = False,
        init_scale: float = 0.01,
        exact_max_units: int = 20,
        ais_num_chains: int = 100,
        ais_num_betas: int = DEFAULT_NUM_BETAS,
        sample_steps: int = 1000,
        seed: int = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        n_hidden = check_int(n_hidden, "n_hidden", low=1)
        check_choice(training, "training", _TRAINING)
        k = check_int(k, "k", low=1)
        num_chains = check_int(num_chains, "num_chains", low=1)
        sigma = check_float(sigma, "sigma", 0.0, None, "oo")
        if not isinstance(learn_sigma, bool):
            raise TypeError(
                f"learn_sigma must be a bool. Got {type(learn_sigma).__name__} instead."
            )
        init_scale = check_float(init_scale, "init_scale", 0.0, None)
        exact_max_units = check_int(exact_max_units, "exact_max_units", low=1, high=24)
        ais_num_chains = check_int(ais_num_chains, "ais_num_chains", low=2)
        ais_num_betas = check_int(ais_num_betas, "ais_num_betas", low=2)
        sample_steps = check_int(sample_steps, "sample_steps", low=0)
        seed = check_int(seed, "seed", low=0)
        super().__init__(
            n_features=n_features,
            n_hidden=n_hidden,
            training=training,
            k=k,
            num_chains=num_chains,
            sigma=sigma,
            learn_sigma=learn_sigma,
            init_scale=init_scale,
            exact_max_units=exact_max_units,
            ais_num_chains=ais_num_chains,
            ais_num_betas=ais_num_betas,
            sample_steps=sample_steps,
            seed=seed,
        )
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(init_scale * torch.randn(n_features, n_hidden, generator=g))
        self.visible_bias = nn.Parameter(torch.zeros(n_features))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        log_sigma = torch.full((n_features,), float(torch.tensor(sigma).log()))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        self.register_buffer("_initialized", torch.zeros((), dtype=torch.bool))
        self._normalizers: dict = {}

    @property
    def n_hidden(self) -> int:
        return int(self.config["n_hidden"])

    @property
    def sigma(self) -> torch.Tensor:
        r"""Visible standard deviations :math:`\sigma_i`, shape ``(n_features,)``."""
        return self.log_sigma.exp()

    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact (few enough hidden units to enumerate)."""
        return self.n_hidden <= self.config["exact_max_units"]

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "ais_estimate"

    def normalizer(self, training: str | None = None):
        """The normalizer :meth:`model` uses for ``training`` (kept, so PCD chains persist)."""
        training = training or self.config["training"]
        check_choice(training, "training", _TRAINING)
        if training not in self._normalizers:
            cfg = self.config
            if self.n_hidden <= 16:
                est = Exact()
            else:
                est = AIS(num_chains=min(32, cfg["ais_num_chains"]), num_betas=300)
            if training == "pcd":
                norm = PCD(num_chains=cfg["num_chains"], num_steps=cfg["k"], estimator=est)
            elif training == "cd":
                norm = CD(num_steps=cfg["k"], estimator=est)
            else:
                norm = Exact(max_units=max(20, cfg["exact_max_units"]))
            self._normalizers[training] = norm
        return self._normalizers[training]

    def distribution(self, normalizer=None) -> _GBRBMDistribution:
        """The :class:`~pyrogen.distributions.GaussianBernoulliRBM` with the current
        parameters."""
        return _GBRBMDistribution(
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.sigma,
            normalizer=normalizer if normalizer is not None else self.normalizer(),
            mcmc_steps=self.config["sample_steps"],
        )

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """``pyro.sample("x", GaussianBernoulliRBM(W, b, c, sigma, normalizer=...), obs=x)``
        in the data plate."""
        d = self.distribution(getattr(self, "_fit_normalizer", None) or self.normalizer())
        if x is None:
            with pyro.plate("data", 1 if num_data is None else num_data):
                return pyro.sample("x", d)
        with self._data_plate(x, num_data):
            return pyro.sample("x", d, obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """Empty: no latent sample sites (the hidden units are summed out)."""

    def fit_methods(self) -> tuple[str, ...]:
        return _TRAINING

    def fit(
        self,
        x,
        *,
        method: str | None = None,
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss=None,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Train by ``pyro.infer.SVI`` (Adam) with the PCD, CD or exact normalizer.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``, real
        method : {"pcd", "cd", "exact"}, optional
            The learning rule (default: the constructor's ``training``).
        num_steps, lr, batch_size, loss, seed, progress, callback, data_info :
            As in :meth:`GenerativeModel.fit`.

        Returns
        -------
        FitHistory
            ``losses`` are per-example :math:`F(x) + \log Z` with the (possibly stale, for
            PCD/CD) value of :math:`\log Z`: a monitoring number.
        """
        method = self.config["training"] if method is None else method
        check_choice(method, "method", _TRAINING)
        x = self._check_x(x)
        if seed is not None:
            pyro.set_rng_seed(check_int(seed, "seed", low=0))
        if not bool(self._initialized):
            with torch.no_grad():
                self.visible_bias.copy_(x.mean(0))
                self._initialized.fill_(True)
        self._fit_normalizer = self.normalizer(method)
        try:
            hist = self._fit_svi(
                x,
                num_steps=num_steps,
                lr=lr,
                batch_size=batch_size,
                loss=loss,
                seed=None,
                progress=progress,
                callback=callback,
                data_info=data_info,
            )
        finally:
            self._fit_normalizer = None
        hist.method = method
        hist.info["learning_rule"] = {"pcd": "PCD-k", "cd": "CD-k", "exact": "exact gradient"}[
            method
        ]
        hist.info["k"] = self.config["k"]
        return hist

    def log_normalizer(self, *, num_chains=None, num_betas=None, seed=None, method=None):
        r""":math:`\log Z` as a :class:`~pyrogen.normalizers.LogZEstimate`: exact (``method=
        "exact"``, default when :attr:`exact`) or an AIS estimate with its standard error."""
        method = ("exact" if self.exact else "ais") if method is None else method
        check_choice(method, "method", ("exact", "ais"))
        with torch.no_grad():
            if method == "exact":
                return self.distribution(Exact(max_units=24)).log_normalizer()
            ais = AIS(
                num_chains=num_chains or self.config["ais_num_chains"],
                num_betas=num_betas or self.config["ais_num_betas"],
                seed=seed,
            )
            return ais(self.distribution(Exact(max_units=24)))

    def log_likelihood(self, x, *, num_chains=None, num_betas=None, seed=None) -> LogLikelihood:
        r"""Per-example :math:`\log p(x) = -F(x) - \log Z` (densities, nats).

        ``kind="exact"`` when ``n_hidden <= exact_max_units``; otherwise ``kind=
        "ais_estimate"`` (a stochastic upper bound in expectation, since the AIS :math:`\hat Z`
        is unbiased for :math:`Z`) with ``shared_stderr`` the standard error of
        :math:`\log \hat Z`.
        """
        x = self._check_x(x)
        with torch.no_grad():
            d = self.distribution(Exact(max_units=24))
            est = self.log_normalizer(num_chains=num_chains, num_betas=num_betas, seed=seed)
            values = d.unnormalized_log_prob(x) - est.log_z
        if est.kind == "exact":
            return LogLikelihood(values=values, kind="exact", info={"log_z": float(est.log_z)})
        info = {
            "log_z": float(est.log_z),
            "log_z_stderr": float(est.stderr),
            "ess": float(est.ess),
            "num_chains": est.info["num_chains"],
            "num_betas": est.info["num_betas"],
        }
        return LogLikelihood(
            values=values, kind="ais_estimate", shared_stderr=float(est.stderr), info=info
        )

    def sample(self, n, *, num_steps: int | None = None) -> torch.Tensor:
        r"""``n`` draws of :math:`v`: exact when ``n_hidden <= 16`` (hidden state from its
        marginal, then :math:`v \mid h`), otherwise ``num_steps`` (default ``sample_steps``)
        block Gibbs steps from :math:`\mathcal N(b, \sigma^2)`."""
        n = self._check_n(n)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        with torch.no_grad():
            d = _GBRBMDistribution(
                self.weight, self.visible_bias, self.hidden_bias, self.sigma, mcmc_steps=steps
            )
            return d.sample((n,))

    def transform(self, x) -> torch.Tensor:
        r"""Hidden-unit probabilities :math:`P(h_j = 1 \mid v)`, shape ``(n, n_hidden)``."""
        x = self._check_x(x)
        with torch.no_grad():
            return self.distribution(Exact()).hidden_given_visible(x).base_dist.probs
