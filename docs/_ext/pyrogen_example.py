"""``.. pyrogen-example:: examples/NAME.py``: docs whose numbers and figures come from running them.

The directive runs the example script (``--quick`` unless ``:args:`` says otherwise) in a fresh
folder while the docs are built, and puts into the page, in this order: the command, the script's
source (folded into a literal block), what it printed on stdout, and every PNG it wrote (searched
recursively in its working folder). A script that exits non-zero, prints nothing, or times out is
a Sphinx *warning*, and CI builds the docs with ``-W``: a page cannot show numbers its example no
longer produces.

Figures are copied to ``docs/_example_output/<stem>/`` (git-ignored) so that Sphinx's image
collector finds them like any other image. The same script also runs in the test suite
(``tests/test_examples.py``), so a broken example fails twice, in two places that say why.

Set ``PYROGEN_DOCS_SKIP_EXAMPLES=1`` to build the docs without running them (a note replaces
the output); CI never sets it.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

REPO = pathlib.Path(__file__).resolve().parents[2]
OUTPUT = "_example_output"


class PyrogenExample(SphinxDirective):
    """Run an example script and show its source, output and figures."""

    required_arguments = 1
    has_content = False
    option_spec = {
        "args": directives.unchanged,
        "timeout": directives.positive_int,
        "hide-source": directives.flag,
        "figure-width": directives.unchanged,
    }

    def run(self):
        rel = self.arguments[0]
        script = (REPO / rel).resolve()
        if not script.is_file() or REPO / "examples" not in script.parents:
            raise self.error(f"pyrogen-example: {rel!r} is not a script under examples/")
        self.env.note_dependency(str(script))
        args = shlex.split(self.options.get("args", "--quick"))
        timeout = self.options.get("timeout", 300)
        command = " ".join(["python", rel, *args])
        out: list[nodes.Node] = []

        intro = nodes.paragraph()
        intro += nodes.Text("Run while these docs were built: ")
        intro += nodes.literal(text=command)
        intro += nodes.Text(
            ". The numbers and pictures below are that run's; "
            + ("--quick sizes are a smoke test (seconds of training), not converged results — "
               "the full-size figures are in benchmarks/README.md." if "--quick" in args else "")
        )
        out.append(intro)
        if "hide-source" not in self.options:
            src = script.read_text()
            block = nodes.literal_block(src, src, language="python")
            block["caption"] = rel
            container = nodes.container("", literal_block=True, classes=["literal-block-wrapper"])
            container += nodes.caption(rel, rel)
            container += block
            out.append(container)

        if os.environ.get("PYROGEN_DOCS_SKIP_EXAMPLES") == "1":
            note = nodes.paragraph(text="(not run: PYROGEN_DOCS_SKIP_EXAMPLES=1)")
            return [*out, note]

        stem = script.stem
        dest = pathlib.Path(self.env.srcdir) / OUTPUT / stem
        with tempfile.TemporaryDirectory(prefix=f"pyrogen-docs-{stem}-") as work:
            env = dict(os.environ, MPLBACKEND="Agg")
            t0 = time.perf_counter()
            try:
                r = subprocess.run([sys.executable, str(script), *args], cwd=work, env=env,
                                   capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("pyrogen-example: %s did not finish in %d s", command, timeout,
                               location=self.get_location())
                return out
            seconds = time.perf_counter() - t0
            if r.returncode != 0 or not r.stdout.strip():
                logger.warning("pyrogen-example: %s failed (exit %d):\n%s", command,
                               r.returncode, (r.stdout + r.stderr)[-3000:],
                               location=self.get_location())
                return out
            shutil.rmtree(dest, ignore_errors=True)
            pngs = sorted(pathlib.Path(work).rglob("*.png"))
            for png in pngs:
                target = dest / png.relative_to(work)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(png, target)

        printed = r.stdout.rstrip()
        label = nodes.paragraph()
        label += nodes.Text(f"What it printed ({seconds:.1f} s on the docs-build machine):")
        out.append(label)
        out.append(nodes.literal_block(printed, printed))
        width = self.options.get("figure-width", "80%")
        for png in pngs:
            rel_png = png.relative_to(work).as_posix()
            fig = nodes.figure()
            fig += nodes.image(uri=f"/{OUTPUT}/{stem}/{rel_png}", width=width)
            fig += nodes.caption(text=f"{rel_png}, written by {command}")
            out.append(fig)
        return out


def setup(app):
    app.add_directive("pyrogen-example", PyrogenExample)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
