"""Variational autoencoder vs IWAE on binarized MNIST, evaluated by importance sampling.

The story (book §20.10.3, Burda et al. 2015): train the same network with the ELBO and with the
importance-weighted bound IWAE(k), watch the reconstruction and KL terms and the number of active
units per epoch, then compare on held-out data three numbers that are named for what they are:
the ELBO (a lower bound), the IWAE bound (a tighter lower bound) and the importance-sampled
log-likelihood (a stochastic lower bound that converges to log p(x)), each with its standard
error. Finally, refine q per example on a few test images and measure the amortization gap.

    python examples/vae_mnist.py            # fixed binarized MNIST (PYROGEN_DATA or ../shared)
    python examples/vae_mnist.py --quick    # threshold-binarized 8x8 digits, seconds

Writes PNGs (samples, reconstructions, and the 2-D manifold for ``--latent 2``) into ``--out``.
"""

from __future__ import annotations

import argparse
import os

import pyro
import torch

from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import VAE
from pyrogen.plotting import save_image_grid


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="8x8 digits, tiny sizes (CI)")
    p.add_argument("--data", default=None, help="binarized_mnist.npz (default: PYROGEN_DATA)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--latent", type=int, default=50)
    p.add_argument("--k-train", type=int, default=5, help="particles of the IWAE bound")
    p.add_argument("--k-eval", type=int, default=5000, help="particles of the IS estimate")
    p.add_argument("--n-test", type=int, default=1000, help="test images evaluated")
    p.add_argument("--out", default="vae_mnist_out")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        ds = load_digits(binarize="threshold")
        train, test = ds.x[:800], ds.x[1500:]
        shape, hidden = (8, 8), (32,)
        epochs, latent, k_eval, n_test = 2, 2, 100, 30
        info = ds.info
    else:
        path = args.data or os.environ.get("PYROGEN_DATA") or os.path.join(
            os.path.dirname(__file__), "..", "..", "shared", "data", "binarized_mnist.npz")
        tr = load_binarized_mnist(path, split="train")
        # evenly spaced n_test images: the test split is ordered by digit class
        te = load_binarized_mnist(path, split="test", limit=args.n_test or None,
                                  subset="spaced")
        train, test, info = tr.x, te.x, tr.info
        shape, hidden = (28, 28), (200, 200)
        epochs, latent, k_eval, n_test = args.epochs, args.latent, args.k_eval, args.n_test
    os.makedirs(args.out, exist_ok=True)
    x_eval = test[:n_test]
    print(f"data: {info['name']} binarization={info['binarization']}; train {tuple(train.shape)}")
    for name, loss, k in (("VAE", "analytic_kl", 1), (f"IWAE(k={args.k_train})", "iwae",
                                                      args.k_train)):
        pyro.clear_param_store()
        model = VAE(train.shape[1], latent_dims=latent, hidden_dims=hidden, activation="tanh")

        def report(epoch, m, name=name):
            print(f"  {name} epoch {epoch + 1}: loss/ex {m['train_loss']:.2f}  reconstruction "
                  f"{m['reconstruction']:.2f}  KL {m['kl']:.2f}  active units "
                  f"{m['active_units']:.0f}/{latent}")

        hist = model.fit(train, loss=loss, num_particles=k, num_epochs=epochs, batch_size=100,
                         lr=1e-3, seed=args.seed, progress=False, callback=report, data_info=info)
        elbo = model.elbo(x_eval, num_particles=20)
        iwae = model.iwae_bound(x_eval, num_particles=50, num_repeats=3)
        ll = model.log_likelihood(x_eval, num_particles=k_eval, batch_size=50, chunk=100)
        print(f"{name}: trained {hist.info['num_epochs']} epochs in {hist.seconds:.0f}s; "
              f"on {x_eval.shape[0]} test images:")
        print(f"    ELBO               {elbo}")
        print(f"    IWAE bound (k=50)  {iwae}")
        print(f"    IS log p(x) k={k_eval:<5} {ll}  (min ESS {ll.info['min_ess']:.1f})")
        tag = name.split("(")[0].lower()
        save_image_grid(model.sample(40, mean=True), shape,
                        os.path.join(args.out, f"{tag}_samples.png"), title=f"{name} samples")
        save_image_grid(torch.cat([x_eval[:10], model.reconstruct(x_eval[:10])]), shape,
                        os.path.join(args.out, f"{tag}_reconstructions.png"),
                        title=f"{name}: test images and reconstructions")
        if latent == 2:
            save_image_grid(model.latent_grid(12), shape,
                            os.path.join(args.out, f"{tag}_manifold.png"), ncols=12,
                            title=f"{name}: learned 2-D manifold")
    n_gap = 5 if args.quick else 20
    gap = model.amortization_gap(x_eval[:n_gap], num_steps=10 if args.quick else 100,
                                 elbo_particles=20, is_particles=100)
    print(f"amortization gap of the last model on {n_gap} test images: {gap.amortization_gap:.3f} "
          f"nats (ELBO {gap.elbo_amortized.mean():.2f} -> {gap.elbo_refined.mean():.2f} after "
          f"per-example refinement; IS log p(x) {gap.log_likelihood.mean():.2f})")
    print(f"figures in {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
