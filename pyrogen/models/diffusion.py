r"""Diffusion inversion (book §20.13; Sohl-Dickstein et al. 2015) as a Pyro model/guide pair.

A fixed **forward** (noising) Markov chain destroys the structure of the data step by step,

.. math::

    q(x_t \mid x_{t-1}) = \mathcal N\bigl(x_t;\ \sqrt{1-\beta_t}\, x_{t-1},\ \beta_t I\bigr),
    \qquad t = 1, \dots, T,

so that :math:`q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\, x_0, (1-\bar\alpha_t) I)` with
:math:`\alpha_t = 1-\beta_t`, :math:`\bar\alpha_t = \prod_{s\le t}\alpha_s`, and
:math:`q(x_T) \approx \mathcal N(0, I)` when :math:`\bar\alpha_T \approx 0`. The generative model
is the **learned reverse** chain [1]

.. math::

    p_\theta(x_{0:T}) = \mathcal N(x_T; 0, I) \prod_{t=1}^T
    \mathcal N\bigl(x_{t-1};\ \mu_\theta(x_t, t),\ \sigma_t^2 I\bigr),

and the model of the data is its last marginal :math:`p_\theta(x_0)` ("there is no
approximation induced by the iterative procedure", book §20.13). In Pyro terms the reverse chain
is the **model** (sites ``"x_T"``, ..., ``"x_1"`` latent, ``"x_0"`` observed) and the forward
chain is the **guide** (sites ``"x_1"``, ..., ``"x_T"``; no parameters), so ``Trace_ELBO`` on
``model``/``guide`` is the genuine evidence lower bound

.. math::

    \log p_\theta(x_0) \ \ge\ \mathcal L(x_0) = \mathbb E_{q(x_{1:T}\mid x_0)}
    \Bigl[\log \frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\Bigr].

The reverse mean is parametrized by noise prediction [2]:
:math:`\mu_\theta(x_t,t) = \bigl(x_t - \beta_t\,\epsilon_\theta(x_t,t)/\sqrt{1-\bar\alpha_t}\bigr)
/\sqrt{\alpha_t}`, with :math:`\epsilon_\theta(x_t, t) = \sqrt{1-\bar\alpha_t}\,x_t +
f_\theta(x_t, t)` and :math:`f_\theta` an MLP on :math:`x_t` and sinusoidal features of :math:`t`
whose output layer starts at zero. The first term is the optimal noise prediction for
:math:`\mathcal N(0, I)` data, for which the forward chain is reversible
(:math:`\mu = \sqrt{\alpha_t}\,x_t`, :math:`\sigma_t^2 = \beta_t`): the untrained model *is*
:math:`\mathcal N(0, I)` exactly, and the network learns the departure from it. (Without it, an
untrained network's error at a step with :math:`\beta_t \approx 1` is amplified by
:math:`1/\sqrt{\alpha_t}`, e.g. 32 for the cosine schedule's last step: thousands of nats.)

The variances :math:`\sigma_t^2` are learned (one per step, as the covariance in [1]; initialized
at :math:`\beta_t`) or fixed to :math:`\beta_t` or to the posterior variance :math:`\tilde\beta_t`.

**Three estimators of one bound** (``fit(loss=...)``), equal in expectation (tested):

* ``"elbo"``: ``Trace_ELBO`` on ``model``/``guide``, one forward path per example (high variance:
  it carries the noise of all :math:`T` steps);
* ``"analytic_kl"``: ``TraceMeanField_ELBO`` on ``model``/:meth:`DiffusionModel.posterior_guide`,
  the *same* distribution :math:`q(x_{1:T}\mid x_0)` factored backwards,
  :math:`q(x_T\mid x_0)\prod_{t\ge2} q(x_{t-1}\mid x_t, x_0)`, so Pyro computes every
  :math:`\mathrm{KL}` between Gaussians in closed form;
* ``"closed_form"`` (default): the decomposition of [1] (eq. 14) / [2] (eq. 5)

  .. math::

      \mathcal L = \mathbb E_q\log p_\theta(x_0\mid x_1)
      - \sum_{t=2}^T \mathbb E_{q(x_t\mid x_0)} \mathrm{KL}\bigl(q(x_{t-1}\mid x_t,x_0)\,\|\,
      p_\theta(x_{t-1}\mid x_t)\bigr) - \mathrm{KL}\bigl(q(x_T\mid x_0)\,\|\,\mathcal N(0,I)\bigr)

  with an independent :math:`x_t \sim q(x_t\mid x_0)` per term, all :math:`T` network passes in
  one batch (:meth:`DiffusionModel.elbo_terms`); trained as SVI on a Pyro model holding that
  per-example bound as a ``pyro.factor`` with an empty guide.

``"simple"`` is Ho et al.'s unweighted noise-prediction loss [2], **not a bound** (labelled so
in the history). Trained from scratch on the ELBO alone, a small model stayed near its
:math:`\mathcal N(0, I)` start for 2,000 steps on a ring of Gaussians and improved slowly after;
``"simple"`` steps first find the modes, and the ELBO then trains the variances and tightens
the bound (``benchmarks/README.md``, "Diffusion inversion").

``log_likelihood`` is the importance-sampled estimate with the forward chain as proposal (kind
``"is_estimate"``: a stochastic lower bound on :math:`\log p_\theta(x_0)` in expectation, at least
the ELBO, converging as the number of particles grows; in many dimensions and many steps the
weights degenerate, so check ``info["min_ess"]``). ``elbo`` returns the bound under its own name.

The prior :math:`\mathcal N(0, I)` at :math:`t = T` assumes data of unit scale: standardize (or
scale to :math:`[-1, 1]`) first.

**Binary data**: :class:`BinomialDiffusion` is the binomial variant of [1] (forward chain
:math:`q(x_t\mid x_{t-1}) = \mathrm{Bernoulli}(x_{t-1}(1-\beta_t) + \pi\beta_t)`, bits flipped
toward :math:`\mathrm{Bernoulli}(\pi)`; reverse chain of Bernoulli conditionals from a
time-conditioned MLP), with the same model/guide pair, the same estimators (closed-form KL bound,
``Trace_ELBO``, importance sampling with the forward chain as proposal) and the same verbs.

References
----------
1. J. Sohl-Dickstein, E. Weiss, N. Maheswaranathan, S. Ganguli. *Deep unsupervised learning
   using nonequilibrium thermodynamics*. ICML 2015.
2. J. Ho, A. Jain, P. Abbeel. *Denoising diffusion probabilistic models*. NeurIPS 2020.
3. A. Nichol, P. Dhariwal. *Improved denoising diffusion probabilistic models*. ICML 2021
   (cosine schedule, learned variances).
4. I. Goodfellow, Y. Bengio, A. Courville. *Deep Learning*, MIT Press 2016, §20.13.
"""

