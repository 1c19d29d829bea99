"""Bayesian PCA with NUTS and ArviZ: how many components do the data have?

Data with a known dimension (rank-2 signal in D dimensions plus isotropic noise):

1. Bayesian PPCA with the ARD prior (Bishop 1999) and K larger than needed, sampled by Pyro
   NUTS with 4 chains; ArviZ summary (r-hat, bulk/tail ESS) on rotation-invariant quantities;
   the number of components ARD leaves switched on.
2. PSIS-LOO over K (ArviZ ``compare``) with the plain Gaussian prior on W.

Run ``python examples/bayesian_ppca.py`` (a few minutes on a laptop) or with ``--quick``
(tiny sizes, well under a minute: a smoke run whose numbers are not converged).
"""

import argparse
import time

import torch

from pyrogen import diagnostics
from pyrogen.models import BayesianPPCA


def make_data(n, D, rank, noise, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = 1.5 * torch.randn(D, rank, generator=g, dtype=torch.float64)
    h = torch.randn(n, rank, generator=g, dtype=torch.float64)
    return h @ W.T + noise * torch.randn(n, D, generator=g, dtype=torch.float64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        n, D, K, draws, warmup, chains, ks = 30, 3, 1, 10, 10, 4, (1, 2)
    else:
        n, D, K, draws, warmup, chains, ks = 200, 6, 4, 300, 300, 4, (1, 2, 3)
    true_rank = 1 if args.quick else 2
    x = make_data(n, D, true_rank, 0.3, args.seed)
    print(f"data: n={n}, D={D}, true dimension {true_rank}, noise sd 0.3")
    if args.quick:
        print("--quick: tiny runs; the numbers below are a smoke test, not converged")

    t0 = time.perf_counter()
    model = BayesianPPCA(D, K).double()
    hist = model.fit(x, method="nuts", num_samples=draws, warmup_steps=warmup,
                     num_chains=chains, progress=False, seed=args.seed)
    print(f"NUTS: {chains} chains x {draws} draws (+{warmup} warmup) in "
          f"{time.perf_counter() - t0:.1f} s, divergences: {hist.info['divergences']}")
    idata = model.to_inference_data()
    print(diagnostics.summary(idata, var_names=["noise", "WWt_diag", "col_norm2"])[
        ["mean", "sd", "ess_bulk", "ess_tail", "r_hat"]
    ])
    print("component relevance (|w_k|^2 / noise, sorted):",
          [round(float(r), 3) for r in model.component_relevance()])
    print(f"ARD: {model.active_components()} active component(s) of K={K}")
    print("log posterior predictive density (train):", model.log_likelihood(x))

    idatas = {}
    for k in ks:
        m = BayesianPPCA(D, k, w_prior="normal").double()
        if args.quick:  # SVI draws keep the smoke run fast; the full run samples by NUTS
            m.fit(x, num_steps=50, lr=0.05, progress=False, seed=args.seed,
                  num_posterior_samples=40)
        else:
            m.fit(x, method="nuts", num_samples=200, warmup_steps=200, num_chains=2,
                  progress=False, seed=args.seed)
        idatas[f"K={k}"] = m.to_inference_data()
    df = diagnostics.compare_loo(idatas)
    print(df[["elpd_loo", "p_loo", "elpd_diff", "dse", "weight"]])
    print(f"LOO ranks first: {df.attrs['best']}")
    if df.attrs["warnings"]:
        print(f"ArviZ warnings ({len(df.attrs['warnings'])}):", df.attrs["warnings"][0][:120])


if __name__ == "__main__":
    main()
