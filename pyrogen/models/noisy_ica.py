r"""Noisy independent component analysis (book §13.2) as Pyro programs.

* :class:`NoisyICA` — :math:`x = W h + b + \epsilon`, :math:`\epsilon \sim \mathcal N(0,
  \operatorname{diag}\sigma^2)`, with an amortized Normal guide over ``h``; its log-likelihood is
  an importance-sampled estimate (kind ``"is_estimate"``) with standard errors.
* :class:`BayesianNoisyICA` — the same with a Gaussian prior on ``W`` and a mean-field Normal
  guide over ``W``; its ``log_likelihood`` is an importance-sampled estimate of the posterior
  predictive density :math:`\log \int q(W)\, p(x \mid W)\, dW`.

Sources, identifiability and references as in :mod:`pyrogen.models.ica` (the noiseless model,
used here as the default starting point of ``fit``).
"""

from __future__ import annotations

import numbers

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroModule, PyroParam

from .._validation import check_choice, check_float, check_int
from ..evaluation import LogLikelihood, log_mean_exp
from ._ica_solvers import seeded_orthogonal
from ._ica_sources import SourceMixin, config_source
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model
from .ica import ICA
from .ica_stats import gaussianity_test, warn_if_gaussian

__all__ = ["NoisyICA", "BayesianNoisyICA"]


