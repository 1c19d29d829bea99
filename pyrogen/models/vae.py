r"""Variational autoencoders (book §20.10.3) as Pyro model/guide pairs.

Generative model (one stochastic layer, :math:`L = 1`; two layers chain
:math:`z_2 \to z_1 \to x`):

.. math::

    z \sim \mathcal N(0, I_d), \qquad x \mid z \sim p_\theta(x \mid z) =
    \begin{cases}
    \prod_j \operatorname{Bernoulli}(x_j; \sigma(g_\theta(z)_j)) & \text{binary data}\\
    \prod_j \mathcal N(x_j; g_\theta(z)_j, s_j^2) & \text{real data, learned } s
    \end{cases}

and the amortized guide (encoder, the "recognition network")
:math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag}\sigma_\phi^2(x))`,
sampled with the reparametrization :math:`z = \mu_\phi(x) + \sigma_\phi(x) \odot \epsilon`,
:math:`\epsilon \sim \mathcal N(0, I)` (book §20.9), so that Pyro's ``Trace_ELBO`` gradient is
the pathwise one. The networks :math:`g_\theta`, :math:`\mu_\phi`, :math:`\sigma_\phi` are MLPs or
convolutional (a transposed-convolution generator, book §20.10.6).

Training objectives (all Pyro losses, passed to ``fit(loss=...)`` or used directly in
``pyro.infer.SVI(model.model, model.guide, ...)``):

* ``"elbo"``: ``Trace_ELBO`` — :math:`\mathbb E_q[\log p(x\mid z)] - \mathbb E_q[\log q(z\mid
  x) - \log p(z)]` by Monte Carlo;
* ``"analytic_kl"``: ``TraceMeanField_ELBO`` — the KL term in closed form (one stochastic layer);
* ``"iwae"``: :class:`pyrogen.infer.iwae.IWAE_ELBO` with ``num_particles`` :math:`K` [2];
* ``beta`` and ``kl_warmup``: the KL term weighted by :math:`\beta_t` (a ``poutine.scale`` on the
  latent sites of model **and** guide); linear warm-up :math:`\beta_t = \beta \min(1,
  t/T)` [3]. With :math:`\beta_t \ne 1` the loss is not a bound on :math:`\log p(x)`.

Each epoch ``fit`` records, on a fixed monitoring subset, the reconstruction term
:math:`\mathbb E_q \log p(x\mid z)`, the KL term and the number of **active units**
:math:`\#\{j : \operatorname{Cov}_x(\mathbb E_{q(z\mid x)}[z_j]) > 0.01\}` [2]: posterior collapse
shows as KL :math:`\to 0` and few active units, which a single ELBO curve hides.

``log_likelihood`` is the importance-sampled estimate (kind ``"is_estimate"``, with standard
error) of :func:`pyrogen.infer.importance.importance_log_likelihood`; ``elbo`` and
``iwae_bound`` return the bounds under their own names.

References
----------
1. D. P. Kingma, M. Welling. *Auto-Encoding Variational Bayes*. ICLR 2014.
2. Y. Burda, R. Grosse, R. Salakhutdinov. *Importance Weighted Autoencoders*. ICLR 2016.
3. S. R. Bowman et al. *Generating sentences from a continuous space*. CoNLL 2016;
   I. Higgins et al. *beta-VAE*. ICLR 2017.
4. K. Sohn, H. Lee, X. Yan. *Learning structured output representation using deep conditional
   generative models*. NeurIPS 2015 (conditional VAE).
5. I. Goodfellow, Y. Bengio, A. Courville. *Deep Learning*, MIT Press 2016, §20.9, §20.10.3.
"""

from __future__ import annotations

import math
import time
import warnings

import pyro
import pyro.distributions as dist
import pyro.infer
import pyro.poutine as poutine
import torch
from pyro.nn import pyro_method
from torch import nn

from .._validation import check_binary, check_choice, check_float, check_int, check_labels
from ..evaluation import LogLikelihood, log_mean_exp
from ..infer.importance import importance_log_likelihood, log_importance_weights
from ..infer.iwae import IWAE_ELBO
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["VAE", "ConditionalVAE", "active_units"]

_ACTIVATIONS = {"softplus": nn.Softplus, "tanh": nn.Tanh, "relu": nn.ReLU}
LIKELIHOODS = ("bernoulli", "gaussian")
ARCHITECTURES = ("mlp", "conv")
GAUSSIAN_SCALES = ("feature", "isotropic", "network")
LOSSES = ("elbo", "analytic_kl", "iwae")
#: Burda et al. (2015) threshold on Cov_x(E_q[z_j]) for an active unit
ACTIVE_UNIT_THRESHOLD = 0.01


