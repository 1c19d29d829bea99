r"""Models of conditional covariance (book §20.5.2) following the model protocol.

:class:`MeanCovarianceRBM` (mcRBM), :class:`MeanProductStudentT` (mPoT) and
:class:`SpikeSlabRBM` (ssRBM) are PyroModules over the distributions of
:mod:`pyrogen.distributions.covariance_rbm`: ``model(x)`` is ``pyro.sample("x", <dist>(...,
normalizer=...), obs=x)`` in a data plate with every hidden unit summed or integrated out in the
free energy, the guide is empty, and ``fit`` is ``pyro.infer.SVI`` + ``Trace_ELBO`` on that
model with the :class:`~pyrogen.normalizers.PCD` (or :class:`~pyrogen.normalizers.CD`)
normalizer, whose gradient trick makes the SVI gradient the PCD (CD-k) learning rule.

Negative-phase samplers: exact block Gibbs for the ssRBM (:math:`h \mid x`, :math:`s \mid x,h`,
diagonal Gaussian :math:`x \mid s,h`) and the mPoT (Bernoulli and Gamma hidden units,
Gaussian :math:`x \mid h`); Hamiltonian Monte Carlo on the free energy for the mcRBM
(Ranzato & Hinton 2010), the engine's :class:`~pyrogen.infer.annealing.HMC` kernel with its
step size adapted to 0.65 acceptance across calls. Every model accepts ``sampler="gibbs"`` or
``"hmc"``.

``log_likelihood``: exact (enumeration of the binary hidden states, each integrated over
:math:`x` in closed form) for an mcRBM or ssRBM with at most ``exact_max_units`` hidden units;
otherwise :math:`-F(x) - \log\hat Z` with :math:`\log\hat Z` an AIS estimate (the
scaled-interaction path of each distribution, HMC or Gibbs transitions), labelled
``"ais_estimate"`` with its standard error.
"""

from __future__ import annotations

import math

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice, check_float, check_int
from ..distributions.covariance_rbm import MeanCovarianceRBM as _MCDist
from ..distributions.covariance_rbm import MeanProductStudentT as _MPoTDist
from ..distributions.covariance_rbm import SpikeSlabRBM as _SSDist
from ..evaluation import LogLikelihood
from ..infer.annealing import HMC, ais, schedule
from ..normalizers import AIS, CD, PCD, Exact
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["MeanCovarianceRBM", "MeanProductStudentT", "SpikeSlabRBM"]

_TRAINING = ("pcd", "cd")
_SAMPLERS = ("gibbs", "hmc")
#: temperature spacing of the models' AIS runs. The scaled-interaction paths change most at
#: small beta, unlike the RBM base-rate path the default "sm" shape (dense near 1) was made for:
#: on a 64-64 ssRBM trained on whitened patches, 1000 linear temperatures gave ESS 50/100 and
#: s.e. 0.10 where the "sm" shape gave ESS 3/100, s.e. 0.58 and a log Z 1 nat lower
#: (benchmarks/README.md, "Models of conditional covariance").
AIS_SCHEDULE = "linear"


