r"""Log-normalizer strategies for energy-based distributions.

An energy-based distribution (:class:`~pyrogen.distributions.EnergyBasedDistribution`) defines an
unnormalized density :math:`\tilde p(x) = e^{-F(x)}` (the negative energy, or the negative free
energy when hidden units are summed out analytically) and needs

.. math::

    \log p(x) = -F(x) - \log Z, \qquad Z = \sum_x e^{-F(x)} \quad (\text{or } \int).

A *normalizer* is a callable ``normalizer(dist, value=None) -> LogZEstimate`` that supplies
:math:`\log Z` **and its gradient**. The value and the gradient are produced separately:

==========  ============================================  =========================================
normalizer  value of :math:`\log Z`                       gradient of :math:`\log Z`
==========  ============================================  =========================================
``Exact``   exact (enumeration of the smaller binary      exact (autograd through the enumeration)
            layer)
``AIS``     AIS estimate (Neal 2001) [1]_; unbiased for   self-normalized expectation of
            :math:`Z`, not :math:`\log Z`                 :math:`-\nabla F` over the final
                                                          AIS particles
``PCD``     latest estimate of ``estimator`` (default     :math:`\mathbb{E}[-\nabla F]` over
            AIS), refreshed every ``refresh_every``       persistent Gibbs chains [3]_
            calls, flagged *stale* in between
``CD``      as ``PCD``                                    :math:`\mathbb{E}[-\nabla F]` over
                                                          ``num_steps`` Gibbs steps started at the
                                                          data (CD-k) [4]_
==========  ============================================  =========================================

The gradient trick. Since :math:`\nabla_\theta \log Z = \mathbb{E}_{p}[-\nabla_\theta F(x)]`,
a normalizer that has (approximate) model samples :math:`x^{(1..S)}` with weights
:math:`w_s` returns

.. math::

    \log Z \;\leftarrow\; \underbrace{\widehat{\log Z}}_{\text{detached value}} + \big(s -
    \operatorname{stop\_grad}(s)\big), \qquad s = \sum_s w_s\,\big(-F_\theta(
    \operatorname{stop\_grad}(x^{(s)}))\big),

whose value is the estimate and whose gradient is the (weighted) model expectation of
:math:`-\nabla F` (for ``AIS`` on an RBM the samples are the final particles of the base-rate
path of Salakhutdinov & Murray [2]_). With it, ``Trace_ELBO`` on
``pyro.sample("x", RBM(..., normalizer=PCD()), obs=x)`` computes exactly the PCD (or CD-k)
learning rule of book §18.2 and §20.2: positive phase from the data term :math:`-F(x)`,
negative phase from :math:`s`.

References
----------
.. [1] R. M. Neal, "Annealed importance sampling", Statistics and Computing 11 (2001).
.. [2] R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep belief networks",
   ICML 2008.
.. [3] T. Tieleman, "Training restricted Boltzmann machines using approximations to the
   likelihood gradient", ICML 2008.
.. [4] G. E. Hinton, "Training products of experts by minimizing contrastive divergence",
   Neural Computation 14 (2002).
"""

from __future__ import annotations

import torch

from ._validation import check_int
from .distributions.log_normalizer import (
    ESTIMATE_KINDS,
    EXACT_MAX_UNITS,
    Exact,
    ExactLimitError,
    LogZEstimate,
    Normalizer,
    _surrogate,
)
from .infer.annealing import defaults as _defaults
from .infer.annealing.schedules import check_betas

__all__ = [
    "LogZEstimate",
    "Normalizer",
    "Exact",
    "AIS",
    "SMC",
    "PCD",
    "CD",
    "EXACT_MAX_UNITS",
    "ExactLimitError",
    "ESTIMATE_KINDS",
]


