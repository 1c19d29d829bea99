"""README's two commands stay true: CI runs exactly the README's test command."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [line.strip() for b in blocks for line in b.splitlines() if line.strip()]


def test_ci_runs_the_readme_test_command_verbatim():
    test_cmds = [c for c in _commands() if "pytest" in c and c.startswith("python3 -m venv")]
    assert len(test_cmds) == 1, test_cmds
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmds[0] in [line.strip() for line in ci]


def test_readme_has_the_main_job_command():
    main_cmds = [c for c in _commands() if c.startswith("python3 -m venv") and "tour" in c]
    assert len(main_cmds) == 1
