r"""Implicit generators as Pyro models: GANs, WGAN(-GP), GMMNs (book §20.10.2-20.10.6).

The generator network :math:`G` maps a latent :math:`z \sim \mathcal N(0, I_d)` (and, for a
conditional generator, a class label :math:`y`) to a sample :math:`x = G(z[, y])`. As a Pyro
program (:meth:`GAN.model`)::

    with pyro.plate("data", n):
        z = pyro.sample("z", Normal(0, 1).expand([n, d]).to_event(1))
        pyro.sample("x", Obs(G(z)), obs=x)

where ``Obs`` is the observation model: ``Delta`` (``observation=None``, the pure implicit
model: :math:`x = G(z)` exactly, no density), ``Normal(G(z), sigma)`` (``"gaussian"``) or
``Bernoulli(logits=G(z))`` (``"bernoulli"``). ``pyro.infer.Predictive(model.model,
num_samples=...)`` draws from it. The observation model exists for likelihood evaluation:
:math:`p(x) = \int p(z)\,p(x\mid G(z))\,dz` is then a decoder model like a VAE's, estimated by
annealed importance sampling from the prior to the posterior (kind ``"ais_marginal"``, a
stochastic lower bound; Wu et al. 2017 [5]); a GAN's generator and a VAE's decoder are scored
the same way. Training never uses that density: :meth:`GAN.fit` plays the adversarial game of
:class:`pyrogen.infer.adversarial.AdversarialTrainer` (the generated value is the mean
:math:`G(z)`, or :math:`\sigma(G(z))` for Bernoulli), or matches moments
(:class:`~pyrogen.infer.adversarial.MomentMatching`, a GMMN).

Networks (:func:`make_generator`, :func:`make_discriminator`): MLPs, or DCGAN-style
convolutional ones [2] for images: a linear layer to a :math:`C\times H/2^L\times W/2^L` map
and :math:`L` transposed convolutions (kernel 4, stride 2, padding 1: each doubles the size --
the learned "un-pooling" of book §20.10.6) for 8x8 and 28x28 images; the discriminator mirrors
it with strided convolutions and leaky ReLUs (no batch normalization: WGAN-GP's penalty is
per example [4]).

References
----------
1. I. Goodfellow et al. *Generative adversarial nets*. NeurIPS 2014.
2. A. Radford, L. Metz, S. Chintala. *Unsupervised representation learning with deep
   convolutional GANs*. ICLR 2016.
3. M. Mirza, S. Osindero. *Conditional generative adversarial nets*. arXiv:1411.1784, 2014.
4. I. Gulrajani et al. *Improved training of Wasserstein GANs*. NeurIPS 2017.
5. Y. Wu, Y. Burda, R. Salakhutdinov, R. Grosse. *On the quantitative analysis of decoder-based
   generative models*. ICLR 2017.
6. I. Goodfellow, Y. Bengio, A. Courville. *Deep Learning*, MIT Press 2016, §20.10.2-20.10.6.
"""

from __future__ import annotations

import math
import time

import pyro
import pyro.distributions as dist
import pyro.optim
import torch
from pyro.nn import pyro_method
from torch import nn

from .._validation import check_binary, check_choice, check_float, check_int, check_labels
from ..evaluation import LogLikelihood
from ..infer.adversarial import ADVERSARIAL_LOSSES, AdversarialTrainer, MomentMatching
from ..infer.annealing.decoder import ais_log_likelihood
from ..infer.optim import JointOptim
from .base import FitHistory, GenerativeModel, register_model

__all__ = ["GAN", "make_generator", "make_discriminator", "OBSERVATIONS", "ARCHITECTURES"]

