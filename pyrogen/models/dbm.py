r"""Deep Boltzmann machines following the model protocol (book §20.4).

:class:`DBM` is a PyroModule over the :class:`pyrogen.distributions.DeepBoltzmannMachine`
distribution. Its Pyro program is the joint :math:`p(v, h) = e^{-E(v,h)}/Z`:

* ``model(x)``: in the data plate, one sample site ``"h1"``, ..., ``"hL"`` per hidden layer
  whose model density is the counting measure (a masked Bernoulli), then
  ``pyro.sample("x", dbm.joint([h1, ..., hL]), obs=x)`` scoring :math:`-E(v,h) - \log Z` with
  the :class:`~pyrogen.normalizers.PCD` normalizer (value: a stale estimate; gradient:
  :math:`\mathbb E_{\text{chains}}[-\nabla E]` over persistent block-Gibbs chains over all
  layers). Without ``x`` it draws ``x`` from the DBM (block Gibbs).
* ``guide(x)``: the mean-field posterior (eqs. 20.29-20.34), fixed-point iterations from a
  bottom-up pass, treated as constants. With ``guide="mean_field"`` (default) each site is a
  ``Delta`` at :math:`\mu_l` whose log-density is :math:`-H(\mu_l)`: ``Trace_ELBO`` then
  computes the *analytic* mean-field ELBO :math:`-E(v, \mu) - \log Z + \sum_l H(\mu_l)`
  (the energy is multilinear, so :math:`\mathbb E_q[E(v,h)] = E(v,\mu)`), whose gradient is
  exactly Algorithm 20.1's update: positive phase :math:`-\nabla E(v, \mu)`, negative phase
  from the chains. ``guide="sampled"`` draws :math:`h \sim q` instead (an unbiased but noisier
  estimate of the same gradient).

So ``SVI(model, guide, SGD, Trace_ELBO())`` *is* variational stochastic maximum likelihood
(Algorithm 20.1); ``fit(method="vsml")`` runs it through the shared training loop.
``fit(method="pretrain")`` is the greedy layer-wise pretraining of Salakhutdinov & Hinton
(2009) (§20.4.4), ``"pretrain+vsml"`` both. ``DBM(..., centering=True)`` trains the centered
parametrization of Montavon & Müller (2012) (§20.4.5) with the same program;
``fit(method="mp")`` is multi-prediction training (Goodfellow et al. 2013).

``log_likelihood``: :math:`\log\tilde p(v) - \log Z` with each term exact when small enough
(``exact_max_units``), otherwise :math:`\log Z` by AIS on the DBM path and
:math:`\log\tilde p(v)` by its mean-field lower bound -- the estimate of Salakhutdinov & Hinton
(2009), labelled ``"ais_mean_field"`` (neither side in general: see :data:`pyrogen.evaluation.
KINDS`).

References
----------
1. R. Salakhutdinov and G. Hinton. Deep Boltzmann machines. *AISTATS* 2009.
2. G. Montavon and K.-R. Müller. Deep Boltzmann machines and the centering trick. *Neural
   Networks: Tricks of the Trade*, 2nd ed., Springer 2012.
3. I. Goodfellow, M. Mirza, A. Courville and Y. Bengio. Multi-prediction deep Boltzmann
   machines. *NeurIPS* 2013.
"""

from __future__ import annotations

import itertools

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .._validation import check_binary, check_choice, check_float, check_int
from ..distributions import RBM, DeepBoltzmannMachine
from ..distributions.dbm import _entropy, _offset_inputs, check_offsets
from ..evaluation import LogLikelihood
from ..infer.annealing import base_rate_visible_bias
from ..infer.annealing.defaults import DEFAULT_NUM_BETAS
from ..infer.layerwise import PROPAGATE, greedy_layerwise
from ..normalizers import AIS, CD, PCD, Exact
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["DBM"]

_METHODS = ("vsml", "pretrain", "pretrain+vsml", "mp")
_GUIDES = ("mean_field", "sampled")
_rbm_counter = itertools.count()


