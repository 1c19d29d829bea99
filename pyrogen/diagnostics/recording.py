r"""The one file of pyrogen that uses private Pyro (and NumPyro) API.

* :class:`RecordingNUTS` overrides private methods of Pyro's ``NUTS`` (``_sample_r``,
  ``_build_basetree``, ``_build_tree``) and reads private state (``_fetch_from_cache``,
  ``_kinetic_energy`` and fields of the tree record) to keep the per-draw statistics that
  Pyro's NUTS discards (energy for BFMI, tree depth, steps, acceptance rate).
* :func:`mcmc_divergences` reads a Pyro ``MCMC`` run's per-chain diagnostics
  (``MCMC._diagnostics``); :func:`mcmc_run_args` the arguments a Pyro or NumPyro ``MCMC`` was
  run with (``MCMC._args`` / ``_kwargs``).

No public API offers these. They were written for, and are tested with, the Pyro versions in
:data:`TESTED_PYRO_VERSIONS`; :func:`check_pyro_private_api` (called when a
:class:`RecordingNUTS` is built) checks that every private name used here still exists with the
signature it had, and raises a ``RuntimeError`` naming the installed and the tested versions
when it does not; on another version in which they still exist it warns once. The test
``tests/diagnostics/test_recording.py`` fails when Pyro changes any of them.
"""

from __future__ import annotations

import functools
import inspect
import warnings

import pyro
from pyro.infer.mcmc import NUTS
from pyro.infer.mcmc.nuts import _TreeInfo

__all__ = [
    "RecordingNUTS",
    "TESTED_PYRO_VERSIONS",
    "check_pyro_private_api",
    "mcmc_divergences",
    "mcmc_run_args",
]

#: Pyro versions (major.minor) whose private NUTS internals :class:`RecordingNUTS` was written
#: for and tested with
TESTED_PYRO_VERSIONS = ("1.9",)

#: private methods of ``pyro.infer.mcmc.NUTS`` used here, with their parameter names
PRIVATE_NUTS_METHODS = {
    "_sample_r": ("self", "name"),
    "_build_basetree": ("self", "z", "r", "z_grads", "log_slice", "direction", "energy_current"),
    "_build_tree": (
        "self", "z", "r", "z_grads", "log_slice", "direction", "tree_depth", "energy_current",
    ),
    "_fetch_from_cache": ("self",),
    "_kinetic_energy": ("self", "r_unscaled"),
}

#: fields of Pyro's private ``_TreeInfo`` record read here
PRIVATE_TREE_FIELDS = (
    "z_proposal", "z_proposal_pe", "r_left_unscaled", "diverging", "sum_accept_probs",
    "num_proposals",
)


def _pyro_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@functools.cache
def check_pyro_private_api() -> None:
    """Check that the private Pyro API this module uses is there, with the expected signatures.

    Raises
    ------
    RuntimeError
        A private method or tree field is missing or has other parameters; the message names
        the installed Pyro version and :data:`TESTED_PYRO_VERSIONS`.

    Warns
    -----
    UserWarning
        The API is there but the installed Pyro is not a tested version (once per process).
    """
    version = str(pyro.__version__)
    problems = []
    for name, params in PRIVATE_NUTS_METHODS.items():
        fn = getattr(NUTS, name, None)
        if fn is None or not callable(fn):
            problems.append(f"NUTS.{name} is missing")
            continue
        got = tuple(inspect.signature(fn).parameters)
        if got != params:
            problems.append(f"NUTS.{name}{got} (expected {params})")
    missing = [f for f in PRIVATE_TREE_FIELDS if f not in getattr(_TreeInfo, "_fields", ())]
    if missing:
        problems.append(f"pyro.infer.mcmc.nuts._TreeInfo lacks {missing}")
    if problems:
        raise RuntimeError(
            f"pyrogen.diagnostics.RecordingNUTS needs private Pyro NUTS internals that Pyro "
            f"{version} does not have as expected: {'; '.join(problems)}. It was written for "
            f"Pyro {', '.join(TESTED_PYRO_VERSIONS)}; install one of those, or sample with "
            "pyro.infer.NUTS (no per-draw energy, so no BFMI)."
        )
    if _pyro_minor(version) not in TESTED_PYRO_VERSIONS:
        warnings.warn(
            f"pyrogen.diagnostics.RecordingNUTS was tested with Pyro "
            f"{', '.join(TESTED_PYRO_VERSIONS)}, not {version}; the private NUTS methods it "
            "overrides are present, but check its statistics against NumPyro's.",
            UserWarning,
            stacklevel=3,
        )


def mcmc_divergences(mcmc, chain: int) -> list[int]:
    """Indices of the divergent post-warm-up draws of ``chain`` of a Pyro ``MCMC`` run
    (empty for kernels that record none). Reads ``MCMC._diagnostics``."""
    d = mcmc._diagnostics[chain] or {}
    return list(d.get("divergences", []))


def mcmc_run_args(mcmc) -> tuple[tuple | None, dict]:
    """``(args, kwargs)`` a Pyro or NumPyro ``MCMC`` was last run with (``(None, {})`` before
    a run). Reads ``MCMC._args`` / ``MCMC._kwargs``."""
    args = getattr(mcmc, "_args", None)
    kwargs = getattr(mcmc, "_kwargs", None) or {}
    return (tuple(args) if args is not None else None), dict(kwargs)


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
        check_pyro_private_api()
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
