"""A small benchmark harness shared by every ``benchmarks/bench_*.py``.

Timings on a shared machine drift (other processes, CPU frequency, caches), so the harness

* runs the candidates **interleaved**: every repeat runs each candidate once, in a rotated
  round-robin order (repeat ``r`` starts at candidate ``r mod k``), so that drift hits all
  candidates alike and no candidate always runs first;
* discards ``warmup`` interleaved rounds (imports, allocator, JIT-like first-call costs);
* reports the **median** wall time, the **interquartile range** (IQR) and the **ratio** of
  medians to a named baseline (ratio < 1: faster than the baseline);
* keeps each candidate's last return value (e.g. a fitted model, to report its log-likelihood
  next to its time).

Usage::

    from harness import compare, header, bench_parser

    args = bench_parser("my benchmark").parse_args()
    print(header())
    cmp = compare({"pyrogen": fit_ours, "sklearn": fit_theirs}, repeats=5, baseline="sklearn")
    print(cmp.table(extra={"pyrogen": "ll=45.97", "sklearn": "ll=45.97"}))

Run benchmarks from the repository root (``python benchmarks/bench_factor.py``) or from
``benchmarks/``; a script imports this module with ``sys.path`` set to its own folder.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Timing", "Comparison", "compare", "header", "bench_parser", "append_to_file"]


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class Timing:
    """Wall times (seconds) of one candidate, warm-up rounds excluded."""

    name: str
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def q1(self) -> float:
        return _quantile(sorted(self.times), 0.25)

    @property
    def q3(self) -> float:
        return _quantile(sorted(self.times), 0.75)

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


@dataclass
class Comparison:
    """What :func:`compare` returns: timings, ratios and the candidates' last results."""

    timings: dict[str, Timing]
    baseline: str | None
    results: dict[str, Any]
    title: str = ""
    repeats: int = 0
    warmup: int = 0

    def ratio(self, name: str) -> float:
        """Median time of ``name`` divided by the baseline's median (nan without baseline)."""
        if self.baseline is None:
            return float("nan")
        return self.timings[name].median / self.timings[self.baseline].median

    def table(self, extra: dict[str, str] | None = None, extra_header: str = "") -> str:
        """A fixed-width text table: one row per candidate (optionally an extra column)."""
        extra = extra or {}
        width = max([len("candidate")] + [len(n) for n in self.timings])
        base = f"ratio vs {self.baseline}" if self.baseline else "ratio"
        lines = []
        if self.title:
            lines.append(
                f"## {self.title}  (median of {self.repeats} interleaved repeats, "
                f"{self.warmup} warm-up)"
            )
        head = f"{'candidate':<{width}}  {'median s':>10}  {'IQR s':>9}  {base:>16}"
        if extra:
            head += f"  {extra_header}"
        lines.append(head)
        lines.append("-" * len(head))
        for name, t in self.timings.items():
            row = f"{name:<{width}}  {t.median:>10.4f}  {t.iqr:>9.4f}  {self.ratio(name):>16.3f}"
            if name in extra:
                row += f"  {extra[name]}"
            lines.append(row)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "baseline": self.baseline,
            "repeats": self.repeats,
            "warmup": self.warmup,
            "candidates": {
                n: {
                    "median_s": t.median,
                    "iqr_s": t.iqr,
                    "ratio": self.ratio(n),
                    "times_s": t.times,
                }
                for n, t in self.timings.items()
            },
        }


def compare(
    candidates: dict[str, Callable[[], Any]],
    repeats: int = 5,
    warmup: int = 1,
    baseline: str | None = None,
    title: str = "",
    print_fn: Callable[[str], None] | None = print,
    timer: Callable[[], float] = time.perf_counter,
) -> Comparison:
    """Time zero-argument callables interleaved (round-robin per repeat).

    Parameters
    ----------
    candidates : dict of name -> callable
        Each callable does the whole measured job (e.g. build and fit a model) and may return
        something (kept in ``Comparison.results``, last repeat wins).
    repeats : int
        Timed interleaved rounds (>= 1).
    warmup : int
        Untimed interleaved rounds run first (>= 0).
    baseline : str, optional
        Candidate the ratios are relative to; defaults to the last candidate (the peer, by
        convention ``{"pyrogen": ..., "sklearn": ...}``).
    title : str
        Printed above the table.
    print_fn : callable or None
        Where the table goes (``None``: print nothing).

    Returns
    -------
    Comparison
    """
    if not candidates:
        raise ValueError("candidates must be a non-empty dict of name -> callable. Got {}.")
    if repeats < 1:
        raise ValueError(f"repeats must be an int >= 1. Got {repeats!r} instead.")
    if warmup < 0:
        raise ValueError(f"warmup must be an int >= 0. Got {warmup!r} instead.")
    names = list(candidates)
    if baseline is None:
        baseline = names[-1]
    if baseline not in candidates:
        raise ValueError(f"baseline must be one of {names}. Got {baseline!r} instead.")
    timings = {n: Timing(n) for n in names}
    results: dict[str, Any] = {}
    for r in range(warmup + repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            t0 = timer()
            out = candidates[name]()
            dt = timer() - t0
            results[name] = out
            if r >= warmup:
                timings[name].times.append(dt)
    cmp = Comparison(timings, baseline, results, title=title, repeats=repeats, warmup=warmup)
    if print_fn is not None:
        print_fn(cmp.table())
    return cmp


def _torch_info() -> str:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return "torch not installed"
    return f"torch {torch.__version__} ({torch.get_num_threads()} threads)"


def header(command: str | None = None, machine: str | None = None) -> str:
    """Lines naming the machine, the date (UTC), the software and the command run.

    ``machine`` defaults to the environment variable ``PYROGEN_BENCH_MACHINE`` (set it to a
    human description such as ``"2-core shared CPU VM"``), else ``platform`` facts.
    """
    machine = machine or os.environ.get("PYROGEN_BENCH_MACHINE") or (
        f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} logical CPUs".strip()
    )
    command = command or "python " + " ".join(shlex.quote(a) for a in sys.argv)
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover
        load = "load average n/a"
    return "\n".join(
        [
            f"# machine: {machine}; {load}",
            f"# date: {now}",
            f"# software: python {platform.python_version()}, {_torch_info()}",
            f"# command: {command}",
        ]
    )


def append_to_file(path: str, text: str) -> None:
    """Append ``text`` (e.g. ``header()`` + tables) to a results file, creating it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "a") as f:
        f.write(text.rstrip("\n") + "\n\n")


def bench_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares.

    ``--quick`` (tiny sizes, few repeats: a smoke test), ``--repeats N``, ``--warmup N``,
    ``--threads N`` (``torch.set_num_threads``) and ``--out FILE`` (append the header and tables).
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes and 2 repeats (smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timed interleaved repeats")
    p.add_argument("--warmup", type=int, default=1, help="untimed interleaved rounds first")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--out", default=None, help="append header and tables to this file")
    return p
