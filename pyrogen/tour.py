"""``pyrogen tour``: fit every model family on built-in data and write a report folder.

Each family contributes one *step*: a function ``step(ctx: TourContext) -> list[dict]`` in
``pyrogen/_tour/<family>.py``, listed in :data:`STEP_MODULES`. A step fits its models through the
public API, and returns one result dict per fitted model with at least::

    {"model": "FactorAnalysis(K=10)", "data": Dataset.info, "method": "em",
     "log_likelihood": LogLikelihood.to_dict(), "fit_seconds": 0.4, "figures": ["fa.png"]}

The tour prints one line per result and writes ``report.json`` (every figure, with the data's
identity: binarization scheme and seed) plus the PNGs into the output folder, and ``index.html``,
a static page rendered from ``report.json`` (:mod:`pyrogen.report_html`).
"""

from __future__ import annotations

import importlib
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import __version__
from .datasets import Dataset, load_digits
from .exceptions import ConvergenceWarning
from .report_html import software_versions, write_report

#: modules under ``pyrogen._tour`` with a ``step(ctx)`` function, in tour order
STEP_MODULES: list[str] = [
    "factor", "ica", "sfa", "sparse_coding", "rbm", "conv_rbm", "sequential_rbm", "dbm",
    "gated_rbm", "dbn", "vae",
    "ssvae", "sbn", "nade", "gan", "gsn", "diffusion", "covariance_rbm"
]


@dataclass
class TourContext:
    """What a tour step gets: the output folder, the seed, the size and cached data."""

    out_dir: str
    seed: int = 0
    quick: bool = False
    print_fn: Callable[[str], None] = print
    _cache: dict = field(default_factory=dict)

    def digits(self, binarize: str | None = None) -> Dataset:
        """Digits in float32, real-valued or binarized (cached)."""
        key = ("digits", binarize)
        if key not in self._cache:
            self._cache[key] = load_digits(binarize=binarize, seed=self.seed)
        return self._cache[key]

    def path(self, name: str) -> str:
        return os.path.join(self.out_dir, name)


def format_result(r: dict) -> str:
    """One printed line per fitted model: what, on which data, its log-likelihood, time."""
    data = r.get("data", {})
    b = data.get("binarization")
    btxt = "real-valued" if b is None else f"binarization={b}"
    if b == "stochastic":
        btxt += f", seed {data.get('binarization_seed')}"
    ll = r.get("log_likelihood")
    if ll:
        se = ll.get("mean_stderr")
        se_txt = "" if se is None else f" ± {se:.3f}"
        lltxt = f"log-lik {ll['mean_nats']:.3f}{se_txt} nats/ex [{ll['kind']}]"
    else:
        lltxt = "no log-likelihood"
    extra = r.get("summary", "")
    extra = f"; {extra}" if extra else ""
    return (
        f"{r['model']:<34} {data.get('name')}[{data.get('split')}] {btxt} | "
        f"{lltxt} | fit {r.get('fit_seconds', float('nan')):.2f}s ({r.get('method')}){extra}"
    )


def run_tour(
    out_dir: str = "pyrogen-report",
    seed: int = 0,
    quick: bool = False,
    only: list[str] | None = None,
    print_fn: Callable[[str], None] = print,
    command: str | None = None,
) -> dict:
    """Run the tour; returns (and writes as ``report.json``) every result.

    The folder also gets ``index.html``, rendered from ``report.json`` by
    :func:`pyrogen.report_html.write_report`.

    Parameters
    ----------
    out_dir : str
        Report folder (created).
    seed : int
        Seed of every fit and of stochastic binarizations.
    quick : bool
        Smaller fits (used by the test suite).
    only : list of str, optional
        Restrict to these step modules (e.g. ``["factor"]``).
    command : str, optional
        The command that produced the report (recorded in it; default the Python call).
    """
    os.makedirs(out_dir, exist_ok=True)
    steps = STEP_MODULES if not only else [s for s in STEP_MODULES if s in only]
    unknown = sorted(set(only or ()) - set(STEP_MODULES))
    if unknown:
        raise ValueError(f"only must name tour steps from {STEP_MODULES}. Got {unknown} instead.")
    ctx = TourContext(out_dir=out_dir, seed=seed, quick=quick, print_fn=print_fn)
    if command is None:
        command = (f"pyrogen.tour.run_tour(out_dir={out_dir!r}, seed={seed!r}, quick={quick!r}, "
                   f"only={only!r})")
    report = {
        "title": "pyrogen tour" + (" (quick)" if quick else ""),
        "command": command,
        "software": software_versions(),
        "pyrogen_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "seed": seed,
        "quick": quick,
        "results": [],
        # fits that stopped before their convergence test was met (quick sizes always do)
        "convergence_warnings": [],
    }
    t0 = time.perf_counter()
    for name in steps:
        module = importlib.import_module(f"pyrogen._tour.{name}")
        # tour models are small: a second intra-op thread only adds synchronisation (measured
        # 10-100x slower on a busy 2-core machine); restore the caller's setting afterwards
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                results = module.step(ctx)
        finally:
            torch.set_num_threads(threads)
        for w in caught:  # ConvergenceWarnings go to the report; any other is shown as usual
            if issubclass(w.category, ConvergenceWarning):
                report["convergence_warnings"].append({"step": name, "message": str(w.message)})
            else:
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        for r in results:
            r.setdefault("step", name)
            r["figures"] = [os.path.relpath(f, out_dir) for f in r.get("figures", [])]
            report["results"].append(r)
            print_fn(format_result(r))
    report["total_seconds"] = time.perf_counter() - t0
    write_report(out_dir, report)  # report.json, then index.html rendered from it
    unconverged = len(report["convergence_warnings"])
    print_fn(
        f"tour: {len(report['results'])} models in {report['total_seconds']:.1f}s; "
        + (f"{unconverged} fit(s) stopped before converging (listed in report.json); "
           if unconverged else "")
        + f"report in {os.path.abspath(out_dir)}"
    )
    return report
