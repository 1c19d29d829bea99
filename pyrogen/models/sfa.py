r"""Slow feature analysis (book §13.3): the closed form and its probabilistic model.

Slow feature analysis (SFA) [1]_ [3]_ looks for features :math:`f(x_t)` of a time series that vary
as slowly as possible. For a linear feature map :math:`y_t = U^\top (z_t - \mu)`, where
:math:`z_t = x_t` or a fixed expansion of :math:`x_t`, it solves

.. math::

    \min_U \; \mathbb{E}_t\big[(y_{k,t+1} - y_{k,t})^2\big]
    \quad\text{s.t.}\quad \mathbb{E}_t[y_{k,t}] = 0,\;
    \mathbb{E}_t[y_{k,t}\, y_{j,t}] = \delta_{kj},

feature by feature, each uncorrelated with the slower ones. This is the generalized eigenproblem
:math:`\dot C u = \delta\, C u` with :math:`C` the covariance of :math:`z_t` and :math:`\dot C`
the second-moment matrix of the temporal differences :math:`\dot z_t = z_{t+1} - z_t`: whiten
:math:`z` with :math:`C^{-1/2}`, then eigen-decompose the covariance of the whitened differences.
The eigenvalues :math:`\delta_k` (the *slowness* values, ``slowness_``) are the mean squared
temporal differences of the unit-variance features; the slowest feature has the smallest one.

Turner & Sahani [2]_ showed that SFA is maximum likelihood in a linear-Gaussian state-space model:
independent latent AR(1) processes

.. math::

    h_{k,1} \sim \mathcal N(0, 1), \qquad
    h_{k,t} = \lambda_k h_{k,t-1} + \sqrt{1-\lambda_k^2}\;\epsilon_{k,t},\quad
    \epsilon_{k,t} \sim \mathcal N(0, 1),

(stationary with unit variance; :math:`\lambda_k` close to 1 is slow) observed through
:math:`x_t = W h_t + b + \text{noise}`. In the limit of zero observation noise with a square,
invertible :math:`W`, the maximum-likelihood unmixing :math:`W^{-1}` consists of the SFA
directions, and the maximum-likelihood :math:`\lambda_k` are the lag-one autocorrelations
:math:`1 - \delta_k / 2` of the SFA features (up to :math:`O(1/T)` boundary terms).

This module offers both ends:

* :class:`SlowFeatureAnalysis` (``"sfa"``): the closed form, optionally on the quadratic expansion
  of the input. Its generative model is the noiseless, square limit of [2]_ (exact
  log-likelihood by a change of variables).
* :class:`ProbabilisticSFA` (``"psfa"``): the model of [2]_ with observation noise and
  :math:`K \le D` latents, whose exact marginal likelihood is Pyro's
  :class:`~pyro.distributions.GaussianHMM`; fitted by maximum likelihood with SVI (the guide is
  empty because every latent is integrated out exactly).

Input is a time series of shape ``(T, n_features)``, several sequences of one length as
``(n_sequences, T, n_features)``, or a list of ``(T_i, n_features)`` arrays of any lengths.

References
----------
.. [1] L. Wiskott and T. Sejnowski (2002). Slow feature analysis: unsupervised learning of
   invariances. *Neural Computation* 14(4), 715-770.
.. [2] R. Turner and M. Sahani (2007). A maximum-likelihood interpretation for slow feature
   analysis. *Neural Computation* 19(4), 1022-1038.
.. [3] I. Goodfellow, Y. Bengio and A. Courville (2016). *Deep Learning*, §13.3. MIT Press.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.infer
import pyro.optim
import torch
from pyro.distributions import constraints
from pyro.distributions.torch_distribution import TorchDistribution
from pyro.distributions.util import broadcast_shape
from pyro.nn import PyroParam, pyro_method

from .._validation import check_choice, check_data, check_float, check_int
from ..evaluation import LogLikelihood
from .base import DEFAULT_TOL, FitHistory, GenerativeModel, register_model

__all__ = [
    "SlowFeatureAnalysis",
    "ProbabilisticSFA",
    "SlowFeatureSequence",
    "quadratic_expansion",
    "sfa_closed_form",
    "sinusoid_mixture",
]

_LOG_2PI = math.log(2 * math.pi)


# ---------------------------------------------------------------------------------- input
@dataclass
class _Sequences:
    """Validated time-series input: the sequences and how they were given."""

    seqs: list  # of (T_i, D) tensors
    layout: str  # "2d", "3d" or "list"
    stacked: torch.Tensor | None  # (S, T, D) when all lengths are equal

    @property
    def n_steps(self) -> int:
        return sum(s.shape[0] for s in self.seqs)

    def regroup(self, values: list):
        """Give per-sequence results back in the layout of the input."""
        if self.layout == "2d":
            return values[0]
        if self.layout == "3d":
            return torch.stack(values)
        return values


_SHAPE_TEXT = (
    "a torch.Tensor or numpy.ndarray of shape (T, n_features) or (n_sequences, T, n_features), "
    "or a list of (T_i, n_features) arrays"
)


def _check_sequences(
    x, name: str, n_features: int, dtype, device, min_steps: int = 1, why: str = ""
) -> _Sequences:
    """Validate time-series input (see the module docstring for the accepted layouts)."""
    if isinstance(x, (list, tuple)):
        if len(x) == 0:
            raise ValueError(f"{name} must be {_SHAPE_TEXT}. Got an empty {type(x).__name__}.")
        seqs = []
        for i, xi in enumerate(x):
            if not isinstance(xi, (torch.Tensor, np.ndarray)):
                raise TypeError(
                    f"{name} must be {_SHAPE_TEXT}. Got a {type(x).__name__} containing "
                    f"{type(xi).__name__} instead."
                )
            if xi.ndim != 2:
                raise ValueError(
                    f"{name}[{i}] must have shape (T, n_features). Got shape "
                    f"{tuple(xi.shape)} instead."
                )
            seqs.append(
                check_data(xi, f"{name}[{i}]", n_features=n_features, dtype=dtype, device=device)
            )
        layout = "list"
    elif isinstance(x, (torch.Tensor, np.ndarray)):
        if x.ndim not in (2, 3):
            raise ValueError(
                f"{name} must have shape (T, n_features) or (n_sequences, T, n_features). "
                f"Got shape {tuple(x.shape)} instead."
            )
        t = check_data(x, name, n_features=n_features, dtype=dtype, device=device, ndim=x.ndim)
        if t.dim() == 2:
            seqs, layout = [t], "2d"
        else:
            if t.shape[1] == 0:
                raise ValueError(
                    f"{name} must have at least 1 time step. Got shape {tuple(t.shape)} instead."
                )
            seqs, layout = list(t.unbind(0)), "3d"
    else:
        raise TypeError(f"{name} must be {_SHAPE_TEXT}. Got {type(x).__name__} instead.")
    for i, s in enumerate(seqs):
        if s.shape[0] < min_steps:
            which = name if layout == "2d" else f"every sequence of {name}"
            where = "" if layout == "2d" else f" (sequence {i})"
            raise ValueError(
                f"{which} must have at least {min_steps} time step(s){why}. Got a sequence of "
                f"length {s.shape[0]}{where} instead."
            )
    lengths = {s.shape[0] for s in seqs}
    stacked = None
    if layout == "3d":
        stacked = torch.stack(seqs)
    elif layout == "2d":
        stacked = seqs[0].unsqueeze(0)
    elif len(lengths) == 1:
        stacked = torch.stack(seqs)
    return _Sequences(seqs, layout, stacked)


# ---------------------------------------------------------------------------------- data
def sinusoid_mixture(
    n_steps: int = 500,
    n_features: int = 4,
    cycles=(2.3, 11.7, 31.1),
    noise: float = 0.05,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
):
    r"""Synthetic SFA benchmark: sinusoids of different frequencies, linearly mixed, plus noise.

    :math:`s_{k,t} = \sin(2\pi c_k t / T + \phi_k)` with random phases, mixed by a random
    matrix with orthonormal rows scaled by ``(1, 1.5, 0.8, 1.2, ...)``:
    :math:`x_t = s_t^\top A + \sigma \epsilon_t`. The sources are ordered by frequency, so
    source 0 is the slowest.

    Parameters
    ----------
    n_steps : int
        :math:`T`.
    n_features : int
        :math:`D \ge` number of sources.
    cycles : sequence of float
        :math:`c_k`, cycles over the whole series, ascending.
    noise : float
        :math:`\sigma`, white observation noise.
    seed : int
    dtype : torch.dtype

    Returns
    -------
    x : Tensor ``(T, D)``
    sources : Tensor ``(T, len(cycles))``
    """
    n_steps = check_int(n_steps, "n_steps", low=2)
    cycles = [check_float(c, "cycles", 0.0, None, "oo") for c in cycles]
    k = len(cycles)
    n_features = check_int(n_features, "n_features", low=max(1, k))
    noise = check_float(noise, "noise", 0.0, None)
    g = torch.Generator().manual_seed(check_int(seed, "seed", low=0))
    t = torch.arange(n_steps, dtype=torch.float64) / n_steps
    phases = torch.rand(k, generator=g, dtype=torch.float64) * 2 * math.pi
    c = torch.tensor(cycles, dtype=torch.float64)
    sources = torch.sin(2 * math.pi * c * t[:, None] + phases)
    q = torch.linalg.qr(torch.randn(n_features, n_features, generator=g, dtype=torch.float64))[0]
    scales = torch.tensor([(1.0, 1.5, 0.8, 1.2)[i % 4] for i in range(k)], dtype=torch.float64)
    mixing = q[:k] * scales[:, None]
    eps = torch.randn(n_steps, n_features, generator=g, dtype=torch.float64)
    x = sources @ mixing + noise * eps
    return x.to(dtype), sources.to(dtype)


# ---------------------------------------------------------------------------------- closed form
def quadratic_expansion(x: torch.Tensor) -> torch.Tensor:
    r"""All monomials of degree 1 and 2: :math:`(x_i)_i`, then :math:`(x_i x_j)_{i \le j}`.

    Parameters
    ----------
    x : Tensor, shape ``(..., D)``

    Returns
    -------
    Tensor, shape ``(..., D + D (D + 1) / 2)``
        Cost :math:`O(D^2)` per row.
    """
    d = x.shape[-1]
    i, j = torch.triu_indices(d, d, device=x.device)
    return torch.cat([x, x[..., i] * x[..., j]], dim=-1)


def expanded_dim(n_features: int, expansion: str | None) -> int:
    """Dimension of the (expanded) input SFA works on."""
    return n_features if expansion is None else n_features + n_features * (n_features + 1) // 2


def sfa_closed_form(seqs: list, rtol: float | None = None):
    r"""Linear SFA in closed form on one or several sequences.

    Pools the mean and covariance :math:`C` over every time step of every sequence and the
    second moment :math:`\dot C` of the temporal differences within sequences (never across the
    boundary between two sequences), whitens with :math:`C^{-1/2}` and eigen-decomposes the
    whitened :math:`\dot C`. Cost :math:`O(N M^2 + M^3)` for :math:`N` time steps of dimension
    :math:`M`.

    Parameters
    ----------
    seqs : list of Tensor, each ``(T_i, M)``, ``T_i >= 2``
    rtol : float, optional
        Smallest allowed ratio of the smallest to the largest eigenvalue of :math:`C`; defaults to
        ``10 * M * eps`` of the dtype.

    Returns
    -------
    mean : Tensor ``(M,)``
    unmixing : Tensor ``(M, M)``
        Columns are the SFA directions, slowest first: :math:`y_t = (z_t - \mu)^\top U` has
        identity covariance and :math:`\mathbb{E}[(y_{k,t+1} - y_{k,t})^2] = \delta_k`.
    slowness : Tensor ``(M,)``
        :math:`\delta_k`, ascending.

    Raises
    ------
    ValueError
        If :math:`C` is singular (or nearly so at ``rtol``).
    """
    z = torch.cat(list(seqs), dim=0)
    n, m = z.shape
    mean = z.mean(0)
    zc = z - mean
    cov = zc.T @ zc / n
    diffs = torch.cat([s[1:] - s[:-1] for s in seqs], dim=0)
    dcov = diffs.T @ diffs / diffs.shape[0]
    evals, evecs = torch.linalg.eigh(cov)
    if rtol is None:
        rtol = 10.0 * m * torch.finfo(z.dtype).eps
    ratio = float(evals[0] / evals[-1]) if float(evals[-1]) > 0 else 0.0
    if not ratio > rtol:
        raise ValueError(
            f"the covariance of the (expanded) input is singular or nearly so: smallest/largest "
            f"eigenvalue {ratio:.2e} <= {rtol:.1e}. Some directions are (almost) linear "
            "combinations of others or constant; remove redundant features, add a little noise, "
            "or use float64."
        )
    white = evecs / evals.sqrt()
    wd = white.T @ dcov @ white
    delta, rot = torch.linalg.eigh((wd + wd.T) / 2)
    unmixing = white @ rot
    # deterministic signs: the largest-magnitude entry of every direction is positive
    idx = unmixing.abs().argmax(0)
    signs = torch.sign(unmixing[idx, torch.arange(m)])
    signs[signs == 0] = 1
    return mean, unmixing * signs, delta


def _lam_from_slowness(delta: torch.Tensor, margin: float) -> torch.Tensor:
    r"""Lag-one autocorrelation :math:`1 - \delta/2` of a unit-variance feature, kept inside
    ``(-1 + margin, 1 - margin)``."""
    return (1 - delta / 2).clamp(-1 + margin, 1 - margin)


def _innovation_var(lam: torch.Tensor) -> torch.Tensor:
    """:math:`1 - \\lambda^2`, floored at the dtype's eps so that it stays a valid variance when
    :math:`\\lambda` rounds to 1 (float32)."""
    return (1 - lam**2).clamp_min(torch.finfo(lam.dtype).eps)


def _set_param(module, name: str, value: torch.Tensor) -> None:
    """Write a constrained value into a PyroParam in place (keeps the param-store identity)."""
    constraint = module._pyro_params[name][0]
    raw = getattr(module, name + "_unconstrained")
    with torch.no_grad():
        raw.copy_(torch.distributions.biject_to(constraint).inv(value.to(raw)))


# ---------------------------------------------------------------------------------- distribution
class SlowFeatureSequence(TorchDistribution):
    r"""Noiseless SFA generative model of a whole sequence (Turner & Sahani's zero-noise limit).

    .. math::

        y_{k,1} \sim \mathcal N(0, 1),\quad
        y_{k,t} \mid y_{k,t-1} \sim \mathcal N(\lambda_k y_{k,t-1}, 1 - \lambda_k^2),\quad
        x_t = U^{-\top} y_t + \mu,

    i.e. :math:`y_t = U^\top (x_t - \mu)` are independent stationary AR(1) processes with unit
    variance. The density follows by the change of variables:

    .. math::

        \log p(x_{1:T}) = T \log\lvert\det U\rvert + \sum_k \Big[\log\mathcal N(y_{k,1}; 0, 1)
        + \sum_{t\ge 2} \log\mathcal N(y_{k,t}; \lambda_k y_{k,t-1}, 1-\lambda_k^2)\Big].

    Cost :math:`O(T M^2 + M^3)` per sequence.

    Parameters
    ----------
    loc : Tensor, shape ``(..., M)``
        :math:`\mu`.
    unmixing : Tensor, shape ``(..., M, M)``
        :math:`U` (invertible), columns are the features.
    lam : Tensor, shape ``(..., M)``
        AR(1) coefficients :math:`\lambda_k \in (-1, 1)`.
    duration : int
        :math:`T`; the event shape is ``(T, M)``.
    """

    arg_constraints = {
        "loc": constraints.real_vector,
        "unmixing": constraints.independent(constraints.real, 2),
        "lam": constraints.independent(constraints.interval(-1.0, 1.0), 1),
    }
    support = constraints.independent(constraints.real, 2)
    has_rsample = True

    def __init__(self, loc, unmixing, lam, duration: int, *, validate_args=None):
        m = loc.shape[-1]
        if unmixing.shape[-2:] != (m, m) or lam.shape[-1] != m:
            raise ValueError(
                f"unmixing must have shape (..., {m}, {m}) and lam (..., {m}) to match loc. Got "
                f"{tuple(unmixing.shape)} and {tuple(lam.shape)} instead."
            )
        duration = check_int(duration, "duration", low=1)
        batch_shape = broadcast_shape(loc.shape[:-1], unmixing.shape[:-2], lam.shape[:-1])
        self.loc = loc.expand(batch_shape + (m,))
        self.unmixing = unmixing.expand(batch_shape + (m, m))
        self.lam = lam.expand(batch_shape + (m,))
        self.duration = duration
        super().__init__(torch.Size(batch_shape), (duration, m), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(SlowFeatureSequence, _instance)
        batch_shape = torch.Size(batch_shape)
        m = self.event_shape[-1]
        new.loc = self.loc.expand(batch_shape + (m,))
        new.unmixing = self.unmixing.expand(batch_shape + (m, m))
        new.lam = self.lam.expand(batch_shape + (m,))
        new.duration = self.duration
        super(SlowFeatureSequence, new).__init__(batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self.__dict__.get("_validate_args")
        return new

    def _features(self, value):
        return (value - self.loc.unsqueeze(-2)) @ self.unmixing

    def step_log_prob(self, value) -> torch.Tensor:
        r"""Per time step :math:`\log p(x_t \mid x_{<t})`, shape ``batch + (T,)`` (``value`` may
        have any length :math:`T`)."""
        y = self._features(value)
        logdet = torch.linalg.slogdet(self.unmixing).logabsdet
        first = (-0.5 * y[..., :1, :] ** 2 - 0.5 * _LOG_2PI).sum(-1)
        lam = self.lam.unsqueeze(-2)
        var = 1 - lam**2
        resid = y[..., 1:, :] - lam * y[..., :-1, :]
        rest = (-0.5 * resid**2 / var - 0.5 * var.log() - 0.5 * _LOG_2PI).sum(-1)
        return torch.cat([first, rest], dim=-1) + logdet.unsqueeze(-1)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        return self.step_log_prob(value).sum(-1)

    def rsample(self, sample_shape=()):
        shape = torch.Size(sample_shape) + self.batch_shape
        m = self.event_shape[-1]
        eps = torch.randn(shape + (self.duration, m), dtype=self.loc.dtype, device=self.loc.device)
        scale = (1 - self.lam**2).sqrt()
        ys = [eps[..., 0, :]]
        for t in range(1, self.duration):
            ys.append(self.lam * ys[-1] + scale * eps[..., t, :])
        y = torch.stack(ys, dim=-2)
        mixing = torch.linalg.inv(self.unmixing)
        return y @ mixing + self.loc.unsqueeze(-2)


# ---------------------------------------------------------------------------------- SFA
@register_model("sfa")
class SlowFeatureAnalysis(GenerativeModel):
    r"""Linear slow feature analysis in closed form (book §13.3), optionally quadratic.

    ``fit`` solves the SFA eigenproblem of Wiskott & Sejnowski (see :func:`sfa_closed_form`)
    on :math:`z_t = x_t` or, with ``expansion="quadratic"``, on all monomials of degree
    :math:`\le 2` of :math:`x_t` (:func:`quadratic_expansion`, dimension
    :math:`M = D + D(D+1)/2`). ``transform`` returns the
    ``n_components`` slowest features, slowest first; the property :attr:`slowness_` holds
    every :math:`\delta_k` (ascending). References: Wiskott & Sejnowski (2002), Turner & Sahani
    (2007), Deep Learning §13.3 (full entries in :mod:`pyrogen.models.sfa`).

    As a generative model it is the zero-noise, square limit of Turner & Sahani's model:
    :class:`SlowFeatureSequence` with the fitted :math:`U`, :math:`\mu` and
    :math:`\lambda_k = 1 - \delta_k/2` (the lag-one autocorrelation of feature :math:`k`). The
    closed form is the maximum-likelihood estimate of this model up to :math:`O(1/T)` boundary
    terms (see :mod:`pyrogen.models.sfa`), so ``log_likelihood`` is an *exact* log-likelihood of
    the fitted model (all :math:`M` directions are used; ``n_components`` only limits
    ``transform``). With the quadratic expansion there is no density on :math:`x` (the expansion
    is not a change of variables), so ``model``, ``log_likelihood`` and ``sample`` raise.

    Parameters
    ----------
    n_features : int
        :math:`D`, width of the input time series.
    n_components : int, optional
        Number of slow features ``transform`` returns (default: all :math:`M`).
    expansion : {None, "quadratic"}
        Input expansion before the linear SFA.

    Attributes
    ----------
    loc : Tensor ``(M,)``
        Mean :math:`\mu` of the (expanded) input.
    unmixing : Tensor ``(M, M)``
        :math:`U`; column :math:`k` is the :math:`k`-th slowest direction.
    lam : Tensor ``(M,)``
        AR(1) coefficients of the generative model.

    Examples
    --------
    >>> import torch
    >>> from pyrogen.models import SlowFeatureAnalysis
    >>> t = torch.linspace(0, 20, 500, dtype=torch.float64)
    >>> s = torch.stack([torch.sin(0.5 * t), torch.sin(7.0 * t)], 1)
    >>> x = s @ torch.tensor([[1.0, 2.0], [1.5, -1.0]], dtype=torch.float64)
    >>> sfa = SlowFeatureAnalysis(2, n_components=1).double()
    >>> _ = sfa.fit(x)
    >>> y = sfa.transform(x)  # (500, 1), the slow source up to sign and scale
    """

    log_likelihood_kind = "exact"

    def __init__(self, n_features: int, n_components: int | None = None, expansion=None):
        n_features = check_int(n_features, "n_features", low=1)
        expansion = check_choice(expansion, "expansion", (None, "quadratic"))
        m = expanded_dim(n_features, expansion)
        if n_components is None:
            n_components = m
        n_components = check_int(n_components, "n_components", low=1, high=m)
        super().__init__(n_features=n_features, n_components=n_components, expansion=expansion)
        self.loc = PyroParam(torch.zeros(m))
        self.unmixing = PyroParam(torch.eye(m))
        self.lam = PyroParam(torch.full((m,), 0.5), constraint=constraints.interval(-1.0, 1.0))
        self.register_buffer("_slowness", torch.zeros(m))
        self.register_buffer("_fitted", torch.tensor(False))

    # -- helpers ------------------------------------------------------------------------------
    @property
    def n_components(self) -> int:
        return int(self.config["n_components"])

    @property
    def expansion(self):
        return self.config["expansion"]

    @property
    def slowness_(self) -> torch.Tensor:
        """Slowness values :math:`\\delta_k` (ascending) found by ``fit``."""
        if not bool(self._fitted):
            raise ValueError(
                "slowness_ is available after fit; this SlowFeatureAnalysis is not fitted yet."
            )
        return self._slowness.detach().clone()

    def _sequences(self, x, min_steps=1, why="") -> _Sequences:
        return _check_sequences(
            x, "x", self.n_features, self.dtype, self.device, min_steps=min_steps, why=why
        )

    def _expand(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.expansion is None else quadratic_expansion(z)

    def _require_density(self, what: str) -> None:
        if self.expansion is not None:
            raise ValueError(
                f"{what} needs a density on x, which SlowFeatureAnalysis(expansion="
                f"{self.expansion!r}) does not have (the quadratic expansion is not a change of "
                "variables); use expansion=None, or ProbabilisticSFA on expanded inputs."
            )

    def sequence_distribution(self, duration: int) -> SlowFeatureSequence:
        """The generative model of one sequence of length ``duration`` (linear SFA only)."""
        self._require_density("sequence_distribution")
        return SlowFeatureSequence(self.loc, self.unmixing, self.lam, duration)

    # -- Pyro ---------------------------------------------------------------------------------
    @pyro_method
    def model(self, x, num_data: int | None = None):
        """Pyro model: every sequence observed under :class:`SlowFeatureSequence`.

        ``(T, D)`` input is one site ``"x"``; ``(S, T, D)`` is one site ``"x"`` in the ``"data"``
        plate over sequences (scaled to ``num_data``); a list of sequences of different lengths
        gives one site ``"x_i"`` per sequence.
        """
        self._require_density("model")
        data = self._sequences(x)
        if data.layout == "2d":
            xs = data.seqs[0]
            return pyro.sample("x", self.sequence_distribution(xs.shape[0]), obs=xs)
        if data.stacked is not None:
            xs = data.stacked
            with self._data_plate(xs, num_data):
                return pyro.sample("x", self.sequence_distribution(xs.shape[1]), obs=xs)
        for i, s in enumerate(data.seqs):
            pyro.sample(f"x_{i}", self.sequence_distribution(s.shape[0]), obs=s)

    @pyro_method
    def guide(self, x, num_data: int | None = None):
        """Empty guide: the model has no latent sample sites (its density is exact)."""

    # -- fitting ------------------------------------------------------------------------------
    def fit_methods(self) -> tuple[str, ...]:
        return ("closed_form",)

    def fit(
        self,
        x,
        *,
        method: str = "closed_form",
        rtol: float | None = None,
        seed: int | None = None,
        progress: bool = False,
        data_info: dict | None = None,
        num_steps: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
    ) -> FitHistory:
        r"""Solve SFA in closed form on one or several sequences.

        Parameters
        ----------
        x : Tensor ``(T, D)`` or ``(S, T, D)``, or list of ``(T_i, D)`` tensors
            Every sequence needs :math:`T_i \ge 2`; in all at least :math:`M + 1` time steps.
        method : {"closed_form"}
        rtol : float, optional
            Conditioning limit of the input covariance (see :func:`sfa_closed_form`).
        seed, progress
            Accepted for the model protocol; the closed form is deterministic and instant.
        data_info : dict, optional
            Identity of the data, stored in ``data_info``.
        num_steps, lr, batch_size
            Do not apply to the closed form; anything but ``None`` is a ``ValueError`` (so that
            a command line or script written for an SVI model fails clearly).

        Returns
        -------
        FitHistory
            ``losses`` holds one value: the SFA objective
            :math:`\sum_{k \le K} \delta_k` of the ``n_components`` slowest features;
            ``metrics["log_likelihood"]`` the exact log-likelihood per time step of the fitted
            generative model (linear SFA only).
        """
        check_choice(method, "method", self.fit_methods())
        for name, value in (("num_steps", num_steps), ("lr", lr), ("batch_size", batch_size)):
            if value is not None:
                raise ValueError(
                    f"{name} does not apply to SlowFeatureAnalysis.fit (a closed form, no "
                    f"optimizer steps). Got {name}={value!r}; leave it unset."
                )
        if rtol is not None:
            rtol = check_float(rtol, "rtol", 0.0, 1.0, "oo")
        data = self._sequences(x, min_steps=2, why=" (SFA needs temporal differences)")
        m = expanded_dim(self.n_features, self.expansion)
        if data.n_steps < m + 1:
            raise ValueError(
                f"x must have at least {m + 1} time steps in total to estimate the {m}x{m} "
                f"covariance of the {'expanded ' if self.expansion else ''}input. Got "
                f"{data.n_steps} instead."
            )
        t0 = time.perf_counter()
        with torch.no_grad():
            z = [self._expand(s) for s in data.seqs]
            mean, unmixing, delta = sfa_closed_form(z, rtol=rtol)
            margin = max(1e-6, 10 * torch.finfo(mean.dtype).eps)
            _set_param(self, "loc", mean)
            _set_param(self, "unmixing", unmixing)
            _set_param(self, "lam", _lam_from_slowness(delta, margin))
            self._slowness.copy_(delta)
            self._fitted.fill_(True)
        if data_info is not None:
            self.data_info = dict(data_info)
        history = FitHistory(
            method="closed_form",
            losses=[float(delta[: self.n_components].sum())],
            converged=True,
            info={"n_sequences": len(data.seqs), "n_steps": data.n_steps, "loss": "sfa_objective"},
        )
        history.log(slowest=float(delta[0]))
        if self.expansion is None:
            ll = self.log_likelihood(x)
            history.log(log_likelihood=ll.values.sum() / data.n_steps)
        history.seconds = time.perf_counter() - t0
        return history

    # -- protocol verbs ------------------------------------------------------------------------
    def log_likelihood(self, x, per: str = "step") -> LogLikelihood:
        r"""Exact log-likelihood of the noiseless SFA model (linear SFA only).

        Parameters
        ----------
        x : Tensor ``(T, D)`` or ``(S, T, D)``, or list of ``(T_i, D)`` tensors
        per : {"step", "sequence"}
            ``"step"`` (default): one value per time step, the conditional log-density
            :math:`\log p(x_t \mid x_{<t})` (shape ``(T,)`` for one sequence, all sequences
            concatenated otherwise); they sum to the log-likelihood of the sequences.
            ``"sequence"``: one value :math:`\log p(x^{(i)}_{1:T_i})` per sequence.

        Returns
        -------
        LogLikelihood
            kind ``"exact"``.
        """
        self._require_density("log_likelihood")
        per = check_choice(per, "per", ("step", "sequence"))
        data = self._sequences(x)
        with torch.no_grad():
            steps = [self.sequence_distribution(1).step_log_prob(s) for s in data.seqs]
        return _ll_result(steps, per)

    def transform(self, x):
        """The ``n_components`` slowest features, slowest first.

        Returns a tensor ``(T, K)`` for ``(T, D)`` input, ``(S, T, K)`` for ``(S, T, D)`` and a list
        for a list. Works for any :math:`T \\ge 1` (the features are a fixed linear map).
        """
        data = self._sequences(x)
        with torch.no_grad():
            u = self.unmixing[:, : self.n_components]
            out = [(self._expand(s) - self.loc) @ u for s in data.seqs]
        return data.regroup(out)

    def sample(self, n: int) -> torch.Tensor:
        """Draw one sequence of length ``n`` from the noiseless model, shape ``(n, D)``."""
        n = self._check_n(n)
        self._require_density("sample")
        with torch.no_grad():
            return self.sequence_distribution(n).sample()


def _ll_result(steps: list, per: str, extra: dict | None = None) -> LogLikelihood:
    per_seq = torch.stack([s.sum() for s in steps])
    values = torch.cat(steps) if per == "step" else per_seq
    info = {
        "per": per,
        "n_sequences": len(steps),
        "n_steps": int(sum(s.shape[0] for s in steps)),
        "total_log_likelihood": float(per_seq.sum()),
        **(extra or {}),
    }
    return LogLikelihood(values=values, kind="exact", info=info)


# ---------------------------------------------------------------------------------- PSFA
def _kalman_covariances(weight, lam, noise_var, duration: int, tol: float | None = None):
    r"""The data-independent half of the Kalman filter/RTS smoother for the PSFA model.

    Runs the Riccati recursion until the predicted covariance stops changing (relative change
    below ``tol``, default ``max(1e-13, 100 eps)`` of the dtype) and reuses the steady state
    afterwards. Returns, per time step (tensors of
    length ``duration`` along dim 0): the Cholesky factor of the one-step predictive covariance
    :math:`W P^-_t W^\top + R` ``(T, D, D)``, the gain ``(T, K, D)`` and the smoother gain
    :math:`G_t^\top` ``(T, K, K)`` (the last one unused).
    """
    d, k = weight.shape
    if tol is None:
        tol = max(1e-13, 100 * torch.finfo(weight.dtype).eps)
    q = torch.diag(_innovation_var(lam))
    r = torch.diag(noise_var.expand(d))
    p_pred = torch.eye(k, dtype=weight.dtype, device=weight.device)
    chols, gains, smooth_gains = [], [], []
    for _ in range(duration):
        cov = weight @ p_pred @ weight.T + r
        chol = torch.linalg.cholesky((cov + cov.T) / 2)
        gain = torch.cholesky_solve(weight @ p_pred, chol).T  # P^- W^T S^-1, (K, D)
        p = p_pred - gain @ weight @ p_pred
        p = (p + p.T) / 2
        p_next = lam[:, None] * p * lam[None, :] + q
        # G_t^T = (P_t diag(lam) P^-_{t+1}^{-1})^T = P^-_{t+1}^{-1} diag(lam) P_t
        smooth_gain = torch.linalg.solve(p_next, lam[:, None] * p)
        chols.append(chol)
        gains.append(gain)
        smooth_gains.append(smooth_gain)
        change = (p_next - p_pred).abs().max() / p_next.abs().max()
        p_pred = p_next
        if float(change) < tol:
            break
    n = len(chols)
    if n < duration:
        fill = duration - n
        chols += [chols[-1]] * fill
        gains += [gains[-1]] * fill
        smooth_gains += [smooth_gains[-1]] * fill
    return torch.stack(chols), torch.stack(gains), torch.stack(smooth_gains)


def _kalman(xs, weight, loc, lam, noise_var, smooth: bool = False):
    r"""Kalman filter (and RTS smoother means) for the PSFA state-space model.

    ``xs`` is ``(S, T, D)``; returns the per-step log-densities
    :math:`\log p(x_t \mid x_{<t})`, ``(S, T)``, and with ``smooth`` the posterior means
    :math:`\mathbb{E}[h_t \mid x_{1:T}]`, ``(S, T, K)``. The covariances do not depend on the
    data: they are computed once for all sequences (:func:`_kalman_covariances`), and only the
    means run through time. Cost :math:`O(T_c (D^3 + K^3) + S T D K)` with :math:`T_c \le T`
    the steps until the Riccati recursion converges.
    """
    s_, t_, d = xs.shape
    chols, gains, smooth_gains = _kalman_covariances(weight, lam, noise_var, t_)
    m_pred = xs.new_zeros(s_, lam.shape[0])
    innovations, filtered, predicted = [], [], []
    for t in range(t_):
        v = xs[:, t] - (m_pred @ weight.T + loc)
        m = m_pred + v @ gains[t].T
        innovations.append(v)
        filtered.append(m)
        predicted.append(m_pred)
        m_pred = m * lam
    v = torch.stack(innovations, dim=1)  # (S, T, D)
    z = torch.linalg.solve_triangular(chols, v.transpose(0, 1).transpose(-1, -2), upper=False)
    logdet = chols.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (T,)
    logp = -0.5 * (z**2).sum(-2).T - logdet - 0.5 * d * _LOG_2PI  # (S, T)
    if not smooth:
        return logp, None
    means = [filtered[-1]]
    for t in range(t_ - 2, -1, -1):
        means.append(filtered[t] + (means[-1] - predicted[t + 1]) @ smooth_gains[t])
    means.reverse()
    return logp, torch.stack(means, dim=1)


@register_model("psfa")
class ProbabilisticSFA(GenerativeModel):
    r"""Probabilistic slow feature analysis (Turner & Sahani 2007), exact likelihood.

    .. math::

        h_{k,1} \sim \mathcal N(0, 1),\quad
        h_{k,t} = \lambda_k h_{k,t-1} + \mathcal N(0, 1 - \lambda_k^2),\quad
        x_t = W h_t + b + \mathcal N(0, \operatorname{diag}(\sigma^2)),

    with :math:`K` latent AR(1) processes of unit stationary variance. The marginal likelihood
    of a sequence is exact: the Pyro model observes it under
    :class:`pyro.distributions.GaussianHMM`, which integrates :math:`h` out (Kalman
    filtering in information form). ``fit`` maximizes it with SVI and an empty guide, so the
    SVI loss *is* the negative log-likelihood (no bound).

    Its limit :math:`\sigma \to 0` with :math:`K = D` is the noiseless model whose
    maximum-likelihood solution is SFA (:class:`SlowFeatureAnalysis`): the latent means are the
    SFA features and :math:`2(1 - \lambda_k)` the slowness values :math:`\delta_k` (the
    property :attr:`slowness_`, comparable to :attr:`SlowFeatureAnalysis.slowness_`).

    Reference: Turner & Sahani (2007), "A maximum-likelihood interpretation for slow feature
    analysis", Neural Computation 19(4) (see :mod:`pyrogen.models.sfa`).

    Parameters
    ----------
    n_features : int
        :math:`D`.
    n_components : int
        :math:`K \le D`, number of latent processes.
    noise : {"isotropic", "diagonal"}
        One noise scale :math:`\sigma` for every feature, or one per feature.
    noise_scale : float, optional
        Fix :math:`\sigma` to this value instead of learning it (e.g. small, for the SFA limit).
    seed : int or None
        Seeds the random initial :math:`W` (used by ``fit(init="current")``); ``None`` draws
        it from torch's global random state (see :class:`~pyrogen.models.base.GenerativeModel`).

    Attributes
    ----------
    weight : Tensor ``(D, K)``
        :math:`W`.
    loc : Tensor ``(D,)``
        :math:`b`.
    lam : Tensor ``(K,)``
        :math:`\lambda_k \in (-1, 1)` (in parameter order; ``transform`` sorts slowest first).

    """

    log_likelihood_kind = "exact"

    def __init__(
        self,
        n_features: int,
        n_components: int,
        noise: str = "isotropic",
        noise_scale: float | None = None,
        seed: int | None = 0,
    ):
        n_features = check_int(n_features, "n_features", low=1)
        n_components = check_int(n_components, "n_components", low=1, high=n_features)
        noise = check_choice(noise, "noise", ("isotropic", "diagonal"))
        if noise_scale is not None:
            noise_scale = check_float(noise_scale, "noise_scale", 0.0, None, "oo")
        super().__init__(
            n_features=n_features, n_components=n_components, noise=noise, noise_scale=noise_scale,
            seed=None if seed is None else check_int(seed, "seed", low=0),
        )
        d, k = n_features, n_components
        self.weight = PyroParam(torch.randn(d, k) / math.sqrt(k))
        self.loc = PyroParam(torch.zeros(d))
        self.lam = PyroParam(
            torch.linspace(0.9, 0.5, k) if k > 1 else torch.tensor([0.9]),
            constraint=constraints.interval(-1.0, 1.0),
        )
        size = 1 if noise == "isotropic" else d
        if noise_scale is None:
            self.noise_scale = PyroParam(torch.full((size,), 0.5), constraint=constraints.positive)
        else:
            self.register_buffer("noise_scale", torch.full((size,), noise_scale))

    @property
    def n_components(self) -> int:
        return int(self.config["n_components"])

    @property
    def slowness_(self) -> torch.Tensor:
        """:math:`2(1-\\lambda_k)`, ascending (slowest first)."""
        return (2 * (1 - self.lam.detach())).sort().values

    def _order(self) -> torch.Tensor:
        return torch.argsort(self.lam.detach(), descending=True)

    def _sequences(self, x, min_steps=1, why="") -> _Sequences:
        return _check_sequences(
            x, "x", self.n_features, self.dtype, self.device, min_steps=min_steps, why=why
        )

    def hmm(self, duration: int | None = None) -> dist.GaussianHMM:
        """The model's distribution over a whole sequence, as a Pyro ``GaussianHMM``.

        Its hidden chain starts from :math:`h_0 \\sim \\mathcal N(0, I)` one step before the first
        observation, which makes :math:`h_1 \\sim \\mathcal N(0, I)` as above.
        """
        lam = self.lam
        k = lam.shape[0]
        zeros = torch.zeros(k, dtype=lam.dtype, device=lam.device)
        return dist.GaussianHMM(
            dist.Normal(zeros, torch.ones_like(zeros)).to_event(1),
            torch.diag_embed(lam),
            dist.Normal(zeros, _innovation_var(lam).sqrt()).to_event(1),
            self.weight.T,
            dist.Normal(self.loc, self.noise_scale.expand(self.n_features)).to_event(1),
            duration=duration,
        )

    # -- Pyro ---------------------------------------------------------------------------------
    @pyro_method
    def model(self, x, num_data: int | None = None):
        """Pyro model: every sequence observed under :meth:`hmm` (latents integrated out).

        ``(T, D)`` input is one site ``"x"``; ``(S, T, D)`` is one site ``"x"`` in the ``"data"``
        plate over sequences (scaled to ``num_data``); a list of sequences of different lengths
        gives one site ``"x_i"`` per sequence.
        """
        data = self._sequences(x)
        if data.layout == "2d":
            xs = data.seqs[0]
            return pyro.sample("x", self.hmm(duration=xs.shape[0]), obs=xs)
        if data.stacked is not None:
            xs = data.stacked
            with self._data_plate(xs, num_data):
                return pyro.sample("x", self.hmm(duration=xs.shape[1]), obs=xs)
        for i, s in enumerate(data.seqs):
            pyro.sample(f"x_{i}", self.hmm(duration=s.shape[0]), obs=s)

    @pyro_method
    def guide(self, x, num_data: int | None = None):
        """Empty guide: the latents are integrated out exactly by the ``GaussianHMM``."""

    # -- fitting ------------------------------------------------------------------------------
    def fit_methods(self) -> tuple[str, ...]:
        return ("svi",)

    def init_from_sfa(self, x) -> SlowFeatureAnalysis:
        r"""Set the parameters from closed-form SFA on ``x`` and return the fitted SFA.

        :math:`W` = the mixing vectors of the :math:`K` slowest SFA features, :math:`b` = the mean,
        :math:`\lambda_k = 1 - \delta_k/2`, and (when learned) :math:`\sigma^2` = the variance the
        :math:`D - K` faster features leave per feature (at least :math:`10^{-6}` of the data's).
        """
        sfa = SlowFeatureAnalysis(self.n_features).to(dtype=self.dtype, device=self.device)
        sfa.fit(x)
        k = self.n_components
        with torch.no_grad():
            mixing = torch.linalg.inv(sfa.unmixing)  # rows: mixing vectors, x = y @ mixing + mu
            _set_param(self, "weight", mixing[:k].T)
            _set_param(self, "loc", sfa.loc)
            delta = sfa.slowness_[:k]
            _set_param(self, "lam", _lam_from_slowness(delta, 1e-4))
            if self.config["noise_scale"] is None:
                resid = (mixing[k:] ** 2).sum(0)
                floor = 1e-6 * (mixing**2).sum(0).mean()
                var = resid.clamp_min(floor)
                if self.config["noise"] == "isotropic":
                    var = var.mean().reshape(1)
                _set_param(self, "noise_scale", var.sqrt())
        return sfa

    def fit(
        self,
        x,
        *,
        method: str = "svi",
        num_steps: int = 300,
        lr: float = 0.02,
        init: str = "sfa",
        batch_size: int | None = None,
        tol: float | None = DEFAULT_TOL,
        seed: int | None = None,
        progress: bool = True,
        callback=None,
        data_info: dict | None = None,
    ) -> FitHistory:
        r"""Maximum likelihood by SVI (Adam) on the exact marginal likelihood.

        Parameters
        ----------
        x : Tensor ``(T, D)`` or ``(S, T, D)``, or list of ``(T_i, D)`` tensors
            Every sequence needs :math:`T_i \ge 2`.
        method : {"svi"}
        num_steps : int
            Maximum Adam steps.
        lr : float
            Adam learning rate.
        init : {"sfa", "current"}
            Start from closed-form SFA (:meth:`init_from_sfa`) or from the current parameters
            (random at construction).
        batch_size : int, optional
            Minibatch of sequences per step (same-length sequences only; drawn without
            replacement, a fresh permutation every pass); the ``"data"`` plate is scaled to the
            full set.
        tol : float or None
            Convergence test of the shared training loop
            (:meth:`~pyrogen.models.base.GenerativeModel._train`): windowed mean loss, relative
            ``tol``; ``ConvergenceWarning`` when ``num_steps`` run out first; ``None`` runs
            exactly ``num_steps`` steps.
        seed : int, optional
            Seeds Pyro/torch/numpy: the training randomness (the initial parameters come from
            the constructor's ``seed`` or from ``init="sfa"``).
        progress : bool
            tqdm progress bar.
        callback : callable ``(step, loss) -> None``, optional
        data_info : dict, optional

        Returns
        -------
        FitHistory
            ``losses``: the negative exact log-likelihood per time step (nats) at every step
            (for minibatches, its unbiased estimate).
        """
        check_choice(method, "method", self.fit_methods())
        init = check_choice(init, "init", ("sfa", "current"))
        num_steps = check_int(num_steps, "num_steps", low=1)
        lr = check_float(lr, "lr", 0.0, None, "oc")
        data = self._sequences(x, min_steps=2, why=" (the dynamics need transitions)")
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", low=1)
            if data.stacked is None:
                raise ValueError(
                    "batch_size needs sequences of one length ((S, T, D) input). Got a list of "
                    f"sequences of lengths {sorted({s.shape[0] for s in data.seqs})} instead."
                )
        self._begin_fit(seed, data_info)
        if init == "sfa":
            try:
                self.init_from_sfa(data.seqs if data.layout != "2d" else data.seqs[0])
            except ValueError as e:
                raise ValueError(
                    f"init='sfa' needs closed-form SFA on x, which failed: {e} Use "
                    "init='current' to start from the current parameters instead."
                ) from e
        n_steps = data.n_steps
        svi = pyro.infer.SVI(
            self.model, self.guide, pyro.optim.Adam({"lr": lr}), pyro.infer.Trace_ELBO()
        )
        history = FitHistory(
            method="svi",
            info={
                "num_steps": num_steps,
                "lr": lr,
                "init": init,
                "loss": "negative exact log-likelihood per time step",
            },
        )
        stacked = data.stacked
        n_seq = len(data.seqs)

        def step_loss(step, idx):
            if idx is not None:
                return svi.step(stacked[idx], num_data=n_seq) / n_steps
            if stacked is not None:
                return svi.step(stacked) / n_steps
            return svi.step(data.seqs) / n_steps

        return self._train(step_loss, history, n=n_seq, batch_size=batch_size,
                           num_steps=num_steps, lr=lr, tol=tol, progress=progress,
                           callback=callback, device=None if stacked is None else stacked.device)

    # -- protocol verbs ------------------------------------------------------------------------
    def _filter(self, data: _Sequences, smooth: bool):
        noise_var = self.noise_scale.detach() ** 2
        args = (self.weight.detach(), self.loc.detach(), self.lam.detach(), noise_var)
        if data.stacked is not None:
            logp, means = _kalman(data.stacked, *args, smooth=smooth)
            return list(logp.unbind(0)), None if means is None else list(means.unbind(0))
        out = [_kalman(s.unsqueeze(0), *args, smooth=smooth) for s in data.seqs]
        logps = [lp[0] for lp, _ in out]
        return logps, None if not smooth else [m[0] for _, m in out]

    def log_likelihood(self, x, per: str = "step") -> LogLikelihood:
        r"""Exact log-likelihood by the Kalman filter.

        Parameters
        ----------
        x : Tensor ``(T, D)`` or ``(S, T, D)``, or list of ``(T_i, D)`` tensors
        per : {"step", "sequence"}
            ``"step"`` (default): one value per time step, the conditional log-density
            :math:`\log p(x_t \mid x_{<t})` from the filter's one-step predictions (shape ``(T,)``
            for one sequence, all sequences concatenated otherwise); they sum exactly to the
            log-likelihood of the sequences. ``"sequence"``: one :math:`\log p(x^{(i)}_{1:T_i})`
            per sequence. Cost :math:`O(T (D^3 + K^3))` per sequence length.

        Returns
        -------
        LogLikelihood
            kind ``"exact"``.
        """
        per = check_choice(per, "per", ("step", "sequence"))
        data = self._sequences(x)
        with torch.no_grad():
            steps, _ = self._filter(data, smooth=False)
        return _ll_result(steps, per)

    def transform(self, x):
        r"""Posterior mean :math:`\mathbb{E}[h_t \mid x_{1:T}]` (Kalman/RTS smoother), slowest
        latent (largest :math:`\lambda_k`) first.

        Returns ``(T, K)`` for ``(T, D)`` input, ``(S, T, K)`` for ``(S, T, D)`` and a list for a
        list.
        """
        data = self._sequences(x)
        with torch.no_grad():
            _, means = self._filter(data, smooth=True)
        order = self._order()
        return data.regroup([m[:, order] for m in means])

    def sample(self, n: int) -> torch.Tensor:
        """Draw one sequence of length ``n``, shape ``(n, D)`` (``GaussianHMM.sample``)."""
        n = self._check_n(n)
        with torch.no_grad():
            return self.hmm(duration=n).sample()