@register_model("noisy-ica")
class NoisyICA(SourceMixin, GenerativeModel):
    r"""Noisy ICA: :math:`x = W h + b + \epsilon` with factorial non-Gaussian :math:`p(h)`.

    .. math::

        h_k \sim p_k \ (\text{unit variance}), \qquad
        x \mid h \sim \mathcal N(W h + b, \operatorname{diag}(\sigma^2)).

    The posterior over :math:`h` has no closed form; the guide is an amortized diagonal Normal
    :math:`q(h \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag} s_\phi(x)^2)` with a linear
    encoder (``hidden_dim=None``) or a one-hidden-layer MLP. ``fit`` maximizes the ELBO by SVI.

    Parameters
    ----------
    n_features : int
    n_components : int
        Number of sources ``K`` (any ``K >= 1``; ``K > D`` is overcomplete).
    source : str or torch.distributions.Distribution
        As in :class:`ICA`; default ``"laplace"``.
    noise : {"diagonal", "isotropic"}
        Noise covariance :math:`\operatorname{diag}(\sigma^2)` or :math:`\sigma^2 I`.
    hidden_dim : int, optional
        Width of the encoder's hidden layer (``None``: linear encoder).
    df : float
        Degrees of freedom of ``"student_t"``.
    seed : int or None
        Seeds the random initial encoder weights (the global random state is left as it was);
        ``None`` draws them from torch's global random state. ``fit(seed=...)`` seeds the
        training; see :class:`~pyrogen.models.base.GenerativeModel`.

    Notes
    -----
    ``log_likelihood`` is **not** exact: it is the importance-sampled estimate
    :math:`\log \frac1S\sum_s p(x, h_s)/q(h_s\mid x)`, :math:`h_s \sim q(\cdot\mid x)` (kind
    ``"is_estimate"``; unbiased for :math:`p(x)`, a stochastic lower bound on :math:`\log p(x)`),
    with the delta-method standard error per example. Cost :math:`O(n S D K)`.
    """

    log_likelihood_kind = "is_estimate"

    def __init__(
        self,
        n_features: int,
        n_components: int,
        source="laplace",
        noise: str = "diagonal",
        hidden_dim: int | None = None,
        df: float = 5.0,
        seed: int | None = 0,
    ):
        d = check_int(n_features, "n_features", low=1)
        k = check_int(n_components, "n_components", low=1)
        noise = check_choice(noise, "noise", ("diagonal", "isotropic"))
        if hidden_dim is not None:
            hidden_dim = check_int(hidden_dim, "hidden_dim", low=1)
        super().__init__(
            n_features=d,
            n_components=k,
            source=config_source(source),
            noise=noise,
            hidden_dim=hidden_dim,
            df=float(df) if isinstance(df, numbers.Real) else df,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        self.n_components = k
        self._init_source(source, df, k)
        self._init_mixing(d, k)
        self.bias = PyroParam(torch.zeros(d))
        self.gaussianity_: dict = {}
        self.noise_scale = PyroParam(
            torch.ones(d if noise == "diagonal" else 1), constraint=constraints.positive
        )
        if hidden_dim is None:
            self.enc_in = PyroModule[torch.nn.Linear](d, k)
            self.enc_log_scale = PyroParam(torch.full((k,), -1.0))
        else:
            self.enc_in = PyroModule[torch.nn.Linear](d, hidden_dim)
            self.enc_hidden = PyroModule[torch.nn.Linear](hidden_dim, 2 * k)

    def _init_mixing(self, d, k):
        self.mixing = PyroParam(torch.eye(d, k))

    # ------------------------------------------------------------------ pieces
    def _mixing_value(self):
        """The mixing used by ``transform``/``sample``: the point estimate here."""
        return self.mixing

    def _noise(self):
        return self.noise_scale.expand(self.n_features)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Guide parameters: loc and scale of :math:`q(h \\mid x)`, each ``(n, K)``."""
        xc = x - self.bias
        if self.config["hidden_dim"] is None:
            loc = self.enc_in(xc)
            scale = torch.nn.functional.softplus(self.enc_log_scale).expand_as(loc)
        else:
            out = self.enc_hidden(torch.tanh(self.enc_in(xc)))
            loc, raw = out.split(self.n_components, -1)
            scale = torch.nn.functional.softplus(raw)
        return loc, scale + 1e-6

    def _sample_mixing(self):
        return self.mixing

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        """:math:`h \\sim p(h)`, :math:`x \\sim \\mathcal N(Wh + b, \\operatorname{diag}
        \\sigma^2)` in the ``"data"`` plate."""
        w = self._sample_mixing()
        prior = self.source_distribution().to_event(1)
        with self._data_plate(x, num_data):
            h = pyro.sample("h", prior)
            mean = h @ w.transpose(-1, -2) + self.bias
            pyro.sample("x", dist.Normal(mean, self._noise()).to_event(1), obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        """Amortized :math:`q(h \\mid x)`."""
        self._guide_global()
        loc, scale = self.encode(x)
        with self._data_plate(x, num_data):
            pyro.sample("h", dist.Normal(loc, scale).to_event(1))

    def _guide_global(self):
        return None

    # ------------------------------------------------------------------ protocol verbs
    def fit(self, x, *, method: str = "svi", num_steps: int = 1000, lr: float = 0.01,
            batch_size: int | None = None, loss=None, tol: float | None = DEFAULT_TOL,
            seed: int | None = None, progress: bool = True, callback=None,
            data_info: dict | None = None, init: str | None = "ica",
            check_identifiability: bool = True, alpha: float = 0.01) -> FitHistory:
        """Fit by SVI (ELBO); see :meth:`GenerativeModel.fit` for the other arguments
        (``num_steps`` is the maximum; ``tol`` the shared training loop's convergence test,
        with a ``ConvergenceWarning`` when the steps run out first).

        ``init`` chooses the starting point: ``"pca"`` sets :math:`b` to the data mean,
        :math:`W` to the top-``K`` principal axes scaled by their standard deviations (randomly
        rotated) and :math:`\\sigma` to the residual standard deviation (a probabilistic-PCA
        start); ``"ica"`` (default; needs ``K <= D``, else it is ``"pca"``) then replaces
        :math:`W` by the mixing of a noiseless :class:`ICA` with ``K`` components fitted by
        L-BFGS, and the linear encoder by its unmixing, which avoids the poor local optima that
        SVI with a factorized guide finds from a rotation-symmetric start; ``None`` keeps the
        current parameters (warm start).

        ``check_identifiability``: as in :class:`ICA`, the recovered sources (the posterior
        means ``transform(x)`` on the training data, at least 8 rows) are tested for
        Gaussianity (Jarque–Bera at level ``alpha``, stored in ``gaussianity_``) and a
        :class:`NonIdentifiableWarning` is raised when two or more are indistinguishable from
        Gaussian: the mixing of Gaussian sources is determined only up to a rotation, here as
        without noise. (With large noise the posterior means are shrunk towards Gaussian, so
        the test is conservative: it may warn for weakly non-Gaussian sources.)"""
        check_choice(method, "method", self.fit_methods())
        check_choice(init, "init", ("ica", "pca", None))
        if not isinstance(check_identifiability, bool):
            raise TypeError(
                "check_identifiability must be a bool. Got "
                f"{type(check_identifiability).__name__} instead."
            )
        alpha = check_float(alpha, "alpha", 0.0, 1.0, "oo")
        x = self._check_x(x, min_rows=2)
        self._begin_fit(seed)
        if init is not None:
            self._init_from_data(x, seed)
        if init == "ica" and self.n_components <= self.n_features:
            self._init_from_ica(x, seed)
        hist = self._fit_svi(
            x, num_steps=num_steps, lr=lr, batch_size=batch_size, loss=loss, tol=tol, seed=None,
            progress=progress, callback=callback, data_info=data_info,
        )
        self._canonicalize()
        self.gaussianity_ = gaussianity_test(self.transform(x)) if x.shape[0] >= 8 else {}
        if check_identifiability and self.gaussianity_:
            warn_if_gaussian(self.gaussianity_, alpha, stacklevel=3)
        return hist

    def _init_from_data(self, x, seed):
        d, k = self.n_features, self.n_components
        with torch.no_grad():
            mean = x.mean(0)
            xc = x - mean
            evals, evecs = torch.linalg.eigh(xc.T @ xc / x.shape[0])
            evals, evecs = evals.flip(0).clamp_min(0), evecs.flip(1)
            r = min(k, d)
            resid = evals[r:].mean() if r < d else evals[-1] * 0.1
            resid = resid.clamp_min(1e-6 * float(evals[0]) + 1e-12)
            w = torch.zeros(d, k, dtype=x.dtype)
            w[:, :r] = evecs[:, :r] * (evals[:r] - resid).clamp_min(1e-12).sqrt()
            w = w @ seeded_orthogonal(k, seed, x.dtype)
            self._set_mixing_init(w.contiguous())
            self.bias = mean.clone()
            self.noise_scale = torch.full_like(self.noise_scale, float(resid.sqrt()))

    def _set_mixing_init(self, w):
        self.mixing = w

    def _init_from_ica(self, x, seed):
        d, k = self.n_features, self.n_components
        ica = ICA(d, n_components=k, source="gennorm").to(x.dtype)
        ica.fit(x, seed=seed, progress=False, check_identifiability=False, num_steps=100)
        with torch.no_grad():
            noise = float(self.noise_scale.mean())
            a = ica.mixing_  # unit-variance sources; shrink for the noise share
            scale = (1 - noise**2 / a.pow(2).sum(0).clamp_min(1e-12)).clamp_min(0.1).sqrt()
            self._set_mixing_init((a * scale).contiguous())
            self.bias = ica.mean_.clone()
            if self.config["hidden_dim"] is None:
                self.enc_in.weight.copy_(ica.components_ / scale.unsqueeze(-1))
                self.enc_in.bias.zero_()

    def _canonicalize(self):
        """Order sources by decreasing mixing-column norm, sign: largest |loading| positive
        (exact symmetries of the model for the built-in symmetric sources)."""
        if not self._source_is_symmetric():
            return
        k = self.n_components
        with torch.no_grad():
            w = self._mixing_value()
            order = torch.argsort(w.norm(dim=0), descending=True, stable=True)
            w = w[:, order]
            sign = torch.sign(w[w.abs().argmax(0), torch.arange(k)])
            sign[sign == 0] = 1
            perm = torch.eye(k, dtype=w.dtype)[order] * sign.unsqueeze(-1)  # h_new = perm h
            self._apply_source_map(order, sign, perm)

    def _apply_source_map(self, order, sign, perm):
        self.mixing = (self.mixing @ perm.T).contiguous()
        self._permute_encoder(order, sign)
        if self._source_name == "gennorm":
            self.source_shape = self.source_shape[order].clone()

    def _permute_encoder(self, order, sign):
        k = self.n_components
        if self.config["hidden_dim"] is None:
            self.enc_in.weight.data = (self.enc_in.weight.data[order] * sign[:, None]).clone()
            self.enc_in.bias.data = (self.enc_in.bias.data[order] * sign).clone()
            self.enc_log_scale = self.enc_log_scale[order].clone()
        else:
            full = torch.cat([order, order + k])
            signs = torch.cat([sign, torch.ones_like(sign)])
            self.enc_hidden.weight.data = (
                self.enc_hidden.weight.data[full] * signs[:, None]
            ).clone()
            self.enc_hidden.bias.data = (self.enc_hidden.bias.data[full] * signs).clone()

    def transform(self, x) -> torch.Tensor:
        """Posterior mean of :math:`h` under the guide, shape ``(n, K)``."""
        x = self._check_x(x)
        with torch.no_grad():
            return self.encode(x)[0]

    def sample(self, n) -> torch.Tensor:
        """Draw ``n`` rows :math:`x = W h + b + \\epsilon`, shape ``(n, n_features)``."""
        n = self._check_n(n)
        with torch.no_grad():
            h = self.source_distribution().sample((n,))
            w = self._draw_mixing_for_samples(n)
            mean = (w @ h.unsqueeze(-1)).squeeze(-1) if w.dim() == 3 else h @ w.T
            return mean + self.bias + self._noise() * torch.randn_like(mean)

    def _draw_mixing_for_samples(self, n):
        return self.mixing

    def _log_joint_terms(self, x, h, w):
        """``log p(x | h, W) + log p(h)`` for ``h`` of shape ``(S, n, K)``, ``w`` broadcastable
        to ``(S, n, D, K)`` or ``(D, K)``."""
        if w.dim() == 2:
            mean = h @ w.T
        else:
            mean = (w @ h.unsqueeze(-1)).squeeze(-1)
        lp_x = dist.Normal(mean + self.bias, self._noise()).log_prob(x).sum(-1)
        lp_h = self.source_distribution().log_prob(h).sum(-1)
        return lp_x + lp_h

    def _log_weights(self, x, num_samples):
        loc, scale = self.encode(x)
        q = dist.Normal(loc, scale)
        h = q.sample((num_samples,))
        return self._log_joint_terms(x, h, self.mixing) - q.log_prob(h).sum(-1)

    def log_likelihood(self, x, num_samples: int = 200, chunk_size: int = 256,
                       seed: int | None = None) -> LogLikelihood:
        """Importance-sampled estimate of :math:`\\log p(x)` with the guide as proposal.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
        num_samples : int
            Importance samples per example ``S``.
        chunk_size : int
            Examples per chunk (memory :math:`O(\\text{chunk} \\cdot S \\cdot D)`).
        seed : int, optional
            Seed for the proposal draws.

        Returns
        -------
        LogLikelihood
            kind ``"is_estimate"`` (stochastic lower bound on :math:`\\log p(x)` in
            expectation), per-example delta-method ``stderr``.
        """
        x = self._check_x(x)
        num_samples = check_int(num_samples, "num_samples", low=2)
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
        if seed is not None:
            torch.manual_seed(check_int(seed, "seed", low=0))
        vals, ses = [], []
        with torch.no_grad():
            for i in range(0, x.shape[0], chunk_size):
                lme = log_mean_exp(self._log_weights(x[i : i + chunk_size], num_samples), 0)
                vals.append(lme.value.to(x.dtype))
                ses.append(lme.stderr.to(x.dtype))
        return LogLikelihood(
            torch.cat(vals),
            "is_estimate",
            stderr=torch.cat(ses),
            info={"num_samples": num_samples, "proposal": "guide q(h|x)",
                  "model": type(self).__name__},
        )


@register_model("bayesian-noisy-ica")
class BayesianNoisyICA(NoisyICA):
    r"""Noisy ICA with a Gaussian prior on the mixing and a mean-field Normal guide over it.

    .. math::

        W_{dk} \sim \mathcal N(0, \tau^2), \quad h_k \sim p_k, \quad
        x \mid h, W \sim \mathcal N(W h + b, \operatorname{diag}\sigma^2),

    guide :math:`q(W) q(h \mid x) = \prod_{dk}\mathcal N(W_{dk}; m_{dk}, s_{dk}^2)
    \prod_i \mathcal N(h_i; \mu_\phi(x_i), s_\phi(x_i)^2)`; :math:`b` and :math:`\sigma` are
    point estimates. ``fit`` maximizes the ELBO (with the KL of :math:`q(W)` to the prior).

    Parameters
    ----------
    prior_scale : float
        :math:`\tau`, standard deviation of the prior on each entry of :math:`W`.
    **kwargs
        As :class:`NoisyICA`.

    Notes
    -----
    ``log_likelihood`` estimates the log posterior-predictive density under the guide,
    :math:`\log \int q(W)\, p(x \mid W)\, dW`, by importance sampling with one fresh
    :math:`W_s \sim q(W)` and :math:`h_s \sim q(h \mid x)` per sample and example (kind
    ``"is_estimate"``, per-example standard errors independent across examples). ``transform``
    uses the encoder; ``sample`` draws a fresh :math:`W \sim q(W)` for every row (posterior
    predictive).
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        source="laplace",
        noise: str = "diagonal",
        hidden_dim: int | None = None,
        df: float = 5.0,
        prior_scale: float = 1.0,
        seed: int | None = 0,
    ):
        prior_scale = check_float(prior_scale, "prior_scale", 0.0, None, "oo")
        super().__init__(n_features, n_components, source, noise, hidden_dim, df, seed=seed)
        self._prior_scale = prior_scale
        self.config["prior_scale"] = prior_scale

    def _init_mixing(self, d, k):
        self.mixing_loc = PyroParam(torch.eye(d, k))
        self.mixing_scale = PyroParam(torch.full((d, k), 0.01), constraint=constraints.positive)

    def _mixing_value(self):
        return self.mixing_loc

    def _set_mixing_init(self, w):
        self.mixing_loc = w

    def _apply_source_map(self, order, sign, perm):
        self.mixing_loc = (self.mixing_loc @ perm.T).contiguous()
        self.mixing_scale = self.mixing_scale[:, order].contiguous()
        self._permute_encoder(order, sign)
        if self._source_name == "gennorm":
            self.source_shape = self.source_shape[order].clone()

    def _prior_w(self):
        d, k = self.n_features, self.n_components
        zero = torch.zeros(d, k, dtype=self.dtype, device=self.device)
        return dist.Normal(zero, self._prior_scale).to_event(2)

    def _sample_mixing(self):
        return pyro.sample("W", self._prior_w())

    def _guide_global(self):
        return pyro.sample("W", dist.Normal(self.mixing_loc, self.mixing_scale).to_event(2))

    def _draw_mixing_for_samples(self, n):
        return dist.Normal(self.mixing_loc, self.mixing_scale).sample((n,))

    def _log_weights(self, x, num_samples):
        loc, scale = self.encode(x)
        q = dist.Normal(loc, scale)
        h = q.sample((num_samples,))  # (S, n, K)
        w = dist.Normal(self.mixing_loc, self.mixing_scale).sample((num_samples, x.shape[0]))
        # W ~ q(W) is both the proposal and the integrating measure: its density cancels
        return self._log_joint_terms(x, h, w) - q.log_prob(h).sum(-1)

    def log_likelihood(self, x, num_samples: int = 200, chunk_size: int = 64,
                       seed: int | None = None) -> LogLikelihood:
        """Importance-sampled log posterior-predictive density :math:`\\log \\int q(W)
        p(x\\mid W) dW` (kind ``"is_estimate"``); arguments as :meth:`NoisyICA.log_likelihood`.
        """
        ll = super().log_likelihood(x, num_samples=num_samples, chunk_size=chunk_size, seed=seed)
        info = dict(ll.info, quantity="log posterior-predictive density under q(W)",
                    proposal="q(W) q(h|x)")
        return LogLikelihood(ll.values, ll.kind, stderr=ll.stderr, info=info)
