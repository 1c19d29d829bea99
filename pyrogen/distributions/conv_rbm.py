r"""Convolutional RBMs with probabilistic max pooling (book §20.6; Lee et al. 2009)
as Pyro distributions over images. References: [1]_, [2]_.

A convolutional RBM has :math:`K` filters :math:`W^k` of shape ``(C, f_h, f_w)`` shared over
every position of a ``(C, H, W)`` image :math:`v`, one bias :math:`b_k` per filter (the hidden
or *detection* units :math:`h^k` of map :math:`k`) and one bias :math:`a_c` per visible channel.
The input of detection unit :math:`h^k_{ij}` is the *valid* cross-correlation

.. math::

    I^k_{ij}(v) = b_k + \sum_c (W^k_c \star v_c)_{ij}, \qquad
    i < H - f_h + 1,\; j < W - f_w + 1,

and the detection maps are cut into non-overlapping :math:`P \times P` blocks
:math:`B_\alpha`, each with a pooling unit :math:`p^k_\alpha`. Probabilistic max pooling
constrains each block to *at most one* active detection unit and sets :math:`p^k_\alpha = 1`
exactly when one is active: a block is a single variable with :math:`P^2 + 1` states (all off,
or unit :math:`(i, j)` on), and

.. math::

    E(v, h) = -\sum_k \sum_{ij} h^k_{ij} I^k_{ij}(v) - \sum_c a_c \sum_{ij} v_{cij}
    \quad (E = +\infty \text{ when a block has two active units}),

    P(h^k_{ij} = 1 \mid v) = \frac{e^{I^k_{ij}}}{1 + \sum_{(i',j') \in B_\alpha}
    e^{I^k_{i'j'}}}, \qquad
    P(p^k_\alpha = 0 \mid v) = \frac{1}{1 + \sum_{(i',j') \in B_\alpha} e^{I^k_{i'j'}}},

    P(v_{cij} = 1 \mid h) = \sigma\Big(a_c + \sum_k (W^k_c * h^k)_{ij}\Big),

where :math:`*` is the *full* convolution (``conv_transpose2d``, the adjoint of the valid
cross-correlation). Summing out the hidden blocks gives the exact free energy

.. math::

    F(v) = -\sum_c a_c \sum_{ij} v_{cij} - \sum_k \sum_\alpha
    \log\Big(1 + \sum_{(i,j) \in B_\alpha} e^{I^k_{ij}(v)}\Big).

With :math:`P = 1` every block is one unit, :math:`\log(1 + e^{I})` is the softplus of the
ordinary RBM, and the model *is* the RBM whose weight matrix is the unrolled, tied convolution
(:meth:`ConvolutionalRBM.unrolled_weight`).

Gaussian visible units (:class:`GaussianConvolutionalRBM`) follow the precision form of
:class:`~pyrogen.distributions.GaussianBernoulliRBM`:
:math:`p(v \mid h) = \mathcal N(a_c + \sum_k (W^k_c * h^k),\, \sigma_c^2)` and
:math:`I^k(v) = b_k + \sum_c W^k_c \star (v_c / \sigma_c^2)`.

Events. A draw is an image **flattened** to a vector of ``C * H * W`` values in
``(C, H, W)`` (row-major) order: ``event_shape = (C * H * W,)``, like every other pyrogen
energy-based distribution and the models' ``(n, n_features)`` data; ``image_shape`` says how to
read it. Parameters are not batched (one model per distribution; ``expand`` adds batch
dimensions that share it, as a ``pyro.plate`` does).

Log-normalizer. ``Exact`` enumerates the smaller side: the :math:`2^{CHW}` binary images, or the
:math:`(P^2+1)^{K \cdot \#\text{blocks}}` hidden configurations (Gaussian visibles integrate out
in closed form); ``AIS`` runs along :class:`ConvRBMPath` (the base-rate path of Salakhutdinov &
Murray 2008 [3]_ with the hidden inputs scaled by :math:`\beta`; the pooling blocks stay exactly
summable at every temperature) or :class:`GaussianConvRBMPath`.

References
----------
.. [1] H. Lee, R. Grosse, R. Ranganath and A. Y. Ng, "Convolutional deep belief networks for
   scalable unsupervised learning of hierarchical representations", ICML 2009.
.. [2] I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press 2016, §20.6.
.. [3] R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks",
   ICML 2008.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.distributions import constraints

from .._random import bernoulli, normal_, uniform_
from .._validation import check_int
from .boltzmann import _as_tensor, _check_value_dtype
from .energy import (
    EXACT_SAMPLE_MAX_UNITS,
    BinaryEnergyBasedDistribution,
    enumerate_binary_states,
)
from .log_normalizer import Normalizer

__all__ = [
    "ConvolutionalRBM",
    "GaussianConvolutionalRBM",
    "ConvRBMPath",
    "GaussianConvRBMPath",
    "conv_rbm_geometry",
]


# --------------------------------------------------------------------------------------------
# geometry and the block operations (functional core shared by distributions and paths)
# --------------------------------------------------------------------------------------------
def conv_rbm_geometry(image_shape, filter_shape, pool_size) -> dict:
    r"""Check that the detection maps tile into pooling blocks and return the sizes.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)`` (one channel).
    filter_shape : tuple of int
        ``(K, C, f_h, f_w)``: the weight's shape.
    pool_size : int
        :math:`P`: side of the square pooling blocks.

    Returns
    -------
    dict
        ``channels, height, width, filters, detect_h, detect_w, pool, pool_h, pool_w,
        n_visible, n_detect, n_blocks`` (``n_blocks`` counts the blocks of all filters).

    Raises
    ------
    ValueError
        Image smaller than a filter, channels that differ from the filters', or detection maps
        (``H - f_h + 1``, ``W - f_w + 1``) that ``pool_size`` does not divide.
    """
    if isinstance(image_shape, torch.Size):
        image_shape = tuple(image_shape)
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) not in (2, 3):
        raise ValueError(
            f"image_shape must be (C, H, W) or (H, W). Got {image_shape!r} instead."
        )
    image_shape = tuple(check_int(s, "image_shape", low=1) for s in image_shape)
    if len(image_shape) == 2:
        image_shape = (1, *image_shape)
    C, H, W = image_shape
    K, Cf, fh, fw = (int(s) for s in filter_shape)
    if Cf != C:
        raise ValueError(
            f"image_shape must have as many channels as the filters: weight has shape "
            f"{tuple(filter_shape)} (K, C={Cf}, f_h, f_w). Got image_shape {image_shape} with "
            f"C={C} instead."
        )
    if fh > H or fw > W:
        raise ValueError(
            f"image_shape {image_shape} is smaller than the filters ({fh} x {fw}): the valid "
            "convolution would leave no detection unit."
        )
    pool = check_int(pool_size, "pool_size", low=1)
    dh, dw = H - fh + 1, W - fw + 1
    if dh % pool or dw % pool:
        raise ValueError(
            f"pool_size must divide the detection maps: images {H} x {W} with {fh} x {fw} "
            f"filters give {dh} x {dw} detection units (H - f_h + 1, W - f_w + 1), which "
            f"{pool} x {pool} pooling blocks do not tile. Got pool_size={pool}; choose an image "
            f"size with (H - f_h + 1) and (W - f_w + 1) multiples of {pool}, or crop/pad the "
            "images."
        )
    return {
        "channels": C,
        "height": H,
        "width": W,
        "filters": K,
        "detect_h": dh,
        "detect_w": dw,
        "pool": pool,
        "pool_h": dh // pool,
        "pool_w": dw // pool,
        "n_visible": C * H * W,
        "n_detect": K * dh * dw,
        "n_blocks": K * (dh // pool) * (dw // pool),
    }


def _to_blocks(t: torch.Tensor, pool: int) -> torch.Tensor:
    """``(N, K, Dh, Dw)`` -> ``(N, K, Dh/P, Dw/P, P*P)`` (block-major)."""
    N, K, dh, dw = t.shape
    t = t.reshape(N, K, dh // pool, pool, dw // pool, pool).permute(0, 1, 2, 4, 3, 5)
    return t.reshape(N, K, dh // pool, dw // pool, pool * pool)


def _from_blocks(t: torch.Tensor, pool: int) -> torch.Tensor:
    """Inverse of :func:`_to_blocks`."""
    N, K, ph, pw, _ = t.shape
    t = t.reshape(N, K, ph, pw, pool, pool).permute(0, 1, 2, 4, 3, 5)
    return t.reshape(N, K, ph * pool, pw * pool)


def _block_log_partition(blocks: torch.Tensor) -> torch.Tensor:
    r""":math:`\log(1 + \sum_{B} e^{I})` per block, ``(..., P*P) -> (...)``."""
    return torch.logsumexp(F.pad(blocks, (1, 0)), dim=-1)


def _sample_blocks(blocks: torch.Tensor, generator=None):
    r"""Exact draws of the block variables given their logits ``(N, K, ph, pw, P*P)``.

    Each block is a categorical over :math:`P^2 + 1` states with logits :math:`(0, I_1, \dots,
    I_{P^2})`; one uniform per block (chains first), inverted through the CDF. Returns the
    detection one-hots ``(N, K, ph, pw, P*P)`` and the pooling units ``(N, K, ph, pw)``.
    """
    full = F.pad(blocks, (1, 0))
    cdf = torch.softmax(full, dim=-1).cumsum(-1)
    u = uniform_(torch.empty(*blocks.shape[:-1], 1, dtype=blocks.dtype, device=blocks.device),
                 generator)
    idx = (cdf < u).sum(-1, keepdim=True).clamp_max(full.shape[-1] - 1)
    onehot = torch.zeros_like(full).scatter_(-1, idx, 1.0)
    det = onehot[..., 1:]
    return det, 1.0 - onehot[..., 0]


class _ConvCore:
    """Shapes and the two convolutions, shared by the distributions and the paths."""

    def _setup(self, weight, visible_bias, hidden_bias, image_shape, pool_size):
        if weight.dim() != 4:
            raise ValueError(
                "weight must have shape (K, C, f_h, f_w): K filters over C channels (parameters "
                f"are not batched). Got shape {tuple(weight.shape)} instead."
            )
        geo = conv_rbm_geometry(image_shape, weight.shape, pool_size)
        K, C = geo["filters"], geo["channels"]
        if tuple(visible_bias.shape) not in ((C,), (C, geo["height"], geo["width"])):
            raise ValueError(
                f"visible_bias must have shape ({C},) (one bias per channel, shared over "
                f"positions) or ({C}, {geo['height']}, {geo['width']}) (one per pixel). Got "
                f"shape {tuple(visible_bias.shape)} instead."
            )
        if tuple(hidden_bias.shape) != (K,):
            raise ValueError(
                f"hidden_bias must have shape ({K},): one bias per filter, shared over "
                f"positions. Got shape {tuple(hidden_bias.shape)} instead."
            )
        self.geometry = geo
        self.image_shape = (C, geo["height"], geo["width"])
        self.pool_size = geo["pool"]
        self.weight, self.visible_bias, self.hidden_bias = weight, visible_bias, hidden_bias

    def _pixel_bias(self):
        """The visible bias as a flattened ``(C*H*W,)`` vector (a per-channel bias repeated
        over positions)."""
        if self.visible_bias.dim() == 1:
            C, H, W = self.image_shape
            return self.visible_bias.repeat_interleave(H * W)
        return self.visible_bias.reshape(-1)

    # -- images <-> vectors ------------------------------------------------------------------
    def _images(self, v: torch.Tensor):
        """``(..., C*H*W)`` -> ``((N, C, H, W), lead shape)``."""
        lead = v.shape[:-1]
        return v.reshape(-1, *self.image_shape), lead

    def _hidden_input_images(self, img, weight, hidden_bias):
        """:math:`I = b + W \\star v`, ``(N, C, H, W) -> (N, K, Dh, Dw)``."""
        return F.conv2d(img, weight) + hidden_bias.reshape(1, -1, 1, 1)

    def _top_down(self, det, weight):
        """:math:`\\sum_k W^k * h^k` (full convolution), ``(N, K, Dh, Dw) -> (N, C, H, W)``."""
        return F.conv_transpose2d(det, weight)


# --------------------------------------------------------------------------------------------
# binary visible units
# --------------------------------------------------------------------------------------------
class ConvolutionalRBM(_ConvCore, BinaryEnergyBasedDistribution):
    r"""Binary convolutional RBM with probabilistic max pooling (Lee et al. 2009; book §20.6).

    Unnormalized log-density (exact, the detection blocks summed out, see the module
    docstring):

    .. math::

        -F(v) = \sum_c a_c \sum_{ij} v_{cij} + \sum_{k,\alpha}
        \log\Big(1 + \sum_{(i,j) \in B_\alpha} e^{I^k_{ij}(v)}\Big).

    Parameters
    ----------
    weight : torch.Tensor, shape ``(K, C, f_h, f_w)``
        The filters :math:`W^k` (cross-correlated with the image for the detection inputs).
    visible_bias : torch.Tensor, shape ``(C,)`` or ``(C, H, W)``
        :math:`a_c`, shared over the positions of channel :math:`c` (Lee et al. 2009), or one
        bias :math:`a_{cij}` per pixel (then read :math:`a_c` as :math:`a_{cij}` below).
    hidden_bias : torch.Tensor, shape ``(K,)``
        :math:`b_k`, shared over the positions of map :math:`k`.
    image_shape : tuple of int
        ``(C, H, W)`` or ``(H, W)``; ``H - f_h + 1`` and ``W - f_w + 1`` must be multiples of
        ``pool_size``.
    pool_size : int
        :math:`P` (default 1: no pooling, an RBM with tied weights).
    normalizer : Normalizer, optional
        Default ``Exact()``: enumerates the smaller of :math:`2^{CHW}` images and
        :math:`(P^2+1)^{\#\text{blocks}}` hidden configurations (at most :math:`2^{20}`).
    mcmc_steps, mcmc_init :
        Block Gibbs steps and initial state of :meth:`sample` when neither side has at most
        :math:`2^{16}` states (exact sampling otherwise).
    validate_args : bool, optional
        Keyword-only.

    Notes
    -----
    Events are flattened ``(C, H, W)`` images, ``event_shape = (C*H*W,)``. Cost per image: two
    convolutions, :math:`O(K C f_h f_w D_h D_w)`, per free energy or block Gibbs step.
    Sampling :math:`h, p \mid v` is exact *within* each block (a categorical over
    :math:`P^2 + 1` states), blocks being conditionally independent given :math:`v`.
    """

    arg_constraints = {
        "weight": constraints.real,
        "visible_bias": constraints.real,
        "hidden_bias": constraints.real,
    }

    def __init__(
        self,
        weight: torch.Tensor,
        visible_bias: torch.Tensor,
        hidden_bias: torch.Tensor,
        image_shape,
        pool_size: int = 1,
        *,
        normalizer: Normalizer | None = None,
        mcmc_steps: int = 1000,
        mcmc_init: torch.Tensor | None = None,
        validate_args=None,
    ):
        weight = _as_tensor(weight, "weight")
        visible_bias = _as_tensor(visible_bias, "visible_bias", weight)
        hidden_bias = _as_tensor(hidden_bias, "hidden_bias", weight)
        self._setup(weight, visible_bias, hidden_bias, image_shape, pool_size)
        super().__init__(
            (),
            (self.geometry["n_visible"],),
            normalizer=normalizer,
            mcmc_steps=mcmc_steps,
            mcmc_init=mcmc_init,
            validate_args=validate_args,
        )

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def n_visible(self) -> int:
        """:math:`C H W`."""
        return self.geometry["n_visible"]

    @property
    def n_detect(self) -> int:
        """Detection units :math:`K D_h D_w`."""
        return self.geometry["n_detect"]

    @property
    def n_blocks(self) -> int:
        """Pooling units (blocks) over all filters, :math:`K D_h D_w / P^2`."""
        return self.geometry["n_blocks"]

    @property
    def hidden_states(self) -> int:
        """Number of hidden configurations, :math:`(P^2+1)^{\\#\\text{blocks}}`."""
        return (self.pool_size**2 + 1) ** self.n_blocks

    @property
    def hidden_bits(self) -> int:
        r""":math:`\lceil \log_2 \text{hidden\_states} \rceil` (compared with ``Exact``'s limit)."""
        return math.ceil(self.n_blocks * math.log2(self.pool_size**2 + 1))

    @property
    def dtype(self):
        return self.weight.dtype

    @property
    def device(self):
        return self.weight.device

    @property
    def enumeration_units(self) -> int:
        return min(self.n_visible, self.hidden_bits)

    # -- the model -----------------------------------------------------------------------------
    def _checked(self, value):
        _check_value_dtype(self, value)
        if value.dim() < 1 or value.shape[-1] != self.n_visible:
            C, H, W = self.image_shape
            raise ValueError(
                f"value must have last dimension C*H*W = {self.n_visible} (images of shape "
                f"{self.image_shape} flattened in (C, H, W) order). Got shape "
                f"{tuple(value.shape)} instead; flatten images with x.reshape(n, -1)."
            )
        return value

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """:math:`-F(v) - \\log Z`; ``value`` of shape ``(..., C*H*W)`` in this dtype (a bool
        or integer value is cast exactly)."""
        return super().log_prob(self._checked(value))

    def hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        r"""Detection inputs :math:`I^k_{ij}(v)`, shape ``(..., K, D_h, D_w)``."""
        img, lead = self._images(v.to(self.dtype))
        out = self._hidden_input_images(self._scaled(img), self.weight, self.hidden_bias)
        return out.reshape(*lead, *out.shape[1:])

    def _scaled(self, img):
        return img

    def _block_term(self, v):
        """:math:`\\sum_{k,\\alpha} \\log(1 + \\sum_B e^I)`, shape ``v.shape[:-1]``."""
        img, lead = self._images(v.to(self.dtype))
        i = self._hidden_input_images(self._scaled(img), self.weight, self.hidden_bias)
        out = _block_log_partition(_to_blocks(i, self.pool_size)).sum((1, 2, 3))
        return out.reshape(lead)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`F(v)` (exact), shape ``v.shape[:-1]``."""
        v = v.to(self.dtype)
        return -(v * self._pixel_bias()).sum(-1) - self._block_term(v)

    def unnormalized_log_prob(self, value):
        return -self.free_energy(value)

    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r"""Joint energy :math:`E(v, h)` of images ``v`` ``(..., C*H*W)`` and detection units
        ``h`` ``(..., K*D_h*D_w)`` (flattened ``(K, D_h, D_w)``); :math:`+\infty` where a
        pooling block has more than one active unit."""
        v, h = v.to(self.dtype), h.to(self.dtype)
        K = self.geometry["filters"]
        i = self.hidden_input(v).flatten(-3)
        e = -(h * i).sum(-1) - (v * self._pixel_bias()).sum(-1)
        lead = h.shape[:-1]
        blocks = _to_blocks(
            h.reshape(-1, K, self.geometry["detect_h"], self.geometry["detect_w"]),
            self.pool_size,
        )
        bad = (blocks.sum(-1) > 1).flatten(1).any(-1).reshape(lead)
        return torch.where(bad, torch.full_like(e, math.inf), e)

    # -- conditionals --------------------------------------------------------------------------
    def detection_probs(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`P(h^k_{ij} = 1 \mid v)`, shape ``(..., K*D_h*D_w)`` (flattened maps)."""
        img, lead = self._images(v.to(self.dtype))
        i = self._hidden_input_images(self._scaled(img), self.weight, self.hidden_bias)
        b = _to_blocks(i, self.pool_size)
        probs = torch.softmax(F.pad(b, (1, 0)), -1)[..., 1:]
        return _from_blocks(probs, self.pool_size).reshape(*lead, -1)

    def pooling_probs(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`P(p^k_\alpha = 1 \mid v) = 1 - 1/(1 + \sum_{B_\alpha} e^{I})`, shape
        ``(..., K * D_h/P * D_w/P)`` (flattened ``(K, D_h/P, D_w/P)`` maps)."""
        img, lead = self._images(v.to(self.dtype))
        i = self._hidden_input_images(self._scaled(img), self.weight, self.hidden_bias)
        b = _to_blocks(i, self.pool_size)
        off = torch.softmax(F.pad(b, (1, 0)), -1)[..., 0]
        return (1.0 - off).reshape(*lead, -1)

    def sample_hidden(self, v: torch.Tensor, generator=None):
        r"""Exact draws of :math:`(h, p) \sim P(h, p \mid v)`, block by block: returns the
        detection units ``(..., K*D_h*D_w)`` and the pooling units ``(..., K*D_h/P*D_w/P)``
        (0./1. in this dtype). ``generator``: a ``torch.Generator`` or
        :class:`~pyrogen._random.ChainRNG` (chains first)."""
        with torch.no_grad():
            img, lead = self._images(v.to(self.dtype))
            i = self._hidden_input_images(self._scaled(img), self.weight, self.hidden_bias)
            det, pool = _sample_blocks(_to_blocks(i, self.pool_size), generator)
            h = _from_blocks(det, self.pool_size)
            return h.reshape(*lead, -1), pool.reshape(*lead, -1)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        r""":math:`a_c + \sum_k (W^k_c * h^k)_{ij}` (full convolution), shape
        ``(..., C*H*W)``; ``h`` flattened ``(K, D_h, D_w)`` maps."""
        h = h.to(self.dtype)
        lead = h.shape[:-1]
        g = self.geometry
        det = h.reshape(-1, g["filters"], g["detect_h"], g["detect_w"])
        out = self._top_down(det, self.weight).reshape(*lead, -1)
        return out + self._pixel_bias()

    def visible_given_hidden(self, h: torch.Tensor):
        r""":math:`P(v \mid h) = \prod \operatorname{Bernoulli}(\sigma(a_c + (W * h)_{cij}))`,
        a Pyro distribution with event shape ``(C*H*W,)``."""
        return dist.Bernoulli(logits=self.visible_logits(h)).to_event(1)

    def _sample_visible(self, h, generator=None):
        return bernoulli(torch.sigmoid(self.visible_logits(h)), generator)

    def transition(self, x, num_steps: int = 1, generator=None):
        """``num_steps`` block Gibbs steps :math:`v \\to (h, p) \\to v`."""
        with torch.no_grad():
            v = x.to(self.dtype)
            for _ in range(num_steps):
                h, _ = self.sample_hidden(v, generator)
                v = self._sample_visible(h, generator)
            return v

    # -- unrolled RBM --------------------------------------------------------------------------
    def unrolled_weight(self) -> torch.Tensor:
        r"""The tied weight matrix :math:`\tilde W` of shape ``(C*H*W, K*D_h*D_w)`` with
        :math:`v^\top \tilde W = (W \star v)` flattened: with ``pool_size=1`` this model is
        the :class:`~pyrogen.distributions.RBM` with weight :math:`\tilde W`, visible bias
        :math:`a_c` repeated over positions and hidden bias :math:`b_k` repeated over positions
        (:meth:`unrolled_biases`); with Gaussian pixels the
        :class:`~pyrogen.distributions.GaussianBernoulliRBM` with weight :math:`\tilde W`
        (which divides by :math:`\sigma^2` itself). Differentiable."""
        n = self.n_visible
        eye = torch.eye(n, dtype=self.dtype, device=self.device).reshape(n, *self.image_shape)
        return F.conv2d(eye, self.weight).reshape(n, -1)

    def unrolled_biases(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(visible_bias, hidden_bias)`` repeated over positions: shapes ``(C*H*W,)`` and
        ``(K*D_h*D_w,)``."""
        g = self.geometry
        return self._pixel_bias(), self.hidden_bias.repeat_interleave(
            g["detect_h"] * g["detect_w"]
        )

    # -- enumeration ---------------------------------------------------------------------------
    def hidden_configurations(self, start: int = 0, stop: int | None = None) -> torch.Tensor:
        r"""Valid detection configurations number ``start .. stop-1`` (each block's state is a
        base-:math:`(P^2+1)` digit: 0 = all off, :math:`s` = unit :math:`s` on), flattened
        ``(stop - start, K*D_h*D_w)``."""
        g = self.geometry
        base = self.pool_size**2 + 1
        stop = self.hidden_states if stop is None else stop
        idx = torch.arange(start, stop, device=self.device)
        digits = (idx.unsqueeze(-1) // (base ** torch.arange(self.n_blocks, device=self.device)))
        digits = digits % base
        onehot = F.one_hot(digits, base)[..., 1:].to(self.dtype)
        onehot = onehot.reshape(-1, g["filters"], g["pool_h"], g["pool_w"], base - 1)
        return _from_blocks(onehot, self.pool_size).reshape(stop - start, -1)

    def _hidden_marginal_logits(self, h):
        r""":math:`\log \sum_v e^{-E(v,h)}` for valid configurations ``h``."""
        g = self.geometry
        hb = self.hidden_bias.repeat_interleave(g["detect_h"] * g["detect_w"])
        return (h * hb).sum(-1) + F.softplus(self.visible_logits(h)).sum(-1)

    def _logsumexp_hidden(self, chunk_size):
        parts = []
        total = self.hidden_states
        for start in range(0, total, chunk_size):
            h = self.hidden_configurations(start, min(total, start + chunk_size))
            parts.append(torch.logsumexp(self._hidden_marginal_logits(h), 0))
        return torch.logsumexp(torch.stack(parts), 0)

    def enumerate_log_z(self, chunk_size: int = 2**14) -> torch.Tensor:
        """Exact :math:`\\log Z` by enumerating the smaller side (differentiable)."""
        if self.hidden_bits < self.n_visible:
            return self._logsumexp_hidden(chunk_size)
        return super().enumerate_log_z(chunk_size)

    def _sample_exact(self, sample_shape):
        shape = torch.Size(sample_shape) + self.batch_shape
        num = max(math.prod(shape), 1)
        if self.n_visible <= min(EXACT_SAMPLE_MAX_UNITS, self.hidden_bits):
            states = enumerate_binary_states(self.n_visible, dtype=self.dtype,
                                             device=self.device)
            idx = torch.distributions.Categorical(
                logits=self.unnormalized_log_prob(states)).sample((num,))
            return states[idx].reshape(*shape, self.n_visible)
        if self.hidden_bits <= EXACT_SAMPLE_MAX_UNITS:
            h = self.hidden_configurations()
            idx = torch.distributions.Categorical(
                logits=self._hidden_marginal_logits(h)).sample((num,))
            return self._sample_visible(h[idx]).reshape(*shape, self.n_visible)
        return None

    # -- annealing -----------------------------------------------------------------------------
    def annealing_path(self, base=None, data=None):
        r""":class:`ConvRBMPath`: base-rate model (visible logits ``base``, or the smoothed base
        rates of ``data``, else zeros) to this model, hidden inputs scaled by :math:`\beta`."""
        from .boltzmann import _base_logits

        logits = _base_logits(self, base, data)
        return ConvRBMPath(
            self.weight.detach(), self.visible_bias.detach(), self.hidden_bias.detach(),
            self.image_shape, self.pool_size, base_visible_bias=logits,
        )


class ConvRBMPath(_ConvCore):
    r"""AIS path of a binary convolutional RBM (``AnnealingPath`` protocol).

    .. math::

        \log f_\beta(v) = \big((1-\beta) a^A + \beta \bar a\big)^\top v
        + \sum_{k,\alpha} \log\Big(1 + \sum_{(i,j) \in B_\alpha} e^{\beta I^k_{ij}(v)}\Big),

    with :math:`a^A` per-pixel base-rate logits and :math:`\bar a` the channel biases repeated
    over positions: the base-rate path of Salakhutdinov & Murray (2008) with the detection
    inputs scaled by :math:`\beta`. Each intermediate is a convolutional RBM (pixel biases
    interpolated), so block Gibbs applies at every :math:`\beta`;
    :math:`\log Z_0 = \sum_i \operatorname{softplus}(a^A_i) + \#\text{blocks} \cdot
    \log(1 + P^2)`. Chains ``(M, C*H*W)``; the transition draws chains first (for
    :class:`~pyrogen._random.ChainRNG`).
    """

    binary = True

    def __init__(self, weight, visible_bias, hidden_bias, image_shape, pool_size,
                 base_visible_bias=None):
        self._setup(weight.detach(), visible_bias.detach(), hidden_bias.detach(), image_shape,
                    pool_size)
        C, H, W = self.image_shape
        n = C * H * W
        self.channel_bias = self._pixel_bias()
        if base_visible_bias is None:
            base_visible_bias = torch.zeros_like(self.channel_bias)
        if not isinstance(base_visible_bias, torch.Tensor) or base_visible_bias.shape[-1:] != (n,):
            raise ValueError(
                f"base_visible_bias must be a tensor of shape ({n},). Got "
                f"{tuple(getattr(base_visible_bias, 'shape', ()))} instead."
            )
        self.base_visible_bias = base_visible_bias.detach().to(weight.dtype).reshape(n)
        self.log_z0 = F.softplus(self.base_visible_bias).sum() + self.geometry[
            "n_blocks"
        ] * math.log(1 + self.pool_size**2)

    def _input(self, x):
        return _to_blocks(
            self._hidden_input_images(x.reshape(-1, *self.image_shape), self.weight,
                                      self.hidden_bias),
            self.pool_size,
        )

    def init(self, num_chains: int, generator=None) -> torch.Tensor:
        """Exact draws from the base-rate model, ``(num_chains, C*H*W)``."""
        p = torch.sigmoid(self.base_visible_bias).expand(num_chains, -1)
        return bernoulli(p, generator)

    def log_density(self, x, beta):
        return self.log_density_fn(x)(beta)

    def log_density_fn(self, x):
        r""":math:`\beta \mapsto \log f_\beta(x)` from one convolution."""
        b = self._input(x)
        lin0 = (x * self.base_visible_bias).sum(-1)
        lin1 = (x * self.channel_bias).sum(-1)

        def fn(beta):
            beta = float(beta)
            blk = _block_log_partition(beta * b).sum((1, 2, 3))
            return (1 - beta) * lin0 + beta * lin1 + blk

        return fn

    def transition(self, x, beta, generator=None):
        """One block Gibbs sweep of the intermediate model at ``beta``."""
        beta = float(beta)
        det, _ = _sample_blocks(beta * self._input(x), generator)
        h = _from_blocks(det, self.pool_size)
        logits = beta * (self._top_down(h, self.weight).reshape(x.shape[0], -1)
                         + self.channel_bias) + (1 - beta) * self.base_visible_bias
        return bernoulli(torch.sigmoid(logits), generator)

    def __repr__(self) -> str:
        return f"ConvRBMPath(image_shape={self.image_shape}, pool_size={self.pool_size})"


# --------------------------------------------------------------------------------------------
# Gaussian visible units
# --------------------------------------------------------------------------------------------
class GaussianConvolutionalRBM(ConvolutionalRBM):
    r"""Convolutional RBM with Gaussian visible units and probabilistic max pooling.

    .. math::

        E(v, h) = \sum_{cij} \frac{(v_{cij} - a_c)^2}{2\sigma_c^2}
        - \sum_{k,ij} h^k_{ij} \Big(b_k + \sum_c \big(W^k_c \star (v_c/\sigma_c^2)\big)_{ij}
        \Big),

    so :math:`p(v \mid h) = \mathcal N(a_c + \sum_k (W^k_c * h^k),\, \sigma_c^2)` and the
    pooling blocks are as in :class:`ConvolutionalRBM`, with
    :math:`I^k(v) = b_k + \sum_c W^k_c \star (v_c/\sigma_c^2)`. Free energy (exact):

    .. math::

        F(v) = \sum_{cij} \frac{(v_{cij}-a_c)^2}{2\sigma_c^2} - \sum_{k,\alpha}
        \log\Big(1 + \sum_{B_\alpha} e^{I^k_{ij}(v)}\Big).

    ``Exact`` enumerates the hidden configurations, the visible units integrating out in closed
    form for each (:math:`m = \sum_k W^k * h^k`):
    :math:`\log Z = \operatorname{logsumexp}_h[b^\top h + \sum (a m + m^2/2)/\sigma^2] +
    \sum \tfrac12\log(2\pi\sigma^2)`.

    Parameters
    ----------
    weight, visible_bias, hidden_bias, image_shape, pool_size :
        As for :class:`ConvolutionalRBM`.
    sigma : torch.Tensor or float
        Standard deviation per channel, shape ``(C,)`` or a scalar (positive).
    normalizer, mcmc_steps, mcmc_init, validate_args :
        As for :class:`ConvolutionalRBM`; exact sampling (hidden configuration from its
        marginal, then :math:`v \mid h`) when there are at most :math:`2^{16}` of them.
    """

    arg_constraints = {**ConvolutionalRBM.arg_constraints, "sigma": constraints.positive}
    support = constraints.independent(constraints.real, 1)

    def __init__(
        self,
        weight,
        visible_bias,
        hidden_bias,
        image_shape,
        pool_size: int = 1,
        sigma=1.0,
        *,
        normalizer: Normalizer | None = None,
        mcmc_steps: int = 1000,
        mcmc_init: torch.Tensor | None = None,
        validate_args=None,
    ):
        weight = _as_tensor(weight, "weight")
        sigma = _as_tensor(sigma, "sigma", weight)
        C = weight.shape[1] if weight.dim() == 4 else None
        if sigma.dim() == 0 and C is not None:
            sigma = sigma.expand(C)
        if C is not None and tuple(sigma.shape) != (C,):
            raise ValueError(
                f"sigma must be a scalar or have shape ({C},): one standard deviation per "
                f"channel. Got shape {tuple(sigma.shape)} instead."
            )
        self.sigma = sigma
        super().__init__(weight, visible_bias, hidden_bias, image_shape, pool_size,
                         normalizer=normalizer, mcmc_steps=mcmc_steps, mcmc_init=mcmc_init,
                         validate_args=validate_args)

    @property
    def enumeration_units(self) -> int:
        return self.hidden_bits

    def _pixel_sigma(self):
        C, H, W = self.image_shape
        return self.sigma.repeat_interleave(H * W)

    def _scaled(self, img):
        return img / (self.sigma**2).reshape(1, -1, 1, 1)

    def free_energy(self, v):
        v = v.to(self.dtype)
        quad = ((v - self._pixel_bias()) ** 2 / (2 * self._pixel_sigma() ** 2)).sum(-1)
        return quad - self._block_term(v)

    def energy(self, v, h):
        v, h = v.to(self.dtype), h.to(self.dtype)
        quad = ((v - self._pixel_bias()) ** 2 / (2 * self._pixel_sigma() ** 2)).sum(-1)
        lin = (v * self._pixel_bias()).sum(-1)
        # ConvolutionalRBM.energy = -h.I - a.v; here: quad - h.I
        return super().energy(v, h) + lin + quad

    def visible_given_hidden(self, h):
        r""":math:`p(v \mid h) = \mathcal N(a_c + (W * h)_{cij}, \sigma_c^2)`, event shape
        ``(C*H*W,)``."""
        mean = self.visible_logits(h)
        return dist.Normal(mean, self._pixel_sigma().expand(mean.shape)).to_event(1)

    def _sample_visible(self, h, generator=None):
        mean = self.visible_logits(h)
        return mean + self._pixel_sigma() * normal_(torch.empty_like(mean), generator)

    def _hidden_marginal_logits(self, h):
        g = self.geometry
        hb = self.hidden_bias.repeat_interleave(g["detect_h"] * g["detect_w"])
        m = self._top_down(
            h.to(self.dtype).reshape(-1, g["filters"], g["detect_h"], g["detect_w"]),
            self.weight,
        ).reshape(*h.shape[:-1], -1)
        var = self._pixel_sigma() ** 2
        return (h * hb).sum(-1) + ((self._pixel_bias() * m + 0.5 * m**2) / var).sum(-1)

    def enumerate_log_z(self, chunk_size: int = 2**14):
        const = (0.5 * torch.log(2 * math.pi * self._pixel_sigma() ** 2)).sum()
        return self._logsumexp_hidden(chunk_size) + const

    def _sample_exact(self, sample_shape):
        if self.hidden_bits > EXACT_SAMPLE_MAX_UNITS:
            return None
        shape = torch.Size(sample_shape) + self.batch_shape
        num = max(math.prod(shape), 1)
        h = self.hidden_configurations()
        idx = torch.distributions.Categorical(
            logits=self._hidden_marginal_logits(h)).sample((num,))
        return self._sample_visible(h[idx]).reshape(*shape, self.n_visible)

    def base_distribution(self, data=None):
        r"""Factorial :math:`\mathcal N(a_c, \sigma_c^2)` over the pixels."""
        return dist.Normal(self._pixel_bias(), self._pixel_sigma()).to_event(1)

    def annealing_path(self, base=None, data=None):
        """:class:`GaussianConvRBMPath` (``base`` and ``data`` are not used)."""
        return GaussianConvRBMPath(
            self.weight.detach(), self.visible_bias.detach(), self.hidden_bias.detach(),
            self.image_shape, self.pool_size, self.sigma.detach(),
        )


class GaussianConvRBMPath(_ConvCore):
    r"""AIS path of a Gaussian convolutional RBM with the filters scaled by :math:`\beta`.

    .. math::

        \log f_\beta(v) = -\sum \frac{(v - a)^2}{2\sigma^2} + \sum_{k,\alpha}
        \log\Big(1 + \sum_{B_\alpha} e^{b_k + \beta (W^k \star v/\sigma^2)_{ij}}\Big),

    the analogue of :class:`~pyrogen.distributions.boltzmann.GaussianBernoulliRBMPath`: at
    :math:`\beta = 0` pixels and blocks are independent, :math:`\log Z_0 = \sum \tfrac12
    \log(2\pi\sigma^2) + \sum_{k,\alpha} \log(1 + P^2 e^{b_k})`.
    """

    def __init__(self, weight, visible_bias, hidden_bias, image_shape, pool_size, sigma):
        self._setup(weight, visible_bias, hidden_bias, image_shape, pool_size)
        C, H, W = self.image_shape
        self.sigma = sigma
        self.channel_bias = self._pixel_bias()
        self.pixel_sigma = sigma.repeat_interleave(H * W)
        g = self.geometry
        per_filter = g["pool_h"] * g["pool_w"]
        self.log_z0 = (0.5 * torch.log(2 * math.pi * self.pixel_sigma**2)).sum() + per_filter * (
            torch.log1p(self.pool_size**2 * torch.exp(hidden_bias))
        ).sum()

    def _input(self, x, beta):
        img = x.reshape(-1, *self.image_shape) / (self.sigma**2).reshape(1, -1, 1, 1)
        i = beta * F.conv2d(img, self.weight) + self.hidden_bias.reshape(1, -1, 1, 1)
        return _to_blocks(i, self.pool_size)

    def init(self, num_chains: int, generator=None):
        shape = (num_chains, self.channel_bias.shape[0])
        noise = torch.empty(shape, dtype=self.weight.dtype, device=self.weight.device)
        return self.channel_bias + self.pixel_sigma * normal_(noise, generator)

    def log_density(self, x, beta):
        quad = ((x - self.channel_bias) ** 2 / (2 * self.pixel_sigma**2)).sum(-1)
        return -quad + _block_log_partition(self._input(x, float(beta))).sum((1, 2, 3))

    def transition(self, x, beta, generator=None):
        beta = float(beta)
        det, _ = _sample_blocks(self._input(x, beta), generator)
        h = _from_blocks(det, self.pool_size)
        mean = self.channel_bias + beta * self._top_down(h, self.weight).reshape(x.shape[0], -1)
        return mean + self.pixel_sigma * normal_(torch.empty_like(mean), generator)

    def __repr__(self) -> str:
        return (f"GaussianConvRBMPath(image_shape={self.image_shape}, "
                f"pool_size={self.pool_size})")
