r"""Bayesian factor analysis and Bayesian PCA (book §13.1; Bishop 1999).

The linear-Gaussian factor model of :mod:`pyrogen.models.factor` (book §13.1 [3]_; probabilistic
PCA of Tipping & Bishop [2]_),

.. math::

    h \sim \mathcal N(0, I_K), \qquad x = W h + b + \epsilon, \qquad
    \epsilon \sim \mathcal N(0, \Psi),

with :math:`\Psi = \operatorname{diag}(\psi_1, \dots, \psi_D)` (factor analysis) or
:math:`\Psi = \sigma^2 I` (probabilistic PCA), and priors on every parameter, so that
:math:`W`, :math:`\Psi` and :math:`b` are integrated over instead of point-estimated.

**Sample sites** (stable names; the ArviZ bridge uses them as variable names):

=========  =====================  ===========================================================
site       shape                  prior
=========  =====================  ===========================================================
``alpha``  ``(K,)``               ARD precisions, :math:`\alpha_k \sim \mathrm{Gamma}(a, b)`
                                  (only with ``w_prior="ard"``), plate ``"components"``
``W``      ``(D, K)``             ``"ard"``: :math:`W_{:,k} \sim \mathcal N(0, \alpha_k^{-1} I)`;
                                  ``"normal"``: :math:`W_{ik} \sim \mathcal N(0, s_W^2)`;
                                  plate ``"features"`` (dim -1), event dim = components
``noise``  ``(D,)`` FA, ``()``    the noise **variances** :math:`\psi_i` (FA, plate
           PPCA                   ``"features"``) or :math:`\sigma^2` (PPCA);
                                  ``inverse_gamma`` / ``lognormal`` / ``half_cauchy``
``loc``    ``(D,)``               :math:`b_i \sim \mathcal N(0, s_b^2)`, plate ``"features"``
``h``      ``(n, K)``             only in the latent form: :math:`h_j \sim \mathcal N(0, I)`
``x``      ``(n, D)``             observed, plate ``"data"``
=========  =====================  ===========================================================

Two likelihood forms (``likelihood=``):

* ``"collapsed"`` (default): :math:`h` integrated out,
  :math:`x_j \sim \mathcal N(b, W W^\top + \Psi)` evaluated as
  ``LowRankMultivariateNormal(b, W, diag(Psi))`` at :math:`O(D K^2)` per example (Woodbury).
  NUTS then explores only :math:`D K + 2 D + K` dimensions and is fast.
* ``"latent"``: :math:`h` is a sample site in the data plate and
  :math:`x_j \mid h_j \sim \mathcal N(W h_j + b, \Psi)`; NUTS then also samples the
  :math:`n K` latents. Both forms define the same joint distribution of
  :math:`(W, \Psi, b, x)`.

The ARD prior (automatic relevance determination; Bishop 1999 [1]_) gives each column of
:math:`W` its own precision :math:`\alpha_k`; columns that the data do not need are shrunk to
zero, so ``n_components`` is an upper bound and :meth:`active_components` counts the columns
that survive. With Bishop's improper limit :math:`a = b \to 0` the prior would be scale-free;
pyrogen uses a proper :math:`\mathrm{Gamma}(1, 10^{-3})` by default (prior mean precision
1000, so switched-off columns have entries of order 0.03 in data units; the Student-t marginal
of :math:`W_{:,k}` has heavy tails, so needed columns are hardly shrunk). Priors are stated in
data units: standardize data whose scale is far from 1.

Non-identifiability. The likelihood is invariant under :math:`W \to W R` for every orthogonal
:math:`R` (and the ARD prior under signed permutations of the columns), so the posterior of
:math:`W` has several symmetric modes and different chains land in different ones. Averages of
:math:`W` or :math:`h` over draws are therefore taken after **post-hoc Procrustes alignment**:
each draw :math:`W_s` is rotated by :math:`R_s = \arg\min_R \lVert W_s R - W_\mathrm{ref}
\rVert_F` (orthogonal :math:`R`), where :math:`W_\mathrm{ref} = U_K \Lambda_K^{1/2}` comes from
the eigen-decomposition of the posterior mean of :math:`W W^\top` (a rotation-invariant
quantity), and :math:`h` is rotated with it. Convergence diagnostics (r-hat) are meaningful
only for rotation-invariant quantities: :meth:`BayesianPPCA.to_inference_data` adds
``WWt_diag`` (the diagonal of :math:`W W^\top`), ``col_norm2`` (the squared column norms,
sorted per draw) and ``W_aligned`` to the posterior group; ``noise`` and ``loc`` are
identified as they are.

References
----------
.. [1] C. M. Bishop, "Bayesian PCA", NIPS 11, 1999.
.. [2] M. E. Tipping and C. M. Bishop, "Probabilistic principal component analysis",
   JRSS B 61(3), 1999.
.. [3] I. Goodfellow, Y. Bengio and A. Courville, *Deep Learning*, MIT Press, 2016, §13.1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import pyro.infer
import pyro.infer.autoguide as autoguide
import torch
from pyro import poutine
from pyro.infer.autoguide.initialization import init_to_median

from .._validation import check_choice, check_float, check_int
from ..evaluation import LogLikelihood
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["BayesianFactorAnalysis", "BayesianPPCA"]

#: default (first, second) parameters of each noise prior; see the class docstring
NOISE_PRIORS: dict[str, tuple[float, ...]] = {
    "inverse_gamma": (1.0, 0.1),
    "lognormal": (math.log(0.1), 1.5),
    "half_cauchy": (1.0,),
}
GUIDES = ("normal", "lowrank", "delta", "structured")
_GLOBAL_SITES = ("alpha", "W", "noise", "loc")


class _BayesianLinearGaussian(GenerativeModel):
    """Shared code of :class:`BayesianFactorAnalysis` and :class:`BayesianPPCA`."""

    log_likelihood_kind = "posterior_predictive"
    _isotropic: bool = False

    def __init__(
        self,
        n_features: int,
        n_components: int,
        *,
        w_prior: str = "ard",
        w_scale: float = 1.0,
        ard_concentration: float = 1.0,
        ard_rate: float = 1e-3,
        noise_prior: str = "inverse_gamma",
        noise_params: tuple | list | None = None,
        loc_scale: float = 10.0,
        noise_floor: float = 1e-6,
        likelihood: str = "collapsed",
        guide: str = "normal",
        guide_rank: int | None = None,
        num_prior_draws: int = 200,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        n_components = check_int(n_components, "n_components", low=1, high=n_features)
        check_choice(w_prior, "w_prior", ("ard", "normal"))
        w_scale = check_float(w_scale, "w_scale", 0.0, None, "oc")
        ard_concentration = check_float(ard_concentration, "ard_concentration", 0.0, None, "oc")
        ard_rate = check_float(ard_rate, "ard_rate", 0.0, None, "oc")
        check_choice(noise_prior, "noise_prior", tuple(NOISE_PRIORS))
        if noise_params is None:
            noise_params = NOISE_PRIORS[noise_prior]
        if not isinstance(noise_params, (tuple, list)) or len(noise_params) != len(
            NOISE_PRIORS[noise_prior]
        ):
            raise ValueError(
                f"noise_params must be a tuple of {len(NOISE_PRIORS[noise_prior])} float(s) for "
                f"noise_prior={noise_prior!r}. Got {noise_params!r} instead."
            )
        if noise_prior == "lognormal":
            noise_params = (
                check_float(noise_params[0], "noise_params[0]"),
                check_float(noise_params[1], "noise_params[1]", 0.0, None, "oc"),
            )
        else:
            noise_params = tuple(
                check_float(p, f"noise_params[{i}]", 0.0, None, "oc")
                for i, p in enumerate(noise_params)
            )
        loc_scale = check_float(loc_scale, "loc_scale", 0.0, None, "oc")
        noise_floor = check_float(noise_floor, "noise_floor", 0.0, None, "cc")
        check_choice(likelihood, "likelihood", ("collapsed", "latent"))
        check_choice(guide, "guide", GUIDES)
        if guide == "structured" and likelihood != "latent":
            raise ValueError(
                "guide='structured' (exact Gaussian q(h | x, W, noise, loc) over an AutoNormal "
                "on the globals) needs likelihood='latent'. Got likelihood='collapsed' instead; "
                "with the collapsed form use guide='normal', 'lowrank' or 'delta'."
            )
        if guide_rank is not None:
            guide_rank = check_int(guide_rank, "guide_rank", low=1)
        num_prior_draws = check_int(num_prior_draws, "num_prior_draws", low=1)
        super().__init__(
            n_features=n_features,
            n_components=n_components,
            w_prior=w_prior,
            w_scale=w_scale,
            ard_concentration=ard_concentration,
            ard_rate=ard_rate,
            noise_prior=noise_prior,
            noise_params=list(noise_params),
            loc_scale=loc_scale,
            noise_floor=noise_floor,
            likelihood=likelihood,
            guide=guide,
            guide_rank=guide_rank,
            num_prior_draws=num_prior_draws,
        )
        D, K = n_features, n_components
        noise_shape = (0,) if self._isotropic else (0, D)
        # Posterior draws (S of them; S = 0 until fitted). They are buffers, so that save/load
        # keeps the posterior; ``_load_from_state_dict`` resizes them to the saved S.
        self.register_buffer("posterior_W", torch.zeros(0, D, K))
        self.register_buffer("posterior_noise", torch.zeros(noise_shape))
        self.register_buffer("posterior_loc", torch.zeros(0, D))
        self.register_buffer("posterior_alpha", torch.zeros(0, K if w_prior == "ard" else 0))
        self.register_buffer("posterior_chain", torch.zeros(0, dtype=torch.long))
        self._init_values: dict[str, torch.Tensor] = {}
        self._make_autoguide()
        #: the Pyro ``MCMC`` object(s) of the last ``fit(method="nuts")`` (one per chain with
        #: ``chain_method="sequential"``); ``None`` otherwise. Not saved.
        self.mcmc = None
        self._fit_x: torch.Tensor | None = None
        self._w_ref: torch.Tensor | None = None

    # ------------------------------------------------------------------ configuration helpers
    @property
    def n_components(self) -> int:
        return int(self.config["n_components"])

    @property
    def is_fitted(self) -> bool:
        """Whether posterior draws are stored (after ``fit``)."""
        return self.posterior_W.shape[0] > 0

    def _make_autoguide(self):
        kind = self.config["guide"]
        init = self._init_loc_fn
        if kind == "structured":
            target = poutine.block(self.model, hide=["h"])
            g = autoguide.AutoNormal(target, init_loc_fn=init, init_scale=0.01)
        elif kind == "normal":
            g = autoguide.AutoNormal(self.model, init_loc_fn=init, init_scale=0.01)
        elif kind == "lowrank":
            g = autoguide.AutoLowRankMultivariateNormal(
                self.model, init_loc_fn=init, init_scale=0.01, rank=self.config["guide_rank"]
            )
        else:
            g = autoguide.AutoDelta(self.model, init_loc_fn=init)
        # a unique Pyro name, so that two models never share guide parameters in the store;
        # not a submodule (its parameters are created lazily and are not part of save/load:
        # what is saved is the posterior draws)
        g._pyro_name = f"{self._pyro_name}.autoguide"
        object.__setattr__(self, "_autoguide", g)

    def _init_loc_fn(self, site):
        name = site["name"]
        if name in self._init_values:
            value = self._init_values[name]
            if value.shape == site["fn"].shape():
                return value.to(self.dtype)
        return init_to_median(site)

    def _tensor(self, value) -> torch.Tensor:
        return torch.as_tensor(value, dtype=self.dtype, device=self.device)

    def _noise_dist(self):
        kind = self.config["noise_prior"]
        p = [self._tensor(v) for v in self.config["noise_params"]]
        if kind == "inverse_gamma":
            return dist.InverseGamma(p[0], p[1])
        if kind == "lognormal":
            return dist.LogNormal(p[0], p[1])
        return dist.HalfCauchy(p[0])

    def _noise_diag(self, noise: torch.Tensor) -> torch.Tensor:
        """Per-feature noise variance (``(..., D)``) from the ``noise`` site, plus the floor."""
        if self._isotropic:
            noise = noise.unsqueeze(-1).expand(*noise.shape, self.n_features)
        return noise + self.config["noise_floor"]

    # ------------------------------------------------------------------ Pyro model / guide
    def _sample_globals(self):
        D, K = self.n_features, self.n_components
        zero = self._tensor(0.0)
        if self.config["w_prior"] == "ard":
            with pyro.plate("components", K, dim=-1):
                alpha = pyro.sample(
                    "alpha",
                    dist.Gamma(
                        self._tensor(self.config["ard_concentration"]),
                        self._tensor(self.config["ard_rate"]),
                    ),
                )
            w_scale = alpha.rsqrt()
        else:
            w_scale = self._tensor(self.config["w_scale"]).expand(K)
        with pyro.plate("features", D, dim=-1):
            W = pyro.sample("W", dist.Normal(zero, w_scale).expand([D, K]).to_event(1))
            loc = pyro.sample("loc", dist.Normal(zero, self._tensor(self.config["loc_scale"])))
            if not self._isotropic:
                noise = pyro.sample("noise", self._noise_dist())
        if self._isotropic:
            noise = pyro.sample("noise", self._noise_dist())
        return W, noise, loc

    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """The Pyro model: priors, then ``x`` in the ``"data"`` plate.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``, optional
            Observed data. ``None`` draws ``num_data`` rows from the prior predictive.
        num_data : int, optional
            Full data size when ``x`` is a minibatch (the plate is scaled); the number of rows
            to draw when ``x`` is ``None``.
        """
        W, noise, loc = self._sample_globals()
        diag = self._noise_diag(noise)
        if x is None:
            if num_data is None:
                raise ValueError("num_data must be an int when x is None. Got None instead.")
            plate = pyro.plate("data", num_data)
        else:
            plate = self._data_plate(x, num_data)
        with plate:
            if self.config["likelihood"] == "collapsed":
                return pyro.sample("x", dist.LowRankMultivariateNormal(loc, W, diag), obs=x)
            zero = torch.zeros(self.n_components, dtype=W.dtype, device=W.device)
            h = pyro.sample("h", dist.Normal(zero, 1.0).to_event(1))
            mean = loc + h @ W.transpose(-1, -2)
            return pyro.sample("x", dist.Normal(mean, diag.sqrt()).to_event(1), obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor | None = None, num_data: int | None = None):
        """The guide chosen by ``guide=`` (an autoguide, or the structured guide).

        ``"normal"``: ``AutoNormal`` (mean field); ``"lowrank"``:
        ``AutoLowRankMultivariateNormal``; ``"delta"``: ``AutoDelta`` (MAP); ``"structured"``
        (latent form only): ``AutoNormal`` on the globals and, given them, the exact Gaussian
        posterior :math:`q(h_j \\mid x_j) = \\mathcal N(M^{-1} W^\\top \\Psi^{-1} (x_j - b),
        M^{-1})`, :math:`M = I + W^\\top \\Psi^{-1} W`.
        """
        values = self._autoguide(x, num_data)
        if self.config["guide"] != "structured":
            return values
        mean, cov = self._posterior_h(x, values["W"], self._noise_diag(values["noise"]),
                                      values["loc"])
        with self._data_plate(x, num_data):
            pyro.sample("h", dist.MultivariateNormal(mean, covariance_matrix=cov))
        return values

    @staticmethod
    def _posterior_h(x, W, diag, loc):
        r"""Mean ``(..., n, K)`` and covariance ``(..., K, K)`` of :math:`p(h \mid x, \theta)`."""
        Wt_psi = W.transpose(-1, -2) / diag.unsqueeze(-2)  # (..., K, D)
        K = W.shape[-1]
        M = torch.eye(K, dtype=W.dtype, device=W.device) + Wt_psi @ W
        L = torch.linalg.cholesky(M)
        cov = torch.cholesky_inverse(L)
        centered = x - loc.unsqueeze(-2)  # (..., n, D)
        rhs = Wt_psi @ centered.transpose(-1, -2)  # (..., K, n)
        mean = torch.cholesky_solve(rhs, L).transpose(-1, -2)
        return mean, cov

    # ------------------------------------------------------------------ posterior draws
    def _prior_draws(self, num: int) -> dict[str, torch.Tensor]:
        out = {k: [] for k in _GLOBAL_SITES}
        for _ in range(num):
            tr = poutine.trace(self._sample_globals).get_trace()
            for k in _GLOBAL_SITES:
                if k in tr.nodes:
                    out[k].append(tr.nodes[k]["value"].detach())
        return {k: torch.stack(v) for k, v in out.items() if v}

    def posterior_samples(self) -> dict[str, torch.Tensor]:
        """The stored posterior draws ``{"W": (S, D, K), "noise", "loc", ["alpha"]}``.

        Before ``fit`` these are ``num_prior_draws`` fresh draws from the **prior** (so that every
        method answers with the prior predictive), and ``"chain"`` is all zeros.
        """
        if not self.is_fitted:
            draws = self._prior_draws(self.config["num_prior_draws"])
            draws["chain"] = torch.zeros(self.config["num_prior_draws"], dtype=torch.long)
            return draws
        out = {
            "W": self.posterior_W,
            "noise": self.posterior_noise,
            "loc": self.posterior_loc,
            "chain": self.posterior_chain,
        }
        if self.config["w_prior"] == "ard":
            out["alpha"] = self.posterior_alpha
        return out

    def _store_draws(self, draws: dict[str, torch.Tensor], chain: torch.Tensor):
        self.posterior_W = draws["W"].detach().to(self.dtype).clone()
        self.posterior_noise = draws["noise"].detach().to(self.dtype).clone()
        self.posterior_loc = draws["loc"].detach().to(self.dtype).clone()
        if self.config["w_prior"] == "ard":
            self.posterior_alpha = draws["alpha"].detach().to(self.dtype).clone()
        self.posterior_chain = chain.to(torch.long).clone()
        self._w_ref = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the number of stored posterior draws is data: resize the buffers to the saved ones
        for name in ("posterior_W", "posterior_noise", "posterior_loc", "posterior_alpha",
                     "posterior_chain"):
            key = prefix + name
            if key in state_dict:
                old = self._buffers[name]
                self._buffers[name] = torch.empty(
                    state_dict[key].shape, dtype=old.dtype, device=old.device
                )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("svi", "nuts")

    def fit(
        self,
        x,
        *,
        method: str = "svi",
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss: pyro.infer.ELBO | None = None,
        tol: float | None = DEFAULT_TOL,
        num_posterior_samples: int = 200,
        num_samples: int = 200,
        warmup_steps: int = 200,
        num_chains: int = 1,
        chain_method: str = "sequential",
        target_accept_prob: float = 0.8,
        max_tree_depth: int = 10,
        init: str = "pca",
        potential: str = "fast",
        seed: int | None = None,
        progress: bool = True,
        callback: Callable | None = None,
        data_info: dict | None = None,
        backend: str = "pyro",
    ) -> FitHistory:
        r"""Approximate the posterior by SVI or sample it by NUTS; store posterior draws.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
        method : {"svi", "nuts"}
            ``"svi"``: Pyro SVI on :meth:`model` / :meth:`guide` (the autoguide of ``guide=``),
            then ``num_posterior_samples`` draws from the fitted guide are stored.
            ``"nuts"``: Pyro ``MCMC(NUTS(model))``; all ``num_chains * num_samples`` draws are
            stored and the ``MCMC`` object(s) kept in :attr:`mcmc`.
        num_steps, lr, batch_size, loss, tol
            SVI options (Adam; ``Trace_ELBO`` by default; ``num_steps`` is the maximum and
            ``tol`` the convergence test of the shared training loop,
            :meth:`~pyrogen.models.base.GenerativeModel._train`, with a ``ConvergenceWarning``
            when the steps run out first; ``tol=None`` runs exactly ``num_steps``).
        num_posterior_samples : int
            Guide draws stored after SVI.
        num_samples, warmup_steps, num_chains : int
            NUTS options (per chain).
        chain_method : {"sequential", "parallel"}
            ``"sequential"`` runs one Pyro ``MCMC`` per chain in this process (no worker
            processes; :attr:`mcmc` is then a list); ``"parallel"`` (with
            ``potential="model"``) hands ``num_chains`` to one Pyro ``MCMC``, which uses
            multiprocessing when enough CPUs are free (not exercised by the test suite).
        target_accept_prob, max_tree_depth
            NUTS options.
        potential : {"fast", "model"}
            NUTS target. ``"fast"`` (collapsed form only): :meth:`potential_fn`, the negative
            log joint written directly in torch (the same density as :meth:`model`, checked
            against Pyro's ``initialize_model`` in the tests; cheaper per gradient
            than replaying the Pyro model). With the ARD prior NUTS moves in the non-centred
            coordinates :math:`Z = W \operatorname{diag}(\alpha)^{1/2}` (the same posterior;
            switched-off columns otherwise form a funnel) and the stored draws are of ``W``.
            ``"model"``: ``NUTS(self.model)``, needed for the
            latent form.
        init : {"pca", "prior"}
            Starting point. ``"pca"``: ``loc`` = data mean, ``W`` = the PPCA maximum-likelihood
            columns (eigen-decomposition), ``noise`` = the mean discarded eigenvalue; for NUTS
            each chain's ``W`` is rotated by an independent random orthogonal matrix (chains
            start in different symmetric modes, so r-hat can see them disagree) and its noise
            jittered by a log-normal factor. ``"prior"``: prior medians (SVI) / Pyro's
            ``init_to_uniform`` (NUTS).
        seed : int, optional
            ``pyro.set_rng_seed(seed)`` first.
        progress : bool
            Progress bars.
        callback : callable ``(step, loss)``, optional
            SVI only.
        data_info : dict, optional
            Identity of the data, stored in ``self.data_info``.
        backend : {"pyro", "numpyro"}
            NUTS implementation. ``"numpyro"`` (needs the ``numpyro`` extra) runs NumPyro NUTS
            on the twin :func:`pyrogen.numpyro.bayesian_fa` /
            :func:`pyrogen.numpyro.bayesian_ppca` (same priors and sites; ARD non-centred as with
            ``potential="fast"``; with the collapsed form ``potential="fast"`` evaluates the
            likelihood from the sufficient statistics as here, ``"model"`` row by row, see
            :func:`pyrogen.numpyro.run_nuts`) from the same chain starts, with
            ``chain_method`` one of ``"sequential"``, ``"parallel"`` (one JAX CPU device per
            chain, see :func:`pyrogen.numpyro.run_nuts`) or ``"vectorized"``, and stores the
            draws in the same buffers; :attr:`mcmc` is then the NumPyro ``MCMC``. A float64
            model runs in float64 (``jax.enable_x64``). ``method="svi"`` ignores it.

        Returns
        -------
        FitHistory
            SVI: negative ELBO per example per step. NUTS: ``losses`` holds the per-example
            negative log-likelihood at each stored draw (chain after chain); ``info`` has the
            number of divergences and the acceptance rate per chain.
        """
        method = check_choice(method, "method", self.fit_methods())
        x = self._check_x(x)
        check_choice(init, "init", ("pca", "prior"))
        check_choice(backend, "backend", ("pyro", "numpyro"))
        self._begin_fit(seed, data_info)
        self._init_values = self._pca_init(x) if init == "pca" else {}
        self._fit_x = x
        if method == "svi":
            num_posterior_samples = check_int(num_posterior_samples, "num_posterior_samples",
                                              low=1)
            history = self._fit_svi(
                x, num_steps=num_steps, lr=lr, batch_size=batch_size, loss=loss, tol=tol,
                progress=progress, callback=callback,
            )
            draws = self._guide_draws(x, num_posterior_samples)
            self._store_draws(draws, torch.zeros(num_posterior_samples, dtype=torch.long))
            self.mcmc = None
            history.info["num_posterior_samples"] = num_posterior_samples
            history.info["guide"] = self.config["guide"]
            return history
        if backend == "numpyro":
            from ..numpyro.backend import fit_nuts_numpyro

            return fit_nuts_numpyro(
                self, x,
                num_samples=check_int(num_samples, "num_samples", low=1),
                warmup_steps=check_int(warmup_steps, "warmup_steps", low=0),
                num_chains=check_int(num_chains, "num_chains", low=1),
                chain_method=check_choice(chain_method, "chain_method",
                                          ("sequential", "parallel", "vectorized")),
                target_accept_prob=check_float(target_accept_prob, "target_accept_prob", 0.0,
                                               1.0, "oo"),
                max_tree_depth=check_int(max_tree_depth, "max_tree_depth", low=1),
                init=init, progress=progress, seed=seed,
                sufficient_stats=check_choice(potential, "potential",
                                              ("fast", "model")) == "fast",
            )
        return self._fit_nuts(
            x,
            num_samples=check_int(num_samples, "num_samples", low=1),
            warmup_steps=check_int(warmup_steps, "warmup_steps", low=0),
            num_chains=check_int(num_chains, "num_chains", low=1),
            chain_method=check_choice(chain_method, "chain_method", ("sequential", "parallel")),
            target_accept_prob=check_float(target_accept_prob, "target_accept_prob", 0.0, 1.0,
                                           "oo"),
            max_tree_depth=check_int(max_tree_depth, "max_tree_depth", low=1),
            init=init,
            potential=check_choice(potential, "potential", ("fast", "model")),
            progress=progress,
        )

    def _pca_init(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        D, K = self.n_features, self.n_components
        mean = x.mean(0)
        xc = x - mean
        cov = xc.T @ xc / max(x.shape[0], 1)
        evals, evecs = torch.linalg.eigh(cov)
        evals, evecs = evals.flip(0), evecs.flip(1)
        floor = max(self.config["noise_floor"], 1e-6 * float(evals.abs().max().clamp_min(1e-12)))
        sigma2 = evals[K:].mean().clamp_min(floor) if K < D else evals.new_tensor(floor)
        scale = (evals[:K] - sigma2).clamp_min(1e-3 * sigma2).sqrt()
        W = evecs[:, :K] * scale
        values = {"W": W, "loc": mean}
        if self._isotropic:
            values["noise"] = sigma2
        else:
            values["noise"] = (torch.diagonal(cov) - (W**2).sum(-1)).clamp_min(float(sigma2)
                                                                               * 0.1)
        if self.config["w_prior"] == "ard":
            values["alpha"] = D / (W**2).sum(0).clamp_min(1e-6)
        return values

    def _guide_draws(self, x: torch.Tensor, num: int) -> dict[str, torch.Tensor]:
        out = {k: [] for k in _GLOBAL_SITES}
        with torch.no_grad():
            for _ in range(num):
                tr = poutine.trace(self.guide).get_trace(x)
                for k in _GLOBAL_SITES:
                    if k in tr.nodes:
                        out[k].append(tr.nodes[k]["value"].detach())
        return {k: torch.stack(v) for k, v in out.items() if v}

    def _chain_init(self, base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A chain's starting point: ``base`` with W randomly rotated and noise jittered."""
        K = self.n_components
        q, r = torch.linalg.qr(torch.randn(K, K, dtype=self.dtype, device=self.device))
        q = q * torch.sign(torch.diagonal(r))
        values = dict(base)
        values["W"] = base["W"] @ q
        values["noise"] = base["noise"] * torch.exp(0.3 * torch.randn_like(base["noise"]))
        if "alpha" in values:
            values["alpha"] = self.n_features / (values["W"] ** 2).sum(0).clamp_min(1e-6)
        return values

    def _fit_nuts(self, x, *, num_samples, warmup_steps, num_chains, chain_method,
                  target_accept_prob, max_tree_depth, init, potential,
                  progress) -> FitHistory:
        from pyro.infer import MCMC
        from pyro.infer.autoguide.initialization import init_to_uniform, init_to_value

        from ..diagnostics import RecordingNUTS  # NUTS + per-draw energy (BFMI)

        history = FitHistory(
            method="nuts",
            info={"num_samples": num_samples, "warmup_steps": warmup_steps,
                  "num_chains": num_chains, "chain_method": chain_method},
        )
        t0 = time.perf_counter()
        starts = [self._chain_init(self._init_values) if init == "pca" else {}
                  for _ in range(num_chains)]
        if self.config["likelihood"] == "latent" and init == "pca":
            for s in starts:
                s["h"], _ = self._posterior_h(x, s["W"], self._noise_diag(s["noise"]), s["loc"])

        fast = potential == "fast"
        if fast and self.config["likelihood"] != "collapsed":
            raise ValueError(
                "potential='fast' needs likelihood='collapsed' (the hand-written potential "
                "integrates h out). Got likelihood='latent'; use potential='model'."
            )
        if fast and chain_method == "parallel" and num_chains > 1:
            raise ValueError(
                "chain_method='parallel' needs potential='model' (worker processes must pickle "
                "the kernel; the fast potential is a closure). Got potential='fast'; use "
                "chain_method='sequential' or potential='model'."
            )
        noncentered = fast and self.config["w_prior"] == "ard"
        if fast:
            pot = self.potential_fn(x)
            transforms = self._unconstraining_transforms()
            if init != "pca":
                prior = self._prior_draws(num_chains)
                starts = [{k: v[c] for k, v in prior.items()} for c in range(num_chains)]
            if noncentered:
                # ARD columns the data do not need make a funnel in (log alpha_k, W[:, k]);
                # NUTS samples Z = W sqrt(alpha) instead (non-centred), W = Z / sqrt(alpha)
                pot = _noncentered_potential(pot, self.n_features)
                for st in starts:
                    st["Z"] = st.pop("W") * st["alpha"].sqrt()

        def kernel(values):
            kw = dict(target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth)
            if fast:
                return RecordingNUTS(potential_fn=pot, **kw)
            strategy = (init_to_value(values=values, fallback=init_to_uniform) if values
                        else init_to_uniform)
            return RecordingNUTS(self.model, init_strategy=strategy, **kw)

        def unconstrained(values):
            return {k: transforms[k](v) if k in transforms else v for k, v in values.items()}

        args = () if fast else (x,)
        if chain_method == "sequential" or num_chains == 1:
            runs = []
            for c in range(num_chains):
                extra = ({"initial_params": unconstrained(starts[c]), "transforms": transforms}
                         if fast else {})
                mcmc = MCMC(kernel(starts[c]), num_samples=num_samples,
                            warmup_steps=warmup_steps, num_chains=1,
                            disable_progbar=not progress, **extra)
                mcmc.run(*args)
                runs.append(mcmc)
            samples = {k: torch.cat([m.get_samples(group_by_chain=True)[k] for m in runs])
                       for k in runs[0].get_samples()}
            diags = [m._diagnostics[0] for m in runs]
            self.mcmc = runs if num_chains > 1 else runs[0]
        else:
            extra = {}
            if fast:
                extra["transforms"] = transforms
            if fast or init == "pca":
                extra["initial_params"] = {
                    k: torch.stack([unconstrained(s)[k] for s in starts]) for k in starts[0]
                } if fast else {k: torch.stack([_unconstrain(k, s[k]) for s in starts])
                                for k in starts[0]}
            mcmc = MCMC(kernel({}), num_samples=num_samples, warmup_steps=warmup_steps,
                        num_chains=num_chains, disable_progbar=not progress,
                        mp_context="spawn", **extra)
            mcmc.run(*args)
            samples = mcmc.get_samples(group_by_chain=True)
            diags = list(mcmc._diagnostics)
            self.mcmc = mcmc
        C, S = num_chains, num_samples
        if noncentered:
            samples = dict(samples)
            samples["W"] = samples.pop("Z") * samples["alpha"].rsqrt().unsqueeze(-2)
        flat = {k: v.reshape(C * S, *v.shape[2:]) for k, v in samples.items()
                if k in _GLOBAL_SITES}
        chain = torch.arange(C).repeat_interleave(S)
        self._store_draws(flat, chain)
        history.seconds = time.perf_counter() - t0
        ll = self.pointwise_log_likelihood(x)  # (C*S, n)
        history.losses = (-ll.mean(1)).tolist()
        history.info["divergences"] = int(sum(len(d.get("divergences", [])) for d in diags))
        history.info["acceptance_rate"] = float(
            sum(float(d.get("acceptance rate", float("nan"))) for d in diags) / len(diags)
        )
        history.metrics["divergences_per_chain"] = [len(d.get("divergences", [])) for d in diags]
        return history

    def _unconstraining_transforms(self) -> dict:
        from torch.distributions import biject_to, constraints

        out = {"noise": biject_to(constraints.positive).inv}
        if self.config["w_prior"] == "ard":
            out["alpha"] = biject_to(constraints.positive).inv
        return out

    def potential_fn(self, x) -> Callable[[dict], torch.Tensor]:
        r"""The NUTS potential :math:`U(z) = -\log p(x, \theta(z)) - \log|\det J(z)|` of the
        collapsed model, in the unconstrained coordinates
        ``{"W", "loc", "noise": log variance, "alpha": log precision}``.

        Identical to the potential Pyro derives from :meth:`model`
        (``pyro.infer.mcmc.util.initialize_model``), without the cost of tracing the model at
        every gradient. The likelihood uses the sufficient statistics
        :math:`\bar x` and :math:`S = \frac1n \sum_j (x_j - \bar x)(x_j - \bar x)^\top`:

        .. math::

            \sum_j \log \mathcal N(x_j; b, C) = -\frac n2 \left[D \log 2\pi + \log|C|
            + \operatorname{tr}\big(C^{-1} (S + (\bar x - b)(\bar x - b)^\top)\big)\right],
            \qquad C = W W^\top + \Psi,

        evaluated by Woodbury and the matrix determinant lemma: with :math:`A = \Psi^{-1} W`,
        :math:`M = I_K + W^\top A = L L^\top` and :math:`S_b = S + d d^\top`,
        :math:`d = \bar x - b`,

        .. math::

            \log|C| = 2 \textstyle\sum_k \log L_{kk} + \sum_i \log\psi_i, \qquad
            \operatorname{tr}(C^{-1} S_b) = \textstyle\sum_i (S_b)_{ii}/\psi_i
            - \operatorname{tr}(M^{-1} A^\top S_b A),

        so one evaluation costs :math:`O(D^2 K + D K^2)` whatever :math:`n` (the data are
        summarized once, in :math:`O(n D^2)`); the per-row form (``NUTS(model)``) costs
        :math:`O(n D K)`. The same likelihood as
        :class:`pyrogen.numpyro.models.LowRankGaussianSufficientStatistics`.
        """
        x = self._check_x(x)
        ard = self.config["w_prior"] == "ard"
        cfg = self.config
        n, D = x.shape
        K = self.n_components
        n_noise = 1 if self._isotropic else D
        xbar = x.mean(0)
        scatter = (x - xbar).T @ (x - xbar) / n
        scatter_diag = scatter.diagonal().clone()
        eye_k = torch.eye(K, dtype=x.dtype, device=x.device)
        floor = cfg["noise_floor"]
        # log densities written out (no Distribution objects: fewer ops per gradient), with
        # their constants so that the value equals Pyro's potential exactly
        kind, p = cfg["noise_prior"], cfg["noise_params"]
        if kind == "inverse_gamma":
            c_noise = n_noise * (p[0] * math.log(p[1]) - math.lgamma(p[0]))

            def log_noise_prior(u):  # log IG(e^u; a, b) + u (Jacobian)
                return c_noise - p[0] * u.sum() - p[1] * torch.exp(-u).sum()
        elif kind == "lognormal":
            c_noise = -n_noise * (math.log(p[1]) + 0.5 * math.log(2 * math.pi))

            def log_noise_prior(u):  # log LogNormal(e^u; mu, s) + u
                return c_noise - 0.5 * (((u - p[0]) / p[1]) ** 2).sum()
        else:
            c_noise = n_noise * math.log(2.0 / (math.pi * p[0]))

            def log_noise_prior(u):  # log HalfCauchy(e^u; s) + u
                return c_noise - torch.log1p((torch.exp(u) / p[0]) ** 2).sum() + u.sum()

        s_b = cfg["loc_scale"]
        c_loc = -D * (math.log(s_b) + 0.5 * math.log(2 * math.pi))
        a, b = cfg["ard_concentration"], cfg["ard_rate"]
        c_alpha = K * (a * math.log(b) - math.lgamma(a))
        c_w = -0.5 * D * K * math.log(2 * math.pi)
        s_w = cfg["w_scale"]
        c_lik = -0.5 * n * D * math.log(2 * math.pi)

        def potential(params: dict) -> torch.Tensor:
            W, loc, u = params["W"], params["loc"], params["noise"]
            lp = log_noise_prior(u) + c_loc - 0.5 * (loc**2).sum() / s_b**2
            if ard:
                la = params["alpha"]
                alpha = torch.exp(la)
                lp = lp + c_alpha + a * la.sum() - b * alpha.sum()
                lp = lp + c_w + 0.5 * D * la.sum() - 0.5 * (alpha * (W**2).sum(0)).sum()
            else:
                lp = lp + c_w - D * K * math.log(s_w) - 0.5 * (W**2).sum() / s_w**2
            psi = (torch.exp(u) + floor).expand(D)
            A = W / psi.unsqueeze(-1)  # Psi^-1 W, (D, K)
            L = torch.linalg.cholesky(eye_k + W.T @ A)  # M = I + W^T Psi^-1 W
            Linv = torch.linalg.solve_triangular(L, eye_k, upper=False)
            d = xbar - loc
            Ad = A.T @ d
            B = A.T @ (scatter @ A) + torch.outer(Ad, Ad)  # A^T S_b A, (K, K)
            quad = ((scatter_diag + d**2) / psi).sum() - ((Linv @ B) * Linv).sum()
            logdet = 2.0 * L.diagonal().log().sum() + psi.log().sum()
            return -(lp + c_lik - 0.5 * n * (logdet + quad))

        return potential

    # ------------------------------------------------------------------ evaluation
    def pointwise_log_likelihood(self, x, draws: dict | None = None,
                                 chunk: int = 64) -> torch.Tensor:
        r"""Log-likelihood of each example at each posterior draw, shape ``(S, n)``.

        :math:`\ell_{sj} = \log \mathcal N(x_j; b_s, W_s W_s^\top + \Psi_s)`: the collapsed
        density (``h`` integrated out) whichever form was sampled. This is the matrix ArviZ's
        LOO needs. Cost :math:`O(S n D K)`.
        """
        x = self._check_x(x)
        draws = self.posterior_samples() if draws is None else draws
        out = []
        S = draws["W"].shape[0]
        with torch.no_grad():
            for start in range(0, S, chunk):
                sl = slice(start, start + chunk)
                W = draws["W"][sl].to(x)
                diag = self._noise_diag(draws["noise"][sl].to(x))
                loc = draws["loc"][sl].to(x)
                d = dist.LowRankMultivariateNormal(loc.unsqueeze(-2), W.unsqueeze(-3),
                                                   diag.unsqueeze(-2))
                out.append(d.log_prob(x))
        return torch.cat(out)

    def log_likelihood(self, x) -> LogLikelihood:
        r"""Log posterior predictive density of each example, estimated over posterior draws.

        .. math::

            \widehat{\ell}_j = \log \frac1S \sum_{s=1}^S p(x_j \mid \theta_s),
            \qquad \theta_s \sim p(\theta \mid \mathcal D_\mathrm{train})
            \text{ (or } q(\theta) \text{ after SVI)},

        with :math:`p(x_j \mid \theta)` the exact Gaussian marginal (``h`` integrated out).
        Kind ``"posterior_predictive"``: it estimates :math:`\log p(x_j \mid \mathcal D)` for
        each example **separately** (not the joint predictive of all rows). Being the log of
        an unbiased Monte Carlo mean it is a stochastic *lower* bound in expectation (Jensen).
        The standard error is the delta-method one,
        :math:`\mathrm{sd}_s(p_{sj}) / (\sqrt S\, \bar p_j)`, which treats the draws as
        independent (MCMC autocorrelation makes the true error larger). Before ``fit`` the
        draws come from the prior, i.e. this is the prior predictive density.
        Cost :math:`O(S n D K)`.
        """
        ll = self.pointwise_log_likelihood(x)
        S = ll.shape[0]
        m = ll.max(0).values
        w = torch.exp(ll - m)
        mean_w = w.mean(0)
        values = m + torch.log(mean_w)
        if S > 1:
            stderr = w.std(0, unbiased=True) / (math.sqrt(S) * mean_w)
        else:
            stderr = torch.full_like(values, float("nan"))
        return LogLikelihood(
            values=values, kind="posterior_predictive", stderr=stderr,
            info={"num_draws": S, "fitted": self.is_fitted},
        )

    def reference_W(self) -> torch.Tensor:
        r""":math:`W_\mathrm{ref} = U_K \Lambda_K^{1/2}` from the posterior mean of
        :math:`W W^\top` (the alignment target; columns ordered by decreasing norm, signs
        fixed so that each column's largest-magnitude entry is positive)."""
        if self._w_ref is not None and self.is_fitted:
            return self._w_ref
        W = self.posterior_samples()["W"]
        C = (W @ W.transpose(-1, -2)).mean(0)
        evals, evecs = torch.linalg.eigh(C)
        K = self.n_components
        evals, evecs = evals.flip(0)[:K], evecs.flip(1)[:, :K]
        ref = evecs * evals.clamp_min(0).sqrt()
        idx = ref.abs().argmax(0)
        ref = ref * torch.sign(ref[idx, torch.arange(K)]).where(
            ref[idx, torch.arange(K)] != 0, torch.ones(K, dtype=ref.dtype))
        if self.is_fitted:
            self._w_ref = ref
        return ref

    def _alignment(self, W: torch.Tensor) -> torch.Tensor:
        """Orthogonal ``R_s`` (``(S, K, K)``) minimizing ``||W_s R_s - W_ref||_F``."""
        ref = self.reference_W().to(W)
        U, _, Vh = torch.linalg.svd(W.transpose(-1, -2) @ ref)
        return U @ Vh

    def aligned_W(self) -> torch.Tensor:
        """Posterior draws of ``W`` after Procrustes alignment to :meth:`reference_W`,
        shape ``(S, D, K)``."""
        W = self.posterior_samples()["W"]
        return W @ self._alignment(W)

    def transform(self, x) -> torch.Tensor:
        r"""Posterior mean of the latent code, :math:`E[h \mid x, \mathcal D]`, shape ``(n, K)``.

        Averages the Gaussian posterior mean
        :math:`M_s^{-1} W_s^\top \Psi_s^{-1}(x - b_s)` over the posterior draws, each rotated
        by its Procrustes alignment :math:`R_s^\top` (see the module docstring), so that draws
        from symmetric modes do not cancel. Cost :math:`O(S n D K)`.
        """
        x = self._check_x(x)
        draws = self.posterior_samples()
        W = draws["W"].to(x)
        R = self._alignment(W)
        mean, _ = self._posterior_h(x, W, self._noise_diag(draws["noise"].to(x)),
                                    draws["loc"].to(x))  # (S, n, K)
        return (mean @ R).mean(0)

    def sample(self, n) -> torch.Tensor:
        r"""``n`` draws from the posterior predictive: :math:`\theta \sim` a stored posterior
        draw (uniformly, independently per row), :math:`h \sim \mathcal N(0, I)`,
        :math:`x = W h + b + \epsilon`. Before ``fit``: the prior predictive."""
        n = self._check_n(n)
        draws = self.posterior_samples()
        S = draws["W"].shape[0]
        idx = torch.randint(0, S, (n,), device=self.device)
        W = draws["W"][idx]
        loc = draws["loc"][idx]
        diag = self._noise_diag(draws["noise"][idx])
        h = torch.randn(n, self.n_components, dtype=W.dtype, device=W.device)
        eps = torch.randn(n, self.n_features, dtype=W.dtype, device=W.device)
        return loc + (W @ h.unsqueeze(-1)).squeeze(-1) + diag.sqrt() * eps

    def component_relevance(self) -> torch.Tensor:
        r"""Posterior mean of :math:`\lVert W_{:,(k)} \rVert^2 / \bar\psi` per component,
        shape ``(K,)``, decreasing.

        The columns are sorted by norm within each draw (labels switch between draws and
        chains), and each squared norm is divided by that draw's mean noise variance
        :math:`\bar\psi = \frac1D \sum_i \psi_i`: the variance the component adds along its
        direction, in units of noise variance. In maximum-likelihood PPCA this is
        :math:`\lambda_k / \sigma^2 - 1` for the k-th sample-covariance eigenvalue.
        """
        draws = self.posterior_samples()
        norms = (draws["W"] ** 2).sum(-2).sort(-1, descending=True).values  # (S, K)
        noise = self._noise_diag(draws["noise"]).mean(-1, keepdim=True)
        return (norms / noise).mean(0)

    def active_components(self, threshold: float = 0.5) -> int:
        r"""Number of components whose :meth:`component_relevance` exceeds ``threshold``.

        With the ARD prior, components the data do not need are shrunk to a relevance far
        below 1 (of the order of ``ard_rate`` over the noise variance), while a component that
        explains a direction of variance :math:`\lambda` has relevance near
        :math:`\lambda/\bar\psi - 1`. The default threshold 0.5 counts components that add at
        least half a noise variance along their direction. Without ARD (``w_prior="normal"``)
        the count is not a model-selection device: use :func:`pyrogen.diagnostics.compare_loo`.
        """
        threshold = check_float(threshold, "threshold", 0.0, None, "cc")
        return int((self.component_relevance() > threshold).sum())

    # ------------------------------------------------------------------ ArviZ
    def to_inference_data(self, x=None, *, log_likelihood: bool = True,
                          posterior_predictive: bool | None = None):
        r"""ArviZ ``InferenceData`` of the stored posterior (see :mod:`pyrogen.diagnostics`).

        Groups: ``posterior`` (the sites ``W``, ``noise``, ``loc``, ``alpha`` and the
        rotation-invariant / aligned quantities ``WWt_diag``, ``col_norm2``, ``W_aligned``),
        ``sample_stats`` (after NUTS only: ``diverging``; with NumPyro, or Pyro's
        :class:`~pyrogen.diagnostics.RecordingNUTS` used by ``fit``, also ``energy``, ``lp``,
        ``n_steps``, ``tree_depth``, ``step_size``, ``acceptance_rate``),
        ``log_likelihood`` (``x``: the collapsed density of each example at each draw, for
        LOO), ``observed_data`` (``x``) and ``posterior_predictive`` (``x``: one replicated
        data set per draw, :math:`x^\mathrm{rep}_{sj} \sim \mathcal N(b_s, W_s W_s^\top +
        \Psi_s)`; by default only when it has at most :math:`10^7` numbers), with dims
        ``chain``, ``draw``, ``features``, ``components``, ``data``. ``x`` defaults to the
        data of the last ``fit``.
        """
        from .. import diagnostics

        if x is None:
            x = self._fit_x
        if x is None and log_likelihood:
            raise ValueError("x must be given (no data from a previous fit). Got None instead.")
        draws = self.posterior_samples()
        chain = draws.pop("chain")
        C = int(chain.max()) + 1
        S = chain.shape[0] // C

        def grouped(t):
            return t.reshape(C, S, *t.shape[1:]).detach().cpu().numpy()

        posterior = {k: grouped(v) for k, v in draws.items()}
        W = draws["W"]
        posterior["WWt_diag"] = grouped((W**2).sum(-1))
        posterior["col_norm2"] = grouped((W**2).sum(-2).sort(-1, descending=True).values)
        posterior["W_aligned"] = grouped(self.aligned_W())
        dims = {
            "W": ["features", "components"],
            "W_aligned": ["features", "components"],
            "WWt_diag": ["features"],
            "col_norm2": ["components"],
            "loc": ["features"],
            "alpha": ["components"],
            "x": ["data", "features"],
        }
        if not self._isotropic:
            dims["noise"] = ["features"]
        loglik = observed = None
        if log_likelihood:
            x = self._check_x(x)
            loglik = {"x": grouped(self.pointwise_log_likelihood(x))}
            observed = {"x": x.detach().cpu().numpy()}
        predictive = None
        if x is not None and (posterior_predictive or (
                posterior_predictive is None and C * S * x.numel() <= 10**7)):
            x = self._check_x(x)
            with torch.no_grad():
                Wd = W.to(x)
                h = torch.randn(C * S, x.shape[0], self.n_components, dtype=x.dtype,
                                device=x.device)
                eps = torch.randn(C * S, *x.shape, dtype=x.dtype, device=x.device)
                diag = self._noise_diag(draws["noise"].to(x))
                rep = (draws["loc"].to(x).unsqueeze(-2) + h @ Wd.transpose(-1, -2)
                       + diag.sqrt().unsqueeze(-2) * eps)
            predictive = {"x": grouped(rep)}
            observed = {"x": x.detach().cpu().numpy()}
        sample_stats = None
        if self.mcmc is not None:
            sample_stats = diagnostics.mcmc_sample_stats(self.mcmc)
        return diagnostics.from_arrays(
            posterior, sample_stats=sample_stats, log_likelihood=loglik,
            observed_data=observed, posterior_predictive=predictive, dims=dims,
        )


