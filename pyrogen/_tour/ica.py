"""Tour step: independent component analysis (book §13.2).

1. A synthetic "cocktail party": four independent signals (a sinusoid, a square wave, a
   sawtooth and Laplace noise: sub- and super-Gaussian together) mixed by a random matrix.
   Noiseless :class:`~pyrogen.models.ICA` (exact maximum likelihood by L-BFGS) unmixes them; we
   report the exact log-likelihood, the Amari distance to the true mixing next to
   scikit-learn's FastICA on the same data when scikit-learn is installed, and plot true, mixed
   and recovered signals.
2. ICA on the real-valued digits (whitened to K = 16 components, the 48 discarded principal
   directions modelled as isotropic Gaussian so that the density is exact on all 64 pixels):
   the filters (rows of the unmixing) and the mixing columns as images.
"""

from __future__ import annotations

import math
import time

import torch

from ..models import ICA
from ..models.ica import amari_distance
from ..plotting import save_figure, save_image_grid


def _signals(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 8, n, dtype=torch.float64)
    s = torch.stack(
        [
            torch.sin(2 * math.pi * 0.9 * t),
            torch.sign(torch.sin(2 * math.pi * 0.37 * t + 0.3)),
            2 * ((0.55 * t) % 1.0) - 1,
            # Laplace: exponential magnitude with a random sign
            -torch.log(torch.rand(n, generator=g, dtype=torch.float64))
            * (torch.randint(0, 2, (n,), generator=g).double() * 2 - 1),
        ],
        1,
    )
    s = (s - s.mean(0)) / s.std(0)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    return s, a


def _plot_signals(path, rows: list[tuple[str, torch.Tensor]]):
    from ..plotting import _plt

    plt = _plt()
    fig, axes = plt.subplots(4, len(rows), figsize=(3.2 * len(rows), 4.2), squeeze=False)
    for j, (title, s) in enumerate(rows):
        for i in range(4):
            ax = axes[i, j]
            ax.plot(s[:400, i].numpy(), lw=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def step(ctx) -> list[dict]:
    results = []
    # -- 1. synthetic cocktail party
    n = 600 if ctx.quick else 3000
    s, a = _signals(n, ctx.seed)
    x = s @ a.T
    info = {"name": "synthetic-mixture", "split": "all", "binarization": None,
            "binarization_seed": None, "n": n, "n_features": 4,
            "sources": "sine, square, sawtooth, Laplace", "seed": ctx.seed}
    model = ICA(4).double()
    t0 = time.perf_counter()
    hist = model.fit(x, seed=ctx.seed, progress=False, data_info=info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x)
    ours = amari_distance(model.components_, a)
    summary = f"Amari distance {ours:.4f}"
    try:
        from sklearn.decomposition import FastICA

        f = FastICA(4, whiten="unit-variance", random_state=ctx.seed, max_iter=2000, tol=1e-6)
        summary += f" (FastICA {amari_distance(f.fit(x.numpy()).components_, a):.4f})"
    except ImportError:  # scikit-learn is a test/docs extra
        pass
    shapes = ", ".join(f"{b:.2g}" for b in model.source_shape.tolist())
    summary += f"; learnt source shapes {shapes} (2 = Gaussian)"
    fig = _plot_signals(
        ctx.path("ica_signals.png"),
        [("true sources", s), ("observed mixtures", x), ("ICA sources", model.transform(x))],
    )
    results.append({
        "model": "ICA(K=4, gennorm)", "data": info, "method": hist.method,
        "log_likelihood": ll.to_dict(), "fit_seconds": seconds, "figures": [fig],
        "summary": summary, "amari_distance": ours,
    })

    # -- 2. digits filters
    ds = ctx.digits()
    xd = ds.x.double()[: 600 if ctx.quick else None]
    dinfo = dict(ds.info, n_used=xd.shape[0])
    k = 16
    model = ICA(xd.shape[1], n_components=k).double()
    t0 = time.perf_counter()
    hist = model.fit(xd, seed=ctx.seed, progress=False, data_info=dinfo,
                     num_steps=15 if ctx.quick else 200, check_identifiability=False)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(xd)
    p = model.gaussianity_["p_value"]
    figs = [
        save_image_grid(model.components_, (8, 8), ctx.path("ica_digits_filters.png"),
                        title=f"ICA K={k} on digits: filters (rows of the unmixing)",
                        ncols=8, symmetric=True),
        save_image_grid(model.mixing_.T, (8, 8), ctx.path("ica_digits_mixing.png"),
                        title=f"ICA K={k} on digits: mixing columns", ncols=8, symmetric=True),
    ]
    results.append({
        "model": f"ICA(K={k}, gennorm, whitened)", "data": dinfo, "method": hist.method,
        "log_likelihood": ll.to_dict(), "fit_seconds": seconds, "figures": figs,
        "summary": f"{int((p > 0.01).sum())} of {k} sources Gaussian-looking (JB p>0.01); "
                   f"converged={hist.converged}",
    })
    return results
