"""MNIST: a DCGAN-style GAN, WGAN-GP, GMMN (pixel space), GMMN+AE and the VAE, scored alike.

    PYROGEN_DATA=/work/shared/data \
    PYROGEN_MNIST_LABELS=runs/mnist_labels/binarized_mnist_labels.npz \
    nice -n 10 python benchmarks/bench_gan_mnist.py --train 10000 --minutes 5 --out runs/gan/mnist

Data: the fixed binarized MNIST (``pyrogen.datasets.load_binarized_mnist``) with labels that
belong to its images (``--labels`` or ``PYROGEN_MNIST_LABELS``, written by
``benchmarks/recover_mnist_labels.py``). The labels are checked before anything is trained
(``pyrogen.metrics.check_label_agreement``): the nearest-class-mean classifier (class means of
the training images) must reach test accuracy >= 0.5 with them (about 0.81 with the recovered
labels, 0.10 with labels in MNIST's original order, which the shared npz carries) -- otherwise
the script stops.

Scorer: ``pyrogen.metrics.cached_classifier`` (MLP 784-256-256-10) trained on all 50,000 training
images with those labels; its test accuracy is printed. Each model trains on the first
``--train`` training images for at most ``--minutes`` wall-clock minutes (checked after each
epoch); its CPU seconds (``time.process_time``) are printed beside the load average. Scored
per model: 2,000 samples (the generator's output; for the VAE both the decoder means and
Bernoulli draws) -- classifier score (Inception-Score analogue, ± se over 10 splits), Fréchet
distance in the classifier's last hidden layer against test images 0-4999, precision/recall
(k=3) in the same space, the class histogram (its total-variation distance to the uniform), the
nearest-training-image distance statistic (median distance over the held-out images' median:
<< 1 means copying) against test images 8000-9999, and a PNG of samples beside their 5 nearest
training images. The reference row is real test images 5000-6999 scored the same way. (Test
indices are into a fixed permutation of the test split: its binarized copy is sorted by class.)

Results go to ``--out``: ``results.json`` (one entry per model, rewritten after each model, so
a killed run keeps what finished and ``--methods`` resumes the rest), each model's weights
(``<method>.pt``), sample grids and nearest-neighbour grids.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import torch
from torch import nn

from pyrogen import metrics
from pyrogen.datasets import load_binarized_mnist
from pyrogen.exceptions import ConvergenceWarning
from pyrogen.models import GAN, VAE
from pyrogen.plotting import save_image_grid

SHAPE = (28, 28)
METHODS = ("real", "gan", "wgan_gp", "gmmn", "gmmn_ae", "vae")


class AE(nn.Module):
    """Li et al. (2015)'s GMMN+AE autoencoder, smaller: 784-512-code (sigmoid) -512-784."""

    def __init__(self, code=32, hidden=512):
        super().__init__()
        self.enc = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, code),
                                 nn.Sigmoid())
        self.dec = nn.Sequential(nn.Linear(code, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def fit(self, x, seconds, batch_size=100, lr=1e-3, dropout=0.1, seed=0):
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        t0, epochs = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            perm = torch.randperm(x.shape[0], generator=gen)
            for s in range(0, x.shape[0], batch_size):
                xb = x[perm[s : s + batch_size]]
                h = nn.functional.dropout(self.enc(xb), dropout)
                loss = nn.functional.binary_cross_entropy_with_logits(
                    self.dec(h), xb, reduction="sum") / xb.shape[0]
                opt.zero_grad()
                loss.backward()
                opt.step()
            epochs += 1
        return epochs, float(loss.detach())


def score(name, samples, clf, ref, x_train, heldout, out):
    probs = clf.probs(samples)
    cs, cs_se = metrics.classifier_score(probs)
    fs = clf.features(samples)
    fd = metrics.frechet_distance(fs, clf.features(ref))
    prec, rec = metrics.precision_recall(clf.features(ref), fs)
    hist = metrics.class_histogram(probs, 10)
    nn_ = metrics.nearest_neighbours(samples.double(), x_train.double(), heldout=heldout.double())
    r = {"classifier_score": cs, "classifier_score_se": cs_se, "frechet_distance": fd,
         "precision": prec, "recall": rec, "class_histogram": [round(float(h), 4) for h in hist],
         "class_tv_to_uniform": 0.5 * float((hist - 0.1).abs().sum()),
         "nn_ratio": nn_.ratio, "nn_fraction_closer": nn_.fraction_closer,
         "nn_median": float(nn_.distances[:, 0].median()),
         "heldout_nn_median": float(nn_.heldout_distances.median()),
         "binary_fraction": float(((samples < 0.05) | (samples > 0.95)).double().mean())}
    print(f"{name:<16} score {cs:5.2f} ± {cs_se:4.2f}  FD {fd:8.2f}  P {prec:.3f} R {rec:.3f}  "
          f"TV(hist) {r['class_tv_to_uniform']:.3f}  NN ratio {nn_.ratio:.3f} "
          f"(closer than held-out 5%: {nn_.fraction_closer:.3f})", flush=True)
    if out:
        save_image_grid(samples[:60].float(), SHAPE, os.path.join(out, f"{name}_samples.png"),
                        ncols=10, title=f"{name}: samples")
        metrics.save_nearest_neighbour_grid(
            samples[:8].double(), x_train.double(), SHAPE,
            os.path.join(out, f"{name}_nearest.png"), k=5,
            title=f"{name}: sample | its 5 nearest training images")
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--labels", default=None)
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--minutes", type=float, default=6.0, help="wall-clock budget per model")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--vae-activation", default="softplus",
                    help="the VAE's activation (rows named vae_<activation>_* unless softplus)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/gan/mnist")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    tr = load_binarized_mnist(args.data, "train", labels=args.labels)
    te = load_binarized_mnist(args.data, "test", labels=args.labels)
    x_all, y_all = tr.x.float(), tr.y.long()
    x_test, y_test = te.x.float(), te.y.long()
    try:  # refuse labels that do not belong to the images
        ncm = metrics.check_label_agreement(x_all, y_all, x_test, y_test)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print(f"labels: {tr.info.get('labels')}; nearest-class-mean test accuracy {ncm:.3f}")
    t0 = time.process_time()
    clf = metrics.cached_classifier("binarized_mnist", x_all, y_all, hidden=256, num_epochs=10,
                                    seed=0)
    acc = float((clf.probs(x_test).argmax(1) == y_test).double().mean())
    print(f"classifier (MLP 784-256-256-10, 10 epochs on 50,000): test accuracy {acc:.4f} "
          f"({time.process_time() - t0:.0f} CPU s incl. cache)")
    x_train = x_all[: args.train]
    # the binarized test split is sorted by class: split a fixed permutation of it
    xt = x_test[torch.randperm(x_test.shape[0], generator=torch.Generator().manual_seed(0))]
    ref, real, heldout = xt[:5000], xt[5000 : 5000 + args.samples], xt[8000:]
    path = os.path.join(args.out, "results.json")
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)
    results["_setup"] = {"classifier_test_accuracy": acc, "nearest_class_mean_accuracy": ncm,
                         "labels": str(tr.info.get("labels")), "train": args.train,
                         "minutes": args.minutes, "samples": args.samples}
    budget = 60.0 * args.minutes
    gan_kw = dict(latent_dim=32, architecture="conv", image_shape=SHAPE, output="sigmoid",
                  seed=args.seed)
    for method in args.methods:
        torch.manual_seed(args.seed)
        t_cpu, t_wall, info = time.process_time(), time.perf_counter(), {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fixed budgets, reported
            if method == "real":
                samples = {"real": real}
            elif method == "vae":
                model = VAE(784, latent_dims=32, architecture="conv", image_shape=SHAPE,
                            likelihood="bernoulli", activation=args.vae_activation,
                            seed=args.seed)
                h = model.fit(x_train, num_epochs=1000, batch_size=64, lr=1e-3, progress=False,
                              seed=args.seed, max_seconds=budget, tol=None)
                info = {"epochs": len(h.metrics["elbo"]), "elbo_monitor": h.metrics["elbo"][-1],
                        "active_units": h.metrics["active_units"][-1]}
                with torch.no_grad():
                    v = "vae" if args.vae_activation == "softplus" else f"vae_{args.vae_activation}"
                    samples = {f"{v}_means": model.sample(args.samples, mean=True).float(),
                               f"{v}_draws": model.sample(args.samples).float()}
            elif method == "gmmn_ae":
                ae = AE()
                ae_epochs, ae_loss = ae.fit(x_train, budget / 3, seed=args.seed)
                with torch.no_grad():
                    codes = ae.enc(x_train)
                g = GAN(32, latent_dim=10, hidden_dims=(64, 256, 256), output="sigmoid",
                        seed=args.seed)
                h = g.fit(codes, method="mmd", num_epochs=100000, batch_size=256, lr=1e-3,
                          progress=False, seed=args.seed, max_seconds=budget * 2 / 3)
                info = {"ae_epochs": ae_epochs, "ae_bce_last_batch": ae_loss,
                        "epochs": len(h.metrics["seconds"])}
                model = g
                with torch.no_grad():
                    samples = {"gmmn_ae": torch.sigmoid(ae.dec(g.sample(args.samples)))}
                torch.save(ae.state_dict(), os.path.join(args.out, "gmmn_ae_autoencoder.pt"))
            else:
                if method == "gmmn":
                    model = GAN(784, **gan_kw)
                    h = model.fit(x_train, method="mmd", num_epochs=1000, batch_size=256,
                                  lr=1e-3, progress=False, seed=args.seed, max_seconds=budget)
                else:
                    wgan = method == "wgan_gp"
                    model = GAN(784, loss="wgan_gp" if wgan else "non_saturating", **gan_kw)
                    h = model.fit(x_train, num_epochs=1000, batch_size=64,
                                  lr=1e-4 if wgan else 2e-4,
                                  betas=(0.5, 0.9) if wgan else (0.5, 0.999),
                                  progress=False, seed=args.seed, max_seconds=budget)
                info = {"epochs": len(h.metrics["seconds"]),
                        "last_epoch": {k: v[-1] for k, v in h.metrics.items()}}
                with torch.no_grad():
                    samples = {method: model.sample(args.samples, mean=True).float()}
        cpu, wall = time.process_time() - t_cpu, time.perf_counter() - t_wall
        if method != "real":
            tag = method if method != "vae" or args.vae_activation == "softplus" else \
                f"vae_{args.vae_activation}"
            model.save(os.path.join(args.out, f"{tag}.pt"))
            print(f"{method}: {info.get('epochs')} epochs, {cpu:.0f} CPU s, {wall:.0f} wall s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        for name, s in samples.items():
            results[name] = {**score(name, s, clf, ref, x_train, heldout, args.out),
                             "cpu_seconds": cpu, "wall_seconds": wall,
                             "load": os.getloadavg()[0], **info}
        with open(path + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(path + ".tmp", path)
    return results


if __name__ == "__main__":
    main()
