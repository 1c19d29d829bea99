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

import math
import time
from collections.abc import Callable

import pyro
import pyro.optim
import torch
from torch import nn

from .. import distributed as _dist
from .._validation import check_binary, check_choice, check_float, check_int
from ..distributions import RBM
from ..distributions import GaussianBernoulliRBM as _GBRBMDistribution
from ..evaluation import LogLikelihood
from ..infer.ais import DEFAULT_NUM_BETAS
from ..infer.optim import JointOptim
from ..normalizers import AIS, CD, PCD, Exact
from .base import DEFAULT_TOL, DEFAULT_WINDOW, FitHistory, GenerativeModel, register_model

__all__ = ["BernoulliRBM", "GaussianBernoulliRBM"]

_TRAINING = ("pcd", "cd", "exact")
_OPTIMIZERS = ("adam", "sgd")
_RULE = {"pcd": "PCD-k", "cd": "CD-k", "exact": "exact gradient"}


def _all_binary(x: torch.Tensor) -> bool:
    r"""Whether every entry of the floating tensor ``x`` is 0 or 1, by one ``aminmax`` and one
    BLAS dot product: on :math:`[0, 1]`, :math:`\sum_i x_i (1 - x_i)` is a sum of non-negative
    terms that is 0 exactly when every :math:`x_i \in \{0, 1\}` (NaN fails the range test).
    About 5x cheaper than elementwise comparisons on MNIST-sized data; a ``False`` sends the
    caller to the full check, which names the offending values. (Subnormal non-binary values
    could pass only where the BLAS flushes subnormals to zero.)"""
    if x.numel() == 0:
        return True
    lo, hi = torch.aminmax(x)
    if not (bool(lo >= 0) and bool(hi <= 1)):
        return False
    f = x.reshape(-1)
    return float(torch.dot(f, 1 - f)) == 0.0


def _as_schedule(value, name: str, kind: str) -> Callable[[int], float]:
    """A constant or a callable of the step, checked, as a callable of the step."""
    if callable(value):
        return value
    if kind == "int":
        value = check_int(value, name, low=1)
    else:
        value = check_float(value, name, 0.0, 1.0, "co")
    return lambda step: value


