"""Bayesian factor analysis end to end: NUTS in Pyro and NumPyro, an ArviZ report, LOO for K.

Data with a known number of factors (K=2, heteroscedastic noise), then

1. Bayesian factor analysis with the true K, sampled by NUTS with each backend: Pyro
   (``diagnostics.RecordingNUTS`` inside ``fit``, so that the energy for BFMI is recorded) and
   NumPyro (``fit(..., backend="numpyro")``);
2. for each run, ``pyrogen.diagnostics.report``: r-hat and bulk/tail ESS on rotation-invariant
   quantities, divergences, BFMI, PSIS-LOO with Pareto k, posterior predictive p-values;
   ``report.json``, ``report.txt`` and trace/rank/PPC plots under ``--out``;
3. the number of factors chosen by PSIS-LOO over K = 1, 2, 3 (``choose_n_components``:
   the smallest K within two standard errors of the best).

Run ``python examples/bayesian_factor_analysis.py`` (several minutes on a laptop: the numbers
in ``docs/bayesian_workflow.rst`` come from this) or with ``--quick`` (tiny sizes, Pyro only,
SVI draws for the LOO step; a smoke run whose numbers are not converged).
"""

import argparse
import os
import time

import torch

from pyrogen import diagnostics
from pyrogen.models import BayesianFactorAnalysis


def make_data(n, D, K, seed=0):
    """x = W h + b + eps, h ~ N(0, I_K), eps_i ~ N(0, psi_i) with psi_i in [0.04, 0.25]."""
    g = torch.Generator().manual_seed(seed)
    W = 1.5 * torch.randn(D, K, generator=g, dtype=torch.float64)
    loc = torch.randn(D, generator=g, dtype=torch.float64)
    psi = 0.04 + 0.21 * torch.rand(D, generator=g, dtype=torch.float64)
    h = torch.randn(n, K, generator=g, dtype=torch.float64)
    x = h @ W.T + loc + psi.sqrt() * torch.randn(n, D, generator=g, dtype=torch.float64)
    return x, W, psi


def numpyro_available() -> bool:
    try:
        import numpyro  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bayesian_factor_analysis_report",
                        help="folder for the reports (one subfolder per backend)")
    parser.add_argument("--draws", type=int, default=400,
                        help="draws (and warm-up steps) per chain in the full run")
    parser.add_argument("--backends", default=None,
                        help="comma-separated: pyro,numpyro (default: both; --quick: pyro)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    K_true = 2
    if args.quick:
        n, D, chains, draws, warmup, depth = 40, 4, 2, 20, 20, 4
        backends = (args.backends or "pyro").split(",")
    else:
        n, D, chains, draws, warmup, depth = 150, 6, 4, args.draws, args.draws, 10
        backends = (args.backends or "pyro,numpyro").split(",")
    if "numpyro" in backends and not numpyro_available():
        print("numpyro is not installed (pip install pyrogen[numpyro]): Pyro only")
        backends = [b for b in backends if b != "numpyro"]
    x, W, psi = make_data(n, D, K_true, args.seed)
    print(f"data: n={n}, D={D}, true number of factors {K_true}, noise variances "
          f"{[round(float(p), 3) for p in psi]}")
    if args.quick:
        print("--quick: tiny runs; the numbers below are a smoke test, not converged")

    # 1-2. NUTS with the true K on each backend, then the report
    for backend in backends:
        model = BayesianFactorAnalysis(D, K_true).double()
        t0 = time.perf_counter()
        hist = model.fit(x, method="nuts", backend=backend, num_chains=chains,
                         num_samples=draws, warmup_steps=warmup, max_tree_depth=depth,
                         progress=False, seed=args.seed,
                         **({"chain_method": "vectorized"} if backend == "numpyro" else {}))
        seconds = time.perf_counter() - t0
        print(f"\n[{backend}] NUTS: {chains} chains x {draws} draws (+{warmup} warm-up) in "
              f"{seconds:.1f} s wall (compilation included)")
        rep = diagnostics.report(
            model, os.path.join(args.out, backend),
            var_names=["noise", "WWt_diag", "col_norm2"],
            title=f"Bayesian FA, K={K_true}, {backend} NUTS",
        )
        print(rep)
        noise = model.posterior_samples()["noise"].mean(0)
        print("posterior mean noise variances:", [round(float(v), 3) for v in noise],
              "(true:", [round(float(v), 3) for v in psi], ")")
        print("divergences (fit):", hist.info["divergences"])

    # 3. the number of factors by PSIS-LOO
    ks = (1, 2, 3)
    if args.quick:  # SVI draws keep the smoke run fast; the full run samples by NUTS
        fit_kwargs = {"num_steps": 60, "lr": 0.05, "progress": False, "seed": args.seed,
                      "num_posterior_samples": 50}
    else:
        fit_kwargs = {"method": "nuts", "backend": backends[-1], "num_chains": 2,
                      "num_samples": 300, "warmup_steps": 300, "progress": False,
                      "seed": args.seed}
        if backends[-1] == "numpyro":
            fit_kwargs["chain_method"] = "vectorized"
    t0 = time.perf_counter()
    res = diagnostics.choose_n_components(BayesianFactorAnalysis, x, ks, fit_kwargs=fit_kwargs)
    how = "SVI draws" if args.quick else f"NUTS, {backends[-1]}"
    print(f"\nPSIS-LOO over K={list(ks)} ({how}; {time.perf_counter() - t0:.1f} s)")
    print(res.table[["elpd_loo", "p_loo", "elpd_diff", "dse", "weight"]].round(2))
    print(res)
    print(f"chosen number of factors: {res.chosen_value} (true: {K_true})")


if __name__ == "__main__":
    main()
