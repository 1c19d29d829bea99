"""Classification RBM: test error of each training objective (binarized MNIST or digits).

``--dataset mnist`` reads the fixed binarized MNIST and first checks that its labels belong to
its images (1-nearest-neighbour accuracy between two disjoint training subsets; chance is 10%):
the shared ``binarized_mnist.npz`` of 2026-12-03 fails it (1-NN 10.5%, logistic regression at
chance on held-out images), i.e. its labels are in another order than its images, and the script
stops. ``--dataset digits`` uses scikit-learn's 8x8 digits binarized at 0.5 (1797 images, a
seeded split into 1000 train / 297 valid / 500 test).

``pyrogen.models.DiscriminativeRBM`` (784 binary pixels, 10 classes, ``--hidden`` hidden units)
trained by SVI (Adam ``--lr``, batch ``--batch-size``, ``--epochs`` passes over the 50,000
training images) with each ``--objectives`` entry: ``discriminative`` (exact gradient of
log p(y|v)), ``generative`` (CD-1 on log p(v, y), classified by the exact p(y|v)), ``hybrid``
(log p(y|v) + ``--alpha`` log p(v, y), CD-1 for the second term). After every epoch the error on
the 10,000 validation and 10,000 test images is recorded. Beside them, at the same budget:
``sklearn.linear_model.LogisticRegression`` (lbfgs, at most ``--lr-max-iter`` iterations) and
``sklearn.neural_network.MLPClassifier`` with one hidden layer of the same size (Adam, same
learning rate, batch size and number of epochs, no early stopping).

Example::

    nice -n 10 python benchmarks/bench_drbm.py --hidden 500 --epochs 10 \\
        --json runs/drbm/drbm.json > runs/drbm/drbm.log 2>&1 &
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import bench_parser, header  # noqa: E402


def _err(pred, y):
    return float((torch.as_tensor(pred) != torch.as_tensor(y)).double().mean())


def _label_check(x, y, n_ref=4000, n_query=1000):
    """1-nearest-neighbour accuracy (Hamming distance) of ``n_query`` training images against
    ``n_ref`` others: about 90% or more for correctly labelled MNIST, 10% for shuffled labels."""
    ref, q = x[:n_ref].float(), x[n_ref : n_ref + n_query].float()
    d = ref.sum(1) + q.sum(1, keepdim=True) - 2 * q @ ref.T
    return float((y[:n_ref][d.argmin(1)] == y[n_ref : n_ref + n_query]).double().mean())


def _digits_splits(seed):
    from pyrogen.datasets import Dataset, load_digits

    d = load_digits(binarize="threshold")
    perm = torch.randperm(len(d), generator=torch.Generator().manual_seed(seed))
    parts = (perm[:1000], perm[1000:1297], perm[1297:])
    return tuple(Dataset(x=d.x[i].float(), y=d.y[i],
                         info={**d.info, "split": name, "n": len(i), "split_seed": seed})
                 for i, name in zip(parts, ("train", "valid", "test")))


def main():
    p = bench_parser("Classification RBM on binarized MNIST: test error per objective")
    p.add_argument("--data", default=os.environ.get("PYROGEN_DATA",
                                                    "../shared/data/binarized_mnist.npz"))
    p.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--objectives", default="discriminative,hybrid,generative")
    p.add_argument("--baselines", default="logistic,mlp")
    p.add_argument("--lr-max-iter", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads or 1)
    print(header(), flush=True)

    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.exceptions import ConvergenceWarning
    from pyrogen.models import DiscriminativeRBM

    if args.dataset == "digits":
        tr, va, te = _digits_splits(args.seed)
    else:
        limit = 1000 if args.quick else None
        tr, va, te = (load_binarized_mnist(args.data, s, limit=limit,
                                           subset="spaced" if s == "test" else "first")
                      for s in ("train", "valid", "test"))  # the test split is class-ordered
        if tr.y is None:
            raise SystemExit(f"{args.data} has no labels")
        acc = _label_check(tr.x, tr.y)
        print(f"label check: 1-NN accuracy between two training subsets {100 * acc:.1f}% "
              "(chance 10%)", flush=True)
        if acc < 0.5 and not args.quick:
            raise SystemExit(
                f"the labels of {args.data} do not belong to its images (1-NN accuracy "
                f"{100 * acc:.1f}%, chance 10%): no classification error can be measured on "
                "them. Use --dataset digits.")
    H = 20 if args.quick else args.hidden
    epochs = 1 if args.quick else args.epochs
    xtr, xva, xte = tr.x.float(), va.x.float(), te.x.float()
    n = xtr.shape[0]
    steps_per_epoch = -(-n // args.batch_size)
    results = {"command": "python " + " ".join(sys.argv), "header": header(), "hidden": H,
               "epochs": epochs, "batch_size": args.batch_size, "lr": args.lr,
               "alpha": args.alpha, "data": dict(tr.info), "runs": {}}

    def save():
        if args.json:
            from pyrogen._io import atomic_write_text

            atomic_write_text(args.json, json.dumps(results, indent=1) + "\n")

    for objective in [o for o in args.objectives.split(",") if o]:
        model = DiscriminativeRBM(xtr.shape[1], 10, H, objective=objective, alpha=args.alpha,
                                  seed=args.seed)
        curve = []
        t0 = time.perf_counter()
        state = {"train": 0.0}

        def on_step(i, loss, model=model, curve=curve, t0=t0, state=state,
                    objective=objective):
            if (i + 1) % steps_per_epoch == 0:
                state["train"] = time.perf_counter() - t0 - sum(r["eval_s"] for r in curve)
                te0 = time.perf_counter()
                row = {"epoch": (i + 1) // steps_per_epoch,
                       "valid_error": 1 - model.score(xva, va.y),
                       "test_error": 1 - model.score(xte, te.y),
                       "test_nll_y_given_v": -float(
                           model.conditional_log_likelihood(xte, te.y).values.mean()),
                       "last_loss": loss, "train_s": round(state["train"], 1),
                       "load": round(os.getloadavg()[0], 2)}
                row["eval_s"] = time.perf_counter() - te0
                curve.append(row)
                print(objective, json.dumps(row), flush=True)
                results["runs"][objective] = {"curve": curve}
                save()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(xtr, tr.y, num_steps=epochs * steps_per_epoch, lr=args.lr,
                      batch_size=args.batch_size, tol=None, seed=args.seed, progress=False,
                      callback=on_step)
        last = curve[-1]
        results["runs"][objective] = {"curve": curve, "test_error": last["test_error"],
                                      "valid_error": last["valid_error"],
                                      "train_s": last["train_s"]}
        save()
        print(f"{objective}: test error {100 * last['test_error']:.2f}% after {epochs} epochs, "
              f"{last['train_s']:.0f} s training", flush=True)

    ytr, yva, yte = tr.y.numpy(), va.y.numpy(), te.y.numpy()
    Xtr, Xva, Xte = xtr.numpy(), xva.numpy(), xte.numpy()
    for name in [b for b in args.baselines.split(",") if b]:
        from sklearn.exceptions import ConvergenceWarning as SkConvergenceWarning

        if name == "logistic":
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(max_iter=args.lr_max_iter)
        elif name == "mlp":
            from sklearn.neural_network import MLPClassifier

            clf = MLPClassifier(hidden_layer_sizes=(H,), solver="adam",
                                learning_rate_init=args.lr, batch_size=args.batch_size,
                                max_iter=epochs, early_stopping=False, random_state=args.seed)
        else:
            raise SystemExit(f"unknown baseline {name!r}")
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SkConvergenceWarning)
            clf.fit(Xtr, ytr)
        s = time.perf_counter() - t0
        row = {"test_error": _err(clf.predict(Xte), yte),
               "valid_error": _err(clf.predict(Xva), yva), "train_s": round(s, 1),
               "estimator": repr(clf)}
        results["runs"][name] = row
        save()
        print(f"{name}: test error {100 * row['test_error']:.2f}% ({row['estimator']}), "
              f"{s:.0f} s", flush=True)


if __name__ == "__main__":
    main()
