r"""Convolutional RBMs with probabilistic max pooling (book §20.6; Lee et al. 2009)
following the model protocol, and a two-layer convolutional DBN stacked greedily. See [1]_.

:class:`ConvRBM` (binary pixels) and :class:`GaussianConvRBM` (real pixels) are PyroModules over
the :class:`~pyrogen.distributions.ConvolutionalRBM` /
:class:`~pyrogen.distributions.GaussianConvolutionalRBM` distributions: ``model(x)`` is
``pyro.sample("x", ConvolutionalRBM(W, a, b, image_shape, pool_size, normalizer=...), obs=x)``
in a data plate (the detection and pooling units are summed out exactly in the free energy) and
the guide is empty. Training is ``pyro.infer.SVI`` + ``Trace_ELBO`` through the same ``fit`` as
:class:`~pyrogen.models.BernoulliRBM`: with :class:`~pyrogen.normalizers.PCD` the SVI gradient is
the PCD rule, with :class:`~pyrogen.normalizers.CD` CD-k, with
:class:`~pyrogen.normalizers.Exact` the exact likelihood gradient (tiny images only). An
optional sparsity penalty (Lee et al. 2009) is a ``pyro.factor`` in :meth:`ConvRBM.model`.

Data are images flattened in ``(C, H, W)`` order: ``x`` has shape ``(n, C*H*W)``.

``log_likelihood`` is exact when the smaller of the visible side (:math:`2^{CHW}` images) and the
hidden side (:math:`(P^2+1)^{\#\text{blocks}}` configurations) has at most
:math:`2^{\text{exact\_max\_units}}` states; otherwise an AIS estimate on
:class:`~pyrogen.distributions.conv_rbm.ConvRBMPath` (the base-rate path of Salakhutdinov &
Murray [2]_) with its standard error.

:class:`ConvDBN` stacks two convolutional RBMs with :func:`pyrogen.infer.layerwise.
greedy_layerwise`: the second is fitted to the first's pooling-unit probabilities (a
``(K_1, H_1/P_1, W_1/P_1)`` image). It is a feature hierarchy with samples (down-pass through the
layers), not a registered generative model: it has no tractable or estimated log-likelihood
(see its docstring).

References
----------
.. [1] H. Lee, R. Grosse, R. Ranganath and A. Y. Ng, "Convolutional deep belief networks for
   scalable unsupervised learning of hierarchical representations", ICML 2009.
.. [2] R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks",
   ICML 2008.
"""

from __future__ import annotations

import math

import pyro
import torch
from torch import nn

from .._validation import check_binary, check_choice, check_data, check_float, check_int
from ..distributions.conv_rbm import (
    ConvolutionalRBM,
    GaussianConvolutionalRBM,
    conv_rbm_geometry,
)
from ..infer.ais import DEFAULT_NUM_BETAS
from ..infer.layerwise import LayerwiseResult, greedy_layerwise
from .base import register_model
from .rbm import _TRAINING, _all_binary, _RBMModel

__all__ = ["ConvRBM", "GaussianConvRBM", "ConvDBN"]


def _image_shape(image_shape) -> list[int]:
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) not in (2, 3):
        raise ValueError(f"image_shape must be (C, H, W) or (H, W). Got {image_shape!r} instead.")
    shape = [check_int(s, "image_shape", low=1) for s in image_shape]
    return shape if len(shape) == 3 else [1, *shape]