class AIS(Normalizer):
    r"""Annealed importance sampling estimate of :math:`\log Z` (Neal 2001).

    Builds ``dist.annealing_path(base=base, data=data)`` (for an RBM the base-rate path of
    Salakhutdinov & Murray 2008 with visible biases fitted to ``data``; for any other
    energy-based distribution a geometric path from a factorial base) and calls
    :func:`pyrogen.infer.ais.ais` with ``num_chains`` independent chains and ``num_betas``
    temperatures (the Salakhutdinov & Murray-shaped schedule of
    :func:`pyrogen.infer.ais.schedule` unless ``betas`` is given).

    The mean importance weight :math:`\hat Z = \frac1S \sum_s w_s` is **unbiased for** :math:`Z`,
    **not** for :math:`\log Z`: by Jensen's inequality :math:`\mathbb{E}[\log \hat Z] \le \log Z`,
    so :math:`\log p(x) = -F(x) - \log \hat Z` over-estimates the log-likelihood on average (a
    stochastic upper bound). ``stderr`` is the delta-method standard error of
    :math:`\log \hat Z`; ``ess`` the effective sample size of the weights. A small ESS
    (a few out of ``num_chains``) means the standard error itself is unreliable: add
    temperatures.

    Gradient: the self-normalized expectation :math:`\sum_s \bar w_s (-\nabla F(x_s))` over the
    final particles (a consistent but biased estimate of :math:`\nabla \log Z`).

    Parameters
    ----------
    num_chains : int, optional
        Independent AIS runs (default
        :data:`pyrogen.infer.annealing.defaults.DEFAULT_NUM_CHAINS`).
    num_betas : int
        Number of intermediate temperatures (default
        :data:`pyrogen.infer.ais.DEFAULT_NUM_BETAS` = 10000); ignored when ``betas`` is given.
        Measured against exact log Z on six 784-visible MNIST RBMs (15-22 hidden units,
        ``benchmarks/bench_ais.py``): every error within 3 reported standard errors, within
        0.1 nats on the CD-1-trained models, but only in 1-2 of 5 runs on PCD-trained ones
        (standard errors 0.13-0.19); 300 temperatures are biased low by 0.5-1 nats there,
        whatever the number of chains. See ``docs/models/ais.rst``.
    betas : torch.Tensor, optional
        Increasing schedule from 0 to 1.
    data : torch.Tensor, optional
        Data used to fit the base distribution (base rates of the visible units).
    base : optional
        An explicit base passed to ``dist.annealing_path``.
    seed : int, optional
        When given, every call uses the same chain-block random numbers
        (:class:`pyrogen._random.ChainRNG` seeded with it; common random numbers: the estimate
        becomes a deterministic function of the parameters, which is what an MCMC over
        parameters needs). Otherwise a seed is drawn from the global torch RNG at each call.
    """

    def __init__(
        self,
        num_chains: int | None = None,
        num_betas: int | None = None,
        *,
        betas: torch.Tensor | None = None,
        data: torch.Tensor | None = None,
        base=None,
        seed: int | None = None,
    ):
        if num_chains is None:
            num_chains = _defaults.DEFAULT_NUM_CHAINS
        self.num_chains = check_int(num_chains, "num_chains", low=2)
        if num_betas is None:
            num_betas = _defaults.DEFAULT_NUM_BETAS
        self.num_betas = check_int(num_betas, "num_betas", low=2)
        if betas is not None:
            betas = torch.tensor(check_betas(betas), dtype=torch.float64)
        self.betas = betas
        self.data = data
        self.base = base
        self.seed = None if seed is None else check_int(seed, "seed", low=0)
        #: the last :class:`LogZEstimate` computed
        self.last: LogZEstimate | None = None

    def _repr_args(self):
        return {"num_chains": self.num_chains, "num_betas": self.num_betas, "seed": self.seed}

    def run(self, dist):
        """Run AIS on ``dist`` (no gradient); returns ``pyrogen.infer.ais.AISResult``."""
        from .infer.ais import ais

        schedule = self.betas if self.betas is not None else self.num_betas
        with torch.no_grad():
            path = dist.annealing_path(base=self.base, data=self.data)
            return ais(path, schedule, self.num_chains, seed=self.seed)

    def reverse(self, dist, value: torch.Tensor, num_chains: int = 10):
        r"""RAISE (Burda, Grosse & Salakhutdinov 2015) on the same path, from data ``value``.

        Returns :class:`pyrogen.infer.ais.RAISEResult` whose ``log_prob`` (shape
        ``(n, *param_batch_shape)``) is a stochastic *lower* bound on the annealing model's
        :math:`\log p(x)`: the conservative counterpart of
        ``dist.unnormalized_log_prob(x) - AIS log Z`` (an upper bound in expectation).
        ``value`` has shape ``(n, *param_batch_shape, *event_shape)``.
        """
        from .infer.ais import reverse_ais

        num_chains = check_int(num_chains, "num_chains", low=1)
        schedule = self.betas if self.betas is not None else self.num_betas
        with torch.no_grad():
            path = dist.annealing_path(base=self.base, data=self.data)
            value = torch.as_tensor(value, dtype=dist.dtype, device=dist.device)
            return reverse_ais(path, value, schedule, num_chains, seed=self.seed)

    def __call__(self, dist, value=None) -> LogZEstimate:
        res = self.run(dist)
        weights = torch.softmax(res.log_weights.detach(), dim=0)
        particles = res.samples.detach()
        # paths whose state is not the event (a DBM's even layers) offer their own score
        score = getattr(dist, "annealing_state_log_prob", None) or dist.unnormalized_log_prob
        s = (weights * score(particles)).sum(0)
        est = LogZEstimate(
            log_z=_surrogate(res.log_z.to(s.dtype), s),
            kind=self.kind,
            stderr=res.log_z_stderr.detach(),
            ess=res.ess.detach(),
            log_weights=res.log_weights.detach(),
            info={"num_chains": self.num_chains, "num_betas": int(res.num_betas)},
        )
        self.last = est
        return est

    #: the kind of the estimates (``LogZEstimate.kind``)
    kind = "ais_estimate"


