"""Bayesian factor analysis by NUTS: effective samples per second, Pyro vs NumPyro.

Model: :class:`pyrogen.models.BayesianFactorAnalysis` (ARD prior, inverse-gamma noise prior,
collapsed likelihood ``LowRankMultivariateNormal``), float64, K = 10. Data:

* digits: scikit-learn's 8x8 digits (``pyrogen.datasets.load_digits``), 1797 rows, constant
  pixels dropped (61 remain), each pixel standardized;
* MNIST-PCA50: the first 5000 rows of the fixed binarized MNIST training set, centred and
  projected on their top 50 principal axes, divided by one global scale so that the mean
  variance is 1 (the eigen-structure is kept; skipped when the data file is absent).
  The unprojected 784-pixel version was not run (Pyro NUTS would take hours on this machine).

Candidates, same target density (the Pyro model's own centred parameterization, i.e.
``NUTS(model)``; NumPyro runs the twin ``pyrogen.numpyro.bayesian_fa(noncentered=False)``), same
settings (warmup, samples, target accept 0.8, max tree depth, one chain, the same PCA starting
point ``BayesianFactorAnalysis._pca_init``):

* ``pyro``: ``pyro.infer.NUTS(model)``;
* ``pyro-jit``: ``pyro.infer.NUTS(model, jit_compile=True)`` (TorchScript trace of the
  potential);
* ``numpyro``: ``numpyro.infer.NUTS`` on the twin.

Measure per run: bulk ESS (ArviZ) of the **slowest** identified quantity among ``noise``
(D), ``loc`` (D) and ``WWt_diag`` (D; the diagonal of W W^T, rotation invariant) divided by
the wall time of the sampling phase; warmup (+ compilation) time is reported separately.
Pyro's sampling phase is timed with ``MCMC(hook_fn=...)`` (from the end of the last warmup
iteration to the end of the run). NumPyro is warmed up (and compiled) once per dataset; each
repeat then samples ``--samples`` draws from the adapted state with a fresh key, and the
sampling time excludes the measured JAX compilation time (``jax.monitoring``; only the first
repeat compiles). Repeats are interleaved (rotated round robin); medians and ratios of medians
(to ``pyro``) are printed.

Usage: ``python benchmarks/bench_bayes_nuts.py [--quick] [--repeats N] [--nuts-warmup N]
[--samples N] [--max-tree-depth N] [--datasets digits,mnist] [--mnist-repeats N] [--out F]``.
"""

from __future__ import annotations

import os
import pathlib
import statistics
import sys
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # numpyro's progress-bar loop, without the bar
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import arviz as az  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import numpy as np  # noqa: E402
import numpyro  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from harness import append_to_file, bench_parser, header  # noqa: E402
from numpyro.infer import MCMC as NMCMC  # noqa: E402
from numpyro.infer import NUTS as NNUTS  # noqa: E402
from numpyro.infer import init_to_value as n_init_to_value  # noqa: E402
from pyro.infer import MCMC, NUTS  # noqa: E402
from pyro.infer.autoguide.initialization import init_to_value  # noqa: E402

from pyrogen.datasets import load_binarized_mnist, load_digits  # noqa: E402
from pyrogen.models import BayesianFactorAnalysis  # noqa: E402
from pyrogen.numpyro import bayesian_fa  # noqa: E402
from pyrogen.numpyro.mcmc import _CompileClock  # noqa: E402


def versions() -> str:
    return (f"jax {jax.__version__}, jaxlib {jaxlib.__version__}, numpyro {numpyro.__version__}, "
            f"pyro {pyro.__version__}, torch {torch.__version__}, arviz {az.__version__}")


def digits_data(quick: bool) -> np.ndarray:
    x = load_digits(dtype=torch.float64).x.numpy()
    if quick:
        x = x[:300]
    x = x[:, x.std(0) > 0]
    return (x - x.mean(0)) / x.std(0)


