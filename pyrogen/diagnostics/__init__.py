r"""The ArviZ bridge and the Bayesian-workflow report for Pyro and NumPyro runs.

:func:`to_inference_data` builds one ArviZ object, with the same groups, from four sources: a
Pyro ``MCMC`` run (or a list of single-chain runs), a NumPyro ``MCMC`` run (all chains), a
fitted Pyro SVI guide, and a fitted NumPyro SVI guide with its parameters (or a dict of
draws):

========================  ====================================================================
group                     content
========================  ====================================================================
``posterior``             latent sample sites, shape ``(chain, draw, ...)``
``sample_stats``          ``diverging``, and where the sampler records them ``energy``,
                          ``lp``, ``n_steps``, ``tree_depth``, ``step_size``,
                          ``acceptance_rate`` (MCMC only; see the table below)
``log_likelihood``        per observation :math:`\log p(y_j \mid \theta_s)` for every observed
                          site, shape ``(chain, draw, *batch)``: what ``az.loo`` needs
``observed_data``         the observed values
``posterior_predictive``  one replicated data set per draw, :math:`y^\mathrm{rep}_s \sim
                          p(y \mid \theta_s)`, same shape as the observed site
========================  ====================================================================

Dimension names come from the plates (a site in ``plate("data", n)`` gets the dimension
``"data"``; other dimensions are ``"<site>_dim_<i>"``), overridable with ``dims``.

Sampler statistics by source:

- NumPyro ``MCMC`` run with ``extra_fields=NUMPYRO_EXTRA_FIELDS``: ``diverging``, ``energy``,
  ``lp``, ``n_steps``, ``tree_depth``, ``step_size``, ``acceptance_rate``;
- NumPyro ``MCMC`` with its default fields: ``diverging``;
- Pyro ``MCMC`` with :class:`RecordingNUTS`: the same seven as NumPyro;
- Pyro ``MCMC`` with ``NUTS`` or ``HMC``: ``diverging`` only (Pyro keeps neither per-draw
  energy nor tree statistics, so BFMI is unavailable);
- SVI guides and dicts of draws: none.

``energy`` is the Hamiltonian :math:`H = U(q) + \tfrac12 p^\top M^{-1} p` of the sampled
state (its potential plus the kinetic energy of its momentum) and ``lp`` is :math:`-U(q)`, the
log joint density in the unconstrained space (with the log-Jacobian of the transforms); both
follow NumPyro's (and Stan's) conventions, so the energy BFMI [3]_

.. math::

    \widehat{\mathrm{BFMI}} = \frac{\sum_{n=2}^{N} (E_n - E_{n-1})^2}
    {\sum_{n=1}^{N} (E_n - \bar E)^2}

means the same for both libraries.

:func:`report` puts r-hat, bulk/tail ESS, divergences, BFMI, PSIS-LOO with Pareto-k counts
and posterior predictive checks of one run into ``report.json``, ``report.txt`` and PNG plots,
and says what is wrong in plain words. :func:`compare_models` and :func:`choose_n_components`
rank models by PSIS-LOO [1]_ and pick one (e.g. the number of factors).

Version policy. The object is always assembled by pyrogen from NumPy dictionaries and handed to
``arviz.from_dict``; ``arviz.from_pyro`` is never used (it is gone in arviz 1.x, and it drops
the log-likelihood when the model does not vectorize). On arviz 0.x (tested: 0.23) the call is
``az.from_dict(posterior=..., log_likelihood=..., ...)`` returning ``InferenceData``; on arviz
>= 1 it is ``az.from_dict({"posterior": ..., ...})`` returning a ``DataTree`` with the same
groups. :func:`summary`, :func:`loo`, :func:`compare_loo` and :func:`report` likewise call the
functions of the installed major version and return the same column names. ArviZ, NumPyro and
JAX are imported lazily, inside the functions, so that ``import pyrogen`` imports none of them.

Pointwise log-likelihood. For every posterior draw the model is replayed with its latent sites
set to the draw and each observed site's ``fn.log_prob(value)`` is kept. Pyro: pyrogen first
tries one vectorized replay (``Predictive(...).get_vectorized_trace``, which needs a model
written with plates for every batch dimension) and falls back to one replay per draw when that
fails or returns the wrong shape. NumPyro: ``numpyro.infer.util.log_likelihood`` (``vmap``).
Models can pass a faster exact ``log_likelihood_fn`` (the Bayesian factor models pass the
collapsed Gaussian density). The number is :math:`\log p(y_j \mid \text{all latent sites})`:
for a model with per-example latents (``h`` in a data plate) it is the *conditional* density
given ``h_j``, and LOO on it answers a different question than LOO on the marginal
:math:`p(y_j \mid \theta)`.

Posterior predictive. The model is run with its observations removed (Pyro:
``poutine.uncondition``; NumPyro: an equivalent handler) and its latent sites set to each draw
(``Predictive``), so that every observed site is drawn afresh from its likelihood.

References
----------
.. [1] A. Vehtari, A. Gelman and J. Gabry, "Practical Bayesian model evaluation using
   leave-one-out cross-validation and WAIC", Statistics and Computing 27, 2017.
.. [2] A. Vehtari, A. Gelman, D. Simpson, B. Carpenter and P.-C. Bürkner, "Rank-normalization,
   folding, and localization: an improved R-hat for assessing convergence of MCMC",
   Bayesian Analysis 16(2), 2021.
.. [3] M. Betancourt, "Diagnosing suboptimal cotangent disintegrations in Hamiltonian Monte
   Carlo", arXiv:1604.00695, 2016.
.. [4] A. Gelman, X.-L. Meng and H. Stern, "Posterior predictive assessment of model fitness
   via realized discrepancies", Statistica Sinica 6, 1996.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyro
import pyro.infer
import torch
from pyro import poutine
from pyro.infer.mcmc import NUTS

from ._validation import check_choice, check_float, check_int

__all__ = [
    "to_inference_data",
    "from_arrays",
    "mcmc_sample_stats",
    "RecordingNUTS",
    "NUMPYRO_EXTRA_FIELDS",
    "summary",
    "loo",
    "loo_numbers",
    "bfmi",
    "ppc_pvalues",
    "compare_loo",
    "compare_models",
    "choose_n_components",
    "ModelComparison",
    "report",
    "Report",
    "arviz_major_version",
    "group_names",
]

#: ``extra_fields`` to pass to ``numpyro.infer.MCMC.run`` so that :func:`to_inference_data`
#: can fill the whole ``sample_stats`` group (energy for BFMI, tree statistics, step size).
NUMPYRO_EXTRA_FIELDS = (
    "diverging",
    "energy",
    "num_steps",
    "accept_prob",
    "adapt_state.step_size",
    "potential_energy",
)

#: the sample_stats variables every source fills where it can, in this order
SAMPLE_STATS = ("diverging", "energy", "lp", "n_steps", "tree_depth", "step_size",
                "acceptance_rate")


def _arviz():
    """Import arviz lazily (arviz 0.23 emits a FutureWarning about 1.x on import)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing", category=FutureWarning)
        import arviz

    return arviz


def arviz_major_version() -> int:
    """Major version of the installed arviz (0 or 1)."""
    return int(str(_arviz().__version__).split(".")[0])


