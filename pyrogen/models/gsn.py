r"""Markov-chain generators: denoising autoencoders and generative stochastic networks.

Book §20.11-20.12. These models do not write down :math:`p(x)`; they parametrize one step of a
Markov chain, and the distribution they model is that chain's stationary distribution.

* :class:`DenoisingAutoencoder` (§20.11.1, Bengio et al. 2013 [1]): a corruption kernel
  :math:`C(\tilde x\mid x)` and a *reconstruction distribution* :math:`P_\theta(x\mid\tilde x)`
  (an MLP encoder :math:`h = f(\tilde x)` and decoder :math:`\omega = g(h)`). One step of the
  chain is :math:`\tilde x_t \sim C(\cdot\mid x_t)`, :math:`x_{t+1}\sim P_\theta(\cdot\mid
  \tilde x_t)`. If :math:`P_\theta(x\mid\tilde x)` equals the true posterior
  :math:`P(x\mid\tilde x)\propto p_{\text{data}}(x)\,C(\tilde x\mid x)`, the chain is Gibbs
  sampling on the joint :math:`p_{\text{data}}(x)C(\tilde x\mid x)` and its stationary
  distribution is :math:`p_{\text{data}}` (the consistency result; Alain et al. 2015 [3] add
  the missing detailed-balance condition for the general case).
* :class:`GSN` (§20.12, Bengio et al. 2014 [2]): the chain carries a latent state,
  :math:`h_{t+1} = \tanh(W\tilde x_t + V h_t + b + \sigma_h\varepsilon_t)`,
  :math:`x_{t+1}\sim P_\theta(x\mid h_{t+1})`. With ``n_classes`` it also carries a label
  :math:`y` and :meth:`GSN.predict_proba` gives :math:`p(y\mid x)` by clamping :math:`x` and
  running the chain over :math:`(y, h)`: the discriminant GSN of §20.12.1 (Zhou & Troyanskaya
  2014 [4]; with ``unsupervised_weight > 0`` the hybrid criterion of Zöhrer & Pernkopf 2014
  [5]).

**Training criterion (walk-back, §20.11.3).** Starting from a training example
:math:`x_0 = x`, the chain is run for ``walkback`` steps; at every step the reconstruction
distribution is asked to put mass on the *original* example:

.. math::

    \mathcal L(x) = -\sum_{k=1}^{K} \log P_\theta\bigl(x \mid \tilde x_{k-1}\,[, h_k]\bigr),
    \qquad \tilde x_{k-1}\sim C(\cdot\mid x_{k-1}),\ x_k \sim P_\theta(\cdot\mid\tilde x_{k-1}).

This is the **reconstruction negative log-likelihood**; it is *not* a likelihood of the data
and no bound on one. As a Pyro program: the model and the guide draw the same corruption (and
walk-back, and latent-noise) sites from the same distributions, so their log-densities cancel
exactly in ``Trace_ELBO`` and the negative ELBO *is* :math:`\mathcal L` (gradients flow
through the reparametrized latent noise of the GSN, not through the sampled walk-back states).

**Evaluation.** No tractable likelihood: ``log_likelihood`` returns a Parzen-window estimate
from chain samples (kind ``"parzen_unreliable"``, :func:`pyrogen.evaluation.parzen_log_likelihood`)
only because the protocol asks for a number; score samples with :mod:`pyrogen.metrics`
(classifier score, Fréchet distance, nearest neighbours) instead. On a tiny binary problem
:meth:`DenoisingAutoencoder.transition_matrix` gives the chain's exact transition matrix and
:func:`stationary_distribution` its exact stationary distribution.

References
----------
1. Y. Bengio, L. Yao, G. Alain, P. Vincent. *Generalized denoising auto-encoders as
   generative models*. NeurIPS 2013.
2. Y. Bengio, E. Thibodeau-Laufer, G. Alain, J. Yosinski. *Deep generative stochastic
   networks trainable by backprop*. ICML 2014.
3. G. Alain, Y. Bengio, L. Yao, J. Yosinski, E. Thibodeau-Laufer, S. Zhang, P. Vincent.
   *GSNs: generative stochastic networks*. Information and Inference 2016 (arXiv 2015).
4. J. Zhou, O. Troyanskaya. *Deep supervised and convolutional generative stochastic
   network for protein secondary structure prediction*. ICML 2014.
5. M. Zöhrer, F. Pernkopf. *General stochastic networks for classification*. NeurIPS 2014.
"""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.nn import pyro_method
from torch import nn

from .._random import bernoulli, normal_, uniform_
from .._validation import check_binary, check_choice, check_float, check_int, check_labels
from ..evaluation import LogLikelihood, parzen_log_likelihood
from .base import GenerativeModel, register_model

__all__ = ["DenoisingAutoencoder", "GSN", "AutoregressiveBernoulli", "stationary_distribution"]

_CORRUPTIONS = ("salt_and_pepper", "flip", "gaussian")
_LIKELIHOODS = ("bernoulli", "gaussian")
#: largest n_features for which transition_matrix enumerates the 2^D x 2^D matrix
_MAX_ENUM_FEATURES = 10


