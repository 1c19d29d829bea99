"""Models of conditional covariance (book §20.5.2) on whitened natural-image patches.

The story:

1. 8x8 patches of the two images scikit-learn ships (``pyrogen.datasets.load_image_patches``:
   grey levels, dequantized, ZCA-whitened with training statistics; train and test patches
   come from disjoint columns of the images);
2. a spike and slab RBM, a mean-product of Student's t and a mean and covariance RBM, each
   trained by Pyro SVI with the PCD normalizer (the SVI gradient is the PCD rule): block Gibbs
   for the ssRBM and the mPoT, HMC on the free energy for the mcRBM;
3. the held-out log-likelihood per patch, ``-F(x) - log Z`` with ``log Z`` an AIS estimate
   (stochastic upper bound in expectation) and its standard error, next to two baselines
   trained at the same budget (``--baselines``): a Gaussian-Bernoulli RBM (AIS) and the
   full-covariance Gaussian fitted by maximum likelihood (exact);
4. the covariance filters as a picture (``covariance_filters_<model>.png``).

Usage::

    python examples/covariance_rbm_patches.py --quick                # seconds, a smoke test
    python examples/covariance_rbm_patches.py --model ssrbm --steps 2000
    python examples/covariance_rbm_patches.py --model all --baselines --steps 1000

Numbers are nats per whitened patch (add ``whitening_log_det`` for grey-level space).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from pyrogen import ConvergenceWarning
from pyrogen.datasets import load_image_patches
from pyrogen.infer.annealing import AISWarning
from pyrogen.models import (
    GaussianBernoulliRBM,
    MeanCovarianceRBM,
    MeanProductStudentT,
    SpikeSlabRBM,
)
from pyrogen.plotting import save_image_grid

MODELS = ("ssrbm", "mpot", "mcrbm")


def build(name, d, args):
    common = dict(num_chains=args.chains, seed=args.seed, ais_num_chains=args.ais_chains,
                  ais_num_betas=args.ais_betas)
    if name == "ssrbm":
        return SpikeSlabRBM(d, args.hidden, exact_max_units=0, **common)
    if name == "mpot":
        return MeanProductStudentT(d, args.hidden // 2, args.hidden, **common)
    if name == "mcrbm":
        return MeanCovarianceRBM(d, args.hidden // 2, args.hidden, exact_max_units=0, **common)
    return GaussianBernoulliRBM(d, args.hidden, exact_max_units=1, **common)


def gaussian_baseline(train, test):
    """Full-covariance Gaussian, maximum likelihood on ``train``: exact test log-density."""
    mean = train.mean(0)
    cov = torch.cov(train.T, correction=0)
    mvn = torch.distributions.MultivariateNormal(mean, cov)
    return float(mvn.log_prob(test).mean())


def run(name, train, test, args, size):
    model = build(name, train.shape[1], args)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AISWarning)  # the short monitoring AIS of the loss
        model.fit(train, num_steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                  seed=args.seed, progress=False, tol=None)
    seconds = time.perf_counter() - t0
    epochs = args.steps * args.batch_size / train.shape[0]
    if args.save:
        model.save(os.path.join(args.out_dir, f"{name}.pt"))
    ll = model.log_likelihood(test, seed=args.seed)
    line = (f"{type(model).__name__:22s} test {ll.mean():9.3f} ± {ll.mean_stderr():.3f} nats/patch"
            f" ({ll.kind}, ESS {ll.info['ess']:.0f}/{ll.info['num_chains']}); "
            f"{seconds / max(epochs, 1e-9):.2f} s/epoch ({args.steps} steps)")
    print(line, flush=True)
    if name in MODELS:
        filters = model.covariance_filters.T[: args.show]
        path = os.path.join(args.out_dir, f"covariance_filters_{name}.png")
        save_image_grid(filters, (size, size), path, symmetric=True,
                        title=f"{type(model).__name__}: covariance filters")
        print(f"  wrote {path}")
    return ll


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budget: a smoke test")
    p.add_argument("--model", default="ssrbm", choices=(*MODELS, "all"))
    p.add_argument("--baselines", action="store_true",
                   help="also a GB-RBM (same budget) and the full-covariance Gaussian")
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=1000)
    p.add_argument("--show", type=int, default=32, help="filters in the picture")
    p.add_argument("--save", action="store_true", help="save the fitted models (<name>.pt)")
    p.add_argument("--out-dir", default=".")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.size, args.n_train, args.n_test, args.hidden = 4, 300, 50, 4
        args.steps, args.chains, args.ais_chains, args.ais_betas = 5, 10, 8, 20
        args.model, args.baselines = "all", True
    os.makedirs(args.out_dir, exist_ok=True)
    tr = load_image_patches(args.size, args.n_train, split="train", seed=args.seed)
    te = load_image_patches(args.size, args.n_test, split="test", seed=args.seed)
    print(f"data: {tr.identity} / {te.identity}, whitening log|det| "
          f"{tr.info['whitening_log_det']:.2f}")
    names = MODELS if args.model == "all" else (args.model,)
    if args.baselines:
        names = (*names, "gbrbm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name in names:
            run(name, tr.x, te.x, args, args.size)
    if args.baselines:
        g = gaussian_baseline(tr.x, te.x)
        print(f"{'full-covariance Gaussian':22s} test {g:9.3f} nats/patch (exact, ML fit)")


if __name__ == "__main__":
    main()