from __future__ import annotations

import math
import numbers

import pyro
import pyro.distributions as dist
import pyro.infer
import pyro.poutine as poutine
import torch
from pyro.nn import pyro_method
from torch import nn

from .._validation import check_binary, check_choice, check_int
from ..evaluation import LogLikelihood
from ..infer.importance import importance_log_likelihood, per_example_log_weights
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["DiffusionModel", "BinomialDiffusion", "diffusion_schedule"]

SCHEDULES = ("cosine", "linear")
REVERSE_VARIANCES = ("learned", "beta", "posterior")
LOSSES = ("closed_form", "analytic_kl", "elbo", "simple")
_ACTIVATIONS = {"silu": nn.SiLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "relu": nn.ReLU}
#: offset s of the cosine schedule and its clip of beta (Nichol & Dhariwal 2021)
_COSINE_S = 0.008
_COSINE_MAX_BETA = 0.999


def diffusion_schedule(schedule="cosine", num_timesteps: int | None = None,
                       beta_range=None) -> torch.Tensor:
    r"""The noise schedule :math:`\beta_1, \dots, \beta_T` (float64, shape ``(T,)``).

    Parameters
    ----------
    schedule : {"cosine", "linear"} or sequence of float
        ``"cosine"``: :math:`\bar\alpha_t = f(t)/f(0)`, :math:`f(t) = \cos^2\bigl(\frac{t/T +
        s}{1+s}\frac\pi2\bigr)`, :math:`s = 0.008`, :math:`\beta_t = \min(1 -
        \bar\alpha_t/\bar\alpha_{t-1}, 0.999)` [2]. ``"linear"``: :math:`\beta_t` evenly spaced
        from ``beta_range[0]`` to ``beta_range[1]`` [1]. A sequence: the :math:`\beta_t`
        themselves, each in the open interval :math:`(0, 1)`.
    num_timesteps : int, optional
        :math:`T \ge 1`; default 50 for a named schedule, the sequence's length otherwise (a
        different value is an error).
    beta_range : (float, float), optional
        ``"linear"`` only; default :math:`(0.1/T, \min(20/T, 0.999))`, the discretization of
        the variance-preserving SDE :math:`\beta(s) = 0.1 + 19.9 s` that gives [1]'s
        :math:`(10^{-4}, 0.02)` at :math:`T = 1000`.

    References
    ----------
    1. J. Ho, A. Jain, P. Abbeel. *Denoising diffusion probabilistic models*. NeurIPS 2020.
    2. A. Nichol, P. Dhariwal. *Improved denoising diffusion probabilistic models*. ICML 2021.
    """
    if isinstance(schedule, str):
        check_choice(schedule, "schedule", SCHEDULES)
        t_max = check_int(50 if num_timesteps is None else num_timesteps, "num_timesteps", low=1)
        if schedule == "cosine":
            if beta_range is not None:
                raise ValueError(
                    "beta_range is for schedule='linear' only. Got beta_range="
                    f"{beta_range!r} with schedule='cosine' instead."
                )
            s = torch.arange(t_max + 1, dtype=torch.float64) / t_max
            f = torch.cos((s + _COSINE_S) / (1 + _COSINE_S) * math.pi / 2) ** 2
            abar = f / f[0]
            betas = (1 - abar[1:] / abar[:-1]).clamp(max=_COSINE_MAX_BETA)
        else:
            if beta_range is None:
                beta_range = (0.1 / t_max, min(20.0 / t_max, _COSINE_MAX_BETA))
            lo, hi = _check_betas(beta_range, "beta_range", length=2)
            if hi < lo:
                raise ValueError(
                    f"beta_range must be (low, high) with low <= high. Got {beta_range!r} "
                    "instead."
                )
            betas = torch.linspace(lo, hi, t_max, dtype=torch.float64)
        return betas
    if beta_range is not None:
        raise ValueError(
            f"beta_range is for schedule='linear' only. Got beta_range={beta_range!r} with an "
            "explicit schedule instead."
        )
    betas = _check_betas(schedule, "schedule")
    if num_timesteps is not None and check_int(num_timesteps, "num_timesteps", low=1) != len(
        betas
    ):
        raise ValueError(
            f"num_timesteps must equal the length of an explicit schedule ({len(betas)}). Got "
            f"{num_timesteps!r} instead."
        )
    return torch.tensor(betas, dtype=torch.float64)


def _check_betas(values, name: str, length: int | None = None) -> list[float]:
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(
            f"{name} must be 'cosine', 'linear' or a sequence of floats in the open interval "
            f"(0, 1). Got {values!r} of type {type(values).__name__} instead."
            if name == "schedule"
            else f"{name} must be a sequence of floats in the open interval (0, 1). Got "
            f"{values!r} of type {type(values).__name__} instead."
        )
    values = list(values)
    if len(values) < 1 or (length is not None and len(values) != length):
        want = f"{length} floats" if length is not None else "at least one float"
        raise ValueError(f"{name} must hold {want}. Got {len(values)} instead.")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(
                f"{name} must hold floats in the open interval (0, 1). Got {v!r} of type "
                f"{type(v).__name__} at position {i} instead."
            )
        v = float(v)
        if not (0.0 < v < 1.0):  # NaN fails too
            raise ValueError(
                f"{name} must hold floats in the open interval (0, 1). Got {v!r} at position "
                f"{i} instead."
            )
        out.append(v)
    return out


def _time_features(num_timesteps: int, dim: int) -> torch.Tensor:
    """Sinusoidal features of t = 1..T (Vaswani et al. 2017, as in [2]), shape ``(T, dim)``."""
    if dim == 0:
        return torch.zeros(num_timesteps, 0, dtype=torch.float64)
    half = (dim + 1) // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    t = torch.arange(1, num_timesteps + 1, dtype=torch.float64)[:, None]
    return torch.cat([torch.sin(t * freqs), torch.cos(t * freqs)], -1)[:, :dim]


def _gauss_kl(loc_q, var_q, loc_p, var_p):
    r""":math:`\mathrm{KL}(\mathcal N(a, s^2 I) \| \mathcal N(b, \sigma^2 I))` summed over the
    last dim (variances broadcast)."""
    return 0.5 * (
        torch.log(var_p / var_q) + (var_q + (loc_q - loc_p) ** 2) / var_p - 1.0
    ).sum(-1)


