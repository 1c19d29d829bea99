"""Sphinx configuration for pyrogen's docs (built in CI with -W: warnings are errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))  # pyrogen_example: pages whose numbers come from runs

project = "pyrogen"
author = "pyrogen developers"
copyright = "2026, pyrogen developers"
from pyrogen import __version__ as release  # noqa: E402

version = release
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "pyrogen_example",
]
autosummary_generate = True
autosummary_imported_members = False
# Each object is documented once, where it is defined: the flat re-exports of pyrogen.infer,
# pyrogen.models and pyrogen.distributions would otherwise give duplicate descriptions.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
# optional extras that the docs build does not install: pyrogen.lightning imports Lightning
autodoc_mock_imports = ["lightning"]
autodoc_typehints = "none"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
nitpicky = False
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
html_theme = "alabaster"
suppress_warnings = ["autosummary.import_cycle"]


# pyrogen.infer.ais and pyrogen.infer.refine are modules whose names the package also binds to
# functions (flat exports, as in pyro.infer: ``from pyrogen.infer import ais, refine``).
# autosummary resolves dotted names through package attributes and would document the
# functions under the modules' names; document the modules there.
import importlib  # noqa: E402

import sphinx.ext.autosummary as _autosummary  # noqa: E402
import sphinx.ext.autosummary.generate as _autosummary_generate  # noqa: E402

_MODULES_NAMED_LIKE_A_FUNCTION = ("pyrogen.infer.ais", "pyrogen.infer.refine")
_import_by_name = _autosummary.import_by_name


def _import_module_first(name, prefixes=(None,)):
    if name in _MODULES_NAMED_LIKE_A_FUNCTION:
        parent = name.rpartition(".")[0]
        return name, importlib.import_module(name), importlib.import_module(parent), parent
    return _import_by_name(name, prefixes)


_autosummary.import_by_name = _import_module_first
_autosummary_generate.import_by_name = _import_module_first
