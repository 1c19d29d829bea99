"""Helmholtz machine on data from a known sigmoid belief net: wake-sleep vs reweighted
wake-sleep vs NVIL, tracked by the EXACT log-likelihood (the hidden layers are small enough to
enumerate), then the importance-sampled estimate next to the exact value.

    python examples/helmholtz_wake_sleep.py           # a few seconds per method
    python examples/helmholtz_wake_sleep.py --quick   # CI smoke run
"""

from __future__ import annotations

import argparse

import pyro
import torch

from pyrogen.models import HelmholtzMachine


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="helmholtz_learning_curves.png",
                    help="PNG of the exact log-likelihood during training ('' for none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    steps = 60 if args.quick else 1500
    n = 200 if args.quick else 2000
    # the "true" model: a random SBN 8-4-3 with strong weights
    torch.manual_seed(args.seed)
    teacher = HelmholtzMachine([8, 4, 3]).double()
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(2.0 * torch.randn_like(p))
    pyro.set_rng_seed(args.seed)
    x = teacher.sample(n)
    true_ll = teacher.log_likelihood(x).mean()
    print(f"data: {n} draws from a random SBN 8-4-3; exact log-lik under the true model "
          f"{true_ll:.3f} nats/example")
    curves = {"true model": [float(true_ll)] * 2}
    for method in ("wake_sleep", "rws", "nvil"):
        pyro.clear_param_store()
        torch.manual_seed(args.seed + 1)
        m = HelmholtzMachine([8, 4, 3]).double()
        curve = []
        chunk = steps // 4
        for _ in range(4):  # four chunks, the exact log-likelihood after each
            m.fit(x, method=method, num_steps=chunk, lr=0.02, batch_size=100,
                  seed=args.seed + len(curve), progress=False, tol=None)
            curve.append(float(m.log_likelihood(x).mean()))
        curves[method] = curve
        exact = m.log_likelihood(x)
        est = m.log_likelihood(x, num_particles=200)
        print(f"{method:>10}: exact log-lik {exact.mean():.3f} [{exact.kind}]; "
              f"IS k=200 {est}")
    if args.out:
        from pyrogen.plotting import save_line_plot

        curves["true model"] = [float(true_ll)] * 4
        save_line_plot(curves, args.out, title="exact log-likelihood (nats/example)",
                       xlabel=f"training chunk ({chunk} steps each)", ylabel="nats")
        print(f"learning curves written to {args.out}")


if __name__ == "__main__":
    main()
