r"""Deep belief networks as Pyro programs (book §20.3; Hinton, Osindero & Teh 2006).

A DBN with hidden layers :math:`h^{(1)}, \dots, h^{(L)}` over binary data :math:`x = h^{(0)}`
has an undirected top (an RBM over the last two layers) and directed sigmoid layers down to the
data (book eqs. 20.17-20.18):

.. math::

    p(h^{(L-1)}, h^{(L)}) \propto \exp\bigl(b_{L-1}^\top h^{(L-1)} + b_L^\top h^{(L)}
    + h^{(L-1)\top} W_L h^{(L)}\bigr), \qquad
    p(h^{(l-1)}_i = 1 \mid h^{(l)}) = \sigma\bigl(b_{l-1} + W_l h^{(l)}\bigr)_i
    \quad (l = L-1, \dots, 1),

with ``W_l`` of shape ``(n_{l-1}, n_l)``. As a Pyro program (:meth:`DBN.model`) the top RBM is a
:class:`pyrogen.distributions.RBM` distribution over :math:`h^{(L-1)}` (its hidden layer
:math:`h^{(L)}` summed out in the free energy) used as the *prior* of site ``"h{L-1}"``,
followed by Bernoulli sites down to ``"x"``: ``Predictive`` samples it (block Gibbs in the top
RBM, exact when it is small, then ancestral). The guide (:meth:`DBN.guide`) is the recognition
network :math:`q(h^{(l)}_j = 1 \mid h^{(l-1)}) = \sigma(c_l + h^{(l-1)\top} R_l)_j`, bottom-up,
with :math:`R_l = W_l` after greedy pretraining and *untied* afterwards.

Training (:meth:`DBN.fit`):

* ``method="greedy"``: greedy layer-wise pretraining of a stack of RBMs
  (:func:`pretrain_rbm_stack` over :func:`pyrogen.infer.layerwise.greedy_layerwise`), then the
  stack is loaded into the DBN (:meth:`DBN.load_stack`);
* ``method="up_down"``: the up-down fine-tuning of Hinton et al. (2006) is wake-sleep with an
  RBM prior: :class:`pyrogen.infer.wake_sleep.WakeSleep` on :meth:`DBN.model` /
  :meth:`DBN.guide`, where the top RBM's log-normalizer is the CD-k (or PCD) normalizer: the
  wake phase gives the generative layers the delta rule and the top RBM the CD-k update on the
  up-pass state (the gradient trick of :mod:`pyrogen.normalizers`); the sleep phase trains the
  recognition weights on dreams (the down pass);
* ``method="rws"``: :class:`pyrogen.infer.rws.ReweightedWakeSleep` on the same pair.

Log-likelihood (:meth:`DBN.log_likelihood`), each labelled:

* ``"exact"`` when the hidden layers below the top are small: the top RBM's marginal
  :math:`p(h^{(L-1)})` by enumeration, pushed down layer by layer;
* ``"bound"``: the estimate of Salakhutdinov & Murray (2008): the variational lower bound over
  the lower layers with the recognition distribution (Monte Carlo, per-example standard
  error) plus the top RBM's normalized log-probability with :math:`\log Z` by AIS (kind
  ``"ais_bound"``; ``"elbo"`` when :math:`\log Z` is exact);
* ``"importance"``: importance-sampled with the recognition network as proposal
  (:func:`pyrogen.infer.importance.importance_log_likelihood`), same :math:`\log Z`.

References

1. G. E. Hinton, S. Osindero, Y.-W. Teh, "A fast learning algorithm for deep belief nets",
   Neural Computation 18, 2006.
2. R. Salakhutdinov, I. Murray, "On the quantitative analysis of deep belief networks",
   ICML 2008.
"""

from __future__ import annotations

import warnings

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_binary, check_choice, check_data, check_float, check_int
from ..distributions import RBM
from ..evaluation import LogLikelihood
from ..exceptions import ConvergenceWarning
from ..infer.ais import DEFAULT_NUM_BETAS
from ..infer.importance import importance_log_likelihood, per_example_log_weights
from ..infer.layerwise import PROPAGATE, greedy_layerwise
from ..normalizers import AIS, CD, PCD, Exact, LogZEstimate, Normalizer
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, _user_stacklevel, register_model
from .rbm import BernoulliRBM, GaussianBernoulliRBM

__all__ = ["DBN", "pretrain_rbm_stack", "FIT_METHODS", "LOG_LIKELIHOOD_METHODS"]

#: values of ``DBN.fit(method=...)``
FIT_METHODS = ("greedy", "up_down", "rws")
#: values of ``DBN.log_likelihood(method=...)``
LOG_LIKELIHOOD_METHODS = ("exact", "bound", "importance")
_TRAINING = ("cd", "pcd", "exact")

#: largest 2^(n_{l-1} + n_l) table of :meth:`DBN.exact_log_likelihood` (bits)
_MAX_TABLE_BITS = 26


class _ProbabilityRBM(BernoulliRBM):
    """A :class:`BernoulliRBM` fitted to probabilities in :math:`[0, 1]` (the layers above the
    first when :func:`pretrain_rbm_stack` propagates probabilities): the free energy and the
    CD/PCD rule are defined for fractional visible values; only the check differs."""

    def _check_train_x(self, x) -> torch.Tensor:
        x = self._check_x(x)
        if bool((x < 0).any()) or bool((x > 1).any()):
            raise ValueError("x must lie in [0, 1] (hidden-unit probabilities of the layer below).")
        return x