class SMC(AIS):
    r"""Sequential Monte Carlo estimate of :math:`\log Z` (:func:`pyrogen.infer.annealing.smc`).

    The same path and gradient as :class:`AIS`, with resampling when the ESS falls below
    ``resample_threshold * num_chains`` and, unless ``betas`` is given, the adaptive schedule
    (next temperature for a conditional ESS of ``target_cess * num_chains``). The estimate of
    :math:`Z` is unbiased for a fixed schedule and asymptotically unbiased (bias
    :math:`O(1/M)`) with the adaptive one; ``stderr`` is the genealogy (Eve-index) estimate,
    ``kind`` is ``"smc_estimate"``.

    Parameters
    ----------
    num_chains : int, optional
        Particles (default :data:`pyrogen.infer.annealing.defaults.DEFAULT_NUM_CHAINS`).
    betas : torch.Tensor, optional
        A fixed schedule (default: adaptive).
    target_cess, resample_threshold, num_moves : optional
        See :func:`pyrogen.infer.annealing.smc` (defaults in
        :mod:`pyrogen.infer.annealing.defaults`).
    data, base, seed :
        As for :class:`AIS`.
    """

    kind = "smc_estimate"

    def __init__(
        self,
        num_chains: int | None = None,
        *,
        betas: torch.Tensor | None = None,
        target_cess: float | None = None,
        resample_threshold: float | None = None,
        num_moves: int | None = None,
        data: torch.Tensor | None = None,
        base=None,
        seed: int | None = None,
    ):
        super().__init__(num_chains, betas=betas, data=data, base=base, seed=seed)
        self.target_cess = target_cess
        self.resample_threshold = resample_threshold
        self.num_moves = num_moves

    def _repr_args(self):
        return {"num_chains": self.num_chains, "seed": self.seed}

    def run(self, dist):
        """Run SMC on ``dist`` (no gradient); returns ``pyrogen.infer.annealing.SMCResult``."""
        from .infer.annealing import smc

        with torch.no_grad():
            path = dist.annealing_path(base=self.base, data=self.data)
            return smc(
                path,
                self.betas,
                self.num_chains,
                target_cess=self.target_cess,
                resample_threshold=self.resample_threshold,
                num_moves=self.num_moves,
                seed=self.seed,
            )


#: refresh period (calls) of PCD / CD when ``refresh_every=None`` and no trainer schedules it
DEFAULT_REFRESH_EVERY = 100