def _numpy(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def from_arrays(
    posterior: Mapping[str, np.ndarray],
    *,
    sample_stats: Mapping[str, np.ndarray] | None = None,
    log_likelihood: Mapping[str, np.ndarray] | None = None,
    observed_data: Mapping[str, np.ndarray] | None = None,
    posterior_predictive: Mapping[str, np.ndarray] | None = None,
    coords: Mapping | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    attrs: Mapping | None = None,
):
    """Assemble ArviZ data from arrays ``(chain, draw, ...)`` (observed data: no sample dims).

    Calls ``arviz.from_dict`` with the signature of the installed major version (see the
    module docstring); returns ``InferenceData`` (arviz 0.x) or ``DataTree`` (arviz >= 1).
    """
    az = _arviz()
    groups = {"posterior": {k: _numpy(v) for k, v in posterior.items()}}
    for name, group in (
        ("sample_stats", sample_stats),
        ("log_likelihood", log_likelihood),
        ("observed_data", observed_data),
        ("posterior_predictive", posterior_predictive),
    ):
        if group:
            groups[name] = {k: _numpy(v) for k, v in group.items()}
    coords = dict(coords or {})
    dims = {k: list(v) for k, v in (dims or {}).items()}
    if arviz_major_version() >= 1:
        group_attrs = {"posterior": dict(attrs)} if attrs else None
        return az.from_dict(groups, coords=coords, dims=dims, attrs=group_attrs)
    extra = {"posterior_attrs": dict(attrs)} if attrs else {}
    return az.from_dict(**groups, coords=coords, dims=dims, attrs=dict(attrs or {}), **extra)


# ------------------------------------------------------------------ Pyro sampler statistics
class RecordingNUTS(NUTS):
    r"""Pyro's :class:`~pyro.infer.mcmc.NUTS` that also records, for every transition, the
    statistics NumPyro keeps (Pyro's own NUTS keeps only the divergent draw indices).

    Same arguments and the same Markov chain as ``NUTS`` (the recording draws no random
    numbers). Per transition it stores

    - ``energy``: :math:`H(q, p) = U(q) + \tfrac12 p^\top M^{-1} p` of the *selected* state
      with its momentum; the initial state's energy when no proposal was accepted;
    - ``lp``: :math:`-U(q)` of the selected state (log joint density in unconstrained space,
      log-Jacobian included);
    - ``n_steps`` (leapfrog steps), ``tree_depth`` (number of tree doublings), ``diverging``,
      ``acceptance_rate`` (the mean Metropolis acceptance probability over the trajectory,
      the statistic step-size adaptation targets) and ``step_size``.

    Chains run in this process (``num_chains=1``, or Pyro's sequential fallback) are recorded
    one after the other; chains run in worker processes are not (the kernel is copied there).
    :func:`mcmc_sample_stats` reads the records. Overhead: one extra kinetic-energy
    evaluation per leapfrog step.

    Examples
    --------
    >>> mcmc = MCMC(RecordingNUTS(model), num_samples=500, warmup_steps=500)  # doctest: +SKIP
    >>> mcmc.run(x)                                                            # doctest: +SKIP
    >>> idata = to_inference_data(mcmc)   # sample_stats has energy -> BFMI     # doctest: +SKIP
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        #: one list of per-transition dicts per chain (warm-up included)
        self.transitions: list[list[dict]] = []
        self._rec: dict = {}

    def setup(self, warmup_steps, *args, **kwargs):
        self.transitions.append([])
        return super().setup(warmup_steps, *args, **kwargs)

    def _sample_r(self, name):
        r, r_unscaled = super()._sample_r(name)
        _, pe, _ = self._fetch_from_cache()
        self._rec["energy_start"] = float(pe) + float(self._kinetic_energy(r_unscaled))
        return r, r_unscaled

    def _build_basetree(self, z, r, z_grads, log_slice, direction, energy_current):
        tree = super()._build_basetree(z, r, z_grads, log_slice, direction, energy_current)
        self._rec["n_steps"] = self._rec.get("n_steps", 0) + 1
        energy = float(tree.z_proposal_pe) + float(self._kinetic_energy(tree.r_left_unscaled))
        # the proposal dict object is kept alive by the tree that may select it, so its id is
        # unique for the whole transition (an id reused after garbage collection overwrites
        # the entry of an object that can no longer be selected)
        self._rec.setdefault("energy_of", {})[id(tree.z_proposal)] = energy
        return tree

    def _build_tree(self, z, r, z_grads, log_slice, direction, tree_depth, energy_current):
        self._rec["nest"] = self._rec.get("nest", 0) + 1
        try:
            tree = super()._build_tree(z, r, z_grads, log_slice, direction, tree_depth,
                                       energy_current)
        finally:
            self._rec["nest"] -= 1
        if self._rec["nest"] == 0:  # one doubling of the top-level trajectory
            self._rec["tree_depth"] = tree_depth + 1
            self._rec["diverging"] = self._rec.get("diverging", False) or bool(tree.diverging)
            self._rec["sum_accept"] = self._rec.get("sum_accept", 0.0) + float(
                tree.sum_accept_probs)
            self._rec["num_proposals"] = self._rec.get("num_proposals", 0) + int(
                tree.num_proposals)
        return tree

    def sample(self, params):
        self._rec = {}
        step_size = float(self.step_size)
        out = super().sample(params)
        rec = self._rec
        if "energy_start" in rec:  # a transition was made (a model with latent sites)
            z, pe, _ = self._fetch_from_cache()
            energy = rec.get("energy_of", {}).get(id(z), rec["energy_start"])
            n_prop = rec.get("num_proposals", 0)
            if not self.transitions:
                self.transitions.append([])
            self.transitions[-1].append({
                "diverging": bool(rec.get("diverging", False)),
                "energy": energy,
                "lp": -float(pe),
                "n_steps": int(rec.get("n_steps", 0)),
                "tree_depth": int(rec.get("tree_depth", 0)),
                "step_size": step_size,
                "acceptance_rate": (rec.get("sum_accept", 0.0) / n_prop if n_prop
                                    else float("nan")),
            })
        self._rec = {}
        return out


def _as_chain_list(source) -> list[pyro.infer.MCMC] | None:
    if isinstance(source, pyro.infer.MCMC):
        return [source]
    if isinstance(source, (list, tuple)) and source and all(
        isinstance(m, pyro.infer.MCMC) for m in source
    ):
        return list(source)
    return None


def _is_numpyro_mcmc(obj) -> bool:
    t = type(obj)
    return t.__name__ == "MCMC" and t.__module__.startswith("numpyro")


def _pyro_sample_stats(runs) -> dict[str, np.ndarray]:
    # recorded chains per kernel (a kernel shared by several runs recorded them in order)
    queues: dict[int, list] = {}
    need: dict[int, int] = {}
    for m in runs:
        need[id(m.kernel)] = need.get(id(m.kernel), 0) + m.num_chains
    for m in runs:
        k = m.kernel
        if isinstance(k, RecordingNUTS) and id(k) not in queues:
            chains = [t for t in k.transitions if t]
            queues[id(k)] = chains[-need[id(k)]:] if len(chains) >= need[id(k)] else []
    rows: dict[str, list] = {k: [] for k in SAMPLE_STATS}
    for m in runs:
        queue = queues.get(id(m.kernel), [])
        for c in range(m.num_chains):
            d = m._diagnostics[c] or {}
            div = np.zeros(m.num_samples, dtype=bool)
            idx = np.asarray(list(d.get("divergences", [])), dtype=int)
            idx = idx[(idx >= 0) & (idx < m.num_samples)]
            div[idx] = True
            rec = queue.pop(0)[-m.num_samples:] if queue else None
            if rec is not None and len(rec) == m.num_samples:
                for k in SAMPLE_STATS:
                    rows[k].append(np.asarray([t[k] for t in rec]))
            else:
                rows["diverging"].append(div)
    out = {}
    n_chains = len(rows["diverging"])
    for k in SAMPLE_STATS:
        if rows[k] and len(rows[k]) == n_chains:
            out[k] = np.stack(rows[k])
    return out


def _numpyro_sample_stats(mcmc) -> dict[str, np.ndarray]:
    extra = mcmc.get_extra_fields(group_by_chain=True)
    names = {
        "diverging": "diverging",
        "energy": "energy",
        "potential_energy": "lp",
        "num_steps": "n_steps",
        "adapt_state.step_size": "step_size",
        "accept_prob": "acceptance_rate",
    }
    out = {}
    for src, dst in names.items():
        if src in extra:
            value = np.asarray(extra[src])
            out[dst] = -value if src == "potential_energy" else value
    if "n_steps" in out:
        # NUTS with d doublings takes at most 2^d - 1 leapfrog steps (fewer when a sub-tree
        # turns or diverges): d = floor(log2(n_steps)) + 1, as ArviZ's from_numpyro
        out["tree_depth"] = (np.floor(np.log2(np.maximum(out["n_steps"], 1))) + 1).astype(int)
    if "diverging" in out:
        out["diverging"] = out["diverging"].astype(bool)
    return {k: out[k] for k in SAMPLE_STATS if k in out}


def mcmc_sample_stats(source) -> dict[str, np.ndarray]:
    """Sampler statistics ``{name: array (chain, draw)}`` of an MCMC run.

    Parameters
    ----------
    source : pyro.infer.MCMC, list of them, or numpyro.infer.MCMC
        Pyro: ``diverging`` from the divergent draw indices Pyro records (all ``False`` for
        kernels without divergences), plus ``energy``, ``lp``, ``n_steps``, ``tree_depth``,
        ``step_size``, ``acceptance_rate`` when the kernel is a :class:`RecordingNUTS`
        whose chains ran in this process. NumPyro: whatever of these the run collected
        (``extra_fields=NUMPYRO_EXTRA_FIELDS`` gives all; by default only ``diverging``).

    Raises
    ------
    TypeError
        ``source`` is neither.
    """
    if _is_numpyro_mcmc(source):
        return _numpyro_sample_stats(source)
    runs = _as_chain_list(source)
    if runs is None:
        raise TypeError(
            "source must be a pyro.infer.MCMC or a list of them, or a numpyro.infer.MCMC. "
            f"Got {type(source).__name__} instead."
        )
    return _pyro_sample_stats(runs)


def _mcmc_samples(runs) -> dict[str, torch.Tensor]:
    per = [m.get_samples(group_by_chain=True) for m in runs]
    return {k: torch.cat([p[k] for p in per]) for k in per[0]}


# ------------------------------------------------------------------ model replays
def _is_random(site) -> bool:
    """A real sample site (not a plate's subsample site, not an auxiliary guide site)."""
    return (
        site["type"] == "sample"
        and hasattr(site["fn"], "batch_shape")
        and not (site.get("infer") or {}).get("is_auxiliary", False)
    )


def _site_dims(name, site) -> list[str]:
    value = site["value"]
    batch_ndim = len(site["fn"].batch_shape)
    frames = {f.dim: f.name for f in site["cond_indep_stack"]
              if getattr(f, "vectorized", True) and f.dim is not None}
    names = []
    for i in range(np.ndim(value)):
        dim = i - batch_ndim
        if i < batch_ndim and dim in frames:
            names.append(frames[dim])
        else:
            names.append(f"{name}_dim_{i}")
    return names


def _plate_dims(trace) -> dict[str, list[str]]:
    """Dimension names of each sample site from its plates (batch) and ``<site>_dim_<i>``."""
    return {name: _site_dims(name, site) for name, site in trace.nodes.items()
            if _is_random(site)}


def _loglik_loop(model, flat: dict[str, torch.Tensor], obs_names, args, kwargs):
    S = next(iter(flat.values())).shape[0]
    acc = {k: [] for k in obs_names}
    with torch.no_grad():
        for s in range(S):
            cond = poutine.condition(model, data={k: v[s] for k, v in flat.items()})
            tr = poutine.trace(cond).get_trace(*args, **kwargs)
            for k in obs_names:
                acc[k].append(tr.nodes[k]["fn"].log_prob(tr.nodes[k]["value"]))
    return {k: torch.stack(v) for k, v in acc.items()}


def _loglik_vectorized(model, flat, obs_names, args, kwargs, shapes):
    S = next(iter(flat.values())).shape[0]
    with torch.no_grad():
        pred = pyro.infer.Predictive(model, posterior_samples=flat, num_samples=S)
        tr = pred.get_vectorized_trace(*args, **kwargs)
    out = {}
    for k in obs_names:
        lp = tr.nodes[k]["fn"].log_prob(tr.nodes[k]["value"])
        lp = lp.reshape(-1, *lp.shape[-len(shapes[k]):]) if shapes[k] else lp.reshape(-1)
        if tuple(lp.shape) != (S, *shapes[k]):
            return None
        out[k] = lp
    return out


class _PyroBackend:
    name = "pyro"

    @staticmethod
    def trace(model, args, kwargs):
        with torch.no_grad():
            tr = poutine.trace(model).get_trace(*args, **kwargs)
        return {k: s for k, s in tr.nodes.items() if _is_random(s)}

    @staticmethod
    def as_draws(grouped):
        return {k: torch.as_tensor(np.asarray(_numpy(v))) for k, v in grouped.items()}

    @staticmethod
    def log_likelihood(model, flat, obs, args, kwargs, shapes):
        values = None
        try:
            values = _loglik_vectorized(model, flat, obs, args, kwargs, shapes)
        except Exception:  # noqa: BLE001 - any failure: fall back to exact replays
            values = None
        if values is None:
            values = _loglik_loop(model, flat, obs, args, kwargs)
        return values

    @staticmethod
    def predictive(model, flat, obs, args, kwargs, shapes, seed):
        S = next(iter(flat.values())).shape[0]
        free = poutine.uncondition(model)
        with torch.no_grad(), pyro.poutine.seed(rng_seed=seed):
            try:
                out = pyro.infer.Predictive(free, posterior_samples=flat, num_samples=S,
                                            return_sites=list(obs), parallel=True)(
                    *args, **kwargs)
                if all(tuple(out[k].shape) == (S, *shapes[k]) for k in obs):
                    return out
            except Exception:  # noqa: BLE001 - not vectorizable: one replay per draw
                pass
            return pyro.infer.Predictive(free, posterior_samples=flat, num_samples=S,
                                         return_sites=list(obs), parallel=False)(
                *args, **kwargs)

    @staticmethod
    def guide_draws(guide, params, num_samples, args, kwargs, seed):
        with torch.no_grad(), pyro.poutine.seed(rng_seed=seed):
            return pyro.infer.Predictive(guide, num_samples=num_samples)(*args, **kwargs)


def _numpyro_uncondition(model):
    """NumPyro twin of ``poutine.uncondition``: observed sites are sampled instead."""
    from numpyro.primitives import Messenger

    class _Uncondition(Messenger):
        def process_message(self, msg):
            if msg["type"] == "sample" and msg.get("is_observed"):
                msg["value"] = None
                msg["is_observed"] = False

    return _Uncondition(model)


class _NumPyroBackend:
    name = "numpyro"

    @staticmethod
    def trace(model, args, kwargs):
        from numpyro import handlers

        tr = handlers.trace(handlers.seed(model, 0)).get_trace(*args, **kwargs)
        return {k: s for k, s in tr.items() if _is_random(s)}

    @staticmethod
    def as_draws(grouped):
        import jax.numpy as jnp

        return {k: jnp.asarray(np.asarray(_numpy(v))) for k, v in grouped.items()}

    @staticmethod
    def log_likelihood(model, flat, obs, args, kwargs, shapes):
        from numpyro.infer.util import log_likelihood

        out = log_likelihood(model, flat, *args, batch_ndims=1, **kwargs)
        return {k: out[k] for k in obs}

    @staticmethod
    def predictive(model, flat, obs, args, kwargs, shapes, seed):
        import jax
        from numpyro.infer import Predictive

        pred = Predictive(_numpyro_uncondition(model), posterior_samples=flat,
                          return_sites=list(obs), batch_ndims=1)
        return pred(jax.random.PRNGKey(seed), *args, **kwargs)

    @staticmethod
    def guide_draws(guide, params, num_samples, args, kwargs, seed):
        import jax
        from numpyro.infer import Predictive

        pred = Predictive(guide, params=params, num_samples=num_samples)
        return pred(jax.random.PRNGKey(seed), *args, **kwargs)


def _pick_backend(backend, source, guide, params):
    if backend is not None:
        backend = check_choice(backend, "backend", ("pyro", "numpyro"))
    elif _is_numpyro_mcmc(source) or params is not None or (
        guide is not None and type(guide).__module__.startswith("numpyro")
    ):
        backend = "numpyro"
    else:
        backend = "pyro"
    return _NumPyroBackend if backend == "numpyro" else _PyroBackend


def to_inference_data(
    source=None,
    *,
    model: Callable | None = None,
    guide: Callable | None = None,
    params: Mapping | None = None,
    backend: str | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    num_samples: int = 500,
    log_likelihood: bool = True,
    log_likelihood_fn: Callable | None = None,
    posterior_predictive: bool = True,
    seed: int = 0,
    coords: Mapping | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    extra_posterior: Mapping[str, np.ndarray] | None = None,
):
    """ArviZ data from a Pyro or NumPyro MCMC run, a fitted SVI guide or a dict of draws.

    Parameters
    ----------
    source : pyro.infer.MCMC, list of them, numpyro.infer.MCMC, or dict, optional
        A finished ``MCMC`` run (its ``model`` and ``run`` arguments are reused); for Pyro
        also a list of single-chain runs (each becomes one chain); NumPyro runs keep their
        chains (``get_samples(group_by_chain=True)``); or a dict of posterior draws shaped
        ``(chain, draw, ...)`` (then ``model`` and ``model_args`` are needed for the
        log-likelihood, and ``backend="numpyro"`` for a NumPyro model). Leave ``None`` with
        ``guide=`` for SVI.
    model : callable, optional
        The Pyro or NumPyro model. Taken from the MCMC kernel when ``source`` is an MCMC run.
    guide : callable, optional
        A fitted guide: ``num_samples`` posterior draws via ``Predictive(guide, ...)`` (one
        chain). Pyro guides keep their parameters in the param store; NumPyro guides need
        ``params``.
    params : dict, optional
        NumPyro SVI parameters (``svi.run(...).params``); implies ``backend="numpyro"``.
    backend : {"pyro", "numpyro"}, optional
        Inferred from ``source`` / ``guide`` / ``params``; needed only for a dict of draws of
        a NumPyro model.
    model_args, model_kwargs
        Arguments of ``model`` (and ``guide``); default: those of ``MCMC.run``.
    num_samples : int
        Guide draws (SVI only).
    log_likelihood : bool
        Add the ``log_likelihood`` and ``observed_data`` groups.
    log_likelihood_fn : callable ``(draws: dict of (S, ...) arrays) -> dict``, optional
        Pointwise log-likelihood ``{obs_site: (S, *batch)}`` computed by the caller (exact
        and fast for models that know their marginal); default: model replay (module
        docstring).
    posterior_predictive : bool
        Add the ``posterior_predictive`` group (one replicated data set per draw).
    seed : int
        Seed of the guide draws and of the posterior predictive draws.
    coords, dims : dict, optional
        ArviZ coordinates and dimension names; ``dims`` overrides the plate-derived names.
    extra_posterior : dict, optional
        Further ``(chain, draw, ...)`` arrays for the posterior group (e.g. rotation-invariant
        functions of the draws).

    Returns
    -------
    arviz.InferenceData (arviz 0.x) or xarray.DataTree (arviz >= 1)

    Raises
    ------
    TypeError
        ``source`` of an unsupported type.
    ValueError
        Neither ``source`` nor ``guide``, no ``model`` to compute the log-likelihood with, or
        an unknown ``backend``.
    """
    model_kwargs = dict(model_kwargs or {})
    seed = check_int(seed, "seed", low=0)
    be = _pick_backend(backend, source, guide, params)
    runs = _as_chain_list(source)
    sample_stats = None
    latent_only = False
    if runs is not None:
        model = model if model is not None else getattr(runs[0].kernel, "model", None)
        if not model_args and runs[0]._args is not None:
            model_args = tuple(runs[0]._args)
            model_kwargs = {**(runs[0]._kwargs or {}), **model_kwargs}
        grouped = {k: _numpy(v) for k, v in _mcmc_samples(runs).items()}
        sample_stats = _pyro_sample_stats(runs)
    elif _is_numpyro_mcmc(source):
        model = model if model is not None else getattr(source.sampler, "model", None)
        if not model_args and getattr(source, "_args", None) is not None:
            model_args = tuple(source._args)
            model_kwargs = {**(getattr(source, "_kwargs", None) or {}), **model_kwargs}
        grouped = {k: np.asarray(v)
                   for k, v in source.get_samples(group_by_chain=True).items()}
        sample_stats = _numpyro_sample_stats(source)
    elif isinstance(source, Mapping):
        grouped = {k: np.asarray(_numpy(v)) for k, v in source.items()}
    elif source is None:
        if guide is None:
            raise ValueError(
                "source must be a pyro.infer.MCMC, a list of them, a numpyro.infer.MCMC or a "
                "dict of draws, or guide must be a fitted guide. Got neither."
            )
        if model is None:
            raise ValueError("model must be given with guide=. Got None instead.")
        num_samples = check_int(num_samples, "num_samples", low=1)
        draws = be.guide_draws(guide, params, num_samples, model_args, model_kwargs, seed)
        grouped = {k: _numpy(v)[None] for k, v in draws.items()}
        latent_only = True
    else:
        raise TypeError(
            "source must be a pyro.infer.MCMC, a list of MCMC runs, a numpyro.infer.MCMC, a "
            f"dict of draws or None (with guide=). Got {type(source).__name__} instead."
        )
    if model is None and (log_likelihood or posterior_predictive or latent_only):
        raise ValueError(
            "model must be given to compute the log-likelihood and posterior predictive (or "
            "pass log_likelihood=False, posterior_predictive=False). Got None instead."
        )
    sites = be.trace(model, model_args, model_kwargs) if model is not None else {}
    obs = {k: s for k, s in sites.items() if s["is_observed"] and not k.startswith("_")}
    if latent_only:  # guide draws: keep the model's latent sites only
        latent = {k for k, s in sites.items() if not s["is_observed"] and not k.startswith("_")}
        grouped = {k: v for k, v in grouped.items() if k in latent}
    grouped = {k: v for k, v in grouped.items() if k not in obs}
    if not grouped:
        raise ValueError("source holds no posterior draws of latent sites. Got none.")
    C, S = next(iter(grouped.values())).shape[:2]
    posterior = dict(grouped)
    if extra_posterior:
        posterior.update({k: _numpy(v) for k, v in extra_posterior.items()})
    all_dims = {k: _site_dims(k, s) for k, s in sites.items()}
    loglik = observed = predictive = None
    if obs and (log_likelihood or posterior_predictive):
        flat = be.as_draws({k: v.reshape(C * S, *v.shape[2:]) for k, v in grouped.items()})
        batch_shapes = {k: tuple(s["fn"].batch_shape) for k, s in obs.items()}
        observed = {k: _numpy(s["value"]) for k, s in obs.items()}
        if log_likelihood:
            values = (log_likelihood_fn(flat) if log_likelihood_fn is not None else
                      be.log_likelihood(model, flat, list(obs), model_args, model_kwargs,
                                        batch_shapes))
            loglik = {k: _numpy(v).reshape(C, S, *np.shape(v)[1:]) for k, v in values.items()}
        if posterior_predictive:
            full = {k: tuple(np.shape(v)) for k, v in observed.items()}
            draws = be.predictive(model, flat, list(obs), model_args, model_kwargs, full, seed)
            predictive = {k: _numpy(draws[k]).reshape(C, S, *full[k]) for k in obs}
    # one dims entry per name: the observed / predicted value has the site's batch and event
    # dims, its log-likelihood only the leading (batch) ones; ArviZ uses the leading names
    keep = set(posterior) | set(obs)
    all_dims = {k: v for k, v in all_dims.items() if k in keep}
    all_dims.update({k: list(v) for k, v in (dims or {}).items()})
    return from_arrays(
        posterior,
        sample_stats=sample_stats,
        log_likelihood=loglik if log_likelihood else None,
        observed_data=observed if (log_likelihood or posterior_predictive) else None,
        posterior_predictive=predictive,
        coords=coords,
        dims=all_dims,
        attrs={"inference_library": be.name},
    )


# ------------------------------------------------------------------ version-independent access
def group_names(idata) -> list[str]:
    """Names of the groups of ``InferenceData`` (arviz 0.x) or of a ``DataTree`` (arviz 1.x)."""
    if type(idata).__name__ == "DataTree":
        return [str(k) for k in idata.children]
    return list(idata.groups())


def _group(idata, name):
    """The group ``name`` as an ``xarray.Dataset`` (InferenceData or DataTree)."""
    if type(idata).__name__ == "DataTree":
        return idata[name].to_dataset()
    return getattr(idata, name)


def _is_arviz_data(obj) -> bool:
    return type(obj).__name__ in ("InferenceData", "DataTree")


def _as_idata(data, **kwargs):
    if _is_arviz_data(data):
        return data
    if hasattr(data, "to_inference_data") and callable(data.to_inference_data):
        return data.to_inference_data(**kwargs)
    return to_inference_data(data, **kwargs)


def summary(idata, var_names: Sequence[str] | None = None, **kwargs):
    """``arviz.summary``: mean, sd, credible interval, MCSE, ``ess_bulk``, ``ess_tail`` and the
    rank-normalized split ``r_hat`` [2]_ per scalar.

    With fewer than 2 chains ``r_hat`` is NaN. For factor models ask for rotation-invariant
    variables (``noise``, ``WWt_diag``, ``col_norm2``): r-hat of raw ``W`` compares chains that
    sit in different symmetric modes (see :mod:`pyrogen.models.bayesian_factor`). The columns
    ``mean``, ``sd``, ``ess_bulk``, ``ess_tail`` and ``r_hat`` exist on arviz 0.x and 1.x; on
    1.x the numbers are not rounded (``round_to="none"`` unless given).

    Returns
    -------
    pandas.DataFrame
    """
    az = _arviz()
    if arviz_major_version() >= 1:  # 1.x rounds to a few significant digits by default
        kwargs.setdefault("round_to", "none")
    return az.summary(idata, var_names=list(var_names) if var_names else None, **kwargs)


def _captured(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [str(w.message) for w in caught]


def loo(idata, **kwargs):
    """PSIS-LOO (``arviz.loo(..., pointwise=True)``) with ArviZ's warnings captured.

    Returns
    -------
    result : ELPDData
        ``elpd_loo`` (arviz 1.x: ``elpd``), ``se``, ``p_loo`` (1.x: ``p``), pointwise
        ``pareto_k``...
    messages : list of str
        Warnings ArviZ raised (e.g. Pareto k above 0.7: the LOO estimate is unreliable for
        those observations). They are returned rather than re-raised so that callers can
        report them next to the number.
    """
    az = _arviz()
    return _captured(az.loo, idata, pointwise=True, **kwargs)


def loo_numbers(res) -> dict:
    """``{"elpd_loo", "se", "p_loo", "n_data", "pareto_k", "good_k"}`` of a :func:`loo`
    result, whichever arviz major version made it."""
    elpd = getattr(res, "elpd_loo", None)
    if elpd is None:
        elpd = res.elpd
    p = getattr(res, "p_loo", None)
    if p is None:
        p = res.p
    k = np.asarray(res.pareto_k).ravel()
    good = getattr(res, "good_k", None)
    return {"elpd_loo": float(elpd), "se": float(res.se), "p_loo": float(p),
            "n_data": int(k.size), "pareto_k": k,
            "good_k": float(good) if good is not None else 0.7}


def bfmi(idata) -> np.ndarray | None:
    r"""Energy Bayesian fraction of missing information per chain [3]_ (``arviz.bfmi``),
    :math:`\sum_{n=2}^N (E_n - E_{n-1})^2 \big/ \sum_{n=1}^N (E_n - \bar E)^2`, or ``None``
    when ``sample_stats`` has no ``energy``. Values below 0.3 mean that resampling the
    momentum moves the energy too little to explore its distribution (heavy tails,
    funnels)."""
    if "sample_stats" not in group_names(idata) or "energy" not in _group(idata,
                                                                            "sample_stats"):
        return None
    out = _arviz().bfmi(idata)
    if hasattr(out, "children") or hasattr(out, "data_vars"):  # arviz 1.x: a tree / dataset
        node = out.to_dataset() if hasattr(out, "to_dataset") else out
        out = node["energy"].values
    return np.asarray(out, dtype=float).ravel()


_PPC_STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "mean": np.mean,
    "sd": np.std,
    "min": np.min,
    "max": np.max,
}


def ppc_pvalues(idata, statistics: Mapping[str, Callable] | None = None) -> dict:
    r"""Posterior predictive p-values of discrepancy statistics [4]_.

    For each observed variable :math:`y` and statistic :math:`T` (a function of the whole
    data set), :math:`p = \Pr(T(y^\mathrm{rep}) \ge T(y) \mid y)`, estimated by the fraction
    of posterior predictive draws :math:`y^\mathrm{rep}_s` with :math:`T(y^\mathrm{rep}_s)
    \ge T(y)`. Values near 0 or 1 say that the model rarely reproduces that feature of the
    data. These p-values are not uniform under a correct model (they concentrate near 0.5),
    so they flag gross misfit only.

    Parameters
    ----------
    idata
        With ``observed_data`` and ``posterior_predictive`` groups.
    statistics : dict of name -> callable ``(array) -> float``, optional
        Default: mean, standard deviation, minimum and maximum over all elements.

    Returns
    -------
    dict
        ``{var: {stat: {"observed": T(y), "replicated_mean": mean_s T(y_s), "p_value": p}}}``
        (empty without the two groups).
    """
    groups = group_names(idata)
    if "posterior_predictive" not in groups or "observed_data" not in groups:
        return {}
    stats = dict(statistics) if statistics is not None else dict(_PPC_STATISTICS)
    pp, od = _group(idata, "posterior_predictive"), _group(idata, "observed_data")
    out = {}
    for var in pp.data_vars:
        if var not in od:
            continue
        y = np.asarray(od[var].values)
        rep = np.asarray(pp[var].values)
        rep = rep.reshape(-1, *y.shape)
        res = {}
        for name, fn in stats.items():
            t_obs = float(fn(y))
            t_rep = np.asarray([float(fn(r)) for r in rep])
            res[name] = {"observed": t_obs, "replicated_mean": float(t_rep.mean()),
                         "p_value": float(np.mean(t_rep >= t_obs))}
        out[str(var)] = res
    return out


# ------------------------------------------------------------------ model comparison
def compare_loo(models: Mapping[str, object], **kwargs):
    """Compare models by PSIS-LOO expected log pointwise predictive density.

    Parameters
    ----------
    models : dict of name -> InferenceData
        Each with a ``log_likelihood`` group on the **same** observations (e.g. one Bayesian
        PPCA per number of components K).

    Returns
    -------
    pandas.DataFrame
        ``arviz.compare`` ranking (best first): ``elpd_loo`` (log scale, higher is better),
        ``p_loo``, ``elpd_diff`` (best minus this model, >= 0) and its standard error
        ``dse``, ``weight``... (on arviz 1.x, whose names are ``elpd`` / ``p`` and whose
        ``elpd_diff`` has the opposite sign, the table is converted to these).
        ``df.attrs["warnings"]`` lists the ArviZ warnings (Pareto k) raised while computing
        it, and ``df.attrs["best"]`` is the top-ranked name.
    """
    if not isinstance(models, Mapping) or len(models) < 2:
        raise ValueError(
            "models must be a dict of at least two name -> InferenceData entries. "
            f"Got {type(models).__name__} with {len(models) if hasattr(models, '__len__') else 0}"
            " entries instead."
        )
    az = _arviz()
    if arviz_major_version() >= 1:
        kwargs.setdefault("round_to", "none")  # 1.x rounds by default
        df, messages = _captured(az.compare, dict(models), **kwargs)
        # arviz 1.x: elpd / p, and elpd_diff = elpd_m - elpd_best <= 0; 0.x: elpd_loo / p_loo
        # and elpd_diff = elpd_best - elpd_m >= 0. pyrogen returns the 0.x convention.
        df = df.rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
        df["elpd_diff"] = -df["elpd_diff"]
    else:
        kwargs.setdefault("ic", "loo")
        kwargs.setdefault("scale", "log")
        df, messages = _captured(az.compare, dict(models), **kwargs)
    df.attrs["warnings"] = messages
    df.attrs["best"] = str(df.index[0])
    return df


@dataclass
class ModelComparison:
    """Result of :func:`compare_models` / :func:`choose_n_components`.

    Attributes
    ----------
    table : pandas.DataFrame
        The :func:`compare_loo` table (best first).
    best : str
        Highest ``elpd_loo``.
    chosen : str
        The model the rule picks (see :func:`compare_models`).
    elpd_diff, dse : float
        ``elpd_loo`` of ``best`` minus that of ``chosen`` and the standard error of that
        difference (0 and 0 when ``chosen == best``).
    simpler : str or None
        The model listed just before ``chosen`` (None for the first), with
        ``simpler_elpd_diff`` / ``simpler_dse``: how much worse it is than the best model,
        the evidence that ``chosen`` is not too large.
    rule, se_factor
        How ``chosen`` was picked.
    warnings : list of str
        ArviZ warnings (Pareto k) raised on the way.
    models : dict
        Fitted models by name (:func:`choose_n_components` only).
    chosen_value : int or None
        The number of components of ``chosen`` (:func:`choose_n_components` only).
    """

    table: object
    best: str
    chosen: str
    elpd_diff: float
    dse: float
    simpler: str | None
    simpler_elpd_diff: float | None
    simpler_dse: float | None
    rule: str
    se_factor: float
    warnings: list = field(default_factory=list)
    models: dict = field(default_factory=dict)
    chosen_value: int | None = None

    def __str__(self) -> str:
        lines = [f"PSIS-LOO ranks first: {self.best}; the {self.rule} rule chooses "
                 f"{self.chosen} (elpd_loo {self.elpd_diff:.1f} +- {self.dse:.1f} below the "
                 f"best)"]
        if self.simpler is not None:
            lines.append(f"next simpler model {self.simpler}: elpd_loo "
                         f"{self.simpler_elpd_diff:.1f} +- {self.simpler_dse:.1f} below the "
                         "best")
        if self.warnings:
            lines.append(f"ArviZ warnings: {len(self.warnings)} (Pareto k; see .warnings)")
        return "\n".join(lines)


def compare_models(models: Mapping[str, object], *, rule: str = "parsimonious",
                   se_factor: float = 2.0, **kwargs) -> ModelComparison:
    r"""Rank models by PSIS-LOO and choose one, in one call.

    Parameters
    ----------
    models : dict of name -> InferenceData
        On the same observations, listed from the simplest to the most complex (e.g.
        ``{"K=1": ..., "K=2": ..., "K=3": ...}``).
    rule : {"parsimonious", "best"}
        ``"best"``: the highest ``elpd_loo``. ``"parsimonious"``: the first (simplest) model
        whose ``elpd_loo`` is within ``se_factor`` standard errors of the best,
        :math:`\mathrm{elpd}_\mathrm{best} - \mathrm{elpd}_m \le c\,
        \mathrm{se}(\mathrm{elpd}_\mathrm{best} - \mathrm{elpd}_m)`; a larger model has to
        earn its place by more than the noise of the estimate [1]_.
    se_factor : float
        :math:`c` above (default 2).
    **kwargs
        Passed to ``arviz.compare``.

    Returns
    -------
    ModelComparison
    """
    rule = check_choice(rule, "rule", ("parsimonious", "best"))
    se_factor = check_float(se_factor, "se_factor", 0.0, None, "cc")
    df = compare_loo(models, **kwargs)
    names = [str(n) for n in models]

    def diff(name):
        return float(df.loc[name, "elpd_diff"]), float(np.nan_to_num(df.loc[name, "dse"]))

    best = df.attrs["best"]
    chosen = best
    if rule == "parsimonious":
        for name in names:
            d, s = diff(name)
            if d <= se_factor * s or name == best:
                chosen = name
                break
    i = names.index(chosen)
    simpler = names[i - 1] if i > 0 else None
    d, s = diff(chosen)
    sd, ss = diff(simpler) if simpler is not None else (None, None)
    return ModelComparison(table=df, best=best, chosen=chosen, elpd_diff=d, dse=s,
                           simpler=simpler, simpler_elpd_diff=sd, simpler_dse=ss, rule=rule,
                           se_factor=se_factor, warnings=list(df.attrs["warnings"]))


def choose_n_components(model_cls, x, ks: Sequence[int], *,
                        model_kwargs: Mapping | None = None,
                        fit_kwargs: Mapping | None = None, rule: str = "parsimonious",
                        se_factor: float = 2.0) -> ModelComparison:
    """Fit one model per number of components and choose K by PSIS-LOO.

    For each ``k`` in ``ks`` (increasing): ``model_cls(n_features, k, **model_kwargs)``,
    cast to the dtype of ``x``, ``fit(x, **fit_kwargs)``, ``to_inference_data()``; then
    :func:`compare_models`. Works for any model class with that constructor and a
    ``to_inference_data`` whose ``log_likelihood`` group is on ``x`` (the Bayesian factor
    models; their NumPyro backend via ``fit_kwargs={"backend": "numpyro", ...}`` where the
    model offers it).

    Parameters
    ----------
    model_cls : type
        E.g. :class:`pyrogen.models.BayesianPPCA`.
    x : Tensor, shape ``(n, n_features)``
    ks : sequence of int
        Candidate numbers of components, at least two, strictly increasing.
    model_kwargs, fit_kwargs : dict, optional
        Constructor and ``fit`` arguments (e.g. ``{"method": "nuts", "num_chains": 2}``).
    rule, se_factor
        See :func:`compare_models`.

    Returns
    -------
    ModelComparison
        ``chosen_value`` is the chosen K; ``models`` maps ``"K=k"`` to the fitted models.

    Raises
    ------
    ValueError
        ``ks`` not a strictly increasing sequence of at least two positive ints.
    """
    ks = list(ks) if isinstance(ks, Sequence) and not isinstance(ks, str) else None
    if (ks is None or len(ks) < 2 or any(isinstance(k, bool) or not isinstance(k, int)
                                         or k < 1 for k in ks)
            or any(b <= a for a, b in zip(ks, ks[1:]))):
        raise ValueError(
            "ks must be a strictly increasing sequence of at least two positive ints. "
            f"Got {ks!r} instead."
        )
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"x must be a 2-D array (n, n_features). Got shape {tuple(x.shape)}.")
    models, idatas = {}, {}
    for k in ks:
        m = model_cls(x.shape[1], k, **dict(model_kwargs or {}))
        if isinstance(m, torch.nn.Module) and x.is_floating_point():
            m = m.to(dtype=x.dtype)
        m.fit(x, **dict(fit_kwargs or {}))
        models[f"K={k}"] = m
        idatas[f"K={k}"] = m.to_inference_data(x)
    res = compare_models(idatas, rule=rule, se_factor=se_factor)
    res.models = models
    res.chosen_value = int(res.chosen.split("=")[1])
    return res


# ------------------------------------------------------------------ report
def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@dataclass
class Report:
    """What :func:`report` found for one run (also written to ``report.json``).

    Attributes
    ----------
    title : str
    inference_library : str or None
        ``"pyro"`` or ``"numpyro"`` where known.
    chains, draws : int
    summary : dict
        ``{quantity: {"mean", "sd", "ess_bulk", "ess_tail", "r_hat"}}`` per scalar.
    divergences : dict or None
        ``{"total": int, "per_chain": [...]}``; None without sampler statistics.
    bfmi : list of float or None
        Per chain; None when the run recorded no energy.
    loo : dict or None
        Per observed variable: ``elpd_loo``, ``se``, ``p_loo``, ``n_data``, ``good_k`` and
        ``pareto_k_counts`` (``"k<=0.5"``, ``"0.5<k<=0.7"``, ``"0.7<k<=1"``, ``"k>1"``).
    ppc : dict or None
        :func:`ppc_pvalues` output.
    problems : list of str
        Each failed check in plain words (empty: nothing flagged).
    notes : list of str
        Checks that could not be made and why, ArviZ warnings.
    files : dict
        Written files by kind (``json``, ``text``, ``trace``, ``rank``, ``ppc``).
    thresholds : dict
        The limits the checks used.
    """

    title: str
    inference_library: str | None
    chains: int
    draws: int
    summary: dict
    divergences: dict | None
    bfmi: list | None
    loo: dict | None
    ppc: dict | None
    problems: list
    notes: list
    files: dict
    thresholds: dict
    arviz_version: str

    @property
    def ok(self) -> bool:
        """True when no check flagged a problem."""
        return not self.problems

    def to_dict(self) -> dict:
        return _jsonable({
            "title": self.title, "inference_library": self.inference_library,
            "chains": self.chains, "draws": self.draws, "ok": self.ok,
            "problems": self.problems, "notes": self.notes, "thresholds": self.thresholds,
            "divergences": self.divergences, "bfmi": self.bfmi, "loo": self.loo,
            "ppc": self.ppc, "summary": self.summary, "files": self.files,
            "arviz_version": self.arviz_version,
        })

    def __str__(self) -> str:
        t = self.thresholds
        lines = [f"{self.title}: {self.chains} chain(s) x {self.draws} draws"
                 + (f" ({self.inference_library})" if self.inference_library else "")]
        if self.summary:
            rh = [v["r_hat"] for v in self.summary.values() if v["r_hat"] is not None
                  and math.isfinite(v["r_hat"])]
            eb = [v["ess_bulk"] for v in self.summary.values()]
            et = [v["ess_tail"] for v in self.summary.values()]
            lines.append(f"  {len(self.summary)} quantities: max r_hat "
                         + (f"{max(rh):.3f}" if rh else "n/a")
                         + f" (want <= {t['rhat_max']}), min ESS bulk {min(eb):.0f} / tail "
                         f"{min(et):.0f} (want >= {t['ess_min']})")
        if self.divergences is not None:
            lines.append(f"  divergences: {self.divergences['total']} "
                         f"(per chain {self.divergences['per_chain']})")
        if self.bfmi is not None:
            lines.append("  BFMI per chain: " + ", ".join(f"{b:.2f}" for b in self.bfmi)
                         + f" (want >= {t['bfmi_min']})")
        for var, res in (self.loo or {}).items():
            c = res["pareto_k_counts"]
            lines.append(f"  PSIS-LOO[{var}]: elpd_loo {res['elpd_loo']:.1f} +- "
                         f"{res['se']:.1f}, p_loo {res['p_loo']:.1f}; Pareto k: "
                         + ", ".join(f"{k} {n}" for k, n in c.items()))
        for var, stats in (self.ppc or {}).items():
            lines.append(f"  PPC[{var}] p-values: " + ", ".join(
                f"{s} {r['p_value']:.2f}" for s, r in stats.items()))
        lines.append("problems:" if self.problems else "problems: none flagged")
        lines += [f"  - {p}" for p in self.problems]
        if self.notes:
            lines.append("notes:")
            lines += [f"  - {n}" for n in self.notes]
        if self.files:
            lines.append("files: " + ", ".join(os.path.basename(f) for f in self.files.values()))
        return "\n".join(lines)


def _save_plot(kind: str, idata, var_names, path: str, num_pp: int) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    az = _arviz()
    before = set(plt.get_fignums())
    tmp = f"{path}.tmp{os.getpid()}.png"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if arviz_major_version() >= 1:
                fn = {"trace": az.plot_trace_dist, "rank": az.plot_rank,
                      "ppc": az.plot_ppc_dist}[kind]
                kw = {"num_samples": num_pp} if kind == "ppc" else {"var_names": var_names}
                pc = fn(idata, backend="matplotlib", **kw)
                pc.savefig(tmp)
            else:
                if kind == "trace":
                    axes = az.plot_trace(idata, var_names=var_names, compact=True)
                elif kind == "rank":
                    axes = az.plot_rank(idata, var_names=var_names)
                else:
                    axes = az.plot_ppc(idata, num_pp_samples=num_pp)
                fig = np.ravel(axes)[0].figure
                fig.tight_layout()
                fig.savefig(tmp, dpi=80)
        os.replace(tmp, path)
    finally:
        for num in set(plt.get_fignums()) - before:
            plt.close(num)
        if os.path.exists(tmp):
            os.remove(tmp)


def _k_counts(k: np.ndarray) -> dict:
    return {"k<=0.5": int((k <= 0.5).sum()), "0.5<k<=0.7": int(((k > 0.5) & (k <= 0.7)).sum()),
            "0.7<k<=1": int(((k > 0.7) & (k <= 1)).sum()), "k>1": int((k > 1).sum())}


def _fmt_worst(items, n=3, fmt="{:.3f}"):
    return ", ".join(f"{name} {fmt.format(v)}" for name, v in items[:n])


def report(
    data,
    out_dir: str | os.PathLike,
    *,
    var_names: Sequence[str] | None = None,
    title: str = "pyrogen diagnostics report",
    plots: bool = True,
    max_plot_vars: int = 6,
    ppc_statistics: Mapping[str, Callable] | None = None,
    rhat_max: float = 1.01,
    ess_min: float = 400,
    bfmi_min: float = 0.3,
    pareto_k_max: float = 0.7,
    ppc_alpha: float = 0.05,
    idata_kwargs: Mapping | None = None,
) -> Report:
    r"""Diagnose one run: r-hat, ESS, divergences, BFMI, PSIS-LOO, posterior predictive checks.

    Writes into ``out_dir`` (created if missing; every file written atomically, to a temporary
    name then ``os.replace``): ``report.json`` (machine-readable, :meth:`Report.to_dict`),
    ``report.txt`` (the short text, ``str(report)``) and, with ``plots=True``, ``trace.png``,
    ``rank.png`` (rank histograms per chain: uniform when the chains agree) and ``ppc.png``
    (observed versus replicated data).

    Checks, each failure worded in ``Report.problems``:

    - rank-normalized split :math:`\hat R` [2]_ above ``rhat_max`` (needs >= 2 chains);
    - bulk or tail effective sample size below ``ess_min``;
    - any divergent transition (the sampler met curvature it could not integrate: the
      posterior estimate may be biased);
    - energy BFMI [3]_ below ``bfmi_min`` in a chain (only where the run recorded energy);
    - PSIS-LOO [1]_ Pareto :math:`\hat k` above ``pareto_k_max`` for some observation (its
      LOO term is unreliable);
    - a posterior predictive p-value [4]_ (:func:`ppc_pvalues`) below :math:`\alpha/2` or
      above :math:`1-\alpha/2`, with :math:`\alpha` = ``ppc_alpha``.

    Parameters
    ----------
    data
        ``InferenceData`` / ``DataTree``; a fitted pyrogen model (its ``to_inference_data()``
        is used); or anything :func:`to_inference_data` accepts (with ``idata_kwargs``).
    out_dir : path
    var_names : sequence of str, optional
        Posterior variables to check. Default: every posterior variable with at most 100
        elements per draw (per-example latents are skipped and noted). For factor models
        pass rotation-invariant ones (``noise``, ``WWt_diag``, ``col_norm2``).
    title : str
    plots : bool
        Write the PNGs (the trace and rank plots show the first ``max_plot_vars`` checked
        variables with at most 16 elements each).
    ppc_statistics : dict, optional
        Discrepancy statistics for :func:`ppc_pvalues`.
    rhat_max, ess_min, bfmi_min, pareto_k_max, ppc_alpha : float
        Thresholds (defaults: 1.01, 400, 0.3, 0.7, 0.05).
    idata_kwargs : dict, optional
        Passed to ``to_inference_data`` when ``data`` is not ArviZ data yet.

    Returns
    -------
    Report

    Raises
    ------
    ValueError
        Bad thresholds, or ``var_names`` naming no posterior variable.
    """
    rhat_max = check_float(rhat_max, "rhat_max", 1.0, None, "co")
    ess_min = check_float(ess_min, "ess_min", 0.0, None, "co")
    bfmi_min = check_float(bfmi_min, "bfmi_min", 0.0, None, "co")
    pareto_k_max = check_float(pareto_k_max, "pareto_k_max", 0.0, None, "co")
    ppc_alpha = check_float(ppc_alpha, "ppc_alpha", 0.0, 1.0, "oo")
    max_plot_vars = check_int(max_plot_vars, "max_plot_vars", low=1)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    idata = _as_idata(data, **dict(idata_kwargs or {}))
    groups = group_names(idata)
    post = _group(idata, "posterior")
    C, S = int(post.sizes["chain"]), int(post.sizes["draw"])
    problems: list[str] = []
    notes: list[str] = []

    # ---- r-hat and ESS
    sizes = {str(v): int(np.prod(post[v].shape[2:])) for v in post.data_vars}
    if var_names is None:
        names = [v for v, n in sizes.items() if n <= 100]
        skipped = [v for v, n in sizes.items() if n > 100]
        if skipped:
            notes.append("not checked (more than 100 elements per draw; name them in "
                         f"var_names to include them): {', '.join(skipped)}")
    else:
        names = [str(v) for v in var_names]
        missing = [v for v in names if v not in sizes]
        if missing or not names:
            raise ValueError(
                f"var_names must name posterior variables ({', '.join(sizes)}). Got "
                f"{names!r} instead."
            )
    table = {}
    if names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # r-hat of one chain: NaN, said below
            df = summary(idata, var_names=names)
        for q, row in df.iterrows():
            table[str(q)] = {c: float(row[c]) for c in ("mean", "sd", "ess_bulk", "ess_tail",
                                                        "r_hat")}
    if C < 2:
        notes.append("r_hat needs at least 2 chains: not checked (run more chains)")
    else:
        bad = sorted(((q, v["r_hat"]) for q, v in table.items()
                      if math.isfinite(v["r_hat"]) and v["r_hat"] > rhat_max),
                     key=lambda t: -t[1])
        if bad:
            problems.append(
                f"r_hat above {rhat_max} for {len(bad)} of {len(table)} quantities (worst: "
                f"{_fmt_worst(bad)}): the chains disagree, so the draws do not yet represent "
                "the posterior. Run longer chains, or check for several modes (for factor "
                "models check rotation-invariant quantities)."
            )
    for kind in ("bulk", "tail"):
        low = sorted(((q, v[f"ess_{kind}"]) for q, v in table.items()
                      if v[f"ess_{kind}"] < ess_min), key=lambda t: t[1])
        if low:
            problems.append(
                f"{kind} effective sample size below {ess_min:g} for {len(low)} of "
                f"{len(table)} quantities (lowest: {_fmt_worst(low, fmt='{:.0f}')}): "
                + ("posterior means" if kind == "bulk" else "posterior intervals")
                + " are estimated from too few effective draws. Draw more samples."
            )

    # ---- sampler statistics
    divergences = bfmi_values = None
    if "sample_stats" in groups:
        stats = _group(idata, "sample_stats")
        if "diverging" in stats:
            per = np.asarray(stats["diverging"].values, dtype=bool).reshape(C, -1).sum(1)
            divergences = {"total": int(per.sum()), "per_chain": [int(p) for p in per]}
            if per.sum() > 0:
                problems.append(
                    f"{int(per.sum())} divergent transition(s) after warm-up (per chain "
                    f"{divergences['per_chain']}): the sampler met curvature it could not "
                    "follow, so the draws may be biased. Raise target_accept_prob or "
                    "reparameterize (non-centred)."
                )
        b = bfmi(idata)
        if b is None:
            notes.append(
                "BFMI unavailable: the run recorded no per-draw energy (Pyro's NUTS/HMC keep "
                "none: sample with pyrogen.diagnostics.RecordingNUTS, or run NumPyro with "
                "extra_fields=NUMPYRO_EXTRA_FIELDS)"
            )
        else:
            bfmi_values = [float(v) for v in b]
            low = [(f"chain {c}", v) for c, v in enumerate(bfmi_values) if v < bfmi_min]
            if low:
                problems.append(
                    f"BFMI below {bfmi_min} ({_fmt_worst(low, n=len(low), fmt='{:.2f}')}): "
                    "resampling the momentum barely changes the energy, so the sampler "
                    "explores the tails slowly (heavy tails or a funnel). Reparameterize."
                )
    else:
        notes.append("no sampler statistics (draws from an SVI guide or a dict of draws): "
                     "divergences and BFMI do not apply")

    # ---- PSIS-LOO
    loo_out = None
    if "log_likelihood" in groups:
        loo_out = {}
        for var in _group(idata, "log_likelihood").data_vars:
            res, messages = loo(idata, var_name=str(var))
            nums = loo_numbers(res)
            k = nums.pop("pareto_k")
            nums["pareto_k_counts"] = _k_counts(k)
            nums["pareto_k_max"] = float(np.max(k)) if k.size else None
            loo_out[str(var)] = nums
            notes += [f"ArviZ (loo {var}): {m.splitlines()[0][:200]}" for m in messages]
            n_bad = int((k > pareto_k_max).sum())
            if n_bad:
                problems.append(
                    f"Pareto k above {pareto_k_max} for {n_bad} of {k.size} observations of "
                    f"'{var}' (max {float(k.max()):.2f}): PSIS-LOO is unreliable for them "
                    "(influential points or a posterior that leaving one out changes much); "
                    "refit without them (k-fold) or use a more robust model."
                )
    else:
        notes.append("no log_likelihood group: PSIS-LOO not computed")

    # ---- posterior predictive checks
    ppc = ppc_pvalues(idata, ppc_statistics) or None
    if ppc is None:
        notes.append("no posterior_predictive / observed_data group: no posterior "
                     "predictive check")
    else:
        lo, hi = ppc_alpha / 2, 1 - ppc_alpha / 2
        for var, res in ppc.items():
            bad = [(s, r["p_value"]) for s, r in res.items()
                   if r["p_value"] < lo or r["p_value"] > hi]
            if bad:
                problems.append(
                    f"posterior predictive p-value outside [{lo:g}, {hi:g}] for '{var}' "
                    f"({_fmt_worst(bad, n=len(bad), fmt='{:.3f}')}): replicated data rarely "
                    "reproduce this feature of the observed data (model misfit)."
                )

    # ---- files
    files = {}
    if plots:
        small = [v for v in names if v in sizes and sizes[v] <= 16][:max_plot_vars]
        kinds = []
        if small:
            kinds += ["trace", "rank"]
        else:
            notes.append("no trace/rank plots: no checked variable has at most 16 elements")
        if ppc is not None:
            kinds.append("ppc")
        for kind in kinds:
            path = os.path.join(out_dir, f"{kind}.png")
            try:
                _save_plot(kind, idata, small, path, num_pp=min(50, C * S))
                files[kind] = path
            except Exception as err:  # noqa: BLE001 - a failed plot is reported, not fatal
                notes.append(f"{kind} plot failed: {type(err).__name__}: {err}")
    files["json"] = os.path.join(out_dir, "report.json")
    files["text"] = os.path.join(out_dir, "report.txt")
    attrs = dict(getattr(post, "attrs", {}) or {})
    rep = Report(
        title=str(title), inference_library=attrs.get("inference_library"), chains=C,
        draws=S, summary=table, divergences=divergences, bfmi=bfmi_values, loo=loo_out,
        ppc=ppc, problems=problems, notes=notes, files=files,
        thresholds={"rhat_max": rhat_max, "ess_min": ess_min, "bfmi_min": bfmi_min,
                    "pareto_k_max": pareto_k_max, "ppc_alpha": ppc_alpha},
        arviz_version=str(_arviz().__version__),
    )
    _atomic_write_text(files["json"], json.dumps(rep.to_dict(), indent=2) + "\n")
    _atomic_write_text(files["text"], str(rep) + "\n")
    return rep
