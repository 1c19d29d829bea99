"""Factor analysis and probabilistic PCA on digits: EM, closed form and Pyro SVI.

The story (book §13.1):

1. Digits has 3 pixels that never change. A per-pixel noise variance would shrink to 0 on them
   and the likelihood would grow without bound, so pyrogen warns and floors it; we drop them.
2. Fit factor analysis (K=10) by EM and PPCA (K=10) by Tipping & Bishop's closed form; print
   exact log-likelihoods (and scikit-learn's, when it is installed).
3. Fit factor analysis again by plain Pyro SVI on ``model``/``guide`` — the collapsed form
   (``h`` integrated out: the loss *is* the exact negative log-likelihood) — and check the
   latent form: with the exact posterior as guide the ELBO equals the log-likelihood.
4. Look at the components (columns of W) and the posterior means of h.

Run ``python examples/factor_analysis.py`` (about a minute) or with ``--quick`` (seconds).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import pyro
import pyro.infer
import pyro.optim
import torch

from pyrogen.datasets import load_digits
from pyrogen.models import PPCA, FactorAnalysis
from pyrogen.models.factor import ConstantFeatureWarning
from pyrogen.plotting import save_image_grid, save_line_plot


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny SVI run (smoke test)")
    parser.add_argument("--out", default="factor_analysis_out", help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # 61 x 10 problems: one thread is fastest
    os.makedirs(args.out, exist_ok=True)
    pyro.set_rng_seed(args.seed)
    k = 10

    # 1. data, and what constant pixels do to a factor-analysis likelihood ----------------
    ds = load_digits(dtype=torch.float64)
    print(f"data: {ds.identity}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConstantFeatureWarning)
        fa_all = FactorAnalysis(64, k).double()
        fa_all.fit(ds.x, progress=False)
    for w in caught:
        print(f"warning: {w.message}")
    keep = ds.x.std(0) > 0
    x = ds.x[:, keep]
    d = x.shape[1]
    print(f"on all 64 pixels FA's log-likelihood is {fa_all.log_likelihood(ds.x)} "
          "(inflated by the floored constant pixels); from here on: the "
          f"{d} varying pixels")

    # 2. EM and closed form -----------------------------------------------------------------
    fa = FactorAnalysis(d, k).double()
    t0 = time.perf_counter()
    hist = fa.fit(x, method="em", progress=False)
    print(f"FactorAnalysis(K={k}) by EM: {hist.info['n_iter']} iterations, "
          f"{time.perf_counter() - t0:.2f}s, log-likelihood {fa.log_likelihood(x)}")
    ppca = PPCA(d, k).double()
    ppca.fit(x, progress=False)
    print(f"PPCA(K={k}) closed form: sigma^2 = {ppca.sigma2:.4f}, "
          f"log-likelihood {ppca.log_likelihood(x)}")
    try:
        from sklearn.decomposition import PCA
        from sklearn.decomposition import FactorAnalysis as SkFA

        sk_fa = SkFA(n_components=k, random_state=0).fit(x.numpy())
        sk_pca = PCA(n_components=k).fit(x.numpy())
        print(f"scikit-learn on the same data: FactorAnalysis {sk_fa.score(x.numpy()):.3f}, "
              f"PCA.score (the PPCA likelihood) {sk_pca.score(x.numpy()):.3f} nats/example")
    except ImportError:
        print("(scikit-learn not installed: skipping its numbers)")

    # 3. Pyro SVI on the model/guide pair ----------------------------------------------------
    num_steps = 10 if args.quick else 1500
    fa_svi = FactorAnalysis(d, k, form="collapsed").double()
    svi = pyro.infer.SVI(fa_svi.model, fa_svi.guide, pyro.optim.Adam({"lr": 0.05}),
                         pyro.infer.Trace_ELBO())
    losses = []
    t0 = time.perf_counter()
    for _ in range(num_steps):
        losses.append(svi.step(x) / x.shape[0])
    print(f"FactorAnalysis by Pyro SVI (collapsed model, {num_steps} Adam steps, "
          f"{time.perf_counter() - t0:.1f}s): log-likelihood {fa_svi.log_likelihood(x)}; "
          f"EM's optimum is {fa.log_likelihood(x).mean():.3f}")
    save_line_plot({"SVI (collapsed)": [-v for v in losses]}, os.path.join(args.out, "svi.png"),
                   title="FA by SVI: exact log-likelihood per example", ylabel="nats")

    latent = FactorAnalysis(d, k, form="latent", guide_type="exact").double()
    latent.load_state_dict(fa.state_dict())  # the EM solution, in the latent form
    elbo = -pyro.infer.Trace_ELBO().loss(latent.model, latent.guide, x) / x.shape[0]
    print(f"latent form with the exact posterior as guide: one-draw ELBO {elbo:.6f} = "
          f"log-likelihood {latent.log_likelihood(x).mean():.6f} nats/example")

    # 4. components and posterior means -------------------------------------------------------
    def embed(rows):
        out = torch.zeros(rows.shape[0], 64, dtype=rows.dtype)
        out[:, keep] = rows
        return out

    for name, model in (("fa_em", fa), ("ppca", ppca), ("fa_svi", fa_svi)):
        save_image_grid(embed(model.weight.detach().T), (8, 8),
                        os.path.join(args.out, f"{name}_components.png"),
                        title=f"{name}: columns of W", symmetric=True)
    h = fa.transform(x)
    for digit in range(3):
        mean_h = h[ds.y == digit].mean(0)
        print(f"digit {digit}: mean posterior factors E[h|x] = "
              + " ".join(f"{v:+.2f}" for v in mean_h.tolist()))
    print(f"figures in {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
