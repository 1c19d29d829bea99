"""Tour step: RBMs for sequences (book §20.7) on bouncing-balls videos.

Trains a conditional RBM (Taylor et al. 2007, two frames of history), an RNN-RBM
(Boulanger-Lewandowski et al. 2012) and a per-frame RBM (no temporal model) with the same
budget (SVI steps of CD-1, frames per step, step size, 12 hidden units; 8 when quick) on 8x8
binary videos of a bouncing ball, and reports on held-out videos the *exact* per-frame
log-likelihood (:math:`\\log P(v_t \\mid v_{<t})`, every :math:`\\log Z_t` enumerated)
and the next-frame prediction error (mean squared error per pixel of
:math:`\\mathbb E[v_t \\mid v_{<t}]`). Writes a test video, the CRBM's predictions and a
generated video.
"""

from __future__ import annotations

import time

import torch

from ..datasets import bouncing_balls
from ..models import RNNRBM, BernoulliRBM, ConditionalRBM
from ..plotting import save_image_grid


def _per_frame_as_crbm(rbm: BernoulliRBM) -> ConditionalRBM:
    """The per-frame RBM as a CRBM with zero temporal weights (the same model of every frame)."""
    crbm = ConditionalRBM(rbm.n_features, rbm.n_hidden, n_delay=1).to(rbm.dtype)
    with torch.no_grad():
        crbm.weight.copy_(rbm.weight)
        crbm.visible_bias.copy_(rbm.visible_bias)
        crbm.hidden_bias.copy_(rbm.hidden_bias)
        crbm.autoregressive_weight.zero_()
        crbm.past_hidden_weight.zero_()
    return crbm


def step(ctx) -> list[dict]:
    quick = ctx.quick
    size, n_hidden = 8, (8 if quick else 12)
    n_train, n_test, n_t = (10, 5, 8) if quick else (40, 20, 12)
    num_steps = 20 if quick else 200
    batch = 10
    train = bouncing_balls(n_train, n_t, size=size, seed=ctx.seed)
    test = bouncing_balls(n_test, n_t, size=size, seed=ctx.seed + 1000)
    nv = size * size
    info = {
        "name": "bouncing_balls",
        "split": "test (seed + 1000)",
        "source": "pyrogen.datasets.bouncing_balls(size=8, n_balls=1, radius=1.5, speed=1)",
        "binarization": None,
        "binarization_seed": None,
        "n": n_test,
        "n_frames": n_t,
        "n_features": nv,
        "seed": ctx.seed,
    }
    budget = f"{num_steps} SVI steps of CD-1, {batch * n_t} frames per step, lr 0.02"
    fitted = []
    for label, model in (
        (f"ConditionalRBM(64-{n_hidden}, n_delay=2)",
         ConditionalRBM(nv, n_hidden, n_delay=2, seed=ctx.seed)),
        (f"RNNRBM(64-{n_hidden}, n_u=32)", RNNRBM(nv, n_hidden, n_recurrent=32, seed=ctx.seed)),
    ):
        t0 = time.perf_counter()
        model.fit(train, num_steps=num_steps, lr=0.02, batch_size=batch, seed=ctx.seed,
                  progress=False)
        fitted.append((label, model, time.perf_counter() - t0, "svi-cd per time step"))
    rbm = BernoulliRBM(nv, n_hidden, training="cd", seed=ctx.seed)
    t0 = time.perf_counter()
    rbm.fit(train.reshape(-1, nv), num_steps=num_steps, lr=0.02, batch_size=batch * n_t,
            seed=ctx.seed, progress=False, tol=None)
    fitted.append((f"BernoulliRBM(64-{n_hidden}), per frame", _per_frame_as_crbm(rbm),
                   time.perf_counter() - t0, "svi-cd"))

    copy_err = float(((test[:, 1:] - test[:, :-1]) ** 2).mean())
    results = []
    for i, (label, model, seconds, method) in enumerate(fitted):
        ll = model.log_likelihood(test, per_frame=True)
        err = float(((model.predict_next(test) - test)[:, 1:] ** 2).mean())
        figures = []
        if i == 0:
            k = min(n_t, 10)
            torch.manual_seed(ctx.seed)
            rows = torch.cat([test[0, :k], model.predict_next(test[:1])[0, :k],
                              model.sample(1, n_frames=k)[0]])
            figures.append(save_image_grid(
                rows, (size, size), ctx.path("crbm_balls.png"), ncols=k,
                title="test video / CRBM E[v_t | past] / CRBM sample"))
        results.append({
            "model": label,
            "data": info,
            "method": method,
            "log_likelihood": ll.to_dict(),
            "fit_seconds": seconds,
            "figures": figures,
            "summary": (
                f"per-frame log P(v_t | v_<t) (exact); next-frame MSE {err:.4f} (copy previous "
                f"frame {copy_err:.4f}); equal budget: {budget}"
            ),
        })
    return results