class _PretrainRBM(pyro.nn.PyroModule):
    """One RBM of the greedy stack, with the visible (``double="visible"``) or hidden
    (``double="hidden"``) layer duplicated and the copies' weights tied (Salakhutdinov & Hinton
    2009): the doubled layer then receives twice the input from the other one."""

    def __init__(self, owner, weight, visible_bias, hidden_bias, double, k):
        super().__init__(name=f"DBMPretrainRBM_{next(_rbm_counter)}")
        self._owner = [owner]  # not a submodule: the DBM's shared training loop runs the fit
        self.weight = nn.Parameter(weight.detach().clone())
        self.visible_bias = nn.Parameter(visible_bias.detach().clone())
        self.hidden_bias = nn.Parameter(hidden_bias.detach().clone())
        self.double = double
        self.cd = CD(num_steps=k, estimator=None)

    def distribution(self, normalizer):
        W, b, c = self.weight, self.visible_bias, self.hidden_bias
        if self.double == "visible":
            W, b = torch.cat([W, W], 0), torch.cat([b, b])
        elif self.double == "hidden":
            W, c = torch.cat([W, W], 1), torch.cat([c, c])
        return RBM(W, b, c, normalizer=normalizer, validate_args=False)

    def data(self, x):
        return torch.cat([x, x], -1) if self.double == "visible" else x

    @pyro.nn.pyro_method
    def model(self, x, num_data=None):
        d = self.distribution(self.cd)
        with pyro.plate("data", num_data or x.shape[0], subsample=torch.arange(x.shape[0])):
            pyro.sample("x", d, obs=self.data(x))

    @pyro.nn.pyro_method
    def guide(self, x, num_data=None):
        pass

    def fit(self, x, **kw):
        """SVI with CD-k through the owning DBM's training loop (``_fit_svi``)."""
        return self._owner[0]._fit_svi(x, model=self.model, guide=self.guide, **kw)

    def transform(self, x):
        """:math:`P(h = 1 \\mid x)` (with the doubled input for the bottom RBM)."""
        scale = 2.0 if self.double == "visible" else 1.0
        with torch.no_grad():
            return torch.sigmoid(self.hidden_bias + scale * (x @ self.weight))


