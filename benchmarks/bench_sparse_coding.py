"""Sparse coding benchmark: batched encoding of binarized MNIST, pyrogen vs scikit-learn.

The dictionary (``--atoms`` unit-norm atoms, default 256) is learned by pyrogen's alternating
minimization on the first ``--train`` training images (fixed binarized MNIST), then the first
``--n`` test images (default 10 000, 784-d) are encoded, interleaved (``harness.compare``:
round-robin order, medians, ratios), by

* ``pyrogen``: ``pyrogen.infer.lasso.solve_lasso(x, W, alpha, tol=1e-8)`` (batched feature-sign
  active-set search on active-set slots, duality-gap certificate per row), float64, torch with
  ``--threads`` intra-op threads (default 1);
* ``sklearn``: ``SparseCoder(W.T, transform_algorithm="lasso_cd", transform_alpha=alpha)``
  (coordinate descent with a Gram matrix per image, ``tol=1e-8`` hard-coded by scikit-learn),
  float64; its coordinate descent is single-threaded Cython (``n_jobs=None``), its Gram and
  ``W^T x`` products use the BLAS threads printed in the header line.

Both minimize the same objective 0.5 ||x - W h||^2 + alpha ||h||_1 per image and stop at the
same rule (duality gap <= 1e-8 ||x||^2); the script reports the mean objective of each and
the largest per-image relative difference. Besides the wall-time medians of the harness it
prints each candidate's median process CPU time (less sensitive to a busy machine; sklearn's
includes its BLAS threads).

    python benchmarks/bench_sparse_coding.py [--quick] [--n 10000] [--atoms 256] [--alpha 1.0]
        [--methods auto,fista,admm] [--repeats 3] [--threads 1] [--sklearn-threads N]
        [--dict-cache FILE]
        [--out FILE]
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import append_to_file, bench_parser, compare, header  # noqa: E402


def main() -> None:
    p = bench_parser("Sparse coding: encoding binarized MNIST against sklearn's SparseCoder")
    p.add_argument("--n", type=int, default=10000, help="test images to encode")
    p.add_argument("--atoms", type=int, default=256, help="dictionary size")
    p.add_argument("--alpha", type=float, default=1.0, help="l1 weight (sklearn's alpha)")
    p.add_argument("--train", type=int, default=2000, help="training images for the dictionary")
    p.add_argument("--dict-iter", type=int, default=5, help="alternating iterations (dictionary)")
    p.add_argument("--methods", default="auto", help="pyrogen solvers, comma-separated")
    p.add_argument("--data", default=None, help="binarized MNIST .npz (default: ../shared/data)")
    p.add_argument("--sklearn-threads", type=int, default=None,
                   help="limit numpy/scipy BLAS and OpenMP pools for sklearn (threadpoolctl)")
    p.add_argument("--dict-cache", default=None,
                   help="load the dictionary from this .pt file if it exists, else save it there")
    args = p.parse_args()
    if args.quick:
        args.n, args.atoms, args.train, args.dict_iter = 300, 64, 300, 2
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(args.threads or 1)

    from sklearn.decomposition import SparseCoder

    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.infer.lasso import lasso_objective, solve_lasso
    from pyrogen.models import SparseCoding

    here = os.path.dirname(os.path.abspath(__file__))
    path = args.data or os.environ.get("PYROGEN_DATA") or os.path.join(
        here, "..", "..", "shared", "data", "binarized_mnist.npz"
    )
    train = load_binarized_mnist(path, "train", dtype=torch.float64, limit=args.train)
    test = load_binarized_mnist(path, "test", dtype=torch.float64, limit=args.n,
                               subset="spaced")  # the test split is ordered by class
    lines = [header()]
    print(lines[0])
    key = {"atoms": args.atoms, "train": args.train, "dict_iter": args.dict_iter,
           "alpha": args.alpha}
    cached = None
    if args.dict_cache and os.path.exists(args.dict_cache):
        cached = torch.load(args.dict_cache, weights_only=True)
        if cached.get("key") != key:
            raise SystemExit(f"--dict-cache {args.dict_cache} holds {cached.get('key')}, not {key}")
    if cached is None:
        sc = SparseCoding(784, args.atoms, lam=2 * args.alpha, beta=1.0).double()
        n_dict = len(sc.fit(train.x, num_iter=args.dict_iter, progress=False, seed=0).losses)
        w = sc.weight.detach().clone()
        if args.dict_cache:
            torch.save({"key": key, "weight": w, "n_iter": n_dict}, args.dict_cache)
    else:
        w, n_dict = cached["weight"], cached["n_iter"]
    x = test.x
    xn = x.numpy()
    coder = SparseCoder(w.T.numpy(), transform_algorithm="lasso_cd", transform_alpha=args.alpha)
    g = w.T @ w
    ev = torch.linalg.eigvalsh(g)
    info = (
        f"data: {test.identity}; dictionary: {args.atoms} atoms learned by pyrogen "
        f"(alternating, {n_dict} iterations on {train.identity}); "
        f"cond(W^T W) = {float(ev[-1] / ev[0]):.3g}; alpha = {args.alpha}; tol = 1e-8 (both)"
    )
    try:
        from threadpoolctl import threadpool_info

        blas = sorted({f"{d['internal_api']}:{d['num_threads']}" for d in threadpool_info()})
    except ImportError:  # pragma: no cover
        blas = ["threadpoolctl not installed"]
    info += (f"\nthreads: pyrogen torch intra-op {torch.get_num_threads()}; sklearn coordinate "
             f"descent 1 (n_jobs=None), numpy/scipy BLAS/OpenMP pools {', '.join(blas)}"
             + (f", limited to {args.sklearn_threads} for sklearn" if args.sklearn_threads
                else ""))
    print(info)
    lines.append(info)

    candidates = {}
    for m in args.methods.split(","):
        candidates[f"pyrogen-{m}"] = (
            lambda m=m: solve_lasso(x, w, args.alpha, method=m, tol=1e-8, max_iter=100000)
        )
    if args.sklearn_threads:
        from threadpoolctl import threadpool_limits

        def sk_transform():
            with threadpool_limits(args.sklearn_threads):
                return coder.transform(xn)

        candidates["sklearn"] = sk_transform
    else:
        candidates["sklearn"] = lambda: coder.transform(xn)
    cpu: dict[str, list[float]] = {name: [] for name in candidates}

    def timed(name, fn):
        def run():
            t0 = time.process_time()
            out = fn()
            cpu[name].append(time.process_time() - t0)
            return out

        return run

    cmp = compare({k: timed(k, f) for k, f in candidates.items()}, repeats=repeats,
                  warmup=args.warmup, baseline="sklearn", print_fn=None)
    cpu_med = {k: statistics.median(v[args.warmup:] or v) for k, v in cpu.items()}
    sk_codes = torch.as_tensor(cmp.results["sklearn"])
    sk_obj = lasso_objective(x, w, sk_codes, args.alpha)
    nnz = float((sk_codes != 0).sum(1).double().mean())
    extra = {"sklearn": f"cpu {cpu_med['sklearn']:.2f} s; objective {float(sk_obj.mean()):.6f}, "
             f"nnz/image {nnz:.1f}"}
    for name, res in cmp.results.items():
        if name == "sklearn":
            continue
        rel = ((res.objective - sk_obj) / sk_obj).abs().max()
        extra[name] = (
            f"cpu {cpu_med[name]:.2f} s (sklearn/this {cpu_med['sklearn'] / cpu_med[name]:.2f}x); "
            f"objective {float(res.objective.mean()):.6f}, max rel. diff {float(rel):.1e}, "
            f"converged {int(res.converged.sum())}/{len(x)}, iters {res.n_iter}"
        )
    table = cmp.table(extra=extra, extra_header="objective (mean per image)")
    print(table)
    lines.append(table)
    if args.out:
        append_to_file(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