class _FixedLogZ(Normalizer):
    """Returns one precomputed :class:`LogZEstimate` (no gradient): evaluation only."""

    def __init__(self, estimate: LogZEstimate):
        self.estimate = estimate

    def __call__(self, dist, value=None) -> LogZEstimate:
        return self.estimate


def pretrain_rbm_stack(
    x,
    hidden_sizes,
    *,
    bottom: str = "bernoulli",
    propagate: str = "probabilities",
    training: str = "cd",
    k: int = 1,
    num_chains: int = 100,
    seed: int = 0,
    progress: bool = True,
    **fit_kwargs,
):
    r"""Greedy layer-wise pretraining of a stack of RBMs (book §15.1, §20.3).

    Layer 1 is a :class:`~pyrogen.models.BernoulliRBM` (``bottom="bernoulli"``, binary data) or a
    :class:`~pyrogen.models.GaussianBernoulliRBM` (``bottom="gaussian"``, real data: standardize
    it first, :math:`\sigma = 1`); every layer above is a binary RBM fitted to the layer below's
    hidden probabilities or binary samples (``propagate``, see :mod:`pyrogen.infer.layerwise`).
    Each RBM is trained by its own ``fit`` (SVI with the ``training`` normalizer: CD-k, PCD-k or
    the exact gradient), with ``fit_kwargs`` (``num_steps``, ``lr``, ``batch_size``, ``tol``,
    ``optimizer``, ...; a list of dicts gives one per layer).

    Parameters
    ----------
    x : torch.Tensor, shape ``(n, d)``
    hidden_sizes : list of int
        ``[n_1, ..., n_L]``.
    bottom : {"bernoulli", "gaussian"}
    propagate : {"probabilities", "samples"}
    training : {"cd", "pcd", "exact"}
    k, num_chains : int
        CD-k / PCD-k steps and persistent chains of every RBM.
    seed : int
        RBM ``l`` is built with ``seed + l`` and fitted with ``seed + l``.

    Returns
    -------
    pyrogen.infer.layerwise.LayerwiseResult
        ``layers`` are the fitted RBMs, bottom first.
    """
    if not isinstance(hidden_sizes, (list, tuple)) or not hidden_sizes or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in hidden_sizes
    ):
        raise ValueError(
            f"hidden_sizes must be a non-empty list of positive ints. Got {hidden_sizes!r} "
            "instead."
        )
    check_choice(bottom, "bottom", ("bernoulli", "gaussian"))
    check_choice(propagate, "propagate", PROPAGATE)
    check_choice(training, "training", _TRAINING)
    seed = check_int(seed, "seed", low=0)
    x = check_data(x, "x")
    dtype = x.dtype

    def factory(l, n_out):
        def make(n_in):
            common = dict(training=training, k=k, num_chains=num_chains, seed=seed + l)
            if l == 0 and bottom == "gaussian":
                return GaussianBernoulliRBM(n_in, n_out, **common).to(dtype)
            cls = BernoulliRBM if (l == 0 or propagate == "samples") else _ProbabilityRBM
            return cls(n_in, n_out, **common).to(dtype)

        return make

    per_layer = fit_kwargs.pop("layer_fit_kwargs", None)
    kw = per_layer if per_layer is not None else fit_kwargs
    return greedy_layerwise(
        x,
        [factory(l, n) for l, n in enumerate(hidden_sizes)],
        propagate=propagate,
        fit_kwargs=kw,
        seed=seed,
        progress=progress,
    )


def _check_sizes(layer_sizes) -> list[int]:
    if (
        not isinstance(layer_sizes, (list, tuple))
        or len(layer_sizes) < 3
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in layer_sizes)
    ):
        raise ValueError(
            "layer_sizes must be a list of at least three positive ints (visible, then at least "
            "two hidden layers bottom-up, e.g. [784, 500, 500, 2000]; a DBN with one hidden "
            f"layer is an RBM). Got {layer_sizes!r} instead."
        )
    return [int(s) for s in layer_sizes]


