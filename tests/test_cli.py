import json
import subprocess
import sys
import warnings

import numpy as np
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


def _one_line_exit_2(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("pyrogen: error: ") and err.count("\n") == 0, err
    return err


def test_one_dimensional_npy_is_one_line_naming_the_shapes(capsys, tmp_path):
    """Before: an IndexError traceback."""
    path = tmp_path / "x.npy"
    np.save(path, np.arange(5.0))
    err = _one_line_exit_2(capsys, ["fit", "fa", "--data", str(path), "-p", "n_components=1"])
    assert "shape (n_samples, n_features)" in err and "Got shape (5,)" in err
    np.save(path, np.zeros((0, 3)))
    assert "Got shape (0, 3)" in _one_line_exit_2(capsys, ["fit", "fa", "--data", str(path)])
    np.save(path, np.array([["a", "b"]]))
    assert "must hold numbers" in _one_line_exit_2(capsys, ["fit", "fa", "--data", str(path)])
    (tmp_path / "bad.npy").write_text("not an array")
    err = _one_line_exit_2(capsys, ["fit", "fa", "--data", str(tmp_path / "bad.npy")])
    assert "not a readable .npy array" in err


def test_amat_file_is_labelled_with_its_own_split(capsys, tmp_path):
    """Before: `pyrogen fit --data binarized_mnist_test.amat` said [train]."""
    rng = np.random.default_rng(0)
    path = tmp_path / "binarized_mnist_test.amat"
    np.savetxt(path, (rng.random((30, 784)) < 0.5).astype(int), fmt="%d")
    assert cli._load_data(str(path), 0).info["split"] == "test"
    with warnings.catch_warnings():  # a 3-step EM fit: only the label matters here
        warnings.simplefilter("ignore")
        code = cli.main(["fit", "fa", "--data", str(path), "-p", "n_components=2", "--method",
                         "em", "--steps", "3", "--no-progress", "--out", str(tmp_path / "m.pt")])
    assert code == 0
    assert "data: binarized_mnist[test] 30x784" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["-p", "n_components=-1"], "model 'fa': n_components must be an int in the range"),
    (["-p", "n_components=2", "--method", "gibbs"], "--method must be one of"),
    (["-p", "n_components=2", "--out", "/no/such/folder/m.pt"], "does not exist"),
])
def test_bad_input_is_found_before_fitting(capsys, argv, message):
    assert message in _one_line_exit_2(capsys, ["fit", "fa", "--data", "digits", *argv])


def test_bad_data_spec_and_tour_step_are_usage_errors(capsys, tmp_path):
    assert "split must be one of" in _one_line_exit_2(
        capsys, ["fit", "fa", "--data", "mnist:dev", "-p", "n_components=2"])
    assert "--only must name tour steps" in _one_line_exit_2(
        capsys, ["tour", "--only", "nosuchstep", "--out", str(tmp_path)])


@pytest.mark.parametrize("option", [["--steps", "0"], ["--lr", "-1"], ["--lr", "nan"],
                                    ["--batch-size", "x"]])
def test_non_positive_numbers_are_argparse_errors(option, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["fit", "fa", "--data", "digits", *option])
    assert e.value.code == 2 and "must be a positive" in capsys.readouterr().err


def test_unexpected_errors_keep_their_traceback(monkeypatch, tmp_path):
    """A ValueError from inside fit is a bug, not a usage error: it is not turned into exit 2
    (before: every ValueError/TypeError from anywhere was printed as a one-line usage error)."""
    from pyrogen.models import FactorAnalysis

    def broken_fit(self, x, **kwargs):
        raise ValueError("an internal bug")

    monkeypatch.setattr(FactorAnalysis, "fit", broken_fit)
    with pytest.raises(ValueError, match="an internal bug"):
        cli.main(["fit", "fa", "--data", "digits", "-p", "n_components=2",
                  "--out", str(tmp_path / "m.pt")])
    r = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pyrogen import cli; from pyrogen.models import FactorAnalysis\n"
         "def f(self, x, **k): raise TypeError('a bug')\n"
         "FactorAnalysis.fit = f\n"
         "sys.exit(cli.main(['fit', 'fa', '--data', 'digits', '-p', 'n_components=2', "
         f"'--out', {str(tmp_path / 'n.pt')!r}]))"],
        capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" in r.stderr and "TypeError: a bug" in r.stderr