OBSERVATIONS = (None, "gaussian", "bernoulli")
ARCHITECTURES = ("mlp", "conv")
OUTPUTS = ("identity", "sigmoid", "tanh")
_OUT = {"identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def _one_hot(y, n_classes, like):
    return nn.functional.one_hot(y.long(), n_classes).to(like.dtype)


def _with_label(h, y, n_classes):
    """Concatenate the one-hot label to ``h`` along the last dim, broadcasting leading dims
    (AIS runs the model with a chain dimension in front of the batch)."""
    y1h = _one_hot(y, n_classes, h)
    shape = torch.broadcast_shapes(h.shape[:-1], y1h.shape[:-1])
    return torch.cat([h.expand(*shape, h.shape[-1]), y1h.expand(*shape, n_classes)], -1)


class _MLPGenerator(nn.Module):
    def __init__(self, latent_dim, n_features, hidden, n_classes):
        super().__init__()
        sizes = [latent_dim + n_classes, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], n_features))
        self.net = nn.Sequential(*layers)
        self.n_classes = n_classes

    def forward(self, z, y=None):
        if self.n_classes:
            z = _with_label(z, y, self.n_classes)
        return self.net(z)


class _ConvGenerator(nn.Module):
    """Linear -> (C_L, H/2^L, W/2^L) map -> L transposed convolutions (each doubles H, W)."""

    def __init__(self, latent_dim, image_shape, channels, n_classes):
        super().__init__()
        f = 2 ** len(channels)
        self.image_shape = tuple(image_shape)
        self.start = (channels[-1], image_shape[0] // f, image_shape[1] // f)
        self.fc = nn.Sequential(nn.Linear(latent_dim + n_classes, math.prod(self.start)),
                                nn.ReLU())
        rev = list(channels[::-1])
        layers: list[nn.Module] = []
        for i, c in enumerate(rev):
            last = i == len(rev) - 1
            layers.append(nn.ConvTranspose2d(c, 1 if last else rev[i + 1], 4, 2, 1))
            if not last:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)
        self.n_classes = n_classes

    def forward(self, z, y=None):
        if self.n_classes:
            z = _with_label(z, y, self.n_classes)
        lead = z.shape[:-1]
        out = self.net(self.fc(z).reshape(-1, *self.start))
        return out.reshape(*lead, self.image_shape[0] * self.image_shape[1])


class _MLPDiscriminator(nn.Module):
    def __init__(self, n_features, hidden, n_classes):
        super().__init__()
        sizes = [n_features + n_classes, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(sizes[-1], 1))
        self.net = nn.Sequential(*layers)
        self.n_classes = n_classes

    def forward(self, x, y=None):
        if self.n_classes:
            x = _with_label(x, y, self.n_classes)
        return self.net(x).squeeze(-1)


