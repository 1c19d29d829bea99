"""Factor analysis and PPCA: pyrogen vs scikit-learn, fit time and final log-likelihood.

Data (float64 for both libraries, constant columns dropped so the noise floors do not enter):

* digits: scikit-learn's 8x8 digits scaled to [0, 1], 1797 x 61 varying pixels, K = 10;
* binarized MNIST: the first 10 000 training images of the fixed binarization, 657 varying
  pixels of 784, K = 50 (from ``PYROGEN_DATA`` or ``../shared/data``; skipped when absent).

Candidates (interleaved, medians of ``--repeats``; ratio = time / scikit-learn's time):

* FA: ``FactorAnalysis(noise_floor=1e-12).fit(method="em")`` vs
  ``sklearn.decomposition.FactorAnalysis`` (its default randomized SVD, ``tol=1e-2`` on the total
  log-likelihood, which is pyrogen's default ``tol=1e-6`` per example at n = 10 000). The floor
  is scikit-learn's: rare MNIST pixels are Heywood cases whose noise variance sits on the
  floor, and pyrogen's default floor (1e-6 x the mean variance) would score them lower;
* PPCA: ``PPCA.fit(method="closed_form")`` vs ``sklearn.decomposition.PCA`` (``PCA.score`` is the
  PPCA log-likelihood);
* FA by Pyro SVI (collapsed model, Adam): a fixed number of steps, its time ratio and how far
  its exact log-likelihood is from EM's, reported as measured (it is not expected to be fast).

Every log-likelihood printed is the exact mean log-likelihood per example (nats) on the training
data, computed by each library for its own fit.

Usage: ``python benchmarks/bench_factor.py [--quick] [--repeats N] [--svi-steps N] [--out F]``.
"""

from __future__ import annotations

import os
import pathlib
import sys
import warnings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from harness import append_to_file, bench_parser, compare, header  # noqa: E402

from pyrogen.datasets import load_binarized_mnist, load_digits  # noqa: E402
from pyrogen.models import PPCA, FactorAnalysis  # noqa: E402
from pyrogen.models.factor import NoiseFloorWarning  # noqa: E402


def _mnist_path() -> str | None:
    env = os.environ.get("PYROGEN_DATA")
    here = pathlib.Path(__file__).resolve().parents[1]
    for cand in ([env] if env else []) + [str(here.parent / "shared" / "data")]:
        if cand and (os.path.isfile(cand) or os.path.isfile(os.path.join(cand,
                                                                         "binarized_mnist.npz"))):
            return cand
    return None


def _fit_ours(cls, x, k, ctor, **kw):
    def run():
        model = cls(x.shape[1], k, **ctor).double()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoiseFloorWarning)  # rare-pixel Heywood cases
            hist = model.fit(x, progress=False, **kw)
        return model, hist

    return run


