"""Tour step: sigmoid belief net / Helmholtz machine trained by wake-sleep (book §20.10.1).

A :class:`~pyrogen.models.HelmholtzMachine` ``[64, 32, 16]`` on the threshold-binarized digits
(8x8), trained by wake-sleep (:class:`~pyrogen.infer.wake_sleep.WakeSleep`). The held-out
log-likelihood is an importance-sampled estimate with the recognition network as proposal
(kind ``is_estimate``: a stochastic lower bound, reported with its Monte Carlo standard error).
Writes a grid of ancestral samples.
"""

from __future__ import annotations

import time

import torch

from ..models import HelmholtzMachine
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    data = ctx.digits(binarize="threshold")
    x = data.x.float()
    g = torch.Generator().manual_seed(ctx.seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_test = 300
    x_test, x_train = x[perm[:n_test]], x[perm[n_test:]]
    torch.manual_seed(ctx.seed)
    model = HelmholtzMachine([64, 32, 16], num_is_particles=200 if ctx.quick else 1000)
    with torch.no_grad():
        p = x_train.mean(0).clamp(1e-3, 1 - 1e-3)
        model.gen[0].bias.copy_(torch.log(p) - torch.log1p(-p))
    steps = 300 if ctx.quick else 1000
    t0 = time.perf_counter()
    hist = model.fit(x_train, method="wake_sleep", num_steps=steps, lr=3e-3, batch_size=100,
                     seed=ctx.seed, progress=False, data_info=data.info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x_test)
    fig = save_image_grid(model.sample(64), (8, 8), ctx.path("sbn_samples.png"),
                          title="Helmholtz machine 64-32-16 (wake-sleep): samples")
    info = dict(data.info, split=f"held-out {n_test}")
    return [
        {
            "model": "HelmholtzMachine([64, 32, 16])",
            "data": info,
            "method": f"wake_sleep ({steps} steps, batch 100)",
            "log_likelihood": ll.to_dict(),
            "fit_seconds": seconds,
            "figures": [fig],
            "final_wake_loss": hist.metrics["wake_loss"][-1] / x_train.shape[0],
            "final_sleep_loss": hist.metrics["sleep_loss"][-1] / x_train.shape[0],
        }
    ]
