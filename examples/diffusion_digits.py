"""Diffusion inversion on handwritten digits: a reverse noising chain as a Pyro model (§20.13).

The story: 8x8 digits (17 grey levels) are dequantized (uniform noise inside each level) and
scaled to (-1, 1). A :class:`~pyrogen.models.DiffusionModel` learns to undo a fixed forward
noising chain; training is Pyro SVI, first on Ho et al.'s noise-prediction loss (not a bound),
then on the closed-form ELBO. We then

1. report the held-out **ELBO** (a lower bound) and the **importance-sampled estimate** with
   the forward chain as proposal (a stochastic lower bound), both with standard errors, in nats
   on the scaled data and as bits per pixel of the discrete digits (the dequantization bound of
   Theis et al. 2016: :math:`\\log P(k) \\ge \\mathbb E_u \\log p(y) + 64 \\log (2/17)`);
2. draw samples by running the reverse chain (``model.sample``, a trace of the Pyro model
   without observations) and score them without pretending it is a likelihood: the Fréchet
   distance to held-out digits in pixel space and the nearest-neighbour memorization ratio;
3. write a grid of samples and of five denoising chains (``--out``, default ``diffusion_out``).

Run ``python examples/diffusion_digits.py`` (or ``--quick`` for a few seconds).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyrogen.datasets import load_digits  # noqa: E402
from pyrogen.metrics import frechet_distance, nearest_neighbours  # noqa: E402
from pyrogen.models import DiffusionModel  # noqa: E402

LEVELS = 17  # sklearn digits: integer grey levels 0..16


def dequantize(x01: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Grey levels k/16 -> y = 2 (k + u) / 17 - 1 with u ~ U(0, 1): continuous data in (-1, 1)."""
    k = torch.round(x01 * (LEVELS - 1))
    u = torch.rand(x01.shape, generator=generator, dtype=x01.dtype)
    return 2.0 * (k + u) / LEVELS - 1.0


def bits_per_pixel(nats_y: float, d: int = 64) -> float:
    """Bits per pixel of the discrete digits implied by a (bound on the) density of y."""
    return -(nats_y + d * math.log(2.0 / LEVELS)) / (d * math.log(2.0))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=None, help="diffusion steps T")
    parser.add_argument("--simple-steps", type=int, default=None,
                        help="SVI steps on the noise-prediction loss (not a bound) first")
    parser.add_argument("--steps", type=int, default=None, help="then SVI steps on the ELBO")
    parser.add_argument("--hidden", type=int, default=None, help="width of the 2 hidden layers")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--particles", type=int, default=None, help="IS particles per digit")
    parser.add_argument("--out", default="diffusion_out",
                        help="folder for PNGs of samples and chains ('' for none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    ds = load_digits(dtype=torch.float32)
    g = torch.Generator().manual_seed(args.seed)
    perm = torch.randperm(len(ds), generator=g)
    n_train, n_test = (200, 20) if args.quick else (1500, 297)
    y = dequantize(ds.x, g)
    train, test = y[perm[:n_train]], y[perm[n_train : n_train + n_test]]
    t_max = args.timesteps or (8 if args.quick else 50)
    hidden = args.hidden or (32 if args.quick else 256)
    steps = args.steps if args.steps is not None else (8 if args.quick else 2000)
    simple = args.simple_steps if args.simple_steps is not None else (8 if args.quick else 2000)
    particles = args.particles or (8 if args.quick else 200)
    print(f"data: {ds.identity}, dequantized to (-1, 1); {n_train} train / {n_test} test")

    model = DiffusionModel(64, num_timesteps=t_max, hidden_dims=(hidden, hidden),
                           seed=args.seed)
    t0 = time.perf_counter()
    # Ho et al.'s noise-prediction loss finds the structure quickly (not a bound); the ELBO
    # then trains the variances and tightens the bound
    if simple:
        model.fit(train, num_steps=simple, lr=args.lr, batch_size=128, seed=args.seed,
                  tol=None, progress=False, data_info=ds.info, loss="simple")
    hist = model.fit(train, num_steps=max(steps, 1), lr=args.lr / 2, batch_size=128,
                     seed=args.seed + 1, tol=None, progress=False, data_info=ds.info)
    fit_s = time.perf_counter() - t0
    print(f"[fit] T={t_max}, hidden {hidden}x2, {simple} SVI steps on the noise-prediction "
          f"loss then {max(steps, 1)} on the closed-form ELBO (batch 128) in {fit_s:.1f}s: "
          f"negative ELBO {hist.losses[0]:.2f} -> "
          f"{sum(hist.losses[-20:]) / len(hist.losses[-20:]):.2f} nats/digit (last 20 steps)")

    elbo = model.elbo(test, num_particles=4 if args.quick else 20)
    ll = model.log_likelihood(test, num_particles=particles, batch_size=50, chunk=50)
    for name, r in (("ELBO", elbo), ("IS estimate", ll)):
        print(f"[{name}] {r} -> {bits_per_pixel(r.mean()):.3f} bits/pixel of the discrete "
              f"digits (a bound: {r.bound} side)")
    print(f"[IS] {particles} particles, forward chain as proposal: mean ESS "
          f"{ll.info['mean_ess']:.1f}, min ESS {ll.info['min_ess']:.1f}")

    chain = model.sample_chain(100 if not args.quick else 20)
    samples = chain[-1]
    fd = frechet_distance(samples, test)
    fd_train = frechet_distance(train[: len(test)], test)
    nn_ = nearest_neighbours(samples, train, heldout=test)
    print(f"[samples] pixel-space Fréchet distance to the test digits {fd:.2f} (train digits: "
          f"{fd_train:.2f}; not a likelihood); nearest-neighbour ratio {nn_.ratio:.2f} "
          "(about 1: no copying of training digits)")
    result = {"elbo": elbo.mean(), "elbo_se": elbo.mean_stderr(), "is": ll.mean(),
              "is_se": ll.mean_stderr(), "fit_seconds": fit_s, "frechet_pixels": fd,
              "nn_ratio": nn_.ratio}
    if args.out:
        from pyrogen.plotting import save_image_grid

        os.makedirs(args.out, exist_ok=True)
        to01 = lambda v: ((v + 1) / 2).clamp(0, 1)  # noqa: E731
        p1 = save_image_grid(to01(samples[:50]), (8, 8), os.path.join(args.out, "samples.png"),
                             title=f"diffusion samples (T={t_max})")
        idx = torch.linspace(0, t_max, 10).round().long()
        p2 = save_image_grid(to01(chain[idx, :5].transpose(0, 1).reshape(-1, 64)), (8, 8),
                             os.path.join(args.out, "chains.png"), ncols=10,
                             title="reverse chains: x_T (left) to x_0 (right)")
        print(f"figures written to {p1} and {p2}")
    return result


if __name__ == "__main__":
    main()
