"""Conditional RBM and RNN-RBM on bouncing-balls videos vs a per-frame RBM (book §20.7).

The story: binary videos of a ball bouncing in a small box (``pyrogen.datasets.bouncing_balls``).
A per-frame RBM models each frame alone; a conditional RBM (Taylor, Hinton & Roweis 2007) makes
the RBM's biases linear functions of the last two frames, and an RNN-RBM
(Boulanger-Lewandowski et al. 2012) makes them functions of an RNN state. All three are trained
by Pyro SVI with CD-1 (per time step for the sequence models) for the same number of steps on
the same frames. We report on held-out videos

* the exact per-frame log-likelihood, :math:`\\log P(v_t \\mid v_{<t})` for the sequence models
  and :math:`\\log P(v_t)` for the per-frame RBM (12 hidden units, 8 with ``--quick``: every
  log Z_t enumerated);
* the next-frame prediction error: mean squared error per pixel of :math:`\\mathbb E[v_t \\mid
  v_{<t}]` (exact) against :math:`v_t`, frames 2..T, with "copy the previous frame" for scale.

Run ``python examples/crbm_bouncing_balls.py`` (or ``--quick`` for a few seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyrogen.datasets import bouncing_balls  # noqa: E402
from pyrogen.models import RNNRBM, BernoulliRBM, ConditionalRBM  # noqa: E402


def as_sequence_model(rbm: BernoulliRBM) -> ConditionalRBM:
    """The per-frame RBM as a conditional RBM with zero temporal weights (same distribution of
    every frame), so that its per-frame log-likelihood and predictions use the same code."""
    crbm = ConditionalRBM(rbm.n_features, rbm.n_hidden, n_delay=1).to(rbm.dtype)
    with torch.no_grad():
        crbm.weight.copy_(rbm.weight)
        crbm.visible_bias.copy_(rbm.visible_bias)
        crbm.hidden_bias.copy_(rbm.hidden_bias)
        crbm.autoregressive_weight.zero_()
        crbm.past_hidden_weight.zero_()
    return crbm


def next_frame_error(model, x) -> float:
    """Mean squared error per pixel of E[v_t | v_<t] against v_t, frames 2..T."""
    pred = model.predict_next(x)
    return float(((pred - x)[:, 1:] ** 2).mean())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="SVI steps of every model")
    parser.add_argument("--out", default="crbm_bouncing_balls.png",
                        help="PNG of test frames and predictions ('' for none)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    size, n_hidden = 8, (8 if args.quick else 12)
    n_train, n_test, n_frames = (10, 5, 10) if args.quick else (100, 50, 20)
    steps = args.steps or (25 if args.quick else 500)
    train = bouncing_balls(n_train, n_frames, size=size, seed=args.seed)
    test = bouncing_balls(n_test, n_frames, size=size, seed=args.seed + 1000)
    nv = size * size
    batch = 10
    print(f"bouncing balls {size}x{size}: {n_train} training / {n_test} test videos of "
          f"{n_frames} frames; {steps} SVI steps of CD-1, {batch * n_frames} frames per step")

    models = {
        "CRBM (2 delays)": ConditionalRBM(nv, n_hidden, n_delay=2, seed=args.seed),
        "RNN-RBM": RNNRBM(nv, n_hidden, n_recurrent=32, seed=args.seed),
    }
    results = {}
    for name, m in models.items():
        t0 = time.perf_counter()
        m.fit(train, num_steps=steps, lr=0.02, batch_size=batch, seed=args.seed,
              progress=False)
        results[name] = (m, time.perf_counter() - t0)
    rbm = BernoulliRBM(nv, n_hidden, training="cd", seed=args.seed)
    t0 = time.perf_counter()
    rbm.fit(train.reshape(-1, nv), num_steps=steps, lr=0.02, batch_size=batch * n_frames,
            seed=args.seed, progress=False, tol=None)
    results["per-frame RBM"] = (as_sequence_model(rbm), time.perf_counter() - t0)

    copy_err = float(((test[:, 1:] - test[:, :-1]) ** 2).mean())
    out = {"copy_previous_frame_error": copy_err}
    print(f"{'model':<18} {'exact log-lik / frame':>22} {'next-frame MSE':>15} {'fit s':>7}")
    for name, (m, secs) in results.items():
        ll = m.log_likelihood(test)
        per_frame = float(ll.values.sum()) / (n_test * n_frames)
        err = next_frame_error(m, test)
        out[name] = {"log_likelihood_per_frame": per_frame, "kind": ll.kind,
                     "next_frame_mse": err, "fit_seconds": secs}
        print(f"{name:<18} {per_frame:>16.3f} ({ll.kind}) {err:>15.4f} {secs:>7.1f}")
    print(f"{'copy previous':<18} {'':>22} {copy_err:>15.4f}")

    if args.out:
        from pyrogen.plotting import save_image_grid

        crbm = results["CRBM (2 delays)"][0]
        k = min(n_frames, 10)
        rows = torch.cat([test[0, :k], crbm.predict_next(test[:1])[0, :k],
                          crbm.sample(1, n_frames=k)[0]])
        save_image_grid(rows, (size, size), args.out, ncols=k,
                        title="test video / CRBM E[v_t | past] / CRBM sample")
        print("wrote", args.out)
    return out


if __name__ == "__main__":
    main()
