r"""Sparse coding (book §13.4): Laplace prior on the code, Gaussian decoder, MAP encoder.

The generative model [1]_ is

.. math::

    p(h_k) = \operatorname{Laplace}\!\left(h_k; 0, \tfrac{2}{\lambda}\right)
           = \tfrac{\lambda}{4} e^{-\frac{\lambda}{2}|h_k|}, \qquad
    p(x \mid h) = \mathcal{N}\!\left(x; W h + b, \tfrac{1}{\beta} I\right),

with a dictionary :math:`W` of shape ``(n_features, n_components)`` whose columns (the *atoms*)
have unit norm (without that constraint the MAP objective is unbounded below: :math:`W \to cW`,
:math:`h \to h/c`). The encoder is an optimization: the MAP code

.. math::

    h^\star(x) = \arg\max_h p(h \mid x)
               = \arg\min_h \; \lambda \lVert h \rVert_1 + \beta \lVert x - b - W h \rVert_2^2

(since :math:`-\log p(x, h) = \tfrac12[\lambda\lVert h\rVert_1 + \beta\lVert x - b - Wh\rVert^2]
+ \text{const}`). Dividing by :math:`2\beta` gives the Lasso
:math:`\tfrac12\lVert x - b - Wh\rVert^2 + \alpha\lVert h\rVert_1` with
:math:`\alpha = \lambda / (2\beta)`: scikit-learn's ``SparseCoder(transform_alpha=alpha)`` and
``DictionaryLearning(alpha=alpha)`` (with ``components_ = W.T``) solve the same problem. It is
solved batched on tensors by :func:`pyrogen.infer.lasso.solve_lasso` (feature-sign active-set
search [3]_ with a duality-gap certificate); see also Olshausen & Field [2]_.

Training:

* ``fit(x, method="alternating")`` -- the book's alternating minimization of
  :math:`\sum_i \lambda\lVert h_i\rVert_1 + \beta\lVert x_i - b - W h_i\rVert^2`: exact codes for
  the current dictionary, then block coordinate descent over the atoms on the unit sphere
  (each atom update is an exact minimizer, as in [4]_), then (optionally) the bias.
* ``fit(x, method="svi")`` -- Pyro SVI on :meth:`SparseCoding.model` / :meth:`SparseCoding.guide`.
  With ``guide="map"`` the guide is a point mass at the MAP code computed by the solver (the
  model's own delta guide: the encoder *is* the optimization), and the loss is
  :math:`-\log p(x, h^\star)`, not a bound. With ``guide="normal"`` the guide is
  :math:`q(h \mid x) = \mathcal{N}(h^\star(x), \operatorname{diag}\sigma^2)` with learned
  per-atom scales, and the loss is a true negative ELBO.

The marginal :math:`p(x) = \int p(x \mid h) p(h)\, dh` has no closed form; :meth:`log_likelihood`
returns an importance-sampled estimate (kind ``"is_estimate"``, with standard errors) whose
proposal is a multivariate Student-t around the MAP code with the Laplace-approximation scale.

References
----------
.. [1] I. Goodfellow, Y. Bengio, A. Courville. Deep Learning, §13.4. MIT Press, 2016.
.. [2] B. A. Olshausen, D. J. Field. Emergence of simple-cell receptive field properties by
   learning a sparse code for natural images. Nature 381, 1996.
.. [3] H. Lee, A. Battle, R. Raina, A. Y. Ng. Efficient sparse coding algorithms. NIPS 2007.
.. [4] J. Mairal, F. Bach, J. Ponce, G. Sapiro. Online dictionary learning for sparse coding.
   ICML 2009 (block coordinate descent on the atoms).
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import pyro_method

from .._validation import check_choice, check_float, check_int
from ..evaluation import LogLikelihood, log_mean_exp
from ..infer.lasso import LASSO_METHODS, LassoResult, solve_lasso
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = ["SparseCoding"]

GUIDES = ("map", "normal")
FIT_METHODS = ("alternating", "svi")
INITS = ("svd", "data", "random")


def _unit_columns(w: torch.Tensor) -> torch.Tensor:
    return w / w.norm(dim=0, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)


@register_model("sparse-coding")
class SparseCoding(GenerativeModel):
    r"""Sparse coding: Laplace prior, Gaussian decoder, MAP encoder (book §13.4).

    Parameters
    ----------
    n_features : int
        Dimension :math:`D` of :math:`x`.
    n_components : int
        Number of atoms :math:`K` (may exceed ``n_features``: overcomplete dictionaries).
    lam : float
        :math:`\lambda > 0`, the rate of the prior :math:`p(h_k) \propto e^{-\lambda |h_k| / 2}`
        (book: :math:`\operatorname{Laplace}(0, 2/\lambda)`).
    beta : float
        :math:`\beta > 0`, the noise precision of :math:`p(x \mid h)`.
    guide : {"map", "normal"}
        The Pyro guide over the codes: a point mass at the MAP code, or a diagonal normal centred
        at the MAP code with learned per-atom scales.
    fit_bias : bool
        Learn the offset :math:`b` (otherwise :math:`b = 0`, as in scikit-learn).
    tol : float
        Default duality-gap tolerance of the encoder (relative to :math:`\lVert x - b\rVert^2`,
        scikit-learn's rule; its ``SparseCoder`` uses ``1e-8``).
    num_is_samples : int
        Default number of importance samples of :meth:`log_likelihood`.
    is_df : float
        Degrees of freedom of the Student-t proposal of :meth:`log_likelihood`.
    seed : int or None
        Seeds the random initial dictionary (used by SVI; the alternating method initialises
        from ``init``); the global random state is left as it was. ``None`` draws it from
        torch's global random state. See :class:`~pyrogen.models.base.GenerativeModel`.

    Notes
    -----
    ``weight`` is the dictionary :math:`W` (unit-norm columns), ``components_`` its transpose
    (scikit-learn's layout) and ``alpha`` :math:`= \lambda / (2\beta)` the equivalent
    scikit-learn ``alpha``.

    Examples
    --------
    >>> import torch
    >>> from pyrogen.models import SparseCoding
    >>> x = torch.rand(100, 16, dtype=torch.float64)
    >>> sc = SparseCoding(16, 8, lam=0.5).double()
    >>> hist = sc.fit(x, method="alternating", num_iter=5, progress=False, seed=0)
    >>> codes = sc.transform(x)          # MAP codes, shape (100, 8)
    >>> ll = sc.log_likelihood(x[:5])   # importance-sampled estimate with stderr
    """

    log_likelihood_kind = "is_estimate"

    def __init__(
        self,
        n_features: int,
        n_components: int,
        *,
        lam: float = 1.0,
        beta: float = 1.0,
        guide: str = "map",
        fit_bias: bool = False,
        tol: float = 1e-8,
        num_is_samples: int = 500,
        is_df: float = 3.0,
        seed: int | None = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        n_components = check_int(n_components, "n_components", low=1)
        lam = check_float(lam, "lam", 0.0, None, "oo")
        beta = check_float(beta, "beta", 0.0, None, "oo")
        check_choice(guide, "guide", GUIDES)
        if not isinstance(fit_bias, bool):
            raise TypeError(f"fit_bias must be a bool. Got {fit_bias!r} instead.")
        tol = check_float(tol, "tol", 0.0, None, "cc")
        num_is_samples = check_int(num_is_samples, "num_is_samples", low=2)
        is_df = check_float(is_df, "is_df", 0.0, None, "oo")
        super().__init__(
            n_features=n_features,
            n_components=n_components,
            lam=lam,
            beta=beta,
            guide=guide,
            fit_bias=fit_bias,
            tol=tol,
            num_is_samples=num_is_samples,
            is_df=is_df,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        dtype = torch.get_default_dtype()
        d, k = n_features, n_components
        self.weight_raw = torch.nn.Parameter(_unit_columns(torch.randn(d, k, dtype=dtype)))
        if fit_bias:
            self.bias = torch.nn.Parameter(torch.zeros(d, dtype=dtype))
        else:
            self.register_buffer("bias", torch.zeros(d, dtype=dtype))
        # per-atom log-scale of the "normal" guide, at the diagonal Laplace approximation
        init = -0.5 * math.log(beta + lam**2 / 8.0)
        self.guide_log_scale = torch.nn.Parameter(torch.full((k,), init, dtype=dtype))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dictionary(
        cls,
        dictionary,
        *,
        lam: float = 1.0,
        beta: float = 1.0,
        bias=None,
        normalize: bool = False,
        atol: float = 1e-6,
        **kwargs,
    ) -> SparseCoding:
        r"""A model with a given dictionary :math:`W` (``(n_features, n_components)``, atoms as
        columns -- the transpose of scikit-learn's ``components_``).

        Raises ``ValueError`` unless every column has unit norm (within ``atol``), or pass
        ``normalize=True`` to rescale them.
        """
        if not isinstance(dictionary, torch.Tensor):
            try:
                import numpy as np

                if not isinstance(dictionary, np.ndarray):
                    raise TypeError
                dictionary = torch.as_tensor(dictionary)
            except TypeError:
                raise TypeError(
                    "dictionary must be a torch.Tensor or numpy.ndarray of shape (n_features, "
                    f"n_components). Got {type(dictionary).__name__} instead."
                ) from None
        if dictionary.dim() != 2 or not dictionary.dtype.is_floating_point:
            raise ValueError(
                "dictionary must be a floating matrix of shape (n_features, n_components). Got "
                f"shape {tuple(dictionary.shape)} and dtype {dictionary.dtype} instead."
            )
        if not torch.isfinite(dictionary).all():
            raise ValueError("dictionary must be finite. Got NaN or infinite values instead.")
        norms = dictionary.norm(dim=0)
        if normalize:
            if bool((norms == 0).any()):
                raise ValueError("dictionary has an all-zero column; it cannot be normalized.")
            dictionary = dictionary / norms
        elif bool(((norms - 1).abs() > atol).any()):
            worst = float(norms[(norms - 1).abs().argmax()])
            raise ValueError(
                "dictionary must have unit-norm columns (atoms). Got a column of norm "
                f"{worst:.6g} instead; pass normalize=True to rescale them (scikit-learn's "
                "components_ are rows: pass components_.T)."
            )
        d, k = dictionary.shape
        with torch.random.fork_rng():
            model = cls(d, k, lam=lam, beta=beta, **kwargs)
        model = model.to(dictionary.dtype)
        with torch.no_grad():
            model.weight_raw.copy_(dictionary)
            if bias is not None:
                b = torch.as_tensor(bias, dtype=dictionary.dtype)
                if b.shape != (d,):
                    raise ValueError(f"bias must have shape ({d},). Got {tuple(b.shape)} instead.")
                model.bias.copy_(b)
        return model

    # ------------------------------------------------------------------ parameters
    @property
    def n_components(self) -> int:
        return int(self.config["n_components"])

    @property
    def lam(self) -> float:
        return float(self.config["lam"])

    @property
    def beta(self) -> float:
        return float(self.config["beta"])

    @property
    def alpha(self) -> float:
        r""":math:`\alpha = \lambda / (2\beta)`: the scikit-learn ``alpha`` of the same problem."""
        return self.lam / (2.0 * self.beta)

    def _weight(self) -> torch.Tensor:
        """The dictionary with unit-norm columns (differentiable in ``weight_raw``)."""
        return _unit_columns(self.weight_raw)

    @property
    def weight(self) -> torch.Tensor:
        """The dictionary :math:`W`, shape ``(n_features, n_components)``, unit-norm columns."""
        return self._weight().detach()

    @property
    def components_(self) -> torch.Tensor:
        """:math:`W^\\top`, shape ``(n_components, n_features)`` (scikit-learn's layout)."""
        return self.weight.T

    # ------------------------------------------------------------------ encoder
    def encode(
        self,
        x,
        *,
        tol: float | None = None,
        max_iter: int = 1000,
        method: str = "auto",
    ) -> LassoResult:
        r"""MAP codes with their certificate: :func:`~pyrogen.infer.lasso.solve_lasso` on
        :math:`\tfrac12\lVert x - b - Wh\rVert^2 + \alpha\lVert h\rVert_1`.

        Parameters
        ----------
        x : Tensor or ndarray, shape ``(n, n_features)``
        tol : float, optional
            Duality-gap tolerance relative to :math:`\lVert x_i - b\rVert^2`; defaults to the
            model's ``tol``.
        max_iter : int
            Iteration cap of the solver.
        method : {"auto", "feature_sign", "fista", "admm"}
            Solver (see :mod:`pyrogen.infer.lasso`).

        Returns
        -------
        LassoResult
            ``codes``, per-row Lasso ``objective`` (scikit-learn scaling), duality ``gap``,
            ``converged``.
        """
        x = self._check_x(x)
        tol = self.config["tol"] if tol is None else check_float(tol, "tol", 0.0, None, "cc")
        check_choice(method, "method", LASSO_METHODS)
        with torch.no_grad():
            return solve_lasso(
                x, self.weight, self.alpha, bias=self.bias.detach(), method=method, tol=tol,
                max_iter=max_iter,
            )

    def transform(self, x, *, tol: float | None = None, max_iter: int = 1000,
                  method: str = "auto") -> torch.Tensor:
        """The MAP code :math:`h^\\star(x)` (posterior mode), shape ``(n, n_components)``.

        See :meth:`encode` for the arguments; this returns only ``encode(x).codes``.
        """
        return self.encode(x, tol=tol, max_iter=max_iter, method=method).codes

    def objective(self, x, codes: torch.Tensor | None = None) -> torch.Tensor:
        r"""Per-example book objective :math:`\lambda\lVert h\rVert_1 + \beta\lVert x - b - Wh
        \rVert^2` (at the MAP codes unless ``codes`` is given), shape ``(n,)``.

        Equals :math:`2\beta` times the Lasso objective in scikit-learn's scaling, and
        :math:`-2\log p(x, h)` up to a constant.
        """
        x = self._check_x(x)
        if codes is None:
            codes = self.transform(x)
        with torch.no_grad():
            r = x - self.bias - codes @ self.weight.T
            return self.lam * codes.abs().sum(-1) + self.beta * (r * r).sum(-1)

    # ------------------------------------------------------------------ Pyro model / guide
    def _prior(self, dtype, device) -> dist.Distribution:
        k = self.n_components
        scale = torch.full((k,), 2.0 / self.lam, dtype=dtype, device=device)
        return dist.Laplace(torch.zeros(k, dtype=dtype, device=device), scale).to_event(1)

    @pyro_method
    def model(self, x: torch.Tensor, num_data: int | None = None):
        r"""Pyro model: :math:`h \sim \operatorname{Laplace}(0, 2/\lambda)^K`,
        :math:`x \sim \mathcal{N}(Wh + b, \beta^{-1} I)`, one latent ``"h"`` per row of ``x``.

        Parameters
        ----------
        x : Tensor, shape ``(n, n_features)``
            Observed data.
        num_data : int, optional
            Size of the full data set when ``x`` is a minibatch.
        """
        w = self._weight()
        sigma = torch.tensor(self.beta**-0.5, dtype=w.dtype, device=w.device)
        with self._data_plate(x, num_data):
            h = pyro.sample("h", self._prior(w.dtype, w.device))
            pyro.sample("x", dist.Normal(h @ w.T + self.bias, sigma).to_event(1), obs=x)

    @pyro_method
    def guide(self, x: torch.Tensor, num_data: int | None = None):
        r"""Pyro guide over the codes, centred at the MAP code :math:`h^\star(x)` (computed by the
        solver, no gradient through it).

        ``guide="map"``: :math:`\delta(h - h^\star(x))` (SVI then minimizes
        :math:`-\log p(x, h^\star)`: MAP dictionary learning). ``guide="normal"``:
        :math:`\mathcal{N}(h^\star(x), \operatorname{diag}\sigma^2)` with learned per-atom
        :math:`\sigma` (SVI maximizes a true ELBO).
        """
        with torch.no_grad():
            codes = solve_lasso(
                x.detach(), self._weight().detach(), self.alpha, bias=self.bias.detach(),
                tol=self.config["tol"],
            ).codes
        scale = self.guide_log_scale.exp()
        with self._data_plate(x, num_data):
            if self.config["guide"] == "map":
                pyro.sample("h", dist.Delta(codes).to_event(1))
            else:
                pyro.sample("h", dist.Normal(codes, scale.expand_as(codes)).to_event(1))

    # ------------------------------------------------------------------ fitting
    def fit_methods(self) -> tuple[str, ...]:
        return FIT_METHODS

    def fit(
        self,
        x,
        *,
        method: str = "alternating",
        num_iter: int = 50,
        fit_tol: float | str | None = "auto",
        init: str = "svd",
        guide: str | None = None,
        num_steps: int = 1000,
        lr: float = 0.01,
        batch_size: int | None = None,
        loss: pyro.infer.ELBO | None = None,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Learn the dictionary (and the bias when ``fit_bias``).

        Parameters
        ----------
        x : Tensor or ndarray, shape ``(n, n_features)``
        method : {"alternating", "svi"}
            ``"alternating"``: codes by the exact solver, then every atom by block coordinate
            descent on the unit sphere (:math:`w_k \propto R_k h_{:,k}`, :math:`R_k` the residual
            without atom :math:`k`; an unused atom is re-drawn from a random data row), then
            :math:`b` = mean residual. Each step is an exact block minimizer, so the objective
            never increases. ``"svi"``: Pyro SVI on :meth:`model` / :meth:`guide`.
        num_iter : int
            Alternating: maximum outer iterations.
        fit_tol : float, "auto" or None
            Alternating: stop when the objective decreases by less than ``fit_tol`` relative
            (``"auto"``: 1e-6). SVI: the shared training loop's test
            (:meth:`~pyrogen.models.base.GenerativeModel._train`: windowed mean loss, relative,
            ``"auto"``: 1e-4); ``None`` runs exactly ``num_steps`` SVI steps without it.
            A ``ConvergenceWarning`` when the iterations / steps run out first.
        init : {"svd", "data", "random"}
            Alternating: initial dictionary: the top right singular vectors of the (centred when
            ``fit_bias``) data (random unit atoms beyond its rank), unit-normed random data rows,
            or random unit atoms.
        guide : {"map", "normal"}, optional
            SVI: switch the model's guide (stored in ``config``).
        num_steps, lr, batch_size, loss, callback
            SVI options (see :meth:`GenerativeModel.fit`).
        seed : int, optional
            Seeds the initialization / SVI.
        progress : bool
            Show a tqdm progress bar.
        data_info : dict, optional
            Identity of the data, stored in ``data_info``.

        Returns
        -------
        FitHistory
            Alternating: ``losses`` are the mean book objective
            :math:`\lambda\lVert h\rVert_1 + \beta\lVert x - b - Wh\rVert^2` per example (not a
            likelihood); ``metrics`` hold ``reconstruction`` (mean squared error per example),
            ``l1``, ``nonzero_fraction`` and ``lasso_objective`` (scikit-learn's scaling, total).
            SVI: ``losses`` are :math:`-\log p(x, h^\star)` per example (``guide="map"``) or the
            negative ELBO per example (``guide="normal"``); ``info["loss"]`` says which.
        """
        check_choice(method, "method", FIT_METHODS)
        x = self._check_x(x)
        if guide is not None:
            self.config["guide"] = check_choice(guide, "guide", GUIDES)
        if isinstance(fit_tol, str) and fit_tol == "auto":
            fit_tol = DEFAULT_TOL if method == "svi" else 1e-6
        elif fit_tol is None and method != "svi":
            raise ValueError(
                "fit_tol=None (no convergence test) applies to method='svi' only. Got "
                f"fit_tol=None with method={method!r}; pass a float or 'auto'."
            )
        if method == "svi":
            hist = self._fit_svi(
                x, num_steps=num_steps, lr=lr, batch_size=batch_size, loss=loss, tol=fit_tol,
                seed=seed, progress=progress, callback=callback, data_info=data_info,
                tol_name="fit_tol",
            )
            hist.info["loss"] = (
                "negative log joint at the MAP codes per example (not a bound)"
                if self.config["guide"] == "map"
                else "negative ELBO per example (upper bound on -log p(x))"
            )
            hist.info["guide"] = self.config["guide"]
            return hist
        num_iter = check_int(num_iter, "num_iter", low=1)
        fit_tol = check_float(fit_tol, "fit_tol", 0.0, None, "cc")
        check_choice(init, "init", INITS)
        if seed is not None:
            pyro.set_rng_seed(check_int(seed, "seed", low=0))
        if data_info is not None:
            self.data_info = dict(data_info)
        return self._fit_alternating(x, num_iter, fit_tol, init, progress, callback)

    @torch.no_grad()
    def _init_dictionary(self, x: torch.Tensor, init: str) -> torch.Tensor:
        n, d = x.shape
        k = self.n_components
        w = torch.randn(d, k, dtype=x.dtype, device=x.device)
        scale = torch.ones(k, dtype=x.dtype, device=x.device)
        if init == "data":
            idx = torch.randperm(n, device=x.device)[:k]
            rows = x[idx] - x.mean(0) if self.config["fit_bias"] else x[idx]
            w[:, : idx.numel()] = rows.T
        elif init == "svd":
            xc = x - x.mean(0) if self.config["fit_bias"] else x
            _, s, vt = torch.linalg.svd(xc, full_matrices=False)
            r = int((s > s[0] * 1e-10).sum()) if s.numel() else 0
            r = min(r, k)
            w[:, :r] = vt[:r].T
            scale[:r] = s[:r]
        w = torch.where(w.norm(dim=0, keepdim=True) > 0, w, torch.randn_like(w))
        return _unit_columns(w), scale

    @torch.no_grad()
    def _fit_alternating(self, x, num_iter, fit_tol, init, progress, callback) -> FitHistory:
        n = x.shape[0]
        tol = self.config["tol"]
        b = x.mean(0) if self.config["fit_bias"] else torch.zeros_like(self.bias)
        w, scale0 = self._init_dictionary(x, init)
        hist = FitHistory(method="alternating", info={"init": init, "alpha": self.alpha})
        state = {"w": w, "b": b, "resampled": 0}

        def sweep(it, _):
            w, b = state["w"], state["b"]
            # first codes of the "svd" init: against the unnormalized S V^T basis, as
            # scikit-learn's DictionaryLearning does (large atoms: nearly least-squares codes)
            w_code = w * scale0 if it == 0 else w
            res = solve_lasso(x, w_code, self.alpha, bias=b, tol=tol)
            h = res.codes
            # dictionary: one sweep of exact block coordinate descent over the atoms
            r = x - b - h @ w.T
            for j in range(self.n_components):
                hj = h[:, j]
                nz = hj.abs().sum()
                if nz > 0:
                    r += torch.outer(hj, w[:, j])
                    u = r.T @ hj
                    un = u.norm()
                if nz == 0 or un <= torch.finfo(x.dtype).tiny:
                    # an unused atom: re-draw it from a random data row (its code is zero)
                    if nz > 0:
                        h[:, j] = 0.0
                    row = x[torch.randint(0, n, (1,), device=x.device)][0] - b
                    row = row + 1e-3 * torch.randn_like(row) * (row.norm() + 1.0)
                    w[:, j] = row / row.norm()
                    state["resampled"] += 1
                    continue
                w[:, j] = u / un
                r -= torch.outer(hj, w[:, j])
            if self.config["fit_bias"]:
                shift = r.mean(0)
                b = b + shift
                r = r - shift
            state["b"] = b
            rec = (r * r).sum(-1)
            l1 = h.abs().sum(-1)
            hist.log(
                reconstruction=rec.mean(),
                l1=l1.mean(),
                nonzero_fraction=(h != 0).double().mean(),
                lasso_objective=(0.5 * rec + self.alpha * l1).sum(),
                codes_converged=res.converged.double().mean(),
            )
            return float((self.lam * l1 + self.beta * rec).mean())

        # each sweep is an exact block minimizer (the objective never increases): converged
        # when one sweep lowers it by at most fit_tol relative (window 1, patience 1, no floor)
        self._train(sweep, hist, num_steps=num_iter, tol=fit_tol, window=1, patience=1,
                    floor=0.0, progress=progress, callback=callback,
                    desc="SparseCoding alternating", limit_name="num_iter", tol_name=None)
        self.weight_raw.copy_(state["w"].to(self.weight_raw))
        self.bias.copy_(state["b"].to(self.bias))
        hist.info.update(num_iter=len(hist.losses), atoms_resampled=state["resampled"])
        return hist

    # ------------------------------------------------------------------ evaluation
    def _proposal_scale_tril(self) -> torch.Tensor:
        r"""Cholesky factor of :math:`(\beta W^\top W + \tfrac{\lambda^2}{8} I)^{-1}`."""
        w = self.weight
        k = self.n_components
        prec = self.beta * (w.T @ w) + (self.lam**2 / 8.0) * torch.eye(k, dtype=w.dtype)
        cov = torch.cholesky_inverse(torch.linalg.cholesky(prec))
        return torch.linalg.cholesky(0.5 * (cov + cov.T))

    def log_likelihood(self, x, *, num_samples: int | None = None, seed: int | None = None,
                       chunk_size: int | None = None) -> LogLikelihood:
        r"""Importance-sampled estimate of :math:`\log p(x)` per example (kind ``"is_estimate"``).

        .. math::

            \hat p(x) = \frac1S \sum_{s=1}^S \frac{p(x \mid h_s)\, p(h_s)}{q(h_s \mid x)},
            \qquad h_s \sim q(\cdot \mid x) =
            t_\nu\!\left(h^\star(x), (\beta W^\top W + \tfrac{\lambda^2}{8} I)^{-1}\right),

        a multivariate Student-t (heavier tails than the posterior, so the weights have finite
        variance) around the MAP code with the Hessian of the Gaussian term plus the precision
        of a normal matched to the prior's variance :math:`8/\lambda^2`. :math:`\hat p` is unbiased
        for :math:`p(x)`, so :math:`\log\hat p` is a stochastic **lower** bound on
        :math:`\log p(x)` in expectation. The standard error is the delta-method
        :math:`\operatorname{sd}(w) / (\sqrt S\, \bar w)`. The effective sample size per example
        is in ``info``. Cost: :math:`O(n S K^2)`; reliable for moderate ``n_components`` only
        (check ``info["ess_min"]``).

        Parameters
        ----------
        x : Tensor or ndarray, shape ``(n, n_features)``
        num_samples : int, optional
            :math:`S`; defaults to the model's ``num_is_samples``.
        seed : int, optional
            Seed of the proposal draws (a private ``torch.Generator``).
        chunk_size : int, optional
            Rows per chunk (memory :math:`O(\text{chunk} \cdot S \cdot K)`).
        """
        x = self._check_x(x)
        s = self.config["num_is_samples"] if num_samples is None else num_samples
        s = check_int(s, "num_samples", low=2)
        k, d = self.n_components, self.n_features
        if chunk_size is None:
            chunk_size = max(1, 2_000_000 // (s * k))
        chunk_size = check_int(chunk_size, "chunk_size", low=1)
        if seed is None:  # draw the private generator's seed from torch's global RNG
            seed = int(torch.randint(0, 2**62, (1,)))
        gen = torch.Generator(device=x.device).manual_seed(check_int(seed, "seed", low=0))
        with torch.no_grad():
            w, b = self.weight, self.bias.detach()
            codes = self.transform(x)
            tril = self._proposal_scale_tril()
            df = self.config["is_df"]
            G = w.T @ w
            q = (x - b) @ w
            xx = ((x - b) ** 2).sum(-1)
            lam, beta = self.lam, self.beta
            # log N(x; Wh+b, I/beta) = -beta/2 ||x-b-Wh||^2 + D/2 log(beta / 2 pi)
            const_lik = 0.5 * d * math.log(beta / (2 * math.pi))
            const_prior = k * math.log(lam / 4.0)
            # multivariate t log density (standardized part computed from z)
            log_det = tril.diagonal().log().sum()
            const_q = (
                math.lgamma((df + k) / 2) - math.lgamma(df / 2) - 0.5 * k * math.log(df * math.pi)
                - log_det
            )
            values, stderr, ess = [], [], []
            for start in range(0, x.shape[0], chunk_size):
                sl = slice(start, start + chunk_size)
                m = codes[sl].shape[0]
                z = torch.randn(m, s, k, generator=gen, dtype=x.dtype, device=x.device)
                chi2 = 2.0 * _gamma(df / 2.0, (m, s, 1), gen, x)
                u = z * torch.sqrt(df / chi2)
                h = codes[sl].unsqueeze(1) + u @ tril.T
                r2 = xx[sl].unsqueeze(1) - 2.0 * (h * q[sl].unsqueeze(1)).sum(-1) + (
                    (h @ G) * h
                ).sum(-1)
                log_lik = const_lik - 0.5 * beta * r2.clamp(min=0.0)
                log_prior = const_prior - 0.5 * lam * h.abs().sum(-1)
                zz = (z * z).sum(-1) * (df / chi2.squeeze(-1))  # Mahalanobis of u
                log_q = const_q - 0.5 * (df + k) * torch.log1p(zz / df)
                logw = log_lik + log_prior - log_q
                # the one log-mean-exp: value, delta-method stderr and ESS (float64 inside)
                lme = log_mean_exp(logw, dim=-1)
                values.append(lme.value.to(logw.dtype))
                ess.append(lme.ess.to(logw.dtype))
                stderr.append(lme.stderr.to(logw.dtype))
            ess_t = torch.cat(ess)
        return LogLikelihood(
            torch.cat(values),
            "is_estimate",
            stderr=torch.cat(stderr),
            info={
                "num_samples": s,
                "proposal": f"multivariate Student-t (df={df}) at the MAP code",
                "ess_min": float(ess_t.min()),
                "ess_mean": float(ess_t.mean()),
            },
        )

    def sample(self, n: int) -> torch.Tensor:
        r"""Draw :math:`x = Wh + b + \epsilon`, :math:`h \sim \operatorname{Laplace}(0,
        2/\lambda)^K`, :math:`\epsilon \sim \mathcal{N}(0, \beta^{-1} I)`; shape
        ``(n, n_features)``."""
        n = self._check_n(n)
        with torch.no_grad():
            w = self.weight
            h = self._prior(w.dtype, w.device).sample((n,))
            noise = torch.randn(n, self.n_features, dtype=w.dtype, device=w.device)
            return h @ w.T + self.bias + noise * self.beta**-0.5


def _gamma(concentration: float, shape, gen: torch.Generator, like: torch.Tensor):
    """Gamma(concentration, 1) draws from a private generator (Marsaglia-Tsang, vectorized)."""
    a = concentration
    boost = a < 1.0
    a_eff = a + 1.0 if boost else a
    d = a_eff - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(shape, dtype=like.dtype, device=like.device)
    todo = torch.ones(shape, dtype=torch.bool, device=like.device)
    while bool(todo.any()):
        z = torch.randn(shape, generator=gen, dtype=like.dtype, device=like.device)
        u = torch.rand(shape, generator=gen, dtype=like.dtype, device=like.device)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp(min=1e-300)) < 0.5 * z * z + d - d * v
                        + d * torch.log(v.clamp(min=1e-300)))
        new = ok & todo
        out = torch.where(new, d * v, out)
        todo = todo & ~ok
    if boost:
        u = torch.rand(shape, generator=gen, dtype=like.dtype, device=like.device)
        out = out * u ** (1.0 / a)
    return out
