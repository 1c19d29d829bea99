"""Log-likelihood results and estimators, each named for what it is.

A pyrogen number is never "a log-likelihood" without a kind. :class:`LogLikelihood` carries the
per-example values, their kind and, for stochastic estimates, their standard errors:

========================  ====================================================================
kind                      meaning
========================  ====================================================================
``exact``                 log p(x) computed exactly (closed form or enumeration)
``ais_estimate``          log p(x) = -F(x) - log Z_AIS; Z_AIS unbiased for Z, so log p is a
                          stochastic *upper* bound in expectation (Jensen on -log Z)
``is_estimate``           log of an importance-sampled estimate of p(x); unbiased for p(x), so
                          a stochastic *lower* bound on log p(x) in expectation
``ais_marginal``          log of an AIS estimate of p(x) annealed from the prior p(z) to the
                          posterior (decoder models); unbiased for p(x), so a stochastic
                          *lower* bound (the opposite side from ``ais_estimate``)
``reverse_ais_upper``     minus the log of a reverse-AIS estimate of 1/p(x) started from an
                          exact posterior draw (BDMC, simulated data only): stochastic *upper*
                          bound
``iwae_bound``            importance-weighted bound with k particles (lower bound)
``elbo``                  evidence lower bound (lower bound)
``pseudo_likelihood``     ``sum_i log p(x_i | x_{-i})``; not a likelihood at all
``ais_bound``             (DBN) a stochastic lower bound of log p~(x) over the lower layers
                          (variational or importance-sampled, recognition network as
                          proposal) minus log Z_AIS of the top RBM: neither side in general
``posterior_predictive``  log (1/S) sum_s p(x | theta_s) over posterior draws theta_s: estimates
                          the log posterior predictive density log p(x | training data) per
                          example; log of an unbiased mean, so a stochastic *lower* bound in
                          expectation
``parzen_unreliable``     log of a Parzen-window (kernel) density fitted to model samples
                          (:func:`parzen_log_likelihood`); **unreliable**, not a likelihood and
                          no bound: its bias depends on the bandwidth and the dimension
========================  ====================================================================

This module does not import :mod:`pyrogen.models`: its estimators take callables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ._validation import check_choice, check_float, check_int

__all__ = ["LogLikelihood", "KINDS", "LogMeanExp", "LogMeanExpAccumulator", "log_mean_exp",
           "parzen_log_likelihood"]

#: kind -> (description, which side it bounds in expectation or None)
KINDS: dict[str, tuple[str, str | None]] = {
    "exact": ("exact log-likelihood", None),
    "ais_estimate": ("AIS estimate of the log-likelihood (stochastic upper bound)", "upper"),
    "is_estimate": ("importance-sampled log-likelihood (stochastic lower bound)", "lower"),
    "ais_marginal": (
        "AIS estimate of p(x) from prior to posterior (stochastic lower bound)",
        "lower",
    ),
    "reverse_ais_upper": (
        "reverse AIS from an exact posterior draw, simulated data (stochastic upper bound)",
        "upper",
    ),
    "iwae_bound": ("importance-weighted lower bound (IWAE)", "lower"),
    "elbo": ("evidence lower bound (ELBO)", "lower"),
    "pseudo_likelihood": ("log pseudo-likelihood (not a likelihood)", None),
    "ais_mean_field": (
        "mean-field lower bound of log p~(x) minus an AIS estimate of log Z (Salakhutdinov & "
        "Hinton 2009; a lower bound only if log Z is not underestimated: neither side in general)",
        None,
    ),
    "ais_bound": (
        "stochastic lower bound of log p~(x) over the lower layers (variational or importance-"
        "sampled) minus an AIS estimate of log Z (Salakhutdinov & Murray 2008, DBN; a lower "
        "bound only if log Z is not underestimated: neither side in general)",
        None,
    ),
    "posterior_predictive": (
        "log posterior predictive density over posterior draws (stochastic lower bound)",
        "lower",
    ),
    "parzen_unreliable": (
        "Parzen-window estimate from model samples (unreliable: not a likelihood, no bound; "
        "Theis et al. 2016)",
        None,
    ),
}


@dataclass(frozen=True)
class LogLikelihood:
    """Per-example log-likelihood values with their kind and standard errors.

    Attributes
    ----------
    values : torch.Tensor, shape ``(n,)``
        Per-example values in nats.
    kind : str
        One of :data:`KINDS` (``"exact"``, ``"ais_estimate"``, ``"is_estimate"``, ...).
    stderr : torch.Tensor or None, shape ``(n,)``
        Per-example Monte Carlo standard error (``None`` for exact values).
    shared_stderr : float or None
        Standard error of a component shared by all examples (e.g. of the AIS estimate of
        log Z); it does not shrink with ``n`` and is added in quadrature by :meth:`mean_stderr`.
    info : dict
        Anything else the estimator reports (number of particles, ESS, the data identity...).
    """

    values: torch.Tensor
    kind: str
    stderr: torch.Tensor | None = None
    shared_stderr: float | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {tuple(KINDS)}. Got {self.kind!r} instead.")
        if self.values.dim() != 1:
            raise ValueError(
                f"values must have shape (n,). Got shape {tuple(self.values.shape)} instead."
            )

    # -- tensor-like conveniences -------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self.values.shape

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def bound(self) -> str | None:
        """``"lower"``, ``"upper"`` or ``None``: which side the estimate bounds in expectation."""
        return KINDS[self.kind][1]

    @property
    def description(self) -> str:
        return KINDS[self.kind][0]

    def mean(self) -> float:
        """Mean over examples (nats per example)."""
        return float(self.values.mean())

    def mean_stderr(self) -> float | None:
        """Standard error of :meth:`mean` from the Monte Carlo noise of the estimator.

        This is the estimator's noise (not the sampling variability of the data set):
        ``sqrt(sum_i se_i^2) / n`` combined in quadrature with ``shared_stderr``. ``None`` for
        exact values.
        """
        if self.stderr is None and self.shared_stderr is None:
            return None
        var = 0.0
        if self.stderr is not None:
            var += float((self.stderr.double() ** 2).sum()) / len(self) ** 2
        if self.shared_stderr is not None:
            var += self.shared_stderr**2
        return math.sqrt(var)

    def to_dict(self) -> dict:
        """JSON-friendly summary (no per-example values)."""
        return {
            "kind": self.kind,
            "description": self.description,
            "bound": self.bound,
            "mean_nats": self.mean(),
            "mean_stderr": self.mean_stderr(),
            "n": len(self),
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool))},
        }

    def __str__(self) -> str:
        se = self.mean_stderr()
        se_txt = "" if se is None else f" ± {se:.3f}"
        return f"{self.mean():.3f}{se_txt} nats/example [{self.kind}]"

    def __repr__(self) -> str:
        return f"LogLikelihood(kind={self.kind!r}, mean={self.mean():.4f}, n={len(self)})"


# --------------------------------------------------------------------------------------------
# The one log-mean-exp with its standard error (every estimator in pyrogen uses this)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogMeanExp:
    r"""Result of :func:`log_mean_exp`: the estimate, its standard error and the ESS.

    Attributes
    ----------
    value : Tensor
        :math:`\log \frac1K \sum_k e^{\ell_k}` (float64).
    stderr : Tensor
        Delta-method standard error :math:`\hat\sigma_w / (\sqrt K \bar w)` of ``value``
        (``inf`` when ``K = 1``).
    ess : Tensor
        Effective sample size :math:`(\sum_k w_k)^2 / \sum_k w_k^2` in ``[1, K]``.
    """

    value: torch.Tensor
    stderr: torch.Tensor
    ess: torch.Tensor


class LogMeanExpAccumulator:
    r"""Streaming :func:`log_mean_exp` over chunks of log-weights along dim 0.

    Keeps :math:`\log \sum_k w_k` and :math:`\log \sum_k w_k^2` (float64), so memory does not grow
    with the number of weights. ``add(log_w)`` takes a chunk of shape ``(k, *batch)``;
    ``result()`` returns the :class:`LogMeanExp` of everything added.
    """

    def __init__(self):
        self.count = 0
        self._lse1: torch.Tensor | None = None
        self._lse2: torch.Tensor | None = None

    def add(self, log_w: torch.Tensor) -> None:
        if not torch.is_tensor(log_w) or log_w.dim() < 1 or log_w.shape[0] < 1:
            raise ValueError(
                "log_w must be a tensor with at least one entry along dim 0. Got "
                f"{type(log_w).__name__} of shape {tuple(getattr(log_w, 'shape', ()))} instead."
            )
        lw = log_w.detach().double()
        if torch.isnan(lw).any():
            raise FloatingPointError("log_w contains NaN; the estimate would be NaN.")
        s1 = torch.logsumexp(lw, 0)
        s2 = torch.logsumexp(2.0 * lw, 0)
        self._lse1 = s1 if self._lse1 is None else torch.logaddexp(self._lse1, s1)
        self._lse2 = s2 if self._lse2 is None else torch.logaddexp(self._lse2, s2)
        self.count += lw.shape[0]

    def result(self) -> LogMeanExp:
        if self._lse1 is None:
            raise ValueError("nothing was added; add(log_w) at least once before result().")
        k = float(self.count)
        lse1, lse2 = self._lse1, self._lse2
        value = lse1 - math.log(k)
        ess = torch.exp(2.0 * lse1 - lse2)
        if self.count > 1:
            # squared coefficient of variation of the weights, unbiased: K/(K-1) (K Σw²/(Σw)² - 1)
            rel = torch.expm1(lse2 + math.log(k) - 2.0 * lse1).clamp_min(0.0) * k / (k - 1.0)
            stderr = torch.sqrt(rel / k)
        else:
            stderr = torch.full_like(value, math.inf)
        # all weights zero (every log-weight -inf): the estimate is -inf, not NaN
        dead = torch.isneginf(lse1)
        if dead.any():
            stderr = torch.where(dead, torch.full_like(stderr, math.inf), stderr)
            ess = torch.where(dead, torch.zeros_like(ess), ess)
        return LogMeanExp(value=value, stderr=stderr, ess=ess)


def log_mean_exp(log_w: torch.Tensor, dim: int = 0) -> LogMeanExp:
    r""":math:`\log \frac1K \sum_k e^{\ell_k}` along ``dim`` with its standard error and ESS.

    .. math::

        \hat\mu = \log \frac1K \sum_{k=1}^K w_k, \qquad
        \operatorname{se}(\hat\mu) \approx \frac{\hat\sigma_w}{\sqrt K\, \bar w}, \qquad
        \mathrm{ESS} = \frac{(\sum_k w_k)^2}{\sum_k w_k^2},

    with :math:`w_k = e^{\ell_k}`, :math:`\hat\sigma_w` the unbiased sample standard deviation
    (delta method, Owen 2013, ch. 9). Computed in float64 from :math:`\log\sum w` and
    :math:`\log \sum w^2`, stable for any scale of ``log_w``. This is the one implementation
    every importance-sampling and AIS estimate in pyrogen uses; the delta-method error is itself
    an estimate and is optimistic when the weights are heavy-tailed (check ``ess``).

    Parameters
    ----------
    log_w : Tensor
        Log-weights; the mean is taken along ``dim``.
    dim : int

    Returns
    -------
    LogMeanExp
        ``value``, ``stderr``, ``ess``, each with ``dim`` removed (float64).
    """
    if not torch.is_tensor(log_w):
        raise TypeError(f"log_w must be a torch.Tensor. Got {type(log_w).__name__} instead.")
    acc = LogMeanExpAccumulator()
    acc.add(log_w.movedim(dim, 0))
    return acc.result()


def parzen_log_likelihood(samples: torch.Tensor, x: torch.Tensor, *, kernel: str = "gaussian",
                          bandwidth: float = 0.2, chunk_size: int = 1024) -> LogLikelihood:
    r"""Parzen-window estimate (kind ``"parzen_unreliable"``): the log-density of ``x`` under a
    kernel density fitted to model samples.

    .. math::

        \log \hat p(x) = \log \frac1S\sum_{s=1}^S k(x\mid x^{(s)}),\qquad
        k = \mathcal N(x^{(s)}, \sigma^2 I)\ (\text{"gaussian"}),\quad
        k = \prod_d \epsilon^{[x_d\ne x^{(s)}_d]}(1-\epsilon)^{[x_d = x^{(s)}_d]}
        \ (\text{"bernoulli"}).

    The only evaluation for models without a tractable or estimable likelihood (Markov-chain
    generators, §20.11-20.12), and an **unreliable** one: it is no bound on the model's
    :math:`\log p(x)`, it depends strongly on ``bandwidth`` (choose it on validation data, never
    on the test set) and converges very slowly in the number of samples in high dimension
    (Theis, van den Oord & Bethge 2016, *A note on the evaluation of generative models*). The
    standard error (:func:`log_mean_exp`) is only the Monte Carlo noise over kernel centres.

    Parameters
    ----------
    samples : Tensor, shape ``(S, D)``
        Model samples (kernel centres); binary for ``kernel="bernoulli"``.
    x : Tensor, shape ``(n, D)``
        Points to evaluate.
    kernel : {"gaussian", "bernoulli"}
    bandwidth : float
        Gaussian standard deviation :math:`\sigma > 0`, or bit-flip probability
        :math:`\epsilon \in (0, 0.5)`.
    chunk_size : int
        Samples per chunk (memory :math:`O(\text{chunk} \cdot n)`).

    Returns
    -------
    LogLikelihood
        ``values`` shape ``(n,)``, kind ``"parzen_unreliable"``, per-example ``stderr``.
    """
    for name, t in (("samples", samples), ("x", x)):
        if not torch.is_tensor(t):
            raise TypeError(f"{name} must be a torch.Tensor. Got {type(t).__name__} instead.")
        if t.dim() != 2 or not torch.isfinite(t).all():
            raise ValueError(f"{name} must be a finite matrix (n, D). Got shape "
                             f"{tuple(t.shape)} (or non-finite values) instead.")
    if samples.shape[1] != x.shape[1]:
        raise ValueError(f"samples must have {x.shape[1]} features (as x). Got "
                         f"{samples.shape[1]} instead.")
    kernel = check_choice(kernel, "kernel", ("gaussian", "bernoulli"))
    hi = 0.5 if kernel == "bernoulli" else None
    bandwidth = check_float(bandwidth, "bandwidth", 0.0, hi, "oo")
    chunk_size = check_int(chunk_size, "chunk_size", low=1)
    s, xd = samples.double(), x.double()
    d = xd.shape[1]
    if kernel == "bernoulli":
        for name, t in (("samples", s), ("x", xd)):
            if ((t != 0) & (t != 1)).any():
                raise ValueError(f"{name} must be binary for kernel='bernoulli'. Got "
                                 "non-binary values instead.")
    acc = LogMeanExpAccumulator()
    for c in s.split(chunk_size):
        if kernel == "bernoulli":
            agree = c @ xd.T + (1 - c) @ (1 - xd).T
            lk = agree * math.log1p(-bandwidth) + (d - agree) * math.log(bandwidth)
        else:
            sq = torch.cdist(c, xd) ** 2
            lk = -0.5 * sq / bandwidth**2 - 0.5 * d * math.log(2 * math.pi * bandwidth**2)
        acc.add(lk)
    r = acc.result()
    return LogLikelihood(r.value, "parzen_unreliable", r.stderr, info={
        "num_samples": int(s.shape[0]), "kernel": kernel, "bandwidth": bandwidth,
        "ess_min": float(r.ess.min())})
