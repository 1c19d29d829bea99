"""Is the digits VAE's posterior collapse a pyrogen bug? pyrogen.models.VAE beside the Pyro VAE
tutorial's model and guide (written the tutorial way: pyro.module, a plain data plate, SVI with
Trace_ELBO and pyro.optim.Adam) on the same data, sizes, batches and learning rate.

    nice -n 10 python benchmarks/bench_vae_collapse.py --epochs 15 --hidden 200 200,200 --seeds 0 1
    nice -n 10 python benchmarks/bench_vae_collapse.py --epochs 100 --hidden 200,200 --seeds 0
    nice -n 10 python benchmarks/bench_vae_collapse.py --remedies

Data: the 8x8 digits threshold-binarized, 1,500 training / 297 test (fixed permutation);
Bernoulli decoder, 8 latent units, softplus MLPs (the tutorial's), batch 64, Adam lr 1e-3.
Printed: test ELBO (20 particles), active units (Burda et al.: Cov_x E_q[z|x] > 0.01).
``--remedies``: pyrogen only, 50 epochs, 2-layer softplus against ReLU, KL warm-up, lr 3e-3,
one layer.
"""

import argparse

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from pyrogen.datasets import load_digits
from pyrogen.models import VAE
from pyrogen.models.vae import active_units


def mlp(sizes, final):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if final or i < len(sizes) - 2:
            layers.append(nn.Softplus())
    return nn.Sequential(*layers)


class TutorialVAE(nn.Module):
    def __init__(self, hidden, z=8, d=64):
        super().__init__()
        self.body = mlp([d, *hidden], True)
        self.loc = nn.Linear(hidden[-1], z)
        self.log_scale = nn.Linear(hidden[-1], z)
        self.dec = mlp([z, *hidden[::-1], d], False)
        self.z = z

    def model(self, x):
        pyro.module("decoder", self.dec)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], self.z), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.dec(z)).to_event(1), obs=x)

    def guide(self, x):
        pyro.module("body", self.body)
        pyro.module("loc", self.loc)
        pyro.module("log_scale", self.log_scale)
        with pyro.plate("data", x.shape[0]):
            h = self.body(x)
            pyro.sample("z", dist.Normal(self.loc(h), torch.exp(self.log_scale(h))).to_event(1))


def data():
    d = load_digits(binarize="threshold", seed=0)
    x = d.x.float()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))
    return x[perm[:1500]], x[perm[1500:]]


def ours(xtr, xte, epochs, seed, hidden, lr=1e-3, **kw):
    fit_kw = {k: kw.pop(k) for k in list(kw) if k in ("kl_warmup",)}
    pyro.clear_param_store()
    m = VAE(64, latent_dims=8, hidden_dims=hidden, likelihood="bernoulli", seed=seed, **kw)
    m.fit(xtr, num_epochs=epochs, batch_size=64, lr=lr, progress=False, seed=seed, tol=None,
          **fit_kw)
    with torch.no_grad():
        loc, _ = m.encoder(xte)
    e = m.elbo(xte, num_particles=20).values
    return active_units(loc), float(e.mean()), float(e.std() / len(e) ** 0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--hidden", nargs="+", default=["200", "200,200"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--remedies", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    xtr, xte = data()
    if args.remedies:
        for kw in ({"activation": "relu"}, {"kl_warmup": 10.0}, {"lr": 3e-3},
                   {"hidden": (200,)}):
            for seed in (0, 1):
                au, e, se = ours(xtr, xte, 50, seed, **{"hidden": (200, 200), **kw})
                print(f"pyrogen 50 epochs {kw} seed {seed}: AU {au}/8, "
                      f"test ELBO {e:.2f} ± {se:.2f}", flush=True)
        return
    for hs in args.hidden:
        hidden = tuple(int(h) for h in hs.split(","))
        for seed in args.seeds:
            pyro.clear_param_store()
            pyro.set_rng_seed(seed)
            torch.manual_seed(seed)
            t = TutorialVAE(hidden)
            svi = SVI(t.model, t.guide, Adam({"lr": 1e-3}), Trace_ELBO())
            g = torch.Generator().manual_seed(seed)
            for _ in range(args.epochs):
                p = torch.randperm(1500, generator=g)
                for s in range(0, 1500, 64):
                    svi.step(xtr[p[s : s + 64]])
            with torch.no_grad():
                loc = t.loc(t.body(xte))
            el = -Trace_ELBO(num_particles=20).loss(t.model, t.guide, xte) / xte.shape[0]
            au, e, se = ours(xtr, xte, args.epochs, seed, hidden)
            print(f"{args.epochs} epochs hidden {hidden} seed {seed}: tutorial AU "
                  f"{active_units(loc)}/8 ELBO {el:.2f} | pyrogen AU {au}/8 "
                  f"ELBO {e:.2f} ± {se:.2f}", flush=True)


if __name__ == "__main__":
    main()