def stationary_distribution(transition: torch.Tensor) -> torch.Tensor:
    r"""Exact stationary distribution :math:`\pi` of a finite Markov chain, :math:`\pi T = \pi`.

    Parameters
    ----------
    transition : Tensor, shape ``(S, S)``
        Row-stochastic transition matrix :math:`T_{ij} = P(x_{t+1}=j\mid x_t=i)`.

    Returns
    -------
    Tensor, shape ``(S,)``
        Solves :math:`(T^\top - I)\pi = 0`, :math:`\sum_i \pi_i = 1` by least squares in float64
        (unique when the chain is irreducible, which every corruption kernel here makes it).
    """
    if not torch.is_tensor(transition):
        raise TypeError(
            f"transition must be a torch.Tensor. Got {type(transition).__name__} instead."
        )
    if transition.dim() != 2 or transition.shape[0] != transition.shape[1]:
        raise ValueError(
            f"transition must be a square matrix (S, S). Got shape {tuple(transition.shape)} "
            "instead."
        )
    t = transition.double()
    if not torch.isfinite(t).all() or (t < 0).any() or not torch.allclose(
        t.sum(1), torch.ones_like(t[:, 0]), atol=1e-8
    ):
        raise ValueError("transition must be row-stochastic (non-negative rows summing to 1).")
    s = t.shape[0]
    a = torch.cat([t.T - torch.eye(s, dtype=t.dtype), torch.ones(1, s, dtype=t.dtype)])
    b = torch.zeros(s + 1, dtype=t.dtype)
    b[-1] = 1.0
    pi = torch.linalg.lstsq(a, b.unsqueeze(1)).solution.squeeze(1)
    return pi.clamp_min(0) / pi.clamp_min(0).sum()


def _all_binary_states(d: int, dtype) -> torch.Tensor:
    """The ``2^d`` binary vectors in lexicographic order (first feature most significant)."""
    return torch.tensor(list(itertools.product((0.0, 1.0), repeat=d)), dtype=dtype)


class AutoregressiveBernoulli(TorchDistribution):
    r"""Autoregressive (fully-visible sigmoid belief net) reconstruction distribution
    :math:`P(x\mid\tilde x) = \prod_d \mathrm{Bernoulli}\bigl(x_d\mid \sigma(\omega_d +
    \textstyle\sum_{e<d} W_{de} x_e)\bigr)` with :math:`\omega = g(f(\tilde x))`.

    Unlike a factorial Bernoulli it can represent the correlated, multimodal posteriors
    :math:`P(x\mid\tilde x)` of large corruption (Bengio et al. 2013 [1] in
    :mod:`pyrogen.models.gsn`). ``log_prob`` costs one matrix product; ``sample`` is sequential
    over the :math:`D` units (:math:`O(D^2)` per example).

    Parameters
    ----------
    logits : Tensor, shape ``(..., D)``
        :math:`\omega`.
    weight : Tensor, shape ``(D, D)``
        Strictly lower-triangular :math:`W` (the upper part is ignored).
    """

    arg_constraints = {}
    support = constraints.independent(constraints.boolean, 1)

    def __init__(self, logits, weight, validate_args=None):
        self.logits, self.weight = logits, torch.tril(weight, -1)
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return AutoregressiveBernoulli(self.logits.expand(batch_shape + self.event_shape),
                                       self.weight, validate_args=False)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        logits = self.logits + value @ self.weight.T
        return -nn.functional.binary_cross_entropy_with_logits(
            logits, value.expand_as(logits), reduction="none").sum(-1)

    def sample(self, sample_shape=()):
        with torch.no_grad():
            shape = torch.Size(sample_shape) + self.batch_shape + self.event_shape
            d = AutoregressiveBernoulli(self.logits.expand(shape), self.weight)
            return d.draw(None)[0]

    def draw(self, generator=None, mask=None, clamp=None):
        """Sequential draw and the conditional probabilities along it; units where ``mask``
        is true are set to ``clamp`` (and condition the later units)."""
        x = torch.zeros_like(self.logits)
        p = torch.zeros_like(self.logits)
        for d in range(x.shape[-1]):
            p[..., d] = torch.sigmoid(self.logits[..., d] + x @ self.weight[d])
            x[..., d] = bernoulli(p[..., d], generator)
            if mask is not None:
                x[..., d] = torch.where(mask[..., d], clamp[..., d], x[..., d])
        return x, p