def mnist_data(quick: bool) -> np.ndarray | None:
    try:
        ds = load_binarized_mnist(limit=1000 if quick else 5000, dtype=torch.float64)
    except FileNotFoundError:
        here = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
        try:
            ds = load_binarized_mnist(here, limit=1000 if quick else 5000, dtype=torch.float64)
        except FileNotFoundError:
            return None
    x = ds.x.numpy()
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = 10 if quick else 50
    z = xc @ vt[:k].T
    return z / np.sqrt((z**2).mean(0).mean())


def min_bulk_ess(draws: dict[str, np.ndarray]) -> tuple[float, str]:
    """Smallest bulk ESS over noise, loc, WWt_diag (one chain, ``draws[k]`` is ``(S, ...)``)."""
    W = draws["W"]
    qs = {"noise": draws["noise"], "loc": draws["loc"], "WWt_diag": (W**2).sum(-1)}
    best = (float("inf"), "")
    for name, v in qs.items():
        ds = az.convert_to_dataset({name: np.asarray(v)[None]})
        e = np.asarray(az.ess(ds, method="bulk")[name].values).ravel()
        i = int(np.nanargmin(e))
        if e[i] < best[0]:
            best = (float(e[i]), f"{name}[{i}]")
    return best


def run_pyro(x, init, K, args, jit):
    m = BayesianFactorAnalysis(x.shape[1], K).double()
    xt = torch.as_tensor(x)
    stamps = {}

    def hook(kernel, params, stage, i):
        if stage == "Warmup":
            stamps["warm_end"] = time.perf_counter()

    kernel = NUTS(m.model, target_accept_prob=0.8, max_tree_depth=args.max_tree_depth,
                  jit_compile=jit, ignore_jit_warnings=True,
                  init_strategy=init_to_value(values=init))
    mcmc = MCMC(kernel, num_samples=args.samples, warmup_steps=args.nuts_warmup,
                hook_fn=hook, disable_progbar=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mcmc.run(xt)
    t1 = time.perf_counter()
    warm_end = stamps.get("warm_end", t0)
    draws = {k: v.detach().numpy() for k, v in mcmc.get_samples().items()}
    ess, which = min_bulk_ess(draws)
    sample_s = t1 - warm_end
    return {"warmup_s": warm_end - t0, "sample_s": sample_s, "ess": ess, "which": which,
            "ess_per_s": ess / sample_s, "noise_mean": float(draws["noise"].mean())}


class NumpyroRunner:
    """One NumPyro MCMC per dataset: warmed up (and compiled) once, then sampled per repeat."""

    def __init__(self, x, init, K, args):
        self.x = jnp.asarray(x)
        self.K = K
        values = {k: jnp.asarray(v.numpy()) for k, v in init.items()}
        kernel = NNUTS(bayesian_fa, target_accept_prob=0.8, max_tree_depth=args.max_tree_depth,
                       init_strategy=n_init_to_value(values=values))
        # progress_bar=True selects numpyro's Python loop over a cached jitted step, so that
        # repeated runs reuse the compiled code (TQDM_DISABLE hides the bar)
        self.mcmc = NMCMC(kernel, num_warmup=args.nuts_warmup, num_samples=args.samples,
                          progress_bar=True)
        self.kw = dict(n_components=K, noncentered=False)
        t0 = time.perf_counter()
        with _CompileClock() as clock:
            self.mcmc.warmup(jax.random.PRNGKey(0), self.x, collect_warmup=False, **self.kw)
            jax.block_until_ready(self.mcmc.post_warmup_state)
        self.warmup_s = time.perf_counter() - t0
        self.warmup_compile_s = clock.seconds
        self.state = self.mcmc.post_warmup_state
        self.calls = 0

    def __call__(self):
        self.calls += 1
        self.mcmc.post_warmup_state = self.state
        t0 = time.perf_counter()
        with _CompileClock() as clock:
            self.mcmc.run(jax.random.PRNGKey(self.calls), self.x, **self.kw)
            samples = self.mcmc.get_samples()
            jax.block_until_ready(samples)
        wall = time.perf_counter() - t0
        draws = {k: np.asarray(v) for k, v in samples.items()}
        ess, which = min_bulk_ess(draws)
        sample_s = wall - clock.seconds
        return {"warmup_s": self.warmup_s, "warmup_compile_s": self.warmup_compile_s,
                "sample_s": sample_s, "sample_compile_s": clock.seconds, "ess": ess,
                "which": which, "ess_per_s": ess / sample_s,
                "noise_mean": float(draws["noise"].mean())}


def bench_dataset(name, x, K, args, out):
    n, D = x.shape
    init = BayesianFactorAnalysis(D, K).double()._pca_init(torch.as_tensor(x))
    print(f"\n## {name}: n={n}, D={D}, K={K}, warmup={args.nuts_warmup}, "
          f"samples={args.samples}, max_tree_depth={args.max_tree_depth}, "
          f"repeats={args.repeats}", flush=True)
    runner = NumpyroRunner(x, init, K, args)
    print(f"numpyro warmup (once): {runner.warmup_s:.1f} s, of which compilation "
          f"{runner.warmup_compile_s:.1f} s", flush=True)
    cands = {
        "pyro": lambda: run_pyro(x, init, K, args, jit=False),
        "pyro-jit": lambda: run_pyro(x, init, K, args, jit=True),
        "numpyro": runner,
    }
    names = list(cands)
    res: dict[str, list[dict]] = {k: [] for k in names}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for k in order:
            res[k].append(cands[k]())
            last = res[k][-1]
            print(f"  repeat {r} {k:9s} ESS/s={last['ess_per_s']:.3g} "
                  f"(ESS {last['ess']:.0f} of {last['which']}, sampling {last['sample_s']:.2f} "
                  f"s, warmup {last['warmup_s']:.1f} s)", flush=True)
    med = {k: {f: statistics.median(r[f] for r in res[k])
               for f in ("ess_per_s", "ess", "sample_s", "warmup_s")} for k in names}
    lines = [f"### {name} (n={n}, D={D}, K={K}; warmup {args.nuts_warmup}, samples "
             f"{args.samples}, max tree depth {args.max_tree_depth}, {args.repeats} repeats)",
             "| candidate | median ESS/s | ratio to pyro | median min bulk ESS | median "
             "sampling s | median warmup+compile s |",
             "|---|---|---|---|---|---|"]
    for k in names:
        m = med[k]
        lines.append(f"| {k} | {m['ess_per_s']:.3g} | "
                     f"{m['ess_per_s'] / med['pyro']['ess_per_s']:.3g} | {m['ess']:.0f} | "
                     f"{m['sample_s']:.2f} | {m['warmup_s']:.1f} |")
    lines.append(f"(numpyro warmup ran once: {runner.warmup_s:.1f} s incl. "
                 f"{runner.warmup_compile_s:.1f} s compilation; pyro/pyro-jit warm up per "
                 "repeat)")
    text = "\n".join(lines)
    print(text, flush=True)
    if out:
        append_to_file(out, text + "\n")


def main():
    p = bench_parser("Bayesian FA NUTS: ESS/s of Pyro, Pyro jit, NumPyro")
    p.add_argument("--nuts-warmup", type=int, default=None)
    p.add_argument("--samples", type=int, default=None)
    p.add_argument("--max-tree-depth", type=int, default=8)
    p.add_argument("--datasets", default="digits,mnist")
    p.add_argument("--components", type=int, default=None)
    p.add_argument("--mnist-repeats", type=int, default=None,
                   help="repeats for MNIST (default: --repeats)")
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    q = args.quick
    args.repeats = args.repeats or (1 if q else 3)
    args.nuts_warmup = args.nuts_warmup or (20 if q else 150)
    args.samples = args.samples or (20 if q else 150)
    K = args.components or (3 if q else 10)
    head = header() + "\n# versions: " + versions()
    print(head, flush=True)
    if args.out:
        append_to_file(args.out, head + "\n")
    sets = args.datasets.split(",")
    if "digits" in sets:
        bench_dataset("digits", digits_data(q), K, args, args.out)
    if "mnist" in sets:
        x = mnist_data(q)
        if x is None:
            print("binarized MNIST not found: skipped")
        else:
            if args.mnist_repeats:
                args.repeats = args.mnist_repeats
            bench_dataset("MNIST-PCA50" if not q else "MNIST-PCA10", x, K, args, args.out)


if __name__ == "__main__":
    main()
