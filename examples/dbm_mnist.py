"""Train a deep Boltzmann machine on the fixed binarized MNIST and estimate its log-likelihood.

The story (book §20.4; Salakhutdinov & Hinton 2009):

1. ``pyrogen.models.DBM(784, [H1, H2])``: the Pyro model is the joint p(v, h) scored with the
   PCD normalizer, the guide is the mean-field posterior;
2. greedy layer-wise pretraining (``fit(method="pretrain")``): the bottom RBM with doubled
   visible input, the top RBM with doubled hidden units (CD-1, by SVI);
3. joint training by variational stochastic maximum likelihood (``fit(method="vsml")``):
   Algorithm 20.1, which *is* ``pyro.infer.SVI`` with ``Trace_ELBO`` here;
4. the test log-likelihood of Salakhutdinov & Hinton: AIS log Z on the DBM path plus the
   mean-field lower bound of log p~(v), labelled ``ais_mean_field`` (neither a lower nor an
   upper bound in general); exact when the DBM is small enough to enumerate (``--quick``);
5. time per epoch of joint training and time of the AIS run are printed.

Anchor (test nats): DBM 784-500-1000, -84.62 (Salakhutdinov & Hinton 2009, long training and
20,000 temperatures); yell/boltzmann-machines reproduced -86.37. This script gets as far as the
budget you give it, and prints that budget beside the number.

Usage::

    python examples/dbm_mnist.py --quick                        # tiny, seconds
    python examples/dbm_mnist.py --hidden 100 200 --pretrain-epochs 2 --epochs 3 \\
        --ais-betas 3000 --save runs/dbm/dbm.pt
    # long run: a checkpoint per epoch (resumable: rerun the same command), a learning curve
    # (JSON + PNG), training stopped at a wall-clock deadline, AIS sized to a second deadline
    nice -n 10 python examples/dbm_mnist.py --run-dir runs/dbm/dbm_500_1000 --epochs 100 \\
        --train-until 17:40 --eval-until 18:08

Data: ``--data`` or ``PYROGEN_DATA`` or ``../shared/data/binarized_mnist.npz`` next to the
repository. With ``--quick`` and no MNIST file the script uses scikit-learn's 8x8 digits
thresholded at 0.5 (and says so).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import DBM
from pyrogen.plotting import save_image_grid

ANCHOR = -84.62  # Salakhutdinov & Hinton (2009), DBM 784-500-1000, test set


def find_mnist(path):
    cands = [path, os.environ.get("PYROGEN_DATA")]
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "..", "..", "shared", "data", "binarized_mnist.npz"))
    return next((c for c in cands if c and os.path.exists(c)), None)


def load_data(args):
    path = find_mnist(args.data)
    if path is not None:
        limit = 300 if args.quick else args.train_limit
        tr = load_binarized_mnist(path, "train", limit=limit)
        te = load_binarized_mnist(path, "test", limit=100 if args.quick else args.test_limit,
                                  subset="spaced")  # the test split is ordered by class
        return tr.x.float(), te.x.float(), (28, 28), tr.info
    if not args.quick:
        raise SystemExit("binarized MNIST not found: pass --data PATH or set PYROGEN_DATA "
                         "(the full run needs it; --quick falls back to the 8x8 digits).")
    d = load_digits(binarize="threshold")
    x = d.x.float()[torch.randperm(len(d.x), generator=torch.Generator().manual_seed(0))]
    print("MNIST not found: using the 8x8 digits thresholded at 0.5 (fallback)")
    return x[:300], x[300:400], (8, 8), d.info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds, a smoke test")
    p.add_argument("--data", default=None, help="binarized_mnist.npz")
    p.add_argument("--hidden", type=int, nargs="+", default=[500, 1000])
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam step of joint training")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--chains", type=int, default=100, help="persistent chains")
    p.add_argument("--k", type=int, default=1, help="Gibbs steps per update")
    p.add_argument("--mean-field-iters", type=int, default=10)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=20000)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", default=None, help="save the trained model here")
    p.add_argument("--load", default=None, help="skip training: evaluate this saved model")
    p.add_argument("--json", default=None, help="write the numbers here")
    p.add_argument("--out", default="dbm_samples.png")
    p.add_argument("--run-dir", default=None,
                   help="checkpointed run: model + state after pretraining and every epoch, "
                        "learning curve (curve.json/.png), result.json; rerun to resume")
    p.add_argument("--train-until", default=None,
                   help="UTC HH:MM: start no joint epoch that would end after this")
    p.add_argument("--eval-until", default=None,
                   help="UTC HH:MM: size the AIS run (at most --ais-betas) to end by then")
    p.add_argument("--curve-betas", type=int, default=500,
                   help="temperatures of the rough per-epoch AIS log Z of the learning curve")
    p.add_argument("--curve-chains", type=int, default=50)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.run_dir:
        return run_checkpointed(args)
    xtr, xte, shape, info = load_data(args)
    hidden = [12, 8] if args.quick else args.hidden
    pre_epochs, epochs = (1, 1) if args.quick else (args.pretrain_epochs, args.epochs)
    steps_per_epoch = -(-xtr.shape[0] // args.batch_size)
    out = {"hidden": hidden, "n_train": xtr.shape[0], "n_test": xte.shape[0], "data": info}
    if args.load:
        model = DBM.load(args.load)
    else:
        model = DBM(xtr.shape[1], hidden, k=args.k, num_chains=args.chains,
                    mean_field_iters=args.mean_field_iters, seed=args.seed)
        t0 = time.perf_counter()
        model.fit(xtr, method="pretrain", num_steps=max(1, pre_epochs * steps_per_epoch),
                  lr=args.pretrain_lr * (10 if args.quick else 1), batch_size=args.batch_size,
                  seed=args.seed, tol=None, progress=not args.quick, data_info=info)
        out["pretrain_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.fit(xtr, method="vsml", num_steps=max(1, epochs * steps_per_epoch), lr=args.lr,
                  batch_size=args.batch_size, seed=args.seed, tol=None,
                  progress=not args.quick, data_info=info)
        out["joint_seconds"] = time.perf_counter() - t0
        out["joint_seconds_per_epoch"] = out["joint_seconds"] / max(epochs, 1)
        out.update(pretrain_epochs=pre_epochs, epochs=epochs)
        print(f"DBM {'-'.join(map(str, [xtr.shape[1], *hidden]))}: pretraining "
              f"{pre_epochs} epoch(s) {out['pretrain_seconds']:.1f}s, joint training {epochs} "
              f"epoch(s) {out['joint_seconds']:.1f}s "
              f"({out['joint_seconds_per_epoch']:.1f} s/epoch)")
        if args.save:
            model.save(args.save)
    t0 = time.perf_counter()
    ais_betas = 300 if args.quick else args.ais_betas
    ll = model.log_likelihood(xte, num_chains=args.ais_chains, num_betas=ais_betas,
                              seed=args.seed)
    out["eval_seconds"] = time.perf_counter() - t0
    out["log_likelihood"] = ll.to_dict()
    print(f"test log-likelihood {ll} on {len(ll)} images ({ll.description}); "
          f"evaluation {out['eval_seconds']:.1f}s (anchor {ANCHOR} after a long run)")
    if ll.kind == "exact":  # small DBM: show what the approximations would have said
        est = model.log_normalizer(num_chains=args.ais_chains, num_betas=ais_betas,
                                   seed=args.seed, method="ais")
        print(f"  check: AIS log Z {float(est.log_z):.3f} ± {float(est.stderr):.3f} vs exact "
              f"{ll.info['log_z']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
    save_image_grid(model.sample(16, num_steps=100 if args.quick else 1000), shape, args.out,
                    title="DBM samples (block Gibbs)")


def _deadline(hhmm):
    """Seconds since the epoch of today's HH:MM UTC (None passes through)."""
    if hhmm is None:
        return None
    h, m = (int(t) for t in hhmm.split(":"))
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(hour=h, minute=m, second=0, microsecond=0).timestamp()


