"""Tour step: a deep Boltzmann machine (book §20.4) on the threshold-binarized 8x8 digits.

A :class:`~pyrogen.models.DBM` 64-12-8 is pretrained layer-wise (Salakhutdinov & Hinton 2009:
doubled bottom and top RBMs) and then trained jointly by variational stochastic maximum
likelihood (Algorithm 20.1), which is Pyro SVI on the DBM's joint with a mean-field guide and
the PCD normalizer. Small enough for everything to be exact: the held-out log-likelihood is
**exact** (kind ``exact``), and the two approximations a large DBM relies on are printed beside
it: the AIS estimate of log Z on the DBM path and the mean-field lower bound of log p~(v).
"""

from __future__ import annotations

import time

import torch

from ..models import DBM
from ..plotting import save_image_grid


def step(ctx) -> list[dict]:
    data = ctx.digits(binarize="threshold")
    x = data.x.float()
    g = torch.Generator().manual_seed(ctx.seed)
    perm = torch.randperm(x.shape[0], generator=g)
    n_test = 300
    x_test, x_train = x[perm[:n_test]], x[perm[n_test:]]
    model = DBM(64, [12, 8], k=1, num_chains=100, seed=ctx.seed)
    pre, joint = (25, 25) if ctx.quick else (400, 800)
    t0 = time.perf_counter()
    model.fit(x_train, method="pretrain", num_steps=pre, lr=1e-2, batch_size=100,
              seed=ctx.seed, tol=None, progress=False, data_info=data.info)
    model.fit(x_train, method="vsml", num_steps=joint, lr=2e-3, batch_size=100,
              seed=ctx.seed, tol=None, progress=False, data_info=data.info)
    seconds = time.perf_counter() - t0
    ll = model.log_likelihood(x_test)
    ais = model.log_normalizer(num_chains=50, num_betas=200 if ctx.quick else 3000,
                               seed=ctx.seed, method="ais")
    d = model.distribution()
    with torch.no_grad():
        mf = (d.mean_field_bound(x_test) - ll.info["log_z"]).mean()
    torch.manual_seed(ctx.seed)
    fig = save_image_grid(model.sample(20, num_steps=200), (8, 8), ctx.path("dbm_samples.png"),
                          title="DBM 64-12-8: samples (block Gibbs)")
    summary = (
        f"pretrain {pre} + Algorithm 20.1 as SVI {joint} steps; AIS log Z "
        f"{float(ais.log_z):.3f} ± {float(ais.stderr):.3f} vs exact {ll.info['log_z']:.3f}; "
        f"mean-field bound {float(mf):.3f} <= exact {ll.mean():.3f}"
    )
    return [
        {
            "model": "DBM(64-12-8)",
            "data": dict(data.info, split=f"held-out {n_test}"),
            "method": "layer-wise pretraining + variational SML (SVI)",
            "log_likelihood": ll.to_dict(),
            "fit_seconds": seconds,
            "figures": [fig],
            "summary": summary,
        }
    ]