class _SampleBasedNormalizer(Normalizer):
    """Shared part of PCD and CD: gradient from chains, value from a refreshed estimator.

    ``refresh_every=None`` leaves the refresh schedule to whoever drives the training: a
    trainer (``BernoulliRBM.fit``) may take it over (:meth:`schedule_refreshes`, then
    :meth:`request_refresh` when it wants a fresh value); otherwise the value is refreshed
    every :data:`DEFAULT_REFRESH_EVERY` calls, as with ``refresh_every=100``. An integer
    ``refresh_every`` is the normalizer's own schedule and is always kept.
    """

    # class-level defaults (normalizers pickled before these attributes existed still load)
    _driven = False
    _refresh_requested = False

    def __init__(self, num_steps, estimator, refresh_every, fused=True):
        self.num_steps = check_int(num_steps, "num_steps", low=1)
        if not isinstance(fused, bool):
            raise TypeError(f"fused must be a bool. Got {type(fused).__name__} instead.")
        self.fused = fused
        if estimator is not None and not isinstance(estimator, (Exact, AIS)):  # SMC is an AIS
            raise TypeError(
                f"estimator must be an Exact() or AIS(...) normalizer or None. Got "
                f"{type(estimator).__name__} instead."
            )
        self.estimator = estimator
        self.refresh_every = (
            None if refresh_every is None else check_int(refresh_every, "refresh_every", low=1)
        )
        self.calls = 0
        self._value: LogZEstimate | None = None

    def _default_estimator(self, dist):
        units = getattr(dist, "enumeration_units", None)
        if units is not None and units <= 16:
            return Exact()
        return AIS(num_chains=32, num_betas=300)

    def refresh(self, dist) -> LogZEstimate:
        """Recompute the value of :math:`\\log Z` with ``estimator`` now (no gradient)."""
        est = self.estimator if self.estimator is not None else self._default_estimator(dist)
        with torch.no_grad():
            v = est(dist)
        self._value = LogZEstimate(
            log_z=v.log_z.detach(),
            kind=v.kind,
            stderr=v.stderr,
            ess=v.ess,
            log_weights=v.log_weights,
            info={**v.info, "refreshed_at_call": self.calls},
        )
        return self._value

    def request_refresh(self) -> None:
        """Refresh the value at the next call (a trainer's own schedule)."""
        self._refresh_requested = True

    def schedule_refreshes(self, driven: bool) -> None:
        """``driven=True``: a trainer's schedule replaces the call count; only
        :meth:`request_refresh` (and a missing or mis-shaped value) then triggers a refresh.
        ``False`` restores the call-count schedule."""
        self._driven = bool(driven)

    def _value_for(self, dist, shape) -> LogZEstimate:
        every = self.refresh_every or DEFAULT_REFRESH_EVERY
        due = (
            self._value is None
            or self._refresh_requested
            or (not self._driven and self.calls % every == 0)
        )
        if not due and tuple(self._value.log_z.shape) != tuple(shape):
            due = True
        if due:
            self._refresh_requested = False
            self.refresh(dist)
            return self._value
        v = self._value
        return LogZEstimate(
            log_z=v.log_z,
            kind="stale_" + v.kind,
            stderr=v.stderr,
            ess=v.ess,
            log_weights=v.log_weights,
            stale=True,
            info={**v.info, "calls_since_refresh": self.calls - v.info["refreshed_at_call"]},
        )

    def _estimate(self, dist, chains) -> LogZEstimate:
        return self.estimate_from_score(
            dist, dist.unnormalized_log_prob(chains.detach()).mean(0)
        )

    def estimate_from_score(self, dist, s: torch.Tensor, info: dict | None = None) -> LogZEstimate:
        """The gradient trick for a given model score: value of log Z (refreshed on schedule)
        with the gradient of ``s``, the mean unnormalized log-density of detached model samples.

        Distributions whose chains are not events of the distribution (a DBM's chains run over
        all layers) compute ``s`` themselves and call this.
        """
        v = self._value_for(dist, s.shape)
        self.calls += 1
        return LogZEstimate(
            log_z=_surrogate(v.log_z.to(s.dtype).expand(s.shape), s),
            kind=v.kind,
            stderr=v.stderr,
            ess=v.ess,
            log_weights=v.log_weights,
            stale=v.stale,
            info={**v.info, **(info or {})},
        )


