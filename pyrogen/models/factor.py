r"""Factor analysis and probabilistic PCA (book §13.1) as Pyro model/guide pairs.

Both models share the linear-Gaussian generative process

.. math::

    h \sim \mathcal{N}(0, I_K), \qquad
    x \mid h \sim \mathcal{N}(W h + b, \Psi),

with ``weight`` :math:`W \in \mathbb{R}^{d \times K}`, ``bias`` :math:`b \in \mathbb{R}^d` and a
diagonal noise covariance :math:`\Psi = \operatorname{diag}(\psi)`: free per feature for
:class:`FactorAnalysis`, :math:`\psi = \sigma^2 \mathbf{1}` for :class:`PPCA`. Integrating
:math:`h` out gives the exact marginal

.. math::

    p(x) = \mathcal{N}(x;\, b,\, C), \qquad C = W W^\top + \Psi,

and the exact posterior

.. math::

    p(h \mid x) = \mathcal{N}\big(h;\, A^{-1} W^\top \Psi^{-1} (x - b),\, A^{-1}\big),
    \qquad A = I_K + W^\top \Psi^{-1} W.

Every quantity is computed through :math:`A` (Woodbury / matrix determinant lemma), so the cost
of ``log_likelihood`` is :math:`O(n d K + d K^2)` and never forms the :math:`d \times d` matrix
:math:`C`.

Two Pyro forms (constructor argument ``form``):

* ``"collapsed"`` (default): :math:`h` integrated out, ``x ~ LowRankMultivariateNormal(b, W,
  psi)``; the guide is empty, so ``Trace_ELBO`` *is* the exact negative log-likelihood and SVI
  is maximum likelihood by stochastic gradients.
* ``"latent"``: ``h ~ N(0, I)`` is sampled in the data plate and ``x | h`` observed; the guide is
  either the exact Gaussian posterior computed from the current :math:`W, b, \psi`
  (``guide_type="exact"``; its ELBO equals :math:`\log p(x)` for every draw, so SVI follows the
  exact gradient with zero variance) or an amortized linear encoder
  :math:`q(h \mid x) = \mathcal{N}(E x + c, L L^\top)` (``guide_type="encoder"``), a family
  that contains the exact posterior.

Noise floor. A constant feature (a pixel that never changes) lets :math:`\psi_j \to 0` and the
likelihood grow without bound (book §20.14; in factor analysis also "Heywood cases", features that
one factor explains exactly). Every fit keeps :math:`\psi_j \ge` ``noise_floor_`` (by default
:math:`10^{-6}` times the mean per-feature variance of the data seen by ``fit``) and warns
(:class:`ConstantFeatureWarning`, :class:`NoiseFloorWarning`). Each constant feature then adds
:math:`-\tfrac12 \log(2 \pi\, \text{floor})` nats to the log-likelihood, which says more about
the floor than about the model: drop constant columns before comparing models.

References
----------
1. Goodfellow, Bengio & Courville, *Deep Learning*, §13.1 (2016).
2. Rubin & Thayer, "EM algorithms for ML factor analysis", Psychometrika 47 (1982).
3. Tipping & Bishop, "Probabilistic principal component analysis", JRSS B 61 (1999).
4. Barber, *Bayesian Reasoning and Machine Learning*, §21.2 (2012) (the SVD-based factor-analysis
   iteration that :class:`sklearn.decomposition.FactorAnalysis` also uses).
"""

from __future__ import annotations

import math
import time
import warnings

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from pyro.nn import PyroParam, pyro_method
from tqdm.auto import tqdm

from .._validation import check_choice, check_float, check_int
from ..evaluation import LogLikelihood
from ..exceptions import ConvergenceWarning
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = [
    "FactorAnalysis",
    "PPCA",
    "NoiseFloorWarning",
    "ConstantFeatureWarning",
    "ConvergenceWarning",
]

_LOG_2PI = math.log(2.0 * math.pi)
#: relative noise floor used by ``noise_floor="auto"`` (times the mean per-feature variance)
AUTO_FLOOR_FACTOR = 1e-6


class NoiseFloorWarning(UserWarning):
    """A noise variance reached the floor ``noise_floor_`` (its likelihood is unbounded)."""


class ConstantFeatureWarning(NoiseFloorWarning):
    """The data has constant columns, whose noise variance is held at the floor."""


# ---------------------------------------------------------------------------------------------
# linear-Gaussian algebra (any float dtype; callers use float64)
# ---------------------------------------------------------------------------------------------
def _precision_chol(weight: torch.Tensor, psi: torch.Tensor):
    """``Wp = Psi^{-1} W`` and the Cholesky factor of ``A = I + W^T Psi^{-1} W``."""
    wp = weight / psi.unsqueeze(-1)
    eye = torch.eye(weight.shape[-1], dtype=weight.dtype, device=weight.device)
    chol = torch.linalg.cholesky(eye + weight.T @ wp)
    return wp, chol


