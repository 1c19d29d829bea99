"""Tour step: models of conditional covariance (book §20.5.2) on a 2-D scale mixture.

``pyrogen.datasets.covariance_mixture``: two zero-mean Gaussians, elongated along orthogonal
directions, so that the structure is in the *covariance* (no mean unit can capture it). Three
models are trained by Pyro SVI with the PCD normalizer on 500 rows and scored on 500 held-out
rows:

* a spike and slab RBM (4 spikes; block Gibbs) -- log-likelihood *exact* (enumeration of the
  spike states, Gaussian integrals over x and the slabs);
* a mean and covariance RBM (2 mean, 4 covariance units; HMC on the free energy, the
  engine's kernel) -- *exact*, with its AIS estimate (HMC transitions) as a check;
* a mean-product of Student's t (2 mean, 4 covariance units; Gibbs with Gamma hidden units) --
  an *AIS estimate* with its standard error, checked against quadrature over the plane.

Baselines: the full-covariance Gaussian (maximum likelihood, exact) and the true mixture.
Writes a scatter plot of data and samples.
"""

from __future__ import annotations

import math
import time

import torch

from ..datasets import covariance_mixture
from ..models import MeanCovarianceRBM, MeanProductStudentT, SpikeSlabRBM
from ..plotting import save_scatter_plot


def _true_log_density(ds, x):
    u = torch.tensor(ds.info["directions"], dtype=x.dtype)
    lo, hi = ds.info["scale_across"] ** 2, ds.info["scale_along"] ** 2
    comps = []
    for k in range(u.shape[1]):
        cov = lo * torch.eye(x.shape[1], dtype=x.dtype) + (hi - lo) * torch.outer(u[:, k], u[:, k])
        comps.append(torch.distributions.MultivariateNormal(torch.zeros_like(u[:, k]), cov)
                     .log_prob(x))
    return torch.logsumexp(torch.stack(comps), 0) - math.log(len(comps))


def step(ctx) -> list[dict]:
    ds = covariance_mixture(1000, seed=ctx.seed, dtype=torch.float64)
    train, test = ds.x[:500], ds.x[500:]
    info = {**ds.info, "split": "500 train / 500 test rows"}
    num_steps = 60 if ctx.quick else 300
    betas = 150 if ctx.quick else 500
    gauss = torch.distributions.MultivariateNormal(train.mean(0), torch.cov(train.T, correction=0))
    g_ll = float(gauss.log_prob(test).mean())
    truth = float(_true_log_density(ds, test).mean())
    results, clouds = [], {"data": test}
    for name, model in (
        ("SpikeSlabRBM(2; 4 spikes)", SpikeSlabRBM(2, 4, num_chains=100, seed=ctx.seed)),
        ("MeanCovarianceRBM(2; 2 mean, 4 cov)",
         MeanCovarianceRBM(2, 2, 4, num_chains=100, seed=ctx.seed)),
        ("MeanProductStudentT(2; 2 mean, 4 cov)",
         MeanProductStudentT(2, 2, 4, num_chains=100, seed=ctx.seed, ais_num_chains=100,
                             ais_num_betas=betas)),
    ):
        model = model.double()
        t0 = time.perf_counter()
        model.fit(train, num_steps=num_steps, lr=0.05, batch_size=100, seed=ctx.seed,
                  progress=False, tol=None, data_info=info)
        seconds = time.perf_counter() - t0
        torch.manual_seed(ctx.seed)
        ll = model.log_likelihood(test, seed=ctx.seed)
        d = model.distribution()
        if ll.kind == "exact":
            est = model.log_normalizer(method="ais", num_chains=100, num_betas=betas,
                                       seed=ctx.seed)
            check = (f"AIS ({est.info['kernel']}) log Z {float(est.log_z):.3f} ± "
                     f"{float(est.stderr):.3f} vs exact {ll.info['log_z']:.3f}")
        else:
            quad = float(d.quadrature_log_z(bound=8.0, num_points=401))
            check = f"AIS log Z {ll.info['log_z']:.3f} ± {ll.shared_stderr:.3f} vs quadrature " \
                    f"{quad:.3f}"
        clouds[name.split("(")[0]] = model.sample(300, num_steps=50 if ctx.quick else 300)
        results.append({
            "model": name,
            "data": info,
            "method": f"svi-pcd ({model.config['sampler']})",
            "log_likelihood": ll.to_dict(),
            "fit_seconds": seconds,
            "figures": [],
            "summary": (f"{num_steps} PCD steps; {check}; full-covariance Gaussian {g_ll:.3f}, "
                        f"true mixture {truth:.3f} nats/ex (exact)"),
        })
    fig = save_scatter_plot(clouds, ctx.path("covariance_rbm_samples.png"),
                            title="scale mixture: held-out data (grey) and model samples")
    for r in results:
        r["figures"] = [fig]
    return results