class _EpsNet(nn.Module):
    """MLP :math:`\\epsilon_\\theta([x_t, \\phi(t)])`; linear when ``hidden`` is empty."""

    def __init__(self, n_features, n_time, hidden, activation):
        super().__init__()
        sizes = [n_features + n_time, *hidden, n_features]
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)
        # zero output layer: the untrained model is exactly N(0, I) (see DiffusionModel)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x, feats):
        shape = torch.broadcast_shapes(x.shape[:-1], feats.shape[:-1])
        inp = torch.cat([x.expand(*shape, x.shape[-1]), feats.expand(*shape, feats.shape[-1])], -1)
        return self.net(inp)


class DiffusionBase(GenerativeModel):
    """Base of :class:`DiffusionModel` (Gaussian) and :class:`BinomialDiffusion` (binary):
    the evaluators they share — :meth:`elbo_terms`, :meth:`elbo` (a lower bound) and
    :meth:`log_likelihood` (importance sampling with the forward chain as proposal) — and the
    closed-form bound as a Pyro factor. Not a model by itself: subclasses define ``model``,
    ``guide``, ``_terms`` (the per-step closed-form terms), ``_register`` and
    ``_check_data``."""

    #: what :meth:`log_likelihood` records as its proposal
    _PROPOSAL = "forward diffusion chain q(x_1:T | x_0)"

    def _check_data(self, x) -> torch.Tensor:
        return self._check_x(x)

    def _plate(self, x, num_data):
        if x is not None:
            return self._data_plate(x, num_data)
        n = 1 if num_data is None else check_int(num_data, "num_data", low=1)
        return pyro.plate("data", n)

    def _closed_form_model(self, x: torch.Tensor, num_data: int | None = None):
        """Pyro model holding the closed-form per-example ELBO as a factor (empty guide)."""
        self._register()
        with self._data_plate(x, num_data):
            pyro.factor("elbo_closed_form", self._terms(x).sum(-1))

    def _empty_guide(self, x: torch.Tensor, num_data: int | None = None):
        pass

    def elbo_terms(self, x, num_particles: int = 100) -> torch.Tensor:
        r"""Per-example, per-step terms of the closed-form bound, averaged over
        ``num_particles`` draws, shape ``(n, T + 1)``: column 0 is
        :math:`\mathbb E_q \log p_\theta(x_0\mid x_1)`, column :math:`t-1` for
        :math:`2 \le t \le T` is :math:`-\mathbb E_q\mathrm{KL}(q(x_{t-1}\mid x_t,x_0)\,\|\,
        p_\theta(x_{t-1}\mid x_t))`, the last is :math:`-\mathrm{KL}(q(x_T\mid x_0)\,\|\,
        p(x_T))` (exact; :math:`p(x_T)` is :math:`\mathcal N(0,I)` for the Gaussian chain and the
        Bernoulli stationary distribution for the binomial one). Rows sum to Monte Carlo
        estimates of the ELBO; the columns show where the bound is lost."""
        x = self._check_data(x)
        num_particles = check_int(num_particles, "num_particles", low=1)
        return self._terms(x.expand(num_particles, *x.shape)).mean(0)

    def log_likelihood(self, x, num_particles: int = 1000, batch_size: int = 100,
                       chunk: int = 100) -> LogLikelihood:
        r"""Importance-sampled :math:`\log p_\theta(x_0)` per example (kind ``"is_estimate"``),
        the forward chain as proposal.

        :math:`\log \frac1K \sum_k p_\theta(x_0, x_{1:T}^{(k)}) / q(x_{1:T}^{(k)}\mid x_0)`,
        :math:`x_{1:T}^{(k)} \sim q(\cdot \mid x_0)`: a stochastic lower bound on
        :math:`\log p_\theta(x_0)` in expectation, at least the ELBO, converging as
        :math:`K` = ``num_particles`` grows, with delta-method standard errors (through
        :func:`~pyrogen.infer.importance.importance_log_likelihood`). The weights multiply
        :math:`T` ratios, so in many dimensions they degenerate (``info["min_ess"]`` near 1):
        the estimate is then close to a single-path bound, still a valid lower bound.
        """
        x = self._check_data(x)
        ll = importance_log_likelihood(
            self.model, self.guide, x, num_particles=num_particles, batch_size=batch_size,
            chunk=chunk, max_plate_nesting=1,
        )
        info = {**ll.info, "model": type(self).__name__, "proposal": self._PROPOSAL}
        return LogLikelihood(ll.values, ll.kind, ll.stderr, info=info)

    def elbo(self, x, num_particles: int = 100, batch_size: int = 100,
             estimator: str = "closed_form") -> LogLikelihood:
        r"""Per-example ELBO (kind ``"elbo"``, a lower bound on :math:`\log p_\theta(x_0)`).

        Mean of ``num_particles`` independent draws of the estimator, standard error
        :math:`\hat\sigma/\sqrt K`. ``estimator="closed_form"``: the KL decomposition
        (:meth:`elbo_terms`); ``"trace"``: :math:`\log p_\theta(x_{0:T}) - \log q(x_{1:T}\mid
        x_0)` along forward paths (what ``Trace_ELBO`` averages; same expectation, larger
        variance).
        """
        x = self._check_data(x)
        num_particles = check_int(num_particles, "num_particles", low=2)
        batch_size = check_int(batch_size, "batch_size", low=1)
        check_choice(estimator, "estimator", ("closed_form", "trace"))
        vals, ses = [], []
        with torch.no_grad(), poutine.block():
            for s in range(0, x.shape[0], batch_size):
                xb = x[s : s + batch_size]
                if estimator == "closed_form":
                    lw = self._terms(xb.expand(num_particles, *xb.shape)).sum(-1)
                else:
                    lw = per_example_log_weights(
                        self.model, self.guide, (xb,), num_particles=num_particles,
                        max_plate_nesting=1,
                    ).log_weights
                lw = lw.double()
                vals.append(lw.mean(0))
                ses.append(lw.std(0) / math.sqrt(num_particles))
        return LogLikelihood(torch.cat(vals), "elbo", torch.cat(ses),
                             info={"num_particles": num_particles, "estimator": estimator})


