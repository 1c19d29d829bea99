"""Tour step: deep belief net (book §20.3): greedy RBM stacking, then up-down fine-tuning
(wake-sleep with an RBM prior), on the threshold-binarized digits (8x8).

A :class:`~pyrogen.models.DBN` ``[64, 12, 8, 16]``: the hidden layers below the top are small
enough for the exact held-out log-likelihood, reported next to the Salakhutdinov & Murray
variational bound (kind ``elbo`` here, the top RBM's log Z being exact). Writes samples
(exact sampling of the small top RBM, then ancestral).
"""

from __future__ import annotations

import time
import warnings

import torch

from ..exceptions import ConvergenceWarning
from ..models import DBN
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    data = ctx.digits(binarize="threshold")
    x = data.x.float()
    g = torch.Generator().manual_seed(ctx.seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_test = 300
    x_test, x_train = x[perm[:n_test]], x[perm[n_test:]]
    model = DBN([64, 12, 8, 16], training="cd", seed=ctx.seed)
    rbm_steps, ud_steps = (60, 60) if ctx.quick else (800, 600)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fixed budgets, stated below
        model.fit(x_train, method="greedy", num_steps=rbm_steps, lr=3e-3, batch_size=100,
                  tol=None, seed=ctx.seed, progress=False, data_info=data.info)
        model.fit(x_train, method="up_down", num_steps=ud_steps, lr=3e-4, batch_size=100,
                  tol=None, seed=ctx.seed, progress=False, data_info=data.info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x_test)
    bound = model.log_likelihood(x_test, method="bound", num_samples=20, seed=ctx.seed)
    fig = save_image_grid(model.sample(64), (8, 8), ctx.path("dbn_samples.png"),
                          title="DBN 64-12-8-16 (greedy + up-down): samples")
    info = dict(data.info, split=f"held-out {n_test}")
    return [
        {
            "model": "DBN([64, 12, 8, 16])",
            "data": info,
            "method": f"greedy ({rbm_steps} CD-1 steps per RBM) + up-down ({ud_steps} steps)",
            "log_likelihood": ll.to_dict(),
            "bound": bound.to_dict(),
            "fit_seconds": seconds,
            "figures": [fig],
        }
    ]
