"""The package as users get it: an sdist and a wheel that `twine check` accepts, installed into
a fresh virtual environment outside the source tree, where the command line and the public
namespaces work.

How, and why:

* the build runs ``python -m build --no-isolation`` on a copy of the packaging inputs
  (``pyproject.toml``, ``README.md``, ``pyrogen/``) in a temporary folder: the sdist first, then
  the wheel *from the sdist*, so a file the sdist forgets is caught too, and nothing (``build/``,
  ``*.egg-info``) is written into the source tree. ``--no-isolation`` uses the setuptools and
  wheel of the test environment (the ``[test]`` extra asks for them), so nothing is downloaded;
* the fresh venv does not reinstall the dependencies (torch alone is gigabytes): a ``.pth``
  line puts the test environment's site-packages *after* its own. A plain path line in a
  ``.pth`` file does not run the ``.pth`` files of that folder, so the editable install of the
  source tree (an ``__editable__`` hook there) stays inactive and ``import pyrogen`` can only
  find the installed wheel: the test asserts so. The wheel is installed with ``--no-deps``;
* everything runs with the current directory outside the repository.

It takes a minute or more, so it is marked slow; ``.ci/run`` runs it as its own step.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd, cwd, env=None, timeout=600):
    r = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, (
        f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def _package_files() -> set[str]:
    """Every file of the package in the source tree (as wheel paths), caches excluded."""
    out = set()
    for path in (ROOT / "pyrogen").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            out.add(path.relative_to(ROOT).as_posix())
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.py", "setup.cfg"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "pyrogen", src / "pyrogen",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", dist, src], cwd=tmp)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(os.listdir(dist))
    return tmp, wheels[0], sdists[0]


def test_twine_check_accepts_wheel_and_sdist(built):
    pytest.importorskip("twine")
    _, wheel, sdist = built
    r = _run([sys.executable, "-m", "twine", "check", "--strict", wheel, sdist], cwd=wheel.parent)
    assert r.stdout.count("PASSED") == 2, r.stdout


def test_wheel_ships_every_package_file(built):
    _, wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        shipped = set(z.namelist())
    missing = sorted(_package_files() - shipped)
    assert not missing, f"files of the package missing from the wheel: {missing}"
    assert any(n.endswith("entry_points.txt") for n in shipped)


def test_installed_wheel_runs_outside_the_source_tree(built):
    tmp, wheel, _ = built
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp).stdout.strip())
    # the test environment's packages (torch, pyro, ...) after the venv's own; see the docstring
    parent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_pyrogen_test_parent.pth").write_text("\n".join(sorted(parent)) + "\n")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp)
    work = tmp / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(MPLBACKEND="Agg", PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}")
    r = _run([python, "-c", "import pyrogen, pyrogen.infer, pyrogen.distributions, "
              "pyrogen.models, pyrogen.cli; print(pyrogen.__file__)"], cwd=work, env=env)
    where = Path(r.stdout.strip()).resolve()
    assert site.resolve() in where.parents, f"imported pyrogen from {where}, not the wheel"
    assert ROOT not in where.parents
    out = work / "report"
    r = _run([bindir / "pyrogen", "tour", "--quick", "--only", "factor", "--out", out],
             cwd=work, env=env)
    assert "tour: " in r.stdout
    assert (out / "report.json").is_file() and (out / "index.html").is_file()
    assert sorted(p.name for p in out.glob("*.png"))