class PCD(_SampleBasedNormalizer):
    r"""Persistent contrastive divergence (stochastic maximum likelihood; Tieleman 2008).

    Keeps ``num_chains`` Markov chains across calls. Each call advances them ``num_steps``
    transitions of the distribution's own kernel (block Gibbs for RBMs, eqs. 20.10-20.12) and
    returns a :class:`LogZEstimate` whose gradient is :math:`\frac1S\sum_s -\nabla F(x_s)` over
    the chains. Its *value* is the latest estimate of ``estimator`` (default: :class:`Exact`
    when at most 16 units are enumerated, otherwise ``AIS(num_chains=32, num_betas=300)``),
    recomputed on the first call and every ``refresh_every`` calls; in between it is flagged
    ``stale=True`` with kind ``"stale_..."``, because the parameters have moved since. The
    SVI loss printed during PCD training is therefore only as fresh as the last refresh.

    The chains are reinitialised when the parameter batch or event shape changes.

    Parameters
    ----------
    num_chains : int
        Persistent chains (the "fantasy particles"), default 100.
    num_steps : int
        Transitions per call (PCD-k), default 1.
    estimator : Exact or AIS, optional
        How the value is refreshed.
    refresh_every : int or None
        Refresh the value every this many calls (default 100). ``None``: the trainer decides
        (``BernoulliRBM.fit`` refreshes at convergence-window starts), else every 100 calls.
    init : torch.Tensor, optional
        Initial chain states, shape ``(num_chains, *param_batch_shape, *event_shape)`` or
        broadcastable to it (e.g. a batch of data rows); default: draws from the
        distribution's factorial base (``dist.init_chains``).
    fused : bool
        Let :meth:`pyrogen.distributions.RBM.log_prob` take its fused PCD step (default True;
        unbatched RBMs only): data and chains share one forward and one backward matrix
        product, the same Markov chain as the generic path. Calling the normalizer directly
        (``pcd(dist)``) always takes the generic path.
    reuse_hidden : bool
        Fused step only (default False). Keep :math:`h \sim P(h \mid v)` drawn from the
        forward product the gradient needs anyway as the chains' hidden state, so that the next
        call starts at :math:`v \sim P(v \mid h)`: a PCD-1 step then costs the minimal five
        products instead of six. With fixed parameters this is the same Markov chain; during
        training the :math:`h` half-step uses the previous call's parameters, as in
        scikit-learn's ``BernoulliRBM`` and the classic Theano PCD code. Measured on a 6x3 RBM
        trained by Adam at a constant 0.02-0.05 step, this lag cost about 0.05 nats/example
        of final log-likelihood; with small steps the two agree.
    """

    contrastive = "pcd"

    def __init__(
        self,
        num_chains: int = 100,
        num_steps: int = 1,
        *,
        estimator: Exact | AIS | None = None,
        refresh_every: int | None = 100,
        init: torch.Tensor | None = None,
        fused: bool = True,
        reuse_hidden: bool = False,
    ):
        super().__init__(num_steps, estimator, refresh_every, fused)
        if not isinstance(reuse_hidden, bool):
            raise TypeError(
                f"reuse_hidden must be a bool. Got {type(reuse_hidden).__name__} instead."
            )
        self.reuse_hidden = reuse_hidden
        self.num_chains = check_int(num_chains, "num_chains", low=1)
        self.init = init
        #: the persistent chains, shape ``(num_chains, *param_batch_shape, *event_shape)``
        self.chains: torch.Tensor | None = None
        #: hidden states drawn from ``P(h | chains)`` by the fused RBM step with ``reuse_hidden``
        self.hidden: torch.Tensor | None = None

    def _repr_args(self):
        out = {"num_chains": self.num_chains, "num_steps": self.num_steps}
        if self.reuse_hidden:
            out["reuse_hidden"] = True
        return out

    def reset(self) -> None:
        """Forget the persistent chains and the cached value."""
        self.chains = None
        self.hidden = None
        self._value = None
        self._refresh_requested = False
        self.calls = 0

    def _ensure_chains(self, dist) -> bool:
        """(Re)initialise the chains when missing or of the wrong shape; True when it did."""
        shape = (self.num_chains, *dist.param_batch_shape, *dist.event_shape)
        with torch.no_grad():
            if (
                self.chains is None
                or tuple(self.chains.shape) != shape
                or self.chains.dtype != dist.dtype
            ):
                if self.init is not None:
                    init = torch.as_tensor(self.init, dtype=dist.dtype, device=dist.device)
                    if init.shape[0] != self.num_chains and init.dim() == len(shape):
                        raise ValueError(
                            f"init must have num_chains={self.num_chains} rows. Got shape "
                            f"{tuple(init.shape)} instead."
                        )
                    try:
                        self.chains = init.expand(shape).clone()
                    except RuntimeError as e:
                        raise ValueError(
                            f"init must broadcast to shape {shape} (num_chains, "
                            f"*param_batch_shape, *event_shape). Got shape {tuple(init.shape)} "
                            "instead."
                        ) from e
                else:
                    self.chains = dist.init_chains(self.num_chains)
                self.hidden = None
                return True
        return False

    def _chain_state(self, dist):
        """``(chains, hidden)`` for the fused RBM step; ``hidden`` is None unless
        ``reuse_hidden`` and the previous fused step left one for these chains."""
        fresh = self._ensure_chains(dist)
        if fresh or self.hidden is None or self.hidden.shape[-1] != dist.n_hidden:
            self.hidden = None
        return self.chains, self.hidden

    def _set_chain_state(self, chains, hidden) -> None:
        self.chains, self.hidden = chains, hidden

    def __call__(self, dist, value=None) -> LogZEstimate:
        self._ensure_chains(dist)
        with torch.no_grad():
            self.chains = dist.transition(self.chains, num_steps=self.num_steps).detach()
        self.hidden = None
        return self._estimate(dist, self.chains)


