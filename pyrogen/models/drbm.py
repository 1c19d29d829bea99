r"""Discriminative and hybrid RBMs: the classification RBM (book §20.8; Larochelle & Bengio 2008).

:class:`DiscriminativeRBM` is a PyroModule over the :class:`pyrogen.distributions.ClassRBM`
joint :math:`p(v, y)` of binary inputs and a class, with three training objectives, each a Pyro
program trained by ``pyro.infer.SVI`` + ``Trace_ELBO`` (no latent sample sites: the hidden
units are summed out analytically, so the "ELBO" is the objective itself):

============================  ===================================================================
``objective``                 Pyro program (``x = [v, e_y]``)
============================  ===================================================================
``"generative"``              :meth:`DiscriminativeRBM.model`:
                              ``pyro.sample("xy", ClassRBM(..., normalizer=CD/PCD), obs=x)``;
                              the SVI gradient is the CD-k / PCD-k rule for :math:`\log p(v,y)`
``"discriminative"``          :meth:`DiscriminativeRBM.conditional_model`:
                              ``pyro.sample("y", Categorical(logits=class_logits(v)), obs=y)``;
                              the exact gradient of :math:`\log p(y \mid v)`
``"hybrid"``                  :meth:`DiscriminativeRBM.hybrid_model`: both sites, the joint one
                              under ``poutine.scale(alpha)``:
                              :math:`\log p(y \mid v) + \alpha \log p(v, y)`
============================  ===================================================================

It follows the model protocol over the joint (``x`` = the rows ``[v, one_hot(y)]``,
``n_features = n_visible + n_classes``: ``fit(x)``, ``log_likelihood(x)``, ``sample(n)``,
``transform(x)``) and, like a scikit-learn classifier, accepts ``fit(v, y)``, ``predict(v)``,
``predict_proba(v)``, ``score(v, y)``.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import (
    check_binary,
    check_choice,
    check_data,
    check_float,
    check_int,
    check_labels,
)
from ..distributions.class_rbm import ClassRBM
from ..evaluation import LogLikelihood
from ..normalizers import AIS, CD, PCD, Exact
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["DiscriminativeRBM"]

_OBJECTIVES = ("generative", "discriminative", "hybrid")
_TRAINING = ("cd", "pcd")


@register_model("drbm")
class DiscriminativeRBM(GenerativeModel):
    r"""Classification RBM over binary inputs and a class, trained generatively,
    discriminatively or by the hybrid objective (Larochelle & Bengio 2008 [1]_; book §20.8
    [2]_).

    .. math::

        E(v, y, h) = -b^\top v - c^\top h - d^\top e_y - v^\top W h - e_y^\top U h, \qquad
        p(y \mid v) = \operatorname{softmax}_y\Bigl(d_y + \sum_j
        \operatorname{softplus}\bigl(c_j + U_{yj} + \textstyle\sum_i W_{ij} v_i\bigr)\Bigr).

    Objectives (per example, maximized): generative :math:`\log p(v, y)` (CD-k or PCD-k
    gradient, ``training``); discriminative :math:`\log p(y \mid v)` (exact gradient);
    hybrid :math:`\log p(y \mid v) + \alpha \log p(v, y)`.

    Parameters
    ----------
    n_visible : int
        :math:`D`, binary inputs.
    n_classes : int
        :math:`C \ge 2`.
    n_hidden : int
        :math:`H`.
    objective : {"discriminative", "generative", "hybrid"}
        Default of :meth:`fit`.
    alpha : float
        Weight of the generative term in the hybrid objective (default 0.01).
    training : {"cd", "pcd"}
        Gradient of :math:`\log Z` in the generative term: CD-k from the data or PCD-k over
        ``num_chains`` persistent chains.
    k : int
        Gibbs steps per update of CD/PCD.
    num_chains : int
        PCD chains.
    init_scale : float
        Standard deviation of the initial weights :math:`W, U`.
    exact_max_units : int
        :meth:`log_likelihood` is exact (enumerating the :math:`2^H` hidden states) up to this
        many hidden units, else an AIS estimate.
    ais_num_chains, ais_num_betas : int
        AIS of :meth:`log_likelihood` and :meth:`log_normalizer`.
    sample_steps : int
        Block Gibbs steps of :meth:`sample`.
    seed : int
        Seeds the initial parameters.

    References
    ----------
    .. [1] H. Larochelle, Y. Bengio, "Classification using discriminative restricted Boltzmann
       machines", ICML 2008.
    .. [2] I. Goodfellow, Y. Bengio, A. Courville, *Deep Learning*, MIT Press 2016, §20.8.
    """

    def __init__(self, n_visible: int, n_classes: int, n_hidden: int = 500, *,
                 objective: str = "discriminative", alpha: float = 0.01, training: str = "cd",
                 k: int = 1, num_chains: int = 100, init_scale: float = 0.01,
                 exact_max_units: int = 16, ais_num_chains: int = 100,
                 ais_num_betas: int = 1000, sample_steps: int = 1000, seed: int = 0):
        super().__init__(
            n_visible=check_int(n_visible, "n_visible", low=1),
            n_classes=check_int(n_classes, "n_classes", low=2),
            n_hidden=check_int(n_hidden, "n_hidden", low=1),
            objective=check_choice(objective, "objective", _OBJECTIVES),
            alpha=check_float(alpha, "alpha", 0.0, None),
            training=check_choice(training, "training", _TRAINING),
            k=check_int(k, "k", low=1),
            num_chains=check_int(num_chains, "num_chains", low=1),
            init_scale=check_float(init_scale, "init_scale", 0.0, None),
            exact_max_units=check_int(exact_max_units, "exact_max_units", low=1, high=24),
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=2),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            sample_steps=check_int(sample_steps, "sample_steps", low=0),
            seed=check_int(seed, "seed", low=0),
        )
        D, C, H = n_visible, n_classes, n_hidden
        s = self.config["init_scale"]
        self.weight = nn.Parameter(s * torch.randn(D, H))
        self.class_weight = nn.Parameter(s * torch.randn(C, H))
        self.visible_bias = nn.Parameter(torch.zeros(D))
        self.hidden_bias = nn.Parameter(torch.zeros(H))
        self.class_bias = nn.Parameter(torch.zeros(C))
        #: AIS base logits ([v] Bernoulli logits, [y] class log-weights), fitted to the data
        self.register_buffer("base_logits", torch.zeros(D + C))
        self._normalizer = None

    # ------------------------------------------------------------------ sizes and data
    @property
    def n_visible(self) -> int:
        return int(self.config["n_visible"])

    @property
    def n_classes(self) -> int:
        return int(self.config["n_classes"])

    @property
    def n_hidden(self) -> int:
        return int(self.config["n_hidden"])

    @property
    def n_features(self) -> int:
        """Width of the joint rows ``[v, one_hot(y)]``."""
        return self.n_visible + self.n_classes

    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact (few enough hidden units to enumerate)."""
        return self.n_hidden <= self.config["exact_max_units"]

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        return "exact" if self.exact else "ais_estimate"

    def _check_v(self, v, name: str = "x") -> torch.Tensor:
        v = check_data(v, name, n_features=self.n_visible, dtype=self.dtype, device=self.device)
        return check_binary(v, name)

    def _check_y(self, y, n: int, name: str = "y") -> torch.Tensor:
        if isinstance(y, np.ndarray):
            if not np.issubdtype(y.dtype, np.integer):
                raise ValueError(
                    f"{name} must hold integer class labels. Got an array of dtype {y.dtype} "
                    "instead."
                )
            y = torch.as_tensor(y)
        return check_labels(y, n, self.n_classes, name).to(self.device)

    def joint(self, v, y) -> torch.Tensor:
        """The joint rows ``[v, one_hot(y)]`` (validated), shape ``(n, n_visible +
        n_classes)``."""
        v = self._check_v(v)
        y = self._check_y(y, v.shape[0])
        return torch.cat([v, F.one_hot(y, self.n_classes).to(v.dtype)], -1)

    def _check_joint(self, x, name: str = "x") -> torch.Tensor:
        D, C = self.n_visible, self.n_classes
        if isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim == 2 and x.shape[-1] == D:
            raise ValueError(
                f"{name} has {D} columns (n_visible): pass the labels too, fit(x, y) / "
                f"log_likelihood(x, y), or the joint rows [v, one_hot(y)] of {D + C} columns."
            )
        x = check_binary(self._check_x(x, name), name)
        if not bool((x[:, D:].sum(-1) == 1).all()):
            raise ValueError(
                f"the last n_classes={C} columns of {name} must be one-hot (the class). Got rows "
                "whose class block does not sum to 1 instead."
            )
        return x

    def _xy(self, x, y) -> torch.Tensor:
        return self._check_joint(x) if y is None else self.joint(x, y)

    # ------------------------------------------------------------------ distributions
    def distribution(self, normalizer=None) -> ClassRBM:
        """The joint :class:`~pyrogen.distributions.ClassRBM` with these parameters."""
        return ClassRBM(self.weight, self.visible_bias, self.hidden_bias, self.class_weight,
                        self.class_bias, normalizer=normalizer,
                        mcmc_steps=self.config["sample_steps"])

    def normalizer(self):
        """The CD or PCD normalizer of the generative term (kept: PCD chains persist). Its
        value of :math:`\\log Z` (the loss's) is refreshed every 100 calls, exactly when
        :attr:`exact`, else by a short AIS run: a monitoring number, not the objective."""
        if self._normalizer is None:
            cfg = self.config
            est = (Exact() if self.exact else
                   AIS(num_chains=32, num_betas=300, base=self.base_logits.detach().clone()))
            self._normalizer = (
                PCD(num_chains=cfg["num_chains"], num_steps=cfg["k"], estimator=est)
                if cfg["training"] == "pcd" else CD(num_steps=cfg["k"], estimator=est))
        return self._normalizer

    def class_logits(self, v: torch.Tensor) -> torch.Tensor:
        r"""Unnormalized :math:`\log p(y \mid v)`, shape ``(n, n_classes)``."""
        return self.distribution(Exact()).class_logits(v)

    # ------------------------------------------------------------------ the Pyro programs
    def _joint_site(self, x):
        return pyro.sample("xy", self.distribution(self.normalizer()), obs=x)

    def _class_site(self, x):
        v, e = x[:, : self.n_visible], x[:, self.n_visible :]
        return pyro.sample("y", dist.Categorical(logits=self.class_logits(v)), obs=e.argmax(-1))

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """The joint: ``pyro.sample("xy", ClassRBM(..., normalizer=CD/PCD), obs=x)`` in the
        data plate (``x`` = rows ``[v, one_hot(y)]``)."""
        if x is None:
            with pyro.plate("data", 1 if num_data is None else num_data):
                return pyro.sample("xy", self.distribution(self.normalizer()))
        with self._data_plate(x, num_data):
            return self._joint_site(x)

    @pyro.nn.pyro_method
    def conditional_model(self, x: torch.Tensor, num_data: int | None = None):
        """The discriminative program: ``pyro.sample("y", Categorical(logits=class_logits(v)),
        obs=y)`` in the data plate (``x`` = rows ``[v, one_hot(y)]``)."""
        with self._data_plate(x, num_data):
            return self._class_site(x)

    @pyro.nn.pyro_method
    def hybrid_model(self, x: torch.Tensor, num_data: int | None = None):
        r"""The hybrid program: :meth:`conditional_model`'s site plus the joint site scaled
        by ``alpha``, i.e. :math:`\log p(y \mid v) + \alpha \log p(v, y)`."""
        with self._data_plate(x, num_data):
            self._class_site(x)
            with poutine.scale(scale=self.config["alpha"]):
                self._joint_site(x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """Empty: no latent sample sites (the hidden units are summed out)."""

    def program(self, objective: str | None = None):
        """The Pyro model that ``objective`` trains (see the module docstring)."""
        objective = check_choice(objective or self.config["objective"], "objective",
                                 _OBJECTIVES)
        return {"generative": self.model, "discriminative": self.conditional_model,
                "hybrid": self.hybrid_model}[objective]

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("svi",)

    def fit(self, x, y=None, *, objective: str | None = None, method: str = "svi",
            num_steps: int = 1000, lr: float = 1e-3, batch_size: int | None = None,
            tol: float | None = DEFAULT_TOL, seed: int | None = None, progress: bool = True,
            callback=None, data_info: dict | None = None) -> FitHistory:
        """Train by ``pyro.infer.SVI`` (Adam) on the program of ``objective``.

        Parameters
        ----------
        x : torch.Tensor or numpy.ndarray
            Binary inputs, shape ``(n, n_visible)`` with ``y``; without ``y``, the joint rows
            ``[v, one_hot(y)]``, shape ``(n, n_visible + n_classes)``.
        y : torch.Tensor or numpy.ndarray of int, shape ``(n,)``, optional
            Class labels in ``[0, n_classes)``.
        objective : {"discriminative", "generative", "hybrid"}, optional
            Default: the constructor's.
        num_steps, lr, batch_size, tol, seed, progress, callback, data_info
            As in :meth:`GenerativeModel.fit`. The loss recorded per step is the negative
            objective per example: :math:`-\\log p(y \\mid v)` (exact) for
            ``"discriminative"``; for the generative term the value of :math:`\\log Z` is the
            normalizer's refreshed (stale) estimate.

        Returns
        -------
        FitHistory
        """
        if method != "svi":
            raise ValueError(f"method must be one of ('svi',). Got {method!r} instead.")
        program = self.program(objective)
        xy = self._xy(x, y)
        with torch.no_grad():  # AIS base: smoothed base rates of the training data
            m = (xy.sum(0) + 1.0) / (xy.shape[0] + 2.0)
            D = self.n_visible
            self.base_logits.copy_(torch.cat([torch.log(m[:D]) - torch.log1p(-m[:D]),
                                              torch.log(m[D:])]))
            if not torch.isfinite(self.base_logits).all():  # a class absent: weight e^-inf
                self.base_logits.nan_to_num_(neginf=-30.0)
        self._normalizer = None
        with pyro.validation_enabled(False):  # validated once above
            return self._fit_svi(xy, num_steps=num_steps, lr=lr, batch_size=batch_size,
                                 tol=tol, seed=seed, progress=progress, callback=callback,
                                 data_info=data_info, model=program, guide=self.guide)

    # ------------------------------------------------------------------ classifier API
    def predict_proba(self, x) -> torch.Tensor:
        r"""Exact :math:`p(y \mid v)`, shape ``(n, n_classes)``; rows sum to 1."""
        v = self._check_v(x)
        with torch.no_grad():
            return torch.softmax(self.class_logits(v), -1)

    def predict(self, x) -> torch.Tensor:
        """The most probable class, shape ``(n,)`` (long)."""
        return self.predict_proba(x).argmax(-1)

    def score(self, x, y) -> float:
        """Accuracy of :meth:`predict` on ``(x, y)`` (a fraction in [0, 1])."""
        v = self._check_v(x)
        y = self._check_y(y, v.shape[0])
        return float((self.predict(v) == y).double().mean())

    def conditional_log_likelihood(self, x, y) -> LogLikelihood:
        r"""Exact per-example :math:`\log p(y \mid v)` (nats), kind ``"exact"``."""
        xy = self.joint(x, y)
        with torch.no_grad():
            lp = torch.log_softmax(self.class_logits(xy[:, : self.n_visible]), -1)
            values = lp.gather(-1, xy[:, self.n_visible :].argmax(-1, keepdim=True))
        return LogLikelihood(values=values.squeeze(-1), kind="exact",
                             info={"what": "log p(y | v)"})

    # ------------------------------------------------------------------ protocol over the joint
    def log_normalizer(self, *, num_chains=None, num_betas=None, seed=None):
        """:math:`\\log Z` of the joint: exact when :attr:`exact`, else an AIS estimate
        (base-rate path with the class block, base fitted to the training data)."""
        d = self.distribution(Exact(max_units=24))
        with torch.no_grad():
            if self.exact:
                return d.log_normalizer()
            return AIS(num_chains=num_chains or self.config["ais_num_chains"],
                       num_betas=num_betas or self.config["ais_num_betas"],
                       base=self.base_logits.detach().clone(), seed=seed)(d)

    def log_likelihood(self, x, y=None, *, num_chains=None, num_betas=None,
                       seed=None) -> LogLikelihood:
        """Per-example joint :math:`\\log p(v, y) = -F(v, y) - \\log Z` (nats): exact when
        :attr:`exact`, else ``kind="ais_estimate"`` (:math:`\\hat Z` unbiased for :math:`Z`:
        a stochastic *upper* bound on the log-likelihood in expectation; ``shared_stderr`` is
        the standard error of :math:`\\log \\hat Z`). For :math:`\\log p(y \\mid v)` see
        :meth:`conditional_log_likelihood`."""
        xy = self._xy(x, y)
        est = self.log_normalizer(num_chains=num_chains, num_betas=num_betas, seed=seed)
        with torch.no_grad():
            values = self.distribution(Exact()).unnormalized_log_prob(xy) - est.log_z
        if est.kind == "exact":
            return LogLikelihood(values=values, kind="exact", info={"log_z": float(est.log_z)})
        return LogLikelihood(values=values, kind="ais_estimate", shared_stderr=float(est.stderr),
                             info={"log_z": float(est.log_z), "ess": float(est.ess)})

    def sample(self, n) -> torch.Tensor:
        """Joint rows ``[v, one_hot(y)]``, shape ``(n, n_visible + n_classes)``:
        ``sample_steps`` block Gibbs steps from random starts (approximate draws)."""
        n = self._check_n(n)
        return self.distribution(Exact()).sample((n,))

    def transform(self, x, y=None) -> torch.Tensor:
        r""":math:`P(h_j = 1 \mid v, y) = \sigma(c_j + U_{yj} + (v^\top W)_j)`, shape
        ``(n, n_hidden)``."""
        xy = self._xy(x, y)
        v, e = xy[:, : self.n_visible], xy[:, self.n_visible :]
        with torch.no_grad():
            return torch.sigmoid(self.hidden_bias + v @ self.weight + e @ self.class_weight)
