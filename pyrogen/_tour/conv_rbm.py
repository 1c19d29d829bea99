"""Tour step: a convolutional RBM with probabilistic max pooling (book §20.6, Lee et al. 2009)
on the threshold-binarized digits (8x8).

``ConvRBM((8, 8), n_filters=2, filter_size=5, pool_size=2)``: two 5x5 filters, 4x4 detection
maps in 2x2 pooling blocks. Its hidden side has only :math:`5^8` configurations, so the held-out
log-likelihood is *exact* (enumeration), and the AIS estimate of log Z along the convolutional
base-rate path is printed next to it as a check. Trained by Pyro SVI with the PCD normalizer.
Writes the filters and samples (block Gibbs) as pictures.
"""

from __future__ import annotations

import time

import torch

from ..models import ConvRBM
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    data = ctx.digits(binarize="threshold")
    x = data.x.float()
    g = torch.Generator().manual_seed(ctx.seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_test = 300
    x_test, x_train = x[perm[:n_test]], x[perm[n_test:]]
    num_steps = 30 if ctx.quick else 300
    ais_chains, ais_betas = (20, 100) if ctx.quick else (50, 500)
    model = ConvRBM((8, 8), 2, 5, 2, num_chains=100, seed=ctx.seed)
    model.normalizer("pcd").refresh_every = 10**9  # the training loss is a monitoring number
    t0 = time.perf_counter()
    model.fit(x_train, method="pcd", num_steps=num_steps, lr=0.02, batch_size=100, tol=None,
              seed=ctx.seed, progress=False, data_info=data.info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x_test)
    est = model.log_normalizer(method="ais", num_chains=ais_chains, num_betas=ais_betas,
                               seed=ctx.seed)
    torch.manual_seed(ctx.seed)
    figures = [
        save_image_grid(model.filters(), (5, 5), ctx.path("conv_rbm_filters.png"),
                        title="ConvRBM 2 filters 5x5, pool 2", symmetric=True),
        save_image_grid(model.sample(20, num_steps=50 if ctx.quick else 500), (8, 8),
                        ctx.path("conv_rbm_samples.png"), title="ConvRBM samples"),
    ]
    return [
        {
            "model": "ConvRBM(8x8, 2 filters 5x5, pool 2)",
            "data": dict(data.info, split=f"held-out {n_test}"),
            "method": "svi-pcd",
            "log_likelihood": ll.to_dict(),
            "fit_seconds": seconds,
            "figures": figures,
            "summary": (
                f"PCD-1 via SVI, {num_steps} steps; AIS check ({ais_chains} chains x "
                f"{ais_betas} temperatures): log Z {float(est.log_z):.3f} ± "
                f"{float(est.stderr):.3f} vs exact {ll.info['log_z']:.3f}"
            ),
        }
    ]
