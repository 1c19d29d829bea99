"""AIS schedules on the scaled-interaction path of a spike and slab RBM trained on patches.

Trains ``SpikeSlabRBM(64, 64)`` by PCD (``--steps`` SVI steps, batch 100, Adam lr 0.005) on
whitened 8x8 patches of the scikit-learn sample images, then estimates its log Z by AIS with
100 chains on the "sm" (Salakhutdinov & Murray, dense near 1) and the linear schedule, and by
adaptive SMC; prints log Z, standard error, ESS and seconds for each.

Usage::

    PYTHONPATH=. python benchmarks/bench_covariance_ais.py             # 300 steps, 1000/4000 betas
    PYTHONPATH=. python benchmarks/bench_covariance_ais.py --quick     # seconds
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from pyrogen.datasets import load_image_patches
from pyrogen.infer.annealing import AISWarning, ais, schedule, smc
from pyrogen.models import SpikeSlabRBM


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--betas", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--chains", type=int, default=100)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    size, n, hidden = 8, 10000, 64
    if args.quick:
        size, n, hidden, args.steps, args.betas, args.chains = 4, 500, 8, 20, [50], 20
    warnings.simplefilter("ignore", AISWarning)
    x = load_image_patches(size, n).x
    model = SpikeSlabRBM(size * size, hidden, num_chains=100)
    model.fit(x, num_steps=args.steps, lr=0.005, batch_size=100, progress=False, tol=None,
              seed=0)
    path = model.distribution().annealing_path()
    for nb in args.betas:
        for kind in ("sm", "linear"):
            t0 = time.perf_counter()
            r = ais(path, schedule(nb, kind), args.chains, seed=0)
            print(f"{nb:6d} {kind:6s} log Z {float(r.log_z):9.3f} ± {float(r.log_z_stderr):.3f}"
                  f"  ESS {float(r.ess):5.1f}/{args.chains}  {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    r = smc(path, None, args.chains, seed=0)
    print(f"adaptive SMC  log Z {float(r.log_z):9.3f} ± {float(r.log_z_stderr):.3f}  "
          f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
