"""pyrogen's own imports: no cycles (lazy imports included) and DESIGN.md's layer order.

The graph is built from the source with :mod:`ast`, not by importing: every ``import`` and
``from ... import`` anywhere in a file (module level, inside functions: lazy imports) is an edge
from that module to

* the imported module (relative imports resolved against the importer's package);
* for ``from pkg import name``: ``pkg.name`` as well when it is a submodule (``from . import x``
  is an edge to ``x``);
* every package ``__init__`` that the import executes, except the importer's own ancestors
  (they are initialized before the importer runs, so an edge to them is no dependency).

A strongly connected component with more than one module is a cycle. Imports by string
(``importlib.import_module("...")``) are not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pyrogen

PACKAGE_DIR = Path(pyrogen.__file__).resolve().parent

# ------------------------------------------------------------------------- the import graph


def module_files(package_dir: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` of every ``.py`` under ``package_dir``."""
    root = package_dir.parent
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(importer: str, is_package: bool, level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 > len(base) - 1:
        raise ValueError(f"relative import beyond the top-level package in {importer}")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` within the package (see the module docstring)."""
    files = module_files(package_dir)
    top = package_dir.name
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        own = set(_ancestors(name))
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node.level, node.module)
                targets = [base] + [f"{base}.{a.name}" for a in node.names
                                    if f"{base}.{a.name}" in files]
            for target in targets:
                if target.split(".")[0] != top:
                    continue
                edges.update(m for m in _ancestors(target) if m in files and m not in own)
        edges.discard(name)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _cycle_path(graph, component):
    """One cycle through the component, as ``a -> b -> ... -> a``."""
    comp = set(component)
    start = component[0]
    path, seen = [start], {start}
    while True:
        nxt = sorted(w for w in graph[path[-1]] if w in comp)
        back = [w for w in nxt if w in seen]
        if back:
            i = path.index(back[0])
            return " -> ".join(path[i:] + [back[0]])
        path.append(nxt[0])
        seen.add(nxt[0])


# ------------------------------------------------------------------------- the tests

#: edges that are known to close a cycle, with the engineer who is removing them; the test is
#: strict for every other edge (empty: none expected)
EXPECTED_CYCLE_EDGES: dict[tuple[str, str], str] = {}


def test_no_import_cycles():
    graph = import_graph(PACKAGE_DIR)
    for (a, b) in EXPECTED_CYCLE_EDGES:
        graph[a].discard(b)
    found = cycles(graph)
    assert not found, "import cycles (lazy imports included):\n" + "\n".join(
        _cycle_path(graph, c) for c in found)


FOUNDATIONS = {"_io", "_validation", "_history", "_random", "exceptions"}
# data-parallel helpers (issue 19) sit just above the foundations: the training loop, the
# annealing engine and the importance sampler split their work with them
LOW = FOUNDATIONS | {"evaluation", "plotting", "datasets", "metrics", "distributed",
                     "probes"}

#: top-level unit -> the top-level units it may import (DESIGN.md, "Layers"). ``__init__`` is
#: ``pyrogen/__init__.py``; a unit missing here fails the test until it is placed.
ALLOWED = {
    "_io": set(),
    "_validation": set(),
    "exceptions": set(),
    "_history": FOUNDATIONS,
    "_random": FOUNDATIONS,
    "evaluation": FOUNDATIONS,
    "plotting": FOUNDATIONS,
    "datasets": FOUNDATIONS,
    # sample-based scores (issue 16): plain torch, never the models
    "metrics": FOUNDATIONS | {"evaluation", "plotting"},
    # few-label probes of codes (issue 21): consume transform outputs, never fit models
    "probes": FOUNDATIONS | {"evaluation"},
    # distributions depend on nothing of ours above them (paths are data the engine consumes)
    "distributions": FOUNDATIONS | {"evaluation"},
    # infer: algorithms over distributions; never the models or the normalizers
    "infer": FOUNDATIONS | {"evaluation", "distributions", "distributed"},
    # normalizers use infer's annealing engine
    "normalizers": FOUNDATIONS | {"evaluation", "distributions", "infer", "distributed"},
    # diagnostics: ArviZ bridge and reports; fits models only through classes passed in
    "diagnostics": LOW,
    # numpyro twins: no pyrogen model imports (models import them, lazily)
    "numpyro": LOW,
    "models": LOW | {"distributions", "normalizers", "infer", "diagnostics", "numpyro"},
    "distributed": FOUNDATIONS,
    # optional Lightning wrapper (pyrogen[lightning]): takes a model object, imports none
    "lightning": FOUNDATIONS,
    "testing": LOW | {"distributions", "normalizers", "infer", "models", "diagnostics",
                      "numpyro"},
    # ``import pyrogen`` stays light: no models, no JAX, no command line
    "__init__": LOW,
    # the static HTML page of a report folder (rendered from report.json)
    "report_html": FOUNDATIONS,
    # the command line and the tour sit on top; only they import each other
    "tour": LOW | {"models", "diagnostics", "_tour", "report_html"},
    "_tour": LOW | {"models", "diagnostics", "distributions", "infer", "normalizers", "tour"},
    "cli": LOW | {"models", "diagnostics", "distributions", "infer", "normalizers", "tour",
                  "_tour", "report_html"},
    "__main__": {"cli"},
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_layer_order():
    graph = import_graph(PACKAGE_DIR)
    units = {_unit(m) for m in graph}
    unplaced = sorted(units - set(ALLOWED))
    assert not unplaced, (
        f"top-level module(s) {unplaced} have no row in tests/test_imports.py ALLOWED: place "
        "them in DESIGN.md's layer order"
    )
    bad = sorted(
        f"{m} imports {t} ({_unit(m)} may import only: {', '.join(sorted(ALLOWED[_unit(m)]))})"
        for m, targets in graph.items() for t in targets
        if _unit(t) != _unit(m) and _unit(t) not in ALLOWED[_unit(m)]
        and (m, t) not in EXPECTED_CYCLE_EDGES
    )
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_nothing_but_the_command_line_imports_it():
    graph = import_graph(PACKAGE_DIR)
    top = {"cli", "__main__", "tour", "_tour"}
    bad = sorted(f"{m} imports {t}" for m, ts in graph.items() for t in ts
                 if _unit(t) in top and _unit(m) not in top)
    assert not bad, "\n".join(bad)


# ------------------------------------------------------------------------- the graph builder
def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_graph_sees_lazy_relative_and_package_imports(tmp_path):
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "from . import a\n",
        "pkg/a.py": "def f():\n    from .sub import thing\n",
        "pkg/b.py": "import os\nfrom pkg.sub import c\n",
        "pkg/sub/__init__.py": "thing = 1\n",
        "pkg/sub/c.py": "from .. import b\nfrom ..a import f\n",
    })
    g = import_graph(pkg)
    assert g["pkg"] == {"pkg.a"}
    assert g["pkg.a"] == {"pkg.sub"}  # lazy; a package's __init__ is an edge
    assert g["pkg.b"] == {"pkg.sub", "pkg.sub.c"}  # os ignored; the package __init__ runs too
    assert g["pkg.sub.c"] == {"pkg.b", "pkg.a"}  # own ancestors (pkg, pkg.sub) are no edge
    assert g["pkg.sub"] == set()
    assert cycles(g) == [["pkg.b", "pkg.sub.c"]]
    assert _cycle_path(g, ["pkg.b", "pkg.sub.c"]) in (
        "pkg.b -> pkg.sub.c -> pkg.b", "pkg.sub.c -> pkg.b -> pkg.sub.c")


def test_graph_finds_a_cycle_through_a_lazy_import(tmp_path):
    pkg = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "def g():\n    import pkg.high\n",
        "pkg/high.py": "from .low import g\n",
    })
    assert cycles(import_graph(pkg)) == [["pkg.high", "pkg.low"]]


@pytest.mark.parametrize("source", ["from ... import x\n"])
def test_relative_import_beyond_the_package_is_refused(tmp_path, source):
    pkg = _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": source})
    with pytest.raises(ValueError, match="beyond the top-level package"):
        import_graph(pkg)