def _noncentered_potential(potential, D: int):
    r"""Potential in ``(Z, log alpha, ...)`` with :math:`W = Z \operatorname{diag}(\alpha)^{-1/2}`:
    :math:`U_{nc} = U(W(Z), \dots) + \frac D2 \sum_k \log\alpha_k` (minus the log-Jacobian
    of :math:`Z \mapsto W`)."""

    def noncentered(params: dict) -> torch.Tensor:
        la = params["alpha"]
        rest = {k: v for k, v in params.items() if k != "Z"}
        rest["W"] = params["Z"] * torch.exp(-0.5 * la)
        return potential(rest) + 0.5 * D * la.sum()

    return noncentered


def _unconstrain(name: str, value: torch.Tensor) -> torch.Tensor:
    if name in ("alpha", "noise"):
        return value.log()
    return value


@register_model("bayes-fa")
class BayesianFactorAnalysis(_BayesianLinearGaussian):
    r"""Bayesian factor analysis: priors on :math:`W`, on the per-feature noise variances
    :math:`\psi_i` and on :math:`b`; posterior by SVI (autoguide or structured guide) or NUTS.

    Parameters
    ----------
    n_features : int
        :math:`D`.
    n_components : int
        :math:`K \le D` (an upper bound under the ARD prior).
    w_prior : {"ard", "normal"}
        ``"ard"``: :math:`\alpha_k \sim \mathrm{Gamma}(a, b)`,
        :math:`W_{:,k} \sim \mathcal N(0, \alpha_k^{-1} I)` (Bishop 1999);
        ``"normal"``: :math:`W_{ik} \sim \mathcal N(0, s_W^2)`.
    w_scale : float
        :math:`s_W` for ``w_prior="normal"``.
    ard_concentration, ard_rate : float
        :math:`a` (shape) and :math:`b` (rate) of the ARD Gamma prior (defaults 1 and 1e-3).
    noise_prior : {"inverse_gamma", "lognormal", "half_cauchy"}
        Prior of each noise **variance**: ``InverseGamma(concentration, rate)`` (default
        ``(1, 0.1)``; its density vanishes at 0, which keeps constant features from driving a
        variance to zero), ``LogNormal(mu, s)`` of the variance (default ``(log 0.1, 1.5)``) or
        ``HalfCauchy(scale)`` (default ``(1,)``).
    noise_params : tuple of float, optional
        The noise prior's parameters in the order above.
    loc_scale : float
        :math:`b_i \sim \mathcal N(0, s_b^2)`.
    noise_floor : float
        Added to every noise variance in the likelihood (default 1e-6): a documented floor that
        keeps the density bounded on constant features (book §20.14).
    likelihood : {"collapsed", "latent"}
        ``LowRankMultivariateNormal`` with ``h`` integrated out, or ``h`` as a sample site.
    guide : {"normal", "lowrank", "delta", "structured"}
        The guide of :meth:`guide` / ``fit(method="svi")``.
    guide_rank : int, optional
        Rank of ``AutoLowRankMultivariateNormal`` (``guide="lowrank"``).
    num_prior_draws : int
        How many prior draws stand in for the posterior before ``fit``.

    Examples
    --------
    >>> import pyro, torch
    >>> from pyrogen.models import BayesianFactorAnalysis
    >>> x = torch.randn(100, 5, dtype=torch.float64)
    >>> m = BayesianFactorAnalysis(5, 2).double()
    >>> hist = m.fit(x, method="nuts", num_samples=50, warmup_steps=50, progress=False)
    >>> m.log_likelihood(x).kind
    'posterior_predictive'
    """

    _isotropic = False


@register_model("bayes-ppca")
class BayesianPPCA(_BayesianLinearGaussian):
    r"""Bayesian probabilistic PCA (Bishop 1999): :math:`\Psi = \sigma^2 I` with a prior on
    :math:`\sigma^2` (site ``"noise"``, a scalar), and by default the ARD prior on the columns
    of :math:`W`, which switches off the components the data do not need.

    The parameters are those of :class:`BayesianFactorAnalysis`; ``noise_prior`` is the prior
    of the single variance :math:`\sigma^2`.

    Examples
    --------
    Four NUTS chains, ArviZ diagnostics on rotation-invariant quantities, and LOO::

        from pyrogen import diagnostics
        m = BayesianPPCA(10, 4).double()
        m.fit(x, method="nuts", num_chains=4, num_samples=200, warmup_steps=200)
        idata = m.to_inference_data()
        diagnostics.summary(idata, var_names=["noise", "WWt_diag", "col_norm2"])
        m.active_components()
    """

    _isotropic = True
