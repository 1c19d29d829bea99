"""GAN, WGAN-GP and GMMN on digits, scored beside a VAE with the same sample-based kit.

    python examples/gan_mnist.py --quick                     # CI smoke run, seconds (8x8 digits)
    python examples/gan_mnist.py --epochs 200                # 8x8 grey-level digits, minutes
    PYROGEN_DATA=path/to/data PYROGEN_MNIST_LABELS=path/to/binarized_mnist_labels.npz \
        python examples/gan_mnist.py --mnist --train 10000 --epochs 5

None of the scores below is a likelihood (book §20.14): the classifier score (an Inception-Score
analogue: higher is better, the real test images give its ceiling), the Fréchet distance in the
classifier's feature space (lower is better; test images vs training images give its floor),
precision and recall (Kynkäänniemi et al. 2019), and the nearest-neighbour ratio (median
distance of samples to their nearest training image over the same for held-out images: well
below 1 means copying). Every model's samples are its *means* (the generator output, the VAE
decoder's probabilities), so all are scored on the same footing. The classifier is trained by
pyrogen on the training labels (``pyrogen.metrics.train_classifier``), never downloaded.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

from pyrogen import metrics
from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.exceptions import ConvergenceWarning
from pyrogen.models import GAN, VAE
from pyrogen.plotting import save_image_grid


def score(name, samples, clf, x_train, x_test, seconds):
    probs = clf.probs(samples)
    cs, cs_se = metrics.classifier_score(probs)
    fd = metrics.frechet_distance(clf.features(samples), clf.features(x_test))
    prec, rec = metrics.precision_recall(clf.features(x_test), clf.features(samples))
    nn_ = metrics.nearest_neighbours(samples.double(), x_train.double(), heldout=x_test.double())
    print(f"{name:<22} {cs:6.2f} ± {cs_se:4.2f} {fd:9.2f} {prec:6.3f} {rec:6.3f} "
          f"{nn_.ratio:7.3f} {seconds:8.1f}", flush=True)
    return {"classifier_score": cs, "classifier_score_se": cs_se, "frechet_distance": fd,
            "precision": prec, "recall": rec, "nn_ratio": nn_.ratio, "fit_seconds": seconds}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--mnist", action="store_true",
                    help="the fixed binarized MNIST (needs --data or PYROGEN_DATA) with conv nets")
    ap.add_argument("--data", default=None, help="binarized_mnist.npz")
    ap.add_argument("--train", type=int, default=10000, help="MNIST training images used")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--samples", type=int, default=1000, help="samples scored per model")
    ap.add_argument("--methods", nargs="+", default=["gan", "wgan_gp", "gmmn", "vae"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="gan_out", help="folder for the pictures ('' for none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    if args.mnist and not args.quick:
        # labels that belong to the images: PYROGEN_MNIST_LABELS (recover_mnist_labels.py)
        tr = load_binarized_mnist(args.data, "train", limit=args.train)
        te = load_binarized_mnist(args.data, "test")
        if tr.y is None or te.y is None:
            raise SystemExit("MNIST scoring needs labels: set PYROGEN_MNIST_LABELS")
        metrics.check_label_agreement(tr.x, tr.y, te.x, te.y)  # refuses misordered labels
        # the binarized test split is sorted by class: a random 2,000 of it
        keep = torch.randperm(te.x.shape[0], generator=torch.Generator().manual_seed(0))[:2000]
        x_train, y_train, x_test = tr.x.float(), tr.y, te.x.float()[keep]
        shape, arch, latent = (28, 28), "conv", 32
    else:
        # grey levels in [0, 1]: on binary data a discriminator can tell any non-binary output
        # from the data, whatever its shape (the GAN row then learns nothing); the VAE gets a
        # Gaussian decoder on the same grey levels
        d = load_digits(binarize=None, seed=args.seed)
        perm = torch.randperm(d.x.shape[0], generator=torch.Generator().manual_seed(args.seed))
        x, y = d.x.float()[perm], d.y[perm]
        x_train, y_train, x_test = x[:1500], y[:1500], x[1500:]
        shape, arch, latent = (8, 8), "mlp", 8
    epochs = 2 if args.quick else args.epochs
    if args.quick:
        x_train, y_train = x_train[:300], y_train[:300]
    n_samples = 200 if args.quick else args.samples
    print(f"data: {tuple(x_train.shape)} train, {tuple(x_test.shape)} held out, "
          f"{shape[0]}x{shape[1]} {'binarized (fixed MNIST)' if arch == 'conv' else 'grey levels'}"
          f"; {epochs} epochs per model, batch 64")
    if args.quick:
        print("--quick: 300 images, two epochs; the scores below are a smoke test, not results")
    clf = metrics.train_classifier(x_train, y_train, num_epochs=20 if args.quick else 30,
                                   seed=args.seed)
    print(f"\n{'model':<22} {'cls score':>13} {'Fréchet':>9} {'prec':>6} {'recall':>6} "
          f"{'NN ratio':>7} {'fit s':>8}")
    # the reference row: training images scored against the held-out ones (FD's floor, the
    # classifier score's ceiling; its NN ratio is 0: they ARE training images)
    real = x_train[torch.randperm(x_train.shape[0])[:n_samples]]
    results = {"real (train images)": score("real (train images)", real, clf, x_train, x_test,
                                            0.0)}
    gan_kw = dict(latent_dim=latent, architecture=arch, image_shape=shape, output="sigmoid",
                  seed=args.seed)
    if arch == "mlp":
        gan_kw["hidden_dims"] = (128, 128)
    fits = {
        "gan": lambda: GAN(x_train.shape[1], loss="non_saturating", **gan_kw),
        "wgan_gp": lambda: GAN(x_train.shape[1], loss="wgan_gp", **gan_kw),
        "gmmn": lambda: GAN(x_train.shape[1], **gan_kw),
    }
    pictures = {}
    for method in args.methods:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fixed budgets, reported
            if method == "vae":
                model = VAE(x_train.shape[1], latent_dims=latent, architecture=arch,
                            image_shape=shape if arch == "conv" else None, seed=args.seed,
                            likelihood="bernoulli" if args.mnist and not args.quick
                            else "gaussian", gaussian_scale="isotropic")
                model.fit(x_train, num_epochs=epochs, batch_size=64, lr=1e-3, progress=False,
                          seed=args.seed)
            elif method == "gmmn":
                model = fits[method]()
                model.fit(x_train, method="mmd", num_epochs=epochs, batch_size=256, lr=1e-3,
                          progress=False, seed=args.seed)
            else:
                model = fits[method]()
                model.fit(x_train, num_epochs=epochs, batch_size=64,
                          lr=1e-4 if method == "wgan_gp" else 2e-4,
                          betas=(0.5, 0.9) if method == "wgan_gp" else (0.5, 0.999),
                          progress=False, seed=args.seed)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            samples = model.sample(n_samples, mean=True).float()
        results[method] = score(method, samples, clf, x_train, x_test, seconds)
        pictures[method] = samples
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for method, samples in pictures.items():
            save_image_grid(samples[:40], shape, os.path.join(args.out, f"{method}_samples.png"),
                            ncols=10, title=f"{method}: sample means after {epochs} epochs")
        if "gan" in pictures:
            metrics.save_nearest_neighbour_grid(
                pictures["gan"][:6].double(), x_train.double(), shape,
                os.path.join(args.out, "gan_nearest_neighbours.png"), k=5,
                title="GAN sample | its 5 nearest training images")
        print(f"pictures written to {args.out}/")
    return results


if __name__ == "__main__":
    main()
