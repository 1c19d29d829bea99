r"""Independent component analysis (book §13.2) as Pyro programs.

The ICA models (after [1]_ and [3]_); this module holds the noiseless one, the noisy ones live in
:mod:`pyrogen.models.noisy_ica`, the source densities in :mod:`pyrogen.distributions.sources`,
the linear bijection in :mod:`pyrogen.distributions.transforms`:

* :class:`ICA` — noiseless ICA with an **exact** likelihood. The data are an invertible linear
  map of independent non-Gaussian sources, :math:`x = \mu + A s`, and the Pyro model observes
  ``x`` through a :class:`~pyro.distributions.TransformedDistribution` (change of variables),

  .. math::

      \log p(x) = \sum_i \log p_i\big((U (x - \mu))_i\big) + \log\lvert\det U\rvert,
      \qquad U = A^{-1}.

  Maximum likelihood by SVI (the guide is empty: there is no latent variable, the ELBO *is*
  the log-likelihood) or by full-batch L-BFGS on the same Pyro loss.
* :class:`~pyrogen.models.NoisyICA` — :math:`x = W h + b + \epsilon` with Gaussian noise, an
  importance-sampled log-likelihood; :class:`~pyrogen.models.BayesianNoisyICA` adds a Gaussian
  prior on ``W`` (both in :mod:`pyrogen.models.noisy_ica`).

Sources (``source=``): ``"gennorm"`` (generalized normal with a learnt shape per component: one
family covers sub-Gaussian, Laplace and near-uniform sources), ``"logistic"``, ``"laplace"``,
``"student_t"`` (all scaled to unit variance), or any univariate
:class:`torch.distributions.Distribution` supplied by the user.

ICA is identifiable only when at most one source is Gaussian [2]_; the Amari distance [4]_
measures separation. :class:`ICA` tests every
recovered source for Gaussianity (Jarque–Bera [5]_) after ``fit`` and raises a
:class:`NonIdentifiableWarning` when two or more look Gaussian, instead of silently returning an
arbitrary rotation.

References
----------
.. [1] Goodfellow, Bengio & Courville (2016). *Deep Learning*, §13.2.
.. [2] Comon, P. (1994). Independent component analysis, a new concept? *Signal Processing* 36.
.. [3] Hyvärinen, A., Karhunen, J. & Oja, E. (2001). *Independent Component Analysis*. Wiley.
.. [4] Amari, S., Cichocki, A. & Yang, H. (1996). A new learning algorithm for blind signal
   separation. *NIPS 8*.
.. [5] Jarque, C. & Bera, A. (1987). A test for normality of observations and regression
   residuals. *International Statistical Review* 55.
"""

from __future__ import annotations

import numbers
import time

import pyro
import pyro.distributions as dist
import pyro.infer
import torch
from pyro.nn import PyroParam

from .._validation import check_choice, check_float, check_int
from ..distributions.sources import FactorialSources, GeneralizedNormal, gennorm_shape_from_kurtosis
from ..distributions.transforms import MatrixTransform, check_invertible
from ..evaluation import LogLikelihood
from ._ica_solvers import fastica_symmetric, lbfgs_minimize, seeded_orthogonal
from ._ica_sources import GENNORM_SHAPE_BOUNDS, SOURCES, SourceMixin, config_source
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model
from .ica_stats import NonIdentifiableWarning, amari_distance, gaussianity_test, warn_if_gaussian

# GeneralizedNormal, FactorialSources, MatrixTransform, NonIdentifiableWarning, amari_distance,
# gaussianity_test and SOURCES are re-exported: ``from pyrogen.models.ica import ...`` keeps
# working for them (their homes are named in the module docstring).
__all__ = [
    "ICA",
    "GeneralizedNormal",
    "FactorialSources",
    "MatrixTransform",
    "NonIdentifiableWarning",
    "amari_distance",
    "gaussianity_test",
    "SOURCES",
]