class _ConvDiscriminator(nn.Module):
    def __init__(self, image_shape, channels, n_classes):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        c_in = 1
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), nn.LeakyReLU(0.2)]
            c_in = c
        self.net = nn.Sequential(*layers)
        f = 2 ** len(channels)
        feats = c_in * (image_shape[0] // f) * (image_shape[1] // f)
        self.head = nn.Linear(feats + n_classes, 1)
        self.n_classes = n_classes

    def forward(self, x, y=None):
        b = x.shape[0]
        h = self.net(x.reshape(b, 1, *self.image_shape)).reshape(b, -1)
        if self.n_classes:
            h = _with_label(h, y, self.n_classes)
        return self.head(h).squeeze(-1)


def _check_conv(image_shape, n_features, channels):
    if image_shape is None:
        raise ValueError("image_shape must be (H, W) for architecture='conv'. Got None.")
    f = 2 ** len(channels)
    if (
        not isinstance(image_shape, (tuple, list))
        or len(image_shape) != 2
        or image_shape[0] * image_shape[1] != n_features
        or image_shape[0] % f
        or image_shape[1] % f
    ):
        raise ValueError(
            f"image_shape must be (H, W) with H*W == n_features ({n_features}) and H, W "
            f"divisible by 2**len(conv_channels) = {f}. Got {image_shape!r} instead."
        )


def make_generator(latent_dim: int, n_features: int, architecture: str = "mlp",
                   hidden_dims=(128, 128), image_shape=None, conv_channels=(64, 32),
                   n_classes: int = 0) -> nn.Module:
    r"""Generator network ``G(z[, y]) -> (B, n_features)`` (pre-activation output).

    ``"mlp"``: ReLU layers ``hidden_dims``; ``"conv"``: DCGAN-style [2] transposed convolutions
    with ``conv_channels`` (listed from the image side: ``(64, 32)`` on 28x28 goes
    ``32x7x7 -> 64x14x14 -> 1x28x28``). ``n_classes > 0``: the one-hot label is concatenated
    to ``z`` [3].
    """
    check_choice(architecture, "architecture", ARCHITECTURES)
    if architecture == "conv":
        _check_conv(image_shape, n_features, conv_channels)
        return _ConvGenerator(latent_dim, image_shape, conv_channels, n_classes)
    return _MLPGenerator(latent_dim, n_features, hidden_dims, n_classes)


def make_discriminator(n_features: int, architecture: str = "mlp", hidden_dims=(128, 128),
                       image_shape=None, conv_channels=(64, 32),
                       n_classes: int = 0) -> nn.Module:
    r"""Discriminator (or critic) ``D(x[, y]) -> (B,)`` logits: leaky-ReLU MLP, or strided
    convolutions mirroring :func:`make_generator`; the one-hot label joins the last layer."""
    check_choice(architecture, "architecture", ARCHITECTURES)
    if architecture == "conv":
        _check_conv(image_shape, n_features, conv_channels)
        return _ConvDiscriminator(image_shape, conv_channels, n_classes)
    return _MLPDiscriminator(n_features, hidden_dims, n_classes)


def _sizes(value, name, low_len=0):
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or len(value) < low_len:
        raise TypeError(
            f"{name} must be a tuple of at least {low_len} positive int(s). Got {value!r} "
            "instead."
        )
    return tuple(check_int(v, name, low=1) for v in value)


@register_model("gan")
class GAN(GenerativeModel):
    r"""A generator :math:`x = G(z[, y])`, :math:`z\sim\mathcal N(0, I)`, and its discriminator.

    Parameters
    ----------
    n_features : int
        Data dimension :math:`D` (:math:`H W` for images).
    latent_dim : int
        :math:`d`.
    hidden_dims : tuple of int
        Hidden sizes of the MLP generator (the discriminator uses ``disc_hidden_dims``).
    disc_hidden_dims : tuple of int, optional
        Default ``hidden_dims``.
    architecture : {"mlp", "conv"}
        ``"conv"``: DCGAN-style networks for images (``image_shape``).
    image_shape : (H, W), optional
    conv_channels : tuple of int
    output : {"identity", "sigmoid", "tanh"}
        Squashing of the generated mean: ``"sigmoid"`` for pixel intensities in [0, 1]
        (required by ``observation="bernoulli"``, whose logits are the network output).
    observation : {None, "gaussian", "bernoulli"}
        Observation model of the ``"x"`` site: ``None`` = ``Delta`` (no density:
        ``log_likelihood`` and ``transform`` are then unavailable), ``Normal(mean, obs_scale)``,
        or ``Bernoulli(logits)`` (binary data).
    obs_scale : float
        :math:`\sigma` of the Gaussian observation model.
    n_classes : int
        ``0``: unconditional; ``C >= 2``: a conditional GAN [3], label site ``"y"``.
    loss : str
        Default adversarial loss of :meth:`fit` (see
        :data:`~pyrogen.infer.adversarial.ADVERSARIAL_LOSSES`).
    ais_num_chains, ais_num_betas, ais_num_leapfrog : int
        Defaults of :meth:`log_likelihood` (AIS chains per example, temperatures, HMC
        leapfrog steps). Cost per example: ``ais_num_chains * ais_num_betas *
        (ais_num_leapfrog + 1)`` generator passes.
    seed : int or None
        Seeds the initial weights (see :class:`~pyrogen.models.base.GenerativeModel`).

    Notes
    -----
    ``guide`` is the prior (a GAN has no inference network): it exists so that ``SVI`` and
    ``Predictive`` accept the pair; with it ``Trace_ELBO`` is the prior-sampling bound
    :math:`\mathbb E_{p(z)}\log p(x\mid z)`, a valid but very loose lower bound.
    """

    log_likelihood_kind = "ais_marginal"

    def __init__(
        self,
        n_features: int,
        latent_dim: int = 8,
        hidden_dims=(128, 128),
        disc_hidden_dims=None,
        architecture: str = "mlp",
        image_shape=None,
        conv_channels=(64, 32),
        output: str = "identity",
        observation: str | None = None,
        obs_scale: float = 0.1,
        n_classes: int = 0,
        loss: str = "non_saturating",
        ais_num_chains: int = 8,
        ais_num_betas: int = 200,
        ais_num_leapfrog: int = 10,
        seed: int | None = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        latent_dim = check_int(latent_dim, "latent_dim", low=1)
        hidden = _sizes(hidden_dims, "hidden_dims")
        disc_hidden = hidden if disc_hidden_dims is None else _sizes(disc_hidden_dims,
                                                                      "disc_hidden_dims")
        channels = _sizes(conv_channels, "conv_channels", low_len=1)
        check_choice(architecture, "architecture", ARCHITECTURES)
        check_choice(output, "output", OUTPUTS)
        check_choice(observation, "observation", OBSERVATIONS)
        if observation == "bernoulli" and output != "sigmoid":
            raise ValueError(
                "output must be 'sigmoid' for observation='bernoulli' (the network output is "
                f"the Bernoulli logit). Got output={output!r} instead."
            )
        obs_scale = check_float(obs_scale, "obs_scale", 0.0, None, "oo")
        n_classes = check_int(n_classes, "n_classes", low=0)
        if n_classes == 1:
            raise ValueError("n_classes must be 0 (unconditional) or >= 2. Got 1 instead.")
        check_choice(loss, "loss", ADVERSARIAL_LOSSES)
        if image_shape is not None:
            image_shape = list(_sizes(image_shape, "image_shape", low_len=2))
        super().__init__(
            n_features=n_features, latent_dim=latent_dim, hidden_dims=list(hidden),
            disc_hidden_dims=list(disc_hidden), architecture=architecture,
            image_shape=image_shape, conv_channels=list(channels), output=output,
            observation=observation, obs_scale=obs_scale, n_classes=n_classes, loss=loss,
            ais_num_chains=check_int(ais_num_chains, "ais_num_chains", low=1),
            ais_num_betas=check_int(ais_num_betas, "ais_num_betas", low=2),
            ais_num_leapfrog=check_int(ais_num_leapfrog, "ais_num_leapfrog", low=1),
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        self.latent_dim = latent_dim
        self.observation = observation
        self.obs_scale = obs_scale
        self.n_classes = n_classes
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.generator = make_generator(latent_dim, n_features, architecture, hidden,
                                        image_shape, channels, n_classes)
        self.discriminator = make_discriminator(n_features, architecture, disc_hidden,
                                                image_shape, channels, n_classes)
        self._pname = self._pyro_name
        self._out = _OUT[output]()

    # ------------------------------------------------------------------ the Pyro program
    def _obs_dist(self, out):
        if self.observation == "bernoulli":
            return dist.Bernoulli(logits=out, validate_args=False).to_event(1)
        mean = self._out(out)
        if self.observation == "gaussian":
            return dist.Normal(mean, torch.full_like(mean, self.obs_scale)).to_event(1)
        return dist.Delta(mean, event_dim=1)

    def _check_labels(self, y, n):
        if y is None:
            return None
        if not self.n_classes:
            raise ValueError("y must be None for an unconditional GAN (n_classes=0). Got labels.")
        return check_labels(y, n, self.n_classes)

    def _size(self, x, n):
        if x is not None:
            return x.shape[0]
        if n is None:
            raise ValueError("n must be given when x is None (the number of draws).")
        return check_int(n, "n", low=1)

    @pyro_method
    def model(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              num_data: int | None = None, n: int | None = None):
        r"""Pyro model :math:`z \sim \mathcal N(0, I)`, [``y ~ Uniform{0..C-1}``],
        ``x ~ Obs(G(z[, y]))``; sites ``"z"``, [``"y"``], ``"x"`` in the ``"data"`` plate.
        ``x=None`` draws ``n`` examples (``Predictive``)."""
        pyro.module(self._pname + ".generator", self.generator)
        b = self._size(x, n)
        like = torch.zeros((), dtype=self.dtype, device=self.device)
        with pyro.plate("data", b if num_data is None else num_data,
                        subsample=torch.arange(b, device=self.device)):
            z = pyro.sample("z", dist.Normal(like.expand(b, self.latent_dim),
                                             like.new_ones(()).expand(b, self.latent_dim))
                            .to_event(1))
            labels = None
            if self.n_classes:
                labels = pyro.sample("y", dist.Categorical(
                    logits=like.expand(b, self.n_classes)), obs=y)
            return pyro.sample("x", self._obs_dist(self.generator(z, labels)), obs=x)

    @pyro_method
    def guide(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              num_data: int | None = None, n: int | None = None):
        """The prior as guide (see the class notes): ``z`` (and ``y`` when not observed)."""
        b = self._size(x, n)
        like = torch.zeros((), dtype=self.dtype, device=self.device)
        with pyro.plate("data", b if num_data is None else num_data,
                        subsample=torch.arange(b, device=self.device)):
            pyro.sample("z", dist.Normal(like.expand(b, self.latent_dim),
                                         like.new_ones(()).expand(b, self.latent_dim))
                        .to_event(1))
            if self.n_classes and y is None:
                pyro.sample("y", dist.Categorical(logits=like.expand(b, self.n_classes)))

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("adversarial", "mmd")

    def _check_fit_data(self, x):
        x = self._check_x(x)
        if self.observation == "bernoulli":
            check_binary(x, "x")
        return x

    def fit(
        self,
        x,
        y=None,
        *,
        method: str = "adversarial",
        loss: str | None = None,
        num_epochs: int = 10,
        batch_size: int = 64,
        lr: float = 2e-4,
        disc_lr: float | None = None,
        betas=(0.5, 0.999),
        num_disc_steps: int | None = None,
        label_smoothing: float = 0.0,
        clip_value: float = 0.01,
        gp_weight: float = 10.0,
        bandwidths=None,
        max_seconds: float | None = None,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Train the generator adversarially (``method="adversarial"``) or as a GMMN
        (``"mmd"``), on shuffled minibatches, through the shared training loop.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
        y : int Tensor, shape ``(n,)``, optional
            Labels (required for a conditional GAN).
        method : {"adversarial", "mmd"}
        loss : str, optional
            Adversarial loss (default the constructor's ``loss``).
        num_epochs, batch_size : int
        lr, disc_lr : float
            Adam learning rates of generator and discriminator (``disc_lr`` default ``lr``).
        betas : (float, float)
            Adam's betas ((0.5, 0.999) as in DCGAN [2]; WGAN-GP [4] uses (0.5, 0.9) or (0., 0.9)).
        num_disc_steps : int, optional
            :math:`k`; default 5 for the Wasserstein losses, 1 otherwise.
        label_smoothing, clip_value, gp_weight
            As in :class:`~pyrogen.infer.adversarial.AdversarialTrainer`.
        bandwidths : sequence of float, optional
            GMMN kernel bank (``method="mmd"``).
        max_seconds : float, optional
            Stop after the first epoch past this budget.
        seed, progress, callback, data_info
            As in :meth:`GenerativeModel.fit`; ``callback(epoch, metrics)`` per epoch.

        Returns
        -------
        FitHistory
            ``losses``: the discriminator cost per step (``"mmd"``: the MMD loss).
            ``metrics`` per epoch (means over its steps): ``d_loss``, ``g_loss``,
            ``d_accuracy``, ``wasserstein``, ``gradient_penalty``, ``d_grad_norm``,
            ``g_grad_norm`` (``"mmd"``: ``loss``, ``mmd2``, ``g_grad_norm``), ``seconds``.
            An adversarial game has no loss that must decrease, so there is no convergence
            test: ``converged`` is ``None`` and ``num_epochs`` always run (unless
            ``max_seconds``).
        """
        check_choice(method, "method", self.fit_methods())
        x = self._check_fit_data(x)
        n = x.shape[0]
        if self.n_classes:
            if y is None:
                raise ValueError("y must be given to fit a conditional GAN. Got None.")
        y = self._check_labels(y, n)
        loss = self.config["loss"] if loss is None else check_choice(loss, "loss",
                                                                      ADVERSARIAL_LOSSES)
        num_epochs = check_int(num_epochs, "num_epochs", low=1)
        batch_size = min(check_int(batch_size, "batch_size", low=2), n)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        disc_lr = lr if disc_lr is None else check_float(disc_lr, "disc_lr", 0.0, None, "oc")
        if num_disc_steps is None:
            num_disc_steps = 5 if loss in ("wgan", "wgan_gp") else 1
        if max_seconds is not None:
            max_seconds = check_float(max_seconds, "max_seconds", 0.0, None, "oc")
        betas = tuple(float(b) for b in betas)
        self._begin_fit(seed, data_info)
        # one multi-tensor Adam per network (pyrogen.infer.JointOptim): the same updates as
        # pyro.optim.Adam, without one optimizer call per parameter tensor every step
        opt = JointOptim(torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas,
                                          foreach=True))
        if method == "adversarial":
            trainer = AdversarialTrainer(
                self.model, self.discriminator, opt, loss,
                disc_optim=JointOptim(torch.optim.Adam(self.discriminator.parameters(),
                                                       lr=disc_lr, betas=betas, foreach=True)),
                num_disc_steps=num_disc_steps, site="x",
                condition_on=("y",) if self.n_classes else (),
                label_smoothing=label_smoothing, clip_value=clip_value, gp_weight=gp_weight,
                discriminator_name=self._pname + ".discriminator",
            )
            info = {"loss": loss, "num_disc_steps": num_disc_steps, "disc_lr": disc_lr,
                    "label_smoothing": label_smoothing}
        else:
            trainer = MomentMatching(self.model, opt, bandwidths, site="x")
            info = {"loss": "mmd", "bandwidths": None if bandwidths is None else
                    [float(b) for b in bandwidths]}
        history = FitHistory(method=method, info={"lr": lr, "batch_size": batch_size, **info})
        step_infos: list = []
        t0 = time.perf_counter()

        def step(i, idx):
            xb = x if idx is None else x[idx]
            yb = None if y is None else (y if idx is None else y[idx])
            value = trainer.step(xb, yb, num_data=n)
            step_infos.append(trainer.info._asdict())
            return value

        def on_epoch(epoch):
            keys = step_infos[0].keys()
            mon = {k: sum(s[k] for s in step_infos) / len(step_infos) for k in keys}
            step_infos.clear()
            mon["seconds"] = time.perf_counter() - t0
            history.log(**mon)
            if callback is not None:
                callback(epoch, mon)
            if method == "mmd":
                return {"mmd2": f"{mon['mmd2']:.4f}"}
            return {"d": f"{mon['d_loss']:.3f}", "g": f"{mon['g_loss']:.3f}",
                    "acc": f"{mon['d_accuracy']:.2f}"}

        self._train(step, history, n=n, batch_size=batch_size, num_epochs=num_epochs, lr=lr,
                    tol=None, max_seconds=max_seconds, progress=progress, on_epoch=on_epoch,
                    device=x.device)
        history.info["num_epochs"] = len(history.metrics.get("seconds", []))
        return history

    # ------------------------------------------------------------------ evaluation
    def _need_observation(self, what):
        if self.observation is None:
            raise ValueError(
                f"{what} needs an observation model: with observation=None, x = G(z) exactly "
                "and p(x) has no density on R^D (it lives on the generator's image). Build the "
                "GAN with observation='gaussian' (obs_scale=sigma) or 'bernoulli'. Got "
                "observation=None."
            )

    def log_likelihood(self, x, y=None, num_chains: int | None = None,
                       num_betas: int | None = None, seed: int | None = 0,
                       **kwargs) -> LogLikelihood:
        r"""AIS estimate of :math:`\log p(x)` [5] (kind ``"ais_marginal"``, a stochastic
        **lower** bound) of the generator *with its observation model*, annealed from the prior
        to the posterior over :math:`z` with HMC
        (:func:`~pyrogen.infer.annealing.decoder.ais_log_likelihood`; ``kwargs`` go there).

        Conditional GAN: :math:`\log p(x\mid y)` when ``y`` is given; without ``y``,
        :math:`\log p(x) = \log\frac1C\sum_c p(x\mid c)`, an exact sum over the :math:`C`
        classes of AIS estimates (cost :math:`C` times; still unbiased for :math:`p(x)`, so
        still a stochastic lower bound; delta-method standard error).

        The value depends on ``obs_scale`` (a GAN was not trained for it); compare models
        only with the same observation model. A Parzen-window estimate is not offered: it is
        not a likelihood (Theis et al. 2016).
        """
        self._need_observation("log_likelihood")
        x = self._check_x(x)
        if self.observation == "bernoulli":
            check_binary(x, "x")
        y = self._check_labels(y, x.shape[0])
        cfg = self.config
        num_chains = check_int(cfg["ais_num_chains"] if num_chains is None else num_chains,
                               "num_chains", low=1)
        num_betas = check_int(cfg["ais_num_betas"] if num_betas is None else num_betas,
                              "num_betas", low=2)
        kwargs.setdefault("num_leapfrog", cfg["ais_num_leapfrog"])
        if self.n_classes and y is None:
            parts = [
                ais_log_likelihood(self.model, x, torch.full((x.shape[0],), c, dtype=torch.long,
                                                             device=x.device),
                                   num_chains=num_chains, betas=num_betas,
                                   seed=None if seed is None else seed + c, **kwargs)
                for c in range(self.n_classes)
            ]
            lv = torch.stack([p.values for p in parts])
            se = torch.stack([p.stderr for p in parts])
            values = torch.logsumexp(lv, 0) - math.log(self.n_classes)
            w = torch.exp(lv - math.log(self.n_classes) - values)
            ll = LogLikelihood(values, parts[0].kind, torch.sqrt((w**2 * se**2).sum(0)),
                               info={**parts[0].info, "classes_summed": self.n_classes})
        else:
            args = () if y is None else (y,)
            ll = ais_log_likelihood(self.model, x, *args, num_chains=num_chains,
                                    betas=num_betas, seed=seed, **kwargs)
        info = {**ll.info, "model": type(self).__name__, "observation": self.observation,
                "obs_scale": self.obs_scale if self.observation == "gaussian" else None}
        return LogLikelihood(ll.values, ll.kind, ll.stderr, ll.shared_stderr, info=info)

    @torch.no_grad()
    def sample(self, n: int, y=None, mean: bool = False) -> torch.Tensor:
        r"""Draw ``n`` examples: :math:`G(z)` (``observation=None`` or ``mean=True``: the
        observation model's mean), else a draw of the observation model. ``y``: labels of a
        conditional GAN (default uniform)."""
        n = self._check_n(n)
        if self.n_classes and y is None:
            y = torch.randint(0, self.n_classes, (n,), device=self.device)
        y = self._check_labels(y, n)
        z = torch.randn(n, self.latent_dim, dtype=self.dtype, device=self.device)
        d = self._obs_dist(self.generator(z, y))
        if mean or self.observation is None:
            return d.mean
        return d.sample()

    @torch.no_grad()
    def generate(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """The generated mean :math:`G(z)` for given latents ``z`` of shape ``(n, d)``."""
        y = self._check_labels(y, z.shape[0])
        return self._obs_dist(self.generator(z.to(self.dtype), y)).mean

    def transform(self, x, y=None, num_steps: int = 200, lr: float = 0.05) -> torch.Tensor:
        r"""Posterior mode :math:`\arg\max_z \log p(z) + \log p(x\mid G(z))` per example (the
        latent code of ``x``; a GAN has no encoder), by ``num_steps`` Adam steps from
        :math:`z = 0`. Needs an observation model. Shape ``(n, latent_dim)``. Cost:
        ``num_steps`` generator forward/backward passes on ``n`` rows. A local mode only.
        """
        self._need_observation("transform")
        x = self._check_x(x)
        num_steps = check_int(num_steps, "num_steps", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        if self.n_classes and y is None:
            raise ValueError("y must be given for a conditional GAN's transform. Got None.")
        y = self._check_labels(y, x.shape[0])
        z = torch.zeros(x.shape[0], self.latent_dim, dtype=self.dtype, device=self.device,
                        requires_grad=True)
        opt = torch.optim.Adam([z], lr=lr)
        params = list(self.generator.parameters())
        req = [p.requires_grad for p in params]
        try:
            for p in params:
                p.requires_grad_(False)
            for _ in range(num_steps):
                opt.zero_grad()
                lp = self._obs_dist(self.generator(z, y)).log_prob(x) - 0.5 * (z**2).sum(-1)
                (-lp.sum()).backward()
                opt.step()
        finally:
            for p, r in zip(params, req):
                p.requires_grad_(r)
        return z.detach()
