"""Tour step: factor analysis and probabilistic PCA (book §13.1) on real-valued digits.

Fits FA by EM, PPCA by its closed form (K = 10 each) and FA by a short Pyro SVI run on the
collapsed model, all on the 61 digits pixels that vary (the 3 constant pixels would put the
noise variance on its floor and add a floor-sized constant to the log-likelihood). Prints exact
log-likelihoods; writes PNGs of the components and of samples.
"""

from __future__ import annotations

import time

import torch

from ..models import PPCA, FactorAnalysis
from ..plotting import save_image_grid

K = 10


def _embed(rows: torch.Tensor, keep: torch.Tensor, width: int) -> torch.Tensor:
    """Put columns ``keep`` of ``rows`` back into images of ``width`` pixels (others 0)."""
    out = torch.zeros(rows.shape[0], width, dtype=rows.dtype)
    out[:, keep] = rows.detach().cpu()
    return out


def step(ctx) -> list[dict]:
    ds = ctx.digits()
    keep = ds.x.std(0) > 0
    x = ds.x[:, keep]
    d = x.shape[1]
    info = dict(ds.info, n_features=d, preprocessing=f"dropped {int((~keep).sum())} constant "
                f"pixels of {ds.x.shape[1]}")
    torch.manual_seed(ctx.seed)
    results = []

    fits = [
        ("FactorAnalysis", FactorAnalysis(d, K), {"method": "em"}),
        ("PPCA", PPCA(d, K), {"method": "closed_form"}),
        (
            "FactorAnalysis",
            FactorAnalysis(d, K),
            {"method": "svi", "num_steps": 40 if ctx.quick else 200, "lr": 0.05},
        ),
    ]
    em_ll = None
    for name, model, kwargs in fits:
        t0 = time.perf_counter()
        hist = model.fit(x, progress=False, seed=ctx.seed, data_info=info, **kwargs)
        seconds = time.perf_counter() - t0
        ll = model.log_likelihood(x)
        method = kwargs["method"]
        tag = f"{'fa' if name == 'FactorAnalysis' else 'ppca'}_{method}"
        figures = [
            save_image_grid(
                _embed(model.weight.T, keep, 64), (8, 8), ctx.path(f"{tag}_components.png"),
                title=f"{name} K={K} ({method}): columns of W", symmetric=True,
            ),
            save_image_grid(
                _embed(model.sample(20).clamp(0, 1), keep, 64), (8, 8),
                ctx.path(f"{tag}_samples.png"), title=f"{name} ({method}) samples",
            ),
        ]
        if method == "em":
            em_ll = ll.mean()
        summary = f"{d} varying pixels; {hist.info.get('n_iter', 1)} iteration(s)"
        if method == "svi":
            summary = (
                f"{d} varying pixels; {kwargs['num_steps']} Adam steps on the collapsed Pyro "
                f"model, {ll.mean() - em_ll:+.3f} nats/ex vs EM (a short run, not converged)"
            )
        results.append(
            {
                "model": f"{name}(K={K})",
                "data": info,
                "method": method,
                "log_likelihood": ll.to_dict(),
                "fit_seconds": seconds,
                "figures": figures,
                "summary": summary,
            }
        )
    return results
