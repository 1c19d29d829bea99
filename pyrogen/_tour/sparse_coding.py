"""Tour step: sparse coding of the 8x8 digits (book §13.4).

Learns a small dictionary by alternating minimization (exact Lasso codes, block coordinate
descent on unit-norm atoms), reports the book objective, the reconstruction error, the sparsity
of the MAP codes and an importance-sampled log-likelihood estimate (with its standard error), and
draws the atoms.
"""

from __future__ import annotations

import torch

from ..models import SparseCoding
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    ds = ctx.digits()
    x = ds.x.double()
    if ctx.quick:
        x = x[:300]
    info = dict(ds.info, n=x.shape[0])
    k = 16 if ctx.quick else 32
    lam, beta = 0.5, 1.0  # alpha = lam / (2 beta) = 0.25 in scikit-learn's scaling
    # importance sampling in K dimensions: more samples for more atoms (ESS in the summary)
    n_is = 200 if ctx.quick else 2000
    sc = SparseCoding(x.shape[1], k, lam=lam, beta=beta, fit_bias=True, num_is_samples=n_is)
    sc = sc.double()
    hist = sc.fit(
        x, method="alternating", num_iter=8 if ctx.quick else 40, seed=ctx.seed, progress=False,
        data_info=info,
    )
    res = sc.encode(x)
    h = res.codes
    rec = float(((x - sc.bias.detach() - h @ sc.weight.T) ** 2).sum(-1).mean())
    nnz = float((h != 0).double().sum(-1).mean())
    ll = sc.log_likelihood(x[:100] if ctx.quick else x[:300], seed=ctx.seed)
    order = torch.argsort((h != 0).double().mean(0), descending=True)
    fig = save_image_grid(
        sc.components_[order], ds.image_shape, ctx.path("sparse_coding_atoms.png"),
        title=f"sparse coding: {k} atoms (most used first), lambda={lam}, beta={beta}",
        ncols=8, symmetric=True,
    )
    return [
        {
            "model": f"SparseCoding(K={k})",
            "data": info,
            "method": "alternating",
            "log_likelihood": ll.to_dict(),
            "fit_seconds": hist.seconds,
            "objective": hist.losses[-1],
            "reconstruction_mse": rec,
            "nonzeros_per_code": nnz,
            "codes_certified": int(res.converged.sum()),
            "figures": [fig],
            "summary": f"objective {hist.losses[-1]:.3f} (lambda|h|_1 + beta|x-Wh-b|^2, "
            f"per example); squared error {rec:.3f}; {nnz:.1f}/{k} nonzeros per code; "
            f"log-lik on {len(ll)} examples (IS, ESS min {ll.info['ess_min']:.0f} / mean "
            f"{ll.info['ess_mean']:.0f} of {n_is})",
        }
    ]
