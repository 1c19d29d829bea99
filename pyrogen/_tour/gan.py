"""Tour step: generators as Pyro models (book §20.10.4-20.10.5) on the 8-Gaussian ring.

A non-saturating GAN and a GMMN (moment matching) with the same MLP generator are trained on
2,000 draws from a ring of eight Gaussians (radius 2, standard deviation 0.02), the standard
mode-collapse test. A GAN has no likelihood (its samples live on the generator's image), so the
report gives no log-likelihood: it gives :func:`pyrogen.metrics.mode_coverage` (modes covered,
fraction of high-quality samples) of 2,500 samples, and a scatter plot of samples over the data.
Quick sizes train for a handful of epochs: far too few to learn the ring (a smoke test).
"""

from __future__ import annotations

import time

import torch

from ..metrics import mode_coverage, ring_of_gaussians
from ..models import GAN
from ..plotting import save_scatter_plot


def step(ctx) -> list[dict]:
    x, centers, std = ring_of_gaussians(2000, seed=ctx.seed + 123)
    x = x.float()
    epochs = 4 if ctx.quick else 80
    info = {"name": "ring of 8 Gaussians", "split": "2000 draws", "binarization": None,
            "binarization_seed": None,
            "radius": 2.0, "std": std, "seed": ctx.seed + 123}
    results = []
    clouds = {"data": x[:500]}
    for label, method, kw in (
        ("GAN (non-saturating)", "adversarial", dict(lr=1e-3)),
        ("GMMN", "mmd", dict(lr=1e-3, bandwidths=(0.05, 0.2, 1.0, 4.0))),
    ):
        model = GAN(2, latent_dim=2, hidden_dims=(64, 64), seed=ctx.seed)
        t0 = time.perf_counter()
        model.fit(x, method=method, num_epochs=epochs, batch_size=128, seed=ctx.seed,
                  progress=False, data_info=info, **kw)
        seconds = time.perf_counter() - t0
        g = torch.Generator().manual_seed(ctx.seed)
        with torch.no_grad():
            z = torch.randn(2500, 2, generator=g)
            samples = model.generate(z).double()
        cov = mode_coverage(samples, centers, std)
        clouds[label] = samples[:500]
        results.append({
            "model": f"GAN(2, latent_dim=2, hidden 64-64) [{label}]",
            "data": info,
            "method": f"{method} ({epochs} epochs, batch 128, Adam lr 1e-3)",
            "log_likelihood": None,
            "summary": (f"no likelihood (samples on the generator's image); mode coverage of "
                        f"2500 samples: {cov.modes_covered}/{cov.n_modes} modes, "
                        f"{cov.high_quality:.2f} high quality (within 3 std)"),
            "modes_covered": cov.modes_covered,
            "high_quality": cov.high_quality,
            "fit_seconds": seconds,
            "figures": [],
        })
    fig = save_scatter_plot(clouds, ctx.path("gan_ring.png"),
                            title=f"8-Gaussian ring: data and samples after {epochs} epochs")
    for r in results:
        r["figures"] = [fig]
    return results