class _CovarianceModel(GenerativeModel):
    """Shared Pyro program, SVI fit, samplers and evaluation of the three models."""

    _default_sampler = "gibbs"

    def __init__(self, n_features, *, training, k, num_chains, sampler, hmc_step_size,
                 hmc_num_leapfrog, init_scale, exact_max_units, ais_num_chains, ais_num_betas,
                 sample_steps, seed, **extra):
        n_features = check_int(n_features, "n_features", low=1)
        check_choice(training, "training", _TRAINING)
        sampler = self._default_sampler if sampler is None else sampler
        check_choice(sampler, "sampler", _SAMPLERS)
        if exact_max_units is not None:  # only the models with binary hidden units have it
            extra["exact_max_units"] = check_int(exact_max_units, "exact_max_units", low=0,
                                                 high=20)
        super().__init__(
            n_features=n_features,
            training=training,
            k=check_int(k, "k", low=1),
            num_chains=check_int(num_chains, "num_chains", low=1),
            sampler=sampler,
            hmc_step_size=check_float(hmc_step_size, "hmc_step_size", 0.0, 10.0, "oc"),
            hmc_num_leapfrog=check_int(hmc_num_leapfrog, "hmc_num_leapfrog", low=1),
            init_scale=check_float(init_scale, "init_scale", 0.0, None),
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=2),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            sample_steps=check_int(sample_steps, "sample_steps", low=0),
            seed=check_int(seed, "seed", low=0),
            **extra,
        )
        self._normalizers: dict = {}
        self._hmc_eps = self.config["hmc_step_size"]

    # ------------------------------------------------------------------ hooks
    _enumeration_units: int | None = None  # binary hidden units (None: cannot enumerate)

    def _distribution(self, normalizer, kernel):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ properties
    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact (few enough binary hidden units)."""
        u = self._enumeration_units
        return u is not None and u <= self.config.get("exact_max_units", -1)

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "ais_estimate"

    # ------------------------------------------------------------------ distributions
    def _hmc_kernel(self, holder):
        """``kernel(x, num_steps)``: the engine's HMC on the current free energy (the
        distribution in ``holder[0]``), step size persisting and adapting across calls."""
        L = self.config["hmc_num_leapfrog"]

        def kernel(x, num_steps):
            path = holder[0].annealing_path()
            hmc = HMC(path, step_size=self._hmc_eps, num_leapfrog=L, min_step_size=1e-4,
                      max_step_size=5.0)
            state = hmc.init(x)
            for _ in range(num_steps):
                state, _ = hmc.step(None, state, 1.0)
            self._hmc_eps = float(state.step_size)
            return state.position

        return kernel

    def distribution(self, normalizer=None, sampler=None):
        """The distribution with the current parameters (``normalizer`` default: the training
        one; ``sampler``: ``"gibbs"`` or ``"hmc"``, default the constructor's)."""
        sampler = self.config["sampler"] if sampler is None else sampler
        check_choice(sampler, "sampler", _SAMPLERS)
        holder: list = []
        kernel = self._hmc_kernel(holder) if sampler == "hmc" else None
        d = self._distribution(normalizer if normalizer is not None else self.normalizer(),
                               kernel)
        holder.append(d)
        return d

    def _monitor_estimator(self):
        if self.exact and self._enumeration_units <= 12:
            return Exact()
        return AIS(num_chains=min(32, self.config["ais_num_chains"]),
                   betas=schedule(min(100, self.config["ais_num_betas"]), AIS_SCHEDULE))

    def normalizer(self, training: str | None = None):
        """The normalizer of :meth:`model` (kept, so that PCD chains persist)."""
        training = training or self.config["training"]
        check_choice(training, "training", _TRAINING)
        if training not in self._normalizers:
            cfg = self.config
            if training == "pcd":
                norm = PCD(num_chains=cfg["num_chains"], num_steps=cfg["k"],
                           estimator=self._monitor_estimator())
            else:
                norm = CD(num_steps=cfg["k"], estimator=self._monitor_estimator())
            self._normalizers[training] = norm
        return self._normalizers[training]

    # ------------------------------------------------------------------ the Pyro program
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """``pyro.sample("x", <distribution>(..., normalizer=...), obs=x)`` in the data plate."""
        norm = getattr(self, "_fit_normalizer", None) or self.normalizer()
        d = self.distribution(norm)
        if x is None:
            with pyro.plate("data", 1 if num_data is None else num_data):
                return pyro.sample("x", d)
        with self._data_plate(x, num_data):
            return pyro.sample("x", d, obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """Empty: no latent sample sites (the hidden units are summed/integrated out)."""

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return _TRAINING

    def _init_from_data(self, x) -> None:
        pass

    def fit(self, x, *, method: str | None = None, num_steps: int = 1000, lr: float = 0.01,
            batch_size: int | None = None, loss=None, tol: float | None = DEFAULT_TOL,
            seed: int | None = None, progress: bool = True, callback=None,
            data_info: dict | None = None) -> FitHistory:
        r"""Train by ``pyro.infer.SVI`` (Adam) on :meth:`model` with the PCD or CD normalizer.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
            Real-valued training data (e.g. whitened patches,
            :func:`pyrogen.datasets.load_image_patches`).
        method : {"pcd", "cd"}, optional
            The learning rule (default: the constructor's ``training``).
        num_steps, lr, batch_size, loss, tol, seed, progress, callback, data_info :
            As for :meth:`pyrogen.models.GenerativeModel.fit` (the one training loop).

        Returns
        -------
        FitHistory
            ``losses``: per-example :math:`F(x) + \log Z` with the latest (stale) value of
            :math:`\log Z` (exact for tiny models, else a short AIS run refreshed every 100
            steps): a monitoring number, not a log-likelihood.
        """
        method = self.config["training"] if method is None else method
        check_choice(method, "method", _TRAINING)
        x = self._check_x(x)
        self._init_from_data(x)
        self._fit_normalizer = self.normalizer(method)
        try:
            hist = self._fit_svi(x, num_steps=num_steps, lr=lr, batch_size=batch_size,
                                 loss=loss, tol=tol, seed=seed, progress=progress,
                                 callback=callback, data_info=data_info)
        finally:
            self._fit_normalizer = None
        hist.method = method
        hist.info.update(learning_rule={"pcd": "PCD-k", "cd": "CD-k"}[method],
                         k=self.config["k"], sampler=self.config["sampler"])
        if self.config["sampler"] == "hmc":
            hist.info["hmc_step_size"] = self._hmc_eps
        return hist

    # ------------------------------------------------------------------ evaluation
    def log_normalizer(self, *, method: str | None = None, num_chains: int | None = None,
                       num_betas: int | None = None, kernel: str | None = None,
                       seed: int | None = None):
        r""":math:`\log Z` as a :class:`~pyrogen.normalizers.LogZEstimate`.

        ``method="exact"`` (mcRBM/ssRBM with at most 20 hidden units) or ``"ais"``; default
        exact when :attr:`exact`. AIS runs the distribution's scaled-interaction path with
        ``num_chains`` chains, ``num_betas`` evenly spaced temperatures (:data:`AIS_SCHEDULE`)
        and ``kernel`` transitions
        (``"hmc"``: the engine's HMC, 10 leapfrog steps, step size adapted to 0.65 mean
        acceptance, which makes the estimate consistent but not exactly unbiased, see
        :mod:`pyrogen.infer.annealing.hmc`; ``"gibbs"``: exact block Gibbs; default the
        constructor's ``sampler``).
        """
        from ..distributions.log_normalizer import LogZEstimate

        method = ("exact" if self.exact else "ais") if method is None else method
        check_choice(method, "method", ("exact", "ais"))
        kernel = self.config["sampler"] if kernel is None else kernel
        check_choice(kernel, "kernel", _SAMPLERS)
        with torch.no_grad():
            d = self.distribution(Exact(), sampler="gibbs")
            if method == "exact":
                if self._enumeration_units is None:
                    raise ValueError(
                        f"method must be 'ais' for {type(self).__name__} (continuous hidden "
                        "units cannot be enumerated). Got 'exact' instead."
                    )
                return d.log_normalizer()
            path = d.annealing_path()
            k = None
            if kernel == "hmc":
                k = HMC(path, step_size=self.config["hmc_step_size"],
                        num_leapfrog=self.config["hmc_num_leapfrog"], min_step_size=1e-4,
                        max_step_size=5.0)
            nc = num_chains or self.config["ais_num_chains"]
            nb = num_betas or self.config["ais_num_betas"]
            res = ais(path, schedule(nb, AIS_SCHEDULE), nc, kernel=k, seed=seed)
            return LogZEstimate(log_z=res.log_z, kind="ais_estimate", stderr=res.log_z_stderr,
                                ess=res.ess, log_weights=res.log_weights,
                                info={"num_chains": nc, "num_betas": int(res.num_betas),
                                      "kernel": kernel})

    def log_likelihood(self, x, *, method: str | None = None, num_chains: int | None = None,
                       num_betas: int | None = None, kernel: str | None = None,
                       seed: int | None = None) -> LogLikelihood:
        r"""Per-example :math:`\log p(x) = -F(x) - \log Z` (nats).

        Exact (``kind="exact"``) when :attr:`exact`; otherwise :math:`\log Z` is an AIS
        estimate (:meth:`log_normalizer`) and the result has ``kind="ais_estimate"`` (a
        stochastic *upper* bound in expectation, since :math:`\hat Z` is unbiased for
        :math:`Z`) with ``shared_stderr`` the standard error of :math:`\log\hat Z`.
        """
        x = self._check_x(x)
        with torch.no_grad():
            d = self.distribution(Exact(), sampler="gibbs")
            est = self.log_normalizer(method=method, num_chains=num_chains,
                                      num_betas=num_betas, kernel=kernel, seed=seed)
            values = d.unnormalized_log_prob(x) - est.log_z
        if est.kind == "exact":
            return LogLikelihood(values=values, kind="exact", info={"log_z": float(est.log_z)})
        info = {"log_z": float(est.log_z), "log_z_stderr": float(est.stderr),
                "ess": float(est.ess), **est.info}
        return LogLikelihood(values=values, kind="ais_estimate",
                             shared_stderr=float(est.stderr), info=info)

    def sample(self, n, *, num_steps: int | None = None) -> torch.Tensor:
        """``n`` draws of :math:`x`: exact when the binary hidden units can be enumerated
        (mcRBM/ssRBM, at most 16), otherwise ``num_steps`` (default ``sample_steps``)
        transitions of the model's sampler from the :math:`\\beta = 0` end of its path."""
        n = self._check_n(n)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        with torch.no_grad():
            d = self.distribution(Exact())
            d.mcmc_steps = steps
            return d.sample((n,))

    @property
    def covariance_filters(self) -> torch.Tensor:
        """The filters that set the conditional covariance, shape ``(n_features, n_units)``
        (mcRBM/mPoT: the columns :math:`r^{(k)}`; ssRBM: the slab filters :math:`W_{:,i}`)."""
        raise NotImplementedError


def _raw_positive(value: float) -> float:
    """Inverse softplus."""
    return value + math.log(-math.expm1(-value))


@register_model("mcrbm")
class MeanCovarianceRBM(_CovarianceModel):
    r"""Mean and covariance RBM (book eqs. 20.43-20.47) as a Pyro model.

    .. math::

        E(x, h^{(m)}, h^{(c)}) = \tfrac12 x^\top x - a^\top x - x^\top W h^{(m)}
            - b^{(m)\top} h^{(m)} + \tfrac12\sum_k h^{(c)}_k (r^{(k)\top} x)^2
            - b^{(c)\top} h^{(c)},

    see :class:`pyrogen.distributions.MeanCovarianceRBM`. Trained by SVI with PCD (default)
    or CD; the negative phase moves the chains by HMC on the free energy (Ranzato & Hinton
    2010; ``sampler="gibbs"`` uses the exact Gaussian conditional with a Cholesky factor per
    chain instead).

    Parameters
    ----------
    n_features : int
        Visible units :math:`D`.
    n_mean, n_cov : int
        Mean units :math:`J` and covariance units :math:`K`.
    training : {"pcd", "cd"}
    k : int
        Sampler transitions per SVI step.
    num_chains : int
        Persistent chains of PCD.
    sampler : {"hmc", "gibbs"}
        Negative-phase (and :meth:`sample`) transitions; default ``"hmc"``.
    hmc_step_size, hmc_num_leapfrog :
        Initial HMC step size (adapted to 0.65 acceptance) and leapfrog steps.
    init_scale : float
        Standard deviation of the initial weights.
    cov_bias_init : float
        Initial :math:`b^{(c)}` (positive: covariance units start mostly on).
    exact_max_units : int
        ``log_likelihood`` is exact when :math:`J + K` is at most this (at most 20).
    ais_num_chains, ais_num_betas : int
        AIS defaults of ``log_likelihood`` otherwise.
    sample_steps : int
        Transitions of :meth:`sample` when it is not exact.
    seed : int
        Seed of the initial weights.
    """

    _default_sampler = "hmc"

    def __init__(self, n_features: int, n_mean: int = 16, n_cov: int = 16, *,
                 training: str = "pcd", k: int = 1, num_chains: int = 100,
                 sampler: str | None = None, hmc_step_size: float = 0.1,
                 hmc_num_leapfrog: int = 10, init_scale: float = 0.1,
                 cov_bias_init: float = 2.0, exact_max_units: int = 12,
                 ais_num_chains: int = 100, ais_num_betas: int = 1000,
                 sample_steps: int = 500, seed: int = 0):
        n_mean = check_int(n_mean, "n_mean", low=1)
        n_cov = check_int(n_cov, "n_cov", low=1)
        cov_bias_init = check_float(cov_bias_init, "cov_bias_init")
        super().__init__(n_features, training=training, k=k, num_chains=num_chains,
                         sampler=sampler, hmc_step_size=hmc_step_size,
                         hmc_num_leapfrog=hmc_num_leapfrog, init_scale=init_scale,
                         exact_max_units=exact_max_units, ais_num_chains=ais_num_chains,
                         ais_num_betas=ais_num_betas, sample_steps=sample_steps, seed=seed,
                         n_mean=n_mean, n_cov=n_cov, cov_bias_init=cov_bias_init)
        s, d = self.config["init_scale"], self.n_features
        self.mean_weight = nn.Parameter(s * torch.randn(d, n_mean))
        self.mean_bias = nn.Parameter(torch.zeros(n_mean))
        self.cov_weight = nn.Parameter(s * torch.randn(d, n_cov))
        self.cov_bias = nn.Parameter(torch.full((n_cov,), cov_bias_init))
        self.visible_bias = nn.Parameter(torch.zeros(d))

    @property
    def _enumeration_units(self):
        return self.config["n_mean"] + self.config["n_cov"]

    def _distribution(self, normalizer, kernel):
        return _MCDist(self.mean_weight, self.mean_bias, self.cov_weight, self.cov_bias,
                       self.visible_bias, normalizer=normalizer, kernel=kernel,
                       mcmc_steps=self.config["sample_steps"])

    @property
    def covariance_filters(self):
        return self.cov_weight.detach()

    def transform(self, x) -> torch.Tensor:
        r""":math:`P(h = 1 \mid x)`, mean units then covariance units, shape
        ``(n, n_mean + n_cov)``."""
        x = self._check_x(x)
        with torch.no_grad():
            return self.distribution(Exact()).hidden_given_visible(x).base_dist.probs


@register_model("mpot")
class MeanProductStudentT(_CovarianceModel):
    r"""Mean-product of Student's t-distributions (book eq. 20.49) as a Pyro model.

    .. math::

        E = E_m(x, h^{(m)}) + \sum_k\Big[h^{(c)}_k\big(1 + \tfrac12 (r^{(k)\top}x)^2\big)
            + (1-\gamma_k)\log h^{(c)}_k\Big],

    see :class:`pyrogen.distributions.MeanProductStudentT`; :math:`\gamma_k = e^{\log\gamma_k}`
    is learned. Negative phase by block Gibbs (Gamma covariance units, Bernoulli mean units,
    Gaussian :math:`x \mid h` with a Cholesky factor per chain) or HMC. ``log_likelihood`` is
    always an AIS estimate (continuous hidden units).

    Parameters
    ----------
    gamma_init : float
        Initial :math:`\gamma_k` (positive).

    Notes
    -----
    The other arguments are those of :class:`MeanCovarianceRBM` (without ``cov_bias_init`` and
    ``exact_max_units``); ``sampler`` defaults to ``"gibbs"``.
    """

    def __init__(self, n_features: int, n_mean: int = 16, n_cov: int = 16, *,
                 training: str = "pcd", k: int = 1, num_chains: int = 100,
                 sampler: str | None = None, hmc_step_size: float = 0.1,
                 hmc_num_leapfrog: int = 10, init_scale: float = 0.1, gamma_init: float = 2.0,
                 ais_num_chains: int = 100, ais_num_betas: int = 1000,
                 sample_steps: int = 500, seed: int = 0):
        n_mean = check_int(n_mean, "n_mean", low=1)
        n_cov = check_int(n_cov, "n_cov", low=1)
        gamma_init = check_float(gamma_init, "gamma_init", 0.0, None, "oo")
        super().__init__(n_features, training=training, k=k, num_chains=num_chains,
                         sampler=sampler, hmc_step_size=hmc_step_size,
                         hmc_num_leapfrog=hmc_num_leapfrog, init_scale=init_scale,
                         exact_max_units=None, ais_num_chains=ais_num_chains,
                         ais_num_betas=ais_num_betas, sample_steps=sample_steps, seed=seed,
                         n_mean=n_mean, n_cov=n_cov, gamma_init=gamma_init)
        s, d = self.config["init_scale"], self.n_features
        self.mean_weight = nn.Parameter(s * torch.randn(d, n_mean))
        self.mean_bias = nn.Parameter(torch.zeros(n_mean))
        self.cov_weight = nn.Parameter(s * torch.randn(d, n_cov))
        self.log_gamma = nn.Parameter(torch.full((n_cov,), math.log(gamma_init)))
        self.visible_bias = nn.Parameter(torch.zeros(d))

    @property
    def gamma(self) -> torch.Tensor:
        r""":math:`\gamma_k`, shape ``(n_cov,)``."""
        return self.log_gamma.exp()

    def _distribution(self, normalizer, kernel):
        return _MPoTDist(self.mean_weight, self.mean_bias, self.cov_weight, self.gamma,
                         self.visible_bias, normalizer=normalizer, kernel=kernel,
                         mcmc_steps=self.config["sample_steps"])

    @property
    def covariance_filters(self):
        return self.cov_weight.detach()

    def transform(self, x) -> torch.Tensor:
        r"""``[P(h^{(m)} = 1 | x), E[h^{(c)} | x]]``, shape ``(n, n_mean + n_cov)``."""
        x = self._check_x(x)
        with torch.no_grad():
            hm, hc = self.distribution(Exact()).hidden_given_visible(x)
            return torch.cat([hm.base_dist.probs, hc.base_dist.mean], -1)


@register_model("ssrbm")
class SpikeSlabRBM(_CovarianceModel):
    r"""Spike and slab RBM (book eqs. 20.50-20.53) as a Pyro model.

    See :class:`pyrogen.distributions.SpikeSlabRBM`. Parametrization: :math:`\alpha =
    e^{\log\alpha}`, :math:`\Lambda = \operatorname{diag}(e^{\log\lambda})` and, with
    ``safe_phi=True`` (default),

    .. math:: \Phi_{di} = \operatorname{softplus}(\rho_{di}) + |W_{di}|\,\|W_{:,i}\|_1/\alpha_i,

    which makes every :math:`\Phi_i - W_{:,i}W_{:,i}^\top/\alpha_i` positive semi-definite
    (by Cauchy-Schwarz, :math:`\sum_d W_{di}^2/(\alpha_i\Phi_{di}) \le 1`), so the model is
    normalizable for all parameter values: the heuristic the book asks for in §20.5.2, at the
    price that a spike never raises the variance of :math:`x` above :math:`\Lambda^{-1}` (it
    lowers it in the other directions instead). ``safe_phi=False`` uses
    :math:`\Phi = \operatorname{softplus}(\rho)` and can leave the normalizable region.

    Parameters
    ----------
    n_features : int
        Visible units :math:`D`.
    n_hidden : int
        Spike/slab pairs :math:`N`.
    safe_phi : bool
        See above.

    Notes
    -----
    The other arguments are those of :class:`MeanCovarianceRBM` (without ``cov_bias_init``);
    ``sampler`` defaults to ``"gibbs"`` (no matrix inversion) and ``log_likelihood`` is exact
    up to ``exact_max_units`` spikes.
    """

    def __init__(self, n_features: int, n_hidden: int = 32, *, safe_phi: bool = True,
                 training: str = "pcd", k: int = 1, num_chains: int = 100,
                 sampler: str | None = None, hmc_step_size: float = 0.1,
                 hmc_num_leapfrog: int = 10, init_scale: float = 0.1,
                 exact_max_units: int = 12, ais_num_chains: int = 100,
                 ais_num_betas: int = 1000, sample_steps: int = 500, seed: int = 0):
        n_hidden = check_int(n_hidden, "n_hidden", low=1)
        if not isinstance(safe_phi, bool):
            raise TypeError(f"safe_phi must be a bool. Got {type(safe_phi).__name__} instead.")
        super().__init__(n_features, training=training, k=k, num_chains=num_chains,
                         sampler=sampler, hmc_step_size=hmc_step_size,
                         hmc_num_leapfrog=hmc_num_leapfrog, init_scale=init_scale,
                         exact_max_units=exact_max_units, ais_num_chains=ais_num_chains,
                         ais_num_betas=ais_num_betas, sample_steps=sample_steps, seed=seed,
                         n_hidden=n_hidden, safe_phi=safe_phi)
        s, d = self.config["init_scale"], self.n_features
        self.weight = nn.Parameter(s * torch.randn(d, n_hidden))
        self.spike_bias = nn.Parameter(torch.full((n_hidden,), -1.0))
        self.log_slab_precision = nn.Parameter(torch.zeros(n_hidden))
        self.slab_mean = nn.Parameter(torch.zeros(n_hidden))
        self.log_visible_precision = nn.Parameter(torch.zeros(d))
        self.raw_phi = nn.Parameter(torch.full((d, n_hidden), _raw_positive(0.1)))
        self.visible_bias = nn.Parameter(torch.zeros(d))

    @property
    def _enumeration_units(self):
        return self.config["n_hidden"]

    @property
    def phi(self) -> torch.Tensor:
        r""":math:`\Phi`, shape ``(n_features, n_hidden)`` (see the class docstring)."""
        phi = F.softplus(self.raw_phi)
        if self.config["safe_phi"]:
            W = self.weight
            alpha = self.log_slab_precision.exp()
            phi = phi + W.abs() * W.abs().sum(0) / alpha
        return phi

    def _distribution(self, normalizer, kernel):
        return _SSDist(self.weight, self.spike_bias, self.log_slab_precision.exp(),
                       self.slab_mean, self.log_visible_precision.exp(), self.phi,
                       self.visible_bias, normalizer=normalizer, kernel=kernel,
                       mcmc_steps=self.config["sample_steps"], validate_args=False)

    @property
    def covariance_filters(self):
        return self.weight.detach()

    def transform(self, x) -> torch.Tensor:
        r"""Spike probabilities :math:`P(h_i = 1 \mid x)`, shape ``(n, n_hidden)``."""
        x = self._check_x(x)
        with torch.no_grad():
            return self.distribution(Exact()).hidden_given_visible(x).base_dist.probs
