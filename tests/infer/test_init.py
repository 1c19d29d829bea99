"""pyrogen.infer exports every public name of its submodules flat, as pyro.infer does."""

import importlib
import pkgutil
import sys
import types

import pyrogen.infer as infer


def _submodules():
    mods = pkgutil.iter_modules(infer.__path__)
    return sorted(m.name for m in mods if not m.name.startswith("_"))


def test_every_name_in_all_imports_and_is_the_submodules_object():
    assert len(infer.__all__) == len(set(infer.__all__)), "duplicate names in __all__"
    owners = {}
    for sub in _submodules():
        mod = importlib.import_module(f"pyrogen.infer.{sub}")
        for name in getattr(mod, "__all__", ()):
            owners.setdefault(name, []).append(mod)
    for name in infer.__all__:
        obj = getattr(infer, name)  # imports
        assert name in owners, f"{name!r} is in pyrogen.infer.__all__ but in no submodule's"
        for mod in owners[name]:
            assert getattr(mod, name) is obj, f"pyrogen.infer.{name} is not {mod.__name__}.{name}"
    ns = {}
    exec("from pyrogen.infer import *", ns)
    assert set(infer.__all__) <= set(ns)


def test_every_public_name_of_every_submodule_is_exported_flat():
    """Adding a public name to a submodule's ``__all__`` means adding it to
    ``pyrogen/infer/__init__.py`` too (submodules themselves are not re-exported)."""
    missing = []
    for sub in _submodules():
        mod = importlib.import_module(f"pyrogen.infer.{sub}")
        assert hasattr(mod, "__all__"), f"pyrogen.infer.{sub} has no __all__"
        for name in mod.__all__:
            if isinstance(getattr(mod, name), types.ModuleType):
                continue
            if name not in infer.__all__:
                missing.append(f"{sub}.{name}")
    assert not missing, f"add to pyrogen/infer/__init__.py and its __all__: {missing}"


def test_names_shared_by_a_module_and_a_function():
    """``ais`` and ``refine``: the package attribute is the function, whatever was imported
    first; the modules stay importable by name."""
    ais_mod = importlib.import_module("pyrogen.infer.ais")
    refine_mod = importlib.import_module("pyrogen.infer.refine")
    assert isinstance(ais_mod, types.ModuleType) and isinstance(refine_mod, types.ModuleType)
    assert infer.ais is ais_mod.ais and callable(infer.ais)
    assert infer.refine is refine_mod.refine and callable(infer.refine)
    from pyrogen.infer.ais import DEFAULT_NUM_BETAS
    from pyrogen.infer.refine import RefinedGuide

    assert DEFAULT_NUM_BETAS == infer.DEFAULT_NUM_BETAS and RefinedGuide is infer.RefinedGuide


def _infer_modules():
    return [k for k in sys.modules if k == "pyrogen.infer" or k.startswith("pyrogen.infer.")]


def test_the_function_wins_when_the_submodule_is_imported_first(monkeypatch):
    """As in a fresh interpreter whose first import is the submodule itself: pyrogen.infer is
    imported again from scratch (the loaded modules are put back afterwards)."""
    import pyrogen

    before = set(_infer_modules())
    for name in before:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(pyrogen, "infer")
    try:
        importlib.import_module("pyrogen.infer.refine")  # a submodule first
        import pyrogen.infer.ais as m  # binds the function: ``as`` goes through the attribute

        fresh = sys.modules["pyrogen.infer"]
        assert fresh is not infer
        assert callable(fresh.ais) and fresh.ais is m and callable(fresh.refine)
        assert isinstance(sys.modules["pyrogen.infer.ais"], types.ModuleType)
    finally:  # drop what the fresh import loaded that was not loaded before
        for name in set(_infer_modules()) - before:
            del sys.modules[name]
