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


# ----------------------------------------------------------------------- pyrogen evaluate
@pytest.fixture(scope="module")
def saved_rbm(tmp_path_factory):
    """A small RBM (64-8, exact by enumeration) fitted by `pyrogen fit`, and what fit printed."""
    import contextlib
    import io

    from pyrogen.exceptions import ConvergenceWarning

    path = tmp_path_factory.mktemp("rbm") / "rbm.pt"
    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
        warnings.simplefilter("ignore", ConvergenceWarning)  # 40 steps: a short fit
        code = cli.main(["fit", "rbm", "--data", "digits-threshold", "-p", "n_hidden=8",
                         "-p", "init_scale=0.1", "--steps", "40", "--no-progress",
                         "--out", str(path)])
    assert code == 0
    printed = next(line for line in buf.getvalue().splitlines()
                   if line.startswith("train log-likelihood: "))
    return path, printed.split(": ", 1)[1]


def _evaluate(capsys, *argv):
    code = cli.main(["evaluate", *map(str, argv)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_evaluate_exact_reproduces_fit_and_writes_the_report(saved_rbm, tmp_path, capsys):
    from .test_report_html import check_report_page

    path, fit_printed = saved_rbm
    out = tmp_path / "report"
    text = _evaluate(capsys, path, "--data", "digits-threshold", "--estimator", "exact",
                     "--out", out)
    assert f"log-likelihood: {fit_printed}" in text  # the same number, same label
    assert "data: digits[all] 1797x64 binarization=threshold" in text
    with open(out / "report.json") as f:
        report = json.load(f)
    (r,) = report["results"]
    model = load(path)
    x = cli._load_data("digits-threshold", 0).x
    assert r["log_likelihood"]["kind"] == "exact" and r["log_likelihood"]["bound"] is None
    assert r["log_likelihood"]["mean_nats"] == pytest.approx(model.log_likelihood(x).mean(),
                                                             abs=1e-5)
    assert r["data"]["binarization"] == "threshold" and r["estimator"] == "exact"
    assert report["command"].startswith("pyrogen evaluate ") and "--estimator exact" in (
        report["command"])
    # the pictures: the per-example log-likelihoods and (8x8 images) draws from the model
    assert sorted(r["figures"]) == ["log_likelihood.png", "samples.png"]
    assert all((out / f).stat().st_size > 0 for f in r["figures"])
    check_report_page(out)
    # no --estimator: the model's own log_likelihood (exact here)
    assert f"log-likelihood: {fit_printed}" in _evaluate(
        capsys, path, "--data", "digits-threshold", "--out", tmp_path / "default")


def test_evaluate_ais_agrees_with_exact_within_its_standard_error(saved_rbm, tmp_path, capsys):
    path, _ = saved_rbm
    _evaluate(capsys, path, "--data", "digits-threshold", "--estimator", "exact",
              "--out", tmp_path / "exact")
    text = _evaluate(capsys, path, "--data", "digits-threshold", "--estimator", "ais",
                     "-p", "num_chains=100", "-p", "num_betas=300", "--seed", "0",
                     "--out", tmp_path / "ais")
    assert "[ais_estimate]" in text and "±" in text and "upper bound" in text
    exact = json.loads((tmp_path / "exact" / "report.json").read_text())
    ais = json.loads((tmp_path / "ais" / "report.json").read_text())
    e, a = exact["results"][0]["log_likelihood"], ais["results"][0]["log_likelihood"]
    assert a["kind"] == "ais_estimate" and a["bound"] == "upper" and a["num_betas"] == 300
    # (AIS - exact) / se measured over seeds 0-7: -0.82 (seed 0), -2.07, 0.95, -1.10, -0.09,
    # -0.75, -1.90, 1.01; se about 0.004 nats. A 4-se band: the estimate and its standard
    # error are checked together, with room for the heavy tail of the delta-method error
    assert abs(a["mean_nats"] - e["mean_nats"]) < 4 * a["mean_stderr"]


def _untouched(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("case", ["not-a-model", "missing", "width", "support", "estimator",
                                  "option", "option-value", "out-is-a-file"])
def test_evaluate_bad_input_is_one_line_exit_2_nothing_written(case, saved_rbm, tmp_path,
                                                               capsys):
    path, _ = saved_rbm
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text('{"results": []}\n')  # an earlier report stays as it was
    before = _untouched(out)
    data, extra, message = "digits-threshold", [], None
    if case == "not-a-model":
        path = tmp_path / "notes.pt"
        path.write_text("not a model")
        message = "is not a pyrogen model file"
    elif case == "missing":
        path, message = tmp_path / "nothing.pt", "no saved model at"
    elif case == "width":
        data = tmp_path / "wide.npy"
        np.save(data, np.zeros((5, 10)))
        message = "has 10 features (columns); the model in"
    elif case == "support":
        data, message = "digits", "must be binary"
    elif case == "estimator":
        extra, message = ["--estimator", "is"], "--estimator is is not offered by BernoulliRBM"
    elif case == "option":
        extra, message = ["--estimator", "ais", "-p", "num_particles=5"], "takes no option(s)"
    elif case == "option-value":
        extra = ["--estimator", "ais", "-p", "num_chains=-3", "-p", "num_betas=5"]
        message = "-p: num_chains must be an int"
    elif case == "out-is-a-file":
        out = out / "report.json"
        message = "is a file; give a folder"
    err = _one_line_exit_2(capsys, ["evaluate", str(path), "--data", str(data), *extra,
                                    "--out", str(out)])
    assert message in err, err
    assert _untouched(tmp_path / "out") == before


def test_evaluate_offers_what_each_model_offers():
    from pyrogen.models import VAE, BernoulliRBM, FactorAnalysis, SigmoidBeliefNet

    assert set(cli.offered_estimators(FactorAnalysis(8, 2))) == {"exact"}
    assert set(cli.offered_estimators(BernoulliRBM(8, 3))) == {"exact", "ais", "raise"}
    assert set(cli.offered_estimators(BernoulliRBM(30, 30, exact_max_units=20))) == {
        "ais", "raise"}
    assert set(cli.offered_estimators(SigmoidBeliefNet([8, 3]))) == {"exact", "is"}
    assert set(cli.offered_estimators(VAE(8, 2))) == {"is", "ais"}


def test_evaluate_internal_errors_keep_their_traceback(saved_rbm, tmp_path, monkeypatch):
    """A ValueError about x from inside an estimator (not pyrogen's input check) is a bug."""
    from pyrogen.models import BernoulliRBM

    def broken(self, x, **kwargs):
        raise ValueError("x internal bug")

    monkeypatch.setattr(BernoulliRBM, "log_likelihood", broken)
    with pytest.raises(ValueError, match="x internal bug"):
        cli.main(["evaluate", str(saved_rbm[0]), "--data", "digits-threshold",
                  "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_fit_report_writes_the_page(tmp_path, capsys):
    from .test_report_html import check_report_page

    with pytest.warns(UserWarning, match="constant"):
        code = cli.main(["fit", "fa", "--data", "digits", "-p", "n_components=2", "--method",
                         "em", "--steps", "50", "--no-progress", "--out", str(tmp_path / "m.pt"),
                         "--report", str(tmp_path / "rep")])
    assert code == 0 and "report: " in capsys.readouterr().out
    check_report_page(tmp_path / "rep")
