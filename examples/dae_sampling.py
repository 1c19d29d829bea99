"""Sample from a denoising autoencoder and a GSN by running their Markov chains; inpaint digits.

Usage::

    python examples/dae_sampling.py --quick                 # CI smoke run, seconds (8x8 digits)
    python examples/dae_sampling.py --epochs 200            # 8x8 digits, minutes
    python examples/dae_sampling.py --mnist --epochs 20     # binarized MNIST (PYROGEN_DATA)
    python examples/dae_sampling.py --mnist --models dae --dae-walkbacks 1 4   # walk-back or not

The story (book §20.11-20.12):

1. ``DenoisingAutoencoder``: salt-and-pepper corruption :math:`C(\\tilde x\\mid x)` and a Bernoulli
   reconstruction distribution :math:`P(x\\mid\\tilde x)`, trained by Pyro SVI on the walk-back
   reconstruction loss (``--walkback`` corrupt/reconstruct steps per example, §20.11.3). That loss
   is *not* a likelihood, and is printed under its own name;
2. ``GSN``: the same chain with a latent state :math:`h` carried from step to step (§20.12);
3. samples: each model's chain run from fair coin flips (``--chain-steps`` transitions), and the
   path of one chain over time (figure 20.11's procedure);
4. inpainting (§20.11.2): the upper half of each held-out digit clamped, the lower half resampled by
   the chain; scored by the fraction of lower-half pixels right and by whether a classifier still
   reads the true label;
5. scores that are *not* likelihoods (book §20.14, ``pyrogen.metrics``): classifier score,
   Fréchet distance in the classifier's feature space, nearest-neighbour ratio (samples vs held-out
   images); plus a Parzen-window estimate, printed with its label: unreliable, no bound.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings

try:
    import pyrogen  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch

from pyrogen import metrics
from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.exceptions import ConvergenceWarning
from pyrogen.models import GSN, DenoisingAutoencoder
from pyrogen.plotting import save_image_grid


def find_mnist(path):
    cands = [path, os.environ.get("PYROGEN_DATA")]
    here = os.path.dirname(os.path.abspath(__file__))
    cands.append(os.path.join(here, "..", "..", "shared", "data", "binarized_mnist.npz"))
    return next((c for c in cands if c and os.path.exists(c)), None)


def load_data(args):
    if args.mnist and not args.quick:
        path = find_mnist(args.data)
        if path is None:
            raise SystemExit("binarized MNIST not found: pass --data PATH or set PYROGEN_DATA.")
        tr = load_binarized_mnist(path, "train", limit=args.train)
        te = load_binarized_mnist(path, "test")
        # a fixed random 1000: the file's test split is sorted by class (the first 980 are 0s)
        keep = torch.randperm(te.x.shape[0], generator=torch.Generator().manual_seed(0))[:1000]
        y_te = te.y[keep] if te.y is not None else None
        return tr.x.float(), tr.y, te.x[keep].float(), y_te, (28, 28), tr.info
    d = load_digits(binarize="threshold", seed=args.seed)
    perm = torch.randperm(d.x.shape[0], generator=torch.Generator().manual_seed(args.seed))
    x, y = d.x.float()[perm], d.y[perm]
    return x[:1500], y[:1500], x[1500:], y[1500:], (8, 8), d.info


def score(name, samples, clf, x_train, x_test, seconds, extra=""):
    probs = clf.probs(samples)
    cs, cs_se = metrics.classifier_score(probs)
    fd = metrics.frechet_distance(clf.features(samples), clf.features(x_test))
    nn_ = metrics.nearest_neighbours(samples.double(), x_train.double(), heldout=x_test.double())
    # classifier-free, pixel space: how far samples are from the training set (memorization,
    # quality) and how far held-out images are from the samples (coverage)
    d_sample = float(nn_.distances[:, 0].median())
    d_held = float(nn_.heldout_distances.median())
    d_cover = float(torch.cdist(x_test.double(), samples.double()).min(1).values.median())
    print(f"{name:<16} {cs:6.2f} ± {cs_se:4.2f} {fd:9.2f} {nn_.ratio:8.3f} {seconds:8.1f}  {extra}",
          flush=True)
    print(f"{'':<16} pixel-space nearest neighbours (Euclidean): sample -> train median "
          f"{d_sample:.2f}, held-out -> train median {d_held:.2f} (ratio {nn_.ratio:.3f}; "
          f"fraction of samples closer than the held-out 5th percentile "
          f"{nn_.fraction_closer:.3f}); held-out -> nearest sample median {d_cover:.2f}",
          flush=True)
    return {"classifier_score": cs, "classifier_score_se": cs_se, "frechet_distance": fd,
            "nn_ratio": nn_.ratio, "fit_seconds": seconds, "nn_sample_train": d_sample,
            "nn_heldout_train": d_held, "nn_heldout_sample": d_cover,
            "nn_fraction_closer": nn_.fraction_closer}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--mnist", action="store_true", help="the fixed binarized MNIST")
    ap.add_argument("--data", default=None, help="binarized_mnist.npz")
    ap.add_argument("--train", type=int, default=10000, help="MNIST training images used")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--noise", type=float, default=0.3, help="salt-and-pepper level in (0, 1)")
    ap.add_argument("--walkback", type=int, default=2)
    ap.add_argument("--chain-steps", type=int, default=100)
    ap.add_argument("--samples", type=int, default=500, help="samples scored per model")
    ap.add_argument("--models", nargs="+", default=["dae", "gsn"], choices=["dae", "gsn"])
    ap.add_argument("--dae-walkbacks", type=int, nargs="+", default=None,
                    help="train one DAE per value (walk-back steps; 1 = no walk-back) instead "
                         "of one at --walkback")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="dae_out", help="folder for the pictures ('' for none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test, shape, info = load_data(args)
    if args.quick:
        x_train, y_train, x_test, y_test = x_train[:300], y_train[:300], x_test[:100], y_test[:100]
        args.epochs, args.hidden, args.chain_steps, args.samples = 2, 32, 10, 100
    d = x_train.shape[1]
    steps = args.epochs * math.ceil(x_train.shape[0] / args.batch_size)
    print(f"data: {info.get('name', '?')} {tuple(x_train.shape)} train, {tuple(x_test.shape)} "
          f"held out; {args.epochs} epochs (batch {args.batch_size}), walkback {args.walkback}, "
          f"salt-and-pepper {args.noise}")
    if args.quick:
        print("--quick: a smoke test; the numbers below are not results")
    clf = metrics.train_classifier(x_train, y_train, num_epochs=3 if args.quick else 30,
                                   seed=args.seed)
    print(f"\n{'samples of':<16} {'cls score':>13} {'Fréchet':>9} {'NN ratio':>8} {'fit cpu s':>8}")
    results = {"real (held-out)": score("real (held-out)", x_test, clf, x_train, x_test, 0.0)}
    half = (shape[0] // 2) * shape[1]
    mask = torch.arange(d) < half  # clamp the upper half
    # baseline for inpainting: the lower half of the training mean image (no model)
    mean_img = x_train.mean(0).expand_as(x_test)
    base = torch.where(mask, x_test, mean_img)
    print(f"inpainting baseline (lower half = training mean image): "
          f"{float(((base[:, ~mask] > 0.5).float() == x_test[:, ~mask]).float().mean()):.3f} "
          f"of lower-half pixels right (thresholded), classifier reads the true label on "
          f"{float((clf.probs(base).argmax(1) == y_test).float().mean()):.3f}")
    pictures = {}
    runs = []
    for name in args.models:
        if name == "dae" and args.dae_walkbacks:
            runs += [(f"dae-wb{k}", k) for k in args.dae_walkbacks]
        else:
            runs.append((name, args.walkback))
    for name, walkback in runs:
        if name.startswith("dae"):
            model = DenoisingAutoencoder(d, (args.hidden,), noise=args.noise,
                                         walkback=walkback, seed=args.seed)
        else:
            model = GSN(d, args.hidden, noise=args.noise, walkback=max(args.walkback, 2),
                        seed=args.seed)
        t0 = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # fixed budgets, reported
            hist = model.fit(x_train, num_steps=steps, batch_size=args.batch_size, lr=args.lr,
                             tol=None, progress=False, seed=args.seed, data_info=info)
        seconds = time.process_time() - t0  # CPU seconds
        loss = sum(hist.losses[-20:]) / len(hist.losses[-20:])
        samples = model.sample(args.samples, args.chain_steps, mean=True, seed=args.seed)
        parzen = model.log_likelihood(x_test, num_samples=args.samples, seed=args.seed)
        results[name] = score(
            name, samples.float(), clf, x_train, x_test, seconds,
            extra=f"walk-back reconstruction NLL {loss:.2f} nats/ex (not a likelihood); "
                  f"Parzen {parzen.mean():.1f} ± {parzen.mean_stderr():.1f} "
                  f"[{parzen.kind}: not a likelihood, no bound]")
        filled = model.inpaint(x_test, mask, args.chain_steps, seed=args.seed)
        filled_mean = model.inpaint(x_test, mask, args.chain_steps, mean=True, seed=args.seed)
        pixel_acc = float((filled[:, ~mask] == x_test[:, ~mask]).float().mean())
        point_acc = float(((filled_mean[:, ~mask] > 0.5).float() == x_test[:, ~mask])
                          .float().mean())
        label_acc = float((clf.probs(filled_mean).argmax(1) == y_test).float().mean())
        results[name].update(inpaint_pixel_accuracy=pixel_acc, inpaint_point_accuracy=point_acc,
                             inpaint_label_accuracy=label_acc,
                             reconstruction_nll=loss, parzen=parzen.to_dict())
        orig_acc = float((clf.probs(x_test).argmax(1) == y_test).float().mean())
        print(f"  inpainting the lower half: {pixel_acc:.3f} of its pixels right (a chain draw), "
              f"{point_acc:.3f} (last reconstruction mean thresholded), classifier "
              f"reads the true label on {label_acc:.3f} of inpainted digits "
              f"(on the originals: {orig_acc:.3f})")
        trajectory = model.chain(torch.bernoulli(torch.full((1, d), 0.5)), args.chain_steps,
                                 thin=max(1, args.chain_steps // 20), mean=True, seed=args.seed)
        pictures[name] = (samples, filled_mean, trajectory[:, 0])
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for name, (samples, filled, path) in pictures.items():
            save_image_grid(samples[:40], shape, os.path.join(args.out, f"{name}_samples.png"),
                            ncols=10, title=f"{name}: chain samples after {args.chain_steps} steps")
            k = 10
            rows = torch.cat([x_test[:k], torch.where(mask, x_test[:k], 0.5), filled[:k]])
            save_image_grid(rows, shape, os.path.join(args.out, f"{name}_inpainting.png"),
                            ncols=k, title=f"{name}: originals | upper half clamped | inpainted")
            save_image_grid(path, shape, os.path.join(args.out, f"{name}_chain.png"),
                            ncols=10, title=f"{name}: one chain from noise over time")
        print(f"pictures written to {args.out}/")
    return results


if __name__ == "__main__":
    main()