class _ConvRBMBase(_RBMModel):
    """Shared constructor, Pyro program and evaluation of the convolutional RBM models (the
    SVI ``fit`` and ``log_likelihood`` are :class:`~pyrogen.models.rbm._RBMModel`'s)."""

    _distribution_cls = ConvolutionalRBM

    def __init__(self, image_shape, n_filters, filter_size, pool_size, *, pixel_bias, training,
                 k, num_chains, init_scale, sparsity_target, sparsity_cost, exact_max_units,
                 ais_num_chains, ais_num_betas, sample_steps, seed, **extra):
        if not isinstance(pixel_bias, bool):
            raise TypeError(f"pixel_bias must be a bool. Got {type(pixel_bias).__name__} instead.")
        shape = _image_shape(image_shape)
        n_filters = check_int(n_filters, "n_filters", low=1)
        filter_size = check_int(filter_size, "filter_size", low=1)
        pool_size = check_int(pool_size, "pool_size", low=1)
        geo = conv_rbm_geometry(shape, (n_filters, shape[0], filter_size, filter_size), pool_size)
        check_choice(training, "training", _TRAINING)
        # GenerativeModel.__init__ (not _RBMModel's: the parameters are filters, not a matrix)
        super(_RBMModel, self).__init__(
            image_shape=shape,
            n_filters=n_filters,
            filter_size=filter_size,
            pool_size=pool_size,
            pixel_bias=pixel_bias,
            training=training,
            k=check_int(k, "k", low=1),
            num_chains=check_int(num_chains, "num_chains", low=1),
            init_scale=check_float(init_scale, "init_scale", 0.0, None),
            sparsity_target=check_float(sparsity_target, "sparsity_target", 0.0, 1.0, "oo"),
            sparsity_cost=check_float(sparsity_cost, "sparsity_cost", 0.0, None),
            exact_max_units=check_int(exact_max_units, "exact_max_units", low=1, high=24),
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=2),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            sample_steps=check_int(sample_steps, "sample_steps", low=0),
            seed=check_int(seed, "seed", low=0),
            **extra,
        )
        self.geometry = geo
        C = shape[0]
        w = self.config["init_scale"] * torch.randn(n_filters, C, filter_size, filter_size)
        self.weight = nn.Parameter(w)
        self.visible_bias = nn.Parameter(torch.zeros(*shape) if pixel_bias else torch.zeros(C))
        self.hidden_bias = nn.Parameter(torch.zeros(n_filters))
        self._normalizers: dict = {}

    # ------------------------------------------------------------------ sizes
    @property
    def n_features(self) -> int:
        """:math:`C H W` (images are flattened)."""
        return self.geometry["n_visible"]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.config["image_shape"])

    @property
    def n_hidden(self) -> int:
        """Detection units :math:`K D_h D_w`."""
        return self.geometry["n_detect"]

    @property
    def n_pooled(self) -> int:
        """Pooling units :math:`K D_h D_w / P^2` (the width of :meth:`transform`)."""
        return self.geometry["n_blocks"]

    @property
    def pooled_shape(self) -> tuple[int, int, int]:
        """``(K, D_h/P, D_w/P)``: the pooling maps, as an image for a layer above."""
        g = self.geometry
        return (g["filters"], g["pool_h"], g["pool_w"])

    @property
    def _hidden_bits(self) -> int:
        g = self.geometry
        return math.ceil(g["n_blocks"] * math.log2(g["pool"] ** 2 + 1))

    @property
    def _enumeration_units(self) -> int:
        """Bits of the smaller enumerable side (as the distribution's ``enumeration_units``)."""
        return min(self.n_features, self._hidden_bits)

    # ------------------------------------------------------------------ the distribution
    def _dist_kwargs(self) -> dict:
        return {}

    def distribution(self, normalizer=None):
        """The convolutional RBM distribution with the current parameters."""
        return self._distribution_cls(
            self.weight,
            self.visible_bias,
            self.hidden_bias,
            self.image_shape,
            self.config["pool_size"],
            **self._dist_kwargs(),
            normalizer=normalizer if normalizer is not None else self.normalizer(),
            mcmc_steps=self.config["sample_steps"],
        )

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """``pyro.sample("x", <conv RBM>(..., normalizer=...), obs=x)`` in the data plate,
        plus ``pyro.factor("sparsity", ...)`` when ``sparsity_cost > 0``:
        :math:`-N \\lambda \\sum_k (\\rho - \\bar q_k)^2` with :math:`\\bar q_k` the mean
        detection probability of map :math:`k` over the batch and positions (Lee et al. 2009)
        and :math:`N` the data size (``num_data``)."""
        d = self.distribution(self._active_normalizer())
        if x is None:
            with pyro.plate("data", 1 if num_data is None else num_data):
                return pyro.sample("x", d)
        with self._data_plate(x, num_data):
            v = pyro.sample("x", d, obs=x)
        cost = self.config["sparsity_cost"]
        if cost > 0:
            q = d.detection_probs(x).reshape(x.shape[0], self.config["n_filters"], -1)
            pen = ((self.config["sparsity_target"] - q.mean((0, 2))) ** 2).sum()
            n = x.shape[0] if num_data is None else num_data
            pyro.factor("sparsity", -n * cost * pen)
        return v

    def _ais_base(self):
        return getattr(self, "base_rate_logits", None)

    # ------------------------------------------------------------------ features, samples
    def transform(self, x) -> torch.Tensor:
        r"""Pooling-unit probabilities :math:`P(p^k_\alpha = 1 \mid v)`, shape
        ``(n, K * D_h/P * D_w/P)`` (flattened :attr:`pooled_shape` maps)."""
        x = self._check_x(x)
        with torch.no_grad():
            return self.distribution(_NoNormalizer()).pooling_probs(x)

    def filters(self) -> torch.Tensor:
        """The filters as images, shape ``(K * C, f, f)`` (for a picture)."""
        w = self.weight.detach()
        return w.reshape(-1, *w.shape[-2:])


