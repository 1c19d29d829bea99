"""Sparse coding of handwritten digits: learn a dictionary, encode, denoise (book §13.4).

The story: 8x8 digits are written as sparse combinations of a learned dictionary of atoms. We

1. learn the dictionary by the book's alternating minimization (exact MAP codes, then block
   coordinate descent on unit-norm atoms) and compare the Lasso objective it reaches with
   scikit-learn's ``DictionaryLearning`` at the same settings (when scikit-learn is installed);
2. refine it with Pyro: SVI on ``model``/``guide`` with the MAP (point-mass) guide, whose loss is
   ``-log p(x, h*)``;
3. encode held-out digits (``transform``: the MAP code, with a duality-gap certificate), and
   estimate their log-likelihood by importance sampling (an estimate, with standard errors);
4. denoise: encode noisy digits and decode ``W h* + b``.

Run ``python examples/sparse_coding_digits.py`` (or ``--quick`` for a few seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyrogen.datasets import load_digits  # noqa: E402
from pyrogen.models import SparseCoding  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--atoms", type=int, default=None)
    parser.add_argument("--lam", type=float, default=0.5, help="prior rate lambda")
    parser.add_argument("--beta", type=float, default=1.0, help="noise precision beta")
    parser.add_argument("--out", default=".", help="folder for a PNG of the atoms ('' for none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    ds = load_digits(dtype=torch.float64)
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(ds), generator=g)
    n_train = 200 if args.quick else 1400
    train, test = ds.x[perm[:n_train]], ds.x[perm[n_train:n_train + (50 if args.quick else 397)]]
    k = args.atoms or (12 if args.quick else 36)
    iters = 5 if args.quick else 50
    alpha = args.lam / (2 * args.beta)
    print(f"data: {ds.identity}; {len(train)} train / {len(test)} test digits; K={k} atoms")
    print(f"objective: lambda |h|_1 + beta |x - W h|^2 with lambda={args.lam}, beta={args.beta}"
          f"  (= 2 beta x scikit-learn's Lasso objective at alpha={alpha})")

    # 1. alternating minimization
    sc = SparseCoding(64, k, lam=args.lam, beta=args.beta, num_is_samples=200).double()
    hist = sc.fit(train, num_iter=iters, progress=False, seed=args.seed, data_info=ds.info)
    lasso_ours = hist.metrics["lasso_objective"][-1]
    print(f"[alternating] {len(hist.losses)} iterations in {hist.seconds:.2f}s: objective "
          f"{hist.losses[-1]:.4f}/example, squared error "
          f"{hist.metrics['reconstruction'][-1]:.4f}, nonzero fraction "
          f"{hist.metrics['nonzero_fraction'][-1]:.3f}")
    result = {"objective": hist.losses[-1], "lasso_objective": lasso_ours}
    try:
        from sklearn.decomposition import DictionaryLearning, SparseCoder
    except ImportError:
        DictionaryLearning = None
    if DictionaryLearning is None or args.quick:
        print("[compare] skipped (--quick, or scikit-learn not installed)")
    else:
        t0 = time.perf_counter()
        dl = DictionaryLearning(k, alpha=alpha, max_iter=iters, random_state=args.seed,
                                transform_algorithm="lasso_cd").fit(train.numpy())
        sk_seconds = time.perf_counter() - t0

        def lasso_total(components):
            h = SparseCoder(components, transform_algorithm="lasso_cd",
                            transform_alpha=alpha, transform_max_iter=100_000).transform(
                train.numpy())
            r = train.numpy() - h @ components
            return 0.5 * (r**2).sum() + alpha * abs(h).sum(), (h != 0).mean()

        ours, nz_ours = lasso_total(sc.components_.numpy())
        theirs, nz_theirs = lasso_total(dl.components_)
        print(f"[compare] Lasso objective on the training digits (same encoder, smaller is "
              f"better): pyrogen {ours:.3f} (nonzero {nz_ours:.3f}, {hist.seconds:.2f}s), "
              f"sklearn DictionaryLearning {theirs:.3f} (nonzero {nz_theirs:.3f}, "
              f"{sk_seconds:.2f}s)")
        result.update(sklearn_lasso_objective=theirs, pyrogen_lasso_objective=ours)

    # 2. Pyro SVI with the MAP guide (point mass at the solver's code)
    svi = sc.fit(train, method="svi", num_steps=10 if args.quick else 200, lr=0.005,
                 seed=args.seed, progress=False)
    print(f"[svi, MAP guide] {svi.info['loss']}: {svi.losses[0]:.3f} -> {svi.losses[-1]:.3f}; "
          f"book objective now {float(sc.objective(train).mean()):.4f}/example")

    # 3. encode held-out digits, with the certificate, and estimate log p(x)
    res = sc.encode(test)
    print(f"[encode] {len(test)} test digits: {float((res.codes != 0).double().sum(1).mean()):.1f}"
          f" nonzeros per code; max duality gap {float(res.gap.max()):.2e}; "
          f"certified {int(res.converged.sum())}/{len(test)}")
    ll = sc.log_likelihood(test, seed=args.seed)
    print(f"[log-likelihood] {ll}  (importance-sampled: a stochastic lower bound; "
          f"min ESS {ll.info['ess_min']:.1f} of {ll.info['num_samples']})")
    result["test_log_likelihood"] = ll.mean()

    # 4. denoising
    noisy = test + 0.2 * torch.randn(test.shape, generator=g, dtype=test.dtype)
    clean = sc.transform(noisy) @ sc.weight.T + sc.bias
    err_noisy = float(((noisy - test) ** 2).sum(1).mean())
    err_clean = float(((clean - test) ** 2).sum(1).mean())
    print(f"[denoise] squared error to the clean digit: noisy {err_noisy:.3f} -> "
          f"sparse reconstruction {err_clean:.3f}")
    result.update(denoise_noisy=err_noisy, denoise_clean=err_clean)

    if args.out:
        from pyrogen.plotting import save_image_grid

        os.makedirs(args.out, exist_ok=True)
        path = save_image_grid(sc.components_, (8, 8), os.path.join(args.out, "atoms.png"),
                               title="sparse coding atoms", symmetric=True)
        print(f"atoms written to {path}")
    return result


if __name__ == "__main__":
    main()