class _ChainModel(GenerativeModel):
    """Shared machinery of the Markov-chain generators: corruption kernel, reconstruction
    distribution, chain, clamped chain, Parzen evaluation. Subclasses define ``_networks``,
    ``_init_state``, ``_step`` (one transition up to the reconstruction distribution's
    parameters) and ``_step_sites`` (the same with the latent noise as Pyro sites)."""

    log_likelihood_kind = "parzen_unreliable"

    def _check_common(self, n_features, likelihood, corruption, noise, walkback, sample_steps,
                      parzen_num_samples, parzen_bandwidth, reconstruction):
        n_features = check_int(n_features, "n_features", low=1)
        likelihood = check_choice(likelihood, "likelihood", _LIKELIHOODS)
        reconstruction = check_choice(reconstruction, "reconstruction",
                                      ("factorial", "autoregressive"))
        if reconstruction == "autoregressive" and likelihood != "bernoulli":
            raise ValueError("reconstruction='autoregressive' needs likelihood='bernoulli'. Got "
                             f"likelihood={likelihood!r} instead.")
        if corruption is None:
            corruption = "salt_and_pepper" if likelihood == "bernoulli" else "gaussian"
        corruption = check_choice(corruption, "corruption", _CORRUPTIONS)
        if (likelihood == "bernoulli") != (corruption != "gaussian"):
            raise ValueError(
                f"corruption must match the likelihood: 'salt_and_pepper' or 'flip' for "
                f"likelihood='bernoulli', 'gaussian' for likelihood='gaussian'. Got "
                f"corruption={corruption!r} with likelihood={likelihood!r} instead."
            )
        if corruption == "gaussian":
            noise = check_float(noise, "noise", 0.0, None, "oo")
        else:
            noise = check_float(noise, "noise", 0.0, 1.0, "oo")
        walkback = check_int(walkback, "walkback", low=1)
        sample_steps = check_int(sample_steps, "sample_steps", low=1)
        parzen_num_samples = check_int(parzen_num_samples, "parzen_num_samples", low=2)
        if parzen_bandwidth is not None:
            hi = 0.5 if likelihood == "bernoulli" else None
            parzen_bandwidth = check_float(parzen_bandwidth, "parzen_bandwidth", 0.0, hi, "oo")
        return n_features, likelihood, corruption, noise, walkback

    def _make_output(self, n_features):
        if self.config["likelihood"] == "gaussian":
            self.log_scale = nn.Parameter(torch.zeros(n_features))
        if self.config["reconstruction"] == "autoregressive":
            self.autoregressive = nn.Parameter(torch.zeros(n_features, n_features))
        self._pname = self._pyro_name

    # ------------------------------------------------------------------ kernels
    @property
    def _binary(self) -> bool:
        return self.config["likelihood"] == "bernoulli"

    def _flip_prob(self) -> float:
        c, noise = self.config["corruption"], self.config["noise"]
        return noise / 2 if c == "salt_and_pepper" else noise

    def corruption_dist(self, x: torch.Tensor) -> dist.Distribution:
        r"""The corruption kernel :math:`C(\tilde x\mid x)` as a Pyro distribution (event dim 1).

        ``"salt_and_pepper"``: each unit is replaced, with probability ``noise``, by a fair
        coin, so it flips with probability ``noise/2``; ``"flip"``: each unit flips with
        probability ``noise``; ``"gaussian"``: :math:`\tilde x = x + \text{noise}\cdot
        \varepsilon`.
        """
        if self._binary:
            f = self._flip_prob()
            return dist.Bernoulli(probs=x * (1 - f) + (1 - x) * f).to_event(1)
        return dist.Normal(x, torch.full_like(x, self.config["noise"])).to_event(1)

    def _corrupt(self, x, gen):
        if self._binary:
            f = self._flip_prob()
            return bernoulli(x * (1 - f) + (1 - x) * f, gen)
        return x + self.config["noise"] * normal_(torch.empty_like(x), gen)

    def _ar_weight(self):
        """Strictly lower-triangular autoregressive weights, or ``None`` (factorial)."""
        if self.config.get("reconstruction", "factorial") != "autoregressive":
            return None
        return torch.tril(self.autoregressive, -1)

    def _recon_dist(self, out: torch.Tensor, detach: bool = False) -> dist.Distribution:
        if self._binary:
            w = self._ar_weight()
            if w is not None:
                return AutoregressiveBernoulli(out, w.detach() if detach else w)
            return dist.Bernoulli(logits=out).to_event(1)
        scale = self.log_scale.exp()
        return dist.Normal(out, (scale.detach() if detach else scale).expand_as(out)).to_event(1)

    def _recon_draw(self, out, gen, mask=None, clamp=None):
        """A draw of the reconstruction distribution and its mean (autoregressive: the
        conditional probabilities along the draw); clamped units (``mask``) take their values
        from ``clamp`` and, autoregressively, condition the later units."""
        if not self._binary:
            x = out + self.log_scale.exp() * normal_(torch.empty_like(out), gen)
            return x, out
        w = self._ar_weight()
        if w is None:
            p = torch.sigmoid(out)
            return bernoulli(p, gen), p
        return AutoregressiveBernoulli(out, w).draw(gen, mask, clamp)

    # ------------------------------------------------------------------ Pyro program
    def _sites(self, x: torch.Tensor, observe: bool):
        """The walk-back chain as Pyro sites (shared verbatim by model and guide)."""
        self._register()
        state = self._init_state(x)
        cur = x
        for k in range(self.config["walkback"]):
            xt = pyro.sample(f"x_tilde_{k}", self.corruption_dist(cur))
            state, out = self._step_sites(k, state, xt)
            if observe:
                pyro.sample(f"x_recon_{k}", self._recon_dist(out), obs=x)
            if k + 1 < self.config["walkback"]:
                cur = pyro.sample(f"x_walk_{k}", self._recon_dist(out.detach(), detach=True))
        return state

    @pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        r"""The walk-back reconstruction program: per example, ``walkback`` steps of corruption
        (sites ``"x_tilde_k"``), reconstruction of the original ``x`` (observed sites
        ``"x_recon_k"``) and a detached sample of the next state (sites ``"x_walk_k"``)."""
        with self._data_plate(x, num_data):
            self._sites(x, observe=True)

    @pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        """The same corruption/walk-back/noise sites as :meth:`model` with the same
        distributions, so that they cancel in the ELBO (see the module notes)."""
        with self._data_plate(x, num_data):
            self._sites(x, observe=False)

    # ------------------------------------------------------------------ fitting
    def fit(self, x, *, method: str = "svi", num_steps: int = 1000, lr: float = 1e-3,
            batch_size: int | None = None, tol: float | None = 1e-4, seed: int | None = None,
            progress: bool = True, callback=None, data_info: dict | None = None,
            walkback: int | None = None):
        """Minimize the walk-back reconstruction negative log-likelihood (the module's
        :math:`\\mathcal L`, per example; **not** a likelihood of the data) by Pyro SVI on
        :meth:`model`/:meth:`guide` (Adam). Arguments as in
        :meth:`GenerativeModel.fit <pyrogen.models.GenerativeModel.fit>`; the history's
        ``info["loss_name"]`` is ``"reconstruction_nll"``. ``walkback``, when given, sets the
        model's number of walk-back steps (``config["walkback"]``, which :meth:`model` and
        :meth:`guide` read) from now on."""
        if method != "svi":
            raise ValueError(
                f"method must be one of {self.fit_methods()!r}. Got {method!r} instead."
            )
        x = self._check_data(x)
        self._set_walkback(walkback)
        hist = self._fit_svi(x, num_steps=num_steps, lr=lr, batch_size=batch_size, tol=tol,
                             seed=seed, progress=progress, callback=callback,
                             data_info=data_info)
        hist.info["loss_name"] = "reconstruction_nll"
        hist.info["walkback"] = self.config["walkback"]
        return hist

    def _set_walkback(self, walkback):
        if walkback is not None:
            self.config["walkback"] = check_int(walkback, "walkback", low=1)

    def _check_data(self, x, name: str = "x") -> torch.Tensor:
        x = self._check_x(x, name)
        if self._binary:
            check_binary(x, name)
        return x

    # ------------------------------------------------------------------ the chain
    def _generator(self, seed):
        if seed is None:
            return None
        return torch.Generator(device=self.device).manual_seed(check_int(seed, "seed", low=0))

    def _random_start(self, n, gen):
        like = torch.empty(n, self.n_features, dtype=self.dtype, device=self.device)
        if self._binary:
            return bernoulli(torch.full_like(like, 0.5), gen)
        return normal_(like, gen)

    def _check_mask(self, mask, x):
        if not torch.is_tensor(mask):
            raise TypeError(f"mask must be a torch.Tensor. Got {type(mask).__name__} instead.")
        if mask.dtype != torch.bool:
            if mask.dtype.is_complex or not ((mask == 0) | (mask == 1)).all():
                raise ValueError("mask must be boolean or hold only 0 and 1. Got other values.")
            mask = mask != 0
        if mask.shape not in ((self.n_features,), tuple(x.shape)):
            raise ValueError(
                f"mask must have shape ({self.n_features},) or {tuple(x.shape)} (the shape of "
                f"x). Got shape {tuple(mask.shape)} instead."
            )
        return mask.to(x.device).expand_as(x)

    @torch.no_grad()
    def chain(self, x0, num_steps: int, *, thin: int = 1, mask=None, mean: bool = False,
              seed: int | None = None) -> torch.Tensor:
        r"""Run the generative Markov chain from ``x0`` and return its states.

        One step: :math:`\tilde x_t\sim C(\cdot\mid x_t)`, then (GSN: update :math:`h`)
        :math:`x_{t+1}\sim P_\theta(\cdot\mid\cdot)`; with ``mask`` the clamped units are reset
        to ``x0`` after every step (§20.11.2), so they never change.

        Parameters
        ----------
        x0 : Tensor, shape ``(n, n_features)``
            Start of ``n`` independent chains.
        num_steps : int
            Transitions to run.
        thin : int
            Keep every ``thin``-th state.
        mask : Tensor of bool, shape ``(n_features,)`` or ``(n, n_features)``, optional
            ``True`` = clamped (observed) unit.
        mean : bool
            Return the reconstruction distribution's mean at each kept step instead of the
            sampled state (clamped units still equal ``x0``).
        seed : int, optional
            Seeds a private generator; ``None`` uses torch's global random state.

        Returns
        -------
        Tensor, shape ``(num_steps // thin, n, n_features)``
        """
        x0 = self._check_data(x0, "x0")
        num_steps = check_int(num_steps, "num_steps", low=1)
        thin = check_int(thin, "thin", low=1)
        if mask is not None:
            mask = self._check_mask(mask, x0)
        return self._run(x0, num_steps, thin, thin, mask, mean, self._generator(seed))

    def _run(self, x0, num_steps, start, thin, mask, mean, gen, state=None):
        """``num_steps`` transitions from ``x0``; keeps the states at steps ``start``,
        ``start + thin``, ...; clamps ``mask`` to ``x0``."""
        x, kept = x0.clone(), []
        state = self._init_state(x0) if state is None else state
        for t in range(1, num_steps + 1):
            state, out = self._step(state, self._corrupt(x, gen), gen)
            x, m = self._recon_draw(out, gen, mask, x0)
            if mask is not None:
                x = torch.where(mask, x0, x)
                m = torch.where(mask, x0, m)
            if t >= start and (t - start) % thin == 0:
                kept.append(m if mean else x)
        if not kept:
            return x0.new_empty(0, *x0.shape)
        return torch.stack(kept)

    @torch.no_grad()
    def sample(self, n: int, num_steps: int | None = None, *, num_chains: int | None = None,
               thin: int = 1, x0=None, mean: bool = False, seed: int | None = None):
        """Draw ``n`` states of the chain.

        ``num_chains`` chains (default ``n``) start from ``x0`` (default: fair coins, or
        standard normals for real data), run ``num_steps`` (default the constructor's
        ``sample_steps``) burn-in transitions, then every ``thin`` steps each chain contributes
        one state until there are ``n``. ``mean=True`` returns reconstruction means (for
        pictures). The draws are approximate samples of the chain's stationary distribution,
        the model's implicit :math:`p(x)`. Returns shape ``(n, n_features)``.
        """
        n = self._check_n(n)
        burn = check_int(self.config["sample_steps"] if num_steps is None else num_steps,
                         "num_steps", low=1)
        m = n if num_chains is None else check_int(num_chains, "num_chains", low=1)
        thin = check_int(thin, "thin", low=1)
        gen = self._generator(seed)
        if x0 is None:
            x0 = self._random_start(m, gen)
        else:
            x0 = self._check_data(x0, "x0")
            if x0.shape[0] != m:
                raise ValueError(f"x0 must have {m} rows (num_chains). Got {x0.shape[0]} "
                                 "instead.")
        records = math.ceil(n / m)
        out = self._run(x0, burn + (records - 1) * thin, burn, thin, None, mean, gen)
        return out.reshape(-1, self.n_features)[:n]

    @torch.no_grad()
    def inpaint(self, x, mask, num_steps: int | None = None, *, mean: bool = False,
                seed: int | None = None) -> torch.Tensor:
        """Conditional sampling by clamping (§20.11.2): the units where ``mask`` is ``True``
        keep their values from ``x``; the others start from noise and are resampled by the
        chain for ``num_steps`` (default ``sample_steps``) transitions.

        Returns the final state, shape of ``x``; ``result[mask] == x[mask]`` exactly.
        """
        x = self._check_data(x)
        mask = self._check_mask(mask, x)
        steps = check_int(self.config["sample_steps"] if num_steps is None else num_steps,
                          "num_steps", low=1)
        gen = self._generator(seed)
        start = torch.where(mask, x, self._random_start(x.shape[0], gen))
        return self._run(start, steps, steps, 1, mask, mean, gen)[-1]

    # ------------------------------------------------------------------ evaluation
    def log_likelihood(self, x, num_samples: int | None = None, bandwidth: float | None = None,
                       seed: int | None = 0) -> LogLikelihood:
        r"""Parzen-window estimate from chain samples (kind ``"parzen_unreliable"``).

        **Not a likelihood and no bound**: these models have no tractable :math:`p(x)`.
        ``num_samples`` (default ``parzen_num_samples``) states are drawn by :meth:`sample` and
        :func:`pyrogen.evaluation.parzen_log_likelihood` smooths them with a product-Bernoulli
        kernel (binary data, bit-flip probability ``bandwidth``) or a Gaussian kernel (real
        data, standard deviation ``bandwidth``). The estimate is biased by an amount that
        depends on the bandwidth and the dimension and shrinks very slowly with the number of
        samples (Theis et al. 2016); the standard error is only the Monte Carlo noise over
        kernel centres. Report sample-based scores (:mod:`pyrogen.metrics`) instead.
        """
        x = self._check_data(x)
        num = check_int(self.config["parzen_num_samples"] if num_samples is None
                        else num_samples, "num_samples", low=2)
        bw = self.config["parzen_bandwidth"] if bandwidth is None else bandwidth
        if bw is None:
            bw = 0.1 if self._binary else 0.2
        samples = self.sample(num, seed=seed)
        ll = parzen_log_likelihood(samples, x, kernel="bernoulli" if self._binary
                                   else "gaussian", bandwidth=bw)
        return LogLikelihood(ll.values, ll.kind, ll.stderr, info={
            **ll.info, "model": type(self).__name__,
            "chain_steps": self.config["sample_steps"]})

    def _register(self):
        for name, module in self._networks().items():
            pyro.module(self._pname + "." + name, module)


