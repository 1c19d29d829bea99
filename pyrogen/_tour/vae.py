"""Tour step: a small variational autoencoder (book §20.10.3) on threshold-binarized digits.

Trains a VAE with a 2-D latent (so the learned manifold can be drawn) on 1500 digits with the
closed-form-KL ELBO, then reports on the 297 held-out digits: the ELBO (a lower bound) and the
importance-sampled log-likelihood with its standard error (a stochastic lower bound that is
tighter), the per-epoch reconstruction / KL terms and active units. Writes samples,
reconstructions, the 2-D manifold and the training curves as PNG.
"""

from __future__ import annotations

import time

import torch

from ..models import VAE
from ..plotting import save_image_grid, save_line_plot

N_TRAIN = 1500


def step(ctx) -> list[dict]:
    ds = ctx.digits(binarize="threshold")
    train, test = ds.x[:N_TRAIN], ds.x[N_TRAIN:]
    info_train = dict(ds.info, split=f"first {N_TRAIN}", n=N_TRAIN)
    info_test = dict(ds.info, split=f"last {test.shape[0]} (held out)", n=test.shape[0])
    torch.manual_seed(ctx.seed)
    model = VAE(64, latent_dims=2, hidden_dims=(128,), activation="softplus")
    t0 = time.perf_counter()
    hist = model.fit(
        train,
        loss="analytic_kl",
        num_epochs=8 if ctx.quick else 40,
        batch_size=100,
        lr=3e-3,
        seed=ctx.seed,
        progress=False,
        data_info=info_train,
    )
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(test, num_particles=200 if ctx.quick else 1000)
    elbo = model.elbo(test, num_particles=20)
    recon = model.reconstruct(test[:10])
    figures = [
        save_image_grid(model.sample(40, mean=True), (8, 8), ctx.path("vae_samples.png"),
                        title="VAE: decoder means at z ~ N(0, I)"),
        save_image_grid(torch.cat([test[:10], recon]), (8, 8), ctx.path("vae_reconstructions.png"),
                        title="held-out digits (top) and reconstructions E[x | z = mu(x)]"),
        save_image_grid(model.latent_grid(12), (8, 8), ctx.path("vae_manifold.png"), ncols=12,
                        title="learned 2-D manifold (decoder means on a Gaussian-quantile grid)"),
        save_line_plot(
            {"reconstruction E_q log p(x|z)": hist.metrics["reconstruction"],
             "- KL(q || p)": [-k for k in hist.metrics["kl"]]},
            ctx.path("vae_terms.png"), title="VAE: the two ELBO terms per epoch",
            xlabel="epoch", ylabel="nats / example",
        ),
    ]
    summary = (
        f"held-out ELBO {elbo}; KL {hist.metrics['kl'][-1]:.2f} nats, "
        f"{hist.metrics['active_units'][-1]:.0f}/2 active units"
    )
    return [
        {
            "model": "VAE(d=2, 128 softplus)",
            "data": info_test,
            "train_data": info_train,
            "method": "svi (TraceMeanField_ELBO)",
            "log_likelihood": ll.to_dict(),
            "elbo": elbo.to_dict(),
            "fit_seconds": seconds,
            "figures": figures,
            "summary": summary,
        }
    ]