def active_units(means: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    r"""Number of active latent units :math:`\#\{j: \operatorname{Var}_x(\mathbb E_q[z_j]) >
    \text{threshold}\}` (Burda et al. 2015, §5.2) from encoder means of shape ``(n, d)``."""
    if means.shape[0] < 2:
        return 0
    return int((means.double().var(dim=0) > threshold).sum())


def _mlp(sizes, activation: str, final_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or final_activation:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _cat(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Concatenate along the last dim, broadcasting the leading (batch) dims."""
    shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    return torch.cat([a.expand(*shape, a.shape[-1]), b.expand(*shape, b.shape[-1])], dim=-1)


class _GaussianHead(nn.Module):
    """Body network followed by linear heads for the mean and log standard deviation."""

    def __init__(self, body: nn.Module, in_features: int, out_features: int):
        super().__init__()
        self.body = body
        self.loc = nn.Linear(in_features, out_features)
        self.log_scale = nn.Linear(in_features, out_features)

    def forward(self, h: torch.Tensor):
        h = self.body(h)
        return self.loc(h), torch.exp(self.log_scale(h))


class _ConvBody(nn.Module):
    """Strided convolutions (kernel 4, stride 2, padding 1: each halves the image), flattened."""

    def __init__(self, image_shape, channels, activation):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), _ACTIVATIONS[activation]()]
            c_in = c
        self.net = nn.Sequential(*layers)
        f = 2 ** len(channels)
        self.out_features = c_in * (image_shape[0] // f) * (image_shape[1] // f)

    def forward(self, x):
        lead = x.shape[:-1]
        h = self.net(x.reshape(-1, 1, *self.image_shape))
        return h.reshape(*lead, self.out_features)


class _ConvGenerator(nn.Module):
    """Linear layer to a small feature map, then transposed convolutions (book §20.10.6)."""

    def __init__(self, in_features, image_shape, channels, activation, out_channels):
        super().__init__()
        self.image_shape = tuple(image_shape)
        f = 2 ** len(channels)
        self.start = (channels[-1], image_shape[0] // f, image_shape[1] // f)
        self.fc = nn.Sequential(
            nn.Linear(in_features, math.prod(self.start)), _ACTIVATIONS[activation]()
        )
        layers: list[nn.Module] = []
        rev = list(channels[::-1])
        for i, c in enumerate(rev):
            last = i == len(rev) - 1
            c_out = out_channels if last else rev[i + 1]
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1))
            if not last:
                layers.append(_ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, z):
        lead = z.shape[:-1]
        h = self.fc(z).reshape(-1, *self.start)
        out = self.net(h)  # (N, C_out, H, W)
        d = self.image_shape[0] * self.image_shape[1]
        return out.reshape(*lead, self.out_channels * d)


@register_model("vae")
class VAE(GenerativeModel):
    r"""Variational autoencoder with prior :math:`\mathcal N(0, I)` and a Gaussian encoder.

    Parameters
    ----------
    n_features : int
        Data dimension :math:`D` (for ``architecture="conv"``, :math:`D = H W`).
    latent_dims : int or tuple of int
        ``d`` for one stochastic layer, or ``(d1, d2)`` for two (:math:`z_2 \to z_1 \to x`,
        guide :math:`q(z_1\mid x) q(z_2 \mid z_1)` as in [2]).
    hidden_dims : tuple of int
        Hidden layer sizes of the networks between :math:`x` and :math:`z_1` (encoder in this
        order, decoder reversed). ``()`` gives linear networks (the linear-Gaussian VAE whose
        marginal is PPCA's).
    likelihood : {"bernoulli", "gaussian"}
        Decoder distribution (Bernoulli on logits for binary data; Gaussian with learned scale).
    gaussian_scale : {"feature", "isotropic", "network"}
        Gaussian decoder only: one learned :math:`s_j` per feature, one shared :math:`s`
        (PPCA), or :math:`s_j(z)` output by the decoder network.
    architecture : {"mlp", "conv"}
    image_shape : tuple (H, W), optional
        Required for ``"conv"``; ``H`` and ``W`` divisible by ``2 ** len(conv_channels)``.
    conv_channels : tuple of int
        Channels of the strided convolutions (the generator mirrors them).
    top_hidden_dims : tuple of int
        Hidden sizes of the networks between :math:`z_1` and :math:`z_2` (two layers only).
    activation : {"softplus", "tanh", "relu"}
    seed : int or None
        Seeds the initial network weights (PyTorch's default initialisation drawn from a
        generator seeded with it; the global random state is left as it was). ``None`` draws
        them from torch's global random state. ``fit(seed=...)`` seeds the training; see
        :class:`~pyrogen.models.base.GenerativeModel`.

    Notes
    -----
    Cost of one ELBO step on a batch of :math:`B`: one encoder and one decoder pass
    (:math:`O(B \sum_\ell h_\ell h_{\ell+1})`); ``IWAE_ELBO(K)``: one encoder and :math:`K` decoder
    passes. ``log_likelihood(num_particles=K)``: :math:`K` decoder passes per example, chunked.
    """

    log_likelihood_kind = "is_estimate"

    def __init__(
        self,
        n_features: int,
        latent_dims=2,
        hidden_dims=(200, 200),
        likelihood: str = "bernoulli",
        gaussian_scale: str = "feature",
        architecture: str = "mlp",
        image_shape=None,
        conv_channels=(32, 64),
        top_hidden_dims=(100, 100),
        activation: str = "softplus",
        seed: int | None = 0,
        **extra,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        latent = self._check_sizes(latent_dims, "latent_dims", allow_int=True, low_len=1)
        if len(latent) > 2:
            raise ValueError(
                f"latent_dims must be an int or a tuple of one or two ints. Got {latent_dims!r} "
                "instead."
            )
        hidden = self._check_sizes(hidden_dims, "hidden_dims", low_len=0)
        top_hidden = self._check_sizes(top_hidden_dims, "top_hidden_dims", low_len=0)
        channels = self._check_sizes(conv_channels, "conv_channels", low_len=1)
        check_choice(likelihood, "likelihood", LIKELIHOODS)
        check_choice(gaussian_scale, "gaussian_scale", GAUSSIAN_SCALES)
        check_choice(architecture, "architecture", ARCHITECTURES)
        check_choice(activation, "activation", tuple(_ACTIVATIONS))
        if architecture == "conv":
            if image_shape is None:
                raise ValueError("image_shape must be (H, W) for architecture='conv'. Got None.")
            image_shape = self._check_sizes(image_shape, "image_shape", low_len=2)
            f = 2 ** len(channels)
            if (
                len(image_shape) != 2
                or image_shape[0] * image_shape[1] != n_features
                or image_shape[0] % f
                or image_shape[1] % f
            ):
                raise ValueError(
                    f"image_shape must be (H, W) with H*W == n_features ({n_features}) and H, W "
                    f"divisible by 2**len(conv_channels) = {f}. Got {image_shape!r} instead."
                )
        elif image_shape is not None:
            image_shape = self._check_sizes(image_shape, "image_shape", low_len=2)
        super().__init__(
            n_features=n_features,
            latent_dims=list(latent),
            hidden_dims=list(hidden),
            likelihood=likelihood,
            gaussian_scale=gaussian_scale,
            architecture=architecture,
            image_shape=None if image_shape is None else list(image_shape),
            conv_channels=list(channels),
            top_hidden_dims=list(top_hidden),
            activation=activation,
            seed=None if seed is None else check_int(seed, "seed", low=0),
            **extra,
        )
        self.latent_dims = latent
        self.likelihood = likelihood
        self.gaussian_scale = gaussian_scale
        self.image_shape = image_shape
        #: KL weight beta_t (a poutine.scale on latent sites); set by ``fit``
        self.kl_weight = 1.0
        cond = self._cond_features(extra)
        d1 = latent[0]
        out_mult = 2 if (likelihood == "gaussian" and gaussian_scale == "network") else 1
        # -- guide networks: q(z1 | x [, y]) and q(z2 | z1) ------------------------------------
        if architecture == "conv":
            body = _ConvBody(image_shape, channels, activation)
            enc_body = _CondBody(body, body.out_features, cond, hidden, activation)
            self.encoder = _GaussianHead(enc_body, enc_body.out_features, d1)
            self.decoder = _CondDecoder(
                _ConvGenerator(
                    hidden[0] if hidden else d1 + cond,
                    image_shape,
                    channels,
                    activation,
                    out_mult,
                ),
                d1 + cond,
                hidden,
                activation,
            )
        else:
            enc_in = n_features + cond
            self.encoder = _GaussianHead(
                _mlp([enc_in, *hidden], activation, final_activation=True),
                hidden[-1] if hidden else enc_in,
                d1,
            )
            self.decoder = _mlp(
                [d1 + cond, *hidden[::-1], out_mult * n_features],
                activation,
                final_activation=False,
            )
        if len(latent) == 2:
            d2 = latent[1]
            self.encoder_top = _GaussianHead(
                _mlp([d1, *top_hidden], activation, final_activation=True),
                top_hidden[-1] if top_hidden else d1,
                d2,
            )
            self.prior_z1 = _GaussianHead(
                _mlp([d2, *top_hidden[::-1]], activation, final_activation=True),
                top_hidden[0] if top_hidden else d2,
                d1,
            )
        if likelihood == "gaussian" and gaussian_scale != "network":
            n_scale = n_features if gaussian_scale == "feature" else 1
            self.decoder_log_scale = nn.Parameter(torch.zeros(n_scale))
        self._pname = self._pyro_name

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_sizes(value, name, allow_int=False, low_len=0) -> tuple[int, ...]:
        if allow_int and isinstance(value, int) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)) or len(value) < low_len:
            raise TypeError(
                f"{name} must be a tuple of at least {low_len} positive int(s). "
                f"Got {value!r} instead."
            )
        return tuple(check_int(v, name, low=1) for v in value)

    def _cond_features(self, extra: dict) -> int:
        if extra:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {sorted(extra)}."
            )
        return 0

    def _register(self, which: str):
        """``pyro.module`` for the networks of the model or of the guide (as in Pyro's tutorial)."""
        if which == "model":
            pyro.module(self._pname + ".decoder", self.decoder)
            if len(self.latent_dims) == 2:
                pyro.module(self._pname + ".prior_z1", self.prior_z1)
            if self.likelihood == "gaussian" and self.gaussian_scale != "network":
                pyro.param(self._pname + ".decoder_log_scale", self.decoder_log_scale)
        else:
            pyro.module(self._pname + ".encoder", self.encoder)
            if len(self.latent_dims) == 2:
                pyro.module(self._pname + ".encoder_top", self.encoder_top)

    @property
    def decoder_scale(self) -> torch.Tensor | None:
        """Learned Gaussian decoder scale :math:`s` (``None`` for Bernoulli or per-network)."""
        if self.likelihood != "gaussian" or self.gaussian_scale == "network":
            return None
        return torch.exp(self.decoder_log_scale)

    def _decode_input(self, z, y1h):
        return z if y1h is None else _cat(z, y1h)

    def _likelihood_dist(self, z, y1h=None):
        out = self.decoder(self._decode_input(z, y1h))
        if self.likelihood == "bernoulli":
            return dist.Bernoulli(logits=out, validate_args=False).to_event(1)
        if self.gaussian_scale == "network":
            loc, raw = out.split(self.n_features, dim=-1)
            scale = nn.functional.softplus(raw) + 1e-3
        else:
            loc = out
            scale = torch.exp(self.decoder_log_scale).expand_as(loc)
        return dist.Normal(loc, scale, validate_args=False).to_event(1)

    def _encode(self, x, y1h=None):
        inp = x if y1h is None else _cat(x, y1h)
        return self.encoder(inp)

    def _kl_scale(self):
        w = self.kl_weight
        return poutine.scale(scale=w) if w != 1.0 else _null()

    # ------------------------------------------------------------------ Pyro model / guide
    def _model_body(self, x, y1h, num_data):
        self._register("model")
        n = x.shape[0]
        with self._data_plate(x, num_data):
            top = self.latent_dims[-1]
            with self._kl_scale():
                z = pyro.sample(
                    f"z{len(self.latent_dims)}" if len(self.latent_dims) == 2 else "z",
                    dist.Normal(x.new_zeros(n, top), x.new_ones(n, top)).to_event(1),
                )
                if len(self.latent_dims) == 2:
                    loc, scale = self.prior_z1(z)
                    z = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
            pyro.sample("x", self._likelihood_dist(z, y1h), obs=x)

    def _sample_posterior(self, loc, scale):
        """The guide's latent sites: ``z`` (or ``z1`` and then ``z2 | z1``), KL-scaled."""
        with self._kl_scale():
            name = "z1" if len(self.latent_dims) == 2 else "z"
            z = pyro.sample(name, dist.Normal(loc, scale).to_event(1))
            if len(self.latent_dims) == 2:
                loc2, scale2 = self.encoder_top(z)
                pyro.sample("z2", dist.Normal(loc2, scale2).to_event(1))

    def _guide_body(self, x, y1h, num_data):
        self._register("guide")
        with self._data_plate(x, num_data):
            loc, scale = self._encode(x, y1h)
            self._sample_posterior(loc, scale)

    @pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        r"""Pyro model :math:`p(z) p_\theta(x\mid z)`; sites ``"z"`` (or ``"z2"``, ``"z1"``) and
        ``"x"`` inside the ``"data"`` plate (scaled to ``num_data`` for minibatches)."""
        self._model_body(x, None, num_data)

    @pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        r"""Pyro guide :math:`q_\phi(z\mid x)` (reparametrized Normal)."""
        self._guide_body(x, None, num_data)

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("svi",)

    def _make_loss(self, loss, num_particles, jit):
        if isinstance(loss, pyro.infer.ELBO):
            return loss
        check_choice(loss, "loss", LOSSES)
        if loss == "elbo":
            cls = pyro.infer.JitTrace_ELBO if jit else pyro.infer.Trace_ELBO
            return cls(num_particles=num_particles, vectorize_particles=num_particles > 1,
                       max_plate_nesting=1, **({"ignore_jit_warnings": True} if jit else {}))
        if loss == "analytic_kl":
            if len(self.latent_dims) == 2:
                raise ValueError(
                    "loss='analytic_kl' needs one stochastic layer (the KL of p(z1|z2) under a "
                    "guide q(z2|z1) has no closed form). Got latent_dims="
                    f"{list(self.latent_dims)} instead; use loss='elbo'."
                )
            cls = pyro.infer.JitTraceMeanField_ELBO if jit else pyro.infer.TraceMeanField_ELBO
            return cls(num_particles=num_particles, vectorize_particles=num_particles > 1,
                       max_plate_nesting=1, **({"ignore_jit_warnings": True} if jit else {}))
        if jit:
            raise ValueError("jit=True is available for loss='elbo' and 'analytic_kl' only.")
        return IWAE_ELBO(num_particles=num_particles, max_plate_nesting=1)

    def fit(
        self,
        x,
        *,
        method: str = "svi",
        loss="elbo",
        num_particles: int = 1,
        num_epochs: int = 10,
        batch_size: int = 100,
        lr: float = 1e-3,
        beta: float = 1.0,
        kl_warmup: float = 0.0,
        max_seconds: float | None = None,
        monitor_size: int = 1000,
        jit: bool = False,
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Train by SVI with Adam over shuffled minibatches, reporting each epoch.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
            Binary for ``likelihood="bernoulli"``.
        loss : {"elbo", "analytic_kl", "iwae"} or pyro.infer.ELBO
            ``Trace_ELBO``, ``TraceMeanField_ELBO`` (closed-form KL) or
            :class:`~pyrogen.infer.iwae.IWAE_ELBO`; or any Pyro ELBO instance.
        num_particles : int
            Particles of the loss (:math:`K` for ``"iwae"``).
        num_epochs : int
            Maximum passes over the data (each a fresh permutation, every row once).
        batch_size, lr
            Minibatch size and Adam learning rate.
        beta : float
            Final KL weight (1 = the ELBO / IWAE bound).
        kl_warmup : float
            Number of epochs of the linear warm-up of the KL weight from 0 to ``beta``
            (0 = none).
        max_seconds : float, optional
            Stop after the first epoch that ends past this wall-clock budget.
        monitor_size : int
            Size of the fixed training subset on which the per-epoch reconstruction term, KL
            term and active units are computed (one forward pass, no gradient).
        jit : bool
            Use ``JitTrace_ELBO`` / ``JitTraceMeanField_ELBO`` (``torch.jit.trace``; its
            deprecation warning in recent PyTorch is silenced inside ``fit``).
        tol : float or None
            Convergence test of the shared training loop
            (:meth:`~pyrogen.models.base.GenerativeModel._train`): the mean loss per window of
            whole epochs (at least 50 steps) must stop improving by more than ``tol``
            (relative); ``ConvergenceWarning`` when ``num_epochs`` (or ``max_seconds``) run out
            first; ``None`` runs exactly ``num_epochs`` epochs without the test.
        seed, progress, callback, data_info
            As in :meth:`GenerativeModel.fit` (``seed`` seeds the training; the initial
            weights come from the constructor's ``seed``); ``callback(epoch, metrics_dict)`` is
            called after each epoch.

        Returns
        -------
        FitHistory
            ``losses``: per step, the loss per example (negative ELBO / IWAE bound estimate,
            nats). ``metrics`` per epoch: ``train_loss`` (mean over the epoch's steps),
            ``reconstruction``, ``kl``, ``elbo`` (= reconstruction - KL on the monitoring
            subset, an ELBO estimate), ``active_units`` (and ``active_units_z2``),
            ``kl_weight``, ``seconds``.
        """
        return self._fit(
            x, None, method=method, loss=loss, num_particles=num_particles,
            num_epochs=num_epochs, batch_size=batch_size, lr=lr, beta=beta,
            kl_warmup=kl_warmup, max_seconds=max_seconds, monitor_size=monitor_size, jit=jit,
            tol=tol, seed=seed, progress=progress, callback=callback, data_info=data_info,
        )

    def _check_eval(self, x):
        x = self._check_x(x)
        if self.likelihood == "bernoulli":
            check_binary(x, "x")
        return x

    def _check_data_for_fit(self, x):
        x = self._check_x(x)
        if self.likelihood == "bernoulli":
            check_binary(x, "x")
        return x

    def _fit(self, x, y, *, method, loss, num_particles, num_epochs, batch_size, lr, beta,
             kl_warmup, max_seconds, monitor_size, jit, tol, seed, progress, callback,
             data_info):
        if method != "svi":
            raise ValueError(
                f"method must be one of {self.fit_methods()!r}. Got {method!r} instead."
            )
        x = self._check_data_for_fit(x)
        num_particles = check_int(num_particles, "num_particles", low=1)
        num_epochs = check_int(num_epochs, "num_epochs", low=1)
        batch_size = check_int(batch_size, "batch_size", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        beta = check_float(beta, "beta", 0.0, None, "cc")
        kl_warmup = check_float(kl_warmup, "kl_warmup", 0.0, None, "cc")
        monitor_size = check_int(monitor_size, "monitor_size", low=2)
        if max_seconds is not None:
            max_seconds = check_float(max_seconds, "max_seconds", 0.0, None, "oc")
        elbo = self._make_loss(loss, num_particles, jit)
        self._begin_fit(seed, data_info)
        n = x.shape[0]
        batch_size = min(batch_size, n)
        steps_per_epoch = math.ceil(n / batch_size)
        warmup_steps = kl_warmup * steps_per_epoch
        guide = self.guide
        if isinstance(elbo, pyro.infer.TraceEnum_ELBO):  # sum discrete guide sites (labels) out
            guide = pyro.infer.config_enumerate(guide, "parallel")
        svi = pyro.infer.SVI(self.model, guide, pyro.optim.Adam({"lr": lr}), elbo)
        mon_idx = torch.randperm(n, device=x.device)[: min(n, monitor_size)]
        history = FitHistory(
            method="svi",
            info={
                "loss": type(elbo).__name__,
                "num_particles": num_particles,
                "batch_size": batch_size,
                "lr": lr,
                "beta": beta,
                "kl_warmup_epochs": kl_warmup,
            },
        )
        t0 = time.perf_counter()

        def step(i, idx):
            self.kl_weight = beta if warmup_steps <= 0 else beta * min(1.0, (i + 1) / warmup_steps)
            args = (x,) if idx is None else (x[idx],)
            if y is not None:
                args += (y if idx is None else y[idx],)
            with warnings.catch_warnings():
                if jit:  # Pyro's JIT losses use torch.jit.trace, deprecated in torch 2.9+
                    warnings.filterwarnings(
                        "ignore", message=".*torch.jit.trace.*", category=DeprecationWarning
                    )
                return svi.step(*args, num_data=n) / n

        def on_epoch(epoch):
            mon = self._monitor(x[mon_idx], None if y is None else y[mon_idx])
            mon["train_loss"] = sum(history.losses[-steps_per_epoch:]) / steps_per_epoch
            mon["kl_weight"] = self.kl_weight
            mon["seconds"] = time.perf_counter() - t0
            history.log(**mon)
            if callback is not None:
                callback(epoch, mon)
            return {"loss": f"{mon['train_loss']:.2f}", "rec": f"{mon['reconstruction']:.2f}",
                    "kl": f"{mon['kl']:.2f}", "au": mon["active_units"]}

        try:
            self._train(step, history, n=n, batch_size=batch_size, num_epochs=num_epochs, lr=lr,
                        tol=tol, max_seconds=max_seconds, progress=progress, on_epoch=on_epoch,
                        device=x.device)
        finally:
            self.kl_weight = 1.0
        history.info["num_epochs"] = len(history.metrics.get("train_loss", []))
        history.info["num_steps"] = len(history.losses)
        return history

    @torch.no_grad()
    def _monitor(self, x, y=None) -> dict:
        """Reconstruction term, KL term (one sample; closed form for one layer), active units."""
        y1h = self._one_hot(y) if y is not None else None
        loc, scale = self._encode(x, y1h)
        out = {"active_units": active_units(loc)}
        z1 = loc + scale * torch.randn_like(loc)
        rec = self._likelihood_dist(z1, y1h).log_prob(x)
        if len(self.latent_dims) == 1:
            kl = torch.distributions.kl_divergence(
                dist.Normal(loc, scale).to_event(1),
                dist.Normal(torch.zeros_like(loc), torch.ones_like(loc)).to_event(1),
            )
        else:
            loc2, scale2 = self.encoder_top(z1)
            z2 = loc2 + scale2 * torch.randn_like(loc2)
            pl, ps = self.prior_z1(z2)
            kl = (
                dist.Normal(loc, scale).log_prob(z1).sum(-1)
                + dist.Normal(loc2, scale2).log_prob(z2).sum(-1)
                - dist.Normal(pl, ps).log_prob(z1).sum(-1)
                - dist.Normal(0.0, 1.0).log_prob(z2).sum(-1)
            )
            out["active_units_z2"] = active_units(self.encoder_top(loc)[0])
        out["reconstruction"] = float(rec.mean())
        out["kl"] = float(kl.mean())
        out["elbo"] = out["reconstruction"] - out["kl"]
        return out

    def _one_hot(self, y):  # pragma: no cover - overridden by ConditionalVAE
        raise NotImplementedError

    # ------------------------------------------------------------------ evaluation
    def log_likelihood(
        self,
        x,
        num_particles: int = 1000,
        batch_size: int = 100,
        chunk: int = 100,
    ) -> LogLikelihood:
        r"""Importance-sampled :math:`\log p(x)` per example (kind ``"is_estimate"``).

        :math:`\log\frac1K\sum_k p(x, z_k)/q(z_k\mid x)` with the encoder as proposal; a
        stochastic lower bound on :math:`\log p(x)` converging as :math:`K` grows, with
        delta-method standard errors. See
        :func:`~pyrogen.infer.importance.importance_log_likelihood` (batched over examples,
        chunked over particles: memory independent of :math:`K`).
        """
        x = self._check_eval(x)
        return self._is(x, None, num_particles, batch_size, chunk)

    def _is(self, x, y, num_particles, batch_size, chunk):
        data = (x,) if y is None else (x, y)
        ll = importance_log_likelihood(
            self.model, self.guide, data, num_particles=num_particles,
            batch_size=batch_size, chunk=chunk, max_plate_nesting=1,
        )
        info = {**ll.info, "model": type(self).__name__}
        return LogLikelihood(ll.values, ll.kind, ll.stderr, info=info)

    @torch.no_grad()
    def _bound_samples(self, x, y, num_particles, batch_size):
        """Yield ``(K, b)`` log-weights per batch (no gradient)."""
        n = x.shape[0]
        for s in range(0, n, batch_size):
            args = (x[s : s + batch_size],) if y is None else (x[s : s + batch_size],
                                                              y[s : s + batch_size])
            yield log_importance_weights(
                self.model, self.guide, *args, num_particles=num_particles, max_plate_nesting=1
            ).double()

    def elbo(self, x, num_particles: int = 100, batch_size: int = 100) -> LogLikelihood:
        r"""Per-example ELBO :math:`\mathbb E_q[\log p(x,z) - \log q(z\mid x)]` (kind ``"elbo"``).

        Monte Carlo mean of ``num_particles`` log-weights, standard error
        :math:`\hat\sigma/\sqrt K`. A lower bound on :math:`\log p(x)`, not a likelihood.
        """
        x = self._check_x(x)
        return self._elbo(x, None, num_particles, batch_size)

    def _elbo(self, x, y, num_particles, batch_size):
        num_particles = check_int(num_particles, "num_particles", low=2)
        batch_size = check_int(batch_size, "batch_size", low=1)
        vals, ses = [], []
        for lw in self._bound_samples(x, y, num_particles, batch_size):
            vals.append(lw.mean(0))
            ses.append(lw.std(0) / math.sqrt(num_particles))
        return LogLikelihood(
            torch.cat(vals), "elbo", torch.cat(ses), info={"num_particles": num_particles}
        )

    def iwae_bound(
        self, x, num_particles: int = 50, num_repeats: int = 10, batch_size: int = 100
    ) -> LogLikelihood:
        r"""Per-example IWAE bound :math:`\mathcal L_K` (kind ``"iwae_bound"``).

        Mean over ``num_repeats`` independent draws of :math:`\log\frac1K\sum_k w_k`;
        standard error from their spread. Cost: ``num_repeats * K`` decoder passes per example.
        """
        x = self._check_x(x)
        return self._iwae(x, None, num_particles, num_repeats, batch_size)

    def _iwae(self, x, y, num_particles, num_repeats, batch_size):
        num_particles = check_int(num_particles, "num_particles", low=1)
        num_repeats = check_int(num_repeats, "num_repeats", low=2)
        batch_size = check_int(batch_size, "batch_size", low=1)
        draws = []
        for _ in range(num_repeats):
            per = [
                log_mean_exp(lw, 0).value
                for lw in self._bound_samples(x, y, num_particles, batch_size)
            ]
            draws.append(torch.cat(per))
        d = torch.stack(draws)
        return LogLikelihood(
            d.mean(0),
            "iwae_bound",
            d.std(0) / math.sqrt(num_repeats),
            info={"num_particles": num_particles, "num_repeats": num_repeats},
        )

    def amortization_gap(self, x, **kwargs):
        """Refine the encoder's q per example and measure the amortization gap.

        Thin wrapper over :func:`pyrogen.infer.refine.amortization_gap` (``kwargs`` are its
        settings: ``num_steps``, ``lr``, ``num_particles``, ``batch_size``, ...).
        """
        from ..infer.refine import amortization_gap

        x = self._check_eval(x)
        return amortization_gap(self.model, self.guide, x, **kwargs)

    # ------------------------------------------------------------------ sampling / encoding
    @torch.no_grad()
    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        r"""Decoder mean :math:`\mathbb E[x\mid z]` (Bernoulli probabilities or Gaussian means)
        for latent codes ``z`` of shape ``(n, d_1)`` (the layer next to :math:`x`)."""
        y1h = None if y is None else self._one_hot(y)
        d = self._likelihood_dist(z.to(self.dtype), y1h).base_dist
        return d.probs if self.likelihood == "bernoulli" else d.loc

    @torch.no_grad()
    def _sample_z1(self, n):
        top = self.latent_dims[-1]
        z = torch.randn(n, top, dtype=self.dtype, device=self.device)
        if len(self.latent_dims) == 2:
            loc, scale = self.prior_z1(z)
            z = loc + scale * torch.randn_like(loc)
        return z

    @torch.no_grad()
    def sample(self, n: int, mean: bool = False) -> torch.Tensor:
        """Draw ``n`` examples :math:`x \\sim p(x)` (``mean=True``: decoder means instead)."""
        n = self._check_n(n)
        return self._sample(n, None, mean)

    def _sample(self, n, y1h, mean):
        z = self._sample_z1(n)
        d = self._likelihood_dist(z, y1h)
        if mean:
            base = d.base_dist
            return base.probs if self.likelihood == "bernoulli" else base.loc
        return d.sample()

    @torch.no_grad()
    def transform(self, x) -> torch.Tensor:
        r"""Encoder mean :math:`\mu_\phi(x)` of the first latent layer, shape ``(n, d_1)``."""
        x = self._check_x(x)
        return self._encode(x)[0]

    @torch.no_grad()
    def reconstruct(self, x) -> torch.Tensor:
        """Decoder mean at the encoder mean: :math:`\\mathbb E[x \\mid z=\\mu_\\phi(x)]`."""
        x = self._check_x(x)
        return self.decode(self._encode(x)[0])

    @torch.no_grad()
    def latent_grid(self, n_per_side: int = 15, y=None) -> torch.Tensor:
        r"""Decoder means on a grid of Gaussian quantiles of a 2-D latent (the learned manifold,
        book §20.10.3), shape ``(n_per_side**2, n_features)``, row-major."""
        n_per_side = check_int(n_per_side, "n_per_side", low=2)
        if self.latent_dims[0] != 2:
            raise ValueError(
                "latent_grid needs a 2-D latent next to x (latent_dims[0] == 2). Got "
                f"latent_dims={list(self.latent_dims)} instead."
            )
        p = torch.linspace(0.5 / n_per_side, 1 - 0.5 / n_per_side, n_per_side,
                           dtype=torch.float64)
        q = dist.Normal(0.0, 1.0).icdf(p).to(self.dtype)
        zz = torch.stack(torch.meshgrid(q.flip(0), q, indexing="ij"), -1).reshape(-1, 2)
        zz = zz[:, [1, 0]]
        if y is not None:
            y = torch.full((zz.shape[0],), int(y), dtype=torch.long)
        return self.decode(zz, y)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _CondBody(nn.Module):
    """Conv features, concatenated with the condition, then an MLP."""

    def __init__(self, body, in_features, cond, hidden, activation):
        super().__init__()
        self.body = body
        self.cond = cond
        self.mlp = _mlp([in_features + cond, *hidden], activation, final_activation=True)
        self.out_features = hidden[-1] if hidden else in_features + cond

    def forward(self, inp):
        if self.cond:
            x, y1h = inp[..., : -self.cond], inp[..., -self.cond :]
            return self.mlp(_cat(self.body(x), y1h))
        return self.mlp(self.body(inp))


class _CondDecoder(nn.Module):
    """MLP from ``[z, y]`` (hidden sizes reversed) feeding the transposed-conv generator."""

    def __init__(self, generator, in_features, hidden, activation):
        super().__init__()
        self.mlp = _mlp([in_features, *hidden[::-1]], activation, final_activation=True)
        self.generator = generator

    def forward(self, h):
        return self.generator(self.mlp(h))


@register_model("cvae")
class ConditionalVAE(VAE):
    r"""Conditional VAE [4]: :math:`p(z) p_\theta(x \mid z, y)`, guide :math:`q_\phi(z\mid x, y)`.

    The label :math:`y \in \{0..C-1\}` enters encoder and decoder as a one-hot vector. When
    ``y`` is not given, it is a latent variable with a uniform prior and the guide adds a
    classifier :math:`q_\phi(y \mid x)` (the M2 model of Kingma et al. 2014, without its extra
    classification loss), enumerated in parallel by ``TraceEnum_ELBO`` in ``fit``.

    Parameters
    ----------
    n_features : int
    n_classes : int
        :math:`C \ge 2`.
    **kwargs
        As :class:`VAE`.

    Notes
    -----
    ``log_likelihood(x, y)`` estimates :math:`\log p(x, y) = \log p(x\mid y) - \log C` (the
    model observes ``y`` under its uniform prior); ``log_likelihood(x)`` estimates
    :math:`\log p(x) = \log \frac1C\sum_c p(x \mid c)` with an exact sum over classes and an
    importance-sampled :math:`p(x\mid c)` (cost :math:`C` times).
    """

    def __init__(self, n_features: int, n_classes: int = 10, **kwargs):
        n_classes = check_int(n_classes, "n_classes", low=2)
        super().__init__(n_features, n_classes=n_classes, **kwargs)
        self.n_classes = n_classes
        hidden = self.config["hidden_dims"]
        act = self.config["activation"]
        self.classifier = _mlp(
            [n_features, *hidden, n_classes], act, final_activation=False
        )

    def _cond_features(self, extra: dict) -> int:
        return int(extra["n_classes"])

    def _register(self, which: str):
        super()._register(which)
        if which == "guide":
            pyro.module(self._pname + ".classifier", self.classifier)

    def _one_hot(self, y):
        return nn.functional.one_hot(y, self.n_classes).to(self.dtype)

    def _check_y(self, y, n) -> torch.Tensor:
        return check_labels(y, n, self.n_classes)

    @pyro_method
    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, num_data: int | None = None):
        r"""Pyro model :math:`p(y) p(z) p_\theta(x\mid z,y)`; ``y`` observed when given."""
        self._register("model")
        n = x.shape[0]
        with self._data_plate(x, num_data):
            prior = dist.Categorical(logits=x.new_zeros(n, self.n_classes))
            yy = pyro.sample("y", prior, obs=y)
            y1h = self._one_hot(yy)
            top = self.latent_dims[-1]
            with self._kl_scale():
                z = pyro.sample(
                    "z2" if len(self.latent_dims) == 2 else "z",
                    dist.Normal(x.new_zeros(n, top), x.new_ones(n, top)).to_event(1),
                )
                if len(self.latent_dims) == 2:
                    loc, scale = self.prior_z1(z)
                    z = pyro.sample("z1", dist.Normal(loc, scale).to_event(1))
            pyro.sample("x", self._likelihood_dist(z, y1h), obs=x)

    @pyro_method
    def guide(self, x: torch.Tensor, y: torch.Tensor | None = None, num_data: int | None = None):
        r"""Pyro guide :math:`[q_\phi(y\mid x)]\, q_\phi(z\mid x, y)`."""
        self._register("guide")
        with self._data_plate(x, num_data):
            if y is None:
                y = pyro.sample("y", dist.Categorical(logits=self.classifier(x)))
            y1h = self._one_hot(y)
            loc, scale = self._encode(x, y1h)
            self._sample_posterior(loc, scale)

    def fit(self, x, y=None, *, loss="elbo", **kwargs) -> FitHistory:
        """As :meth:`VAE.fit`, with labels ``y`` (int tensor, shape ``(n,)``).

        Without ``y``, the labels are latent: ``TraceEnum_ELBO`` sums over them exactly in the
        guide (``loss`` must then be ``"elbo"``).
        """
        if y is not None:
            y = self._check_y(y, x.shape[0] if hasattr(x, "shape") else -1)
        elif loss == "elbo":
            loss = pyro.infer.TraceEnum_ELBO(max_plate_nesting=1)
        else:
            raise ValueError(
                f"loss must be 'elbo' when y is not given (labels summed out by enumeration). "
                f"Got {loss!r} instead."
            )
        kwargs.setdefault("method", "svi")
        defaults = dict(num_particles=1, num_epochs=10, batch_size=100, lr=1e-3, beta=1.0,
                        kl_warmup=0.0, max_seconds=None, monitor_size=1000, jit=False,
                        tol=DEFAULT_TOL, seed=None, progress=True, callback=None,
                        data_info=None)
        unknown = set(kwargs) - set(defaults) - {"method"}
        if unknown:
            raise TypeError(f"fit got unexpected keyword argument(s) {sorted(unknown)}")
        defaults.update(kwargs)
        return self._fit(x, y, loss=loss, **defaults)

    @torch.no_grad()
    def _monitor(self, x, y=None) -> dict:
        if y is None:
            y = self.classifier(x).argmax(-1)
        return super()._monitor(x, y)

    def log_likelihood(self, x, y=None, num_particles: int = 1000, batch_size: int = 100,
                       chunk: int = 100) -> LogLikelihood:
        r"""IS estimate of :math:`\log p(x, y)` (the model observes ``y`` under its uniform
        prior, so this is :math:`\log p(x\mid y) - \log C`), or of :math:`\log p(x) = \log
        \sum_c p(x, c)` when ``y`` is None (exact sum over the :math:`C` classes of IS
        estimates of :math:`p(x, c)`; the standard error combines the per-class ones by the
        delta method)."""
        x = self._check_x(x)
        if y is not None:
            return self._is(x, self._check_y(y, x.shape[0]), num_particles, batch_size, chunk)
        parts = []
        for c in range(self.n_classes):
            yc = torch.full((x.shape[0],), c, dtype=torch.long, device=x.device)
            parts.append(self._is(x, yc, num_particles, batch_size, chunk))
        lv = torch.stack([p.values for p in parts])  # (C, n) log p(x, c): p(c) = 1/C included
        se = torch.stack([p.stderr for p in parts])
        logp = torch.logsumexp(lv, 0)
        # var(p_hat) = sum_c p_c^2 se_c^2  ->  se(log p_hat) = sqrt(var) / p_hat
        w = torch.exp(lv - logp)
        stderr = torch.sqrt((w**2 * se**2).sum(0))
        info = {**parts[0].info, "classes_summed": self.n_classes}
        return LogLikelihood(logp, "is_estimate", stderr, info=info)

    def elbo(self, x, y=None, num_particles: int = 100, batch_size: int = 100):
        """Per-example ELBO; ``y`` is required (the bound of :math:`\\log p(x\\mid y)`)."""
        x = self._check_x(x)
        if y is None:
            raise ValueError("y must be given for ConditionalVAE.elbo. Got None instead.")
        return self._elbo(x, self._check_y(y, x.shape[0]), num_particles, batch_size)

    def iwae_bound(self, x, y=None, num_particles: int = 50, num_repeats: int = 10,
                   batch_size: int = 100):
        """Per-example IWAE bound on :math:`\\log p(x\\mid y)`; ``y`` is required."""
        x = self._check_x(x)
        if y is None:
            raise ValueError("y must be given for ConditionalVAE.iwae_bound. Got None instead.")
        return self._iwae(x, self._check_y(y, x.shape[0]), num_particles, num_repeats,
                          batch_size)

    @torch.no_grad()
    def sample(self, n: int, y=None, mean: bool = False) -> torch.Tensor:
        """Draw ``n`` examples; labels ``y`` (shape ``(n,)``) or uniform random labels."""
        n = self._check_n(n)
        if y is None:
            y = torch.randint(0, self.n_classes, (n,), device=self.device)
        y = self._check_y(y, n)
        return self._sample(n, self._one_hot(y), mean)

    @torch.no_grad()
    def transform(self, x, y=None) -> torch.Tensor:
        """Encoder mean of :math:`q(z_1 \\mid x, y)`; ``y`` defaults to the classifier's guess."""
        x = self._check_x(x)
        y = self.classifier(x).argmax(-1) if y is None else self._check_y(y, x.shape[0])
        return self._encode(x, self._one_hot(y))[0]

    @torch.no_grad()
    def reconstruct(self, x, y=None) -> torch.Tensor:
        """Decoder mean at the encoder mean, given (or guessed) labels."""
        x = self._check_x(x)
        y = self.classifier(x).argmax(-1) if y is None else self._check_y(y, x.shape[0])
        return self.decode(self._encode(x, self._one_hot(y))[0], y)
