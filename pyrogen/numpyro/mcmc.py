r"""Multi-chain NUTS with NumPyro: :func:`run_nuts`, host-device set-up, sample statistics.

Chain methods (``chain_method=``):

* ``"parallel"``: one chain per JAX device (``jax.pmap``). On CPU JAX exposes a single device
  unless ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is set **before JAX initialises
  its backend** (the first computation, not the import). :func:`setup_host_devices` does that
  (numpyro's ``set_host_device_count``) and tells whether it was still in time;
  :func:`run_nuts` calls it for you and, when there are fewer devices than chains, falls back to
  ``"sequential"`` with a :class:`ParallelChainsWarning` saying how to fix it.
* ``"vectorized"``: all chains in one process as one batched computation (``jax.vmap``); no
  devices needed; each step waits for the slowest chain's tree.
* ``"sequential"``: one chain after the other.

Sufficient statistics (Bayesian FA / PPCA). For :func:`~pyrogen.numpyro.bayesian_fa` and
:func:`~pyrogen.numpyro.bayesian_ppca` with observed ``x`` and the collapsed likelihood,
:func:`run_nuts` (``sufficient_stats="auto"``, the default) summarizes ``x`` once
(:func:`~pyrogen.numpyro.gaussian_sufficient_statistics`, :math:`O(n D^2)`, outside the
compiled code) and NUTS evaluates the potential from the statistics at :math:`O(D^2 K)` per
gradient instead of :math:`O(n D K)`: the same posterior (the log joint is the same number).
The returned ``MCMC`` keeps the per-row model and arguments (``mcmc.sampler.model``, its
``model_kwargs`` have no statistics), so ``numpyro.infer.log_likelihood``, ``Predictive`` and
:func:`pyrogen.diagnostics.to_inference_data` see one ``x`` row per plate entry (pointwise
log-likelihood for LOO). ``sufficient_stats=False`` samples the per-row target.

Reproducibility: the same ``seed`` (and the same ``chain_method``, devices and dtype) gives the
same draws, bit for bit.
"""

from __future__ import annotations

import functools
import os
import time
import warnings

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

from .._validation import check_choice, check_float, check_int
from .models import bayesian_fa, bayesian_ppca, gaussian_sufficient_statistics

__all__ = [
    "run_nuts",
    "setup_host_devices",
    "sample_stats",
    "ParallelChainsWarning",
    "SufficientStatisticsNUTS",
    "CHAIN_METHODS",
    "DEFAULT_EXTRA_FIELDS",
]

CHAIN_METHODS = ("parallel", "vectorized", "sequential")
#: per-draw NUTS statistics kept by :func:`run_nuts` (``energy`` is what BFMI needs)
DEFAULT_EXTRA_FIELDS = ("energy", "diverging", "num_steps", "accept_prob", "potential_energy",
                        "adapt_state.step_size")


_COMPILE_EVENTS = (
    "/jax/core/compile/backend_compile_duration",
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
)