# ------------------------------------------------------------------------------ noiseless ICA
@register_model("ica")
class ICA(SourceMixin, GenerativeModel):
    r"""Noiseless independent component analysis with an exact likelihood (book §13.2).

    Generative model: sources :math:`h \in \mathbb R^K` with a factorial non-Gaussian density
    :math:`p(h) = \prod_i p_i(h_i)` (unit variance), and

    * ``whiten=False`` (then ``n_components == n_features``): :math:`x = W h + b`, square
      invertible mixing :math:`W`; :math:`\log p(x) = \sum_i \log p_i((W^{-1}(x-b))_i) -
      \log|\det W|`.
    * ``whiten=True``: at ``fit`` the data are centred and rotated onto their principal axes
      :math:`E` with variances :math:`\lambda`; the top ``K`` whitened coordinates are mixed by a
      learnt square :math:`W` and the remaining :math:`D-K` (if any) are modelled as Gaussian
      with their mean variance :math:`\bar\lambda_\perp` (as in probabilistic PCA):

      .. math::

          x = \mu + E_K \Lambda_K^{1/2} W h + \bar\lambda_\perp^{1/2} E_\perp g,
          \qquad g \sim \mathcal N(0, I_{D-K}).

      This is an invertible linear map of independent sources on all of :math:`\mathbb R^D`, so
      ``log_likelihood`` is the *exact* log-density of ``x`` under this full-rank model; with
      ``K = D`` it is exactly the first case.

    The Pyro ``model`` observes ``x`` through ``TransformedDistribution(FactorialSources,
    [MatrixTransform(U).inv, AffineTransform(mu)])`` where :math:`U` is the total unmixing matrix,
    so ``Trace_ELBO`` with the empty ``guide`` is exactly :math:`-\log p(x)`.

    Parameters
    ----------
    n_features : int
        Data dimension ``D``.
    n_components : int, optional
        Number of non-Gaussian sources ``K`` (default ``D``). ``K < D`` needs ``whiten=True``.
    source : str or torch.distributions.Distribution
        ``"gennorm"`` (default: generalized normal with a learnt shape per source, so sub- and
        super-Gaussian sources are both modelled), ``"logistic"``, ``"laplace"``,
        ``"student_t"``, or a univariate distribution (held fixed; models with one cannot be
        saved).
    whiten : bool
        Whiten (PCA) at ``fit``; recommended.
    df : float
        Degrees of freedom of ``"student_t"`` (> 2, for a unit variance).

    Attributes
    ----------
    unmixing : Tensor, shape ``(K, K)``
        Learnt unmixing in whitened coordinates (``(D, D)`` in data coordinates without
        whitening); Pyro parameter. ``components_`` and ``mixing_`` give it in data space.
    gaussianity_ : dict
        Jarque–Bera test of each recovered source on the training data (see
        :func:`gaussianity_test`), set by ``fit`` (empty with fewer than 8 rows).

    Notes
    -----
    Cost per evaluation of ``log_likelihood``: :math:`O(n D^2 + D^3)`.
    ``fit`` ends by putting the sources in a canonical order and sign (decreasing norm of the
    mixing column in data space; the largest-magnitude loading of each column positive), which
    leaves the likelihood unchanged for the built-in (symmetric, exchangeable) sources, so
    ``transform`` is stable across restarts and seeds.
    """

    def __init__(
        self,
        n_features: int,
        n_components: int | None = None,
        source="gennorm",
        whiten: bool = True,
        df: float = 5.0,
    ):
        d = check_int(n_features, "n_features", low=1)
        k = d if n_components is None else check_int(n_components, "n_components", 1, d)
        if not isinstance(whiten, bool):
            raise TypeError(f"whiten must be a bool. Got {type(whiten).__name__} instead.")
        if not whiten and k != d:
            raise ValueError(
                f"n_components must equal n_features={d} when whiten=False (square mixing). "
                f"Got {k} instead."
            )
        super().__init__(
            n_features=d,
            n_components=k,
            source=config_source(source),
            whiten=whiten,
            df=float(df) if isinstance(df, numbers.Real) else df,
        )
        self.n_components = k
        self._init_source(source, df, k)
        self.unmixing = PyroParam(torch.eye(k))
        self.register_buffer("mean_", torch.zeros(d))
        self.register_buffer("pca_components_", torch.eye(d))
        self.register_buffer("pca_scales_", torch.ones(d))
        if not whiten:
            self.bias = PyroParam(torch.zeros(d))
        self.gaussianity_: dict = {}

    # ------------------------------------------------------------------ the linear map
    def _location(self):
        return self.mean_ if self.config["whiten"] else self.bias

    def total_unmixing(self) -> torch.Tensor:
        r"""The ``(D, D)`` matrix :math:`U` with :math:`s = U(x - \mu)`, sources first."""
        u = self.unmixing
        if not self.config["whiten"]:
            return u
        d, k = self.n_features, self.n_components
        rot = self.pca_components_.T / self.pca_scales_.unsqueeze(-1)  # (D, D) whitening
        if k == d:
            return u @ rot
        return torch.cat([u @ rot[:k], rot[k:]], 0)

    def distribution(self, check: bool = True) -> dist.TransformedDistribution:
        """The exact density of ``x``: ``TransformedDistribution`` over the sources."""
        u = self.total_unmixing()
        base = FactorialSources(
            self.source_distribution(), self.n_components, self.n_features - self.n_components
        )
        return dist.TransformedDistribution(
            base,
            [
                MatrixTransform(u, check=check).inv,
                dist.transforms.AffineTransform(
                    self._location(), torch.ones_like(self._location()), event_dim=1
                ),
            ],
        )

    @property
    def components_(self) -> torch.Tensor:
        """Unmixing in data space, shape ``(K, D)``."""
        with torch.no_grad():
            return self.total_unmixing()[: self.n_components].detach().clone()

    @property
    def mixing_(self) -> torch.Tensor:
        """Mixing in data space, shape ``(D, K)``."""
        with torch.no_grad():
            return torch.linalg.inv(self.total_unmixing())[:, : self.n_components].clone()

    def set_mixing(self, mixing) -> None:
        """Set the mixing in whitened coordinates (``(K, K)``; data coordinates without
        whitening). Raises ``ValueError`` if it is not square of that size or not invertible."""
        k = self.n_components
        w = torch.as_tensor(mixing, dtype=self.dtype, device=self.device)
        if w.shape != (k, k):
            raise ValueError(
                f"mixing must have shape ({k}, {k}). Got shape {tuple(w.shape)} instead."
            )
        check_invertible(w, "mixing")
        with torch.no_grad():
            self.unmixing = torch.linalg.inv(w).contiguous()

    # ------------------------------------------------------------------ Pyro program
    @pyro.nn.pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        """Observe ``x`` through the change of variables (no latent sample sites)."""
        d = self.distribution(check=False)
        with self._data_plate(x, num_data):
            pyro.sample("x", d, obs=x)

    @pyro.nn.pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        """Empty: there is no latent variable, so the ELBO equals the log-likelihood."""

    # ------------------------------------------------------------------ protocol verbs
    def log_likelihood(self, x) -> LogLikelihood:
        """Exact per-example :math:`\\log p(x)` (nats), shape ``(n,)``; kind ``"exact"``."""
        x = self._check_x(x)
        with torch.no_grad():
            values = self.distribution(check=True).log_prob(x)
        return LogLikelihood(
            values.detach(),
            "exact",
            info={"model": "ICA", "n_components": self.n_components},
        )

    def sample(self, n) -> torch.Tensor:
        """Draw ``n`` rows :math:`x = \\mu + U^{-1} s`, shape ``(n, n_features)``."""
        n = self._check_n(n)
        with torch.no_grad():
            return self.distribution(check=True).sample((n,))

    def transform(self, x) -> torch.Tensor:
        """The sources :math:`h = \\text{components\\_}(x - \\mu)`, shape ``(n, K)``."""
        x = self._check_x(x)
        with torch.no_grad():
            u = self.total_unmixing()
            check_invertible(u, "unmixing")
            return (x - self._location()) @ u[: self.n_components].T

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return ("lbfgs", "svi", "fixed_point")

    def fit(
        self,
        x,
        *,
        method: str = "lbfgs",
        num_steps: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        seed: int | None = None,
        n_init: int = 1,
        tol: float | str | None = "auto",
        polish_steps: int = 50,
        check_identifiability: bool = True,
        alpha: float = 0.01,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
        loss=None,
    ) -> FitHistory:
        r"""Maximum-likelihood fit.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
        method : {"lbfgs", "svi", "fixed_point"}
            ``"lbfgs"``: full-batch L-BFGS (strong Wolfe) on Pyro's ``Trace_ELBO``
            differentiable loss of ``model``/``guide``, which here is exactly
            :math:`-\log p(x)`; fast and deterministic. ``"svi"``: ``pyro.infer.SVI`` with
            Adam (minibatches with ``batch_size``). ``"fixed_point"``: two stages: the
            symmetric fixed-point iteration of FastICA on the whitened data with the contrast
            :math:`G(y) = \log\cosh y` (a fast estimate of the rotation, Hyvärinen 1999),
            then at most ``polish_steps`` L-BFGS iterations of the exact likelihood from
            there, so the result is a stationary point of the same exact :math:`\log p(x)`
            as ``"lbfgs"`` (with ``polish_steps=0`` it is the FastICA-contrast estimate, and
            ``log_likelihood`` is the exact likelihood there).
        num_steps : int, optional
            L-BFGS iterations (default 200), SVI steps (default 1000) or fixed-point
            iterations (default 200).
        lr : float, optional
            L-BFGS step scale (default 1) or Adam learning rate (default 0.02).
        seed : int, optional
            Seeds the random orthogonal initialization (and Pyro).
        n_init : int
            Restarts from different random rotations; the one with the highest training
            log-likelihood is kept (ML over restarts).
        tol : float, "auto" or None
            L-BFGS tolerance on the change of the mean negative log-likelihood (and, for
            ``"fixed_point"``, on :math:`\max_i 1 - |\langle u_i^{new}, u_i\rangle|`);
            ``"auto"``: 1e-7. ``"svi"``: the shared training loop's convergence test
            (:meth:`~pyrogen.models.base.GenerativeModel._train`: windowed mean loss, relative;
            ``"auto"``: 1e-4; ``None``: exactly ``num_steps`` steps, no test), with a
            ``ConvergenceWarning`` when the steps run out first.
        polish_steps : int
            ``"fixed_point"`` only: L-BFGS iterations of the exact likelihood after the
            fixed-point stage (``0``: none).
        check_identifiability : bool
            Test the recovered sources for Gaussianity and warn (:class:`NonIdentifiableWarning`)
            when two or more are not distinguishable from Gaussian at level ``alpha``.
        alpha : float
            Level of the per-source Jarque–Bera test.

        Returns
        -------
        FitHistory
            ``losses`` are the mean negative log-likelihood per example (exact);
            ``info["log_likelihood"]`` the final mean exact log-likelihood.

        Raises
        ------
        ValueError
            Bad arguments; fewer rows than ``n_components + 1``; rank-deficient data (a
            covariance eigenvalue below ``1e-10`` of the largest among the modelled directions).
        """
        method = check_choice(method, "method", self.fit_methods())
        x = self._check_x(x, min_rows=self.n_components + 1)
        n_init = check_int(n_init, "n_init", low=1)
        if isinstance(tol, str) and tol == "auto":
            tol = DEFAULT_TOL if method == "svi" else 1e-7
        elif tol is None and method != "svi":
            raise ValueError(
                f"tol=None (no convergence test) applies to method='svi' only. Got tol=None "
                f"with method={method!r}; pass a float or 'auto'."
            )
        if tol is not None:
            tol = check_float(tol, "tol", 0.0, None, "cc")
        polish_steps = check_int(polish_steps, "polish_steps", low=0)
        alpha = check_float(alpha, "alpha", 0.0, 1.0, "oo")
        if seed is not None:
            seed = check_int(seed, "seed", low=0)
            pyro.set_rng_seed(seed)
        if data_info is not None:
            self.data_info = dict(data_info)
        self._fit_preprocess(x)
        t0 = time.perf_counter()
        best = None
        for r in range(n_init):
            self._init_params(x, None if seed is None else seed + r if n_init > 1 else seed,
                              restart=r)
            if method == "fixed_point":
                hist = self._fit_fixed_point(
                    x,
                    num_steps=200 if num_steps is None else num_steps,
                    tol=tol,
                    polish_steps=polish_steps,
                    callback=callback,
                )
            elif method == "lbfgs":
                hist = self._fit_lbfgs(
                    x,
                    num_steps=200 if num_steps is None else num_steps,
                    lr=1.0 if lr is None else lr,
                    tol=tol,
                    callback=callback,
                )
            else:
                hist = self._fit_svi(
                    x,
                    num_steps=1000 if num_steps is None else num_steps,
                    lr=0.02 if lr is None else lr,
                    batch_size=batch_size,
                    loss=loss,
                    tol=tol,
                    progress=progress,
                    callback=callback,
                )
            with torch.no_grad():
                ll = float(self.distribution(check=False).log_prob(x).mean())
            if best is None or ll > best[0]:
                best = (ll, hist, {k: v.detach().clone() for k, v in self.state_dict().items()})
        ll, hist, state = best
        self.load_state_dict(state)
        if self._source_name == "gennorm":  # store the shape actually used (see the clamp)
            with torch.no_grad():
                self.source_shape = self.source_shape.clamp(*GENNORM_SHAPE_BOUNDS).clone()
        self._canonicalize(x)
        hist.seconds = time.perf_counter() - t0
        with torch.no_grad():
            ll = float(self.distribution(check=True).log_prob(x).mean())
        hist.info.update(log_likelihood=ll, n_init=n_init, method=method)
        hist.log(log_likelihood=ll)
        # the Jarque-Bera test needs a few rows; with fewer there is nothing to test
        self.gaussianity_ = gaussianity_test(self.transform(x)) if x.shape[0] >= 8 else {}
        if check_identifiability and self.gaussianity_:
            self._warn_if_gaussian(alpha)
        return hist

    def _fit_preprocess(self, x: torch.Tensor) -> None:
        n, d = x.shape
        k = self.n_components
        with torch.no_grad():
            mean = x.mean(0)
            cov = (x - mean).T @ (x - mean) / n
            evals, evecs = torch.linalg.eigh(cov)
            evals, evecs = evals.flip(0), evecs.flip(1)
            top = float(evals[0])
            modelled = evals[:k]
            rank = int((evals > 1e-10 * max(top, 1e-300)).sum())
            if top <= 0 or float(modelled[-1]) <= 1e-10 * top:
                raise ValueError(
                    f"x must have full rank in the {k} modelled direction(s): its covariance "
                    f"has numerical rank {rank} (eigenvalues {evals.tolist()[:6]}...). Use "
                    f"n_components <= {rank} with whiten=True, or remove collinear features."
                )
            if self.config["whiten"]:
                scales = evals.clamp_min(0).sqrt()
                if k < d:
                    rest = evals[k:].clamp_min(0).mean()
                    if float(rest) <= 1e-12 * top:
                        rest = evals[k - 1] * 1e-6  # data on a K-dim subspace: tiny complement
                    scales[k:] = rest.sqrt()
                self.mean_.copy_(mean)
                self.pca_components_.copy_(evecs)
                self.pca_scales_.copy_(scales)
            elif rank < d:
                raise ValueError(
                    f"x must have full rank {d} when whiten=False (exact density on R^D). Got "
                    f"numerical rank {rank} instead; use whiten=True with n_components <= {rank}."
                )

    def _init_params(self, x, seed, restart):
        k = self.n_components
        q = seeded_orthogonal(k, seed if seed is not None else restart, self.dtype)
        with torch.no_grad():
            if self.config["whiten"]:
                u0 = q
            else:
                mean = x.mean(0)
                cov = (x - mean).T @ (x - mean) / x.shape[0]
                evals, evecs = torch.linalg.eigh(cov)
                u0 = q @ (evecs.T / evals.sqrt().unsqueeze(-1))
                self.bias = mean.clone()
            self.unmixing = u0.contiguous().clone()
            self._init_shapes(x)

    def _init_shapes(self, x):
        """Generalized-normal shapes matched to the kurtosis of the current sources."""
        if self._source_name != "gennorm":
            return
        k = self.n_components
        with torch.no_grad():
            s = (x - self._location()) @ self.total_unmixing()[:k].T
            c = s - s.mean(0)
            kurt = (c**4).mean(0) / (c**2).mean(0).clamp_min(1e-300) ** 2 - 3.0
            beta = gennorm_shape_from_kurtosis(kurt)
            # keep away from the Gaussian saddle (beta = 2) and the bounds
            beta = torch.where((beta - 2).abs() < 0.3, 2 + 0.3 * torch.sign(kurt.neg()), beta)
            self.source_shape = beta.clamp(1.05, 9.5)

    def _fit_fixed_point(self, x, *, num_steps, tol, polish_steps, callback):
        r"""FastICA's symmetric fixed point on whitened data, then exact-likelihood L-BFGS.

        Stage 1 (Hyvärinen 1999; Hyvärinen, Karhunen & Oja 2001, §8.4): with whitened data
        :math:`z` (the top ``K`` principal coordinates scaled to unit variance) and an
        orthogonal :math:`U`, iterate

        .. math::

            U \leftarrow \mathbb E[g(Uz) z^\top] - \operatorname{diag}\mathbb E[g'(Uz)]\,U,
            \qquad U \leftarrow (UU^\top)^{-1/2} U,

        with :math:`g = \tanh` (the contrast :math:`\sum_i \mathbb E\log\cosh(u_i^\top
        z)`, an approximation of negentropy, *not* the model's likelihood) until
        :math:`\max_i 1 - |\langle u_i^{new}, u_i\rangle| \le` ``tol``; each iteration costs
        :math:`O(nK^2)`. The generalized-normal shapes are then set from the sources'
        kurtosis. Stage 2: L-BFGS on the exact negative log-likelihood (all of :math:`U`, the
        shapes, and the bias without whitening) from that point, so the estimate is the
        model's maximum-likelihood one (Cardoso 1997: the Infomax/ML and negentropy
        estimators coincide only when the contrast matches the source densities).
        """
        num_steps = check_int(num_steps, "num_steps", low=1)
        k = self.n_components
        with torch.no_grad():
            if self.config["whiten"]:
                mean = self.mean_
                white = (self.pca_components_.T / self.pca_scales_.unsqueeze(-1))[:k]
                u = self.unmixing.detach().clone()
            else:
                mean = x.mean(0)
                xc = x - mean
                evals, evecs = torch.linalg.eigh(xc.T @ xc / x.shape[0])
                white = evecs.T / evals.sqrt().unsqueeze(-1)
                u = self.unmixing.detach() @ torch.linalg.inv(white)
            z = (x - mean) @ white.T
            u, it, converged = fastica_symmetric(z, u, num_steps=num_steps, tol=tol)
            if self.config["whiten"]:
                self.unmixing = u.contiguous().clone()
            else:
                self.unmixing = (u @ white).contiguous()
                self.bias = mean.clone()
            self._init_shapes(x)
            start = float(self._nll(x))
        if polish_steps > 0:
            hist = self._fit_lbfgs(x, num_steps=polish_steps, lr=1.0, tol=tol, callback=callback)
            polish_converged = hist.converged
            hist.losses.insert(0, start)
        else:
            hist = FitHistory(method="fixed_point", losses=[start])
            polish_converged = None
        hist.method = "fixed_point"
        hist.converged = converged if polish_steps == 0 else bool(polish_converged)
        hist.info.update(
            fixed_point_iterations=it,
            fixed_point_converged=converged,
            contrast="logcosh (stage 1), exact log-likelihood (stage 2)",
            polish_steps=polish_steps,
            polish_converged=polish_converged,
        )
        return hist

    def _nll(self, x):
        # the same TransformedDistribution that ``model`` observes, without the poutine
        # overhead: Trace_ELBO's loss of (model, empty guide) is exactly this sum
        return -self.distribution(check=False).log_prob(x).mean()

    def _fit_lbfgs(self, x, *, num_steps, lr, tol, callback):
        num_steps = check_int(num_steps, "num_steps", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        params = [p for p in self.parameters() if p.requires_grad]
        return lbfgs_minimize(
            params,
            lambda: self._nll(x),
            num_steps=num_steps,
            lr=lr,
            tol=tol,
            callback=callback,
            what="negative log-likelihood",
            hint="check the data scale or use whiten=True.",
        )

    def _canonicalize(self, x):
        """Order sources by decreasing data-space mixing-column norm; sign: largest loading > 0.

        Applied only if it leaves the training log-likelihood unchanged (it does for the
        built-in symmetric sources with the per-source shape permuted along).
        """
        k = self.n_components
        with torch.no_grad():
            before = self.distribution(check=False).log_prob(x).mean()
            old = {n: v.detach().clone() for n, v in self.state_dict().items()}
            a = torch.linalg.inv(self.total_unmixing())[:, :k]
            order = torch.argsort(a.norm(dim=0), descending=True, stable=True)
            a = a[:, order]
            idx = a.abs().argmax(0)
            sign = torch.sign(a[idx, torch.arange(k)])
            sign[sign == 0] = 1
            u = self.unmixing
            self.unmixing = (u[order] * sign.unsqueeze(-1)).contiguous()
            if self._source_name == "gennorm":
                self.source_shape = self.source_shape[order].clone()
            after = self.distribution(check=False).log_prob(x).mean()
            if not torch.isclose(before, after, rtol=1e-6, atol=1e-8):
                self.load_state_dict(old)

    def _warn_if_gaussian(self, alpha: float) -> None:
        warn_if_gaussian(self.gaussianity_, alpha, stacklevel=4)
