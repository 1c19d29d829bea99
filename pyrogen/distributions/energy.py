r"""The base class of energy-based distributions.

An energy-based distribution has an unnormalized density :math:`\tilde p(x) = e^{-F(x)}` over its
event (the visible vector): :math:`F` is the energy :math:`E(x)` of a fully visible model, or the
free energy :math:`F(v) = -\log \sum_h e^{-E(v,h)}` when hidden units are summed out analytically.
Its normalized log-density is

.. math:: \log p(x) = -F(x) - \log Z, \qquad Z = \sum_x e^{-F(x)},

where :math:`\log Z` (value *and* gradient) comes from a *normalizer*
(:mod:`pyrogen.normalizers`): ``Exact()``, ``AIS(...)``, ``PCD(...)`` or ``CD(...)``.

Writing your own. Subclass :class:`EnergyBasedDistribution` (for binary vectors
:class:`BinaryEnergyBasedDistribution`), store the parameters, call ``super().__init__`` with
the parameter batch shape and the event shape, and define

* :meth:`~EnergyBasedDistribution.unnormalized_log_prob` (:math:`-F(x)`, broadcasting over
  leading dimensions),
* :meth:`~EnergyBasedDistribution.transition` (one MCMC step leaving :math:`p` invariant; the
  binary base class provides single-site Gibbs from ``unnormalized_log_prob``),
* :meth:`~EnergyBasedDistribution.expand_params` is not needed: ``expand`` shares the
  parameters and only changes ``batch_shape``.

You then get ``log_prob`` with any normalizer (``Exact`` for binary events of at most 20 units
through the generic enumeration, ``AIS`` through a geometric annealing path from a factorial
base), ``sample`` (exact by enumeration for small binary events, otherwise MCMC with
``mcmc_steps`` transitions from ``mcmc_init``), and SVI/MCMC integration through Pyro.
See ``docs/models/energy_based.rst`` for a worked example.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import TorchDistribution, constraints

from .._validation import check_int
from .log_normalizer import Exact, LogZEstimate, Normalizer

__all__ = [
    "EnergyBasedDistribution",
    "BinaryEnergyBasedDistribution",
    "enumerate_binary_states",
    "EXACT_SAMPLE_MAX_UNITS",
]

#: default largest number of binary units enumerated by exact sampling (2^16 states)
EXACT_SAMPLE_MAX_UNITS = 16


def broadcast_shapes(*shapes) -> torch.Size:
    """Pure-Python ``torch.broadcast_shapes`` (the torch one is slow on the first calls);
    raises ``ValueError`` when the shapes do not broadcast."""
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for s in shapes:
        for i, n in enumerate(s, ndim - len(s)):
            if n != 1:
                if out[i] != 1 and out[i] != n:
                    raise ValueError(
                        f"shapes {[tuple(t) for t in shapes]} do not broadcast together"
                    )
                out[i] = n
    return torch.Size(out)


def enumerate_binary_states(
    num_units: int, start: int = 0, stop: int | None = None, *, dtype=None, device=None
) -> torch.Tensor:
    """Binary vectors of the integers ``start, ..., stop - 1`` (bit ``i`` = unit ``i``).

    Returns a tensor of shape ``(stop - start, num_units)`` of 0.0/1.0 values.
    """
    stop = 2**num_units if stop is None else stop
    idx = torch.arange(start, stop, device=device)
    bits = torch.arange(num_units, device=device)
    return ((idx.unsqueeze(-1) >> bits) & 1).to(dtype or torch.get_default_dtype())


def chunked_logsumexp(fn, num_units: int, chunk_size: int, *, dtype, device) -> torch.Tensor:
    r""":math:`\operatorname{logsumexp}_{s \in \{0,1\}^k} fn(s)`, over chunks of states.

    ``fn`` maps states of shape ``(C, 1, ..., 1, k)`` (one singleton per parameter batch
    dimension is added by the caller's broadcasting) to values of shape ``(C, *batch)``.
    """
    total = 2**num_units
    parts = []
    for start in range(0, total, chunk_size):
        states = enumerate_binary_states(
            num_units, start, min(total, start + chunk_size), dtype=dtype, device=device
        )
        parts.append(torch.logsumexp(fn(states), dim=0))
    return torch.logsumexp(torch.stack(parts, 0), dim=0)


class EnergyBasedDistribution(TorchDistribution):
    r"""Base class: :math:`\log p(x) = -F(x) - \log Z` with a pluggable normalizer.

    Parameters
    ----------
    param_batch_shape : torch.Size
        Batch shape of the (broadcast) parameters.
    event_shape : torch.Size
        Shape of one draw (the visible vector).
    normalizer : Normalizer, optional
        Supplies :math:`\log Z`; default ``Exact()``.
    mcmc_steps : int
        MCMC transitions used by :meth:`sample` when it cannot enumerate (default 1000).
    mcmc_init : torch.Tensor, optional
        Initial state of those chains, broadcastable to ``sample_shape + batch_shape +
        event_shape``; default: draws from :meth:`init_chains`.
    validate_args : bool, optional
        Keyword-only, as in ``torch.distributions``.

    Attributes
    ----------
    last_log_z : LogZEstimate or None
        The estimate used by the last :meth:`log_prob` call (its ``stderr``, ``ess``, ``kind``).
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(
        self,
        param_batch_shape,
        event_shape,
        *,
        normalizer: Normalizer | None = None,
        mcmc_steps: int = 1000,
        mcmc_init: torch.Tensor | None = None,
        validate_args=None,
    ):
        if normalizer is None:
            normalizer = Exact()
        if not callable(normalizer):
            raise TypeError(
                "normalizer must be a pyrogen.normalizers normalizer (Exact(), AIS(...), "
                f"PCD(...), CD(...)). Got {type(normalizer).__name__} instead."
            )
        self.normalizer = normalizer
        self.mcmc_steps = check_int(mcmc_steps, "mcmc_steps", low=0)
        self.mcmc_init = mcmc_init
        self._param_batch_shape = torch.Size(param_batch_shape)
        self.last_log_z: LogZEstimate | None = None
        super().__init__(
            self._param_batch_shape, torch.Size(event_shape), validate_args=validate_args
        )

    # ------------------------------------------------------------------ to define in subclasses
    def unnormalized_log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`-F(x)`: shape ``broadcast(value.shape[:-event_dim], param_batch_shape)``."""
        raise NotImplementedError

    def transition(self, x: torch.Tensor, num_steps: int = 1, generator=None) -> torch.Tensor:
        """``num_steps`` MCMC transitions leaving this distribution invariant.

        ``x`` has shape ``(*sample, *param_batch_shape, *event_shape)`` (or any shape that
        broadcasts the parameters); the result has the same shape. Runs without gradient.
        ``generator``: a ``torch.Generator`` for the random numbers (default the global one);
        the annealing engine passes its chain-block generators here.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ optional
    @property
    def enumeration_units(self) -> int | None:
        """Number of binary units :class:`~pyrogen.normalizers.Exact` enumerates (None: cannot)."""
        return None

    def enumerate_log_z(self, chunk_size: int = 2**14) -> torch.Tensor:
        """Exact :math:`\\log Z` (shape ``param_batch_shape``), differentiable."""
        raise NotImplementedError(f"{type(self).__name__} cannot enumerate its states")

    def base_distribution(self, data: torch.Tensor | None = None):
        """A tractable factorial distribution over the event (batch ``param_batch_shape``)."""
        raise NotImplementedError(f"{type(self).__name__} defines no factorial base")

    def init_chains(self, num_chains: int) -> torch.Tensor:
        """Initial MCMC states, shape ``(num_chains, *param_batch_shape, *event_shape)``."""
        with torch.no_grad():
            return self.base_distribution().sample((num_chains,))

    def annealing_path(self, base=None, data: torch.Tensor | None = None):
        r"""The AIS path from a tractable base to this distribution.

        Default: :class:`pyrogen.distributions.paths.GeometricPath` (data: this module does
        not import the engine, which consumes the path),
        :math:`f_\beta = p_0^{1-\beta} \tilde p^{\beta}`, from ``base`` (default
        :meth:`base_distribution` fitted to ``data``), with the distribution's
        :meth:`tempered_transition` as kernel when it defines one.
        """
        from .paths import GeometricPath

        base = self.base_distribution(data) if base is None else base
        return GeometricPath(base, self._detached_unnormalized_log_prob, kernel=self._path_kernel())

    def _detached_unnormalized_log_prob(self, x):
        with torch.no_grad():
            return self.unnormalized_log_prob(x)

    def _path_kernel(self):
        return None

    # ------------------------------------------------------------------ shapes and dtype
    @property
    def param_batch_shape(self) -> torch.Size:
        """Batch shape of the parameters (``batch_shape`` may be larger after ``expand``)."""
        return self._param_batch_shape

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def expand(self, batch_shape, _instance=None):
        """Expand the batch shape; parameters and the normalizer are shared, not copied.

        The log-normalizer is still computed once per parameter batch element, so a
        distribution expanded by a ``pyro.plate`` over data costs one :math:`\\log Z`.
        """
        batch_shape = torch.Size(batch_shape)
        try:
            ok = broadcast_shapes(batch_shape, self._param_batch_shape) == batch_shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"batch_shape must be a shape that {tuple(self.batch_shape)} broadcasts to. Got "
                f"{tuple(batch_shape)} instead."
            )
        new = self._get_checked_instance(type(self), _instance)
        new.__dict__.update(self.__dict__)
        new.last_log_z = None
        TorchDistribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    # ------------------------------------------------------------------ log_prob
    def log_normalizer(self, value: torch.Tensor | None = None) -> LogZEstimate:
        """Call the normalizer: a :class:`~pyrogen.normalizers.LogZEstimate` of shape
        ``param_batch_shape`` (``value`` is only used by ``CD``)."""
        est = self.normalizer(self, value=value)
        self.last_log_z = est
        return est

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`-F(x) - \log Z` with :math:`\log Z` from the normalizer.

        Shape ``broadcast(value.shape[:-1], batch_shape)``. With ``Exact`` the value and
        gradient are exact; with ``AIS`` it is an AIS estimate (a stochastic upper bound in
        expectation, see :class:`~pyrogen.normalizers.AIS`); with ``PCD``/``CD`` the value is
        the latest (stale) estimate and the gradient the PCD/CD learning rule.
        """
        if self._validate_args:
            self._validate_sample(value)
        unnorm = self.unnormalized_log_prob(value)
        log_z = self.log_normalizer(value=value).log_z
        out = unnorm - log_z
        nd = len(self.event_shape)
        shape = broadcast_shapes(value.shape[: value.dim() - nd], self.batch_shape)
        return out.expand(shape)

    # ------------------------------------------------------------------ sampling
    def _sample_exact(self, sample_shape: torch.Size) -> torch.Tensor | None:
        """Exact draws (enumeration) or ``None`` when the enumerated side is too large."""
        return None

    def _init_sample_chains(self, shape: torch.Size) -> torch.Tensor:
        if self.mcmc_init is not None:
            init = torch.as_tensor(self.mcmc_init, dtype=self.dtype, device=self.device)
            try:
                return init.expand(shape).clone()
            except RuntimeError as e:
                raise ValueError(
                    f"mcmc_init must broadcast to the sample shape {tuple(shape)}. Got shape "
                    f"{tuple(init.shape)} instead."
                ) from e
        pb, ev = self._param_batch_shape, self.event_shape
        lead = shape[: len(shape) - len(ev) - len(pb)]
        x = self.init_chains(max(math.prod(lead), 1))
        return x.reshape(*lead, *pb, *ev).expand(shape).clone()

    def sample(self, sample_shape=()) -> torch.Tensor:
        """Draws of shape ``sample_shape + batch_shape + event_shape``.

        Exact (by enumeration of the smaller binary side) when that side has at most
        :data:`EXACT_SAMPLE_MAX_UNITS` units; otherwise ``mcmc_steps`` MCMC transitions
        (:meth:`transition`) from ``mcmc_init`` (default: independent draws from the
        factorial base), i.e. *approximate* draws whose quality depends on mixing.
        """
        sample_shape = torch.Size(sample_shape)
        with torch.no_grad():
            exact = self._sample_exact(sample_shape)
            if exact is not None:
                return exact
            shape = self._extended_shape(sample_shape)
            x = self._init_sample_chains(shape)
            if self.mcmc_steps:
                x = self.transition(x, num_steps=self.mcmc_steps)
            return x


class BinaryEnergyBasedDistribution(EnergyBasedDistribution):
    r"""Energy-based distribution over binary vectors :math:`x \in \{0,1\}^n`.

    Subclasses define :meth:`unnormalized_log_prob`; this class provides

    * exact :math:`\log Z` by enumerating all :math:`2^n` states (``Exact`` up to 20 units),
    * exact sampling by enumeration for :math:`n \le 16`,
    * single-site Gibbs sampling (:meth:`transition`) from ``unnormalized_log_prob`` alone:
      :math:`p(x_i = 1 \mid x_{-i}) = \sigma(\log\tilde p(x_{i \leftarrow 1}) -
      \log\tilde p(x_{i \leftarrow 0}))`; cost two energy evaluations per unit per sweep
      (subclasses override it with something faster),
    * a factorial Bernoulli base (:meth:`base_distribution`, fitted to data when given).

    ``dtype`` and ``device`` must be provided by the subclass.
    """

    support = constraints.independent(constraints.boolean, 1)

    @property
    def num_units(self) -> int:
        return int(self.event_shape[-1])

    @property
    def enumeration_units(self) -> int | None:
        return self.num_units

    def enumerate_log_z(self, chunk_size: int = 2**14) -> torch.Tensor:
        pb = len(self._param_batch_shape)

        def fn(states):
            return self.unnormalized_log_prob(states.reshape(states.shape[0], *[1] * pb, -1))

        out = chunked_logsumexp(
            fn, self.num_units, chunk_size, dtype=self.dtype, device=self.device
        )
        return out.expand(self._param_batch_shape)

    def _sample_exact(self, sample_shape):
        n = self.enumeration_units
        if n is None or n > EXACT_SAMPLE_MAX_UNITS:
            return None
        states = enumerate_binary_states(n, dtype=self.dtype, device=self.device)
        pb = len(self._param_batch_shape)
        logits = self.unnormalized_log_prob(states.reshape(-1, *[1] * pb, n))
        logits = logits.expand(states.shape[0], *self._param_batch_shape)
        logits = logits.movedim(0, -1)
        idx = torch.distributions.Categorical(logits=logits).expand(self.batch_shape)
        return self._states_to_sample(idx.sample(sample_shape), states)

    def _states_to_sample(self, idx, states):
        return states[idx]

    def base_distribution(self, data: torch.Tensor | None = None):
        """Factorial Bernoulli over the units: base rates of ``data`` (smoothed, as in
        Salakhutdinov & Murray 2008) or uniform when ``data`` is None."""
        import pyro.distributions as dist

        logits = torch.zeros(
            *self._param_batch_shape, *self.event_shape, dtype=self.dtype, device=self.device
        )
        if data is not None:
            data = torch.as_tensor(data, dtype=self.dtype, device=self.device)
            flat = data.reshape(-1, *self.event_shape)
            p = (flat.sum(0) + 0.5) / (flat.shape[0] + 1.0)
            logits = logits + torch.log(p) - torch.log1p(-p)
        return dist.Bernoulli(logits=logits).to_event(len(self.event_shape))

    def transition(self, x, num_steps: int = 1, generator=None):
        with torch.no_grad():
            x = x.clone()
            for _ in range(num_steps):
                for i in range(self.num_units):
                    x1 = x.clone()
                    x1[..., i] = 1.0
                    x0 = x.clone()
                    x0[..., i] = 0.0
                    logit = self.unnormalized_log_prob(x1) - self.unnormalized_log_prob(x0)
                    x[..., i] = torch.bernoulli(torch.sigmoid(logit), generator=generator)
            return x
