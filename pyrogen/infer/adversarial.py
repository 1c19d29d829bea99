r"""Adversarial and moment-matching training of Pyro models (book §20.10.4, §20.10.5).

A *generator* is an ordinary Pyro model whose observed site is produced by a differentiable
network: ``z ~ p(z)`` in a data plate, ``pyro.sample("x", D(G(z)), obs=x)`` with ``D`` a
``Delta`` (a pure implicit model), or a Gaussian or Bernoulli observation model. The trainers
here have the interface of :class:`pyro.infer.SVI` -- ``step(*args, **kwargs)``,
``evaluate_loss(*args, **kwargs)``, optimizers from :mod:`pyro.optim` -- and find the generated
site by **tracing** the model (:func:`pyro.poutine.trace`): the observed value is the real
minibatch, the mean of the site's distribution (``G(z)`` for ``Delta`` and ``Normal``, the
probabilities for ``Bernoulli``) is the generated one, differentiable in the generator's
parameters. Any Pyro model of that shape can be trained, a VAE's decoder included.

:class:`AdversarialTrainer` plays the GAN game with a discriminator :math:`d = \sigma(a)`
(``a`` = the network's logit) or a critic :math:`f` (Wasserstein losses), ``num_disc_steps``
discriminator steps per generator step:

``"minimax"`` (eq. 20.80-20.81)
    :math:`J^{(D)} = -v = -\mathbb E_{data}\log d(x) - \mathbb E_z\log(1-d(G(z)))`;
    :math:`J^{(G)} = -J^{(D)}`, i.e. the generator minimizes :math:`\mathbb E_z\log(1-d(G(z)))`.
``"non_saturating"`` [1]
    :math:`J^{(D)}` as minimax; :math:`J^{(G)} = -\mathbb E_z \log d(G(z))`.
``"maximum_likelihood"`` [2]
    :math:`J^{(D)}` as minimax; :math:`J^{(G)} = -\tfrac12\mathbb E_z e^{a(G(z))}`.
``"wgan"`` [3]
    :math:`J^{(D)} = \mathbb E_z f(G(z)) - \mathbb E_{data} f(x)`, the critic's weights clipped
    to :math:`[-c, c]` after each step; :math:`J^{(G)} = -\mathbb E_z f(G(z))`.
``"wgan_gp"`` [4]
    :math:`J^{(D)}` of ``"wgan"`` plus
    :math:`\lambda\,\mathbb E_{\hat x}(\lVert\nabla_{\hat x} f(\hat x)\rVert_2 - 1)^2` at the
    interpolates :math:`\hat x = \epsilon x + (1-\epsilon)G(z)`, :math:`\epsilon\sim U(0,1)` per
    example (no clipping); :math:`J^{(G)} = -\mathbb E_z f(G(z))`.

With an optimal discriminator :math:`d^* = p_{data}/(p_{data}+p_{model})`, the minimax game
minimizes the Jensen-Shannon divergence; the maximum-likelihood cost has the expected gradient
of :math:`\mathrm{KL}(p_{data}\Vert p_{model})` (since :math:`e^{a^*} = p_{data}/p_{model}`) [2];
the non-saturating cost keeps the generator's gradient large when the discriminator rejects its
samples confidently (book §20.10.4). One-sided label smoothing [5] (``label_smoothing=s``)
replaces the real targets 1 by :math:`1-s` in :math:`J^{(D)}`.

:class:`MomentMatching` trains a generative moment-matching network (GMMN) [6] by minimizing
the maximum mean discrepancy between a real and a generated minibatch (:func:`mmd2`) with a
bank of Gaussian kernel bandwidths, optionally in the code space of an autoencoder (GMMN+AE).

Both trainers ignore the log-probability terms of the trace (plate scales included): their
losses are minibatch means.

References
----------
1. I. Goodfellow et al. *Generative adversarial nets*. NeurIPS 2014.
2. I. Goodfellow. *On distinguishability criteria for estimating generative models*. ICLR
   workshop 2015 (arXiv:1412.6515); *NIPS 2016 tutorial: GANs*, arXiv:1701.00160, eq. (15).
3. M. Arjovsky, S. Chintala, L. Bottou. *Wasserstein GAN*. ICML 2017.
4. I. Gulrajani et al. *Improved training of Wasserstein GANs*. NeurIPS 2017.
5. T. Salimans et al. *Improved techniques for training GANs*. NeurIPS 2016.
6. Y. Li, K. Swersky, R. Zemel. *Generative moment matching networks*. ICML 2015;
   G. K. Dziugaite, D. Roy, Z. Ghahramani. *Training generative neural networks via MMD*.
   UAI 2015.
7. I. Goodfellow, Y. Bengio, A. Courville. *Deep Learning*, MIT Press 2016, §20.10.4-5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.util import zero_grads

from .._validation import check_choice, check_float, check_int

__all__ = [
    "AdversarialTrainer",
    "AdversarialInfo",
    "MomentMatching",
    "MomentMatchingInfo",
    "ADVERSARIAL_LOSSES",
    "generated_site",
    "gradient_penalty",
    "mmd2",
]

ADVERSARIAL_LOSSES = ("minimax", "non_saturating", "maximum_likelihood", "wgan", "wgan_gp")
_GENERATED = ("mean", "rsample")
_WASSERSTEIN = ("wgan", "wgan_gp")


class AdversarialInfo(NamedTuple):
    """Monitoring values of the last :meth:`AdversarialTrainer.step` (floats).

    ``d_loss``, ``g_loss``: the two costs; ``d_accuracy``: fraction of the real and generated
    examples the discriminator classifies correctly (logit > 0 = real; ``nan`` for critics);
    ``d_real``, ``d_fake``: mean discriminator output (:math:`d = \\sigma(a)`, or the critic
    value) on real and generated examples; ``wasserstein``: the critic's estimate
    :math:`\\mathbb E_{data} f - \\mathbb E_z f(G(z))` of the Wasserstein-1 distance (``nan``
    for other losses; a lower bound up to the critic's Lipschitz constant);
    ``gradient_penalty``: the unweighted penalty (``nan`` unless ``"wgan_gp"``);
    ``d_grad_norm``, ``g_grad_norm``: Euclidean norms of the parameter gradients.
    """

    d_loss: float
    g_loss: float
    d_accuracy: float
    d_real: float
    d_fake: float
    wasserstein: float
    gradient_penalty: float
    d_grad_norm: float
    g_grad_norm: float


class MomentMatchingInfo(NamedTuple):
    """Monitoring values of the last :meth:`MomentMatching.step`: ``loss``, ``mmd2`` (biased
    estimate) and ``g_grad_norm``."""

    loss: float
    mmd2: float
    g_grad_norm: float


# ---------------------------------------------------------------------------- shared pieces
def generated_site(
    model: Callable,
    *args,
    site: str | None = None,
    generated: str = "mean",
    **kwargs,
):
    r"""Trace ``model(*args, **kwargs)`` and return its generated site.

    The generated site is the observed sample site named ``site``; by default the observed site
    whose value *is* ``args[0]`` (the data passed in), or the only observed site.

    Returns
    -------
    real, fake, trace
        ``real``: the observed value (shape ``(B, ...)``); ``fake``: the mean of the site's
        distribution (``generated="mean"``: ``G(z)`` for ``Delta``/``Normal``, probabilities
        for ``Bernoulli``) or a reparametrized draw (``"rsample"``), differentiable in the
        generator's parameters; ``trace``: the :class:`pyro.poutine.Trace`.

    Raises
    ------
    ValueError
        No observed site (nothing generated), several candidates and no ``site``, an unknown
        ``site``, or a generated value whose shape differs from the real one.
    """
    check_choice(generated, "generated", _GENERATED)
    tr = poutine.trace(model).get_trace(*args, **kwargs)
    observed = [
        name for name, s in tr.nodes.items()
        if s["type"] == "sample" and s["is_observed"] and not s["infer"].get("_do_not_score")
    ]
    if site is not None:
        if site not in observed:
            raise ValueError(
                f"site must name an observed sample site of the model. Got {site!r}; the "
                f"model's observed sites are {observed}."
            )
        name = site
    else:
        if not observed:
            raise ValueError(
                "model has no generated site: a generator must end in an observed sample site "
                "pyro.sample('x', dist, obs=x) whose distribution's mean is the generated value "
                "(dist.Delta(G(z), event_dim=1) for a pure GAN). Got a model with no observed "
                "sample site."
            )
        data = args[0] if args else None
        same = [n for n in observed if data is not None and tr.nodes[n]["value"] is data]
        if len(same) == 1:
            name = same[0]
        elif len(observed) == 1:
            name = observed[0]
        else:
            raise ValueError(
                f"site must be given: the model has several observed sites {observed} and none "
                "holds the first argument (the data) itself."
            )
    node = tr.nodes[name]
    real = node["value"]
    fn = node["fn"]
    try:
        fake = fn.mean if generated == "mean" else fn.rsample()
    except NotImplementedError as e:
        raise ValueError(
            f"the distribution of site {name!r} ({type(fn).__name__}) has no "
            f"{'mean' if generated == 'mean' else 'rsample'}; pass generated='rsample' or use a "
            "Delta, Normal or Bernoulli site."
        ) from e
    if not torch.is_tensor(real) or fake.shape != real.shape:
        raise ValueError(
            f"the generated value of site {name!r} must have the shape of the observed data "
            f"{tuple(getattr(real, 'shape', ()))}. Got {tuple(fake.shape)} instead."
        )
    return real, fake, tr


def _params_of(tr) -> set:
    return {s["value"].unconstrained() for s in tr.nodes.values() if s["type"] == "param"}


def _module_params(name: str, module: torch.nn.Module) -> set:
    with poutine.trace(param_only=True) as cap:
        pyro.module(name, module)
    return {s["value"].unconstrained() for s in cap.trace.nodes.values()}


def _grad_norm(params) -> float:
    sq = 0.0
    for p in params:
        if p.grad is not None:
            sq += float(p.grad.detach().double().pow(2).sum())
    return math.sqrt(sq)


def _check_finite(value: torch.Tensor, what: str, step: int):
    if not torch.isfinite(value).all():
        raise FloatingPointError(
            f"the {what} became {float(value)} at trainer step {step}; lower the learning rate, "
            "check the data scale, or use loss='wgan_gp'/'non_saturating'."
        )


def gradient_penalty(
    critic: Callable,
    real: torch.Tensor,
    fake: torch.Tensor,
    *context,
    eps: torch.Tensor | None = None,
    create_graph: bool = True,
):
    r"""WGAN-GP penalty [4] :math:`\mathbb E_{\hat x}(\lVert\nabla_{\hat x} f(\hat x)\rVert_2-1)^2`.

    Evaluated at the interpolates :math:`\hat x_i = \epsilon_i x_i + (1-\epsilon_i)\tilde x_i`
    between real :math:`x_i` and generated :math:`\tilde x_i`, :math:`\epsilon_i \sim U(0, 1)`
    per example (or the given ``eps``, shape ``(B,)``); the norm is over all non-batch
    dimensions.

    Returns
    -------
    penalty, grad_norms
        The mean penalty (a scalar, differentiable in the critic's parameters when
        ``create_graph``) and the per-example gradient norms, shape ``(B,)``.

    Cost: one forward and one backward pass of the critic on ``B`` rows (double backward when
    the penalty is differentiated).
    """
    b = real.shape[0]
    if eps is None:
        eps = torch.rand(b, dtype=real.dtype, device=real.device)
    w = eps.reshape(b, *([1] * (real.dim() - 1)))
    x_hat = (w * real.detach() + (1 - w) * fake.detach()).requires_grad_(True)
    with torch.enable_grad():
        out = critic(x_hat, *context)
        (g,) = torch.autograd.grad(out.sum(), x_hat, create_graph=create_graph)
    norms = g.reshape(b, -1).norm(dim=1)
    return ((norms - 1) ** 2).mean(), norms


def _bandwidth_bank(x, y, bandwidths):
    if bandwidths is not None:
        return [float(h) for h in bandwidths]
    with torch.no_grad():
        z = torch.cat([x.detach(), y.detach()]).reshape(x.shape[0] + y.shape[0], -1)
        d = torch.cdist(z, z)
        med = float(d[d > 0].median()) if bool((d > 0).any()) else 1.0
    return [med * m for m in (0.25, 0.5, 1.0, 2.0, 4.0)]


def mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidths: Sequence[float] | None = None,
    unbiased: bool = False,
) -> torch.Tensor:
    r"""Squared maximum mean discrepancy with a sum of Gaussian kernels [6].

    .. math::

        \mathrm{MMD}^2 = \mathbb E\,k(x,x') + \mathbb E\,k(y,y') - 2\,\mathbb E\,k(x,y),
        \qquad k(a,b) = \sum_{h} \exp\!\Big(-\frac{\lVert a-b\rVert^2}{2h^2}\Big).

    Parameters
    ----------
    x, y : Tensor, shapes ``(n, ...)`` and ``(m, ...)``
        Two samples (flattened over non-batch dimensions).
    bandwidths : sequence of float, optional
        The bank :math:`\{h\}`; default the median pairwise distance of the pooled sample times
        ``(1/4, 1/2, 1, 2, 4)`` (computed without gradient).
    unbiased : bool
        ``False`` (default): the V-statistic (all pairs, :math:`\ge 0`, biased upward by
        :math:`O(1/n)`); ``True``: the U-statistic (diagonal pairs dropped; unbiased, may be
        negative).

    Returns
    -------
    Tensor
        Scalar. Zero for identical samples (biased form). Cost :math:`O((n+m)^2 D)` per
        bandwidth. Pyro's ``pyro.contrib.gp.kernels.RBF`` is the same kernel with
        ``lengthscale = h``.
    """
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"x and y must have the same non-batch shape. Got {tuple(x.shape)} and "
            f"{tuple(y.shape)} instead."
        )
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"x and y must have at least 2 rows each. Got {n} and {m} instead.")
    hs = _bandwidth_bank(x, y, bandwidths)
    if not hs or any(not (h > 0 and math.isfinite(h)) for h in hs):
        raise ValueError(f"bandwidths must be positive finite floats. Got {hs!r} instead.")
    xf, yf = x.reshape(n, -1), y.reshape(m, -1)

    def gram(a, b):
        d2 = (a.unsqueeze(1) - b.unsqueeze(0)).pow(2).sum(-1)
        return sum(torch.exp(-d2 / (2 * h * h)) for h in hs)

    kxx, kyy, kxy = gram(xf, xf), gram(yf, yf), gram(xf, yf)
    if unbiased:
        exx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        eyy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    else:
        exx, eyy = kxx.mean(), kyy.mean()
    return exx + eyy - 2 * kxy.mean()


# ---------------------------------------------------------------------------- the GAN game
def _logit_losses(a_real, a_fake, smoothing):
    softplus = torch.nn.functional.softplus
    # -log d(x) = softplus(-a), -log(1 - d(x)) = softplus(a)
    real_term = (1 - smoothing) * softplus(-a_real) + smoothing * softplus(a_real)
    return real_term.mean() + softplus(a_fake).mean()


def _generator_cost(a_fake, loss):
    softplus = torch.nn.functional.softplus
    if loss == "minimax":
        return -softplus(a_fake).mean()  # E log(1 - d(G(z)))
    if loss == "non_saturating":
        return softplus(-a_fake).mean()  # -E log d(G(z))
    if loss == "maximum_likelihood":
        return -0.5 * torch.exp(a_fake).mean()
    return -a_fake.mean()  # Wasserstein: -E f(G(z))


class AdversarialTrainer:
    r"""The GAN game on a Pyro model, with the interface of :class:`pyro.infer.SVI`.

    Parameters
    ----------
    model : callable
        A Pyro model ``model(x, *args, **kwargs)`` whose observed site holds the real minibatch
        ``x`` and whose distribution's mean is the generated batch (see
        :func:`generated_site`).
    discriminator : torch.nn.Module
        ``discriminator(x, *context) -> (B,)`` or ``(B, 1)``: the logit :math:`a` of
        :math:`d(x) = \sigma(a)` that ``x`` is real, or the critic value :math:`f(x)` for the
        Wasserstein losses. Registered in Pyro's parameter store as ``discriminator_name``.
    optim : pyro.optim.PyroOptim
        Optimizer of the generator's parameters (the ``param`` sites of the model's trace).
    loss : {"minimax", "non_saturating", "maximum_likelihood", "wgan", "wgan_gp"}
        See the module docstring.
    disc_optim : pyro.optim.PyroOptim, optional
        Optimizer of the discriminator's parameters; default ``optim`` (per-parameter state,
        so one object can serve both).
    num_disc_steps : int
        :math:`k \ge 1` discriminator steps per generator step, each on the same real batch
        with fresh latents.
    site : str, optional
        Name of the generated site (default: found by tracing).
    condition_on : sequence of str
        Sites whose traced values are passed to the discriminator after ``x`` (e.g. ``("y",)``
        for a conditional GAN: the real labels, which also condition the generated batch).
    label_smoothing : float in [0, 0.5)
        One-sided label smoothing [5]: real targets :math:`1 - s` (logit losses only).
    clip_value : float
        Weight clipping :math:`c` of ``"wgan"``.
    gp_weight : float
        :math:`\lambda` of ``"wgan_gp"`` (10 in [4]).
    generated : {"mean", "rsample"}
        Which value of the site's distribution is the generated sample.
    discriminator_name : str

    Attributes
    ----------
    info : AdversarialInfo or None
        Monitoring values of the last step.

    Notes
    -----
    ``step`` returns the discriminator cost of the last discriminator step (for ``"minimax"``
    it is :math:`-v`; for the Wasserstein losses minus the Wasserstein estimate, plus the
    penalty). A non-finite cost raises ``FloatingPointError`` before any parameter is changed.
    Cost per step: :math:`k+1` model traces and discriminator passes on the batch (:math:`2k`
    with ``"wgan_gp"``'s double backward), one generator backward.
    """

    def __init__(
        self,
        model: Callable,
        discriminator: torch.nn.Module,
        optim,
        loss: str = "non_saturating",
        *,
        disc_optim=None,
        num_disc_steps: int = 1,
        site: str | None = None,
        condition_on: Sequence[str] = (),
        label_smoothing: float = 0.0,
        clip_value: float = 0.01,
        gp_weight: float = 10.0,
        generated: str = "mean",
        discriminator_name: str = "discriminator",
    ):
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model. Got {type(model).__name__}.")
        if not isinstance(discriminator, torch.nn.Module):
            raise TypeError(
                "discriminator must be a torch.nn.Module. Got "
                f"{type(discriminator).__name__} instead."
            )
        if not isinstance(optim, pyro.optim.PyroOptim):
            raise TypeError(
                f"optim must be a pyro.optim optimizer (e.g. pyro.optim.Adam({{'lr': 2e-4}})). "
                f"Got {type(optim).__name__} instead."
            )
        if disc_optim is not None and not isinstance(disc_optim, pyro.optim.PyroOptim):
            raise TypeError(
                f"disc_optim must be a pyro.optim optimizer or None. Got "
                f"{type(disc_optim).__name__} instead."
            )
        self.model = model
        self.discriminator = discriminator
        self.optim = optim
        self.disc_optim = optim if disc_optim is None else disc_optim
        self.loss = check_choice(loss, "loss", ADVERSARIAL_LOSSES)
        self.num_disc_steps = check_int(num_disc_steps, "num_disc_steps", low=1)
        self.site = site
        if isinstance(condition_on, str):
            condition_on = (condition_on,)
        self.condition_on = tuple(condition_on)
        self.label_smoothing = check_float(label_smoothing, "label_smoothing", 0.0, 0.5, "co")
        if self.label_smoothing and loss in _WASSERSTEIN:
            raise ValueError(
                f"label_smoothing applies to the logit losses, not to loss={loss!r}. Got "
                f"label_smoothing={label_smoothing}."
            )
        self.clip_value = check_float(clip_value, "clip_value", 0.0, None, "oo")
        self.gp_weight = check_float(gp_weight, "gp_weight", 0.0, None, "cc")
        self.generated = check_choice(generated, "generated", _GENERATED)
        self.discriminator_name = discriminator_name
        self.info: AdversarialInfo | None = None
        self.num_steps = 0
        #: interpolation weights of the last gradient penalty (``"wgan_gp"``), shape ``(B,)``
        self.last_interpolation_weights: torch.Tensor | None = None

    # ------------------------------------------------------------------ pieces
    def _batch(self, *args, **kwargs):
        real, fake, tr = generated_site(
            self.model, *args, site=self.site, generated=self.generated, **kwargs
        )
        context = []
        for name in self.condition_on:
            if name not in tr.nodes:
                raise ValueError(
                    f"condition_on names a site the model does not have. Got {name!r}; the "
                    f"model's sample sites are "
                    f"{[n for n, s in tr.nodes.items() if s['type'] == 'sample']}."
                )
            context.append(tr.nodes[name]["value"])
        return real, fake, context, tr

    def _disc(self, x, context):
        out = self.discriminator(x, *context)
        b = x.shape[0]
        if not torch.is_tensor(out) or out.shape not in (torch.Size([b]), torch.Size([b, 1])):
            raise ValueError(
                f"discriminator output must have shape ({b},) or ({b}, 1): one logit (or critic "
                f"value) per example of the batch of {b}. Got "
                f"{tuple(getattr(out, 'shape', ()))} instead."
            )
        return out.reshape(b)

    def discriminator_loss(self, real, fake, context=()):
        """The discriminator (critic) cost on a real and a generated batch (``fake`` is
        detached here) and the monitoring values ``(cost, stats)``."""
        fake = fake.detach()
        a_real, a_fake = self._disc(real, context), self._disc(fake, context)
        stats = {"wasserstein": math.nan, "gradient_penalty": math.nan}
        if self.loss in _WASSERSTEIN:
            w = a_real.mean() - a_fake.mean()
            cost = -w
            stats["wasserstein"] = float(w.detach())
            stats["d_accuracy"] = math.nan
            stats["d_real"] = float(a_real.detach().mean())
            stats["d_fake"] = float(a_fake.detach().mean())
            if self.loss == "wgan_gp":
                eps = torch.rand(real.shape[0], dtype=real.dtype, device=real.device)
                self.last_interpolation_weights = eps
                pen, _ = gradient_penalty(
                    lambda xh, *c: self._disc(xh, c), real, fake, *context, eps=eps
                )
                stats["gradient_penalty"] = float(pen.detach())
                cost = cost + self.gp_weight * pen
        else:
            cost = _logit_losses(a_real, a_fake, self.label_smoothing)
            with torch.no_grad():
                acc = torch.cat([(a_real > 0), (a_fake < 0)]).double().mean()
            stats["d_accuracy"] = float(acc)
            stats["d_real"] = float(torch.sigmoid(a_real.detach()).mean())
            stats["d_fake"] = float(torch.sigmoid(a_fake.detach()).mean())
        return cost, stats

    def generator_loss(self, fake, context=()):
        """The generator cost :math:`J^{(G)}` on a generated batch (differentiable)."""
        return _generator_cost(self._disc(fake, context), self.loss)

    # ------------------------------------------------------------------ SVI interface
    def step(self, *args, **kwargs) -> float:
        """``num_disc_steps`` discriminator steps, then one generator step; returns the last
        discriminator cost (a float). Arguments go to the model."""
        d_params = _module_params(self.discriminator_name, self.discriminator)
        zero_grads(d_params)
        for _ in range(self.num_disc_steps):
            with torch.no_grad():
                real, fake, context, _ = self._batch(*args, **kwargs)
            d_cost, stats = self.discriminator_loss(real, fake, context)
            _check_finite(d_cost.detach(), "discriminator loss", self.num_steps)
            d_cost.backward()
            d_norm = _grad_norm(d_params)
            self.disc_optim(d_params)
            zero_grads(d_params)
            if self.loss == "wgan":
                with torch.no_grad():
                    for p in d_params:
                        p.clamp_(-self.clip_value, self.clip_value)
        real, fake, context, tr = self._batch(*args, **kwargs)
        g_params = _params_of(tr) - d_params
        g_cost = self.generator_loss(fake, context)
        _check_finite(g_cost.detach(), "generator loss", self.num_steps)
        g_cost.backward()
        g_norm = _grad_norm(g_params)
        self.optim(g_params)
        zero_grads(g_params)
        zero_grads(d_params)
        self.info = AdversarialInfo(
            d_loss=float(d_cost.detach()), g_loss=float(g_cost.detach()),
            d_grad_norm=d_norm, g_grad_norm=g_norm,
            **stats,
        )
        self.num_steps += 1
        return float(d_cost.detach())

    def evaluate_loss(self, *args, **kwargs) -> float:
        """The discriminator cost on a fresh generated batch, without any parameter change
        (``"wgan_gp"`` still differentiates the critic in its inputs for the penalty)."""
        with torch.no_grad():
            real, fake, context, _ = self._batch(*args, **kwargs)
        d_cost, _ = self.discriminator_loss(real, fake, context)
        value = float(d_cost.detach())
        d_params = _module_params(self.discriminator_name, self.discriminator)
        zero_grads(d_params)
        return value


class MomentMatching:
    r"""Generative moment-matching network training (GMMN [6]), with SVI's interface.

    Minimizes :math:`\sqrt{\mathrm{MMD}^2}` (``statistic="mmd"``, as Li et al. do) or
    :math:`\mathrm{MMD}^2` between the real minibatch and the generated one (:func:`mmd2`,
    biased V-statistic, a bank of Gaussian bandwidths), in data space or in the code space of
    ``code`` (GMMN+AE: e.g. a trained autoencoder's encoder, held fixed).

    Parameters
    ----------
    model : callable
        A Pyro model with a generated site (see :func:`generated_site`).
    optim : pyro.optim.PyroOptim
    bandwidths : sequence of float, optional
        Kernel bandwidths (in code space when ``code`` is given); default a median-heuristic
        bank per batch.
    code : callable, optional
        Map applied to both batches before the MMD (its parameters are not trained here).
    statistic : {"mmd", "mmd2"}
    site, generated
        As in :class:`AdversarialTrainer`.

    Notes
    -----
    The MMD estimate from a minibatch of :math:`B` is biased by :math:`O(1/B)` and its
    variance grows as :math:`B` shrinks: the book (§20.10.5) notes that moment matching needs
    large batches. Cost: :math:`O(B^2 D)` per bandwidth per step.

    ``pyro.contrib.gp.kernels.RBF`` is the same kernel; it is not used here because it would
    register its lengthscale as a trainable Pyro parameter inside the model's trace.
    """

    def __init__(self, model, optim, bandwidths=None, *, code=None, statistic: str = "mmd",
                 site: str | None = None, generated: str = "mean"):
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model. Got {type(model).__name__}.")
        if not isinstance(optim, pyro.optim.PyroOptim):
            raise TypeError(
                f"optim must be a pyro.optim optimizer. Got {type(optim).__name__} instead."
            )
        if bandwidths is not None:
            bandwidths = [check_float(h, "bandwidths", 0.0, None, "oo") for h in bandwidths]
            if not bandwidths:
                raise ValueError("bandwidths must hold at least one float. Got [] instead.")
        if code is not None and not callable(code):
            raise TypeError(f"code must be callable or None. Got {type(code).__name__}.")
        self.model, self.optim, self.bandwidths, self.code = model, optim, bandwidths, code
        self.statistic = check_choice(statistic, "statistic", ("mmd", "mmd2"))
        self.site = site
        self.generated = check_choice(generated, "generated", _GENERATED)
        self.info: MomentMatchingInfo | None = None
        self.num_steps = 0

    def _loss(self, *args, **kwargs):
        real, fake, tr = generated_site(
            self.model, *args, site=self.site, generated=self.generated, **kwargs
        )
        if self.code is not None:
            with torch.no_grad():
                real = self.code(real)
            fake = self.code(fake)
        m2 = mmd2(real.detach(), fake, self.bandwidths)
        loss = m2 if self.statistic == "mmd2" else torch.sqrt(m2.clamp_min(0) + 1e-12)
        return loss, m2, tr

    def step(self, *args, **kwargs) -> float:
        """One generator step; returns the loss (a float)."""
        loss, m2, tr = self._loss(*args, **kwargs)
        _check_finite(loss.detach(), "MMD loss", self.num_steps)
        params = _params_of(tr)
        loss.backward()
        norm = _grad_norm(params)
        self.optim(params)
        zero_grads(params)
        self.info = MomentMatchingInfo(float(loss.detach()), float(m2.detach()), norm)
        self.num_steps += 1
        return float(loss.detach())

    def evaluate_loss(self, *args, **kwargs) -> float:
        """The loss on a fresh generated batch, no parameter change."""
        with torch.no_grad():
            loss, _, _ = self._loss(*args, **kwargs)
        return float(loss)
