r"""Sampler statistics of Pyro and NumPyro MCMC runs, by the names ArviZ uses.

Sampler statistics by source:

- NumPyro ``MCMC`` run with ``extra_fields=NUMPYRO_EXTRA_FIELDS``: ``diverging``, ``energy``,
  ``lp``, ``n_steps``, ``tree_depth``, ``step_size``, ``acceptance_rate``;
- NumPyro ``MCMC`` with its default fields: ``diverging``;
- Pyro ``MCMC`` with :class:`~pyrogen.diagnostics.RecordingNUTS`: the same seven as NumPyro;
- Pyro ``MCMC`` with ``NUTS`` or ``HMC``: ``diverging`` only (Pyro keeps neither per-draw
  energy nor tree statistics, so BFMI is unavailable).
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.infer
import torch

from .recording import RecordingNUTS, mcmc_divergences

__all__ = ["NUMPYRO_EXTRA_FIELDS", "mcmc_sample_stats"]


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
            div = np.zeros(m.num_samples, dtype=bool)
            idx = np.asarray(mcmc_divergences(m, c), dtype=int)
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