class _CompileClock:
    """Sums JAX's tracing + lowering + XLA compilation time while active (jax.monitoring)."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, event, duration, **kwargs):
        if event in _COMPILE_EVENTS:
            self.seconds += float(duration)

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        try:
            jax.monitoring.unregister_event_duration_listener(self)
        except (AttributeError, ValueError, AssertionError):  # pragma: no cover
            pass
        return False


class SufficientStatisticsNUTS(NUTS):
    """NUTS whose potential is the model run with ``sufficient_stats=stats`` while the model
    and arguments the ``MCMC`` records (``sampler.model``, ``model_kwargs``) stay per-row.

    Built by :func:`run_nuts`; ``stats`` is a
    :class:`~pyrogen.numpyro.GaussianSufficientStatistics` of the data.
    """

    def __init__(self, model, stats, **kwargs):
        super().__init__(model, **kwargs)
        self.stats = stats

    def _with_stats(self, model_kwargs):
        return {**(model_kwargs or {}), "sufficient_stats": self.stats}

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs={}):  # noqa: B006 - numpyro's signature
        return super().init(rng_key, num_warmup, init_params, model_args,
                            self._with_stats(model_kwargs))

    def sample(self, state, model_args, model_kwargs):
        return super().sample(state, model_args, self._with_stats(model_kwargs))


def _stats_applicable(model, args, model_kwargs) -> bool:
    base, kw, nargs = model, dict(model_kwargs), len(args)
    while isinstance(base, functools.partial):
        kw = {**base.keywords, **kw}
        nargs += len(base.args)
        base = base.func
    return (base in (bayesian_fa, bayesian_ppca) and nargs == 1 and len(args) == 1
            and args[0] is not None and kw.get("likelihood", "collapsed") == "collapsed"
            and "sufficient_stats" not in kw)


class ParallelChainsWarning(UserWarning):
    """``chain_method="parallel"`` could not get one JAX device per chain."""


def _backend_initialized() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # pragma: no cover - private API moved
        return True


def setup_host_devices(n: int) -> bool:
    """Ask JAX for ``n`` CPU devices (so that ``n`` chains can run in parallel).

    Sets ``XLA_FLAGS=--xla_force_host_platform_device_count=n`` through
    ``numpyro.set_host_device_count``. This only works **before** JAX initialises its backend
    (the first array operation, ``jax.devices()``, ...); afterwards the device count is fixed
    for the life of the process.

    Returns
    -------
    bool
        ``True`` if at least ``n`` devices are (or will be) available; ``False`` if the backend
        was already initialised with fewer. In that case a :class:`ParallelChainsWarning`
        explains the fix: set ``XLA_FLAGS`` before starting Python, or call this function
        (or ``numpyro.set_host_device_count``) before any JAX computation.
    """
    import numpyro

    n = check_int(n, "n", low=1)
    if _backend_initialized():
        have = jax.local_device_count()
        if have >= n:
            return True
        warnings.warn(
            f"JAX's backend is already initialised with {have} device(s); {n} parallel chains "
            "need one device each. Set the environment variable "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before starting Python, or "
            "call pyrogen.numpyro.setup_host_devices(n) before any JAX computation.",
            ParallelChainsWarning,
            stacklevel=2,
        )
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags:
        current = int(flags.split("xla_force_host_platform_device_count=")[1].split()[0])
        if current >= n:
            return True
    numpyro.set_host_device_count(n)
    return True


def run_nuts(model, *args, num_chains: int = 1, chain_method: str = "parallel",
             num_warmup: int = 500, num_samples: int = 500, seed: int = 0,
             progress_bar: bool = True, target_accept_prob: float = 0.8,
             max_tree_depth: int = 10, dense_mass: bool = False, init_params=None,
             init_strategy=None, extra_fields=DEFAULT_EXTRA_FIELDS, thinning: int = 1,
             time_phases: bool = False, sufficient_stats: bool | str = "auto",
             **model_kwargs) -> MCMC:
    r"""Run NumPyro NUTS on ``model(*args, **model_kwargs)`` and return the ``MCMC`` object.

    Timings go to ``mcmc.pyrogen_timing``: ``total_s`` (wall seconds), ``compile_s`` (the
    part spent tracing, lowering and compiling, measured with ``jax.monitoring``),
    ``chain_method`` (the one used) and ``num_devices``. With ``time_phases=True`` warmup and
    sampling run as two calls (``MCMC.warmup`` then ``MCMC.run``; numpyro then compiles two
    loops, which costs one extra compilation) and ``warmup_s``, ``warmup_compile_s``,
    ``sample_s``, ``sample_compile_s`` are recorded as well (sampling time proper:
    ``sample_s - sample_compile_s``).

    Parameters
    ----------
    model : callable
        A NumPyro model, e.g. :func:`pyrogen.numpyro.bayesian_fa`.
    *args, **model_kwargs
        Passed to the model (static: closed over by the compiled potential).
    num_chains : int
    chain_method : {"parallel", "vectorized", "sequential"}
        See the module docstring; ``"parallel"`` with too few devices falls back to
        ``"sequential"`` with a :class:`ParallelChainsWarning`.
    num_warmup, num_samples : int
        Per chain.
    seed : int
        ``jax.random.PRNGKey(seed)``; the same seed gives the same draws.
    progress_bar : bool
    target_accept_prob, max_tree_depth, dense_mass
        NUTS options.
    init_params : dict, optional
        Unconstrained initial values, with a leading ``num_chains`` axis when
        ``num_chains > 1`` (numpyro's convention).
    init_strategy : callable, optional
        numpyro init strategy (default ``init_to_uniform``).
    extra_fields : tuple of str
        Per-draw statistics to keep (default :data:`DEFAULT_EXTRA_FIELDS`); read them with
        ``mcmc.get_extra_fields(group_by_chain=True)`` or :func:`sample_stats`.
    thinning : int
    time_phases : bool
        Time warmup and sampling separately (see above).
    sufficient_stats : {"auto", True, False}
        NUTS target of :func:`~pyrogen.numpyro.bayesian_fa` / :func:`~pyrogen.numpyro.bayesian_ppca`
        with observed ``x`` and ``likelihood="collapsed"``: ``"auto"`` / ``True`` evaluate it
        from the data's sufficient statistics (:class:`SufficientStatisticsNUTS`; see the
        module docstring), ``False`` row by row. ``True`` for any other model raises
        ``ValueError``; ``"auto"`` leaves other models alone. ``mcmc.pyrogen_timing``
        records the choice (``"sufficient_stats"``).

    Returns
    -------
    numpyro.infer.MCMC
        Run; ``mcmc.get_samples(group_by_chain=True)`` gives ``(chains, draws, ...)`` arrays.
    """
    num_chains = check_int(num_chains, "num_chains", low=1)
    check_choice(chain_method, "chain_method", CHAIN_METHODS)
    num_warmup = check_int(num_warmup, "num_warmup", low=0)
    num_samples = check_int(num_samples, "num_samples", low=1)
    seed = check_int(seed, "seed", low=0)
    target_accept_prob = check_float(target_accept_prob, "target_accept_prob", 0.0, 1.0, "oo")
    max_tree_depth = check_int(max_tree_depth, "max_tree_depth", low=1)
    thinning = check_int(thinning, "thinning", low=1)
    if not callable(model):
        raise TypeError(f"model must be a callable NumPyro model. Got {type(model).__name__} "
                        "instead.")
    if sufficient_stats not in ("auto", True, False):
        raise ValueError("sufficient_stats must be 'auto', True or False. Got "
                         f"{sufficient_stats!r} instead.")
    use_stats = sufficient_stats is not False and _stats_applicable(model, args, model_kwargs)
    if sufficient_stats is True and not use_stats:
        raise ValueError(
            "sufficient_stats=True needs pyrogen.numpyro.bayesian_fa or bayesian_ppca with "
            "observed x, likelihood='collapsed' and no sufficient_stats model keyword. Got "
            f"model={getattr(model, '__name__', model)!r}, "
            f"likelihood={model_kwargs.get('likelihood', 'collapsed')!r} instead."
        )
    method = chain_method
    if chain_method == "parallel" and num_chains > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ParallelChainsWarning)
            ok = setup_host_devices(num_chains)
        if not ok:
            warnings.warn(
                f"chain_method='parallel' needs {num_chains} JAX devices but "
                f"{jax.local_device_count()} are available (JAX's backend was initialised "
                "before the device count could be set); running the chains sequentially. "
                f"Set XLA_FLAGS=--xla_force_host_platform_device_count={num_chains} before "
                "starting Python, call pyrogen.numpyro.setup_host_devices first, or use "
                "chain_method='vectorized'.",
                ParallelChainsWarning,
                stacklevel=2,
            )
            method = "sequential"
    kernel_kw = dict(target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth,
                     dense_mass=dense_mass)
    if init_strategy is not None:
        kernel_kw["init_strategy"] = init_strategy
    if use_stats:
        kernel = SufficientStatisticsNUTS(model, gaussian_sufficient_statistics(args[0]),
                                          **kernel_kw)
    else:
        kernel = NUTS(model, **kernel_kw)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, chain_method=method, progress_bar=progress_bar,
                thinning=thinning)
    key = jax.random.PRNGKey(seed)
    fields = tuple(extra_fields)
    timing = {}
    t0 = time.perf_counter()
    if time_phases and num_warmup > 0:
        with _CompileClock() as warm_clock:
            mcmc.warmup(key, *args, init_params=init_params, extra_fields=fields,
                        collect_warmup=False, **model_kwargs)
            jax.block_until_ready(mcmc.post_warmup_state)
        t1 = time.perf_counter()
        with _CompileClock() as sample_clock:
            mcmc.run(mcmc.post_warmup_state.rng_key, *args, extra_fields=fields,
                     **model_kwargs)
            jax.block_until_ready(mcmc.get_samples())
        t2 = time.perf_counter()
        timing = {"warmup_s": t1 - t0, "warmup_compile_s": warm_clock.seconds,
                  "sample_s": t2 - t1, "sample_compile_s": sample_clock.seconds}
        compile_s = warm_clock.seconds + sample_clock.seconds
    else:
        with _CompileClock() as clock:
            mcmc.run(key, *args, init_params=init_params, extra_fields=fields, **model_kwargs)
            jax.block_until_ready(mcmc.get_samples())
        compile_s = clock.seconds
    mcmc.pyrogen_timing = {
        "total_s": time.perf_counter() - t0,
        "compile_s": compile_s,
        **timing,
        "chain_method": method,
        "num_devices": jax.local_device_count(),
        "sufficient_stats": use_stats,
    }
    return mcmc


def sample_stats(mcmc: MCMC) -> dict[str, np.ndarray]:
    """Per-draw NUTS statistics of a NumPyro ``MCMC`` as ``(chain, draw)`` NumPy arrays, with
    ArviZ's names: ``diverging``, ``energy``, ``n_steps``, ``tree_depth``
    (:math:`\\lfloor\\log_2 n_\\mathrm{steps}\\rfloor`), ``acceptance_rate``, ``lp``
    (minus the potential energy), ``step_size`` — those that were collected."""
    if not isinstance(mcmc, MCMC):
        raise TypeError(f"mcmc must be a numpyro.infer.MCMC. Got {type(mcmc).__name__} "
                        "instead.")
    extra = mcmc.get_extra_fields(group_by_chain=True)
    out = {}
    names = {"diverging": "diverging", "energy": "energy", "num_steps": "n_steps",
             "accept_prob": "acceptance_rate", "adapt_state.step_size": "step_size"}
    for src, dst in names.items():
        if src in extra:
            out[dst] = np.asarray(extra[src])
    if "num_steps" in extra:
        out["tree_depth"] = np.floor(np.log2(np.maximum(np.asarray(extra["num_steps"]), 1)))
        out["tree_depth"] = out["tree_depth"].astype(int)
    if "potential_energy" in extra:
        out["lp"] = -np.asarray(extra["potential_energy"])
    return out