class _RBMModel(GenerativeModel):
    """Shared constructor checks, Pyro program, SVI fit loop and evaluation of the RBM models.

    Subclasses give :meth:`distribution`, :attr:`_enumeration_units`, the data checks
    (:meth:`_check_train_x`, :meth:`_init_from_data`) and :meth:`sample` / :meth:`transform`.
    """

    def __init__(
        self,
        n_features,
        n_hidden,
        *,
        training,
        k,
        num_chains,
        init_scale,
        exact_max_units,
        ais_num_chains,
        ais_num_betas,
        sample_steps,
        seed,
        **extra,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        n_hidden = check_int(n_hidden, "n_hidden", low=1)
        check_choice(training, "training", _TRAINING)
        super().__init__(
            n_features=n_features,
            n_hidden=n_hidden,
            training=training,
            k=check_int(k, "k", low=1),
            num_chains=check_int(num_chains, "num_chains", low=1),
            init_scale=check_float(init_scale, "init_scale", 0.0, None),
            exact_max_units=check_int(exact_max_units, "exact_max_units", low=1, high=24),
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=2),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            sample_steps=check_int(sample_steps, "sample_steps", low=0),
            seed=check_int(seed, "seed", low=0),
            **extra,
        )
        g = torch.Generator().manual_seed(self.config["seed"])
        w = self.config["init_scale"] * torch.randn(n_features, n_hidden, generator=g)
        self.weight = nn.Parameter(w)
        self.visible_bias = nn.Parameter(torch.zeros(n_features))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden))
        self._normalizers: dict = {}

    # ------------------------------------------------------------------ hooks
    _enumeration_units: int  # units enumerated by the exact log-likelihood

    def distribution(self, normalizer=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def _ais_base(self):
        """The AIS base model (``None``: the distribution's default path)."""
        return None

    def _check_train_x(self, x) -> torch.Tensor:
        return self._check_x(x)

    def _check_eval_x(self, x) -> torch.Tensor:
        return self._check_x(x)

    def _init_from_data(self, x) -> None:
        pass

    def _record_sites(self, v) -> None:
        pass

    # ------------------------------------------------------------------ properties
    @property
    def n_hidden(self) -> int:
        return int(self.config["n_hidden"])

    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact (few enough units to enumerate)."""
        return self._enumeration_units <= self.config["exact_max_units"]

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "ais_estimate"

    # ------------------------------------------------------------------ the Pyro program
    def normalizer(self, training: str | None = None):
        """The normalizer :meth:`model` uses for ``training`` (kept, so PCD chains persist)."""
        training = training or self.config["training"]
        check_choice(training, "training", _TRAINING)
        if training not in self._normalizers:
            cfg = self.config
            est = self._monitor_estimator()
            # refresh_every=None: fit schedules the value refreshes (once per convergence
            # window); a direct use of model() refreshes every 100 calls as before
            if training == "pcd":
                norm = PCD(num_chains=cfg["num_chains"], num_steps=cfg["k"], estimator=est,
                           refresh_every=None)
            elif training == "cd":
                norm = CD(num_steps=cfg["k"], estimator=est, refresh_every=None)
            else:
                norm = Exact(max_units=max(20, cfg["exact_max_units"]))
            self._normalizers[training] = norm
        return self._normalizers[training]

    def _monitor_estimator(self):
        """How PCD/CD refresh the (stale) value of log Z in the training loss: exact when at
        most 16 units are enumerated, else a short AIS run (a monitoring number)."""
        if self._enumeration_units <= 16:
            return Exact()
        return AIS(
            num_chains=min(32, self.config["ais_num_chains"]),
            num_betas=min(300, self.config["ais_num_betas"]),
            base=self._ais_base(),
        )

    def _active_normalizer(self):
        return getattr(self, "_fit_normalizer", None) or self.normalizer()

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """``pyro.sample("x", <the RBM distribution>(..., normalizer=...), obs=x)`` in the
        data plate."""
        d = self.distribution(self._active_normalizer())
        if x is None:
            with pyro.plate("data", 1 if num_data is None else num_data):
                return pyro.sample("x", d)
        with self._data_plate(x, num_data):
            v = pyro.sample("x", d, obs=x)
            if getattr(self, "_fit_normalizer", None) is None:  # not inside fit
                self._record_sites(v)
        return v

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """Empty: the model has no latent sample sites (hidden units are summed out)."""

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
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
        optimizer: str = "adam",
        momentum: float | Callable[[int], float] = 0.0,
        weight_decay: float = 0.0,
        k: int | Callable[[int], int] | None = None,
        refresh_every: int | None = None,
    ) -> FitHistory:
        r"""Train by ``pyro.infer.SVI`` on :meth:`model` with the PCD, CD or exact normalizer.

        The data are validated once up front (shape, dtype, finite values and, for binary
        models, 0/1 entries, as scikit-learn does); the SVI steps then run with Pyro's
        per-step validation off for these already validated mini-batches
        (``pyro.validation_enabled(False)`` inside this loop only: a user's own
        ``log_prob`` call with validation on keeps its checks). Mini-batches are drawn
        without replacement, a fresh permutation every pass over the data. One torch
        optimizer updates the three parameter tensors in one call.

        Parameters
        ----------
        x : Tensor, array, numpy.memmap, Dataset or DataLoader, shape ``(n, n_features)``
            Training data (binary for :class:`BernoulliRBM`). A memory-mapped array, a
            ``Dataset`` or a ``DataLoader`` (its dataset, and its batch size when
            ``batch_size`` is unset) streams: each batch is read and checked when it is used,
            the base rates come from one streamed pass
            (:class:`~pyrogen.distributed.RowSource`).
        method : {"pcd", "cd", "exact"}, optional
            The learning rule (default: the constructor's ``training``). ``"exact"`` needs at
            most 20 enumerated units.
        num_steps : int
            Maximum SVI steps (mini-batches).
        lr : float
            Step size. For ``"adam"`` Adam's step size; for ``"sgd"`` the step on the
            *per-example mean* gradient, :math:`\theta \leftarrow \theta - \epsilon
            (\nabla \bar\ell + \lambda W)` (Hinton's recipe: about 0.05 for binary MNIST).
        batch_size : int, optional
            Rows per step (default: all rows).
        loss : pyro.infer.ELBO, optional
            Default ``Trace_ELBO()``.
        tol : float or None
            Convergence test of the shared training loop
            (:meth:`~pyrogen.models.base.GenerativeModel._train`) on the monitored loss below
            (windowed means, relative ``tol``); ``ConvergenceWarning`` when ``num_steps`` run
            out first; ``None`` runs exactly ``num_steps`` steps without the test.
        seed : int, optional
            Seeds Pyro's (and torch's) random state first: the training randomness (the
            initial weights come from the constructor's ``seed``).
        progress : bool
            tqdm progress bar.
        callback : callable, optional
            ``callback(step, loss)`` after every step.
        data_info : dict, optional
            Stored as ``self.data_info``.
        optimizer : {"adam", "sgd"}
            ``"sgd"``: SGD with ``momentum``, the classic CD recipe.
        momentum : float or callable
            SGD momentum in :math:`[0, 1)`, or a function of the step (e.g. Hinton's 0.5 for
            the first epochs, then 0.9).
        weight_decay : float
            :math:`\lambda` of an L2 penalty :math:`\frac{\lambda}{2}\|W\|^2` per example on
            the weights (not the biases).
        k : int or callable, optional
            Gibbs steps of PCD-k / CD-k, or a function of the step (e.g. CD-1 rising to
            CD-25 during training, as Salakhutdinov & Murray 2008 did); default the
            constructor's ``k``.
        refresh_every : int, optional
            PCD / CD only: how often the monitored value of :math:`\log Z` in the loss (a
            short AIS run, or exact enumeration for at most 16 units) is recomputed. Default:
            at step 0 of every ``fit`` call and then every :math:`P` steps, :math:`P` the
            smallest multiple of the convergence window (whole epochs of at least 50 steps,
            see :meth:`~pyrogen.models.base.GenerativeModel._train`) that is at least 100
            steps, so that every refresh falls at the start of a window: once per epoch for
            MNIST at batch 100 (500 steps; it was every 100 steps before, 34-38% of the
            time of ``fit`` at 784-500), never more often than every 100 steps. An integer:
            every that many steps from step 0. A normalizer whose own ``refresh_every`` was
            set (``model.normalizer("pcd").refresh_every = 1000``) keeps its schedule unless
            this argument is given. The period used is ``history.info["log_z_refresh_every"]``.

        Returns
        -------
        FitHistory
            ``method`` is the learning rule; ``losses`` are per-example SVI losses, i.e.
            :math:`F(x) + \log Z` with the (possibly stale) value of :math:`\log Z`: a
            monitoring number, not a log-likelihood.
        """
        method = self.config["training"] if method is None else method
        check_choice(method, "method", _TRAINING)
        check_choice(optimizer, "optimizer", _OPTIMIZERS)
        num_steps = check_int(num_steps, "num_steps", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        weight_decay = check_float(weight_decay, "weight_decay", 0.0, None)
        momentum_at = _as_schedule(momentum, "momentum", "float")
        k_at = _as_schedule(self.config["k"] if k is None else k, "k", "int")
        src = _dist.as_row_source(x, self._check_train_x)
        if src is None:
            x = self._check_train_x(x)
        else:  # memory-mapped / Dataset / DataLoader: read and check one batch at a time
            x = src
            batch_size = src.batch_size if batch_size is None else batch_size
        n = x.shape[0]
        batch_size = n if batch_size is None else min(check_int(batch_size, "batch_size", 1), n)
        self._begin_fit(seed, data_info)
        self._init_from_data(x if src is None else src.column_mean().unsqueeze(0))

        norm = self.normalizer(method)
        params = [self.weight, *(p for name, p in self.named_parameters() if name != "weight")]
        # the per-example loss is summed over the n (scaled) rows: gradients are n times the
        # per-example mean, so SGD's step and the decay are rescaled to per-example units
        wd = weight_decay * n
        groups = [{"params": params[:1], "weight_decay": wd}, {"params": params[1:]}]
        if optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=lr, foreach=True)
        else:
            opt = torch.optim.SGD(groups, lr=lr / n, momentum=momentum_at(0), foreach=True)
        svi = pyro.infer.SVI(
            self.model, self.guide, JointOptim(opt), loss or pyro.infer.Trace_ELBO()
        )

        history = FitHistory(method=method, info={"num_steps": num_steps, "lr": lr})
        ks = []
        contrastive = isinstance(norm, (PCD, CD))
        period = None  # refresh period of the log Z value (steps) when fit schedules it
        if contrastive:
            if refresh_every is not None:
                period = check_int(refresh_every, "refresh_every", low=1)
            elif norm.refresh_every is None:
                per_epoch = 1 if batch_size >= n else math.ceil(n / batch_size)
                window = math.ceil(DEFAULT_WINDOW / per_epoch) * per_epoch
                period = window * math.ceil(100 / window)
            history.info["log_z_refresh_every"] = (
                period if period is not None else norm.refresh_every
            )
        k_fixed = None if callable(k) else k_at(0)  # constants were checked above
        m_fixed = None if callable(momentum) else momentum_at(0)

        def step_loss(step, idx):
            kk = k_fixed if k_fixed is not None else check_int(k_at(step), "k(step)", low=1)
            if contrastive:
                norm.num_steps = kk
                if period is not None and step % period == 0:
                    norm.request_refresh()
            if not ks or ks[-1][1] != kk:
                ks.append((step, kk))
            if optimizer == "sgd" and m_fixed is None:
                m = check_float(momentum_at(step), "momentum(step)", 0.0, 1.0, "co")
                for grp in opt.param_groups:
                    grp["momentum"] = m
            if idx is None:
                return svi.step(x if src is None else src[torch.arange(n)], num_data=None) / n
            rows = torch.index_select(x, 0, idx) if src is None else src[idx]
            return svi.step(rows, num_data=n) / n

        self._fit_normalizer = norm
        if period is not None:
            norm.schedule_refreshes(True)
        t0 = time.perf_counter()
        try:
            with pyro.validation_enabled(False):
                self._train(step_loss, history, n=n, batch_size=batch_size,
                            num_steps=num_steps, lr=lr, tol=tol, progress=progress,
                            callback=callback, device=x.device)
        finally:
            self._fit_normalizer = None
            if contrastive:
                norm.num_steps = self.config["k"]
                norm.schedule_refreshes(False)
        history.seconds = time.perf_counter() - t0
        history.info.update(
            learning_rule=_RULE[method],
            k=self.config["k"] if k is None else ks,
            optimizer=optimizer,
            weight_decay=weight_decay,
        )
        if optimizer == "sgd":
            history.info["momentum"] = momentum if not callable(momentum) else "schedule"
        if isinstance(norm, (PCD, CD)) and norm._value is not None:
            history.info["loss_log_z_kind"] = norm._value.kind
        return history

    # ------------------------------------------------------------------ evaluation
    def log_normalizer(self, *, num_chains=None, num_betas=None, seed=None, method=None):
        """:math:`\\log Z` as a :class:`~pyrogen.normalizers.LogZEstimate`.

        ``method``: ``"exact"`` or ``"ais"``; default exact when :attr:`exact`, else an AIS
        estimate (``num_chains`` x ``num_betas``) with its standard error.
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
                base=self._ais_base(),
                seed=seed,
            )
            return ais(d)

    def log_likelihood(self, x, *, num_chains=None, num_betas=None, seed=None,
                       method=None) -> LogLikelihood:
        """Per-example :math:`\\log p(x) = -F(x) - \\log Z` (nats).

        ``method`` (``"exact"`` or ``"ais"``) chooses how :math:`\\log Z` is computed, as in
        :meth:`log_normalizer`; by default exact (``kind="exact"``) when :attr:`exact`;
        otherwise ``kind="ais_estimate"``:
        :math:`\\log Z` by AIS with ``num_chains`` chains and ``num_betas`` temperatures
        (defaults from the constructor). The AIS :math:`\\hat Z` is unbiased for :math:`Z`, so
        the values are a stochastic *upper* bound on the log-likelihood in expectation;
        ``shared_stderr`` is the standard error of :math:`\\log \\hat Z` (shared by all
        examples).
        """
        x = self._check_eval_x(x)
        with torch.no_grad():
            d = self.distribution(Exact(max_units=24))
            est = self.log_normalizer(num_chains=num_chains, num_betas=num_betas, seed=seed,
                                      method=method)
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


@register_model("rbm")
class BernoulliRBM(_RBMModel):
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
        super().__init__(
            n_features,
            n_hidden,
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
        #: log-odds of the training data's base rates (the AIS base model and sampler start)
        self.register_buffer("base_rate_logits", torch.zeros(self.n_features))

    @property
    def _enumeration_units(self) -> int:
        return min(self.n_features, self.n_hidden)

    def _ais_base(self):
        return self.base_rate_logits

    def distribution(self, normalizer=None) -> RBM:
        """The :class:`~pyrogen.distributions.RBM` with the current parameters."""
        return RBM(
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            normalizer=normalizer if normalizer is not None else self.normalizer(),
            mcmc_steps=self.config["sample_steps"],
        )

    def _record_sites(self, v) -> None:
        # outside fit only: it costs one more matrix product
        pyro.deterministic("hidden_mean", torch.sigmoid(self.hidden_bias + v @ self.weight))

    def _check_train_x(self, x) -> torch.Tensor:
        if (
            isinstance(x, torch.Tensor)
            and x.dim() == 2
            and x.shape[0] >= 1
            and x.shape[1] == self.n_features
            and x.dtype == self.dtype
            and x.device == self.device
            and _all_binary(x)
        ):
            return x  # binary implies finite: everything check_data would verify holds
        return check_binary(self._check_x(x), "x")

    _check_eval_x = _check_train_x

    def _init_from_data(self, x) -> None:
        """Base rates of ``x`` -> the AIS base; the visible biases too at the first fit
        (Hinton's recipe)."""
        from ..infer.ais import base_rate_visible_bias

        with torch.no_grad():
            logits = base_rate_visible_bias(x)
            first = not bool(self.base_rate_logits.any())
            self.base_rate_logits.copy_(logits)
            if first and not bool(self.visible_bias.any()):
                self.visible_bias.copy_(logits)

    def raise_check(self, x, *, num_chains: int = 10, num_betas: int | None = None, seed=None):
        """RAISE (Burda, Grosse & Salakhutdinov 2015): a conservative estimate of log p(x).

        Runs the base-rate annealing path backwards from each data row
        (:func:`pyrogen.infer.ais.reverse_ais`); the result is an importance-sampled estimate
        (``kind="is_estimate"``), a stochastic *lower* bound on the annealing model's
        log-likelihood, to be compared with the AIS estimate of :meth:`log_likelihood` (an
        upper bound in expectation): agreement means both are accurate.
        """
        from ..infer.ais import reverse_ais

        x = self._check_eval_x(x)
        num_chains = check_int(num_chains, "num_chains", low=2)
        num_betas = num_betas or self.config["ais_num_betas"]
        g = None if seed is None else torch.Generator(device=self.device).manual_seed(
            check_int(seed, "seed", 0))
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
class GaussianBernoulliRBM(_RBMModel):
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
        sigma = check_float(sigma, "sigma", 0.0, None, "oo")
        if not isinstance(learn_sigma, bool):
            raise TypeError(
                f"learn_sigma must be a bool. Got {type(learn_sigma).__name__} instead."
            )
        super().__init__(
            n_features,
            n_hidden,
            training=training,
            k=k,
            num_chains=num_chains,
            init_scale=init_scale,
            exact_max_units=exact_max_units,
            ais_num_chains=ais_num_chains,
            ais_num_betas=ais_num_betas,
            sample_steps=sample_steps,
            seed=seed,
            sigma=sigma,
            learn_sigma=learn_sigma,
        )
        log_sigma = torch.full((self.n_features,), math.log(sigma))
        if learn_sigma:
            self.log_sigma = nn.Parameter(log_sigma)
        else:
            self.register_buffer("log_sigma", log_sigma)
        self.register_buffer("_initialized", torch.zeros((), dtype=torch.bool))

    @property
    def _enumeration_units(self) -> int:
        return self.n_hidden

    @property
    def sigma(self) -> torch.Tensor:
        r"""Visible standard deviations :math:`\sigma_i`, shape ``(n_features,)``."""
        return self.log_sigma.exp()

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

    def _init_from_data(self, x) -> None:
        """Visible biases := the data mean, at the first fit."""
        if not bool(self._initialized):
            with torch.no_grad():
                self.visible_bias.copy_(x.mean(0))
                self._initialized.fill_(True)

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
