"""report(): every check fires on data built to fail it, and none fires on exact draws.

The "bad" data are synthetic arrays with a known defect each: two chains centred
(4 posterior sd apart), 3 divergences, a random-walk energy (BFMI ~ 0.003), one observation whose
log-likelihood has Pareto-tailed importance weights (k ~ 2), and an observed maximum far
above every replicate (PPC p-value 0).
"""

import json
import os

import numpy as np
import pytest

from pyrogen import diagnostics

from ._models import data, exact_posterior_draws, pyro_model

PNG = b"\x89PNG\r\n\x1a\n"


def good_idata():
    x = data()
    return diagnostics.to_inference_data(exact_posterior_draws(x, 4, 500), model=pyro_model,
                                         model_args=(x,))


def bad_idata():
    rng = np.random.default_rng(0)
    C, S, n = 2, 200, 30
    mu = 0.05 * rng.normal(size=(C, S)) + np.array([[0.0], [0.2]])  # chains disagree
    y = rng.normal(size=n)
    y[0] = 12.0  # an observation no replicate reaches
    ll = -0.5 * (y - mu[..., None]) ** 2 - 0.919
    # one observation with heavy-tailed log-likelihood across draws: Pareto k ~ 2
    ll[..., 1] = -np.log(rng.pareto(0.5, size=(C, S)) + 1.0)  # 1/p has tail index 0.5
    diverging = np.zeros((C, S), dtype=bool)
    diverging[0, [3, 50]] = diverging[1, 7] = True
    energy = np.cumsum(rng.normal(size=(C, S)), axis=1)  # random walk: BFMI ~ 0
    yrep = mu[..., None] + rng.normal(size=(C, S, n))
    return diagnostics.from_arrays(
        {"mu": mu}, sample_stats={"diverging": diverging, "energy": energy},
        log_likelihood={"y": ll}, observed_data={"y": y}, posterior_predictive={"y": yrep},
        dims={"y": ["data"]},
    )


def test_exact_draws_pass_every_check(tmp_path):
    rep = diagnostics.report(good_idata(), tmp_path, title="exact")
    assert rep.ok, rep.problems
    assert rep.chains == 4 and rep.draws == 500
    assert set(rep.summary) == {"mu"} and rep.summary["mu"]["r_hat"] < 1.01
    assert rep.loo["x"]["pareto_k_counts"]["k<=0.5"] == 20
    assert set(rep.ppc["x"]) == {"mean", "sd", "min", "max"}
    assert any("no sampler statistics" in n for n in rep.notes)
    for kind in ("trace", "rank", "ppc"):
        with open(rep.files[kind], "rb") as f:
            assert f.read(8) == PNG
    with open(tmp_path / "report.json") as f:
        js = json.load(f)
    assert js["ok"] is True and js["loo"]["x"]["n_data"] == 20
    assert js["summary"]["mu"]["ess_bulk"] > 400
    assert (tmp_path / "report.txt").read_text() == str(rep) + "\n"
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # atomic writes left nothing


def test_every_problem_is_flagged_in_words(tmp_path):
    rep = diagnostics.report(bad_idata(), tmp_path, plots=False)
    text = "\n".join(rep.problems)
    assert "r_hat above 1.01 for 1 of 1 quantities" in text
    assert "3 divergent transition(s)" in text and "[2, 1]" in text
    assert "BFMI below 0.3 (chain 0" in text
    assert "Pareto k above 0.7 for 1 of 30 observations of 'y'" in text
    assert "posterior predictive p-value outside [0.025, 0.975] for 'y'" in text
    assert "max 0.000" in text
    assert rep.divergences == {"total": 3, "per_chain": [2, 1]}
    assert max(rep.bfmi) < 0.1
    assert rep.loo["y"]["pareto_k_counts"]["k>1"] == 1
    assert rep.ppc["y"]["max"]["p_value"] == 0.0
    assert not rep.ok and set(rep.files) == {"json", "text"}
    js = json.loads((tmp_path / "report.json").read_text())
    assert js["problems"] == rep.problems


def test_thresholds_are_used(tmp_path):
    rep = diagnostics.report(good_idata(), tmp_path, plots=False, ess_min=10**6)
    assert any("bulk effective sample size below" in p for p in rep.problems)
    assert any("tail effective sample size below" in p for p in rep.problems)


def test_pyro_mcmc_run_and_one_chain(tmp_path):
    """A Pyro run is converted on the way in; one chain: r-hat is a note, not a check."""
    import pyro
    from pyro.infer import MCMC

    x = data(10)
    pyro.set_rng_seed(0)
    m = MCMC(diagnostics.RecordingNUTS(pyro_model), num_samples=30, warmup_steps=30,
             disable_progbar=True)
    m.run(x)
    rep = diagnostics.report(m, tmp_path, plots=False)
    assert rep.inference_library == "pyro" and rep.chains == 1
    assert any("r_hat needs at least 2 chains" in n for n in rep.notes)
    assert rep.bfmi is not None and len(rep.bfmi) == 1
    assert rep.divergences["total"] == 0


def test_bad_report_arguments(tmp_path):
    idata = good_idata()
    with pytest.raises(ValueError, match="var_names must name posterior variables"):
        diagnostics.report(idata, tmp_path, var_names=["nope"])
    with pytest.raises(ValueError, match="rhat_max must be"):
        diagnostics.report(idata, tmp_path, rhat_max=0.5)
    with pytest.raises(ValueError, match="ppc_alpha must be"):
        diagnostics.report(idata, tmp_path, ppc_alpha=1.0)


def test_report_on_a_pyrogen_factor_model(tmp_path):
    """A fitted pyrogen model goes straight in: its NUTS (RecordingNUTS inside fit) gives energy,
    its to_inference_data a posterior predictive group with the observed shape."""
    import torch

    from pyrogen.models import BayesianPPCA

    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 1, generator=g, dtype=torch.float64) @ torch.randn(
        1, 3, generator=g, dtype=torch.float64) + 0.3 * torch.randn(30, 3, generator=g,
                                                                    dtype=torch.float64)
    m = BayesianPPCA(3, 1, w_prior="normal").double()
    m.fit(x, method="nuts", num_samples=10, warmup_steps=10, num_chains=2, max_tree_depth=4,
          progress=False, seed=0)
    idata = m.to_inference_data()
    assert idata.posterior_predictive["x"].shape == (2, 10, 30, 3)
    assert idata.posterior_predictive["x"].dims == ("chain", "draw", "data", "features")
    assert {"energy", "lp", "tree_depth"} <= set(idata.sample_stats.data_vars)
    rep = diagnostics.report(m, tmp_path, var_names=["noise", "WWt_diag"], plots=False)
    assert rep.bfmi is not None and len(rep.bfmi) == 2
    assert set(rep.summary) == {"noise", "WWt_diag[0]", "WWt_diag[1]", "WWt_diag[2]"}
    assert rep.loo["x"]["n_data"] == 30 and set(rep.ppc) == {"x"}