class _NoNormalizer:
    """A placeholder normalizer for distributions that are only used for their conditionals."""

    def __call__(self, dist, value=None):  # pragma: no cover - never called
        raise RuntimeError("this distribution was built for its conditionals only")


@register_model("conv-rbm")
class ConvRBM(_ConvRBMBase):
    r"""Binary convolutional RBM with probabilistic max pooling (Lee et al. 2009; book §20.6).

    :math:`K` filters of size :math:`f \times f` over ``(C, H, W)`` binary images, detection maps
    :math:`D_h \times D_w = (H-f+1) \times (W-f+1)` in :math:`P \times P` pooling blocks (at most
    one active unit per block); energy and free energy in
    :class:`~pyrogen.distributions.ConvolutionalRBM`.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)``; ``H - f + 1`` and ``W - f + 1`` must be multiples of
        ``pool_size`` (``ValueError`` otherwise).
    n_filters : int
        :math:`K`.
    filter_size : int
        :math:`f`.
    pool_size : int
        :math:`P` (1: no pooling, an RBM with tied weights).
    pixel_bias : bool
        One visible bias per pixel instead of one per channel (Lee et al. share it over
        positions; images whose pixel means depend on position, such as centred digits, need
        many filters to make up for a shared bias).
    training : {"pcd", "cd", "exact"}
        Normalizer of :meth:`model` and default ``method`` of :meth:`fit`.
    k : int
        Gibbs steps of PCD-k / CD-k.
    num_chains : int
        Persistent chains of PCD.
    init_scale : float
        Standard deviation of the initial filters (biases start at 0; at the first ``fit`` the
        visible biases become the log-odds of each channel's mean pixel).
    sparsity_target, sparsity_cost : float
        :math:`\rho` and :math:`\lambda` of the sparsity penalty in :meth:`model` (off when
        ``sparsity_cost`` is 0, the default).
    exact_max_units : int
        ``log_likelihood`` is exact when the smaller side has at most
        :math:`2^{\text{exact\_max\_units}}` states (at most 24).
    ais_num_chains, ais_num_betas : int
        AIS defaults of ``log_likelihood`` otherwise (base-rate path, base fitted to the
        training data).
    sample_steps : int
        Block Gibbs steps of :meth:`sample` when no side is small enough to sample exactly.
    seed : int
        Seed of the initial filters.

    Notes
    -----
    ``fit`` is :meth:`pyrogen.models.BernoulliRBM.fit` (SVI with PCD / CD / exact gradient,
    Adam or SGD, weight decay on the filters). Cost per example and Gibbs step: two
    convolutions, :math:`O(K C f^2 D_h D_w)`.
    """

    def __init__(
        self,
        image_shape,
        n_filters: int = 8,
        filter_size: int = 5,
        pool_size: int = 2,
        *,
        pixel_bias: bool = False,
        training: str = "pcd",
        k: int = 1,
        num_chains: int = 100,
        init_scale: float = 0.01,
        sparsity_target: float = 0.05,
        sparsity_cost: float = 0.0,
        exact_max_units: int = 20,
        ais_num_chains: int = 100,
        ais_num_betas: int = DEFAULT_NUM_BETAS,
        sample_steps: int = 1000,
        seed: int = 0,
    ):
        super().__init__(
            image_shape, n_filters, filter_size, pool_size, pixel_bias=pixel_bias,
            training=training, k=k,
            num_chains=num_chains, init_scale=init_scale, sparsity_target=sparsity_target,
            sparsity_cost=sparsity_cost, exact_max_units=exact_max_units,
            ais_num_chains=ais_num_chains, ais_num_betas=ais_num_betas,
            sample_steps=sample_steps, seed=seed,
        )
        #: log-odds of the training data's pixel base rates (the AIS base, sampler start)
        self.register_buffer("base_rate_logits", torch.zeros(self.n_features))

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
            return x
        return check_binary(self._check_x(x), "x")

    _check_eval_x = _check_train_x

    def _init_from_data(self, x) -> None:
        """Pixel base rates -> the AIS base; at the first fit the channel biases too."""
        from ..infer.ais import base_rate_visible_bias

        with torch.no_grad():
            logits = base_rate_visible_bias(x)
            first = not bool(self.base_rate_logits.any())
            self.base_rate_logits.copy_(logits)
            if first and not bool(self.visible_bias.any()):
                if self.config["pixel_bias"]:
                    self.visible_bias.copy_(logits.reshape(self.visible_bias.shape))
                else:
                    C = self.image_shape[0]
                    p = x.reshape(x.shape[0], C, -1).mean((0, 2)).clamp(1e-3, 1 - 1e-3)
                    self.visible_bias.copy_(torch.log(p) - torch.log1p(-p))

    def sample(self, n, *, num_steps: int | None = None) -> torch.Tensor:
        """``n`` images ``(n, C*H*W)``: exact when a side has at most :math:`2^{16}` states,
        otherwise ``num_steps`` (default ``sample_steps``) block Gibbs steps from the base-rate
        model."""
        n = self._check_n(n)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        with torch.no_grad():
            init = torch.bernoulli(torch.sigmoid(self.base_rate_logits).expand(n, -1))
            d = ConvolutionalRBM(
                self.weight, self.visible_bias, self.hidden_bias, self.image_shape,
                self.config["pool_size"], mcmc_steps=steps, mcmc_init=init,
            )
            return d.sample((n,))


