"""Bayesian factor analysis by NUTS: effective samples per second, Pyro vs NumPyro.

Model: :class:`pyrogen.models.BayesianFactorAnalysis` (ARD prior, inverse-gamma noise prior,
collapsed likelihood), float64, K = 10. Data:

* digits: scikit-learn's 8x8 digits (``pyrogen.datasets.load_digits``), 1797 rows, constant
  pixels dropped (61 remain), each pixel standardized;
* MNIST-PCA50: the first 5000 rows of the fixed binarized MNIST training set, centred and
  projected on their top 50 principal axes, divided by one global scale so that the mean
  variance is 1 (the eigen-structure is kept; skipped when the data file is absent);
* MNIST-pixels (``--datasets mnist784``): the same 5000 rows unprojected, 0/1 pixels, the pixels
  that are constant in those rows dropped (D ~ 600).

Candidates, same target density (the Pyro model's own centred parameterization; NumPyro runs
the twin ``pyrogen.numpyro.bayesian_fa(noncentered=False)``), same settings (warmup, samples,
target accept 0.8, max tree depth, one chain, the same PCA starting point
``BayesianFactorAnalysis._pca_init``):

* ``pyro``: ``pyro.infer.NUTS(model)`` -- the per-row likelihood, the way a user writes it;
* ``pyro-jit``: ``pyro.infer.NUTS(model, jit_compile=True)`` (TorchScript trace of the
  potential);
* ``pyro-ss``: ``pyro.infer.NUTS(potential_fn=model.potential_fn(x))`` -- the hand-written
  torch potential with the sufficient-statistics likelihood (O(D^2 K) per gradient; the
  algorithmic change without the backend change);
* ``numpyro``: ``numpyro.infer.NUTS`` on the twin, per-row likelihood (``sufficient_stats=
  False``);
* ``numpyro-ss``: :class:`pyrogen.numpyro.SufficientStatisticsNUTS` on the twin (the default of
  ``run_nuts`` / ``fit(backend="numpyro")``).

Measure per run: bulk ESS (ArviZ) of the **slowest** identified quantity among ``noise``
(D), ``loc`` (D) and ``WWt_diag`` (D; the diagonal of W W^T, rotation invariant) divided by
the wall time of the sampling phase; also the median bulk ESS over those 3D quantities (a
steadier figure) and the number of gradient evaluations (leapfrog steps) per second. Warmup
(+ compilation) time is reported separately. Pyro's sampling phase is timed with
``MCMC(hook_fn=...)`` (from the end of the last warmup iteration to the end of the run).
NumPyro is warmed up (and compiled) once per dataset; each repeat then samples ``--samples``
draws from the adapted state with a fresh key, and the sampling time excludes the measured JAX
compilation time (``jax.monitoring``; only the first repeat compiles). Repeats are interleaved
(rotated round robin); medians and ratios of medians (to ``pyro``) are printed.
``--pyro-samples N`` gives the Pyro rows fewer draws (for large data; their ESS/s is then
computed from their own N draws, stated in the table).

Usage: ``python benchmarks/bench_bayes_nuts.py [--quick] [--repeats N] [--nuts-warmup N]
[--samples N] [--pyro-samples N] [--max-tree-depth N] [--datasets digits,mnist,mnist784]
[--candidates pyro,pyro-jit,pyro-ss,numpyro,numpyro-ss] [--mnist-repeats N] [--out F]``.
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
from pyrogen.numpyro import (  # noqa: E402
    SufficientStatisticsNUTS,
    bayesian_fa,
    gaussian_sufficient_statistics,
)
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


def _mnist_rows(quick: bool):
    try:
        ds = load_binarized_mnist(limit=1000 if quick else 5000, dtype=torch.float64)
    except FileNotFoundError:
        here = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
        try:
            ds = load_binarized_mnist(here, limit=1000 if quick else 5000, dtype=torch.float64)
        except FileNotFoundError:
            return None
    return ds.x.numpy()


def mnist_pixels(quick: bool) -> np.ndarray | None:
    x = _mnist_rows(quick)
    if x is None:
        return None
    return x[:, x.std(0) > 0]


def mnist_data(quick: bool) -> np.ndarray | None:
    x = _mnist_rows(quick)
    if x is None:
        return None
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = 10 if quick else 50
    z = xc @ vt[:k].T
    return z / np.sqrt((z**2).mean(0).mean())


def bulk_ess(draws: dict[str, np.ndarray]) -> tuple[float, str, float]:
    """(smallest bulk ESS, its name, median bulk ESS) over noise, loc, WWt_diag (one chain,
    ``draws[k]`` is ``(S, ...)``)."""
    W = draws["W"]
    qs = {"noise": draws["noise"], "loc": draws["loc"], "WWt_diag": (W**2).sum(-1)}
    best = (float("inf"), "")
    every = []
    for name, v in qs.items():
        ds = az.convert_to_dataset({name: np.asarray(v)[None]})
        e = np.asarray(az.ess(ds, method="bulk")[name].values).ravel()
        every.append(e)
        i = int(np.nanargmin(e))
        if e[i] < best[0]:
            best = (float(e[i]), f"{name}[{i}]")
    return best[0], best[1], float(np.nanmedian(np.concatenate(every)))


def _result(draws, sample_s, warmup_s, steps, **extra):
    ess, which, med = bulk_ess(draws)
    return {"warmup_s": warmup_s, "sample_s": sample_s, "ess": ess, "which": which,
            "ess_per_s": ess / sample_s, "med_ess_per_s": med / sample_s,
            "grads_per_s": steps / sample_s, "draws": len(draws["W"]),
            "noise_mean": float(draws["noise"].mean()), **extra}


def run_pyro(x, init, K, args, mode):
    """One Pyro NUTS run; ``mode`` is "model" (per-row), "jit" or "ss" (potential_fn)."""
    m = BayesianFactorAnalysis(x.shape[1], K).double()
    xt = torch.as_tensor(x)
    stamps = {}
    kw = dict(target_accept_prob=0.8, max_tree_depth=args.max_tree_depth)
    counter = _GradCounter()

    def hook(kernel, params, stage, i):
        if stage == "Warmup":
            stamps["warm_end"] = time.perf_counter()
            stamps["warm_grads"] = counter.count

    if mode == "ss":
        transforms = m._unconstraining_transforms()
        kernel = NUTS(potential_fn=m.potential_fn(xt), **kw)
        start = {k: transforms[k](v) if k in transforms else v for k, v in init.items()}
        mcmc = MCMC(kernel, num_samples=args.pyro_samples, warmup_steps=args.nuts_warmup,
                    hook_fn=hook, disable_progbar=True, initial_params=start,
                    transforms=transforms)
        run_args = ()
    else:
        kernel = NUTS(m.model, jit_compile=mode == "jit", ignore_jit_warnings=True,
                      init_strategy=init_to_value(values=init), **kw)
        mcmc = MCMC(kernel, num_samples=args.pyro_samples, warmup_steps=args.nuts_warmup,
                    hook_fn=hook, disable_progbar=True)
        run_args = (xt,)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), counter:
        warnings.simplefilter("ignore")
        mcmc.run(*run_args)
    t1 = time.perf_counter()
    warm_end = stamps.get("warm_end", t0)
    draws = {k: v.detach().numpy() for k, v in mcmc.get_samples().items()}
    return _result(draws, t1 - warm_end, warm_end - t0,
                   counter.count - stamps.get("warm_grads", 0))


class _GradCounter:
    """Counts Pyro's potential-gradient evaluations (``pyro.ops.integrator.potential_grad``,
    which ``velocity_verlet`` looks up at call time) while active."""

    def __init__(self):
        self.count = 0

    def __enter__(self):
        import pyro.ops.integrator as integ

        self._mod, self._orig = integ, integ.potential_grad

        def counted(*a, **k):
            self.count += 1
            return self._orig(*a, **k)

        integ.potential_grad = counted
        return self

    def __exit__(self, *exc):
        self._mod.potential_grad = self._orig
        return False


class NumpyroRunner:
    """One NumPyro MCMC per dataset: warmed up (and compiled) once, then sampled per repeat.
    ``ss``: :class:`~pyrogen.numpyro.SufficientStatisticsNUTS` (else plain per-row NUTS)."""

    def __init__(self, x, init, K, args, ss):
        self.x = np.asarray(x)
        self.K = K
        values = {k: jnp.asarray(v.numpy()) for k, v in init.items()}
        kw = dict(target_accept_prob=0.8, max_tree_depth=args.max_tree_depth,
                  init_strategy=n_init_to_value(values=values))
        t0 = time.perf_counter()
        if ss:
            kernel = SufficientStatisticsNUTS(bayesian_fa,
                                              gaussian_sufficient_statistics(self.x), **kw)
        else:
            kernel = NNUTS(bayesian_fa, **kw)
        # progress_bar=True selects numpyro's Python loop over a cached jitted step, so that
        # repeated runs reuse the compiled code (TQDM_DISABLE hides the bar)
        self.mcmc = NMCMC(kernel, num_warmup=args.nuts_warmup, num_samples=args.samples,
                          progress_bar=True)
        self.kw = dict(n_components=K, noncentered=False)
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
            self.mcmc.run(jax.random.PRNGKey(self.calls), self.x, extra_fields=("num_steps",),
                          **self.kw)
            samples = self.mcmc.get_samples()
            jax.block_until_ready(samples)
        wall = time.perf_counter() - t0
        draws = {k: np.asarray(v) for k, v in samples.items()}
        steps = float(np.asarray(self.mcmc.get_extra_fields()["num_steps"]).sum())
        return _result(draws, wall - clock.seconds, self.warmup_s, steps,
                       warmup_compile_s=self.warmup_compile_s, sample_compile_s=clock.seconds)


ALL = ("pyro", "pyro-jit", "pyro-ss", "numpyro", "numpyro-ss")


def grad_timing(name, x, K, args, out):
    """Seconds per potential + gradient evaluation of each candidate at the PCA start (the
    cost NUTS pays per leapfrog step, without the sampler's own overhead); interleaved,
    median of ``--grad-repeats`` batches of ``--grad-evals`` evaluations."""
    from numpyro.infer.util import initialize_model as n_init
    from pyro.infer.mcmc.util import initialize_model

    n, D = x.shape
    m = BayesianFactorAnalysis(D, K).double()
    xt = torch.as_tensor(x)
    init = m._pca_init(xt)
    transforms = m._unconstraining_transforms()
    z0 = {k: (transforms[k](v) if k in transforms else v).clone() for k, v in init.items()}
    fns = {}
    _, pyro_pot, _, _ = initialize_model(m.model, model_args=(xt,))
    ss_pot = m.potential_fn(xt)

    def torch_grad(pot):
        def f():
            z = {k: v.clone().requires_grad_(True) for k, v in z0.items()}
            u = pot(z)
            torch.autograd.grad(u, list(z.values()))
        return f

    fns["pyro"] = torch_grad(pyro_pot)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, jit_pot, _, _ = initialize_model(m.model, model_args=(xt,), jit_compile=True,
                                            skip_jit_warnings=True)
        fns["pyro-jit"] = torch_grad(jit_pot)
        fns["pyro-jit"]()  # trace once
    fns["pyro-ss"] = torch_grad(ss_pot)
    zj = {k: jnp.asarray(v.numpy()) for k, v in z0.items()}
    for c, ss in (("numpyro", False), ("numpyro-ss", gaussian_sufficient_statistics(x))):
        info = n_init(jax.random.PRNGKey(0), bayesian_fa, model_args=(x,),
                      model_kwargs=dict(n_components=K, noncentered=False, sufficient_stats=ss))
        g = jax.jit(jax.value_and_grad(info.potential_fn))
        jax.block_until_ready(g(zj))
        fns[c] = (lambda gg: lambda: jax.block_until_ready(gg(zj)))(g)
    names = [c for c in args.candidates if c in fns]
    times = {c: [] for c in names}
    for r in range(args.grad_repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for c in order:
            fns[c]()
            t0 = time.perf_counter()
            for _ in range(args.grad_evals):
                fns[c]()
            times[c].append((time.perf_counter() - t0) / args.grad_evals)
    med = {c: statistics.median(v) for c, v in times.items()}
    base = "pyro" if "pyro" in names else names[0]
    lines = [f"### gradient cost, {name} (n={n}, D={D}, K={K}; median of {args.grad_repeats} "
             f"interleaved batches of {args.grad_evals})",
             f"| candidate | ms per potential+gradient | speed-up vs {base} |", "|---|---|---|"]
    lines += [f"| {c} | {1e3 * med[c]:.3g} | {med[base] / med[c]:.3g} |" for c in names]
    text = "\n".join(lines)
    print(text, flush=True)
    if out:
        append_to_file(out, text + "\n")


def bench_dataset(name, x, K, args, out):
    n, D = x.shape
    init = BayesianFactorAnalysis(D, K).double()._pca_init(torch.as_tensor(x))
    names = [c for c in args.candidates if c in ALL]
    print(f"\n## {name}: n={n}, D={D}, K={K}, warmup={args.nuts_warmup}, "
          f"samples={args.samples} (pyro rows {args.pyro_samples}), "
          f"max_tree_depth={args.max_tree_depth}, repeats={args.repeats}, "
          f"candidates={names}", flush=True)
    cands = {}
    for c in names:
        if c.startswith("numpyro"):
            runner = NumpyroRunner(x, init, K, args, ss=c == "numpyro-ss")
            print(f"{c} warmup (once): {runner.warmup_s:.1f} s, of which compilation "
                  f"{runner.warmup_compile_s:.1f} s", flush=True)
            cands[c] = runner
        else:
            mode = {"pyro": "model", "pyro-jit": "jit", "pyro-ss": "ss"}[c]
            cands[c] = (lambda m: lambda: run_pyro(x, init, K, args, m))(mode)
    res: dict[str, list[dict]] = {k: [] for k in names}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for k in order:
            res[k].append(cands[k]())
            last = res[k][-1]
            print(f"  repeat {r} {k:10s} ESS/s={last['ess_per_s']:.3g} "
                  f"(min ESS {last['ess']:.1f} of {last['which']} in {last['draws']} draws, "
                  f"median-ESS/s {last['med_ess_per_s']:.3g}, sampling {last['sample_s']:.2f} s, "
                  f"{last['grads_per_s']:.0f} grad/s, warmup {last['warmup_s']:.1f} s)",
                  flush=True)
    fields = ("ess_per_s", "med_ess_per_s", "ess", "sample_s", "warmup_s", "grads_per_s")
    med = {k: {f: statistics.median(r[f] for r in res[k]) for f in fields} for k in names}
    base = "pyro" if "pyro" in names else names[0]
    lines = [f"### {name} (n={n}, D={D}, K={K}; warmup {args.nuts_warmup}, samples "
             f"{args.samples} (pyro rows {args.pyro_samples}), max tree depth "
             f"{args.max_tree_depth}, {args.repeats} repeats)",
             f"| candidate | draws | ESS/s (min) | ratio to {base} | min bulk ESS (which) | "
             "ESS/s (median quantity) | ratio | gradients/s | sampling s | warmup+compile s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for k in names:
        m = med[k]
        which = res[k][-1]["which"]
        lines.append(
            f"| {k} | {res[k][-1]['draws']} | {m['ess_per_s']:.3g} | "
            f"{m['ess_per_s'] / med[base]['ess_per_s']:.3g} | {m['ess']:.1f} ({which}) | "
            f"{m['med_ess_per_s']:.3g} | "
            f"{m['med_ess_per_s'] / med[base]['med_ess_per_s']:.3g} | "
            f"{m['grads_per_s']:.0f} | {m['sample_s']:.2f} | {m['warmup_s']:.1f} |")
    for k in names:
        if k.startswith("numpyro"):
            lines.append(f"({k} warmup ran once: {cands[k].warmup_s:.1f} s incl. "
                         f"{cands[k].warmup_compile_s:.1f} s compilation)")
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
    p.add_argument("--pyro-samples", type=int, default=None,
                   help="draws of the Pyro rows (default: --samples)")
    p.add_argument("--candidates", default=",".join(ALL))
    p.add_argument("--grad-only", action="store_true",
                   help="only time potential+gradient evaluations (no NUTS runs)")
    p.add_argument("--grad-evals", type=int, default=20)
    p.add_argument("--grad-repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    q = args.quick
    args.repeats = args.repeats or (1 if q else 3)
    args.nuts_warmup = args.nuts_warmup or (20 if q else 150)
    args.samples = args.samples or (20 if q else 150)
    args.pyro_samples = args.pyro_samples or args.samples
    args.candidates = args.candidates.split(",")
    K = args.components or (3 if q else 10)
    head = header() + "\n# versions: " + versions()
    print(head, flush=True)
    if args.out:
        append_to_file(args.out, head + "\n")
    sets = args.datasets.split(",")
    loaders = {"digits": digits_data, "mnist": mnist_data, "mnist784": mnist_pixels}
    if args.grad_only:
        for sname in sets:
            x = loaders[sname](q)
            if x is not None:
                grad_timing(sname, x, K, args, args.out)
        return
    labels = {"digits": lambda x: "digits",
              "mnist": lambda x: "MNIST-PCA50" if not q else "MNIST-PCA10",
              "mnist784": lambda x: f"MNIST-pixels (D={x.shape[1]})"}
    for sname in ("digits", "mnist", "mnist784"):  # this order, whatever the order given
        if sname not in sets:
            continue
        x = loaders[sname](q)
        if x is None:
            print("binarized MNIST not found: skipped")
            continue
        if sname != "digits" and args.mnist_repeats:
            args.repeats = args.mnist_repeats
        bench_dataset(labels[sname](x), x, K, args, args.out)

if __name__ == "__main__":
    main()