def bench_dataset(name, x, k, args, lines):
    from sklearn.decomposition import PCA
    from sklearn.decomposition import FactorAnalysis as SkFA

    xn = x.numpy()
    floor = {"noise_floor": 1e-12}  # scikit-learn's floor: Heywood pixels then score alike
    reps = args.repeats or (2 if args.quick else 5)
    # -- factor analysis ---------------------------------------------------------------------
    fa = compare(
        {
            "pyrogen FA em": _fit_ours(FactorAnalysis, x, k, floor, method="em"),
            "sklearn FactorAnalysis": lambda: SkFA(n_components=k, random_state=0).fit(xn),
        },
        repeats=reps,
        warmup=args.warmup,
        title=f"{name}: factor analysis K={k} ({x.shape[0]} x {x.shape[1]})",
        print_fn=None,
    )
    ours, hist = fa.results["pyrogen FA em"]
    sk = fa.results["sklearn FactorAnalysis"]
    ll_ours = ours.log_likelihood(x).mean()
    ll_sk = float(np.mean(sk.score_samples(xn)))
    table = fa.table(
        extra={
            "pyrogen FA em": f"{ll_ours:.4f} ({hist.info['n_iter']} it)",
            "sklearn FactorAnalysis": f"{ll_sk:.4f} ({sk.n_iter_} it)",
        },
        extra_header="log-lik nats/ex (iterations)",
    )
    table += f"\nlog-lik relative difference: {abs(ll_ours - ll_sk) / abs(ll_sk):.2e}"
    print(table, flush=True)
    lines.append(table)
    # -- PPCA --------------------------------------------------------------------------------
    pp = compare(
        {
            "pyrogen PPCA closed_form": _fit_ours(PPCA, x, k, {}, method="closed_form"),
            "sklearn PCA": lambda: PCA(n_components=k, random_state=0).fit(xn),
        },
        repeats=reps,
        warmup=args.warmup,
        title=f"{name}: PPCA K={k} ({x.shape[0]} x {x.shape[1]})",
        print_fn=None,
    )
    ours, _ = pp.results["pyrogen PPCA closed_form"]
    ll_ours = ours.log_likelihood(x).mean()
    ll_sk = float(pp.results["sklearn PCA"].score(xn))
    table = pp.table(
        extra={"pyrogen PPCA closed_form": f"{ll_ours:.4f}", "sklearn PCA": f"{ll_sk:.4f}"},
        extra_header="log-lik nats/ex",
    )
    table += f"\nlog-lik relative difference: {abs(ll_ours - ll_sk) / abs(ll_sk):.2e}"
    print(table, flush=True)
    lines.append(table)
    # -- SVI ---------------------------------------------------------------------------------
    steps = args.svi_steps or (20 if args.quick else 500)
    em_ll = FactorAnalysis(x.shape[1], k, **floor).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoiseFloorWarning)
        em_ll.fit(x, progress=False)
    em_ll = em_ll.log_likelihood(x).mean()
    svi = compare(
        {
            f"pyrogen FA svi ({steps} steps)": _fit_ours(
                FactorAnalysis, x, k, floor, method="svi", num_steps=steps, lr=0.05, seed=0
            ),
            "sklearn FactorAnalysis": lambda: SkFA(n_components=k, random_state=0).fit(xn),
        },
        repeats=1,
        warmup=0,
        title=f"{name}: factor analysis K={k} by Pyro SVI (collapsed, Adam lr 0.05)",
        print_fn=None,
    )
    ours, _ = svi.results[f"pyrogen FA svi ({steps} steps)"]
    ll_svi = ours.log_likelihood(x).mean()
    table = svi.table(
        extra={
            f"pyrogen FA svi ({steps} steps)": f"{ll_svi:.4f} (EM optimum {em_ll:.4f})",
            "sklearn FactorAnalysis": f"{ll_sk_fa(svi.results['sklearn FactorAnalysis'], xn):.4f}",
        },
        extra_header="log-lik nats/ex",
    )
    print(table, flush=True)
    lines.append(table)


def ll_sk_fa(model, xn) -> float:
    return float(np.mean(model.score_samples(xn)))


def main(argv=None) -> None:
    p = bench_parser(__doc__.splitlines()[0])
    p.add_argument("--svi-steps", type=int, default=None, help="SVI steps (default 500)")
    p.add_argument("--no-mnist", action="store_true", help="digits only")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads or 1)
    import sklearn.decomposition  # noqa: F401  (load its BLAS before limiting the threads)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        threadpool_limits = None
    lines = [header()]
    print(lines[0], flush=True)
    ctx = threadpool_limits(args.threads or 1) if threadpool_limits else None
    if ctx is not None:
        ctx.__enter__()
        lines.append(f"# threads: torch {torch.get_num_threads()}, BLAS {args.threads or 1}")
        print(lines[-1])
    digits = load_digits(dtype=torch.float64).x
    digits = digits[:, digits.std(0) > 0]
    bench_dataset("digits", digits, 10, args, lines)
    path = None if args.no_mnist else _mnist_path()
    if path is None:
        msg = "binarized MNIST: skipped (set PYROGEN_DATA or provide ../shared/data)"
        print(msg)
        lines.append(msg)
    else:
        n = 2000 if args.quick else 10000
        x = load_binarized_mnist(path, limit=n, dtype=torch.float64).x
        x = x[:, x.std(0) > 0]
        bench_dataset(f"binarized MNIST (first {n} train images)", x, 50, args, lines)
    if args.out:
        append_to_file(args.out, "\n\n".join(lines))


if __name__ == "__main__":
    main()
