"""Centered vs plain DBM training at equal budget (issue 15; Montavon & Müller 2012).

For each seed, two DBMs with the same initial parameters (same ``seed``: the centered one
starts as the same distribution, its offsets set from the data before the first step) are
trained by ``DBM.fit(method=...)`` with the same steps, learning rate, batch size, chains and
training randomness (``fit(seed=...)``); they differ only in ``centering``. The first hidden
layer is small enough to enumerate, so the log-likelihoods are **exact** (``kind == "exact"``:
exact log Z and exact log p~(v)), on held-out rows, along the way and at the end.

    python benchmarks/bench_dbm_centering.py --data digits --hidden 12 16 --steps 3000
    PYROGEN_DATA=../shared/data python benchmarks/bench_dbm_centering.py --data mnist ...

Prints one JSON line per run and a summary (mean, standard error over seeds, paired difference
centered - plain with its standard error).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import DBM


def _data(args):
    if args.data == "digits":
        x = load_digits(binarize="threshold", dtype=torch.float32).x
        perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
        x = x[perm]
        return x[: -args.test], x[-args.test :]
    path = os.environ.get("PYROGEN_DATA", "../shared/data/binarized_mnist.npz")
    tr = load_binarized_mnist(path, "train", dtype=torch.float32, limit=args.train).x
    te = load_binarized_mnist(path, "test", dtype=torch.float32, limit=args.test,
                              subset="spaced").x  # the test split is ordered by class
    return tr, te


def _se(v):
    n = len(v)
    if n < 2:
        return float("nan")
    m = sum(v) / n
    return math.sqrt(sum((a - m) ** 2 for a in v) / (n - 1) / n)


def run(args, x, x_test, seed, centering):
    model = DBM(x.shape[1], args.hidden, num_chains=args.chains, k=1, seed=seed,
                centering=centering, offset_rate=args.offset_rate)
    curve = []

    def evaluate(step):
        ll = model.log_likelihood(x_test)
        assert ll.kind == "exact", ll.kind
        curve.append((step, float(ll.values.mean())))

    def cb(i, _):
        if (i + 1) % args.eval_every == 0:
            evaluate(i + 1)

    t0 = time.process_time()
    if args.method == "pretrain+vsml":
        model.fit(x, method="pretrain", num_steps=args.pretrain_steps, lr=args.lr,
                  batch_size=args.batch, tol=None, seed=seed, progress=False)
    model.fit(x, method="vsml", num_steps=args.steps, lr=args.lr, batch_size=args.batch,
              tol=None, seed=seed, progress=False, callback=cb)
    cpu = time.process_time() - t0
    if not curve or curve[-1][0] != args.steps:
        evaluate(args.steps)
    train_ll = float(model.log_likelihood(x[: args.test]).values.mean())
    w = [float(t.detach().norm()) for t in model.weights]
    return dict(seed=seed, centering=centering, test_ll=curve[-1][1], train_ll=train_ll,
                curve=curve, cpu_s=cpu, weight_norms=w)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", choices=["digits", "mnist"], default="digits")
    p.add_argument("--hidden", type=int, nargs="+", default=[12, 16])
    p.add_argument("--method", choices=["vsml", "pretrain+vsml"], default="vsml")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--pretrain-steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--offset-rate", type=float, default=0.01)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--train", type=int, default=10000, help="MNIST training rows")
    p.add_argument("--test", type=int, default=297, help="held-out rows")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    x, x_test = _data(args)
    print(f"# data {args.data}: train {tuple(x.shape)}, test {tuple(x_test.shape)}; "
          f"load {os.getloadavg()}", flush=True)
    rows = []
    for seed in args.seeds:
        for centering in (False, True):  # interleaved
            r = run(args, x, x_test, seed, centering)
            rows.append(r)
            print(json.dumps(r), flush=True)
    summary = {}
    for c in (False, True):
        v = [r["test_ll"] for r in rows if r["centering"] == c]
        t = [r["train_ll"] for r in rows if r["centering"] == c]
        summary["centered" if c else "plain"] = dict(
            test_mean=sum(v) / len(v), test_se=_se(v), train_mean=sum(t) / len(t),
            train_se=_se(t), cpu_s=sum(r["cpu_s"] for r in rows if r["centering"] == c) / len(v),
        )
    diff = [b["test_ll"] - a["test_ll"] for a, b in zip(rows[::2], rows[1::2])]
    summary["paired_test_diff"] = dict(mean=sum(diff) / len(diff), se=_se(diff),
                                       wins=sum(d > 0 for d in diff), n=len(diff))
    summary["load_end"] = os.getloadavg()
    summary["args"] = vars(args)
    print("# summary " + json.dumps(summary), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(dict(rows=rows, summary=summary), f)


if __name__ == "__main__":
    main()