def _gaussian_log_prob(x, weight, bias, psi) -> torch.Tensor:
    """Per-row :math:`\\log \\mathcal{N}(x; b, WW^T + \\Psi)` via Woodbury, shape ``(n,)``."""
    d = x.shape[-1]
    wp, chol = _precision_chol(weight, psi)
    r = x - bias
    logdet = psi.log().sum() + 2.0 * chol.diagonal().log().sum()
    z = r @ wp  # (n, K)
    y = torch.linalg.solve_triangular(chol, z.T, upper=False)
    quad = (r * r / psi).sum(-1) - (y * y).sum(0)
    return -0.5 * (d * _LOG_2PI + logdet + quad)


def _mean_log_lik_cov(cov, weight, psi) -> float:
    """Mean log-likelihood of data whose covariance about ``b`` is ``cov`` (``b`` = its mean)."""
    d = cov.shape[0]
    wp, chol = _precision_chol(weight, psi)
    logdet = psi.log().sum() + 2.0 * chol.diagonal().log().sum()
    trace = (cov.diagonal() / psi).sum() - torch.cholesky_solve(wp.T @ (cov @ wp), chol).trace()
    return float(-0.5 * (d * _LOG_2PI + logdet + trace))


def _moments(x: torch.Tensor):
    """Mean and covariance (divisor n) of the rows of ``x``, both float64.

    The product is taken in ``x``'s dtype; on the CPU through NumPy, whose ``a.T @ a`` uses
    BLAS ``syrk`` (half the work of a general matrix product).
    """
    x = x.detach()
    mean = x.double().mean(0)
    xc = x - mean.to(x.dtype)
    cov = _numpy_gram(xc) if xc.device.type == "cpu" else None
    if cov is None:
        cov = xc.T @ xc
    cov = cov.double() / x.shape[0]
    return mean, 0.5 * (cov + cov.T)


_BLAS = []


def _numpy_gram(xc: torch.Tensor):
    """``xc.T @ xc`` by NumPy (``syrk``) with its BLAS limited to torch's thread count.

    NumPy's BLAS otherwise starts one thread per core, which on a busy machine can be 100x
    slower than one thread. Returns ``None`` (use torch) without ``threadpoolctl``.
    """
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return None
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    a = xc.numpy()
    with _BLAS[0].limit(limits=torch.get_num_threads(), user_api="blas"):
        return torch.from_numpy(a.T @ a)


def _top_eigh(mat: torch.Tensor, k: int):
    """Eigenvalues (descending) and eigenvectors of a symmetric matrix; all, top ``k`` first."""
    evals, evecs = torch.linalg.eigh(mat)
    return evals.flip(0), evecs.flip(1)