@register_model("gaussian-conv-rbm")
class GaussianConvRBM(_ConvRBMBase):
    r"""Convolutional RBM with Gaussian pixels and probabilistic max pooling.

    :math:`p(v \mid h) = \mathcal N(a_c + \sum_k W^k_c * h^k, \sigma_c^2)`, pooling blocks as
    in :class:`ConvRBM` (distribution:
    :class:`~pyrogen.distributions.GaussianConvolutionalRBM`). The usual recipe: standardize
    the pixels and keep :math:`\sigma = 1`.

    Parameters
    ----------
    sigma : float
        Fixed standard deviation of every pixel.
    exact_max_units : int
        ``log_likelihood`` (a density) is exact when there are at most
        :math:`2^{\text{exact\_max\_units}}` hidden configurations (the pixels integrate out
        in closed form), otherwise an AIS estimate along
        :class:`~pyrogen.distributions.conv_rbm.GaussianConvRBMPath`.

    Notes
    -----
    Every other argument is :class:`ConvRBM`'s; at the first ``fit`` the visible biases become
    the channel (or, with ``pixel_bias``, the pixel) means.
    """

    _distribution_cls = GaussianConvolutionalRBM

    @property
    def _enumeration_units(self) -> int:
        return self._hidden_bits

    def __init__(
        self,
        image_shape,
        n_filters: int = 8,
        filter_size: int = 5,
        pool_size: int = 2,
        *,
        pixel_bias: bool = False,
        sigma: float = 1.0,
        training: str = "pcd",
        k: int = 1,
        num_chains: int = 100,
        init_scale: float = 0.01,
        sparsity_target: float = 0.05,
        sparsity_cost: float = 0.0,
        exact_max_units: int = 20,
        ais_num_chains: int = 100,
        ais_num_betas: int = DEFAULT_NUM_BETAS,
        sample_steps: int = 1000,
        seed: int = 0,
    ):
        sigma = check_float(sigma, "sigma", 0.0, None, "oo")
        super().__init__(
            image_shape, n_filters, filter_size, pool_size, pixel_bias=pixel_bias,
            training=training, k=k,
            num_chains=num_chains, init_scale=init_scale, sparsity_target=sparsity_target,
            sparsity_cost=sparsity_cost, exact_max_units=exact_max_units,
            ais_num_chains=ais_num_chains, ais_num_betas=ais_num_betas,
            sample_steps=sample_steps, seed=seed, sigma=sigma,
        )
        self.register_buffer("log_sigma", torch.full((self.image_shape[0],), math.log(sigma)))
        self.register_buffer("_initialized", torch.zeros((), dtype=torch.bool))

    @property
    def sigma(self) -> torch.Tensor:
        """Per-channel standard deviations, shape ``(C,)``."""
        return self.log_sigma.exp()

    def _dist_kwargs(self) -> dict:
        return {"sigma": self.sigma}

    def _init_from_data(self, x) -> None:
        if not bool(self._initialized):
            with torch.no_grad():
                if self.config["pixel_bias"]:
                    self.visible_bias.copy_(x.mean(0).reshape(self.visible_bias.shape))
                else:
                    C = self.image_shape[0]
                    self.visible_bias.copy_(x.reshape(x.shape[0], C, -1).mean((0, 2)))
                self._initialized.fill_(True)

    def sample(self, n, *, num_steps: int | None = None) -> torch.Tensor:
        """``n`` images ``(n, C*H*W)``: exact with at most :math:`2^{16}` hidden
        configurations, otherwise ``num_steps`` block Gibbs steps from
        :math:`\\mathcal N(a, \\sigma^2)`."""
        n = self._check_n(n)
        steps = self.config["sample_steps"] if num_steps is None else num_steps
        steps = check_int(steps, "num_steps", low=0)
        with torch.no_grad():
            d = GaussianConvolutionalRBM(
                self.weight, self.visible_bias, self.hidden_bias, self.image_shape,
                self.config["pool_size"], self.sigma, mcmc_steps=steps,
            )
            return d.sample((n,))


