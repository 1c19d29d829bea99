r"""NumPyro twins of pyrogen's Bayesian linear factor models.

Each function is a NumPyro model with the **same parameterization, priors, site names and
shapes** as its Pyro counterpart, so posterior draws of one can be compared with (and stored in
place of) draws of the other:

* :func:`bayesian_fa` -- :class:`pyrogen.models.BayesianFactorAnalysis`; sites ``alpha``,
  ``W``, ``noise``, ``loc``, (``h``), ``x``;
* :func:`bayesian_ppca` -- :class:`pyrogen.models.BayesianPPCA`; the same, scalar ``noise``;
* :func:`bayesian_noisy_ica` -- :meth:`pyrogen.models.BayesianNoisyICA.model`; sites ``W``,
  (``bias``, ``noise_scale``), ``h``, ``x``;
* :func:`bayesian_sparse_coding` --
  :func:`pyrogen.models.bayesian_sparse_coding.bayesian_sparse_coding_model`; sites ``W``,
  ``noise``, (``loc``), ``h``, ``x``.

All take the data ``x`` (``(n, D)`` array, or ``None`` with ``num_data`` and ``n_features`` to
draw from the prior predictive) and keyword-only configuration; configuration is static (it is
closed over when NUTS compiles the potential), so pass it as keyword arguments of
:func:`pyrogen.numpyro.run_nuts` or bind it with :func:`functools.partial`.

Non-centred ARD. With ``w_prior="ard"`` the pair :math:`(\log\alpha_k, W_{:,k})` forms a funnel
for switched-off columns. ``noncentered=True`` (the default under ARD) samples
``W_decentered`` :math:`= W \operatorname{diag}(\alpha)^{1/2} \sim \mathcal N(0, I)` and records
``W`` as a deterministic site (numpyro's ``LocScaleReparam``): the same posterior of ``W``,
the parameterization pyrogen's Pyro ``potential="fast"`` NUTS uses.

Sufficient statistics. For observed ``x`` the collapsed likelihood of :func:`bayesian_fa` /
:func:`bayesian_ppca` depends on the data only through :math:`n`, the mean :math:`\bar x` and
the scatter :math:`S = \frac1n \sum_j (x_j - \bar x)(x_j - \bar x)^\top`. With
``sufficient_stats=True`` (or a :class:`GaussianSufficientStatistics` computed once by
:func:`gaussian_sufficient_statistics`) the site ``x`` is evaluated from them at
:math:`O(D^2 K + D K^2)` per evaluation, independent of :math:`n` (see
:class:`LowRankGaussianSufficientStatistics`). The log joint is the same number as with the
per-row site (tested to 1e-10 relative); only the site ``x`` changes shape: it is **one**
event of shape ``(n, D)`` outside the ``"data"`` plate, so ``numpyro.infer.log_likelihood``
gives the total, not one value per row. :func:`pyrogen.numpyro.run_nuts` uses the statistics
for the NUTS target by default while the ``MCMC`` it returns keeps the per-row model (for
``log_likelihood``, ``Predictive``, ArviZ / LOO).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer.reparam import LocScaleReparam

from .._validation import check_choice, check_float, check_int

__all__ = [
    "GaussianSufficientStatistics",
    "gaussian_sufficient_statistics",
    "LowRankGaussianSufficientStatistics",
    "bayesian_fa",
    "bayesian_ppca",
    "bayesian_noisy_ica",
    "bayesian_sparse_coding",
    "NOISE_PRIORS",
    "ICA_SOURCES",
]

#: default parameters of each noise-variance prior (as in the Pyro Bayesian FA / PPCA)
NOISE_PRIORS: dict[str, tuple[float, ...]] = {
    "inverse_gamma": (1.0, 0.1),
    "lognormal": (math.log(0.1), 1.5),
    "half_cauchy": (1.0,),
}

#: source densities of :func:`bayesian_noisy_ica`, unit variance as in the Pyro noisy ICA
#: (the learnt-shape "gennorm" source has no NumPyro twin)
ICA_SOURCES = ("laplace", "logistic", "student_t")


class _SharedLowRankMVN(dist.LowRankMultivariateNormal):
    r"""``LowRankMultivariateNormal`` whose ``log_prob`` factorizes the covariance **once** for a
    batch of rows.

    numpyro's ``log_prob`` broadcasts the capacitance solve over the batch (cost ~40x a matrix
    product at n = 1797, D = 61, K = 10). With an unbatched ``loc``, ``cov_factor`` and
    ``cov_diag`` (the factor models' case) this computes, by Woodbury and the matrix
    determinant lemma,

    .. math::

        \log \mathcal N(x; b, W W^\top + \Psi) = -\tfrac12\big[D \log 2\pi
        + \log|M| + \textstyle\sum_i \log\psi_i + r^\top \Psi^{-1} r
        - \lVert L^{-1} W^\top \Psi^{-1} r \rVert^2\big],

    :math:`r = x - b`, :math:`M = I + W^\top\Psi^{-1}W = L L^\top`: one :math:`K \times K`
    Cholesky and :math:`O(n D K)` matrix products. Otherwise it defers to numpyro.
    """

    def log_prob(self, value):
        W, psi, loc = self.cov_factor, self.cov_diag, self.loc
        if W.ndim != 2 or psi.ndim != 1 or loc.ndim != 1:
            return super().log_prob(value)
        D, K = W.shape
        A = W.T / psi  # (K, D) = W^T Psi^-1
        L = jnp.linalg.cholesky(jnp.eye(K, dtype=W.dtype) + A @ W)
        r = value - loc
        y = r @ A.T  # (..., K)
        # L^-1 once (K x K), then matrix products only (a batched triangular solve and its
        # gradient are much slower on CPU)
        Linv = jax.scipy.linalg.solve_triangular(L, jnp.eye(K, dtype=W.dtype), lower=True)
        z = y @ Linv.T
        quad = (r**2 / psi).sum(-1) - (z**2).sum(-1)
        logdet = 2.0 * jnp.log(jnp.diagonal(L)).sum() + jnp.log(psi).sum()
        return -0.5 * (D * math.log(2 * math.pi) + logdet + quad)


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True)
class GaussianSufficientStatistics:
    r"""Sufficient statistics of a data matrix for a Gaussian likelihood with a shared
    mean and covariance (a JAX pytree whose leaves are ``mean`` and ``scatter``; ``num_data``
    is static).

    Attributes
    ----------
    num_data : int
        :math:`n`.
    mean : array, shape ``(D,)``
        :math:`\bar x = \frac1n \sum_j x_j`.
    scatter : array, shape ``(D, D)``
        :math:`S = \frac1n \sum_j (x_j - \bar x)(x_j - \bar x)^\top` (divided by :math:`n`).
    """

    num_data: int
    mean: jax.Array
    scatter: jax.Array

    def tree_flatten(self):
        return (self.mean, self.scatter), self.num_data

    @classmethod
    def tree_unflatten(cls, num_data, leaves):
        return cls(num_data, *leaves)


def gaussian_sufficient_statistics(x) -> GaussianSufficientStatistics:
    r""":class:`GaussianSufficientStatistics` of ``x`` (``(n, D)``), cost :math:`O(n D^2)`.

    A concrete array (NumPy or JAX, not a tracer) is summarized with NumPy in float64 and
    returned in ``x``'s float dtype, so that the statistics are constants when a NUTS
    potential that closes over them is compiled; inside a trace the statistics are computed
    with ``jax.numpy``.
    """
    if getattr(x, "ndim", None) != 2:
        raise ValueError(
            f"x must be a 2-d array (n, n_features). Got {type(x).__name__} with "
            f"ndim={getattr(x, 'ndim', None)} instead."
        )
    n = int(x.shape[0])
    if isinstance(x, jax.core.Tracer):
        mean = x.mean(0)
        xc = x - mean
        return GaussianSufficientStatistics(n, mean, xc.T @ xc / n)
    xn = np.asarray(x)
    dtype = jax.dtypes.canonicalize_dtype(
        xn.dtype if np.issubdtype(xn.dtype, np.floating) else np.float64)
    x64 = xn.astype(np.float64)
    mean = x64.mean(0)
    xc = x64 - mean
    scatter = xc.T @ xc / n
    return GaussianSufficientStatistics(n, jnp.asarray(mean.astype(dtype)),
                                        jnp.asarray(scatter.astype(dtype)))


class LowRankGaussianSufficientStatistics(dist.Distribution):
    r"""The likelihood of ``n`` i.i.d. rows :math:`x_j \sim \mathcal N(b, W W^\top + \Psi)`,
    evaluated from the data's :class:`GaussianSufficientStatistics`.

    With :math:`S_b = \frac1n \sum_j (x_j - b)(x_j - b)^\top = S + (\bar x - b)(\bar x -
    b)^\top`,

    .. math::

        \sum_{j=1}^n \log \mathcal N(x_j; b, C) = -\frac n2 \Big[D \log 2\pi + \log|C|
        + \operatorname{tr}(C^{-1} S_b)\Big], \qquad C = W W^\top + \Psi,

    and with :math:`A = \Psi^{-1} W`, :math:`M = I_K + W^\top A = L L^\top` (Woodbury and the
    matrix determinant lemma)

    .. math::

        \log|C| = 2 \textstyle\sum_k \log L_{kk} + \sum_i \log \psi_i, \qquad
        \operatorname{tr}(C^{-1} S_b) = \textstyle\sum_i (S_b)_{ii} / \psi_i
        - \operatorname{tr}\big(M^{-1} A^\top S_b A\big),

    where :math:`A^\top S_b A = A^\top S A + (A^\top d)(A^\top d)^\top`,
    :math:`d = \bar x - b`. Cost :math:`O(D^2 K + D K^2)` per evaluation (the product
    :math:`S A` dominates), independent of :math:`n`; the per-row form costs :math:`O(n D K)`.

    The event is the whole data matrix (``event_shape = (n, D)``, no batch dims):
    ``log_prob(x)`` is the **total** log-likelihood of the rows of ``x`` and requires ``stats``
    to be the statistics of that ``x`` (only the shape of ``x`` is checked). ``sample`` draws
    ``n`` rows.

    Parameters
    ----------
    loc : array, shape ``(D,)``
    cov_factor : array, shape ``(D, K)``
    cov_diag : array, shape ``(D,)``
        :math:`b`, :math:`W` and the diagonal of :math:`\Psi` (unbatched).
    stats : GaussianSufficientStatistics
    """

    arg_constraints = {
        "loc": dist.constraints.real_vector,
        "cov_factor": dist.constraints.independent(dist.constraints.real, 2),
        "cov_diag": dist.constraints.independent(dist.constraints.positive, 1),
    }
    support = dist.constraints.independent(dist.constraints.real, 2)
    reparametrized_params = ["loc", "cov_factor", "cov_diag"]

    def __init__(self, loc, cov_factor, cov_diag, stats: GaussianSufficientStatistics, *,
                 validate_args=None):
        if jnp.ndim(cov_factor) != 2 or jnp.ndim(cov_diag) != 1 or jnp.ndim(loc) != 1:
            raise ValueError(
                "loc, cov_factor and cov_diag must be unbatched ((D,), (D, K), (D,)). Got "
                f"shapes {jnp.shape(loc)}, {jnp.shape(cov_factor)}, {jnp.shape(cov_diag)} "
                "instead."
            )
        if not isinstance(stats, GaussianSufficientStatistics):
            raise TypeError("stats must be a GaussianSufficientStatistics. Got "
                            f"{type(stats).__name__} instead.")
        self.loc, self.cov_factor, self.cov_diag, self.stats = loc, cov_factor, cov_diag, stats
        D = jnp.shape(cov_factor)[0]
        super().__init__(batch_shape=(), event_shape=(int(stats.num_data), D),
                         validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        rows = dist.LowRankMultivariateNormal(self.loc, self.cov_factor, self.cov_diag)
        return rows.sample(key, tuple(sample_shape) + (self.event_shape[0],))

    def log_prob(self, value):
        if tuple(jnp.shape(value)[-2:]) != tuple(self.event_shape):
            raise ValueError(
                f"value must have shape (..., {self.event_shape[0]}, {self.event_shape[1]}) "
                f"(the data the statistics summarize). Got {jnp.shape(value)} instead."
            )
        W, psi, b = self.cov_factor, self.cov_diag, self.loc
        n, xbar, S = self.stats.num_data, self.stats.mean, self.stats.scatter
        D, K = W.shape
        A = W / psi[:, None]  # Psi^-1 W, (D, K)
        L = jnp.linalg.cholesky(jnp.eye(K, dtype=W.dtype) + W.T @ A)
        Linv = jax.scipy.linalg.solve_triangular(L, jnp.eye(K, dtype=W.dtype), lower=True)
        d = xbar - b
        Ad = A.T @ d  # (K,)
        B = A.T @ (S @ A) + jnp.outer(Ad, Ad)  # A^T S_b A, (K, K)
        tr_small = jnp.sum((Linv @ B) * Linv)  # tr(M^-1 B) = tr(L^-1 B L^-T)
        tr_big = jnp.sum((jnp.diagonal(S) + d**2) / psi)
        logdet = 2.0 * jnp.log(jnp.diagonal(L)).sum() + jnp.log(psi).sum()
        total = -0.5 * n * (D * math.log(2 * math.pi) + logdet + tr_big - tr_small)
        return jnp.broadcast_to(total, jnp.shape(value)[:-2])


def _shape(x, n_features, num_data):
    """``(n, D)`` from the data or from ``num_data`` / ``n_features`` (prior predictive)."""
    if x is not None:
        if getattr(x, "ndim", None) != 2:
            raise ValueError(
                f"x must be a 2-d array (n, n_features). Got {type(x).__name__} with "
                f"ndim={getattr(x, 'ndim', None)} instead."
            )
        n, D = x.shape
        if n_features is not None and int(n_features) != D:
            raise ValueError(f"x must have {n_features} columns. Got {D} instead.")
        return n, D
    if num_data is None or n_features is None:
        raise ValueError(
            "num_data and n_features must be ints when x is None. Got "
            f"num_data={num_data!r}, n_features={n_features!r} instead."
        )
    return check_int(num_data, "num_data", low=1), check_int(n_features, "n_features", low=1)


def _noise_dist(noise_prior, noise_params):
    check_choice(noise_prior, "noise_prior", tuple(NOISE_PRIORS))
    p = NOISE_PRIORS[noise_prior] if noise_params is None else tuple(noise_params)
    if len(p) != len(NOISE_PRIORS[noise_prior]):
        raise ValueError(
            f"noise_params must be a tuple of {len(NOISE_PRIORS[noise_prior])} float(s) for "
            f"noise_prior={noise_prior!r}. Got {noise_params!r} instead."
        )
    if noise_prior == "inverse_gamma":
        return dist.InverseGamma(p[0], p[1])
    if noise_prior == "lognormal":
        return dist.LogNormal(p[0], p[1])
    return dist.HalfCauchy(p[0])


def _resolve_stats(sufficient_stats, x, likelihood):
    """The statistics to evaluate ``x`` with, or ``None`` for the per-row site."""
    if isinstance(sufficient_stats, GaussianSufficientStatistics):
        if x is None or likelihood != "collapsed":
            raise ValueError(
                "sufficient_stats applies to observed x with likelihood='collapsed'. Got "
                f"x={'None' if x is None else 'an array'}, likelihood={likelihood!r} instead."
            )
        if (int(sufficient_stats.num_data), tuple(jnp.shape(sufficient_stats.mean))) != (
                x.shape[0], (x.shape[1],)):
            raise ValueError(
                f"sufficient_stats must summarize x ({x.shape[0]} rows of {x.shape[1]}). Got "
                f"num_data={sufficient_stats.num_data}, mean shape "
                f"{tuple(jnp.shape(sufficient_stats.mean))} instead."
            )
        return sufficient_stats
    if not isinstance(sufficient_stats, (bool, np.bool_)):
        raise TypeError(
            "sufficient_stats must be a bool or a GaussianSufficientStatistics. Got "
            f"{type(sufficient_stats).__name__} instead."
        )
    if not sufficient_stats or x is None or likelihood != "collapsed":
        return None
    return gaussian_sufficient_statistics(x)


def _linear_gaussian(x, *, n_components, isotropic, n_features, num_data, w_prior, w_scale,
                     ard_concentration, ard_rate, noise_prior, noise_params, loc_scale,
                     noise_floor, likelihood, noncentered, sufficient_stats):
    n, D = _shape(x, n_features, num_data)
    K = check_int(n_components, "n_components", low=1, high=D)
    check_choice(w_prior, "w_prior", ("ard", "normal"))
    check_choice(likelihood, "likelihood", ("collapsed", "latent"))
    if noncentered is None:
        noncentered = w_prior == "ard"
    noise_d = _noise_dist(noise_prior, noise_params)
    if w_prior == "ard":
        with numpyro.plate("components", K, dim=-1):
            alpha = numpyro.sample("alpha", dist.Gamma(ard_concentration, ard_rate))
        scale = jnp.reciprocal(jnp.sqrt(alpha))
    else:
        scale = jnp.full((K,), float(w_scale))
    w_dist = dist.Normal(0.0, scale).expand([D, K]).to_event(1)
    with numpyro.plate("features", D, dim=-1):
        if noncentered:
            with numpyro.handlers.reparam(config={"W": LocScaleReparam(centered=0.0)}):
                W = numpyro.sample("W", w_dist)
        else:
            W = numpyro.sample("W", w_dist)
        loc = numpyro.sample("loc", dist.Normal(0.0, loc_scale))
        if not isotropic:
            noise = numpyro.sample("noise", noise_d)
    if isotropic:
        noise = numpyro.sample("noise", noise_d)
        diag = jnp.broadcast_to(noise, (D,)) + noise_floor
    else:
        diag = noise + noise_floor
    stats = _resolve_stats(sufficient_stats, x, likelihood)
    if stats is not None:
        return numpyro.sample("x", LowRankGaussianSufficientStatistics(loc, W, diag, stats),
                              obs=x)
    with numpyro.plate("data", n, dim=-1):
        if likelihood == "collapsed":
            return numpyro.sample("x", _SharedLowRankMVN(loc, W, diag), obs=x)
        h = numpyro.sample("h", dist.Normal(jnp.zeros(K), 1.0).to_event(1))
        mean = loc + h @ W.T
        return numpyro.sample("x", dist.Normal(mean, jnp.sqrt(diag)).to_event(1), obs=x)


def bayesian_fa(x=None, *, n_components: int, n_features: int | None = None,
                num_data: int | None = None, w_prior: str = "ard", w_scale: float = 1.0,
                ard_concentration: float = 1.0, ard_rate: float = 1e-3,
                noise_prior: str = "inverse_gamma", noise_params=None,
                loc_scale: float = 10.0, noise_floor: float = 1e-6,
                likelihood: str = "collapsed", noncentered: bool | None = None,
                sufficient_stats=False):
    r"""Bayesian factor analysis, the NumPyro twin of
    :class:`pyrogen.models.BayesianFactorAnalysis`.

    .. math::

        \alpha_k \sim \mathrm{Gamma}(a, b), \quad
        W_{:,k} \sim \mathcal N(0, \alpha_k^{-1} I), \quad
        \psi_i \sim p_\psi, \quad b_i \sim \mathcal N(0, s_b^2), \quad
        x_j \sim \mathcal N(b, W W^\top + \operatorname{diag}(\psi) + \epsilon I)

    (``w_prior="normal"``: :math:`W_{ik} \sim \mathcal N(0, s_W^2)` and no ``alpha``).
    ``likelihood="collapsed"`` evaluates the marginal as ``LowRankMultivariateNormal``
    (:math:`O(n D K)` per gradient); ``"latent"`` samples ``h`` (``(n, K)``) and observes
    :math:`x_j \mid h_j \sim \mathcal N(W h_j + b, \operatorname{diag}(\psi) + \epsilon I)`.

    Parameters
    ----------
    x : array, shape ``(n, D)``, optional
        Observed data; ``None`` draws ``num_data`` rows of ``n_features`` from the prior.
    n_components : int
        :math:`K \le D`.
    n_features, num_data : int, optional
        Needed only when ``x`` is ``None``.
    w_prior, w_scale, ard_concentration, ard_rate
        As in :class:`pyrogen.models.BayesianFactorAnalysis` (same defaults).
    noise_prior, noise_params, loc_scale, noise_floor, likelihood
        As in :class:`pyrogen.models.BayesianFactorAnalysis` (same defaults).
    noncentered : bool, optional
        Sample ``W_decentered`` instead of ``W`` (default: ``True`` under ARD); see the
        module docstring.
    sufficient_stats : bool or GaussianSufficientStatistics
        ``True`` (or precomputed statistics of ``x``): evaluate the collapsed likelihood from
        :math:`(n, \bar x, S)` at :math:`O(D^2 K)` per evaluation, independent of :math:`n`
        (:class:`LowRankGaussianSufficientStatistics`); the site ``x`` is then one ``(n, D)``
        event outside the ``"data"`` plate (same log joint). Ignored when ``x`` is ``None``
        or ``likelihood="latent"``. Default ``False`` (one row per plate entry, what
        ``log_likelihood`` / LOO need); :func:`~pyrogen.numpyro.run_nuts` switches it on for
        the NUTS target only.

    Returns
    -------
    array
        The value of the ``x`` site.

    Examples
    --------
    >>> from pyrogen.numpyro import bayesian_fa, run_nuts
    >>> mcmc = run_nuts(bayesian_fa, x, n_components=3, num_chains=4)  # doctest: +SKIP
    """
    return _linear_gaussian(
        x, n_components=n_components, isotropic=False, n_features=n_features,
        num_data=num_data, w_prior=w_prior, w_scale=w_scale,
        ard_concentration=ard_concentration, ard_rate=ard_rate, noise_prior=noise_prior,
        noise_params=noise_params, loc_scale=loc_scale, noise_floor=noise_floor,
        likelihood=likelihood, noncentered=noncentered, sufficient_stats=sufficient_stats,
    )


def bayesian_ppca(x=None, *, n_components: int, n_features: int | None = None,
                  num_data: int | None = None, w_prior: str = "ard", w_scale: float = 1.0,
                  ard_concentration: float = 1.0, ard_rate: float = 1e-3,
                  noise_prior: str = "inverse_gamma", noise_params=None,
                  loc_scale: float = 10.0, noise_floor: float = 1e-6,
                  likelihood: str = "collapsed", noncentered: bool | None = None,
                  sufficient_stats=False):
    r"""Bayesian PPCA (Bishop 1999), the NumPyro twin of :class:`pyrogen.models.BayesianPPCA`.

    :func:`bayesian_fa` with one noise variance :math:`\sigma^2` (scalar site ``noise``):
    :math:`x_j \sim \mathcal N(b, W W^\top + (\sigma^2 + \epsilon) I)`. Parameters (including
    ``sufficient_stats``) as in :func:`bayesian_fa`.
    """
    return _linear_gaussian(
        x, n_components=n_components, isotropic=True, n_features=n_features,
        num_data=num_data, w_prior=w_prior, w_scale=w_scale,
        ard_concentration=ard_concentration, ard_rate=ard_rate, noise_prior=noise_prior,
        noise_params=noise_params, loc_scale=loc_scale, noise_floor=noise_floor,
        likelihood=likelihood, noncentered=noncentered, sufficient_stats=sufficient_stats,
    )


def _ica_source(source, df):
    check_choice(source, "source", ICA_SOURCES)
    if source == "laplace":
        return dist.Laplace(0.0, 1.0 / math.sqrt(2.0))
    if source == "logistic":
        return dist.Logistic(0.0, math.sqrt(3.0) / math.pi)
    df = check_float(df, "df", 2.0, None, "oo")
    return dist.StudentT(df, 0.0, math.sqrt((df - 2.0) / df))


def bayesian_noisy_ica(x=None, *, n_components: int, n_features: int | None = None,
                       num_data: int | None = None, source: str = "laplace", df: float = 5.0,
                       prior_scale: float = 1.0, bias=None, noise_scale=None,
                       noise: str = "diagonal", loc_scale: float = 10.0,
                       noise_scale_prior: float = 1.0):
    r"""Bayesian noisy ICA, the NumPyro twin of :meth:`pyrogen.models.BayesianNoisyICA.model`.

    .. math::

        W_{dk} \sim \mathcal N(0, \tau^2), \quad h_{jk} \sim p_k \ (\text{unit variance}),
        \quad x_j \mid h_j, W \sim \mathcal N(W h_j + b, \operatorname{diag}\sigma^2).

    The Pyro model point-estimates :math:`b` and :math:`\sigma` (PyroParams ``bias``,
    ``noise_scale``): pass their fitted values as ``bias`` / ``noise_scale`` for the exact
    twin. Left ``None``, they get priors (an extension of the Pyro model):
    ``bias`` :math:`\sim \mathcal N(0, s_b^2)` per feature and ``noise_scale`` (the noise
    **standard deviation**) :math:`\sim \mathrm{HalfCauchy}(s_\sigma)`, per feature
    (``noise="diagonal"``) or one scalar (``"isotropic"``).

    The posterior is symmetric under signed permutations of the columns of :math:`W` (with
    :math:`h`, for symmetric sources): align draws with
    :func:`pyrogen.numpyro.signed_permutation_align` before computing r-hat of ``W``.

    Parameters
    ----------
    x : array, shape ``(n, D)``, optional
    n_components : int
        :math:`K` (``K > D`` allowed).
    source : {"laplace", "logistic", "student_t"}
        Unit-variance source density, as in :class:`pyrogen.models.NoisyICA`.
    df : float
        Degrees of freedom of ``"student_t"`` (> 2).
    prior_scale : float
        :math:`\tau`.
    bias, noise_scale : array, optional
        Fixed :math:`b` (``(D,)``) and :math:`\sigma` (``(D,)`` or scalar); ``None`` samples
        them.
    noise : {"diagonal", "isotropic"}
        Shape of the sampled ``noise_scale``.
    loc_scale, noise_scale_prior : float
        :math:`s_b` and :math:`s_\sigma`.
    """
    n, D = _shape(x, n_features, num_data)
    K = check_int(n_components, "n_components", low=1)
    prior_scale = check_float(prior_scale, "prior_scale", 0.0, None, "oo")
    check_choice(noise, "noise", ("diagonal", "isotropic"))
    src = _ica_source(source, df)
    W = numpyro.sample("W", dist.Normal(jnp.zeros((D, K)), prior_scale).to_event(2))
    if bias is None:
        with numpyro.plate("features", D, dim=-1):
            bias = numpyro.sample("bias", dist.Normal(0.0, loc_scale))
    if noise_scale is None:
        if noise == "diagonal":
            with numpyro.plate("features", D, dim=-1):
                noise_scale = numpyro.sample("noise_scale", dist.HalfCauchy(noise_scale_prior))
        else:
            noise_scale = numpyro.sample("noise_scale", dist.HalfCauchy(noise_scale_prior))
    sigma = jnp.broadcast_to(jnp.asarray(noise_scale), (D,))
    with numpyro.plate("data", n, dim=-1):
        h = numpyro.sample("h", src.expand([K]).to_event(1))
        mean = h @ W.T + bias
        return numpyro.sample("x", dist.Normal(mean, sigma).to_event(1), obs=x)


def bayesian_sparse_coding(x=None, *, n_components: int, n_features: int | None = None,
                           num_data: int | None = None, lam: float = 1.0,
                           w_scale: float | None = None, noise_prior: str = "inverse_gamma",
                           noise_params=None, fit_bias: bool = True, loc_scale: float = 10.0,
                           noise_floor: float = 1e-6):
    r"""Bayesian sparse coding, the NumPyro twin of the Pyro model
    :func:`~pyrogen.models.bayesian_sparse_coding.bayesian_sparse_coding_model` (see there
    for the model and the choice of priors).

    .. math::

        W_{dk} \sim \mathcal N(0, s_W^2), \ s_W = D^{-1/2}, \quad
        \sigma^2 \sim p_\sigma, \quad b_d \sim \mathcal N(0, s_b^2), \quad
        h_{jk} \sim \operatorname{Laplace}(0, 2/\lambda), \quad
        x_j \sim \mathcal N(W h_j + b, (\sigma^2 + \epsilon) I).

    Sites ``W`` (``(D, K)``), ``noise`` (scalar variance), ``loc`` (``(D,)``, only with
    ``fit_bias``), ``h`` (``(n, K)``), ``x``.
    """
    n, D = _shape(x, n_features, num_data)
    K = check_int(n_components, "n_components", low=1)
    lam = check_float(lam, "lam", 0.0, None, "oo")
    s_w = 1.0 / math.sqrt(D) if w_scale is None else check_float(w_scale, "w_scale", 0.0,
                                                                   None, "oo")
    noise_d = _noise_dist(noise_prior, noise_params)
    with numpyro.plate("features", D, dim=-1):
        W = numpyro.sample("W", dist.Normal(0.0, s_w).expand([D, K]).to_event(1))
        loc = numpyro.sample("loc", dist.Normal(0.0, loc_scale)) if fit_bias else 0.0
    noise = numpyro.sample("noise", noise_d)
    with numpyro.plate("data", n, dim=-1):
        h = numpyro.sample("h", dist.Laplace(0.0, 2.0 / lam).expand([K]).to_event(1))
        mean = h @ W.T + loc
        sd = jnp.sqrt(noise + noise_floor)
        return numpyro.sample("x", dist.Normal(mean, sd).expand([n, D]).to_event(1), obs=x)
