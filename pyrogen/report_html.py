"""A static HTML page for a report folder, rendered from its ``report.json``.

``pyrogen tour``, ``pyrogen evaluate`` and ``pyrogen fit --report DIR`` write a folder holding
the PNG figures, ``report.json`` and ``index.html``. The page is a pure function of the JSON
(:func:`render_html`), and :func:`write_report` writes the JSON first and renders the page from
the file it has just written, so the two never disagree. The page is static: no network, no
JavaScript, figures referenced by relative paths, every value HTML-escaped.

The JSON a page is rendered from (keys other than ``results`` are optional)::

    {"title": "pyrogen tour", "command": "pyrogen tour --quick", "seed": 0,
     "software": {"pyrogen": "0.1.0", "torch": "2.13.0", ...},
     "results": [{"model": "FactorAnalysis(K=10)", "data": Dataset.info, "method": "em",
                  "log_likelihood": LogLikelihood.to_dict(), "fit_seconds": 0.4,
                  "figures": ["fa.png"], "summary": "..."}, ...],
     "convergence_warnings": [{"step": "vae", "message": "..."}], "total_seconds": 97.0}
"""

from __future__ import annotations

import html
import json
import math
import os
import platform
import sys
from urllib.parse import quote

from ._io import atomic_write_text

__all__ = ["software_versions", "render_html", "write_report", "write_index_html",
           "format_data", "format_log_likelihood", "format_bound", "TABLE_COLUMNS"]

#: the columns of the results table, in order (a test reads the page back by these)
TABLE_COLUMNS = ("model", "data", "method", "log-likelihood (nats/example)", "kind",
                 "bound side", "n", "fit time")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;
padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{max-width:28em;border:1px solid #eee}figcaption{font-size:.8em;color:#555}
.summary{color:#444;font-size:.9em}code{background:#f6f6f6;padding:0 .2em}
dl{display:grid;grid-template-columns:max-content auto;gap:.1em 1em}dt{font-weight:bold}
"""


def software_versions() -> dict:
    """Versions of Python, pyrogen and the libraries it runs on (for a report's footer)."""
    from . import __version__

    versions = {"pyrogen": __version__, "python": platform.python_version()}
    for name in ("torch", "pyro", "numpy", "matplotlib"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except ImportError:  # pragma: no cover - every dependency is installed
                continue
        versions[name] = getattr(module, "__version__", "unknown")
    versions["platform"] = platform.platform()
    return versions


def _esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value, fmt: str = ".3f") -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if math.isnan(value):
        return "nan"
    return format(value, fmt)


def format_data(data: dict | None) -> str:
    """The data's identity in one line: name[split] n x d, binarization (and its seed)."""
    data = data or {}
    b = data.get("binarization")
    text = f"{data.get('name')}[{data.get('split')}]"
    if data.get("n") is not None and data.get("n_features") is not None:
        text += f" {data.get('n')}x{data.get('n_features')}"
    text += ", real-valued" if b is None else f", binarization={b}"
    if data.get("binarization_seed") is not None:
        text += f" (seed {data.get('binarization_seed')})"
    if data.get("preprocessing"):
        text += f", {data['preprocessing']}"
    return text


def format_log_likelihood(ll: dict | None) -> str:
    """``mean ± stderr`` (nats per example), or ``—`` when the model reports none."""
    if not ll:
        return "—"
    mean = _num(ll.get("mean_nats"))
    se = _num(ll.get("mean_stderr"))
    return f"{mean} ± {se}" if se is not None else f"{mean}"


def format_bound(ll: dict | None) -> str:
    """Which side the number bounds: ``exact``, ``upper``/``lower`` bound, or ``neither``."""
    if not ll:
        return "—"
    if ll.get("kind") == "exact":
        return "exact"
    bound = ll.get("bound")
    stochastic = ll.get("mean_stderr") is not None
    if bound in ("upper", "lower"):
        return f"{'stochastic ' if stochastic else ''}{bound} bound"
    return "neither side"


def _row(r: dict) -> str:
    ll = r.get("log_likelihood") or None
    fit = _num(r.get("fit_seconds"), ".2f")
    cells = [
        ("", _esc(r.get("model"))),
        ("", _esc(format_data(r.get("data")))),
        ("", _esc(r.get("method"))),
        ("num", _esc(format_log_likelihood(ll))),
        ("", _esc(ll.get("kind")) if ll else "—"),
        ("", _esc(format_bound(ll))),
        ("num", _esc(ll.get("n")) if ll else "—"),
        ("num", f"{_esc(fit)} s" if fit is not None else "—"),
    ]
    return "<tr>" + "".join(
        f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for c, v in cells
    ) + "</tr>"


def _img_src(path: str) -> str:
    # a relative URL: percent-encode everything but the separators, then escape for HTML
    return _esc(quote(str(path).replace(os.sep, "/"), safe="/"))


def _model_section(i: int, r: dict) -> str:
    parts = [f'<h2 id="r{i}">{_esc(r.get("model"))}</h2>']
    ll = r.get("log_likelihood")
    line = f"<p><b>{_esc(format_data(r.get('data')))}</b>"
    if ll:
        line += (f" — log-likelihood {_esc(format_log_likelihood(ll))} nats/example "
                 f"[{_esc(ll.get('kind'))}]: {_esc(ll.get('description'))}")
    parts.append(line + "</p>")
    if r.get("summary"):
        parts.append(f'<p class="summary">{_esc(r["summary"])}</p>')
    for fig in r.get("figures") or []:
        name = os.path.basename(str(fig))
        parts.append(f'<figure><img src="{_img_src(fig)}" alt="{_esc(name)}">'
                     f"<figcaption>{_esc(name)}</figcaption></figure>")
    return "\n".join(parts)


def render_html(report: dict) -> str:
    """The page for ``report`` (the dict of a ``report.json``): a pure function of it.

    Parameters
    ----------
    report : dict
        With a ``results`` list (see the module docstring); every other key is optional.

    Returns
    -------
    str
        A complete HTML5 document: the results table, each model's figures (relative
        ``<img>`` paths), convergence warnings, the software versions and the command.
    """
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise ValueError(
            "report must be a dict with a 'results' list (the content of a report.json). Got "
            f"{type(report).__name__}"
            + (f" with keys {sorted(report)[:8]}" if isinstance(report, dict) else "")
            + " instead."
        )
    results = [r for r in report["results"] if isinstance(r, dict)]
    title = report.get("title") or "pyrogen report"
    head = "".join(f"<th>{_esc(c)}</th>" for c in TABLE_COLUMNS)
    rows = "\n".join(_row(r) for r in results)
    body = [
        f"<h1>{_esc(title)}</h1>",
        "<p>Every log-likelihood is labelled with its kind; stochastic estimates carry their "
        "Monte Carlo standard error (±) and say which side of the true log-likelihood they "
        "bound in expectation. Numbers are comparable only on the same data and "
        "preprocessing (binarization and its seed).</p>",
        f'<table id="results">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n'
        "</table>",
    ]
    body += [_model_section(i, r) for i, r in enumerate(results)]
    warns = report.get("convergence_warnings") or []
    if warns:
        items = "\n".join(
            f"<li>{_esc(w.get('step'))}: {_esc(w.get('message'))}</li>"
            if isinstance(w, dict) else f"<li>{_esc(w)}</li>"
            for w in warns
        )
        body.append(f"<h2>Fits stopped before converging ({len(warns)})</h2>\n<ul>\n{items}\n"
                    "</ul>")
    software = dict(report.get("software") or {})
    for key in ("pyrogen_version", "torch_version"):  # older reports: top-level versions
        if key in report:
            software.setdefault(key.replace("_version", ""), report[key])
    if "python" in report and not isinstance(report["python"], dict):
        software.setdefault("python", report["python"])
    meta = []
    if report.get("command"):
        meta.append(("command", f"<code>{_esc(report['command'])}</code>"))
    for key in ("seed", "quick"):
        if key in report:
            meta.append((key, _esc(report[key])))
    total = _num(report.get("total_seconds"), ".1f")
    if total is not None:
        meta.append(("total time", f"{_esc(total)} s"))
    meta += [(name, _esc(version)) for name, version in software.items()]
    body.append("<h2>How this report was made</h2>\n<dl>\n" + "\n".join(
        f"<dt>{_esc(k)}</dt><dd>{v}</dd>" for k, v in meta) + "\n</dl>")
    body.append("<p>The numbers on this page are rendered from <a href=\"report.json\">"
                "report.json</a> in this folder.</p>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body) + "\n</body>\n</html>\n"
    )


def write_index_html(out_dir: str | os.PathLike) -> str:
    """Render ``out_dir/report.json`` to ``out_dir/index.html`` (atomically); returns its path."""
    out_dir = os.fspath(out_dir)
    with open(os.path.join(out_dir, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    path = os.path.join(out_dir, "index.html")
    atomic_write_text(path, render_html(report))
    return path


def write_report(out_dir: str | os.PathLike, report: dict) -> str:
    """Write ``report.json`` then ``index.html`` rendered from that file; returns the page path.

    Both files go through :func:`pyrogen._io.atomic_write_text`; the folder is created.
    """
    if not isinstance(report, dict) or not isinstance(report.get("results"), list):
        raise ValueError("report must be a dict with a 'results' list. Got "
                         f"{type(report).__name__} instead.")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "report.json"),
                      json.dumps(report, indent=2, default=str) + "\n")
    return write_index_html(out_dir)
