"""Tour step: a factored gated Boltzmann machine (book §20.8) on shifted digits.

Trains :class:`pyrogen.models.GatedRBM` (Memisevic & Hinton 2010) by SVI with CD-1 on pairs
(digit, digit translated by one pixel) and an RBM of the translated digits alone with the same
budget; reports the exact conditional :math:`\\log P(y \\mid x)` on held-out pairs next to the
exact :math:`\\log P(y)`, and draws the learned filter pairs.
"""

from __future__ import annotations

import time

import torch

from ..datasets import shifted_digit_pairs
from ..models import BernoulliRBM, GatedRBM
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    quick = ctx.quick
    n_train, n_test = (200, 100) if quick else (600, 200)
    num_steps = 30 if quick else 200
    n_hidden, n_factors = (8, 16) if quick else (12, 32)
    x, y, _ = shifted_digit_pairs(n_train, seed=ctx.seed)
    tx, ty, _ = shifted_digit_pairs(n_test, seed=ctx.seed + 1000)
    info = {
        "name": "shifted_digit_pairs",
        "split": "test (seed + 1000)",
        "source": "pyrogen.datasets.shifted_digit_pairs (sklearn digits, one-pixel shifts)",
        "binarization": "threshold",
        "binarization_seed": None,
        "n": n_test,
        "n_features": 128,
    }
    model = GatedRBM(64, 64, n_hidden, n_factors, seed=ctx.seed)
    t0 = time.perf_counter()
    model.fit(torch.cat([x, y], -1), num_steps=num_steps, lr=0.01, batch_size=100,
              seed=ctx.seed, progress=False, data_info=info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(torch.cat([tx, ty], -1))
    rbm = BernoulliRBM(64, n_hidden, training="cd", seed=ctx.seed)
    rbm.fit(y, num_steps=num_steps, lr=0.01, batch_size=100, seed=ctx.seed, progress=False,
            tol=None)
    marginal = rbm.log_likelihood(ty).mean()
    k = min(10, n_factors)
    wx, wy = model.input_factors.detach(), model.output_factors.detach()
    top = (wx.norm(dim=0) * wy.norm(dim=0)).argsort(descending=True)[:k]
    fig = save_image_grid(torch.cat([wx[:, top].T, wy[:, top].T]), (8, 8),
                          ctx.path("gated_rbm_filters.png"), ncols=k, symmetric=True,
                          title="filter pairs: input (top) / output (bottom)")
    return [{
        "model": f"GatedRBM(64->64, {n_hidden} mapping units, {n_factors} factors)",
        "data": info,
        "method": "svi-cd",
        "log_likelihood": ll.to_dict(),
        "fit_seconds": seconds,
        "figures": [fig],
        "summary": (
            f"conditional log P(y | x) (exact); an RBM of y alone at equal budget "
            f"({num_steps} CD-1 steps): log P(y) = {marginal:.3f} (exact)"
        ),
    }]
