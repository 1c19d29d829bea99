"""Decoder AIS (issue 14): log p(x) of a VAE by AIS with HMC, against IS k=5000, and BDMC.

::

    python benchmarks/bench_decoder_ais.py train --out runs/vae_small.pt [--epochs 5]
    python benchmarks/bench_decoder_ais.py evaluate --model runs/vae_small.pt [--n-test 40]
        [--betas 300] [--chains 16] [--leapfrog 5] [--k 5000]
    python benchmarks/bench_decoder_ais.py bdmc --model runs/vae_small.pt [--n 40] [--betas 300]
    python benchmarks/bench_decoder_ais.py ppca --betas 300 --chains 16 --kernel hmc

``ppca``: PPCA (D=10, d=3, sigma=0.5, ``torch.manual_seed(0)`` for W, b and 20 examples),
exact log p(x) in closed form: mean error, mean absolute error, mean reported stderr, time.

``train``: a small VAE (784-200-20, tanh, Bernoulli decoder, analytic KL, Adam 1e-3, batch
100) on the fixed binarized MNIST training set, saved with ``VAE.save``.

``evaluate``: on ``--n-test`` test images spread evenly over the test set (it is ordered by
writer), the AIS estimate ``ais_log_likelihood(vae.model, x, ...)`` (kind ``ais_marginal``) and
the IS estimate ``vae.log_likelihood(x, num_particles=k)`` (kind ``is_estimate``) on the same
images; both are stochastic lower bounds on log p(x), so the larger is the tighter. Prints the
means, their Monte Carlo standard errors, the paired difference with its standard error
(across images), and the times.

``bdmc``: ``bdmc(vae.model, x_template, ...)`` on ``--n`` images simulated from the VAE: forward
AIS (lower) and reverse AIS from the simulated latent (upper); prints both means and the gap.

One thread (``torch.set_num_threads(1)``) unless ``--threads``. Data from ``$PYROGEN_DATA`` or
``../shared/data/binarized_mnist.npz``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data", "binarized_mnist.npz")


def load(split):
    from pyrogen.datasets import load_binarized_mnist

    return load_binarized_mnist(os.environ.get("PYROGEN_DATA", DEFAULT_DATA), split=split)


def _xy(data):
    return data.x


def train(args):
    import pyro

    from pyrogen.models import VAE

    pyro.set_rng_seed(args.seed)
    x = _xy(load("train")).float()
    vae = VAE(784, args.latent, tuple(args.hidden), activation="tanh")
    t = time.perf_counter()
    hist = vae.fit(x, loss="analytic_kl", num_epochs=args.epochs, batch_size=100, lr=1e-3,
                   seed=args.seed, progress=False)
    vae.save(args.out)
    last = {k: v[-1] for k, v in dict(hist.metrics).items()
            if isinstance(v, list) and v and isinstance(v[-1], (int, float))}
    print(json.dumps({"epochs": args.epochs, "seconds": time.perf_counter() - t, "last": last}))


def _paired(a, b):
    d = (a - b).double()
    return float(d.mean()), float(d.std() / math.sqrt(len(d)))


def evaluate(args):
    from pyrogen.infer.annealing.decoder import ais_log_likelihood
    from pyrogen.models import VAE

    vae = VAE.load(args.model)
    vae.eval()
    x_all = _xy(load("test")).float()
    idx = torch.linspace(0, len(x_all) - 1, args.n_test).round().long()
    x = x_all[idx]
    t = time.perf_counter()
    with torch.no_grad():
        is_ll = vae.log_likelihood(x, num_particles=args.k, batch_size=20, chunk=250)
    t_is = time.perf_counter() - t
    t = time.perf_counter()
    ais_ll = ais_log_likelihood(vae.model, x, num_chains=args.chains, betas=args.betas,
                                num_leapfrog=args.leapfrog, seed=args.seed,
                                batch_size=args.batch_size)
    t_ais = time.perf_counter() - t
    diff, diff_se = _paired(ais_ll.values, is_ll.values)
    out = {
        "n_test": args.n_test, "betas": args.betas, "chains": args.chains,
        "leapfrog": args.leapfrog, "k": args.k,
        "ais_mean": ais_ll.mean(), "ais_mc_se": ais_ll.mean_stderr(),
        "ais_min_ess": ais_ll.info["min_ess"], "ais_seconds": t_ais,
        "is_mean": is_ll.mean(), "is_mc_se": is_ll.mean_stderr(), "is_seconds": t_is,
        "ais_minus_is": diff, "ais_minus_is_se": diff_se,
        "frac_ais_above_is": float((ais_ll.values > is_ll.values).double().mean()),
    }
    print(json.dumps(out))


def run_bdmc(args):
    from pyrogen.infer.annealing.decoder import bdmc
    from pyrogen.models import VAE

    vae = VAE.load(args.model)
    vae.eval()
    template = torch.zeros(args.n, 784)
    t = time.perf_counter()
    res = bdmc(vae.model, template, num_chains=args.chains, betas=args.betas,
               num_leapfrog=args.leapfrog, seed=args.seed, batch_size=args.batch_size)
    gap = res.gap.double()
    print(json.dumps({
        "n": args.n, "betas": args.betas, "chains": args.chains, "leapfrog": args.leapfrog,
        "lower_mean": res.lower.mean(), "lower_mc_se": res.lower.mean_stderr(),
        "upper_mean": res.upper.mean(), "upper_mc_se": res.upper.mean_stderr(),
        "gap_mean": float(gap.mean()), "gap_se": float(gap.std() / math.sqrt(len(gap))),
        "seconds": time.perf_counter() - t,
    }))


def ppca(args):
    import pyro
    import pyro.distributions as dist

    from pyrogen.infer.annealing.decoder import ais_log_likelihood

    torch.manual_seed(0)
    D, d, n, sigma = 10, 3, 20, 0.5
    W, b = torch.randn(D, d), torch.randn(D)

    def model(x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], d), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ W.T + b, sigma).to_event(1), obs=x)

    marginal = dist.MultivariateNormal(b, W @ W.T + sigma**2 * torch.eye(D))
    x = marginal.sample((n,))
    exact = marginal.log_prob(x).double()
    t = time.perf_counter()
    ll = ais_log_likelihood(model, x, num_chains=args.chains, betas=args.betas, seed=1,
                            kernel=args.kernel, num_leapfrog=args.leapfrog)
    err = ll.values - exact
    print(json.dumps({"kernel": args.kernel, "betas": args.betas, "chains": args.chains,
                      "mean_error": float(err.mean()), "mean_abs_error": float(err.abs().mean()),
                      "mean_stderr": float(ll.stderr.mean()), "min_ess": ll.info["min_ess"],
                      "seconds": time.perf_counter() - t}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--out", required=True)
    tr.add_argument("--epochs", type=int, default=5)
    tr.add_argument("--latent", type=int, default=20)
    tr.add_argument("--hidden", type=int, nargs="*", default=[200])
    pp = sub.add_parser("ppca")
    pp.add_argument("--betas", type=int, default=300)
    pp.add_argument("--chains", type=int, default=16)
    pp.add_argument("--kernel", default="hmc")
    pp.add_argument("--leapfrog", type=int, default=10)
    for name in ("evaluate", "bdmc"):
        s = sub.add_parser(name)
        s.add_argument("--model", required=True)
        s.add_argument("--betas", type=int, default=300)
        s.add_argument("--chains", type=int, default=16)
        s.add_argument("--leapfrog", type=int, default=5)
        s.add_argument("--batch-size", type=int, default=None)
        if name == "evaluate":
            s.add_argument("--n-test", type=int, default=40)
            s.add_argument("--k", type=int, default=5000)
        else:
            s.add_argument("--n", type=int, default=40)
    for s in sub.choices.values():
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"train": train, "evaluate": evaluate, "bdmc": run_bdmc, "ppca": ppca}[args.cmd](args)


if __name__ == "__main__":
    main()