# --------------------------------------------------------------------------------------------
# convolutional DBN: two conv RBMs stacked greedily
# --------------------------------------------------------------------------------------------
class _ProbabilityConvRBM(ConvRBM):
    """A :class:`ConvRBM` fitted to pooling probabilities in :math:`[0, 1]` (the layer above
    the first): free energy and CD/PCD rule are defined for fractional pixels; only the data
    check differs."""

    def _check_train_x(self, x) -> torch.Tensor:
        x = self._check_x(x)
        if bool((x < 0).any()) or bool((x > 1).any()):
            raise ValueError(
                "x must lie in [0, 1] (pooling-unit probabilities of the layer below)."
            )
        return x

    _check_eval_x = _check_train_x


class ConvDBN(nn.Module):
    r"""A convolutional DBN of two layers (Lee et al. 2009), pretrained greedily (book §20.6).

    Layer 1 is a :class:`ConvRBM` (binary pixels) or :class:`GaussianConvRBM`
    (``gaussian=True``) over ``image_shape``; layer 2 is a binary :class:`ConvRBM` over the
    first layer's pooling maps (a ``(K_1, D_h/P_1, D_w/P_1)`` image), fitted by
    :func:`pyrogen.infer.layerwise.greedy_layerwise` to the first layer's pooling-unit
    probabilities :math:`P(p^1 = 1 \mid v)` (``propagate="probabilities"``) or to binary draws
    of them (``"samples"``).

    What it is not: a registered generative model. With probabilistic max pooling the
    directed link from the pooling units :math:`p^1` down to the detection units :math:`h^1`
    (which of the :math:`P^2` units fired) is not part of either RBM, so the stack defines no
    log-likelihood that pyrogen could compute or estimate honestly; :meth:`sample` generates
    top-down with the choice *made by the first layer's own conditional given the pooling state*
    (documented there) and serves for pictures only.

    Parameters
    ----------
    image_shape : tuple of int
    layers : list of dict
        Two dicts of :class:`ConvRBM` arguments (``n_filters``, ``filter_size``,
        ``pool_size``, ``training``, ...), bottom first; the second layer's ``image_shape`` is
        set from the first's pooling maps.
    gaussian : bool
        Gaussian pixels in layer 1.
    seed : int
        Layer ``l`` is built with ``seed + l``.
    """

    def __init__(self, image_shape, layers, *, gaussian: bool = False, seed: int = 0):
        super().__init__()
        if not isinstance(layers, (list, tuple)) or len(layers) != 2 or not all(
            isinstance(d, dict) for d in layers
        ):
            raise ValueError(
                f"layers must be a list of two dicts of ConvRBM arguments. Got {layers!r} instead."
            )
        if not isinstance(gaussian, bool):
            raise TypeError(f"gaussian must be a bool. Got {type(gaussian).__name__} instead.")
        seed = check_int(seed, "seed", low=0)
        first_cls = GaussianConvRBM if gaussian else ConvRBM
        first = first_cls(image_shape, **{"seed": seed, **layers[0]})
        second = _ProbabilityConvRBM(first.pooled_shape, **{"seed": seed + 1, **layers[1]})
        self.layers = nn.ModuleList([first, second])
        self.image_shape = first.image_shape

    def fit(self, x, *, propagate: str = "probabilities", fit_kwargs=None, seed: int = 0,
            progress: bool = True) -> LayerwiseResult:
        """Greedy layer-wise pretraining: :func:`~pyrogen.infer.layerwise.greedy_layerwise`
        over the two layers (``fit_kwargs``: one dict of ``ConvRBM.fit`` arguments for both
        layers or a list of two)."""
        first = self.layers[0]
        x = check_data(x, "x", n_features=first.n_features, dtype=first.dtype,
                       device=first.device)
        return greedy_layerwise(x, list(self.layers), propagate=propagate,
                                fit_kwargs=fit_kwargs, seed=seed, progress=progress)

    def transform(self, x, layer: int = 2) -> torch.Tensor:
        """Pooling probabilities of layer ``layer`` (1 or 2), computed bottom-up with
        probabilities, shape ``(n, K_l * ...)``."""
        layer = check_int(layer, "layer", low=1, high=2)
        h = self.layers[0].transform(x)
        return h if layer == 1 else self.layers[1].transform(h)

    def sample(self, n: int, *, num_steps: int | None = None,
               clamped_steps: int = 20) -> torch.Tensor:
        r"""``n`` images, top-down: pooling maps :math:`p^1` from layer 2 (``num_steps``
        block Gibbs steps, default its ``sample_steps``), then ``clamped_steps`` block Gibbs
        steps of layer 1 with its pooling units clamped to :math:`p^1` (in a block that is on,
        exactly one detection unit, drawn from the layer's softmax over the block given
        :math:`v`; in a block that is off, none), returning the last pixel means. Approximate
        draws for pictures, not samples of a defined joint model (see the class docstring)."""
        from ..distributions.conv_rbm import _from_blocks, _to_blocks

        first, second = self.layers
        n = check_int(n, "n", low=1)
        clamped_steps = check_int(clamped_steps, "clamped_steps", low=1)
        g = first.geometry
        P = g["pool"]
        with torch.no_grad():
            p = second.sample(n, num_steps=num_steps)
            on = p.reshape(n, g["filters"], g["pool_h"], g["pool_w"], 1)
            d = first.distribution(_NoNormalizer())
            logits = torch.zeros(n, g["filters"], g["pool_h"], g["pool_w"], P * P,
                                 dtype=p.dtype, device=p.device)
            for _ in range(clamped_steps):
                choice = torch.distributions.Categorical(logits=logits).sample()
                det = torch.nn.functional.one_hot(choice, P * P).to(p.dtype) * on
                h = _from_blocks(det, P).reshape(n, -1)
                mean = d.visible_given_hidden(h).mean
                v = d.visible_given_hidden(h).sample()
                logits = _to_blocks(d.hidden_input(v), P)
            return mean
