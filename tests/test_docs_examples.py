"""Docs that run (issue 20): every model-family page shows an example the docs build runs.

The ``pyrogen-example`` directive (``docs/_ext/pyrogen_example.py``) runs a script from
``examples/`` while the docs are built and puts its output and figures into the page; CI builds
the docs with ``-W``, so a failing example fails the build. This test checks the wiring that the
build cannot: every family page under ``docs/models/`` uses the directive (pages that are about
an algorithm rather than a family are listed below with the reason), every directive names an
existing example, and every example under ``examples/`` is shown on some page.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r"^\.\. pyrogen-example:: (\S+)", re.M)

#: pages without a run example, and why
NOT_A_FAMILY = {
    "ais": "the estimator page: its numbers come from the RBM and DBM pages' runs",
}


def _directives():
    found = {}
    for page in sorted((ROOT / "docs").rglob("*.rst")):
        if "_build" in page.parts or "generated" in page.parts:
            continue
        for target in DIRECTIVE.findall(page.read_text()):
            found.setdefault(page, []).append(target)
    return found


def test_every_family_page_runs_an_example():
    pages = {p.stem for p in (ROOT / "docs" / "models").glob("*.rst")}
    with_example = {p.stem for p in _directives() if p.parent.name == "models"}
    missing = sorted(pages - with_example - set(NOT_A_FAMILY))
    assert not missing, (
        f"docs/models pages without a '.. pyrogen-example:: examples/NAME.py' run: {missing}"
    )


def test_every_directive_names_an_existing_example():
    bad = [(p.name, t) for p, ts in _directives().items() for t in ts
           if not (ROOT / t).is_file() or not t.startswith("examples/")]
    assert not bad, f"pyrogen-example targets that are not scripts under examples/: {bad}"


def test_every_example_is_shown_in_the_docs():
    shown = {pathlib.Path(t).name for ts in _directives().values() for t in ts}
    examples = {p.name for p in (ROOT / "examples").glob("*.py")}
    assert not sorted(examples - shown), (
        f"examples no docs page runs: {sorted(examples - shown)}"
    )