def _load_avg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _val_point(model, xval, args, seed):
    """One learning-curve point: the mean-field bound of log p~(v) on the validation subset
    and a rough AIS log Z (few temperatures: biased low, so the difference is optimistic)."""
    t0 = time.process_time()
    with torch.no_grad():
        d = model.distribution()
        mf = d.mean_field_bound(xval).mean().item()
        est = model.log_normalizer(num_chains=args.curve_chains, num_betas=args.curve_betas,
                                   seed=seed, method="ais")
    return {"mean_field_unnorm": mf, "rough_log_z": float(est.log_z),
            "rough_log_z_se": float(est.stderr), "rough_ll": mf - float(est.log_z),
            "curve_cpu_s": time.process_time() - t0}


def _plot_curve(curve, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [c for c in curve if "rough_ll" in c]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ep = [c["epoch"] for c in pts]
    ax[0].plot(ep, [c["rough_ll"] for c in pts], "o-")
    ax[0].set(xlabel="joint epoch (0 = after pretraining)", ylabel="nats / image",
              title="valid[:1000]: mean-field bound - rough AIS log Z")
    ax[1].plot(ep, [c["mean_field_unnorm"] for c in pts], "o-", label="mean-field log p~(v)")
    ax[1].plot(ep, [c["rough_log_z"] for c in pts], "s-", label="rough AIS log Z")
    ax[1].set(xlabel="joint epoch", title="the two terms")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run_checkpointed(args):
    """Pretraining + joint training with a checkpoint per epoch, then the S&H estimate.

    Files in ``--run-dir``: ``model.pt`` (latest checkpoint), ``state.json`` (phase, epochs
    done, SVI steps, times, learning curve), ``curve.json``/``curve.png``, ``result.json`` and
    ``test_values.pt`` (per-image test values, for paired comparisons). Rerunning the command
    resumes after the last finished epoch. Not saved: Adam's moments (a fresh Adam per epoch,
    also without interruption) and the persistent chains (restarted from the base rates on
    resume).
    """
    os.makedirs(args.run_dir, exist_ok=True)
    mpath = os.path.join(args.run_dir, "model.pt")
    spath = os.path.join(args.run_dir, "state.json")
    path = find_mnist(args.data)
    if path is None:
        raise SystemExit("binarized MNIST not found: pass --data PATH or set PYROGEN_DATA")
    tr = load_binarized_mnist(path, "train", limit=args.train_limit)
    xtr, info = tr.x.float(), tr.info
    xval = load_binarized_mnist(path, "valid", limit=1000).x.float()
    bs = args.batch_size
    spe = -(-xtr.shape[0] // bs)
    if os.path.exists(spath) and os.path.exists(mpath):
        state = json.load(open(spath))
        model = DBM.load(mpath)
        print(f"resuming: phase {state['phase']}, {state['epochs_done']} joint epochs done",
              flush=True)
    else:
        state = {"phase": "pretrain", "epochs_done": 0, "pretrain_steps": 0, "joint_steps": 0,
                 "curve": [], "hidden": args.hidden, "batch_size": bs, "lr": args.lr,
                 "pretrain_lr": args.pretrain_lr, "pretrain_epochs": args.pretrain_epochs,
                 "chains": args.chains, "k": args.k, "mean_field_iters": args.mean_field_iters,
                 "n_train": xtr.shape[0], "data": info, "seed": args.seed}
        model = DBM(xtr.shape[1], args.hidden, k=args.k, num_chains=args.chains,
                    mean_field_iters=args.mean_field_iters, seed=args.seed)

    def save_state():
        model.save(mpath)
        tmp = spath + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, default=str)
        os.replace(tmp, spath)
        with open(os.path.join(args.run_dir, "curve.json"), "w") as f:
            json.dump(state["curve"], f, indent=1)
        _plot_curve(state["curve"], os.path.join(args.run_dir, "curve.png"))

    if state["phase"] == "pretrain":
        c0, w0 = time.process_time(), time.perf_counter()
        n = max(1, args.pretrain_epochs * spe)
        model.fit(xtr, method="pretrain", num_steps=n, lr=args.pretrain_lr, batch_size=bs,
                  seed=args.seed, tol=None, progress=False, data_info=info)
        state.update(phase="joint", pretrain_steps=n * model.depth,
                     pretrain_cpu_s=time.process_time() - c0,
                     pretrain_wall_s=time.perf_counter() - w0, pretrain_load=_load_avg())
        pt = _val_point(model, xval, args, args.seed)
        state["curve"].append({"epoch": 0, "joint_steps": 0, **pt, "load": _load_avg()})
        print(f"pretrained: {n} steps per RBM, cpu {state['pretrain_cpu_s']:.0f}s; {pt}",
              flush=True)
        save_state()
        model.save(os.path.join(args.run_dir, "model_pretrained.pt"))
    stop = _deadline(args.train_until)
    while state["phase"] == "joint" and state["epochs_done"] < args.epochs:
        last = [c["epoch_wall_s"] for c in state["curve"] if "epoch_wall_s" in c]
        guess = last[-1] if last else 0.0
        if stop is not None and time.time() + guess > stop:
            print("train-until reached: stopping joint training", flush=True)
            break
        ep = state["epochs_done"] + 1
        c0, w0 = time.process_time(), time.perf_counter()
        h = model.fit(xtr, method="vsml", num_steps=spe, lr=args.lr, batch_size=bs,
                      seed=args.seed * 100003 + ep, tol=None, progress=False, data_info=info)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        state["epochs_done"], state["joint_steps"] = ep, state["joint_steps"] + spe
        pt = _val_point(model, xval, args, args.seed + ep)
        row = {"epoch": ep, "joint_steps": state["joint_steps"], "epoch_cpu_s": cpu,
               "epoch_wall_s": wall, "train_loss": float(sum(h.losses) / max(len(h.losses), 1)),
               **pt, "load": _load_avg(),
               "utc": datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")}
        state["curve"].append(row)
        print(json.dumps(row), flush=True)
        save_state()
    state["phase"] = "eval"
    save_state()
    xte = load_binarized_mnist(path, "test", limit=args.test_limit, subset="spaced").x.float()
    betas = args.ais_betas
    until = _deadline(args.eval_until)
    if until is not None:  # size the AIS run to the time left (timed on 200 temperatures)
        t0 = time.perf_counter()
        model.log_normalizer(num_chains=args.ais_chains, num_betas=200, seed=args.seed,
                             method="ais")
        per = (time.perf_counter() - t0) / 200
        left = until - time.time() - 60
        betas = int(max(1000, min(args.ais_betas, left / per)))
        print(f"AIS: {per * 1e3:.1f} ms/temperature -> {betas} temperatures", flush=True)
    c0, w0 = time.process_time(), time.perf_counter()
    ll = model.log_likelihood(xte, num_chains=args.ais_chains, num_betas=betas, seed=args.seed)
    res = {"log_likelihood": ll.to_dict(), "eval_cpu_s": time.process_time() - c0,
           "eval_wall_s": time.perf_counter() - w0, "eval_load": _load_avg(),
           "ais_betas": betas, "ais_chains": args.ais_chains,
           **{k: state[k] for k in ("epochs_done", "pretrain_steps", "joint_steps")},
           "svi_steps_total": state["pretrain_steps"] + state["joint_steps"]}
    torch.save(ll.values.detach().cpu(), os.path.join(args.run_dir, "test_values.pt"))
    with open(os.path.join(args.run_dir, "result.json"), "w") as f:
        json.dump(res, f, indent=2, default=str)
    state["phase"] = "done"
    save_state()
    print(f"test log-likelihood {ll} on {len(ll)} images ({ll.description}); "
          f"ESS {ll.info.get('ess')}; eval {res['eval_wall_s']:.0f}s", flush=True)
    if args.out:
        save_image_grid(model.sample(16, num_steps=1000), (28, 28),
                        os.path.join(args.run_dir, "samples.png"), title="DBM samples")
    return res


if __name__ == "__main__":
    main()
