"""Time per epoch: pyrogen's ``GAN.fit`` (defaults on) against a plain-PyTorch DCGAN loop.

    python benchmarks/bench_gan_timing.py --train 6000 --epochs 1 --repeats 3

Both train the SAME networks (the plain loop gets deep copies of the GAN's generator and
discriminator, so initial weights are equal) on the same data, batch 64, Adam (lr 2e-4,
betas (0.5, 0.999)), non-saturating loss, one discriminator step per generator step. The plain
loop is the PyTorch DCGAN tutorial's: one generated batch per step, used detached for the
discriminator step and again for the generator step, ``torch.optim.Adam`` over each network.
pyrogen runs what a user runs: ``GAN(784, architecture="conv", image_shape=(28, 28),
output="sigmoid").fit(x, num_epochs=..., batch_size=64, progress=False)``, which traces the Pyro
model (Pyro's ``pyro.module`` registration, the ``data`` plate) every step. Runs are
interleaved (pyrogen, plain, pyrogen, ...), one thread each, float32; times are CPU seconds of
the process (``time.process_time``: on a shared machine wall-clock times were distorted by other
load); the ratio is the median pyrogen time over the median plain time. MNIST: the fixed
binarized set when found, else the 8x8 digits (28x28 needs MNIST).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
import torch.nn.functional as F


def plain_dcgan_epoch(gen, disc, x, batch_size, latent_dim, opt_g, opt_d, gen_rng):
    """One epoch of the tutorial loop; returns seconds."""
    t0 = time.process_time()
    perm = torch.randperm(x.shape[0], generator=gen_rng)
    for i in range(0, x.shape[0], batch_size):
        real = x[perm[i:i + batch_size]]
        b = real.shape[0]
        z = torch.randn(b, latent_dim)
        fake = torch.sigmoid(gen(z))
        ones, zeros = torch.ones(b), torch.zeros(b)
        opt_d.zero_grad()
        d_loss = (F.binary_cross_entropy_with_logits(disc(real), ones)
                  + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(disc(fake), ones)
        g_loss.backward()
        opt_g.step()
    return time.process_time() - t0


def main(argv=None):
    from pyrogen.datasets import load_binarized_mnist, load_digits
    from pyrogen.exceptions import ConvergenceWarning
    from pyrogen.models import GAN

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        x = load_binarized_mnist(args.data, "train", limit=args.train).x.float()
        shape = (28, 28)
    except (FileNotFoundError, OSError):
        x = load_digits(binarize="threshold").x.float()[: args.train]
        shape = (8, 8)
    print(f"data {tuple(x.shape)}, image {shape}, batch {args.batch_size}, "
          f"{args.epochs} epoch(s) per run, {args.repeats} interleaved repeats, 1 thread")
    ours, plain = [], []
    for r in range(-1, args.repeats):  # r = -1: warm-up on 256 rows (imports, allocator), untimed
        xr = x[:256] if r < 0 else x
        gan = GAN(x.shape[1], latent_dim=args.latent_dim, architecture="conv", image_shape=shape,
                  output="sigmoid", seed=max(r, 0))
        g, d = copy.deepcopy(gan.generator), copy.deepcopy(gan.discriminator)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.process_time()
            gan.fit(xr, num_epochs=args.epochs, batch_size=args.batch_size, progress=False,
                    seed=max(r, 0))
            t_ours = (time.process_time() - t0) / args.epochs
        opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        rng = torch.Generator().manual_seed(max(r, 0))
        torch.manual_seed(max(r, 0))
        t_plain = sum(plain_dcgan_epoch(g, d, xr, args.batch_size, args.latent_dim, opt_g,
                                        opt_d, rng) for _ in range(args.epochs)) / args.epochs
        if r < 0:
            continue
        ours.append(t_ours)
        plain.append(t_plain)
        print(f"repeat {r}: pyrogen {ours[-1]:.2f} s/epoch, plain PyTorch {plain[-1]:.2f} s/epoch",
              flush=True)
    mo, mp = statistics.median(ours), statistics.median(plain)
    print(f"median: pyrogen GAN.fit {mo:.2f} s/epoch, plain-PyTorch DCGAN loop {mp:.2f} s/epoch, "
          f"ratio {mo / mp:.2f}x (goal <= 1.1x)")


if __name__ == "__main__":
    main()
