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

Data: ``--data`` or ``PYROGEN_DATA`` or ``../shared/data/binarized_mnist.npz`` next to the
repository. With ``--quick`` and no MNIST file the script uses scikit-learn's 8x8 digits
thresholded at 0.5 (and says so).
"""

from __future__ import annotations

import argparse
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
        te = load_binarized_mnist(path, "test", limit=100 if args.quick else args.test_limit)
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
    args = p.parse_args(argv)
    torch.set_num_threads(1)
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


if __name__ == "__main__":
    main()