class _LinearGaussian(GenerativeModel):
    """Shared machinery of :class:`FactorAnalysis` and :class:`PPCA` (not registered)."""

    _isotropic = False
    _default_method = "em"

    def __init__(
        self,
        n_features: int,
        n_components: int,
        *,
        form: str = "collapsed",
        guide_type: str = "exact",
        init_noise: float = 1.0,
        init_scale: float = 0.1,
        noise_floor: str | float = "auto",
        seed: int | None = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        n_components = check_int(n_components, "n_components", low=1, high=n_features)
        check_choice(form, "form", ("collapsed", "latent"))
        check_choice(guide_type, "guide_type", ("exact", "encoder"))
        init_noise = check_float(init_noise, "init_noise", 0.0, None, "oo")
        init_scale = check_float(init_scale, "init_scale", 0.0, None, "oo")
        if isinstance(noise_floor, str):
            check_choice(noise_floor, "noise_floor", ("auto",))
        else:
            noise_floor = check_float(noise_floor, "noise_floor", 0.0, None, "oo")
        super().__init__(
            n_features=n_features,
            n_components=n_components,
            form=form,
            guide_type=guide_type,
            init_noise=init_noise,
            init_scale=init_scale,
            noise_floor=noise_floor,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        d, k = n_features, n_components
        dtype = torch.get_default_dtype()
        floor = AUTO_FLOOR_FACTOR if noise_floor == "auto" else noise_floor
        self.register_buffer("noise_floor_", torch.tensor(floor, dtype=dtype))
        self.weight = torch.nn.Parameter(torch.randn(d, k, dtype=dtype) * init_scale)
        self.bias = torch.nn.Parameter(torch.zeros(d, dtype=dtype))
        raw_shape = () if self._isotropic else (d,)
        raw = math.log(max(init_noise - floor, floor * 1e-8))
        self.noise_raw = torch.nn.Parameter(torch.full(raw_shape, raw, dtype=dtype))
        if guide_type == "encoder":
            self.encoder_weight = torch.nn.Parameter(torch.zeros(k, d, dtype=dtype))
            self.encoder_bias = torch.nn.Parameter(torch.zeros(k, dtype=dtype))
            self.encoder_scale_tril = PyroParam(
                torch.eye(k, dtype=dtype), constraint=constraints.lower_cholesky
            )

    # ------------------------------------------------------------------ parameters
    @property
    def n_components(self) -> int:
        return int(self.config["n_components"])

    @property
    def form(self) -> str:
        return self.config["form"]

    def _psi(self) -> torch.Tensor:
        """Noise variances ``floor + exp(noise_raw)``, shape ``(n_features,)``, differentiable."""
        psi = self.noise_floor_ + self.noise_raw.exp()
        return psi.expand(self.n_features) if self._isotropic else psi

    @property
    def noise_variance(self) -> torch.Tensor:
        r"""The diagonal :math:`\psi` of :math:`\Psi`, shape ``(n_features,)`` (detached)."""
        return self._psi().detach().clone()

    def covariance(self) -> torch.Tensor:
        r"""The marginal covariance :math:`C = WW^\top + \Psi`, shape ``(d, d)`` (detached)."""
        w = self.weight.detach()
        return w @ w.T + torch.diag(self.noise_variance)

    def marginal(self) -> dist.LowRankMultivariateNormal:
        r"""The exact marginal :math:`p(x) = \mathcal{N}(b, WW^\top + \Psi)` as a distribution."""
        return dist.LowRankMultivariateNormal(self.bias, self.weight, self._psi())

    @torch.no_grad()
    def _assign(self, weight=None, bias=None, psi=None, floor=None) -> None:
        """Write parameters in place (keeps the tensors Pyro's param store holds)."""
        if floor is not None:
            keep = self.noise_variance.double()
            self.noise_floor_.fill_(float(floor))
            psi = keep if psi is None else psi
        if weight is not None:
            self.weight.copy_(weight.to(self.weight))
        if bias is not None:
            self.bias.copy_(bias.to(self.bias))
        if psi is not None:
            psi = torch.as_tensor(psi, dtype=torch.float64)
            if self._isotropic:
                psi = psi.reshape(-1)[0]
            fl = float(self.noise_floor_)
            excess = (psi - fl).clamp(min=fl * 1e-8)
            self.noise_raw.copy_(excess.log().to(self.noise_raw))

    def _float64_params(self):
        return (
            self.weight.detach().double(),
            self.bias.detach().double(),
            self._psi().detach().double(),
        )

    # ------------------------------------------------------------------ Pyro model / guide
    @pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        """The Pyro model of the chosen ``form`` (``"collapsed"`` or ``"latent"``).

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
            Observed rows (a minibatch when ``num_data`` is given).
        num_data : int, optional
            Size of the full data set (the ``"data"`` plate is scaled to it).
        """
        if self.form == "collapsed":
            return self.model_collapsed(x, num_data)
        return self.model_latent(x, num_data)

    @pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        """The guide matching :meth:`model`: empty (collapsed), exact posterior or encoder."""
        if self.form == "collapsed":
            return self.guide_collapsed(x, num_data)
        if self.config["guide_type"] == "encoder":
            return self.guide_encoder(x, num_data)
        return self.guide_exact(x, num_data)

    @pyro_method
    def model_collapsed(self, x: torch.Tensor, num_data: int | None = None):
        r"""``x ~ LowRankMultivariateNormal(b, W, psi)`` (site ``"x"``), h integrated out."""
        marginal = dist.LowRankMultivariateNormal(self.bias, self.weight, self._psi())
        with self._data_plate(x, num_data):
            return pyro.sample("x", marginal, obs=x)

    @pyro_method
    def guide_collapsed(self, x: torch.Tensor, num_data: int | None = None):
        """Empty guide: the collapsed model has no latent sites."""
        return None

    @pyro_method
    def model_latent(self, x: torch.Tensor, num_data: int | None = None):
        """``h ~ N(0, I)`` (site ``"h"``) and ``x | h ~ N(W h + b, diag(psi))`` (site ``"x"``)."""
        w, b, psi = self.weight, self.bias, self._psi()
        prior = dist.Normal(torch.zeros_like(w[0]), torch.ones_like(w[0])).to_event(1)
        with self._data_plate(x, num_data):
            h = pyro.sample("h", prior)
            return pyro.sample("x", dist.Normal(h @ w.T + b, psi.sqrt()).to_event(1), obs=x)

    @pyro_method
    def guide_exact(self, x: torch.Tensor, num_data: int | None = None):
        r"""The exact posterior :math:`q(h \mid x) = p(h \mid x)` from the current parameters.

        Gradients flow through the posterior's mean and covariance, so the single-draw ELBO
        equals :math:`\log p(x)` for every draw and its gradient is the exact one.
        """
        w, b, psi = self.weight, self.bias, self._psi()
        wp, chol = _precision_chol(w, psi)
        loc = torch.cholesky_solve(((x - b) @ wp).T, chol).T
        precision = chol @ chol.T
        with self._data_plate(x, num_data):
            return pyro.sample("h", dist.MultivariateNormal(loc, precision_matrix=precision))

    @pyro_method
    def guide_encoder(self, x: torch.Tensor, num_data: int | None = None):
        r"""Amortized linear encoder :math:`q(h \mid x) = \mathcal{N}(E x + c, L L^\top)`.

        Needs ``guide_type="encoder"`` (which creates ``encoder_weight`` :math:`E`,
        ``encoder_bias`` :math:`c` and ``encoder_scale_tril`` :math:`L`).
        """
        if self.config["guide_type"] != "encoder":
            raise ValueError(
                "guide_encoder needs a model built with guide_type='encoder'. "
                f"Got guide_type={self.config['guide_type']!r} instead."
            )
        loc = x @ self.encoder_weight.T + self.encoder_bias
        q = dist.MultivariateNormal(loc, scale_tril=self.encoder_scale_tril)
        with self._data_plate(x, num_data):
            return pyro.sample("h", q)

    # ------------------------------------------------------------------ protocol verbs
    @torch.no_grad()
    def log_likelihood(self, x) -> LogLikelihood:
        r"""Exact per-example :math:`\log \mathcal{N}(x; b, WW^\top + \Psi)`, shape ``(n,)``.

        Computed in float64 with the matrix determinant lemma and Woodbury's identity
        (:math:`O(ndK + dK^2)`), returned in the model's dtype; ``kind="exact"``.
        """
        x = self._check_x(x)
        w, b, psi = self._float64_params()
        values = _gaussian_log_prob(x.double(), w, b, psi).to(self.dtype)
        return LogLikelihood(
            values,
            "exact",
            info={"model": type(self).__name__, "n_components": self.n_components},
        )

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """Draw ``n`` rows from the model, shape ``(n, n_features)`` (torch's global RNG)."""
        n = self._check_n(n)
        w, b, psi = self.weight, self.bias, self._psi()
        h = torch.randn(n, self.n_components, dtype=w.dtype, device=w.device)
        noise = torch.randn(n, self.n_features, dtype=w.dtype, device=w.device)
        return h @ w.T + b + noise * psi.sqrt()

    @torch.no_grad()
    def transform(self, x) -> torch.Tensor:
        r"""Posterior mean :math:`E[h \mid x] = A^{-1} W^\top \Psi^{-1}(x - b)`, ``(n, K)``."""
        x = self._check_x(x)
        w, b, psi = self._float64_params()
        wp, chol = _precision_chol(w, psi)
        return torch.cholesky_solve(((x.double() - b) @ wp).T, chol).T.to(self.dtype)

    @torch.no_grad()
    def posterior_covariance(self) -> torch.Tensor:
        r"""Covariance :math:`A^{-1} = (I + W^\top \Psi^{-1} W)^{-1}` of :math:`p(h \mid x)`."""
        w, _, psi = self._float64_params()
        _, chol = _precision_chol(w, psi)
        return torch.cholesky_inverse(chol).to(self.dtype)

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return self._methods

    def fit(
        self,
        x,
        *,
        method: str | None = None,
        num_steps: int | None = None,
        tol: float | str | None = "auto",
        lr: float = 0.01,
        batch_size: int | None = None,
        loss: pyro.infer.ELBO | None = None,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        """Fit by maximum likelihood; see the class docstring for the methods.

        Parameters
        ----------
        x : Tensor or ndarray, shape ``(n, n_features)``, ``n >= 2``
        method : str, optional
            One of :meth:`fit_methods`; defaults to the class's closed-form/EM method.
        num_steps : int, optional
            SVI: maximum optimizer steps (default 1000). EM: maximum iterations (default 1000).
        tol : float, "auto" or None
            EM: stop when the mean log-likelihood improves by less than ``tol`` nats per example
            in one iteration (``"auto"``: 1e-6; scikit-learn's ``tol=1e-2`` is on the *total*:
            1e-6 per example at n = 10 000). SVI: the shared training loop's test
            (:meth:`~pyrogen.models.base.GenerativeModel._train`): stop when the mean loss per
            window of 50 steps has not improved by more than ``tol`` (relative; ``"auto"``:
            1e-4) for 2 windows; ``None`` runs exactly ``num_steps`` SVI steps, no test.
        lr, batch_size, loss, seed, callback
            SVI options, see :meth:`GenerativeModel.fit`; ``seed`` also seeds EM's
            initialisation where it is random.
        progress : bool
            Show a tqdm progress bar.
        data_info : dict, optional
            Identity of the data (``Dataset.info``), stored in ``self.data_info``.

        Returns
        -------
        FitHistory
            ``losses`` are negative log-likelihoods per example (EM, exact) or negative ELBOs
            per example (SVI); ``info`` holds the final exact ``log_likelihood`` per example,
            ``n_iter``, the floor and how many features sit on it.

        Warns
        -----
        ConstantFeatureWarning
            (factor analysis) when ``x`` has constant columns.
        NoiseFloorWarning
            when a fitted noise variance of a non-constant feature reached the floor.
        ConvergenceWarning
            when EM or SVI stopped at ``num_steps`` before reaching ``tol``. With the defaults,
            SVI (Adam, ``lr=0.01``, 1000 steps) does not converge on data like the digits
            (1797 x 61, K = 10: 42.4 nats per example where EM reaches 45.97) and says so; EM is
            the method that converges there.
        """
        method = self._default_method if method is None else method
        check_choice(method, "method", self.fit_methods())
        x = self._check_x(x, min_rows=2)
        if isinstance(tol, str) and tol == "auto":
            tol = DEFAULT_TOL if method == "svi" else 1e-6
        elif tol is None and method != "svi":
            raise ValueError(
                f"tol=None (no convergence test) applies to method='svi' only. Got tol=None "
                f"with method={method!r}; pass a float or 'auto'."
            )
        if tol is not None:
            tol = check_float(tol, "tol", 0.0, None, "cc")
        if num_steps is not None:
            num_steps = check_int(num_steps, "num_steps", low=1)
        self._begin_fit(seed, data_info)
        moments = None if method == "svi" else _moments(x)
        if moments is None:
            lo, hi = torch.aminmax(x, dim=0)
            is_constant = lo == hi
            var_scale = float(x.double().var(0, unbiased=False).mean())
        else:
            # constant <=> zero variance, up to the rounding of the mean (no extra data pass)
            var = moments[1].diagonal()
            slack = x.shape[0] * torch.finfo(x.dtype).eps * moments[0].abs()
            is_constant = var <= slack * slack
            var_scale = float(var.mean())
        constant = is_constant.nonzero().flatten().tolist()
        if self.config["noise_floor"] == "auto":
            self._assign(floor=AUTO_FLOOR_FACTOR * var_scale if var_scale > 0 else 1e-6)
        self._warn_constant(constant)
        if method == "svi":
            history = self._fit_svi(
                x,
                num_steps=1000 if num_steps is None else num_steps,
                lr=lr,
                batch_size=batch_size,
                loss=loss,
                tol=tol,
                seed=None,
                progress=progress,
                callback=callback,
            )
        else:
            t0 = time.perf_counter()
            history = self._fit_closed(
                moments,
                method=method,
                max_iter=1000 if num_steps is None else num_steps,
                tol=tol,
                progress=progress,
                callback=callback,
            )
            history.seconds = time.perf_counter() - t0
        psi = self.noise_variance
        on_floor = (psi <= self.noise_floor_ * (1 + 1e-6)).nonzero().flatten().tolist()
        heywood = [j for j in on_floor if j not in set(constant)]
        self._warn_floor(heywood, history)
        if moments is None:
            ll = self.log_likelihood(x).mean()
        else:  # b is the data mean: the exact mean log-likelihood from the covariance
            w, _, psi64 = self._float64_params()
            ll = _mean_log_lik_cov(moments[1], w, psi64)
        history.info.update(
            log_likelihood=ll,
            log_likelihood_kind="exact",
            noise_floor=float(self.noise_floor_),
            n_constant_features=len(constant),
            n_features_on_floor=len(on_floor),
        )
        return history

    def _warn_constant(self, constant: list[int]) -> None:
        """Factor analysis warns about constant columns (PPCA's shared sigma^2 does not care)."""

    def _warn_floor(self, heywood: list[int], history: FitHistory) -> None:
        if heywood:
            shown = heywood[:10]
            warnings.warn(
                f"{len(heywood)} non-constant feature(s) of x (columns {shown}"
                f"{'...' if len(heywood) > 10 else ''}) ended with noise variance at the floor "
                f"noise_floor_={float(self.noise_floor_):.3g} after fit(method="
                f"{history.method!r}): the likelihood is unbounded there (a Heywood case) and "
                "their log-likelihood reflects the floor.",
                NoiseFloorWarning,
                stacklevel=3,
            )

    def _em_history(self, method: str, max_iter: int, tol: float) -> FitHistory:
        return FitHistory(method=method, info={"max_iter": max_iter, "tol": tol})

    def _finish_em(self, history, converged: bool, n_iter: int, max_iter: int) -> None:
        history.converged = converged
        history.info["n_iter"] = n_iter
        if not converged:
            warnings.warn(
                f"{type(self).__name__}.fit(method={history.method!r}) stopped after "
                f"num_steps={max_iter} iterations before the log-likelihood improvement fell "
                f"below tol={history.info['tol']}; raise num_steps or tol.",
                ConvergenceWarning,
                stacklevel=4,
            )


@register_model("fa")
class FactorAnalysis(_LinearGaussian):
    r"""Factor analysis (book §13.1): :math:`x = Wh + b + \epsilon`,
    :math:`\epsilon \sim \mathcal{N}(0, \operatorname{diag}(\psi))`, :math:`h \sim
    \mathcal{N}(0, I)`.

    Parameters
    ----------
    n_features : int
        :math:`d`, the number of observed features.
    n_components : int
        :math:`K \le d`, the number of factors.
    form : {"collapsed", "latent"}
        Which Pyro pair ``model``/``guide`` are (see :mod:`pyrogen.models.factor`).
    guide_type : {"exact", "encoder"}
        Guide of the latent form: the exact posterior or an amortized linear encoder.
    init_noise : float
        Initial noise variance (> 0); EM starts from :math:`\psi = ` ``init_noise`` (1.0 as
        scikit-learn).
    init_scale : float
        Standard deviation of the random initial ``weight``.
    noise_floor : "auto" or float
        Lower bound of every :math:`\psi_j`. ``"auto"``: :math:`10^{-6}` times the mean
        per-feature variance of the data given to :meth:`fit` (:math:`10^{-6}` before any fit);
        a float is an absolute floor in squared data units (scikit-learn uses ``1e-12``).
    seed : int or None
        Seeds the random initial ``weight`` (the global random state is left as it was);
        ``None`` draws it from torch's global random state. See
        :class:`~pyrogen.models.base.GenerativeModel`.

    Notes
    -----
    Fit methods (``fit(x, method=...)``):

    ``"em"`` (default)
        The SVD-based iteration of Barber (2012) used by scikit-learn, on the
        :math:`d \times d` sample covariance :math:`S`: given :math:`\psi`, the exact maximizer
        over :math:`W` is :math:`W = \Psi^{1/2} U_K (\Lambda_K - I)_+^{1/2}` from the top
        :math:`K` eigenpairs of :math:`\Psi^{-1/2} S \Psi^{-1/2}`; then
        :math:`\psi \leftarrow \max(\operatorname{diag}(S - WW^\top), \text{floor})`.
        Cost :math:`O(nd^2)` once, then one :math:`d \times d` eigendecomposition per iteration.
    ``"em_classic"``
        The EM algorithm of Rubin & Thayer (1982) on :math:`S`: with
        :math:`\beta = A^{-1} W^\top \Psi^{-1}`, :math:`W \leftarrow S \beta^\top
        (I - \beta W + \beta S \beta^\top)^{-1}` and :math:`\psi \leftarrow
        \operatorname{diag}(S - W \beta S)`; :math:`O(d^2 K)` per iteration, more iterations;
        starts from the current (random) ``weight`` and :math:`\psi = ` ``init_noise``.
    ``"svi"``
        Pyro SVI (Adam) on :meth:`model`/:meth:`guide` of the chosen ``form``; with the
        collapsed form the loss is the exact negative log-likelihood.

    :math:`b` is the data mean in the closed-form methods. All methods reach the same maximum
    (tested); the log-likelihood is exact (``kind="exact"``).

    Examples
    --------
    >>> import pyro, torch
    >>> from pyrogen.models import FactorAnalysis
    >>> x = torch.randn(200, 6)
    >>> fa = FactorAnalysis(6, 2)
    >>> svi = pyro.infer.SVI(fa.model, fa.guide, pyro.optim.Adam({"lr": 0.05}),
    ...                      pyro.infer.Trace_ELBO())
    >>> for _ in range(10):
    ...     loss = svi.step(x)
    """

    _methods = ("em", "em_classic", "svi")
    _default_method = "em"

    def _warn_constant(self, constant: list[int]) -> None:
        if constant:
            shown = constant[:10]
            warnings.warn(
                f"x has {len(constant)} constant column(s) (indices {shown}"
                f"{'...' if len(constant) > 10 else ''}): their likelihood is unbounded as the "
                f"noise variance goes to 0, so it is held at the floor noise_floor_="
                f"{float(self.noise_floor_):.3g}; each such column adds "
                f"{-0.5 * math.log(2 * math.pi * float(self.noise_floor_)):.2f} nats "
                "to the log-likelihood. Drop them (x[:, x.std(0) > 0]) to compare models.",
                ConstantFeatureWarning,
                stacklevel=3,
            )

    def _fit_closed(self, moments, *, method, max_iter, tol, progress, callback) -> FitHistory:
        mean, cov = moments
        history = self._em_history(method, max_iter, tol)
        floor = float(self.noise_floor_)
        psi = torch.full((self.n_features,), float(self.config["init_noise"]), dtype=torch.float64)
        psi = psi.clamp(min=floor)
        step = _fa_svd_step if method == "em" else _fa_classic_step
        if method == "em":
            d, k = self.n_features, self.n_components
            m = min(d, k + max(10, k // 2))  # subspace size: K plus oversampling
            # (off by default) large d: warm-started subspace iteration instead of a full eigh
            # per iteration, then exact iterations to confirm convergence
            state = {"approx": d >= _SUBSPACE_MIN_FEATURES and 3 * m <= d, "basis": None, "m": m}
        else:
            state = self.weight.detach().double()
        converged = False
        old = -math.inf
        bar = tqdm(range(max_iter), disable=not progress, desc=f"FactorAnalysis {method}")
        it = 0
        pair = None
        for it in bar:
            w, psi_new, ll, state = step(cov, psi, self.n_components, floor, state)
            # svd: ``w`` maximizes over W given ``psi``; classic: (w, psi_new) is the EM update
            pair = (w, psi) if method == "em" else (w, psi_new)
            history.losses.append(-ll)
            if callback is not None:
                callback(it, -ll)
            if ll - old < tol:
                if method == "em" and state["approx"]:
                    # confirm with exact eigendecompositions from this psi on
                    state["approx"] = False
                    old = -math.inf
                    continue
                converged = True
                break
            old = ll
            psi = psi_new
            if progress and it % 10 == 0:
                bar.set_postfix(loglik=f"{ll:.4f}")
        self._assign(weight=pair[0], bias=mean, psi=pair[1])
        self._finish_em(history, converged, it + 1, max_iter)
        return history


#: FactorAnalysis EM would use warm-started subspace iteration from this many features on.
#: Off: on binarized MNIST (2000 images, K=50) it converged to a different stationary point
#: (fewer Heywood features, 404 vs 423 nats) than the exact iteration and scikit-learn's.
_SUBSPACE_MIN_FEATURES = 1 << 62
_SUBSPACE_POWER = 2


def _subspace_eigh(mat: torch.Tensor, basis: torch.Tensor, power: int = _SUBSPACE_POWER):
    """Ritz pairs (descending) of symmetric ``mat`` on the span of ``power`` products with
    ``basis`` (block power iteration + Rayleigh-Ritz); :math:`O(d^2 m)` instead of
    :math:`O(d^3)`."""
    q = basis
    for _ in range(power):
        q, _ = torch.linalg.qr(mat @ q)
    evals, evecs = torch.linalg.eigh(q.T @ mat @ q)
    return evals.flip(0), q @ evecs.flip(1)


def _fa_svd_step(cov, psi, k, floor, state):
    """One SVD-based iteration: ``(W(psi), psi_next, loglik(W(psi), psi), state)``.

    ``state`` (a dict or ``None``): with ``state["approx"]`` the top eigenpairs come from a
    subspace iteration warm-started at ``state["basis"]`` and the returned log-likelihood is the
    exact one of the returned ``(W, psi)``; otherwise from a full eigendecomposition.
    """
    d = cov.shape[0]
    sqrt_psi = psi.sqrt()
    scaled = cov / sqrt_psi.unsqueeze(1) / sqrt_psi.unsqueeze(0)
    if state is not None and state["approx"] and state["basis"] is not None:
        lam, vec = _subspace_eigh(scaled, state["basis"])
        state["basis"] = vec
        top = lam[:k]
        w = sqrt_psi.unsqueeze(1) * vec[:, :k] * (top - 1.0).clamp(min=0.0).sqrt()
        ll = _mean_log_lik_cov(cov, w, psi)
    else:
        lam, vec = _top_eigh(scaled, k)
        if state is not None:
            state["basis"] = vec[:, : state["m"]].contiguous()
        top = lam[:k]
        big = top > 1.0
        # log|C| = sum log psi + sum_{lam>1} log lam ; tr(C^-1 S) = sum_{lam>1} 1 + rest
        ll = -0.5 * (
            d * _LOG_2PI
            + float(psi.log().sum())
            + float(torch.where(big, top.log() + 1.0, top).sum())
            + float(lam[k:].sum())
        )
        w = sqrt_psi.unsqueeze(1) * vec[:, :k] * (top - 1.0).clamp(min=0.0).sqrt()
    psi_next = (cov.diagonal() - (w * w).sum(1)).clamp(min=floor)
    return w, psi_next, ll, state


def _fa_classic_step(cov, psi, k, floor, state):
    """One Rubin & Thayer EM iteration from ``(W, psi)``; ``state`` carries ``W``.

    EM cannot leave ``W = 0`` (a saddle point), so it starts from the current random ``weight``.
    """
    w = state
    ll = _mean_log_lik_cov(cov, w, psi)
    wp, chol = _precision_chol(w, psi)
    beta = torch.cholesky_solve(wp.T, chol)  # (K, d)
    s_beta = cov @ beta.T  # (d, K)
    ehh = torch.eye(k, dtype=cov.dtype) - beta @ w + beta @ s_beta
    w_new = torch.linalg.solve(ehh, s_beta.T).T
    psi_new = (cov.diagonal() - (w_new * s_beta).sum(1)).clamp(min=floor)
    # returns the *current* (W, psi)'s log-likelihood with the next parameters
    return w_new, psi_new, ll, w_new


@register_model("ppca")
class PPCA(_LinearGaussian):
    r"""Probabilistic PCA (book §13.1; Tipping & Bishop 1999): :math:`x = Wh + b + \sigma z`.

    Same as :class:`FactorAnalysis` with one shared noise variance,
    :math:`\Psi = \sigma^2 I`. As :math:`\sigma \to 0` the columns of :math:`W` span the
    principal subspace (PCA).

    Parameters
    ----------
    n_features, n_components, form, guide_type, init_noise, init_scale, noise_floor, seed
        As for :class:`FactorAnalysis`; ``init_noise`` is the initial :math:`\sigma^2`.

    Notes
    -----
    Fit methods:

    ``"closed_form"`` (default)
        Tipping & Bishop's maximum-likelihood solution from the eigendecomposition
        :math:`S = U \Lambda U^\top` of the sample covariance:
        :math:`\sigma^2 = \frac{1}{d-K}\sum_{j>K} \lambda_j`,
        :math:`W = U_K (\Lambda_K - \sigma^2 I)^{1/2}` (up to a rotation), :math:`b = \bar x`.
        :math:`O(nd^2 + d^3)`. With :math:`K = d`, :math:`\sigma^2` is the floor.
    ``"em"``
        Tipping & Bishop's EM on :math:`S` from the current ``weight``: with
        :math:`M = W^\top W + \sigma^2 I`, :math:`W \leftarrow SW(\sigma^2 I + M^{-1} W^\top S
        W)^{-1}`, :math:`\sigma^2 \leftarrow \frac1d \operatorname{tr}(S - S W M^{-1}
        W_{new}^\top)`. :math:`O(d^2K)` per iteration.
    ``"svi"``
        Pyro SVI on :meth:`model`/:meth:`guide`.

    Constant features do not make PPCA's likelihood unbounded (:math:`\sigma^2` is shared); a
    :class:`NoiseFloorWarning` is raised only when :math:`\sigma^2` reaches the floor (data of
    rank :math:`\le K`).
    """

    _isotropic = True
    _methods = ("closed_form", "em", "svi")
    _default_method = "closed_form"

    @property
    def sigma2(self) -> float:
        r"""The shared noise variance :math:`\sigma^2`."""
        return float(self._psi().detach()[0])

    def _fit_closed(self, moments, *, method, max_iter, tol, progress, callback) -> FitHistory:
        mean, cov = moments
        history = self._em_history(method, max_iter, tol)
        floor = float(self.noise_floor_)
        d, k = self.n_features, self.n_components
        if method == "closed_form":
            w, sigma2 = _ppca_closed_form(cov, k, floor)
            ll = _mean_log_lik_cov(cov, w, sigma2.expand(d))
            history.losses.append(-ll)
            history.converged = True
            history.info["n_iter"] = 1
            if callback is not None:
                callback(0, -ll)
            self._assign(weight=w, bias=mean, psi=sigma2)
            return history
        w = self.weight.detach().double()
        sigma2 = torch.tensor(float(self.config["init_noise"]), dtype=torch.float64)
        eye = torch.eye(k, dtype=torch.float64)
        converged = False
        old = -math.inf
        it = 0
        bar = tqdm(range(max_iter), disable=not progress, desc="PPCA em")
        for it in bar:
            ll = _mean_log_lik_cov(cov, w, sigma2.expand(d))
            history.losses.append(-ll)
            if callback is not None:
                callback(it, -ll)
            if ll - old < tol:
                converged = True
                break
            old = ll
            m_inv = torch.linalg.inv(w.T @ w + sigma2 * eye)
            sw = cov @ w
            w_new = torch.linalg.solve((sigma2 * eye + m_inv @ (w.T @ sw)).T, sw.T).T
            sigma2 = ((cov.trace() - (sw @ m_inv * w_new).sum()) / d).clamp(min=floor)
            w = w_new
            if progress and it % 10 == 0:
                bar.set_postfix(loglik=f"{ll:.4f}")
        self._assign(weight=w, bias=mean, psi=sigma2)
        self._finish_em(history, converged, it + 1, max_iter)
        return history


def _ppca_closed_form(cov, k, floor):
    """Tipping & Bishop: ``(W, sigma2)`` from the eigendecomposition of ``cov`` (float64)."""
    lam, vec = _top_eigh(cov, k)
    d = cov.shape[0]
    rest = lam[k:]
    sigma2 = rest.mean() if d > k else torch.zeros((), dtype=cov.dtype)
    sigma2 = sigma2.clamp(min=floor)
    w = vec[:, :k] * (lam[:k] - sigma2).clamp(min=0.0).sqrt()
    return w, sigma2
