"""Ring of 8 / grid of 25 Gaussians: modes covered by the minimax, non-saturating, WGAN-GP
games and GMMN.

    python benchmarks/bench_gan.py --seeds 0 1 --steps 1500
    python benchmarks/bench_gan.py --data grid --seeds 0 1 2 --steps 5000

Grid (``--data grid``): 5x5 Gaussians at spacing 2, std 0.05 (``grid_of_gaussians``), 4000
draws, otherwise as the ring.

Each run: GAN(2, latent_dim=2, hidden_dims=(64, 64)) on 2000 ring draws (radius 2, std 0.02),
batch 128, Adam; then 2500 samples scored by pyrogen.metrics.mode_coverage (a mode is covered
with >= 20% of its balanced share of samples within 3 std; high quality = within 3 std).
Single-threaded. The number of generator steps is the same for every method (WGAN-GP makes
5 critic steps per generator step).
"""

import argparse
import os
import time

import torch

from pyrogen.metrics import grid_of_gaussians, mode_coverage, ring_of_gaussians
from pyrogen.models import GAN

METHODS = {
    "minimax": dict(method="adversarial", loss="minimax", lr=1e-3),
    "non_saturating": dict(method="adversarial", loss="non_saturating", lr=1e-3),
    "wgan_gp": dict(method="adversarial", loss="wgan_gp", lr=1e-3, betas=(0.5, 0.9)),
    "gmmn": dict(method="mmd", lr=1e-3, bandwidths=(0.05, 0.2, 1.0, 4.0)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--data", choices=("ring", "grid"), default="ring")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.data == "ring":
        x, centers, std = ring_of_gaussians(2000, seed=123)
    else:
        x, centers, std = grid_of_gaussians(4000, seed=123)
    x = x.float()
    bs = 128
    epochs = max(1, round(args.steps * bs / x.shape[0]))
    print(f"{args.data} of {centers.shape[0]}, {epochs} epochs of {x.shape[0] // bs + 1} steps, "
          f"batch {bs}, load {os.getloadavg()[0]:.1f}")
    print(f"{'method':>15} {'seed':>4} {'modes':>5} {'high-q':>6} {'KL(unif)':>8} {'s/epoch':>8} "
          f"{'CPU s':>6}")
    for seed in args.seeds:  # every method at a seed before the next seed (a killed run keeps them)
        for name in args.methods:
            m = GAN(2, latent_dim=2, hidden_dims=(64, 64), seed=seed)
            kw = dict(METHODS[name])
            t0, c0 = time.perf_counter(), time.process_time()
            m.fit(x, num_epochs=epochs, batch_size=bs, seed=seed, progress=False, **kw)
            sec = (time.perf_counter() - t0) / epochs
            cpu = time.process_time() - c0
            torch.manual_seed(seed)
            cov = mode_coverage(m.sample(2500).double(), centers, std)
            print(f"{name:>15} {seed:>4} {cov.modes_covered:>5} {cov.high_quality:>6.3f} "
                  f"{cov.kl_to_uniform:>8.3f} {sec:>8.3f} {cpu:>6.0f}", flush=True)


if __name__ == "__main__":
    main()
