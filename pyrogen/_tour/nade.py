"""Tour step: NADE (book §20.10.10) on the threshold-binarized 8x8 digits.

A :class:`~pyrogen.models.NADEModel` with 32 hidden units fitted by maximum likelihood (Pyro SVI
on an empty guide: the loss is the exact negative log-likelihood). The held-out
log-likelihood is **exact** (kind ``exact``). Writes a grid of ancestral samples.
"""

from __future__ import annotations

import time

import torch

from ..models import NADEModel
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    data = ctx.digits(binarize="threshold")
    x = data.x.float()
    g = torch.Generator().manual_seed(ctx.seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_test = 300
    x_test, x_train = x[perm[:n_test]], x[perm[n_test:]]
    model = NADEModel(64, 32, seed=ctx.seed).initialize_from_data(x_train)
    steps = 80 if ctx.quick else 800
    t0 = time.perf_counter()
    model.fit(x_train, num_steps=steps, lr=1e-2, batch_size=100, seed=ctx.seed, tol=None,
              progress=False, data_info=data.info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x_test)
    fig = save_image_grid(model.sample(64), (8, 8), ctx.path("nade_samples.png"),
                          title="NADE (32 hidden units): samples")
    return [
        {
            "model": "NADEModel(64, n_hidden=32)",
            "data": dict(data.info, split=f"held-out {n_test}"),
            "method": f"svi = maximum likelihood ({steps} steps, batch 100)",
            "log_likelihood": ll.to_dict(),
            "fit_seconds": seconds,
            "figures": [fig],
        }
    ]
