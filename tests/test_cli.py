import json
import subprocess
import sys

import pytest

from pyrogen import cli
from pyrogen.models import load


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "pyrogen", *args], capture_output=True, text=True, timeout=timeout
    )


def test_unknown_model_is_one_line_exit_2(capsys):
    code = cli.main(["fit", "no-such-model", "--data", "digits"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "unknown model 'no-such-model'" in err


def test_missing_data_file_is_one_line_exit_2(capsys, tmp_path):
    code = cli.main(["fit", "fa", "--data", str(tmp_path / "missing.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "missing.npz" in err


def test_bad_param_is_exit_2(capsys):
    assert cli.main(["fit", "fa", "--data", "digits", "-p", "n_components"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


def test_missing_or_unknown_constructor_argument_is_named(capsys):
    assert cli.main(["fit", "fa", "--data", "digits"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pyrogen: error: model 'fa' needs n_components: pass -p n_components=..."
    assert cli.main(["fit", "fa", "--data", "digits", "-p", "n_components=2", "-p", "k=3"]) == 2
    assert "has no parameter(s) k" in capsys.readouterr().err


def test_no_command_prints_help_exit_2(capsys):
    assert cli.main([]) == 2


def test_models_lists_registered(capsys):
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    assert "fa" in out and "FactorAnalysis" in out


def test_fit_saves_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "fa.pt"
    # digits has pixels that never change: FA warns and applies its noise floor (by design)
    with pytest.warns(UserWarning, match="constant"):
        code = cli.main(
            ["fit", "fa", "--data", "digits", "-p", "n_components=3", "--method", "em",
             "--steps", "1000", "--no-progress", "--out", str(out), "--json"]
        )
    assert code == 0
    text = capsys.readouterr().out
    assert "[exact]" in text and "real-valued" in text
    summary = json.loads(text[text.index("{"):])
    assert summary["data"]["binarization"] is None
    model = load(out)
    assert model.config["n_components"] == 3
    assert model.data_info["name"] == "digits"


def test_python_dash_m_entry_point():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip()
    r = run_cli("fit", "nope", "--data", "digits")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["fit"], ["tour", "--seed", "x"]])
def test_argparse_errors_exit_2(args):
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2
