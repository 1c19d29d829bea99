"""Sequence RBMs (issue 18): CRBM and RNN-RBM vs a per-frame RBM at equal training budget.

For each data set (bouncing-balls videos, chord sequences from ``pyrogen.datasets``) trains

* ``ConditionalRBM`` (``--delays`` frames of history),
* ``RNNRBM`` (``--recurrent`` RNN units),
* a per-frame ``BernoulliRBM`` on the same frames (no temporal model),

all with ``--hidden`` hidden units, by Pyro SVI with CD-k (``--k``; per time step for the sequence
models),
Adam, the same number of steps, step size and frames per step. On held-out sequences it reports

* the per-frame log-likelihood (nats/frame): exact (every log Z_t enumerated) when
  ``--hidden`` <= 16; ``--ais`` adds the AIS estimate of the CRBM's with its standard error;
* the next-frame prediction error: mean squared error per unit of E[v_t | v_<t] (exact for
  ``--hidden`` <= 12) against v_t over frames 2..T; for the per-frame RBM, E[v_t]; "copy the
  previous frame" for scale;
* the training wall time (``fit``, as a user runs it).

Run from the repository root: ``python benchmarks/bench_sequential_rbm.py`` (``--quick``: tiny).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import bench_parser, header  # noqa: E402

from pyrogen.datasets import bouncing_balls, polyphonic_chords  # noqa: E402
from pyrogen.models import RNNRBM, BernoulliRBM, ConditionalRBM  # noqa: E402


def as_sequence_model(rbm: BernoulliRBM) -> ConditionalRBM:
    """The per-frame RBM as a CRBM with zero temporal weights (the same per-frame model)."""
    crbm = ConditionalRBM(rbm.n_features, rbm.n_hidden, n_delay=1).to(rbm.dtype)
    with torch.no_grad():
        crbm.weight.copy_(rbm.weight)
        crbm.visible_bias.copy_(rbm.visible_bias)
        crbm.hidden_bias.copy_(rbm.hidden_bias)
        crbm.autoregressive_weight.zero_()
        crbm.past_hidden_weight.zero_()
    return crbm


def run(name, train, test, args):
    n_seq, n_t, nv = train.shape
    print(f"\n## {name}: {n_seq} training / {test.shape[0]} test sequences of {n_t} frames, "
          f"{nv} units; {args.steps} SVI steps of CD-{args.k}, lr {args.lr}, "
          f"{args.batch * n_t} frames per step, {args.hidden} hidden units")
    fits = {
        f"CRBM (n_delay={args.delays})": lambda: ConditionalRBM(
            nv, args.hidden, n_delay=args.delays, k=args.k, seed=args.seed),
        f"RNN-RBM (n_u={args.recurrent})": lambda: RNNRBM(
            nv, args.hidden, n_recurrent=args.recurrent, k=args.k, seed=args.seed),
    }
    rows = []
    for label, make in fits.items():
        m = make()
        t0 = time.perf_counter()
        m.fit(train, num_steps=args.steps, lr=args.lr, batch_size=args.batch, seed=args.seed,
              progress=False)
        rows.append((label, m, time.perf_counter() - t0))
    rbm = BernoulliRBM(nv, args.hidden, training="cd", k=args.k, seed=args.seed)
    t0 = time.perf_counter()
    rbm.fit(train.reshape(-1, nv), num_steps=args.steps, lr=args.lr,
            batch_size=args.batch * n_t, seed=args.seed, progress=False, tol=None)
    rows.append(("per-frame RBM", as_sequence_model(rbm), time.perf_counter() - t0))

    n_frames = test.shape[0] * test.shape[1]
    print(f"{'model':<22} {'log-lik/frame':>14} {'kind':>6} {'next-frame MSE':>15} {'fit s':>7}")
    for label, m, secs in rows:
        ll = m.log_likelihood(test)
        per = float(ll.values.sum()) / n_frames
        err = float(((m.predict_next(test) - test)[:, 1:] ** 2).mean())
        print(f"{label:<22} {per:>14.3f} {ll.kind:>6} {err:>15.4f} {secs:>7.1f}")
    copy = float(((test[:, 1:] - test[:, :-1]) ** 2).mean())
    print(f"{'copy previous frame':<22} {'':>14} {'':>6} {copy:>15.4f}")
    if args.ais:
        m = rows[0][1]
        sub = test[: args.ais_sequences]
        exact = m.log_likelihood(sub)
        est = m.log_likelihood(sub, method="ais", num_chains=args.ais_chains,
                               num_betas=args.ais_betas, seed=args.seed)
        nf = sub.shape[0] * sub.shape[1]
        se = float(est.stderr.pow(2).sum().sqrt()) / nf
        print(f"CRBM AIS check on {sub.shape[0]} test sequences ({args.ais_chains} chains x "
              f"{args.ais_betas} temperatures per step): AIS {float(est.values.sum()) / nf:.4f} "
              f"± {se:.4f} (s.e.) vs exact {float(exact.values.sum()) / nf:.4f} nats/frame; "
              f"min ESS {est.info['min_ess']:.1f}")


def main(argv=None):
    p = bench_parser(__doc__.splitlines()[0])
    p.add_argument("--data", choices=["balls", "chords", "both"], default="both")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--batch", type=int, default=10, help="sequences per step")
    p.add_argument("--hidden", type=int, default=12)
    p.add_argument("--k", type=int, default=1, help="Gibbs steps of CD-k (every model)")
    p.add_argument("--delays", type=int, default=2)
    p.add_argument("--recurrent", type=int, default=32)
    p.add_argument("--ais", action="store_true", help="AIS check of the CRBM's log-likelihood")
    p.add_argument("--ais-sequences", type=int, default=10)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print(header())
    n_train, n_test, n_t = (20, 10, 10) if args.quick else (100, 50, 20)
    if args.quick:
        args.steps = min(args.steps, 30)
    if args.data in ("balls", "both"):
        run("bouncing balls 8x8 (1 ball, radius 1.5, speed 1)",
            bouncing_balls(n_train, n_t, size=8, seed=args.seed),
            bouncing_balls(n_test, n_t, size=8, seed=args.seed + 1000), args)
    if args.data in ("chords", "both"):
        run("chords (4 triads, Markov chain, noise 0.02)",
            polyphonic_chords(n_train, n_t, seed=args.seed),
            polyphonic_chords(n_test, n_t, seed=args.seed + 1000), args)


if __name__ == "__main__":
    main()
