"""ICA benchmark: separation quality (Amari distance) and fit time, pyrogen vs FastICA.

For each data seed, ``n`` samples of ``k`` independent unit-variance sources (cycling through
Laplace, uniform, Student-t(5) and +-1 binary: sub- and super-Gaussian together) are mixed by a
random square matrix. On the same data, interleaved (``harness.compare``: round-robin order,
medians, ratios), we fit

* ``pyrogen-lbfgs``: ``ICA(k)`` (whitening, generalized-normal sources with a learnt shape,
  exact maximum likelihood by L-BFGS), float64;
* ``pyrogen-fp``: ``ICA(k).fit(method="fixed_point")``: FastICA's symmetric logcosh fixed point
  on the whitened data, then at most 50 L-BFGS iterations of the same exact likelihood;
* ``pyrogen-fp0``: the same with ``polish_steps=0`` (the logcosh-contrast estimate alone; its
  exact log-likelihood is reported, but it is not the maximum-likelihood estimate);
* ``sklearn``: ``FastICA(k, whiten="unit-variance", fun="logcosh", tol=1e-6, max_iter=2000)``.

and report, per seed, the Amari distance of each recovered unmixing to the true mixing
(0 = perfect), the medians over seeds, the median fit times and their ratio to FastICA, and the
mean exact log-likelihood per example of each pyrogen fit. All single-threaded (torch 1
intra-op thread; FastICA's numpy BLAS as configured, printed in the header).

    python benchmarks/bench_ica.py [--quick] [--seeds 10] [--n 2000] [--k 4] [--repeats 3]
"""

from __future__ import annotations

import os
import statistics
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import append_to_file, bench_parser, compare, header  # noqa: E402

KINDS = ("laplace", "uniform", "student_t", "binary")


def mixture(seed: int, n: int, k: int):
    g = np.random.default_rng(seed)
    cols = []
    for i in range(k):
        kind = KINDS[i % len(KINDS)]
        c = {
            "laplace": lambda: g.laplace(size=n),
            "uniform": lambda: g.uniform(-1, 1, size=n),
            "student_t": lambda: g.standard_t(5, size=n),
            "binary": lambda: np.sign(g.standard_normal(n)),
        }[kind]()
        cols.append((c - c.mean()) / c.std())
    a = g.normal(size=(k, k))
    return np.stack(cols, 1) @ a.T, a


def main() -> None:
    p = bench_parser("ICA: Amari distance and fit time against scikit-learn's FastICA")
    p.add_argument("--seeds", type=int, default=10, help="data sets (seeds)")
    p.add_argument("--n", type=int, default=2000, help="samples per data set")
    p.add_argument("--k", type=int, default=4, help="sources = features")
    args = p.parse_args()
    if args.quick:
        args.seeds, args.n, args.k = 2, 300, 3
    repeats = args.repeats or (1 if args.quick else 3)
    torch.set_num_threads(args.threads or 1)

    from sklearn.decomposition import FastICA

    from pyrogen.models import ICA
    from pyrogen.models.ica import amari_distance

    lines = [header()]
    print(lines[0])
    names = ("pyrogen-lbfgs", "pyrogen-fp", "pyrogen-fp0", "sklearn")
    amari = {k: [] for k in names}
    times = {k: [] for k in names}
    lls = {k: [] for k in names[:-1]}
    fit_kw = {"pyrogen-lbfgs": {}, "pyrogen-fp": {"method": "fixed_point"},
              "pyrogen-fp0": {"method": "fixed_point", "polish_steps": 0}}
    for seed in range(args.seeds):
        x, a = mixture(seed, args.n, args.k)
        xt = torch.tensor(x)

        def ours(name, xt=xt, seed=seed):
            m = ICA(args.k).double()
            m.fit(xt, seed=seed, progress=False, check_identifiability=False, **fit_kw[name])
            return m.components_.numpy(), float(m.log_likelihood(xt).mean())

        def theirs(x=x, seed=seed):
            f = FastICA(args.k, whiten="unit-variance", random_state=seed, max_iter=2000,
                        tol=1e-6)
            return f.fit(x).components_

        cands = {name: (lambda name=name: ours(name)) for name in names[:-1]}
        cands["sklearn"] = theirs
        cmp = compare(cands, repeats=repeats, warmup=args.warmup if seed == 0 else 0,
                      baseline="sklearn", print_fn=None)
        row = f"seed {seed}:"
        for name in names:
            res = cmp.results[name]
            if name != "sklearn":
                res, ll = res
                lls[name].append(ll)
            d = amari_distance(res, a)
            amari[name].append(d)
            times[name].append(cmp.timings[name].median)
            row += f"  {name} Amari {d:.4f} fit {cmp.timings[name].median:.3f}s"
        print(row)
        lines.append(row)
    med = {k: statistics.median(v) for k, v in amari.items()}
    tmed = {k: statistics.median(v) for k, v in times.items()}
    summary = f"n={args.n}, k={args.k}, {args.seeds} seeds, {repeats} timed repeat(s) each"
    for name in names[:-1]:
        wins = sum(o <= t for o, t in zip(amari[name], amari["sklearn"]))
        gap = statistics.mean(a - b for a, b in zip(lls[name], lls["pyrogen-lbfgs"]))
        summary += (
            f"\n{name}: median Amari {med[name]:.4f} (<= FastICA on {wins}/{args.seeds} "
            f"seeds), median fit {tmed[name]:.3f}s = {tmed[name] / tmed['sklearn']:.1f}x "
            f"FastICA; exact log-lik minus lbfgs's, mean over seeds {gap:+.2e} nats/example"
        )
    summary += f"\nsklearn FastICA: median Amari {med['sklearn']:.4f}, median fit " \
               f"{tmed['sklearn']:.3f}s"

    print(summary)
    lines.append(summary)
    if args.out:
        append_to_file(args.out, "\n".join(lines))


if __name__ == "__main__":
    main()