@register_model("dbm")
class DBM(GenerativeModel):
    r"""Deep Boltzmann machine :math:`E = -\sum_l b_l^\top x_l - \sum_l x_{l-1}^\top W_l x_l`
    (book §20.4) as a Pyro model; training by variational SML (Algorithm 20.1) as SVI.

    Parameters
    ----------
    n_features : int
        Visible units :math:`n_0`.
    hidden_sizes : sequence of int
        :math:`n_1, \dots, n_L`, :math:`L \ge 2` (default ``(64, 64)``).
    k : int
        Block-Gibbs steps per SVI step of the persistent chains (and CD-k of pretraining).
    num_chains : int
        Persistent chains (Algorithm 20.1's :math:`m` fantasy particles).
    mean_field_iters : int
        Fixed-point iterations of the guide.
    guide : {"mean_field", "sampled"}
        Analytic mean-field ELBO (Algorithm 20.1 exactly) or Bernoulli draws from :math:`q`.
    init_scale : float
        Standard deviation of the initial weights.
    exact_max_units : int
        :meth:`log_likelihood` enumerates when the smaller parity (for :math:`\log Z`) or the
        smaller hidden parity (for :math:`\log\tilde p(v)`) has at most this many units.
    ais_num_chains, ais_num_betas : int
        AIS settings of :meth:`log_likelihood` when :math:`\log Z` is not exact.
    sample_steps : int
        Block-Gibbs steps of :meth:`sample` when it cannot enumerate.
    seed : int
        Seed of the initial weights.
    centering : bool
        Centered parametrization (Montavon & Müller 2012, book §20.4.5; default ``False``):
        :math:`E = -\sum_l (x_l - \mu_l)^\top \tilde b_l - \sum_l (x_{l-1} -
        \mu_{l-1})^\top W_l (x_l - \mu_l)` with offsets :math:`\mu_l` (buffers
        ``offset0``, ..., ``offsetL``), so that ``bias{l}`` holds the *centered* biases
        :math:`\tilde b_l` and the gradients are the centered ones. :meth:`distribution` is the
        equivalent ordinary DBM (:func:`~pyrogen.distributions.dbm.uncenter_dbm_parameters`),
        so sampling, :math:`\log Z` and ``log_likelihood`` are unchanged. The offsets start at
        the data means (visible) and the mean-field means (hidden) when ``fit`` first trains
        jointly, then follow a running average (:meth:`update_offsets`).
    offset_rate : float
        :math:`\nu \in [0, 1]` of the running average of the offsets (``centering=True``
        only; default 0.01; 0 freezes them after their initialisation).

    Notes
    -----
    Cost of one SVI step on :math:`B` rows with :math:`S` chains:
    :math:`O((B\,(2 + I) + k S) \sum_l n_{l-1} n_l)` for :math:`I` mean-field iterations.
    The training loss is :math:`E(v,\mu) + \log Z - H(\mu)` per example with a *stale*
    :math:`\log Z` (refreshed every 100 steps): a monitoring number, not a likelihood.
    """

    def __init__(
        self,
        n_features: int,
        hidden_sizes=(64, 64),
        *,
        k: int = 1,
        num_chains: int = 100,
        mean_field_iters: int = 10,
        guide: str = "mean_field",
        init_scale: float = 0.01,
        exact_max_units: int = 20,
        ais_num_chains: int = 100,
        ais_num_betas: int = DEFAULT_NUM_BETAS,
        sample_steps: int = 1000,
        seed: int = 0,
        centering: bool = False,
        offset_rate: float = 0.01,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        if isinstance(hidden_sizes, (int, str)) or not hasattr(hidden_sizes, "__iter__"):
            raise TypeError(
                "hidden_sizes must be a sequence of at least two ints. Got "
                f"{hidden_sizes!r} instead."
            )
        hidden_sizes = [check_int(h, "hidden_sizes[i]", low=1) for h in hidden_sizes]
        if len(hidden_sizes) < 2:
            raise ValueError(
                "hidden_sizes must hold at least two layer sizes (a DBM has depth >= 2; use "
                f"BernoulliRBM for one). Got {hidden_sizes} instead."
            )
        if not isinstance(centering, bool):
            raise TypeError(f"centering must be a bool. Got {centering!r} instead.")
        offset_rate = check_float(offset_rate, "offset_rate", 0.0, 1.0)
        # the centering keys enter the config only when centering is on, so that an ordinary
        # DBM's checkpoint is exactly what it was before centering existed
        extra = dict(centering=True, offset_rate=offset_rate) if centering else {}
        super().__init__(
            n_features=n_features,
            hidden_sizes=hidden_sizes,
            k=check_int(k, "k", low=1),
            num_chains=check_int(num_chains, "num_chains", low=1),
            mean_field_iters=check_int(mean_field_iters, "mean_field_iters", low=0),
            guide=check_choice(guide, "guide", _GUIDES),
            init_scale=check_float(init_scale, "init_scale", 0.0, None),
            exact_max_units=check_int(exact_max_units, "exact_max_units", low=1, high=24),
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=2),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            sample_steps=check_int(sample_steps, "sample_steps", low=0),
            seed=check_int(seed, "seed", low=0),
            **extra,
        )
        sizes = [n_features, *hidden_sizes]
        scale = self.config["init_scale"]
        for lay in range(1, len(sizes)):
            w = scale * torch.randn(sizes[lay - 1], sizes[lay])
            setattr(self, f"weight{lay}", nn.Parameter(w))
        for lay, n in enumerate(sizes):
            setattr(self, f"bias{lay}", nn.Parameter(torch.zeros(n)))
        #: log-odds of the training data's base rates (the AIS base model)
        self.register_buffer("base_rate_logits", torch.zeros(n_features))
        self._normalizer = None
        self._batch_means = None  # the last guide call's layer means (centering only)
        if centering:
            for lay, n in enumerate(sizes):
                self.register_buffer(f"offset{lay}", torch.zeros(n))
            #: whether the offsets were set (from the data, or by :meth:`set_offsets`)
            self.register_buffer("offsets_initialized", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ structure
    @property
    def sizes(self) -> list:
        return [self.n_features, *self.config["hidden_sizes"]]

    @property
    def depth(self) -> int:
        return len(self.config["hidden_sizes"])

    @property
    def weights(self) -> list:
        return [getattr(self, f"weight{lay}") for lay in range(1, self.depth + 1)]

    @property
    def biases(self) -> list:
        return [getattr(self, f"bias{lay}") for lay in range(self.depth + 1)]

    @property
    def centering(self) -> bool:
        """Whether the model is centered (``DBM(..., centering=True)``)."""
        return bool(self.config.get("centering", False))

    @property
    def offsets(self) -> list | None:
        r"""The offsets :math:`[\mu_0, \dots, \mu_L]` (``None`` unless centered)."""
        if not self.centering:
            return None
        return [getattr(self, f"offset{lay}") for lay in range(self.depth + 1)]

    def plain_parameters(self) -> tuple[list, list]:
        r"""The ordinary (uncentered) parameters ``(weights, biases)`` of the model's DBM:
        the parameters themselves, or for a centered model :math:`W_l` and
        :math:`b_l = \tilde b_l - W_{l+1}\mu_{l+1} - W_l^\top\mu_{l-1}`, differentiable in
        the centered parameters (the offsets are constants)."""
        if not self.centering:
            return self.weights, self.biases
        # uncenter_dbm_parameters without its checks (the buffers are checked when set)
        inputs = _offset_inputs(self.weights, self.offsets)
        return self.weights, [b - a for b, a in zip(self.biases, inputs)]

    def _write_plain(self, weights, biases) -> None:
        """Store ordinary parameters (centering them with the current offsets if centered)."""
        with torch.no_grad():
            if self.centering:
                inputs = _offset_inputs(weights, self.offsets)
                biases = [b + a for b, a in zip(biases, inputs)]
            for p, v in zip([*self.weights, *self.biases], [*weights, *biases]):
                p.copy_(v)

    def _require_centering(self, what: str) -> None:
        if not self.centering:
            raise RuntimeError(
                f"{what} needs a centered DBM: construct it with DBM(..., centering=True)."
            )

    def set_offsets(self, offsets) -> None:
        r"""Set the offsets to ``offsets`` (a list of :math:`L+1` tensors of shapes
        ``(n_l,)``, entries in :math:`[0, 1]`), changing the centered biases so that the
        distribution stays the same: :math:`\tilde b_l \leftarrow b_l + W_{l+1}\mu'_{l+1} +
        W_l^\top\mu'_{l-1}` with :math:`b_l` the ordinary biases."""
        self._require_centering("set_offsets")
        self._set_offsets(check_offsets(offsets, self.sizes, self.dtype, name="offsets"))

    def _set_offsets(self, offsets) -> None:
        with torch.no_grad():
            w, b = (list(t.detach().clone() for t in ts) for ts in self.plain_parameters())
            for m, new in zip(self.offsets, offsets):
                m.copy_(new)
            self._write_plain(w, b)
            self.offsets_initialized.fill_(True)

    def layer_means(self, x, mus=None) -> list:
        r"""Batch means of the layers under the data: :math:`[\bar v, \bar\mu_1, \dots,
        \bar\mu_L]`, :math:`\mu_l` the mean-field posterior (computed unless ``mus``)."""
        x = self._check_bin(x)
        if mus is None:
            mus = self.distribution(Exact()).mean_field(x)
        return [t.detach().reshape(-1, t.shape[-1]).mean(0) for t in (x, *mus)]

    def update_offsets(self, x=None, *, means=None, rate: float | None = None) -> None:
        r"""One running-average step of the offsets (Montavon & Müller 2012):
        :math:`\mu_l \leftarrow (1 - \nu)\,\mu_l + \nu\,\bar x_l` with :math:`\bar x_l`
        the batch mean of layer :math:`l` under the data (:meth:`layer_means` of ``x``: the
        data for :math:`l = 0`, the mean-field posterior above; or given as ``means``) and
        :math:`\nu` = ``rate`` (default ``offset_rate``), through :meth:`set_offsets`, so the
        biases are reparametrized and the distribution does not change.

        ``fit`` calls it after every optimizer step with the means of that step's batch as the
        guide computed them (before the step); a hand-run ``SVI`` loop calls it itself, either
        with ``x`` (mean field recomputed with the current parameters) or with the same
        ``means``."""
        self._require_centering("update_offsets")
        nu = self.config["offset_rate"] if rate is None else check_float(rate, "rate", 0, 1)
        if means is None:
            if x is None:
                raise ValueError("update_offsets needs x (a data batch) or means.")
            means = self.layer_means(x)
        means = check_offsets(list(means), self.sizes, self.dtype, name="means")
        self._average_offsets(means, nu)

    def _average_offsets(self, means, nu) -> None:
        with torch.no_grad():
            self._set_offsets([(1 - nu) * m + nu * a for m, a in zip(self.offsets, means)])

    def normalizer(self) -> PCD:
        """The PCD normalizer of :meth:`model` (kept: its chains persist across steps)."""
        if self._normalizer is None:
            d = self.distribution(Exact())
            est = Exact() if d.enumeration_units <= 16 else AIS(
                num_chains=min(32, self.config["ais_num_chains"]),
                num_betas=min(300, self.config["ais_num_betas"]),
                base=self.base_rate_logits,
            )
            self._normalizer = PCD(
                num_chains=self.config["num_chains"], num_steps=self.config["k"], estimator=est
            )
        return self._normalizer

    def distribution(self, normalizer=None) -> DeepBoltzmannMachine:
        """The :class:`~pyrogen.distributions.DeepBoltzmannMachine` with the current
        parameters (default normalizer: :meth:`normalizer`)."""
        weights, biases = self.plain_parameters()
        return DeepBoltzmannMachine(
            weights,
            biases,
            normalizer=self.normalizer() if normalizer is None else normalizer,
            marginal_max_units=self.config["exact_max_units"],
            mean_field_iters=self.config["mean_field_iters"],
            mcmc_steps=self.config["sample_steps"],
            validate_args=False,
        )

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        d = self.distribution(Exact())
        z_exact = d.enumeration_units <= self.config["exact_max_units"]
        m_exact = d.marginal_units <= self.config["exact_max_units"]
        if z_exact:
            return "exact" if m_exact else "elbo"
        return "ais_estimate" if m_exact else "ais_mean_field"

    # ------------------------------------------------------------------ the Pyro program
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """The joint :math:`p(v, h)`: hidden sites (counting measure), then the joint score of
        ``x`` with the PCD normalizer; without ``x``, draws ``x`` from the DBM."""
        d = self.distribution()
        if x is None:
            with pyro.plate("data", 1 if num_data is None else num_data):
                return pyro.sample("x", d)
        hs = []
        with self._data_plate(x, num_data):
            for lay in range(1, self.depth + 1):
                base = dist.Bernoulli(probs=torch.full((self.sizes[lay],), 0.5, dtype=x.dtype))
                hs.append(pyro.sample(f"h{lay}", base.to_event(1).mask(False)))
            return pyro.sample("x", d.joint(hs), obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """The mean-field posterior :math:`q(h \\mid v)` (constants of the parameters)."""
        if x is None:
            return None
        mus = self.distribution(Exact()).mean_field(x)
        if self.centering:  # for the running average of the offsets (fit, update_offsets)
            self._batch_means = [t.reshape(-1, t.shape[-1]).mean(0) for t in (x, *mus)]
        with self._data_plate(x, num_data):
            for lay, mu in enumerate(mus, 1):
                if self.config["guide"] == "mean_field":
                    site = dist.Delta(mu, log_density=-_entropy(mu), event_dim=1)
                else:
                    site = dist.Bernoulli(probs=mu).to_event(1)
                pyro.sample(f"h{lay}", site)
        return mus

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return _METHODS

    def _check_bin(self, x) -> torch.Tensor:
        return check_binary(self._check_x(x), "x")

    def _init_from_data(self, x) -> None:
        with torch.no_grad():
            logits = base_rate_visible_bias(x)
            first = not bool(self.base_rate_logits.any())
            self.base_rate_logits.copy_(logits)
            if not self.centering:
                if first and not bool(self.bias0.any()):
                    self.bias0.copy_(logits)
                return
            w, b = (list(t.detach().clone() for t in ts) for ts in self.plain_parameters())
            if first and not bool(b[0].any()):
                b[0] = logits.to(b[0])
                self._write_plain(w, b)

    def _init_offsets(self, x, max_rows: int = 2000) -> None:
        """Offsets from the data: the visible means and the mean-field means of (at most
        ``max_rows`` evenly spaced rows of) ``x``."""
        rows = x if x.shape[0] <= max_rows else x[
            torch.linspace(0, x.shape[0] - 1, max_rows).round().long()
        ]
        means = self.layer_means(rows)
        means[0] = x.detach().reshape(-1, x.shape[-1]).mean(0)
        self.update_offsets(means=means, rate=1.0)

    def fit(
        self,
        x,
        *,
        method: str = "vsml",
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss=None,
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
        pretrain_features: str = "probabilities",
        mp_mask_prob: float = 0.5,
    ) -> FitHistory:
        r"""Train.

        ``method="vsml"``: variational SML (Algorithm 20.1) as ``pyro.infer.SVI`` with Adam on
        :meth:`model`/:meth:`guide` through the shared loop (``num_steps`` steps).
        ``"pretrain"``: greedy layer-wise pretraining (Salakhutdinov & Hinton 2009, §20.4.4):
        RBM :math:`l` is trained by SVI with CD-k on the layer below's features
        (``pretrain_features``: the hidden probabilities ``"probabilities"`` or one Bernoulli
        draw of them, ``"samples"``), through :func:`pyrogen.infer.layerwise.greedy_layerwise`;
        the first RBM with its visible layer doubled (tied copies), the last with its hidden
        layer doubled, the middle ones plain and their weights halved when the DBM is composed;
        a hidden layer's bias is the mean of the two RBMs' biases for it.
        ``num_steps`` steps per RBM. ``"pretrain+vsml"``: both, ``num_steps`` each.

        With ``centering=True``, ``"vsml"`` first sets the offsets from ``x`` if they were
        never set (:meth:`update_offsets` with rate 1 on at most 2,000 evenly spaced rows, the
        visible offsets from all rows) and moves them by the running average after every
        optimizer step; pretraining is the ordinary one, stored centered.

        ``"mp"``: multi-prediction training (Goodfellow, Mirza, Courville & Bengio 2013): each
        step hides a random subset of the visible units of every row (each unit with probability
        ``mp_mask_prob``), runs the mean-field recurrent net with the rest clamped
        (:meth:`~pyrogen.distributions.DeepBoltzmannMachine.mean_field_masked`,
        ``mean_field_iters`` sweeps) and minimizes the cross-entropy of the hidden units'
        predictions, back-propagating through the unrolled iterations (SVI on :meth:`mp_model`,
        an empty guide). It trains the DBM as an inpainting network: no :math:`\log Z`, no
        chains, and no guarantee about the likelihood (see :meth:`inpaint`).

        Other parameters as :meth:`GenerativeModel.fit`. Returns the history of the last phase
        (``info["pretrain"]`` holds the per-layer final losses).
        """
        check_choice(method, "method", _METHODS)
        check_choice(pretrain_features, "pretrain_features", PROPAGATE)
        mp_mask_prob = check_float(mp_mask_prob, "mp_mask_prob", 0.0, 1.0, "oo")
        x = self._check_bin(x)
        self._begin_fit(seed, data_info)
        self._init_from_data(x)
        kw = dict(num_steps=num_steps, lr=lr, batch_size=batch_size, tol=tol,
                  progress=progress, callback=callback)
        if method == "mp":
            self._mp_mask_prob = mp_mask_prob
            hist = self._fit_svi(x, loss=loss, model=self.mp_model, guide=self._mp_guide, **kw)
            hist.method = "mp"
            hist.info["learning_rule"] = "multi-prediction (Goodfellow et al. 2013)"
            hist.info["mask_prob"] = self._mp_mask_prob
            return hist
        pre = None
        if method in ("pretrain", "pretrain+vsml"):
            pre = self._pretrain(x, pretrain_features, **kw)
            if method == "pretrain":
                pre.method = "pretrain"
                return pre
        if self.centering:
            if not bool(self.offsets_initialized):
                self._init_offsets(x)
            kw["callback"] = self._offset_callback(callback)
        hist = self._fit_svi(x, loss=loss, **kw)
        hist.method = "vsml"
        hist.info["learning_rule"] = "variational SML (Algorithm 20.1)" + (
            ", centered (Montavon & Mueller 2012)" if self.centering else ""
        )
        if pre is not None:
            hist.info["pretrain"] = pre.info["pretrain"]
        return hist

    # ------------------------------------------------------------------ multi-prediction
    def mp_loss(self, x, mask) -> torch.Tensor:
        r"""Multi-prediction loss per row: :math:`-\sum_{i \in S}[x_i\log\hat\mu_i +
        (1 - x_i)\log(1 - \hat\mu_i)]` over the masked visible units :math:`S` (``mask``
        true), :math:`\hat\mu` the mean-field prediction with the rest of ``x`` clamped;
        differentiable through the unrolled mean field. Shape ``x.shape[:-1]``."""
        d = self.distribution(Exact())
        _, logits = d.mean_field_masked(x, mask)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, x.to(logits.dtype), reduction="none"
        )
        return (bce * mask.to(bce.dtype)).sum(-1)

    @pyro.nn.pyro_method
    def mp_model(self, x: torch.Tensor, num_data: int | None = None):
        """The multi-prediction objective as a Pyro program: a random mask per row, then
        ``pyro.factor("mp", -mp_loss(x, mask))`` in the data plate (SVI with an empty guide
        minimizes the expected loss per example)."""
        p = getattr(self, "_mp_mask_prob", 0.5)
        with self._data_plate(x, num_data):
            mask = torch.rand(x.shape, device=x.device) < p
            pyro.factor("mp", -self.mp_loss(x, mask))

    def _mp_guide(self, x, num_data=None):
        pass

    def inpaint(self, x, mask, *, num_iters: int | None = None) -> torch.Tensor:
        r"""Mean-field predictions :math:`P(x_i = 1)` of the masked visible units given the
        others (:meth:`~pyrogen.distributions.DeepBoltzmannMachine.mean_field_masked`);
        entries off the mask are ``x``. Shape ``x.shape``."""
        x = self._check_x(x)
        mask = torch.as_tensor(mask, device=x.device).to(torch.bool)
        with torch.no_grad():
            mus, _ = self.distribution(Exact()).mean_field_masked(x, mask, num_iters)
        return mus[0]

    def _offset_callback(self, callback):
        """After every optimizer step: the running average of the offsets from the batch
        means the guide recorded, then the user's callback."""
        self._batch_means = None

        def cb(i, value):
            if self._batch_means is not None:
                means, self._batch_means = self._batch_means, None
                self._average_offsets(means, self.config["offset_rate"])
            if callback is not None:
                callback(i, value)

        return cb

    def _pretrain(self, x, features, **kw) -> FitHistory:
        L, k = self.depth, self.config["k"]
        weights, biases = (list(t.detach() for t in ts) for ts in self.plain_parameters())
        layers = []
        for lay in range(1, L + 1):
            double = "visible" if lay == 1 else ("hidden" if lay == L else None)
            vb = biases[lay - 1] if lay == 1 else torch.zeros_like(biases[lay - 1])
            layers.append(
                _PretrainRBM(self, weights[lay - 1], vb, biases[lay], double, k).to(
                    self.dtype
                )
            )
        res = greedy_layerwise(x, layers, propagate=features, fit_kwargs=kw, seed=None,
                               progress=kw.get("progress", True))
        last = res.histories[-1]
        rbms = [(r, float(h.losses[-1]) if h.losses else float("nan"))
                for r, h in zip(res.layers, res.histories)]
        with torch.no_grad():
            for lay, (rbm, _) in enumerate(rbms, 1):
                halve = 0.5 if rbm.double is None else 1.0
                self.weights[lay - 1].copy_(halve * rbm.weight)
            self.biases[0].copy_(rbms[0][0].visible_bias)
            for lay in range(1, L):
                self.biases[lay].copy_(
                    0.5 * (rbms[lay - 1][0].hidden_bias + rbms[lay][0].visible_bias)
                )
            self.biases[L].copy_(rbms[-1][0].hidden_bias)
            if self.centering:  # what was written is the ordinary DBM: center it
                self._write_plain([w.clone() for w in self.weights],
                                  [b.clone() for b in self.biases])
        store = pyro.get_param_store()
        for r in res.layers:  # the stack's RBMs are temporary: keep the param store clean
            for name in ("weight", "visible_bias", "hidden_bias"):
                if f"{r._pyro_name}.{name}" in store:
                    del store[f"{r._pyro_name}.{name}"]
        if self._normalizer is not None:
            self._normalizer.reset()
        last.info["pretrain"] = [loss for _, loss in rbms]
        return last

    # ------------------------------------------------------------------ evaluation
    def log_normalizer(self, *, num_chains=None, num_betas=None, seed=None, method=None):
        """:math:`\\log Z`: exact (``method="exact"``, default when the smaller parity has at
        most ``exact_max_units`` units) or AIS on the DBM path (``"ais"``)."""
        d = self.distribution(Exact(max_units=24))
        if method is None:
            method = "exact" if d.enumeration_units <= self.config["exact_max_units"] else "ais"
        check_choice(method, "method", ("exact", "ais"))
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
        r"""Per-example :math:`\log p(v) = \log\tilde p(v) - \log Z` (nats), labelled.

        ``kind``: ``"exact"`` (both terms enumerated); ``"elbo"`` (exact :math:`\log Z`,
        mean-field lower bound of :math:`\log\tilde p(v)`: a lower bound); ``"ais_estimate"``
        (exact :math:`\log\tilde p(v)`, AIS :math:`\log Z`: a stochastic upper bound in
        expectation); ``"ais_mean_field"`` (mean-field bound and AIS :math:`\log Z`, the
        Salakhutdinov & Hinton 2009 estimate: neither side in general). ``shared_stderr`` is the
        AIS standard error of :math:`\log Z`.
        """
        x = self._check_bin(x)
        with torch.no_grad():
            d = self.distribution(Exact(max_units=24))
            d.marginal = "exact" if d.marginal_units <= self.config["exact_max_units"] else (
                "mean_field"
            )
            unnorm = d.unnormalized_log_prob(x)
            est = self.log_normalizer(num_chains=num_chains, num_betas=num_betas, seed=seed)
            values = unnorm - est.log_z
        kind = self.log_likelihood_kind
        info = {"log_z": float(est.log_z), "log_z_kind": est.kind,
                "marginal_kind": d.last_marginal_kind}
        if est.kind == "exact":
            return LogLikelihood(values=values, kind=kind, info=info)
        info.update(log_z_stderr=float(est.stderr), ess=float(est.ess),
                    num_chains=est.info["num_chains"], num_betas=est.info["num_betas"])
        return LogLikelihood(values=values, kind=kind, shared_stderr=float(est.stderr), info=info)

    def sample(self, n, *, num_steps: int | None = None) -> torch.Tensor:
        """``n`` draws of :math:`v`: exact when the smaller parity has at most 16 units,
        otherwise ``num_steps`` (default ``sample_steps``) block-Gibbs steps."""
        n = self._check_n(n)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        with torch.no_grad():
            d = self.distribution(Exact())
            d.mcmc_steps = steps
            d.mcmc_init = torch.bernoulli(
                torch.sigmoid(self.base_rate_logits).expand(n, self.n_features)
            ).to(self.dtype)
            return d.sample((n,))

    def transform(self, x) -> torch.Tensor:
        """Mean-field posterior of the top layer, :math:`\\mu_L`, shape ``(n, n_L)``."""
        x = self._check_x(x)
        return self.distribution(Exact()).mean_field(x)[-1]
