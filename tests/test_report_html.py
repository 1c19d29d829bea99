"""The report page: a static index.html rendered from report.json, checked with an HTML parser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from urllib.parse import unquote, urlparse

import pytest

from pyrogen.report_html import (
    TABLE_COLUMNS,
    format_bound,
    format_data,
    format_log_likelihood,
    render_html,
    software_versions,
    write_report,
)


class PageParser(HTMLParser):
    """Collects the results table (header and rows of cell texts), images, scripts, links."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.images: list[str] = []
        self.scripts = 0
        self.urls: list[str] = []
        self.text: list[str] = []
        self._in_table = False
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "results":
            self._in_table = True
        elif self._in_table and tag == "thead":
            self._in_head = True
        elif self._in_table and tag == "tr":
            self._row = []
        elif self._in_table and tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in attrs:
                self.urls.append(attrs[key])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "thead":
            self._in_head = False
        elif self._in_table and tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif self._in_table and tag == "tr" and self._row is not None:
            if self._in_head:
                self.header = self._row
            else:
                self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)


def parse_page(text: str) -> PageParser:
    p = PageParser()
    p.feed(text)
    p.close()
    return p


def check_report_page(folder) -> PageParser:
    """index.html in ``folder`` parses; its table matches report.json row for row; every image
    it references is a relative path to an existing file; nothing is fetched from elsewhere."""
    folder = str(folder)
    with open(os.path.join(folder, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    with open(os.path.join(folder, "index.html"), encoding="utf-8") as f:
        page = parse_page(f.read())
    assert page.header == list(TABLE_COLUMNS)
    assert len(page.rows) == len(report["results"]) > 0
    figures = []
    for row, r in zip(page.rows, report["results"]):
        assert len(row) == len(TABLE_COLUMNS)
        assert row[0] == r["model"]
        assert row[1] == format_data(r["data"])
        assert "binarization" in row[1] or "real-valued" in row[1]
        ll = r.get("log_likelihood")
        if ll:
            assert row[3] == format_log_likelihood(ll)
            assert row[3].startswith(f"{ll['mean_nats']:.3f}")
            if ll.get("mean_stderr") is not None:
                assert row[3].endswith(f"± {ll['mean_stderr']:.3f}")
            assert row[4] == ll["kind"]
            assert row[5] == format_bound(ll)
            if ll.get("bound") in ("upper", "lower"):
                assert ll["bound"] in row[5]
        if r.get("fit_seconds") is not None:
            assert row[7] == f"{r['fit_seconds']:.2f} s"
        figures += r.get("figures") or []
    assert [unquote(s) for s in page.images] == [f.replace(os.sep, "/") for f in figures]
    for src in page.images:
        url = urlparse(src)
        assert not url.scheme and not url.netloc and not src.startswith("/"), src
        assert os.path.isfile(os.path.join(folder, unquote(url.path))), src
    assert page.scripts == 0
    assert all(not urlparse(u).scheme for u in page.urls), page.urls
    text = "".join(page.text)
    if report.get("command"):
        assert report["command"] in text
    for name, version in (report.get("software") or {}).items():
        assert str(version) in text, name
    return page


def _report(folder) -> dict:
    """A report with an exact value, a stochastic estimate, no value, and hostile strings."""
    os.makedirs(os.path.join(folder, "sub dir"), exist_ok=True)
    for name in ("a.png", "sub dir/b & c.png"):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n")
    data = {"name": "digits", "split": "all", "binarization": "stochastic",
            "binarization_seed": 3, "n": 1797, "n_features": 64}
    return {
        "title": "a <b>report</b>",
        "command": "pyrogen tour --out 'x y' --quick",
        "software": software_versions(),
        "seed": 3,
        "results": [
            {"model": "RBM(64-12) <script>alert(1)</script>", "data": data, "method": "pcd",
             "log_likelihood": {"kind": "exact", "description": "exact log-likelihood",
                                "bound": None, "mean_nats": -20.12345, "mean_stderr": None,
                                "n": 1797},
             "fit_seconds": 1.5, "figures": ["a.png"], "summary": 'quote " and & amp'},
            {"model": "RBM(64-32)", "data": {**data, "binarization": "threshold",
                                             "binarization_seed": None},
             "method": "pcd",
             "log_likelihood": {"kind": "ais_estimate", "description": "AIS estimate",
                                "bound": "upper", "mean_nats": -19.5, "mean_stderr": 0.0421,
                                "n": 1797},
             "fit_seconds": 3.25, "figures": ["sub dir/b & c.png"]},
            {"model": "GAN", "data": {**data, "binarization": None}, "method": "adversarial",
             "log_likelihood": None, "fit_seconds": 0.5, "figures": []},
        ],
        "convergence_warnings": [{"step": "rbm", "message": "stopped <early>"}],
        "total_seconds": 5.25,
    }


def test_page_matches_report_json(tmp_path):
    page_path = write_report(tmp_path, _report(str(tmp_path)))
    assert page_path == os.path.join(str(tmp_path), "index.html")
    page = check_report_page(tmp_path)
    assert page.rows[0][3] == "-20.123" and page.rows[0][5] == "exact"
    assert page.rows[1][3] == "-19.500 ± 0.042" and page.rows[1][5] == "stochastic upper bound"
    assert page.rows[2][3] == "—" and page.rows[2][4] == "—"
    assert page.rows[0][1] == "digits[all] 1797x64, binarization=stochastic (seed 3)"
    assert page.images == ["a.png", "sub%20dir/b%20%26%20c.png"]


def test_everything_is_escaped(tmp_path):
    text = render_html(_report(str(tmp_path)))
    page = parse_page(text)
    assert page.scripts == 0
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>report</b>" not in text and "&lt;b&gt;report&lt;/b&gt;" in text
    assert "stopped &lt;early&gt;" in text
    assert page.rows[0][0] == "RBM(64-12) <script>alert(1)</script>"  # the text, shown as is


def test_page_is_rendered_from_the_written_json(tmp_path):
    """The page shows what report.json holds (after JSON's own conversions), not the dict."""
    report = _report(str(tmp_path))
    report["results"][0]["model"] = ("a", "tuple")  # JSON turns it into a list
    write_report(tmp_path, report)
    with open(tmp_path / "report.json") as f:
        saved = json.load(f)
    assert saved["results"][0]["model"] == ["a", "tuple"]
    assert (tmp_path / "index.html").read_text() == render_html(saved)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".pyrogen-")]  # no temp files


@pytest.mark.parametrize("bad", [[], {"results": 3}, {"no": "results"}])
def test_not_a_report_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="report must be a dict with a 'results' list"):
        render_html(bad)


def test_bound_labels():
    assert format_bound({"kind": "exact", "bound": None}) == "exact"
    assert format_bound({"kind": "elbo", "bound": "lower", "mean_stderr": None}) == "lower bound"
    assert format_bound({"kind": "is_estimate", "bound": "lower", "mean_stderr": 0.1}) == (
        "stochastic lower bound")
    assert format_bound({"kind": "pseudo_likelihood", "bound": None}) == "neither side"
    assert format_bound(None) == "—"


CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_headless_chromium_renders_a_non_empty_table(tmp_path):
    write_report(tmp_path, _report(str(tmp_path)))
    shot = tmp_path / "shot.png"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
         (tmp_path / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    page = parse_page(dom.stdout)
    assert len(page.rows) == 3 and page.rows[1][4] == "ais_estimate"
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
         "--window-size=1200,900", (tmp_path / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert shot.stat().st_size > 10_000  # a blank page compresses to a few hundred bytes
