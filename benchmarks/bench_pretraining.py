"""Greedy layer-wise pretraining for classification (book §15.1): a sigmoid MLP initialised
from a stack of RBMs vs the same MLP from a random initialisation, fine-tuned with the same
budget, over seeds and labelled-set sizes.

The RBM stack is pretrained once per seed on ALL training inputs (unlabelled); the classifier
then sees only ``n_labelled`` labelled examples. Reports the test error of both and the paired
difference (random - pretrained) with its standard error over seeds.

    python benchmarks/bench_pretraining.py                    # digits (8x8), ~minutes
    python benchmarks/bench_pretraining.py --data mnist --hidden 500,500 --rbm-steps 3000 \\
        --sizes 100,1000,10000 --epochs 1 --min-steps 3000 --lr 1e-3 --n-test 10000
    python benchmarks/bench_pretraining.py --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import warnings

import torch

from pyrogen import ConvergenceWarning
from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.infer.layerwise import (
    classification_error,
    mlp_from_stack,
    random_mlp,
    train_classifier,
)
from pyrogen.models.dbn import pretrain_rbm_stack

#: the recovered labels of the fixed binarized MNIST (its own ``*_y`` arrays are in MNIST's
#: original order, not its images': benchmarks/recover_mnist_labels.py)
MNIST_LABELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "runs",
                            "mnist_labels", "binarized_mnist_labels.npz")


def _data(name, n_test, seed, labels=None):
    if name == "digits":
        d = load_digits(binarize="threshold", seed=0)
        x, y = d.x.float(), torch.as_tensor(d.y).long()
        g = torch.Generator().manual_seed(1234)
        perm = torch.randperm(x.shape[0], generator=g)
        te, tr = perm[:n_test], perm[n_test:]
        return x[tr], y[tr], x[te], y[te]
    labels = labels or os.environ.get("PYROGEN_MNIST_LABELS") or MNIST_LABELS
    if not os.path.exists(labels):
        raise SystemExit(f"recovered MNIST labels not found at {labels}: run "
                         "benchmarks/recover_mnist_labels.py or pass --labels")
    path = os.environ.get("PYROGEN_DATA") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
        "binarized_mnist.npz")
    tr = load_binarized_mnist(path, "train", labels=labels)
    te = load_binarized_mnist(path, "test", limit=n_test, labels=labels, subset="spaced")
    return tr.x.float(), torch.as_tensor(tr.y).long(), te.x.float(), torch.as_tensor(te.y).long()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("digits", "mnist"), default="digits")
    ap.add_argument("--hidden", default="64,64")
    ap.add_argument("--sizes", default="20,50,100,400,1000", help="labelled-set sizes")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rbm-steps", type=int, default=1500)
    ap.add_argument("--epochs", type=int, default=200, help="fine-tuning epochs")
    ap.add_argument("--min-steps", type=int, default=2000,
                    help="at least this many Adam steps (small labelled sets get more epochs)")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--unlabelled", type=int, default=None, help="rows used for pretraining")
    ap.add_argument("--labels", default=None,
                    help="MNIST labels .npz (default: $PYROGEN_MNIST_LABELS, else "
                         "runs/mnist_labels/binarized_mnist_labels.npz)")
    ap.add_argument("--shared-stack", action="store_true",
                    help="pretrain ONE stack (seed 0) and reuse it for every seed (the seed then "
                         "changes the labelled subset, the random init and the fine-tuning "
                         "order only): cheaper, and the seeds' spread omits pretraining's")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.sizes, args.seeds, args.rbm_steps, args.epochs = "20,200", 2, 50, 20
        args.min_steps = 50
    hidden = [int(h) for h in args.hidden.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    x, y, xt, yt = _data(args.data, args.n_test, 0, args.labels)
    xu = x if args.unlabelled is None else x[: args.unlabelled]
    print(f"data={args.data} train={x.shape[0]} (pretraining on {xu.shape[0]}) "
          f"test={xt.shape[0]} hidden={hidden} rbm_steps={args.rbm_steps} (CD-1, Adam 1e-3, "
          f"batch 100, probabilities propagated) fine-tune: Adam lr={args.lr}, batch 32, "
          f"max({args.epochs} epochs, {args.min_steps} steps)")
    rows = []
    c_start = time.process_time()
    stack = None
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        if stack is None or not args.shared_stack:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                stack = pretrain_rbm_stack(xu, hidden, training="cd", seed=seed,
                                           progress=False, num_steps=args.rbm_steps, lr=1e-3,
                                           batch_size=100, tol=None)
        print(f"seed {seed}: stack ready after {time.perf_counter() - t0:.0f}s wall", flush=True)
        g = torch.Generator().manual_seed(10_000 + seed)
        perm = torch.randperm(x.shape[0], generator=g)
        for n in sizes:
            idx = perm[:n]
            errs = {}
            for init in ("pretrained", "random"):
                net = mlp_from_stack(stack.layers, 10) if init == "pretrained" else random_mlp(
                    [x.shape[1], *hidden], 10, seed=seed)
                batch = min(32, n)
                epochs = max(args.epochs, math.ceil(args.min_steps / math.ceil(n / batch)))
                train_classifier(net, x[idx], y[idx], num_epochs=epochs, lr=args.lr,
                                 batch_size=batch, seed=seed)
                errs[init] = classification_error(net, xt, yt)
            rows.append({"seed": seed, "n": n, **errs, "seconds": time.perf_counter() - t0,
                         "finetune_steps": epochs * math.ceil(n / batch)})
            print(f"seed {seed} n={n:5d}: pretrained {errs['pretrained']:.3f} "
                  f"random {errs['random']:.3f}", flush=True)
    cpu = time.process_time() - c_start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU time {cpu:.0f}s (process), load average at the end {load:.1f}")
    print("\nn_labelled  pretrained  random  diff(random-pre) ± se   [test error, mean over "
          f"{args.seeds} seeds]")
    for n in sizes:
        r = [row for row in rows if row["n"] == n]
        pre = sum(v["pretrained"] for v in r) / len(r)
        ran = sum(v["random"] for v in r) / len(r)
        d = [v["random"] - v["pretrained"] for v in r]
        md = sum(d) / len(d)
        se = math.sqrt(sum((v - md) ** 2 for v in d) / max(len(d) - 1, 1) / len(d))
        print(f"{n:10d}  {pre:10.3f}  {ran:6.3f}  {md:+.3f} ± {se:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "cpu_seconds": cpu, "load": load}, f,
                      indent=1)


if __name__ == "__main__":
    main()
