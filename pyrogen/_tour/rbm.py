"""Tour step: restricted Boltzmann machines (book §20.2) on threshold-binarized digits.

Trains two RBMs by Pyro SVI with the PCD normalizer (the SVI gradient is the PCD rule):

* 64 visible / 12 hidden: the smaller layer is enumerable, so the log-likelihood is *exact*;
  its AIS estimate is printed next to it as a check of AIS;
* 64 visible / 32 hidden: the log-likelihood is an *AIS estimate* (Salakhutdinov & Murray
  base-rate path) with its standard error, checked by RAISE (Burda et al. 2015), a stochastic
  lower bound, on a subset.

Writes the weights and a grid of samples (block Gibbs from the base-rate model).

Then a Gaussian-Bernoulli RBM (book §20.5.1, ``pyrogen.models.GaussianBernoulliRBM``, 12
hidden units, sigma = 1) on the real-valued digits standardized per pixel, trained the same way;
its log-likelihood (a density, exact by enumerating the hidden layer) is compared with the
best diagonal Gaussian with unit variances, which is the untrained model.
"""

from __future__ import annotations

import math
import time

import torch

from ..models import BernoulliRBM, GaussianBernoulliRBM
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    ds = ctx.digits(binarize="threshold")
    x = ds.x
    info = dict(ds.info)
    quick = ctx.quick
    num_steps = 150 if quick else 1500
    ais_chains, ais_betas = (50, 300) if quick else (100, 1000)
    results = []
    for n_hidden in (12, 32):
        model = BernoulliRBM(64, n_hidden, num_chains=100, seed=ctx.seed)
        t0 = time.perf_counter()
        model.fit(
            x,
            method="pcd",
            num_steps=num_steps,
            lr=0.02,
            batch_size=100,
            seed=ctx.seed,
            progress=False,
            data_info=info,
        )
        seconds = time.perf_counter() - t0
        torch.manual_seed(ctx.seed)
        ll = model.log_likelihood(x, num_chains=ais_chains, num_betas=ais_betas)
        tag = f"rbm_h{n_hidden}"
        figures = [
            save_image_grid(
                model.weight.detach().T[:20],
                (8, 8),
                ctx.path(f"{tag}_weights.png"),
                title=f"RBM 64-{n_hidden}: columns of W",
                symmetric=True,
            ),
            save_image_grid(
                model.sample(20, num_steps=200 if quick else 1000),
                (8, 8),
                ctx.path(f"{tag}_samples.png"),
                title=f"RBM 64-{n_hidden} samples",
            ),
        ]
        if ll.kind == "exact":
            est = model.log_normalizer(
                num_chains=ais_chains, num_betas=ais_betas, seed=ctx.seed, method="ais"
            )
            exact_log_z = ll.info["log_z"]
            summary = (
                f"PCD-1 via SVI, {num_steps} steps; AIS check: log Z {float(est.log_z):.3f} "
                f"± {float(est.stderr):.3f} vs exact {exact_log_z:.3f}"
            )
        else:
            sub = x[: 50 if quick else 200]
            r = model.raise_check(
                sub, num_chains=5 if quick else 10, num_betas=ais_betas, seed=ctx.seed
            )
            ll_sub = model.log_likelihood(
                sub, num_chains=ais_chains, num_betas=ais_betas, seed=ctx.seed
            )
            summary = (
                f"PCD-1 via SVI, {num_steps} steps; ESS {ll.info['ess']:.0f}/{ais_chains}; "
                f"RAISE on {sub.shape[0]} rows {r.mean():.3f} ± {r.mean_stderr():.3f} "
                f"(lower bound) vs AIS {ll_sub.mean():.3f} ± {ll_sub.mean_stderr():.3f}"
            )
        results.append(
            {
                "model": f"BernoulliRBM(64-{n_hidden})",
                "data": info,
                "method": "svi-pcd",
                "log_likelihood": ll.to_dict(),
                "fit_seconds": seconds,
                "figures": figures,
                "summary": summary,
            }
        )
    results.append(_gaussian_bernoulli(ctx, num_steps))
    return results


def _gaussian_bernoulli(ctx, num_steps) -> dict:
    ds = ctx.digits()
    mean, std = ds.x.mean(0), ds.x.std(0).clamp_min(0.1)
    z = (ds.x - mean) / std
    info = {**ds.info, "preprocessing": "standardized per pixel (std floored at 0.1)"}
    model = GaussianBernoulliRBM(64, 12, num_chains=100, seed=ctx.seed)
    t0 = time.perf_counter()
    model.fit(
        z,
        method="pcd",
        num_steps=num_steps,
        lr=0.01,
        batch_size=100,
        seed=ctx.seed,
        progress=False,
        data_info=info,
    )
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(z)
    gauss = float((-0.5 * ((z - z.mean(0)) ** 2).sum(1)).mean()) - 32 * math.log(2 * math.pi)
    torch.manual_seed(ctx.seed)
    samples = model.sample(20) * std + mean
    figures = [
        save_image_grid(
            samples.clamp(0, 1), (8, 8), ctx.path("gbrbm_samples.png"), title="GB-RBM samples"
        )
    ]
    return {
        "model": "GaussianBernoulliRBM(64-12)",
        "data": info,
        "method": "svi-pcd",
        "log_likelihood": ll.to_dict(),
        "fit_seconds": seconds,
        "figures": figures,
        "summary": (
            f"PCD-1 via SVI, {num_steps} steps; density of standardized pixels; the diagonal "
            f"Gaussian with unit variances (the untrained model): {gauss:.3f} nats/ex"
        ),
    }
