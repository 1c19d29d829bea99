"""Tour step: Markov-chain generators (book §20.11-20.12) on the threshold-binarized 8x8 digits.

A :class:`~pyrogen.models.DenoisingAutoencoder` (salt-and-pepper corruption, walk-back 2) and a
:class:`~pyrogen.models.GSN` (latent state carried along the chain) fitted by Pyro SVI on the
walk-back reconstruction loss, which is not a likelihood. These models have no tractable
likelihood, so none is reported (``log_likelihood`` is ``None``); the summary gives the
reconstruction loss under its own name and the inpainting score: the fraction of lower-half
pixels of held-out digits right when the upper half is clamped (§20.11.2). Writes chain samples
and inpaintings.
"""

from __future__ import annotations

import time

import torch

from ..models import GSN, DenoisingAutoencoder
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    data = ctx.digits(binarize="threshold")
    x = data.x.float()
    g = torch.Generator().manual_seed(ctx.seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_test = 100
    x_test, x_train = x[perm[:n_test]], x[perm[n_test:]]
    if ctx.quick:
        x_train = x_train[:300]
    steps = 20 if ctx.quick else 700
    chain_steps = 10 if ctx.quick else 100
    mask = torch.arange(64) < 32  # the upper half of each 8x8 digit is clamped
    results = []
    models = {
        "DenoisingAutoencoder(64, hidden=128, walkback=2)": (
            "dae", DenoisingAutoencoder(64, (128,), noise=0.3, walkback=2, seed=ctx.seed)),
        "GSN(64, n_hidden=128, walkback=3)": (
            "gsn", GSN(64, 128, noise=0.3, walkback=3, seed=ctx.seed)),
    }
    for label, (short, model) in models.items():
        t0 = time.perf_counter()
        hist = model.fit(x_train, num_steps=steps, lr=1e-3, batch_size=100, seed=ctx.seed,
                         tol=None, progress=False, data_info=data.info)
        seconds = time.perf_counter() - t0
        loss = sum(hist.losses[-10:]) / len(hist.losses[-10:])
        samples = model.sample(40, chain_steps, mean=True, seed=ctx.seed)
        filled = model.inpaint(x_test, mask, chain_steps, seed=ctx.seed)
        acc = float((filled[:, ~mask] == x_test[:, ~mask]).float().mean())
        shown = model.inpaint(x_test[:10], mask, chain_steps, mean=True, seed=ctx.seed)
        figs = [
            save_image_grid(samples, (8, 8), ctx.path(f"{short}_samples.png"), ncols=10,
                            title=f"{short.upper()}: chain samples ({chain_steps} steps)"),
            save_image_grid(torch.cat([x_test[:10], torch.where(mask, x_test[:10], 0.5),
                                       shown]), (8, 8), ctx.path(f"{short}_inpainting.png"),
                            ncols=10, title=f"{short.upper()}: original | clamped | inpainted"),
        ]
        results.append({
            "model": label,
            "data": dict(data.info, split=f"train {x_train.shape[0]}, held-out {n_test}"),
            "method": f"svi on the walk-back reconstruction loss ({steps} steps, batch 100)",
            "log_likelihood": None,
            "summary": (f"walk-back reconstruction NLL {loss:.2f} nats/ex (not a likelihood); "
                        f"inpainting {acc:.3f} of lower-half pixels right"),
            "fit_seconds": seconds,
            "figures": figs,
        })
    return results