def _mlp(sizes, final=False):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if final or i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _hidden(value, name) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not value:
        raise TypeError(f"{name} must be a positive int or a non-empty tuple of them. Got "
                        f"{value!r} instead.")
    return tuple(check_int(v, name, low=1) for v in value)


@register_model("dae")
class DenoisingAutoencoder(_ChainModel):
    r"""Generalized denoising autoencoder as a generative model (book §20.11, [1] in
    :mod:`pyrogen.models.gsn`).

    The reconstruction distribution is
    :math:`P_\theta(x\mid\tilde x) = \mathrm{Bernoulli}(\sigma(g(f(\tilde x))))` (binary) or
    :math:`\mathcal N(g(f(\tilde x)), \mathrm{diag}(s^2))` (real, ``s`` learned per feature),
    :math:`f, g` tanh MLPs. The model's distribution is the stationary distribution of
    :meth:`chain`.

    Parameters
    ----------
    n_features : int
    hidden_dims : int or tuple of int
        Encoder layer sizes (the decoder mirrors them).
    likelihood : {"bernoulli", "gaussian"}
    corruption : {"salt_and_pepper", "flip", "gaussian"}, optional
        :math:`C(\tilde x\mid x)`; default ``"salt_and_pepper"`` for binary data, ``"gaussian"``
        for real data (see :meth:`corruption_dist`).
    noise : float
        Corruption level: in the open interval (0, 1) for the binary kernels, a positive
        standard deviation for ``"gaussian"``.
    walkback : int
        Corrupt/reconstruct steps per training example (§20.11.3); 1 = plain DAE training.
    sample_steps : int
        Default chain length of :meth:`sample`/:meth:`inpaint`.
    parzen_num_samples, parzen_bandwidth
        Defaults of the Parzen estimate in :meth:`log_likelihood` (bandwidth ``None``: 0.1
        flip probability for binary, 0.2 standard deviation for real data).
    reconstruction : {"factorial", "autoregressive"}
        Binary data: a factorial Bernoulli, or :class:`AutoregressiveBernoulli` (can represent
        correlated posteriors :math:`P(x\mid\tilde x)`; sampling is sequential over units).
    seed : int or None
        Seeds the initial weights.

    Notes
    -----
    Cost of one chain step: one encoder/decoder pass. :meth:`transition_matrix` is
    :math:`O(4^D)` and refuses :math:`D > 10`.
    """

    def __init__(self, n_features: int, hidden_dims=(64,), likelihood: str = "bernoulli",
                 corruption: str | None = None, noise: float = 0.2, walkback: int = 1,
                 sample_steps: int = 100, parzen_num_samples: int = 1000,
                 parzen_bandwidth: float | None = None, reconstruction: str = "factorial",
                 seed: int | None = 0):
        n_features, likelihood, corruption, noise, walkback = self._check_common(
            n_features, likelihood, corruption, noise, walkback, sample_steps,
            parzen_num_samples, parzen_bandwidth, reconstruction)
        hidden = _hidden(hidden_dims, "hidden_dims")
        super().__init__(n_features=n_features, hidden_dims=list(hidden),
                         likelihood=likelihood, corruption=corruption, noise=noise,
                         walkback=walkback, sample_steps=int(sample_steps),
                         parzen_num_samples=int(parzen_num_samples),
                         parzen_bandwidth=parzen_bandwidth, reconstruction=reconstruction,
                         seed=seed)
        self.encoder = _mlp([n_features, *hidden], final=True)
        self.decoder = _mlp([*hidden[::-1], n_features])
        self._make_output(n_features)

    def _networks(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def _init_state(self, x):
        return None

    def _step(self, state, xt, gen):
        return None, self.decoder(self.encoder(xt))

    def _step_sites(self, k, state, xt):
        return None, self.decoder(self.encoder(xt))

    def transform(self, x) -> torch.Tensor:
        """The code :math:`h = f(x)` of the clean input, shape ``(n, hidden_dims[-1])``."""
        x = self._check_data(x)
        with torch.no_grad():
            return self.encoder(x)

    @torch.no_grad()
    def corruption_matrix(self) -> torch.Tensor:
        r""":math:`C_{ij} = C(\tilde x = s_j\mid x = s_i)` over the :math:`2^D` binary states
        :math:`s` (lexicographic, first feature most significant), float64."""
        states = self._enum_states()
        d = self.corruption_dist(states.unsqueeze(1).expand(-1, len(states), -1))
        return d.log_prob(states.unsqueeze(0).expand(len(states), -1, -1)).double().exp()

    @torch.no_grad()
    def reconstruction_matrix(self) -> torch.Tensor:
        r""":math:`R_{jk} = P_\theta(x = s_k\mid\tilde x = s_j)` over the :math:`2^D` binary
        states, float64."""
        states = self._enum_states()
        out = self.decoder(self.encoder(states))
        d = self._recon_dist(out.unsqueeze(1).expand(-1, len(states), -1))
        return d.log_prob(states.unsqueeze(0).expand(len(states), -1, -1)).double().exp()

    def transition_matrix(self) -> torch.Tensor:
        r"""The chain's exact transition matrix :math:`T = C R` (``(2^D, 2^D)``, float64) for
        binary data with ``n_features <= 10``: :math:`T_{ik} = \sum_j C(s_j\mid s_i)
        P_\theta(s_k\mid s_j)`. Its :func:`stationary_distribution` is the model's
        :math:`p(x)` exactly."""
        c, r = self.corruption_matrix(), self.reconstruction_matrix()
        t = c @ r
        return t / t.sum(1, keepdim=True)

    def _enum_states(self):
        if not self._binary:
            raise ValueError("transition_matrix needs binary data (likelihood='bernoulli'). "
                             "Got likelihood='gaussian' instead.")
        if self.n_features > _MAX_ENUM_FEATURES:
            raise ValueError(
                f"transition_matrix enumerates 2^n_features states: n_features must be <= "
                f"{_MAX_ENUM_FEATURES}. Got {self.n_features} instead.")
        return _all_binary_states(self.n_features, self.dtype).to(self.device)


@register_model("gsn")
class GSN(_ChainModel):
    r"""Generative stochastic network (book §20.12, [2] in :mod:`pyrogen.models.gsn`).

    A Markov chain over :math:`(x, h)` [and :math:`y`]:

    .. math::

        \tilde x_t \sim C(\cdot\mid x_t),\qquad
        h_{t+1} = \tanh\bigl(W\tilde x_t + V h_t + b + \sigma_h \varepsilon_t\bigr),
        \ \varepsilon_t\sim\mathcal N(0, I),\qquad
        x_{t+1} \sim P_\theta(x\mid h_{t+1}) = \mathrm{Bernoulli}(\sigma(U h_{t+1} + c)),

    :math:`h_0 = 0`, trained by walk-back (the reparametrized noise :math:`\varepsilon_t` lets
    the gradient of every reconstruction term reach :math:`V`, §20.12).

    With ``n_classes = C > 0`` the GSN also has a **label chain conditioned on x** (the
    discriminant GSN, §20.12.1): :math:`\tilde y_t` is the one-hot :math:`y_t` replaced, with
    probability ``noise`` (``min(noise, 0.5)`` for real data), by a uniform class;
    :math:`h_{t+1} = \tanh(Wx + V h_t + W_y\tilde y_t + b + \sigma_h\varepsilon_t)` with
    :math:`x` clamped and uncorrupted; :math:`y_{t+1}\sim\mathrm{Cat}(\mathrm{softmax}(U_y
    h_{t+1} + c_y))`. :meth:`fit` with ``y`` trains it on the walk-back reconstruction of the
    labels only (Zhou & Troyanskaya [4]); ``unsupervised_weight > 0`` adds that weight times the
    walk-back loss of :math:`x` (hybrid criterion, [5]). :meth:`predict_proba` averages
    :math:`P(y\mid h_t)` along the clamped chain. :meth:`sample` and :meth:`inpaint` run the
    unlabelled chain over :math:`(x, h)`.

    Parameters
    ----------
    n_features : int
    n_hidden : int
        Size of the latent state :math:`h`.
    likelihood, corruption, noise, sample_steps, parzen_num_samples, parzen_bandwidth
        As in :class:`DenoisingAutoencoder`.
    reconstruction, seed
        As in :class:`DenoisingAutoencoder`.
    hidden_noise : float
        :math:`\sigma_h \ge 0`.
    walkback : int
        Chain steps per training example (default 3).
    n_classes : int
        0 for the unsupervised GSN.
    unsupervised_weight : float
        Weight of the walk-back loss on :math:`x` when training with labels.
    """

    def __init__(self, n_features: int, n_hidden: int = 128, likelihood: str = "bernoulli",
                 corruption: str | None = None, noise: float = 0.3, hidden_noise: float = 0.5,
                 walkback: int = 3, n_classes: int = 0, unsupervised_weight: float = 0.0,
                 sample_steps: int = 100, parzen_num_samples: int = 1000,
                 parzen_bandwidth: float | None = None, reconstruction: str = "factorial",
                 seed: int | None = 0):
        n_features, likelihood, corruption, noise, walkback = self._check_common(
            n_features, likelihood, corruption, noise, walkback, sample_steps,
            parzen_num_samples, parzen_bandwidth, reconstruction)
        n_hidden = check_int(n_hidden, "n_hidden", low=1)
        hidden_noise = check_float(hidden_noise, "hidden_noise", 0.0, None, "co")
        n_classes = check_int(n_classes, "n_classes", low=0)
        if n_classes == 1:
            raise ValueError("n_classes must be 0 (no labels) or at least 2. Got 1 instead.")
        unsupervised_weight = check_float(unsupervised_weight, "unsupervised_weight", 0.0, None,
                                          "co")
        super().__init__(n_features=n_features, n_hidden=n_hidden, likelihood=likelihood,
                         corruption=corruption, noise=noise, hidden_noise=hidden_noise,
                         walkback=walkback, n_classes=n_classes,
                         unsupervised_weight=unsupervised_weight,
                         sample_steps=int(sample_steps),
                         parzen_num_samples=int(parzen_num_samples),
                         parzen_bandwidth=parzen_bandwidth, reconstruction=reconstruction,
                         seed=seed)
        self.up = nn.Linear(n_features, n_hidden)
        self.lateral = nn.Linear(n_hidden, n_hidden, bias=False)
        self.down = nn.Linear(n_hidden, n_features)
        if n_classes:
            self.label_up = nn.Linear(n_classes, n_hidden, bias=False)
            self.label_down = nn.Linear(n_hidden, n_classes)
        self._make_output(n_features)

    def _networks(self):
        nets = {"up": self.up, "lateral": self.lateral, "down": self.down}
        if self.config["n_classes"]:
            nets.update(label_up=self.label_up, label_down=self.label_down)
        return nets

    def _init_state(self, x):
        return x.new_zeros(x.shape[0], self.config["n_hidden"])

    def _pre(self, h, xt, yt=None):
        pre = self.up(xt) + self.lateral(h)
        if yt is not None:
            pre = pre + self.label_up(yt)
        return pre

    def _step(self, h, xt, gen, yt=None):
        pre = self._pre(h, xt, yt)
        sh = self.config["hidden_noise"]
        if sh > 0:
            pre = pre + sh * normal_(torch.empty_like(pre), gen)
        h = torch.tanh(pre)
        return h, self.down(h)

    def _noise_site(self, name, pre):
        sh = self.config["hidden_noise"]
        if sh > 0:
            pre = pyro.sample(name, dist.Normal(pre, torch.full_like(pre, sh)).to_event(1))
        return torch.tanh(pre)

    def _step_sites(self, k, h, xt):
        h = self._noise_site(f"h_{k}", self._pre(h, xt))
        return h, self.down(h)

    def transform(self, x) -> torch.Tensor:
        r"""The noise-free first latent state :math:`h_1 = \tanh(Wx + b)` of the clean input,
        shape ``(n, n_hidden)``."""
        x = self._check_data(x)
        with torch.no_grad():
            return torch.tanh(self.up(x))

    # ------------------------------------------------------------------ labels (§20.12.1)
    def _check_y(self, y, n):
        if not self.config["n_classes"]:
            raise ValueError("y needs a GSN built with n_classes >= 2. Got n_classes=0.")
        return check_labels(y, n, self.config["n_classes"])

    def _label_noise(self) -> float:
        """Probability that the label corruption replaces :math:`y` by a uniform class:
        ``noise`` for binary data, ``min(noise, 0.5)`` for real data."""
        return self.config["noise"] if self._binary else min(self.config["noise"], 0.5)

    def _random_labels(self, n, like, gen):
        c = self.config["n_classes"]
        u = uniform_(like.new_empty(n), gen)
        return nn.functional.one_hot((u * c).long().clamp_max(c - 1), c).to(like.dtype)

    def _corrupt_label(self, y1h, gen):
        keep = bernoulli(torch.full_like(y1h[:, :1], 1.0 - self._label_noise()), gen)
        return keep * y1h + (1 - keep) * self._random_labels(y1h.shape[0], y1h, gen)

    def _label_dist(self, y1h):
        r = self._label_noise()
        return dist.OneHotCategorical(probs=(1 - r) * y1h + r / self.config["n_classes"])

    @pyro_method
    def supervised_model(self, x: torch.Tensor, y: torch.Tensor, num_data: int | None = None):
        r"""The discriminant GSN's walk-back program: :math:`x` clamped, corrupted labels
        ``"y_tilde_k"``, latent noise ``"h_k"``, observed reconstructions ``"y_recon_k"`` of the
        true one-hot label, detached next labels ``"y_walk_k"``; plus, with
        ``unsupervised_weight > 0``, the walk-back program of :math:`x` scaled by it."""
        self._label_sites(x, y, True, num_data)

    @pyro_method
    def supervised_guide(self, x: torch.Tensor, y: torch.Tensor, num_data: int | None = None):
        """The sites of :meth:`supervised_model` with the same distributions."""
        self._label_sites(x, y, False, num_data)

    def _label_sites(self, x, y, observe, num_data):
        self._register()
        c = self.config["n_classes"]
        y1h = nn.functional.one_hot(y, c).to(x.dtype)
        with self._data_plate(x, num_data):
            h, cur = self._init_state(x), y1h
            for k in range(self.config["walkback"]):
                yt = pyro.sample(f"y_tilde_{k}", self._label_dist(cur))
                h = self._noise_site(f"hy_{k}", self._pre(h, x, yt))
                logits = self.label_down(h)
                if observe:
                    pyro.sample(f"y_recon_{k}", dist.OneHotCategorical(logits=logits), obs=y1h)
                if k + 1 < self.config["walkback"]:
                    cur = pyro.sample(f"y_walk_{k}",
                                      dist.OneHotCategorical(logits=logits.detach()))
            w = self.config["unsupervised_weight"]
            if w > 0:
                with pyro.poutine.scale(scale=w):
                    self._sites(x, observe=observe)

    def fit(self, x, y=None, **kwargs):
        """Without ``y``: walk-back training of the chain over :math:`(x, h)` (see
        :meth:`_ChainModel.fit`). With ``y`` (``n_classes >= 2``): the discriminant/hybrid
        criterion of :meth:`supervised_model` (reconstruction negative log-likelihood of
        the labels, not a likelihood). Keyword arguments as in ``fit`` without labels."""
        if y is None:
            return super().fit(x, **kwargs)
        method = kwargs.pop("method", "svi")
        if method != "svi":
            raise ValueError(
                f"method must be one of {self.fit_methods()!r}. Got {method!r} instead.")
        x = self._check_data(x)
        y = self._check_y(y, x.shape[0])
        self._set_walkback(kwargs.pop("walkback", None))
        data = torch.cat([x, y.to(x.dtype).unsqueeze(1)], 1)
        d = self.n_features

        def split(fn):
            def run(xy, num_data=None):
                return fn(xy[:, :d], xy[:, d].long(), num_data)
            return run

        kwargs.setdefault("lr", 1e-3)
        hist = self._fit_svi(data, model=split(self.supervised_model),
                             guide=split(self.supervised_guide), **kwargs)
        hist.info["loss_name"] = "label_reconstruction_nll"
        return hist

    @torch.no_grad()
    def predict_proba(self, x, num_steps: int = 20, seed: int | None = 0) -> torch.Tensor:
        r""":math:`p(y\mid x)` of the discriminant GSN: :math:`x` clamped, the chain over
        :math:`(y, h)` run ``num_steps`` steps from a uniformly drawn label, the reconstruction
        probabilities :math:`P(y\mid h_t)` averaged over the steps. Shape ``(n, n_classes)``."""
        x = self._check_data(x)
        if not self.config["n_classes"]:
            raise ValueError("predict_proba needs a GSN built with n_classes >= 2. Got "
                             "n_classes=0.")
        num_steps = check_int(num_steps, "num_steps", low=1)
        gen = self._generator(seed)
        c = self.config["n_classes"]
        y = self._random_labels(x.shape[0], x, gen)
        h = self._init_state(x)
        total = torch.zeros_like(y)
        for _ in range(num_steps):
            h, _ = self._step(h, x, gen, self._corrupt_label(y, gen))
            p = torch.softmax(self.label_down(h), -1)
            total += p
            idx = torch.multinomial(p, 1, generator=gen).squeeze(1)
            y = nn.functional.one_hot(idx, c).to(x.dtype)
        return total / num_steps

    def predict(self, x, num_steps: int = 20, seed: int | None = 0) -> torch.Tensor:
        """Most probable class under :meth:`predict_proba`, shape ``(n,)``."""
        return self.predict_proba(x, num_steps, seed).argmax(1)