def _bern_logp(logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_i \log \mathrm{Bernoulli}(v_i; \sigma(\ell_i))` over the last dim."""
    return (value * logits).sum(-1) - F.softplus(logits).sum(-1)


def _configs(n: int, dtype, device) -> torch.Tensor:
    idx = torch.arange(2**n, device=device)
    return ((idx.unsqueeze(-1) >> torch.arange(n - 1, -1, -1, device=device)) & 1).to(dtype)


@register_model("dbn")
class DBN(GenerativeModel):
    r"""Deep belief network: a top RBM prior and sigmoid layers down to the data (§20.3).

    Parameters
    ----------
    layer_sizes : list of int
        ``[n_0, n_1, ..., n_L]``: visible units, then the hidden layers bottom-up; ``L >= 2``
        (the top RBM joins layers ``L-1`` and ``L``).
    training : {"cd", "pcd", "exact"}
        Normalizer of the top RBM in :meth:`model` during fine-tuning and in the RBMs of the
        greedy stack (CD-k, PCD-k with ``num_chains`` chains, or the exact gradient).
    k : int
        Gibbs steps of CD-k / PCD-k.
    num_chains : int
        PCD chains.
    init_scale : float
        Standard deviation of the initial weights (biases start at 0); the recognition weights
        start equal to the generative ones.
    exact_max_units : int
        The log-likelihood is exact when every hidden layer below the top has at most this many
        units (and adjacent pairs fit a :math:`2^{26}` table); the top RBM's :math:`\log Z` is
        exact when :math:`\min(n_{L-1}, n_L)` is at most this.
    ais_num_chains, ais_num_betas : int
        AIS for the top RBM's :math:`\log Z` (base-rate path of Salakhutdinov & Murray 2008,
        base fitted to the up-pass of the training data).
    num_bound_samples : int
        Monte Carlo samples per example of the variational bound.
    num_is_particles : int
        Particles per example of the importance-sampled estimate.
    sample_steps : int
        Block Gibbs steps in the top RBM for :meth:`sample` / ``Predictive`` (exact sampling
        when :math:`\min(n_{L-1}, n_L) \le 16`).
    seed : int
        Seed of the initial weights.

    Notes
    -----
    Parameters: ``weight_l`` (:math:`W_l`, ``(n_{l-1}, n_l)``, ``l = 1..L``; ``weight_L`` is the
    top RBM's), ``bias_l`` (:math:`b_l`, ``l = 0..L``), ``rec_weight_l`` / ``rec_bias_l``
    (:math:`R_l`, :math:`c_l`, ``l = 1..L-1``). Pyro sites: ``"h{L-1}"`` (top RBM prior),
    ``"h{L-2}"`` ... ``"h1"``, ``"x"`` (observed), vector events in the ``"data"`` plate.

    Cost per example of one model or guide pass: :math:`O(\sum_l n_{l-1} n_l)`; one top-RBM
    Gibbs step :math:`O(n_{L-1} n_L)`. Exact log-likelihood:
    :math:`O(\sum_{l<L-1} 2^{n_l + n_{l+1}} + 2^{n_1} n_0)` per example after a one-off
    :math:`O(2^{\min(n_{L-1}, n_L)} n_{L-1} n_L)` log Z.
    """

    def __init__(
        self,
        layer_sizes,
        *,
        training: str = "cd",
        k: int = 1,
        num_chains: int = 100,
        init_scale: float = 0.01,
        exact_max_units: int = 16,
        ais_num_chains: int = 100,
        ais_num_betas: int = DEFAULT_NUM_BETAS,
        num_bound_samples: int = 10,
        num_is_particles: int = 100,
        sample_steps: int = 1000,
        seed: int = 0,
    ):
        sizes = _check_sizes(layer_sizes)
        check_choice(training, "training", _TRAINING)
        super().__init__(
            layer_sizes=sizes,
            training=training,
            k=check_int(k, "k", low=1),
            num_chains=check_int(num_chains, "num_chains", low=1),
            init_scale=check_float(init_scale, "init_scale", 0.0, None),
            exact_max_units=check_int(exact_max_units, "exact_max_units", low=1, high=20),
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=2),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            num_bound_samples=check_int(num_bound_samples, "num_bound_samples", low=1),
            num_is_particles=check_int(num_is_particles, "num_is_particles", low=1),
            sample_steps=check_int(sample_steps, "sample_steps", low=0),
            seed=check_int(seed, "seed", low=0),
        )
        self.layer_sizes = sizes
        self.n_layers = len(sizes) - 1  # L hidden layers
        L = self.n_layers
        scale = self.config["init_scale"]
        for l in range(1, L + 1):
            w = scale * torch.randn(sizes[l - 1], sizes[l])
            setattr(self, f"weight_{l}", nn.Parameter(w))
            if l < L:
                setattr(self, f"rec_weight_{l}", nn.Parameter(w.clone()))
                setattr(self, f"rec_bias_{l}", nn.Parameter(torch.zeros(sizes[l])))
        for l in range(L + 1):
            setattr(self, f"bias_{l}", nn.Parameter(torch.zeros(sizes[l])))
        #: base rates (logits) of the top RBM's visible layer: the AIS base model
        self.register_buffer("top_base_rate_logits", torch.zeros(sizes[L - 1]))
        self._normalizers: dict = {}
        self._fit_normalizer = None
        self._dream_steps = None

    # ------------------------------------------------------------------ parameters
    def weight(self, l: int) -> torch.Tensor:
        """:math:`W_l`, shape ``(n_{l-1}, n_l)``, ``1 <= l <= L``."""
        return getattr(self, f"weight_{l}")

    def bias(self, l: int) -> torch.Tensor:
        """:math:`b_l`, shape ``(n_l,)``, ``0 <= l <= L``."""
        return getattr(self, f"bias_{l}")

    def rec_weight(self, l: int) -> torch.Tensor:
        """Recognition weights :math:`R_l`, shape ``(n_{l-1}, n_l)``, ``1 <= l <= L-1``."""
        return getattr(self, f"rec_weight_{l}")

    def rec_bias(self, l: int) -> torch.Tensor:
        """Recognition biases :math:`c_l`, shape ``(n_l,)``, ``1 <= l <= L-1``."""
        return getattr(self, f"rec_bias_{l}")

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @classmethod
    def from_parameters(cls, weights, biases, recognition_biases=None, *,
                        recognition_weights=None, **kwargs) -> DBN:
        r"""A DBN with given parameters (to evaluate a known model).

        Parameters
        ----------
        weights : list of Tensor
            ``[W_1, ..., W_L]``, ``W_l`` of shape ``(n_{l-1}, n_l)``, ``L >= 2``; ``W_L`` is the
            top RBM's weight.
        biases : list of Tensor
            ``[b_0, ..., b_L]``: ``b_0`` the visible bias, ``b_{L-1}``, ``b_L`` the top RBM's
            visible and hidden biases.
        recognition_biases : list of Tensor, optional
            ``[c_1, ..., c_{L-1}]`` of the upward pass; default :math:`c_l = b_l` (in the
            tied, complementary-prior view of Hinton et al. 2006 the bias a layer gets going up
            is its own bias).
        recognition_weights : list of Tensor, optional
            ``[R_1, ..., R_{L-1}]``; default :math:`R_l = W_l` (tied).
        **kwargs
            Constructor arguments (``exact_max_units``, ``ais_num_betas``, ...).

        The model takes the dtype of ``weights[0]``.
        """
        def as_list(v, name):
            if not isinstance(v, (list, tuple)) or not all(torch.is_tensor(t) for t in v):
                raise TypeError(f"{name} must be a list of tensors. Got {v!r} instead.")
            return list(v)

        weights = as_list(weights, "weights")
        biases = as_list(biases, "biases")
        if len(weights) < 2:
            raise ValueError(
                f"weights must hold at least two matrices [W_1, ..., W_L] (L >= 2). Got "
                f"{len(weights)} instead."
            )
        L = len(weights)
        for l, w in enumerate(weights, start=1):
            if w.dim() != 2:
                raise ValueError(
                    f"weights[{l - 1}] (W_{l}) must have shape (n_{l - 1}, n_{l}). Got shape "
                    f"{tuple(w.shape)} instead."
                )
            if l > 1 and w.shape[0] != weights[l - 2].shape[1]:
                raise ValueError(
                    f"weights[{l - 1}] (W_{l}) must have {weights[l - 2].shape[1]} rows "
                    f"(n_{l - 1} = weights[{l - 2}].shape[1]). Got shape {tuple(w.shape)} "
                    "instead: the layer sizes do not chain."
                )
        sizes = [int(weights[0].shape[0])] + [int(w.shape[1]) for w in weights]
        if len(biases) != L + 1:
            raise ValueError(
                f"biases must hold L + 1 = {L + 1} vectors [b_0, ..., b_L]. Got {len(biases)} "
                "instead."
            )
        for l, b in enumerate(biases):
            if tuple(b.shape) != (sizes[l],):
                raise ValueError(
                    f"biases[{l}] (b_{l}) must have shape ({sizes[l]},). Got shape "
                    f"{tuple(b.shape)} instead."
                )
        rb = recognition_biases
        if rb is None:
            rb = [biases[l] for l in range(1, L)]
        rb = as_list(rb, "recognition_biases")
        if len(rb) != L - 1:
            raise ValueError(
                f"recognition_biases must hold L - 1 = {L - 1} vectors [c_1, ..., c_(L-1)]. "
                f"Got {len(rb)} instead."
            )
        for l, c in enumerate(rb, start=1):
            if tuple(c.shape) != (sizes[l],):
                raise ValueError(
                    f"recognition_biases[{l - 1}] (c_{l}) must have shape ({sizes[l]},). Got "
                    f"shape {tuple(c.shape)} instead."
                )
        rw = recognition_weights
        if rw is None:
            rw = weights[: L - 1]
        rw = as_list(rw, "recognition_weights")
        if len(rw) != L - 1 or any(r.shape != w.shape for r, w in zip(rw, weights, strict=False)):
            raise ValueError(
                f"recognition_weights must hold L - 1 = {L - 1} matrices shaped like W_1, ..., "
                f"W_(L-1). Got shapes {[tuple(r.shape) for r in rw]} instead."
            )
        dtype = weights[0].dtype
        if not dtype.is_floating_point:
            raise TypeError(f"weights must be floating tensors. Got dtype {dtype} instead.")
        model = cls(sizes, **kwargs).to(dtype)
        with torch.no_grad():
            for l in range(1, L + 1):
                model.weight(l).copy_(weights[l - 1])
            for l in range(L + 1):
                model.bias(l).copy_(biases[l])
            for l in range(1, L):
                model.rec_weight(l).copy_(rw[l - 1])
                model.rec_bias(l).copy_(rb[l - 1])
        return model

    def load_stack(self, rbms) -> None:
        r"""Load a greedily trained stack of ``L`` RBMs (bottom first) into the DBN.

        :math:`W_l` = RBM ``l``'s weight (``l = 1..L``), :math:`b_{l-1}` = its visible bias,
        :math:`b_L` = the top RBM's hidden bias; the recognition network is tied to the stack:
        :math:`R_l = W_l` and :math:`c_l` = RBM ``l``'s hidden bias (``l = 1..L-1``). The AIS
        base of the top RBM becomes its base rates (of its training data). Biases of the
        directed layers below the top keep the visible biases of the RBM above them
        discarded, as in Hinton et al. (2006).
        """
        L = self.n_layers
        if not isinstance(rbms, (list, tuple)) or len(rbms) != L:
            raise ValueError(f"rbms must be a list of {L} fitted RBMs. Got {rbms!r} instead.")
        for l, r in enumerate(rbms, start=1):
            shape = (self.layer_sizes[l - 1], self.layer_sizes[l])
            if tuple(r.weight.shape) != shape:
                raise ValueError(
                    f"rbms[{l - 1}] must have weight shape {shape}. Got "
                    f"{tuple(r.weight.shape)} instead."
                )
        with torch.no_grad():
            for l, r in enumerate(rbms, start=1):
                self.weight(l).copy_(r.weight)
                self.bias(l - 1).copy_(r.visible_bias)
                if l < L:
                    self.rec_weight(l).copy_(r.weight)
                    self.rec_bias(l).copy_(r.hidden_bias)
            top = rbms[-1]
            self.bias(L).copy_(top.hidden_bias)
            if hasattr(top, "base_rate_logits"):
                self.top_base_rate_logits.copy_(top.base_rate_logits)

    # ------------------------------------------------------------------ the top RBM
    @property
    def _top_units(self) -> int:
        return min(self.layer_sizes[-2], self.layer_sizes[-1])

    def normalizer(self, training: str | None = None):
        """The top RBM's normalizer for ``training`` (kept, so that PCD chains persist)."""
        training = training or self.config["training"]
        check_choice(training, "training", _TRAINING)
        if training not in self._normalizers:
            cfg = self.config
            if self._top_units <= 16:
                est = Exact()
            else:
                est = AIS(num_chains=min(32, cfg["ais_num_chains"]),
                          num_betas=min(300, cfg["ais_num_betas"]), base=self.top_base_rate_logits)
            if training == "pcd":
                norm = PCD(num_chains=cfg["num_chains"], num_steps=cfg["k"], estimator=est)
            elif training == "cd":
                norm = CD(num_steps=cfg["k"], estimator=est)
            else:
                norm = Exact(max_units=20)
            self._normalizers[training] = norm
        return self._normalizers[training]

    def top_rbm(self, normalizer=None) -> RBM:
        r"""The top RBM as a :class:`~pyrogen.distributions.RBM` over :math:`h^{(L-1)}`:
        ``RBM(W_L, b_{L-1}, b_L)``."""
        L = self.n_layers
        steps = self.config["sample_steps"] if self._dream_steps is None else self._dream_steps
        return RBM(
            self.weight(L),
            self.bias(L - 1),
            self.bias(L),
            normalizer=normalizer if normalizer is not None else (
                self._fit_normalizer or self.normalizer()
            ),
            mcmc_steps=steps,
        )

    def log_normalizer(self, *, method: str | None = None, num_chains: int | None = None,
                       num_betas: int | None = None, seed: int | None = None) -> LogZEstimate:
        """The top RBM's :math:`\\log Z`: exact when :math:`\\min(n_{L-1}, n_L)` is at most
        ``exact_max_units`` (default), else AIS on the base-rate path."""
        exact_ok = self._top_units <= self.config["exact_max_units"]
        method = ("exact" if exact_ok else "ais") if method is None else method
        check_choice(method, "method", ("exact", "ais"))
        with torch.no_grad():
            if method == "exact":
                return Exact(max_units=24)(self.top_rbm(Exact(max_units=24)))
            ais = AIS(
                num_chains=num_chains or self.config["ais_num_chains"],
                num_betas=num_betas or self.config["ais_num_betas"],
                base=self.top_base_rate_logits,
                seed=seed,
            )
            return ais(self.top_rbm(ais))

    # ------------------------------------------------------------------ Pyro programs
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None,
              observations=None):
        """Top RBM prior on ``"h{L-1}"``, then Bernoulli layers down to ``"x"`` (observed)."""
        L = self.n_layers
        top = self.top_rbm()
        plate = (
            pyro.plate("data", 1 if num_data is None else num_data) if x is None
            else self._data_plate(x, num_data)
        )
        with plate:
            h = pyro.sample(f"h{L - 1}", top)
            for l in range(L - 1, 0, -1):
                logits = self.bias(l - 1) + h @ self.weight(l).T
                name = "x" if l == 1 else f"h{l - 1}"
                h = pyro.sample(name, dist.Bernoulli(logits=logits).to_event(1),
                                obs=x if l == 1 else None)
        return h

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None, observations=None):
        """Recognition network, bottom-up: :math:`q(h^{(l)} \\mid h^{(l-1)})`, ``l < L``.

        ``observations`` (``{"x": tensor}``) replaces ``x`` (the sleep phase of Pyro's RWS)."""
        if observations is not None and "x" in observations:
            x = observations["x"]
        with self._data_plate(x, num_data):
            h = x
            hs = []
            for l in range(1, self.n_layers):
                logits = self.rec_bias(l) + h @ self.rec_weight(l)
                h = pyro.sample(f"h{l}", dist.Bernoulli(logits=logits).to_event(1))
                hs.append(h)
        return hs

    # ------------------------------------------------------------------ log-likelihood
    @property
    def exact(self) -> bool:
        """Whether :meth:`log_likelihood` is exact: every hidden layer below the top at most
        ``exact_max_units`` units and adjacent pairs within a :math:`2^{26}` table."""
        s, m = self.layer_sizes, self.config["exact_max_units"]
        L = self.n_layers
        return all(s[l] <= m for l in range(1, L)) and all(
            s[l] + s[l + 1] <= _MAX_TABLE_BITS for l in range(1, L - 1)
        )

    @property
    def log_likelihood_kind(self) -> str:  # type: ignore[override]
        if self.exact:
            return "exact"
        return "elbo" if self._top_units <= self.config["exact_max_units"] else "ais_bound"

    def _check_bin(self, x) -> torch.Tensor:
        return check_binary(self._check_x(x), "x")

    def top_log_marginal(self, log_z: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\log p(h^{(L-1)})` of the top RBM over all :math:`2^{n_{L-1}}` states
        (rows of ``_configs``), shape ``(2^{n_{L-1}},)``; exact :math:`\log Z` by default."""
        L = self.n_layers
        if self.layer_sizes[L - 1] > 20:
            raise ValueError(
                f"enumerating the top RBM's visible layer needs at most 20 units; it has "
                f"{self.layer_sizes[L - 1]}."
            )
        d = self.top_rbm(Exact(max_units=24))
        if log_z is None:
            log_z = Exact(max_units=24)(d).log_z
        h = _configs(self.layer_sizes[L - 1], self.dtype, self.device)
        return d.unnormalized_log_prob(h) - log_z

    def exact_log_likelihood(self, x: torch.Tensor, chunk: int = 2**12) -> torch.Tensor:
        r"""Exact :math:`\log p(x)` by enumeration, shape ``(n,)``.

        .. math::

            \log p(h^{(l-1)}) = \operatorname{logsumexp}_{h^{(l)}}\bigl[\log p(h^{(l-1)} \mid
            h^{(l)}) + \log p(h^{(l)})\bigr],

        from the top RBM's marginal :math:`\log p(h^{(L-1)}) = -F(h^{(L-1)}) - \log Z` down to
        :math:`\log p(x)`. Needs :attr:`exact` (``ValueError`` otherwise).
        """
        if not self.exact:
            raise ValueError(
                f"exact log-likelihood needs every hidden layer below the top to have at most "
                f"exact_max_units={self.config['exact_max_units']} units (layer sizes "
                f"{self.layer_sizes}); use log_likelihood(method='bound' or 'importance')."
            )
        L = self.n_layers
        lp = self.top_log_marginal()
        for l in range(L - 1, 1, -1):
            upper = _configs(self.layer_sizes[l], self.dtype, self.device)
            lower = _configs(self.layer_sizes[l - 1], self.dtype, self.device)
            logits = self.bias(l - 1) + upper @ self.weight(l).T  # (2^n_l, n_{l-1})
            table = lower @ logits.T - F.softplus(logits).sum(-1)  # (2^n_{l-1}, 2^n_l)
            lp = torch.logsumexp(table + lp, dim=-1)
        h1 = _configs(self.layer_sizes[1], self.dtype, self.device)
        out = []
        for start in range(0, h1.shape[0], chunk):
            logits = self.bias(0) + h1[start : start + chunk] @ self.weight(1).T
            t = x @ logits.T - F.softplus(logits).sum(-1) + lp[start : start + chunk]
            out.append(torch.logsumexp(t, dim=-1))
        return torch.logsumexp(torch.stack(out, -1), dim=-1)

    def _hidden_configs_below_top(self):
        n = sum(self.layer_sizes[1 : self.n_layers])
        if n > 20:
            raise ValueError(
                f"enumerating the hidden layers below the top needs at most 20 units; this "
                f"model has {n}."
            )
        c = _configs(n, self.dtype, self.device)
        return list(torch.split(c, self.layer_sizes[1 : self.n_layers], dim=-1))

    def log_joint(self, x: torch.Tensor, hs: list[torch.Tensor], log_z) -> torch.Tensor:
        r""":math:`\log p(x, h^{(1)}, \dots, h^{(L-1)})` with the top RBM's :math:`\log Z`
        ``log_z`` (broadcasting)."""
        layers = [x, *hs]
        L = self.n_layers
        lp = -self.top_rbm(Exact()).free_energy(layers[L - 1]) - log_z
        for l in range(1, L):
            lp = lp + _bern_logp(self.bias(l - 1) + layers[l] @ self.weight(l).T, layers[l - 1])
        return lp

    def recognition_log_prob(self, x: torch.Tensor, hs: list[torch.Tensor]) -> torch.Tensor:
        r""":math:`\log q(h^{(1)}, \dots, h^{(L-1)} \mid x)` (broadcasting)."""
        lower, lq = x, 0.0
        for l, h in enumerate(hs, start=1):
            lq = lq + _bern_logp(self.rec_bias(l) + lower @ self.rec_weight(l), h)
            lower = h
        return lq

    def exact_elbo(self, x: torch.Tensor, log_z=None) -> torch.Tensor:
        r"""The variational bound :math:`\sum_h q(h \mid x)[\log p(x, h) - \log q(h \mid x)]`
        by enumerating the hidden layers below the top (at most 20 units in all), shape
        ``(n,)``; exact top :math:`\log Z` by default. Differentiable."""
        if log_z is None:
            log_z = self.log_normalizer(method="exact").log_z
        hs = [h.unsqueeze(1) for h in self._hidden_configs_below_top()]
        xx = x.unsqueeze(0)
        lq = self.recognition_log_prob(xx, hs)
        lp = self.log_joint(xx, hs, log_z)
        return (lq.exp() * (lp - lq)).sum(0)

    def log_likelihood(self, x, *, method: str | None = None, num_samples: int | None = None,
                       num_chains: int | None = None, num_betas: int | None = None,
                       seed: int | None = None, batch_size: int = 100) -> LogLikelihood:
        r"""Per-example :math:`\log p(x)` (nats), labelled.

        ``method``:

        * ``"exact"`` (default when :attr:`exact`): :meth:`exact_log_likelihood`;
        * ``"bound"`` (default otherwise): Salakhutdinov & Murray (2008),

          .. math::

              \log p(x) \ge \mathbb E_{q(h \mid x)}\bigl[\log p(x \mid h^{(1)}) + \dots
              - F(h^{(L-1)}) - \log q(h \mid x)\bigr] - \log Z,

          the expectation by ``num_samples`` recognition samples per example (default
          ``num_bound_samples``; unbiased for the bound, per-example standard error), the top
          RBM's :math:`\log Z` exact when small, else AIS (``num_chains`` x ``num_betas``).
          Kind ``"elbo"`` with an exact :math:`\log Z` (a lower bound); ``"ais_bound"`` with an
          AIS one: :math:`\log \hat Z` underestimates :math:`\log Z` on average, so the value
          is a lower bound only up to the AIS error (``shared_stderr``);
        * ``"importance"``: :math:`\log \frac1K \sum_k p(x, h_k)/q(h_k \mid x)`, ``num_samples``
          particles (default ``num_is_particles``), by
          :func:`~pyrogen.infer.importance.importance_log_likelihood`; kind ``"is_estimate"``
          (stochastic lower bound) with an exact :math:`\log Z`, ``"ais_bound"`` otherwise.
        """
        x = self._check_bin(x)
        method = ("exact" if self.exact else "bound") if method is None else method
        check_choice(method, "method", LOG_LIKELIHOOD_METHODS)
        if method == "exact":
            with torch.no_grad():
                values = self.exact_log_likelihood(x)
            return LogLikelihood(values=values, kind="exact",
                                 info={"estimator": "enumeration of the layers below the top"})
        est = self.log_normalizer(num_chains=num_chains, num_betas=num_betas, seed=seed)
        est = LogZEstimate(log_z=est.log_z.detach(), kind=est.kind, stderr=est.stderr,
                           ess=est.ess, info=dict(est.info))
        exact_z = est.kind == "exact"
        info = {"log_z": float(est.log_z), "log_z_kind": est.kind}
        shared = None
        if not exact_z:
            shared = float(est.stderr)
            info.update(log_z_stderr=shared, ess=float(est.ess))
        self._fit_normalizer = _FixedLogZ(est)
        try:
            if method == "importance":
                k = self.config["num_is_particles"] if num_samples is None else num_samples
                res = importance_log_likelihood(
                    self.model, self.guide, x, num_particles=check_int(k, "num_samples", low=1),
                    batch_size=batch_size, chunk=min(100, k), max_plate_nesting=1,
                )
                info.update(estimator="importance sampling, recognition network as proposal",
                            num_particles=k, min_ess=res.info["min_ess"])
                return LogLikelihood(values=res.values, kind="is_estimate" if exact_z else
                                     "ais_bound", stderr=res.stderr, shared_stderr=shared,
                                     info=info)
            s = self.config["num_bound_samples"] if num_samples is None else num_samples
            s = check_int(s, "num_samples", low=1)
            values, stderr = [], []
            with torch.no_grad(), pyro.poutine.block():
                for start in range(0, x.shape[0], batch_size):
                    lw = per_example_log_weights(
                        self.model, self.guide, (x[start : start + batch_size],),
                        num_particles=s, max_plate_nesting=1,
                    ).log_weights.double()
                    values.append(lw.mean(0))
                    sd = lw.std(0) if s > 1 else torch.full_like(lw[0], float("nan"))
                    stderr.append(sd / s**0.5)
        finally:
            self._fit_normalizer = None
        info.update(estimator="variational bound with the recognition distribution "
                    "(Salakhutdinov & Murray 2008)", num_samples=s)
        return LogLikelihood(values=torch.cat(values), kind="elbo" if exact_z else "ais_bound",
                             stderr=torch.cat(stderr), shared_stderr=shared, info=info)

    # ------------------------------------------------------------------ sampling, features
    def sample(self, n: int, *, num_steps: int | None = None, return_hidden: bool = False):
        """Draws of :math:`x`: the top RBM (exact when small, else ``num_steps`` block Gibbs
        steps, default ``sample_steps``, from its base rates), then ancestral down.
        ``return_hidden=True`` also returns ``[h1, ..., h_{L-1}]``."""
        n = self._check_n(n)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        L = self.n_layers
        with torch.no_grad():
            init = torch.bernoulli(torch.sigmoid(self.top_base_rate_logits).expand(
                n, self.layer_sizes[L - 1]))
            d = RBM(self.weight(L), self.bias(L - 1), self.bias(L), mcmc_steps=steps,
                    mcmc_init=init)
            h = d.sample((n,))
            hs = [h]
            for l in range(L - 1, 0, -1):
                h = torch.bernoulli(torch.sigmoid(self.bias(l - 1) + h @ self.weight(l).T))
                hs.append(h)
        x = hs.pop()
        return (x, hs[::-1]) if return_hidden else x

    def transform(self, x, layer: int | None = None) -> torch.Tensor:
        r"""Deterministic up-pass probabilities of hidden layer ``layer`` (default the top,
        :math:`L`): the recognition probabilities :math:`\sigma(c_l + \mu_{l-1} R_l)` for
        ``l < L`` and :math:`P(h^{(L)} = 1 \mid \mu_{L-1}) = \sigma(b_L + \mu_{L-1} W_L)` at the
        top, with :math:`\mu_0 = x`; shape ``(n, n_layer)``."""
        x = self._check_x(x)
        L = self.n_layers
        layer = L if layer is None else check_int(layer, "layer", low=1, high=L)
        with torch.no_grad():
            mu = x
            for l in range(1, layer + 1):
                if l < L:
                    mu = torch.sigmoid(self.rec_bias(l) + mu @ self.rec_weight(l))
                else:
                    mu = torch.sigmoid(self.bias(L) + mu @ self.weight(L))
        return mu

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return FIT_METHODS

    def fit(
        self,
        x,
        *,
        method: str = "greedy",
        num_steps: int = 1000,
        lr: float = 1e-3,
        batch_size: int | None = None,
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
        propagate: str = "probabilities",
        layer_fit_kwargs: dict | list | None = None,
        num_particles: int = 1,
        dream_steps: int | None = None,
        loss=None,
    ) -> FitHistory:
        r"""Train: greedy layer-wise pretraining, or up-down / RWS fine-tuning.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_0)``, binary
        method : {"greedy", "up_down", "rws"}
            ``"greedy"``: :func:`pretrain_rbm_stack` with ``propagate``, the constructor's
            ``training``, ``k``, ``num_chains`` and, for every RBM, ``num_steps``, ``lr``,
            ``batch_size``, ``tol`` (or ``layer_fit_kwargs``: one dict for all or a list of
            dicts); then :meth:`load_stack`. ``"up_down"``:
            :class:`~pyrogen.infer.wake_sleep.WakeSleep` (``num_particles`` wake samples) by
            SVI through the shared training loop, the top RBM with the ``training``
            normalizer (CD-k: Hinton et al.'s up-down algorithm); ``"rws"``:
            :class:`~pyrogen.infer.rws.ReweightedWakeSleep` with ``num_particles``.
        dream_steps : int, optional
            Block Gibbs steps in the top RBM for each sleep-phase dream (default
            ``sample_steps``; exact when the top RBM is small). The up-down algorithm of
            Hinton et al. starts the down pass from the top-level CD chain instead; here the
            dream starts from independent draws, same stationary target.
        seed : int, optional
            Seeds the training randomness (``pyro.set_rng_seed``); for ``"greedy"``, RBM
            ``l`` gets ``seed + l`` (default 0 + l).

        Returns
        -------
        FitHistory
            ``"greedy"``: the layers' losses concatenated, ``metrics["layer_final_loss"]``,
            ``info["layer_seconds"]``, ``converged`` = every layer converged (one
            ``ConvergenceWarning`` naming the layers that did not). ``"up_down"``: wake
            losses per example, ``metrics["wake_loss"]``/``["sleep_loss"]``; ``"rws"``: the
            negative IWAE bound per example.
        """
        from ..infer.rws import ReweightedWakeSleep
        from ..infer.wake_sleep import WakeSleep

        check_choice(method, "method", FIT_METHODS)
        x = self._check_bin(x)
        num_particles = check_int(num_particles, "num_particles", low=1)
        if method == "greedy":
            return self._fit_greedy(x, num_steps=num_steps, lr=lr, batch_size=batch_size,
                                    tol=tol, seed=seed, progress=progress, callback=callback,
                                    data_info=data_info, propagate=propagate,
                                    layer_fit_kwargs=layer_fit_kwargs)
        if dream_steps is not None:
            dream_steps = check_int(dream_steps, "dream_steps", low=0)
        loss = WakeSleep(num_particles=num_particles) if method == "up_down" else (
            ReweightedWakeSleep(num_particles=num_particles))
        self._fit_normalizer = self.normalizer()
        self._dream_steps = dream_steps
        try:
            with pyro.validation_enabled(False):
                hist = self._fit_svi(x, num_steps=num_steps, lr=lr, batch_size=batch_size,
                                     loss=loss, tol=tol, seed=seed, progress=progress,
                                     callback=callback, data_info=data_info)
        finally:
            self._fit_normalizer = None
            self._dream_steps = None
        hist.method = method
        hist.info.update(top_rbm_rule=self.config["training"], k=self.config["k"])
        if method == "up_down":
            n = x.shape[0]
            hist.metrics["wake_loss"] = [v / n for v in loss.history["wake"]]
            hist.metrics["sleep_loss"] = [v / n for v in loss.history["sleep"]]
        return hist

    def _fit_greedy(self, x, *, num_steps, lr, batch_size, tol, seed, progress, callback,
                    data_info, propagate, layer_fit_kwargs):
        check_choice(propagate, "propagate", PROPAGATE)
        self._begin_fit(None, data_info)
        if layer_fit_kwargs is None:
            layer_fit_kwargs = {"num_steps": num_steps, "lr": lr, "batch_size": batch_size,
                                "tol": tol, "callback": callback}
        cfg = self.config
        base_seed = 0 if seed is None else check_int(seed, "seed", low=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            res = pretrain_rbm_stack(
                x, self.layer_sizes[1:], propagate=propagate, training=cfg["training"],
                k=cfg["k"], num_chains=cfg["num_chains"], seed=base_seed, progress=progress,
                layer_fit_kwargs=layer_fit_kwargs,
            )
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        self.load_stack(res.layers)
        hist = FitHistory(method="greedy")
        for h in res.histories:
            hist.losses.extend(h.losses)
        hist.metrics["layer_final_loss"] = [h.losses[-1] for h in res.histories]
        hist.seconds = sum(res.seconds)
        hist.info.update(propagate=propagate, layer_seconds=list(res.seconds),
                         layer_steps=[len(h.losses) for h in res.histories],
                         learning_rule=cfg["training"], k=cfg["k"])
        flags = [h.converged for h in res.histories]
        if all(f is None for f in flags):
            return hist
        hist.converged = all(f is not False for f in flags)
        if not hist.converged:
            bad = [l + 1 for l, f in enumerate(flags) if f is False]
            warnings.warn(
                f"DBN greedy: the RBMs of layers {bad} stopped before converging; raise "
                "num_steps or lr, or pass tol=None to run a fixed number of steps untested.",
                ConvergenceWarning, stacklevel=_user_stacklevel(),
            )
        return hist