@register_model("diffusion")
class DiffusionModel(DiffusionBase):
    r"""Gaussian diffusion model: learned reverse chain (model), fixed forward chain (guide).

    Parameters
    ----------
    n_features : int
        Data dimension :math:`D`.
    num_timesteps : int, optional
        Number of diffusion steps :math:`T \ge 1` (default 50; see :func:`diffusion_schedule`).
    schedule : {"cosine", "linear"} or sequence of float
        The :math:`\beta_t`, each in :math:`(0, 1)` (:func:`diffusion_schedule`).
    beta_range : (float, float), optional
        Endpoints of the ``"linear"`` schedule.
    hidden_dims : tuple of int
        Hidden layers of :math:`\epsilon_\theta`; ``()`` makes it affine in :math:`x_t`, and then
        :math:`p_\theta(x_0)` is Gaussian with a closed form (used by the tests).
    time_embedding_dim : int
        Number of sinusoidal features of :math:`t` fed to the network.
    reverse_variance : {"learned", "beta", "posterior"}
        :math:`\sigma_t^2`: one learned value per step (initialized at :math:`\beta_t`),
        :math:`\beta_t`, or :math:`\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}
        \beta_t` (:math:`\beta_1` at :math:`t = 1`, where :math:`\tilde\beta_1 = 0`).
    activation : {"silu", "softplus", "tanh", "relu"}
    seed : int or None
        Seeds the initial network weights (see :class:`~pyrogen.models.GenerativeModel`).

    Notes
    -----
    Cost: one pass of :math:`\epsilon_\theta` per step and example for ``model``, ``sample``
    and ``Trace_ELBO``; the closed-form objective batches the :math:`T` passes into one.
    Sites: ``"x_T"`` ... ``"x_1"`` (latent) and ``"x_0"`` (observed), named with the integer
    ``T``, e.g. ``"x_50"``, all inside the ``"data"`` plate. ``model(None, n)`` (no
    observations) draws :math:`n` examples: ``Predictive(m.model, num_samples=S)(None, n)["x_0"]``
    has shape ``(S, n, D)``.

    References
    ----------
    1. J. Sohl-Dickstein et al. *Deep unsupervised learning using nonequilibrium
       thermodynamics*. ICML 2015.
    2. J. Ho, A. Jain, P. Abbeel. *Denoising diffusion probabilistic models*. NeurIPS 2020.
    3. A. Nichol, P. Dhariwal. *Improved denoising diffusion probabilistic models*. ICML 2021.
    """

    log_likelihood_kind = "is_estimate"

    def __init__(
        self,
        n_features: int,
        num_timesteps: int | None = None,
        schedule="cosine",
        beta_range=None,
        hidden_dims=(128, 128),
        time_embedding_dim: int = 16,
        reverse_variance: str = "learned",
        activation: str = "silu",
        seed: int | None = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        betas = diffusion_schedule(schedule, num_timesteps, beta_range)
        hidden = _check_sizes(hidden_dims, "hidden_dims")
        time_embedding_dim = check_int(time_embedding_dim, "time_embedding_dim", low=0)
        check_choice(reverse_variance, "reverse_variance", REVERSE_VARIANCES)
        check_choice(activation, "activation", tuple(_ACTIVATIONS))
        super().__init__(
            n_features=n_features,
            num_timesteps=len(betas),
            schedule=schedule if isinstance(schedule, str) else betas.tolist(),
            beta_range=None if beta_range is None else [float(b) for b in beta_range],
            hidden_dims=list(hidden),
            time_embedding_dim=time_embedding_dim,
            reverse_variance=reverse_variance,
            activation=activation,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        self.num_timesteps = len(betas)
        self.reverse_variance = reverse_variance
        alphas = 1.0 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        post_var = (1.0 - abar_prev) / (1.0 - abar) * betas
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_cumprod", abar)
        self.register_buffer("alphas_cumprod_prev", abar_prev)
        self.register_buffer("posterior_variance", post_var)
        self.register_buffer("time_features", _time_features(len(betas), time_embedding_dim))
        self.eps_net = _EpsNet(n_features, time_embedding_dim, hidden, activation)
        if reverse_variance == "learned":
            self.log_reverse_variance = nn.Parameter(torch.log(betas).to(torch.get_default_dtype()))
        self.to(torch.get_default_dtype())
        self._pname = self._pyro_name

    # ------------------------------------------------------------------ schedule quantities
    @property
    def reverse_variances(self) -> torch.Tensor:
        r""":math:`\sigma_1^2, \dots, \sigma_T^2` of the reverse chain, shape ``(T,)``."""
        if self.reverse_variance == "learned":
            return torch.exp(self.log_reverse_variance)
        if self.reverse_variance == "beta":
            return self.betas
        return torch.cat([self.betas[:1], self.posterior_variance[1:]])

    def _register(self):
        """``pyro.module`` / ``pyro.param`` for the model's parameters (the guide has none)."""
        pyro.module(self._pname + ".eps_net", self.eps_net)
        if self.reverse_variance == "learned":
            pyro.param(self._pname + ".log_reverse_variance", self.log_reverse_variance)

    def _eps(self, xt, t):
        """:math:`\\epsilon_\\theta(x_t, t) = \\sqrt{1-\\bar\\alpha_t}\\,x_t + f_\\theta(x_t, t)`;
        ``t`` an int or a LongTensor (1-based) broadcasting against ``xt.shape[:-1]``."""
        abar = self.alphas_cumprod[t - 1]
        if not isinstance(t, int):
            abar = abar[..., None]
        return torch.sqrt(1.0 - abar) * xt + self.eps_net(xt, self.time_features[t - 1])

    def _reverse_mean(self, xt, t, eps=None):
        """:math:`\\mu_\\theta(x_t, t)` from the noise prediction (``t`` as in :meth:`_eps`)."""
        eps = self._eps(xt, t) if eps is None else eps
        beta, abar = self.betas[t - 1], self.alphas_cumprod[t - 1]
        if not isinstance(t, int):
            beta, abar = beta[..., None], abar[..., None]
        return (xt - beta / torch.sqrt(1.0 - abar) * eps) / torch.sqrt(1.0 - beta)

    def _posterior(self, x0, xt, t):
        r"""Mean and variance of :math:`q(x_{t-1} \mid x_t, x_0)` (``t >= 2``)."""
        beta, abar = self.betas[t - 1], self.alphas_cumprod[t - 1]
        abar_prev, var = self.alphas_cumprod_prev[t - 1], self.posterior_variance[t - 1]
        if not isinstance(t, int):
            beta, abar, abar_prev, var = (v[..., None] for v in (beta, abar, abar_prev, var))
        c0 = torch.sqrt(abar_prev) * beta / (1.0 - abar)
        ct = torch.sqrt(1.0 - beta) * (1.0 - abar_prev) / (1.0 - abar)
        return c0 * x0 + ct * xt, var

    # ------------------------------------------------------------------ Pyro model / guides
    @pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        r"""The reverse chain :math:`p_\theta(x_{0:T})`: ``"x_T"`` :math:`\sim \mathcal N(0, I)`,
        then ``"x_{t-1}"`` :math:`\sim \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)`, with
        ``"x_0"`` observed at ``x`` (rows are examples; ``num_data`` scales a minibatch). With
        ``x=None`` the plate has ``num_data`` rows (default 1) and ``"x_0"`` is sampled."""
        self._register()
        t_max = self.num_timesteps
        with self._plate(x, num_data) as idx:
            n = idx.shape[0] if torch.is_tensor(idx) else int(idx)
            zeros = torch.zeros(n, self.n_features, dtype=self.dtype, device=self.device)
            xt = pyro.sample(f"x_{t_max}", dist.Normal(zeros, 1.0).to_event(1))
            scales = torch.sqrt(self.reverse_variances)
            for t in pyro.markov(range(t_max, 0, -1)):
                loc = self._reverse_mean(xt, t)
                xt = pyro.sample(
                    f"x_{t - 1}",
                    dist.Normal(loc, scales[t - 1].expand(loc.shape)).to_event(1),
                    obs=x if t == 1 else None,
                )
        return xt

    @pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        r"""The fixed forward chain :math:`q(x_{1:T}\mid x_0) = \prod_t \mathcal N(x_t;
        \sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)`, sites ``"x_1"`` ... ``"x_T"`` (no parameters)."""
        with self._data_plate(x, num_data):
            prev = x
            for t in pyro.markov(range(1, self.num_timesteps + 1)):
                beta = self.betas[t - 1]
                prev = pyro.sample(
                    f"x_{t}",
                    dist.Normal(torch.sqrt(1.0 - beta) * prev,
                                torch.sqrt(beta).expand(prev.shape)).to_event(1),
                )

    @pyro_method
    def posterior_guide(self, x: torch.Tensor, num_data: int | None = None):
        r"""The same :math:`q(x_{1:T}\mid x_0)` as :meth:`guide`, factored backwards:
        :math:`q(x_T\mid x_0) \prod_{t=T}^{2} q(x_{t-1}\mid x_t, x_0)` with
        :math:`q(x_{t-1}\mid x_t,x_0) = \mathcal N(\tilde\mu_t(x_t, x_0), \tilde\beta_t I)`,
        :math:`\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t} x_0 +
        \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t} x_t` ([2], eqs. 6-7).

        Its sites come in the model's order, so ``TraceMeanField_ELBO`` evaluates every
        :math:`\mathrm{KL}(q(x_{t-1}\mid x_t,x_0)\,\|\,p_\theta(x_{t-1}\mid x_t))` in closed
        form (``fit(loss="analytic_kl")``)."""
        t_max = self.num_timesteps
        with self._data_plate(x, num_data):
            abar = self.alphas_cumprod[t_max - 1]
            xt = pyro.sample(
                f"x_{t_max}",
                dist.Normal(torch.sqrt(abar) * x,
                            torch.sqrt(1.0 - abar).expand(x.shape)).to_event(1),
            )
            for t in pyro.markov(range(t_max, 1, -1)):
                loc, var = self._posterior(x, xt, t)
                xt = pyro.sample(
                    f"x_{t - 1}", dist.Normal(loc, torch.sqrt(var).expand(loc.shape)).to_event(1)
                )

    def _simple_model(self, x: torch.Tensor, num_data: int | None = None):
        """Pyro model holding minus Ho et al.'s unweighted noise-prediction loss as a factor
        (empty guide); **not a bound**."""
        self._register()
        with self._data_plate(x, num_data):
            xt, noise, t_idx = self._noised(x)
            err = ((noise - self._eps(xt, t_idx)) ** 2).sum(-1)  # (T, n)
            pyro.factor("simple_loss", -err.sum(0))

    def _noised(self, x0: torch.Tensor):
        """``(x_t, eps, t)`` for every :math:`t = 1..T` (leading dim), :math:`x_t =
        \\sqrt{\\bar\\alpha_t} x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon`, independent per t."""
        t_max = self.num_timesteps
        abar = self.alphas_cumprod.reshape(t_max, *([1] * x0.dim()))
        noise = torch.randn((t_max, *x0.shape), dtype=x0.dtype, device=x0.device)
        xt = torch.sqrt(abar) * x0 + torch.sqrt(1.0 - abar) * noise  # (T, ..., D), t = 1..T
        t_idx = torch.arange(1, t_max + 1, device=x0.device)
        t_idx = t_idx.reshape(t_max, *([1] * (x0.dim() - 1))).expand(xt.shape[:-1])
        return xt, noise, t_idx

    # ------------------------------------------------------------------ the closed-form bound
    def _terms(self, x0: torch.Tensor) -> torch.Tensor:
        r"""One draw of the terms of the closed-form bound, shape ``(*x0.shape[:-1], T + 1)``:
        ``[log p(x_0|x_1), -KL_2, ..., -KL_T, -KL(q(x_T|x_0) || N(0, I))]``, with an
        independent :math:`x_t \sim q(x_t \mid x_0)` for every term (differentiable in
        :math:`\theta`)."""
        t_max = self.num_timesteps
        xt, _, t_idx = self._noised(x0)
        mean = self._reverse_mean(xt, t_idx)
        var = self.reverse_variances
        # L_0 = log N(x_0; mu_theta(x_1, 1), sigma_1^2 I)
        l0 = dist.Normal(mean[0], torch.sqrt(var[0])).log_prob(x0).sum(-1)
        out = [l0[..., None]]
        if t_max >= 2:
            ploc, pvar = self._posterior(x0, xt[1:], t_idx[1:])
            kl = _gauss_kl(ploc, pvar, mean[1:], var[1:].reshape(-1, *([1] * x0.dim())))
            out.append((-kl).movedim(0, -1))
        abar_t = self.alphas_cumprod[-1]
        prior_kl = _gauss_kl(torch.sqrt(abar_t) * x0, 1.0 - abar_t, torch.zeros_like(x0),
                             torch.ones((), dtype=x0.dtype, device=x0.device))
        out.append(-prior_kl[..., None])
        return torch.cat(out, -1)

    @torch.no_grad()
    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("svi",)

    def fit(
        self,
        x,
        *,
        method: str = "svi",
        num_steps: int = 1000,
        lr: float = 1e-3,
        batch_size: int | None = None,
        loss="closed_form",
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Maximize the ELBO by Pyro SVI (Adam); the recorded loss is the negative ELBO per
        example (nats; a bound, not a likelihood).

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
        method : {"svi"}
        num_steps, lr, batch_size, tol, seed, progress, callback, data_info
            As in :meth:`GenerativeModel.fit <pyrogen.models.GenerativeModel.fit>`.
        loss : {"closed_form", "analytic_kl", "elbo", "simple"} or pyro.infer.ELBO
            The estimator of the bound (module docstring): ``"closed_form"`` (one batched
            network pass per step), ``"analytic_kl"`` (``TraceMeanField_ELBO`` on
            ``model``/``posterior_guide``), ``"elbo"`` (``Trace_ELBO`` on ``model``/``guide``),
            or any Pyro ELBO instance, applied to ``model``/``guide``. ``"simple"`` is **not a
            bound**: Ho et al.'s unweighted noise-prediction loss :math:`\sum_t \mathbb E
            \lVert \epsilon - \epsilon_\theta(x_t, t)\rVert^2` per example [2] (the recorded
            loss is that squared error, not nats), which weights the high-noise steps more
            than the ELBO does and is known to give better samples; it does not train the
            variances :math:`\sigma_t^2` (they keep their values, :math:`\beta_t` at
            initialization). Evaluate with :meth:`elbo` / :meth:`log_likelihood` afterwards.
        """
        if method != "svi":
            raise ValueError(
                f"method must be one of {self.fit_methods()!r}. Got {method!r} instead."
            )
        x = self._check_x(x)
        model, guide = self.model, self.guide
        if isinstance(loss, pyro.infer.ELBO):
            elbo, name = loss, type(loss).__name__
        else:
            name = check_choice(loss, "loss", LOSSES)
            if loss == "closed_form":
                model, guide = self._closed_form_model, self._empty_guide
                elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)
            elif loss == "simple":
                model, guide = self._simple_model, self._empty_guide
                elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)
            elif loss == "analytic_kl":
                guide = self.posterior_guide
                elbo = pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1)
            else:
                elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)
        hist = self._fit_svi(
            x, num_steps=num_steps, lr=lr, batch_size=batch_size, loss=elbo, tol=tol,
            seed=seed, progress=progress, callback=callback, data_info=data_info,
            model=model, guide=guide,
        )
        hist.info["loss"] = (
            "noise-prediction squared error per example (simple; not a bound)"
            if loss == "simple" else f"negative ELBO per example ({name})"
        )
        return hist

    # ------------------------------------------------------------------ sampling / encoding
    @torch.no_grad()
    def sample_chain(self, n: int) -> torch.Tensor:
        r"""Ancestral samples of the whole reverse chain, shape ``(T + 1, n, D)``, from
        :math:`x_T` (row 0) to :math:`x_0` (row ``T``): a trace of :meth:`model` without
        observations (the pictures of the denoising process)."""
        n = self._check_n(n)
        with poutine.block():
            tr = poutine.trace(self.model).get_trace(None, n)
        return torch.stack([tr.nodes[f"x_{t}"]["value"]
                            for t in range(self.num_timesteps, -1, -1)])

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        r"""Draw ``n`` examples :math:`x_0 \sim p_\theta(x_0)` by running the reverse chain (a
        trace of :meth:`model` without observations), shape ``(n, n_features)``."""
        n = self._check_n(n)
        with poutine.block():
            tr = poutine.trace(self.model).get_trace(None, n)
        return tr.nodes["x_0"]["value"]

    @torch.no_grad()
    def transform(self, x, t: int | None = None) -> torch.Tensor:
        r"""Posterior mean of :math:`x_t` under the fixed forward chain,
        :math:`\mathbb E_q[x_t \mid x_0] = \sqrt{\bar\alpha_t}\, x_0` (default :math:`t = T`).

        The latent variables of a diffusion model are noisy copies of the data, not a learned
        representation: this is the protocol's ``transform``, not a feature extractor."""
        x = self._check_x(x)
        t = self.num_timesteps if t is None else check_int(t, "t", low=0,
                                                           high=self.num_timesteps)
        if t == 0:
            return x.clone()
        return torch.sqrt(self.alphas_cumprod[t - 1]) * x


def _check_sizes(value, name) -> tuple[int, ...]:
    if isinstance(value, (int, str)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"{name} must be a sequence of positive ints. Got {value!r} of type "
            f"{type(value).__name__} instead."
        )
    out = tuple(value)
    for v in out:
        check_int(v, name + " entries", low=1)
    return out


# ================================================================================ binary data
def _bern_kl(q, logits_p):
    r""":math:`\mathrm{KL}(\mathrm{Bern}(q)\,\|\,\mathrm{Bern}(\sigma(\ell)))` elementwise
    (``q`` may be exactly 0 or 1)."""
    logsig = nn.functional.logsigmoid
    return (torch.xlogy(q, q) + torch.xlogy(1.0 - q, 1.0 - q)
            - q * logsig(logits_p) - (1.0 - q) * logsig(-logits_p))


@register_model("binomial_diffusion")
class BinomialDiffusion(DiffusionBase):
    r"""Binomial diffusion for binary data (Sohl-Dickstein et al. 2015 [1]_, §2.6 and App. B.2;
    book §20.13): learned reverse chain (model), fixed bit-flipping forward chain (guide).

    The forward chain mixes every bit toward the stationary :math:`\mathrm{Bernoulli}(\pi)`
    (``base_rate``; :math:`\pi = 0.5` in [1]_),

    .. math::

        q(x_t \mid x_{t-1}) = \mathrm{Bernoulli}\bigl(x_t;\ x_{t-1}(1-\beta_t) + \pi\beta_t\bigr),
        \qquad
        q(x_t = 1 \mid x_0) = \bar\alpha_t x_0 + (1-\bar\alpha_t)\pi,
        \quad \bar\alpha_t = \prod_{s\le t}(1-\beta_s),

    independently over the :math:`D` bits. The generative model is the reverse chain

    .. math::

        p_\theta(x_{0:T}) = \mathrm{Bernoulli}(x_T; \pi) \prod_{t=1}^T
        \mathrm{Bernoulli}\bigl(x_{t-1};\ \sigma(\ell_\theta(x_t, t))\bigr),
        \qquad \ell_\theta(x_t, t) = \operatorname{logit}\bigl(x_t(1-\beta_t) + \pi\beta_t\bigr)
        + f_\theta(2x_t - 1, \phi(t)),

    :math:`f_\theta` an MLP on all bits of :math:`x_t` and sinusoidal features of :math:`t`
    whose output layer starts at zero. The first term is the exact reverse kernel when the
    data are :math:`\mathrm{Bernoulli}(\pi)^{\otimes D}` (the forward chain is then reversible):
    the untrained model *is* :math:`\mathrm{Bernoulli}(\pi)^{\otimes D}` and the network
    learns the departure from it. The bits of :math:`x_{t-1}` are independent given
    :math:`x_t`; their dependence comes from the chain.

    In Pyro terms: :meth:`model` has sites ``"x_T"`` ... ``"x_1"`` (latent) and ``"x_0"``
    (observed), :meth:`guide` the sites ``"x_1"`` ... ``"x_T"`` of the forward chain (no
    parameters), so ``Trace_ELBO`` on them is the evidence lower bound
    :math:`\mathcal L(x_0) = \mathbb E_q \log \frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)} \le
    \log p_\theta(x_0)`. ``fit(loss="closed_form")`` (default) trains the same bound in its
    KL form ([1]_ eq. 14)

    .. math::

        \mathcal L = \mathbb E_q \log p_\theta(x_0 \mid x_1) - \sum_{t=2}^T
        \mathbb E_{q(x_t\mid x_0)}\mathrm{KL}\bigl(q(x_{t-1}\mid x_t, x_0)\,\|\,
        p_\theta(x_{t-1}\mid x_t)\bigr) - \mathrm{KL}\bigl(q(x_T\mid x_0)\,\|\,
        \mathrm{Bernoulli}(\pi)\bigr),

    with the Bernoulli posterior :math:`q(x_{t-1}=1\mid x_t,x_0) \propto q(x_t\mid x_{t-1}=1)\,
    q(x_{t-1}=1\mid x_0)` and every KL between Bernoullis in closed form, one independent
    :math:`x_t \sim q(x_t\mid x_0)` per term (:meth:`elbo_terms`).

    :meth:`log_likelihood` is the importance-sampled estimate with the forward chain as
    proposal (kind ``"is_estimate"``: a stochastic lower bound in expectation, at least the
    ELBO; check ``info["min_ess"]``). :meth:`elbo` returns the bound under its own name.

    Parameters
    ----------
    n_features : int
        :math:`D`.
    num_timesteps : int, optional
        :math:`T` (default 50; see :func:`diffusion_schedule`).
    schedule : {"cosine", "linear"} or sequence of float
        The :math:`\beta_t`, each in the open interval :math:`(0, 1)`.
    beta_range : (float, float), optional
        Endpoints of the ``"linear"`` schedule.
    base_rate : float or sequence of float
        :math:`\pi`, the stationary distribution (a scalar, or one value per feature, e.g. the
        pixel marginals of the training data), each in :math:`(0, 1)`.
    hidden_dims : tuple of int
        Hidden layers of :math:`f_\theta`.
    time_embedding_dim : int
    activation : {"silu", "softplus", "tanh", "relu"}
    seed : int or None
        Seeds the initial network weights.

    Notes
    -----
    Registered as ``"binomial_diffusion"`` (``pyrogen.models.MODELS``): :meth:`save` and
    :func:`pyrogen.models.load` round-trip it.
    ``Predictive(m.model, num_samples=S)(None, n)["x_0"]`` draws :math:`S \times n` samples.

    References
    ----------
    .. [1] J. Sohl-Dickstein, E. Weiss, N. Maheswaranathan, S. Ganguli. *Deep unsupervised
       learning using nonequilibrium thermodynamics*. ICML 2015.
    """

    log_likelihood_kind = "is_estimate"

    def __init__(
        self,
        n_features: int,
        num_timesteps: int | None = None,
        schedule="cosine",
        beta_range=None,
        base_rate=0.5,
        hidden_dims=(128, 128),
        time_embedding_dim: int = 16,
        activation: str = "silu",
        seed: int | None = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        betas = diffusion_schedule(schedule, num_timesteps, beta_range)
        if isinstance(base_rate, numbers.Real) and not isinstance(base_rate, bool):
            rate = _check_betas([base_rate], "base_rate")
            rate_cfg = rate[0]
        else:
            rate = _check_betas(base_rate, "base_rate", length=n_features)
            rate_cfg = rate
        hidden = _check_sizes(hidden_dims, "hidden_dims")
        time_embedding_dim = check_int(time_embedding_dim, "time_embedding_dim", low=0)
        check_choice(activation, "activation", tuple(_ACTIVATIONS))
        super().__init__(
            n_features=n_features,
            num_timesteps=len(betas),
            schedule=schedule if isinstance(schedule, str) else betas.tolist(),
            beta_range=None if beta_range is None else [float(b) for b in beta_range],
            base_rate=rate_cfg,
            hidden_dims=list(hidden),
            time_embedding_dim=time_embedding_dim,
            activation=activation,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        self.num_timesteps = len(betas)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_cumprod", torch.cumprod(1.0 - betas, 0))
        self.register_buffer("base_rate", torch.tensor(rate, dtype=torch.float64)
                             .expand(n_features).clone())
        self.register_buffer("time_features", _time_features(len(betas), time_embedding_dim))
        self.net = _EpsNet(n_features, time_embedding_dim, hidden, activation)
        self.to(torch.get_default_dtype())
        self._pname = self._pyro_name

    # ------------------------------------------------------------------ chain quantities
    _PROPOSAL = "forward binomial diffusion chain q(x_1:T | x_0)"

    def _check_bits(self, x, name: str = "x") -> torch.Tensor:
        return check_binary(self._check_x(x, name), name)

    def _check_data(self, x) -> torch.Tensor:
        return self._check_bits(x)

    def _col(self, v, t):
        """``v[t - 1]`` for an int ``t``; with a LongTensor ``t`` a trailing unit dim added."""
        out = v[t - 1]
        return out if isinstance(t, int) else out[..., None]

    def forward_marginal(self, x0: torch.Tensor, t) -> torch.Tensor:
        r""":math:`q(x_t = 1 \mid x_0) = \bar\alpha_t x_0 + (1-\bar\alpha_t)\pi` (``t >= 1``, an
        int or a LongTensor broadcasting against ``x0.shape[:-1]``)."""
        abar = self._col(self.alphas_cumprod, t)
        return abar * x0 + (1.0 - abar) * self.base_rate

    def _step_probs(self, x_prev, t):
        r""":math:`q(x_t = 1 \mid x_{t-1}) = x_{t-1}(1-\beta_t) + \pi\beta_t`."""
        beta = self._col(self.betas, t)
        return x_prev * (1.0 - beta) + self.base_rate * beta

    def reverse_logits(self, xt: torch.Tensor, t) -> torch.Tensor:
        r""":math:`\ell_\theta(x_t, t)`, the logits of :math:`p_\theta(x_{t-1} = 1 \mid x_t)`
        (``t`` an int or a LongTensor, 1-based)."""
        p0 = self._step_probs(xt, t)
        base = torch.log(p0) - torch.log1p(-p0)
        return base + self.net(2.0 * xt - 1.0, self.time_features[t - 1])

    def _posterior_probs(self, x0, xt, t):
        r""":math:`q(x_{t-1} = 1 \mid x_t, x_0)` for ``t >= 2``."""
        a = self.forward_marginal(x0, t - 1)
        beta = self._col(self.betas, t)
        on1 = (1.0 - beta) + self.base_rate * beta  # q(x_t = 1 | x_{t-1} = 1)
        on0 = self.base_rate * beta  # q(x_t = 1 | x_{t-1} = 0)
        l1 = torch.where(xt > 0.5, on1, 1.0 - on1)
        l0 = torch.where(xt > 0.5, on0, 1.0 - on0)
        return a * l1 / (a * l1 + (1.0 - a) * l0)

    def _register(self):
        pyro.module(self._pname + ".net", self.net)

    # ------------------------------------------------------------------ Pyro model / guide
    @pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        r"""The reverse chain: ``"x_T"`` :math:`\sim \mathrm{Bernoulli}(\pi)`, then
        ``"x_{t-1}"`` :math:`\sim \mathrm{Bernoulli}(\sigma(\ell_\theta(x_t, t)))`, ``"x_0"``
        observed at ``x`` (binary rows). ``x=None``: ``num_data`` rows (default 1) are
        drawn."""
        self._register()
        t_max = self.num_timesteps
        with self._plate(x, num_data) as idx:
            n = idx.shape[0] if torch.is_tensor(idx) else int(idx)
            probs = self.base_rate.expand(n, self.n_features)
            xt = pyro.sample(f"x_{t_max}", dist.Bernoulli(probs=probs).to_event(1))
            for t in pyro.markov(range(t_max, 0, -1)):
                xt = pyro.sample(
                    f"x_{t - 1}",
                    dist.Bernoulli(logits=self.reverse_logits(xt, t)).to_event(1),
                    obs=x if t == 1 else None,
                )
        return xt

    @pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        r"""The fixed forward chain :math:`q(x_{1:T}\mid x_0) = \prod_t
        \mathrm{Bernoulli}(x_t;\ x_{t-1}(1-\beta_t) + \pi\beta_t)`, sites ``"x_1"`` ...
        ``"x_T"`` (no parameters)."""
        with self._data_plate(x, num_data):
            prev = x
            for t in pyro.markov(range(1, self.num_timesteps + 1)):
                prev = pyro.sample(
                    f"x_{t}", dist.Bernoulli(probs=self._step_probs(prev, t)).to_event(1)
                )

    # ------------------------------------------------------------------ the closed-form bound
    def _terms(self, x0: torch.Tensor) -> torch.Tensor:
        r"""One draw of the terms of the closed-form bound, shape ``(*x0.shape[:-1], T + 1)``:
        ``[log p(x_0|x_1), -KL_2, ..., -KL_T, -KL(q(x_T|x_0) || Bern(pi))]``."""
        t_max = self.num_timesteps
        t_idx = torch.arange(1, t_max + 1, device=x0.device)
        t_idx = t_idx.reshape(t_max, *([1] * (x0.dim() - 1))).expand(t_max, *x0.shape[:-1])
        xt = torch.bernoulli(self.forward_marginal(x0, t_idx).expand(t_max, *x0.shape))
        logits = self.reverse_logits(xt, t_idx)  # (T, ..., D): p(x_{t-1} | x_t), t = 1..T
        l0 = -nn.functional.binary_cross_entropy_with_logits(
            logits[0], x0, reduction="none").sum(-1)
        out = [l0[..., None]]
        if t_max >= 2:
            post = self._posterior_probs(x0, xt[1:], t_idx[1:])
            out.append((-_bern_kl(post, logits[1:]).sum(-1)).movedim(0, -1))
        q_t = self.forward_marginal(x0, t_max)
        rate = self.base_rate
        prior_kl = (torch.xlogy(q_t, q_t) + torch.xlogy(1.0 - q_t, 1.0 - q_t)
                    - q_t * torch.log(rate) - (1.0 - q_t) * torch.log1p(-rate)).sum(-1)
        out.append(-prior_kl[..., None])
        return torch.cat(out, -1)

    @torch.no_grad()
    def fit_methods(self) -> tuple[str, ...]:
        return ("svi",)

    def fit(self, x, *, method: str = "svi", num_steps: int = 1000, lr: float = 1e-3,
            batch_size: int | None = None, loss="closed_form", tol: float | None = DEFAULT_TOL,
            seed: int | None = None, progress: bool = True, callback=None,
            data_info: dict | None = None) -> FitHistory:
        r"""Maximize the ELBO by Pyro SVI (Adam); the recorded loss is the negative ELBO per
        example (nats; a bound, not a likelihood).

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``, binary
        loss : {"closed_form", "elbo"} or pyro.infer.ELBO
            ``"closed_form"``: the KL form of the bound as a ``pyro.factor`` (class docstring);
            ``"elbo"``: ``Trace_ELBO`` on ``model``/``guide`` (one forward path per example);
            a Pyro ELBO instance is applied to ``model``/``guide``.
        method, num_steps, lr, batch_size, tol, seed, progress, callback, data_info
            As in :meth:`GenerativeModel.fit <pyrogen.models.GenerativeModel.fit>`.
        """
        if method != "svi":
            raise ValueError(
                f"method must be one of {self.fit_methods()!r}. Got {method!r} instead."
            )
        x = self._check_bits(x)
        model, guide = self.model, self.guide
        if isinstance(loss, pyro.infer.ELBO):
            elbo, name = loss, type(loss).__name__
        else:
            name = check_choice(loss, "loss", ("closed_form", "elbo"))
            elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)
            if loss == "closed_form":
                model, guide = self._closed_form_model, self._empty_guide
        hist = self._fit_svi(
            x, num_steps=num_steps, lr=lr, batch_size=batch_size, loss=elbo, tol=tol,
            seed=seed, progress=progress, callback=callback, data_info=data_info,
            model=model, guide=guide,
        )
        hist.info["loss"] = f"negative ELBO per example ({name})"
        return hist

    # ------------------------------------------------------------------ sampling / encoding
    @torch.no_grad()
    def sample_chain(self, n: int) -> torch.Tensor:
        r"""The whole reverse chain, shape ``(T + 1, n, D)``, from :math:`x_T` (row 0) to
        :math:`x_0` (row ``T``)."""
        n = self._check_n(n)
        with poutine.block():
            tr = poutine.trace(self.model).get_trace(None, n)
        return torch.stack([tr.nodes[f"x_{t}"]["value"]
                            for t in range(self.num_timesteps, -1, -1)])

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        r"""``n`` draws :math:`x_0 \sim p_\theta(x_0)` (the reverse chain), shape ``(n, D)``."""
        return self.sample_chain(n)[-1]

    @torch.no_grad()
    def transform(self, x, t: int | None = None) -> torch.Tensor:
        r""":math:`\mathbb E_q[x_t\mid x_0] = q(x_t = 1 \mid x_0)` (default :math:`t = T`)."""
        x = self._check_bits(x)
        t = self.num_timesteps if t is None else check_int(t, "t", low=0,
                                                           high=self.num_timesteps)
        return x.clone() if t == 0 else self.forward_marginal(x, t)