class CD(_SampleBasedNormalizer):
    r"""Contrastive divergence CD-k (Hinton 2002).

    Chains start at the data being scored (``value`` in ``log_prob(value)``) and run
    ``num_steps`` transitions of the distribution's kernel; the gradient of :math:`\log Z` is
    the average :math:`-\nabla F` over the resulting states. CD-k is a biased estimate of the
    likelihood gradient (it does not follow the gradient of any objective, §18.2). Its value is
    the latest ``estimator`` estimate, stale between refreshes (see :class:`PCD`).

    Parameters
    ----------
    num_steps : int
        Gibbs transitions k (default 1).
    estimator : Exact or AIS, optional
        How the value is refreshed (default as for :class:`PCD`).
    refresh_every : int or None
        Refresh the value every this many calls (default 100); ``None`` as for :class:`PCD`.
    fused : bool
        Let :meth:`pyrogen.distributions.RBM.log_prob` take its fused CD step (default True;
        unbatched RBMs only): the data's hidden pre-activation is computed once for the free
        energy and the first Gibbs half-step, and data and chains share one forward and one
        backward product (five products per CD-1 step). Same distribution of the gradient as
        the generic path, which ``cd(dist, value)`` always takes.
    """

    uses_value = True
    contrastive = "cd"

    def __init__(
        self,
        num_steps: int = 1,
        *,
        estimator: Exact | AIS | None = None,
        refresh_every: int | None = 100,
        fused: bool = True,
    ):
        super().__init__(num_steps, estimator, refresh_every, fused)

    def _repr_args(self):
        return {"num_steps": self.num_steps}

    def __call__(self, dist, value=None) -> LogZEstimate:
        if value is None:
            raise ValueError(
                "CD needs the data being scored: call dist.log_prob(x) (value=None given). "
                "For a log Z without data use Exact() or AIS(...)."
            )
        from .distributions.energy import broadcast_shapes as _broadcast

        pb = tuple(dist.param_batch_shape)
        with torch.no_grad():
            v = value.detach().to(dist.dtype)
            # chains = every data row, for every parameter batch element
            target = _broadcast(v.shape, (*pb, *dist.event_shape))
            v = v.expand(target).reshape(-1, *pb, *dist.event_shape)
            chains = dist.transition(v, num_steps=self.num_steps)
        return self._estimate(dist, chains)
