"""Diffusion inversion (issue 17) on a 2-D ring of Gaussians: bounds against the exact density.

No peer library is timed here (Pyro has no diffusion model); the script measures what a user
runs -- ``DiffusionModel.fit`` with its defaults (closed-form ELBO) -- and puts the held-out
numbers next to an exact answer:

* ELBO (kind ``elbo``, lower bound) and the importance-sampled estimate with the forward chain
  as proposal (kind ``is_estimate``, stochastic lower bound), both with standard errors;
* the exact mean :math:`\\log p_{data}` of the held-out points (no model's expected
  log-likelihood can exceed it: Gibbs' inequality), and the same for :math:`\\mathcal N(0, I)`
  (the untrained model, exactly);
* sample quality, not a likelihood: mode coverage and high-quality fraction
  (:func:`pyrogen.metrics.mode_coverage`) and the Fréchet distance in the plane, with the
  data's own value at the same sample size as the floor.

Training runs in chunks with a checkpoint after each (``--out``), so a long run can be
followed and resumed. ``--quick`` runs in seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyrogen._tour.diffusion import ring_log_prob  # noqa: E402
from pyrogen.metrics import frechet_distance, mode_coverage, ring_of_gaussians  # noqa: E402
from pyrogen.models import DiffusionModel, load  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--chunk", type=int, default=250, help="SVI steps between reports")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--loss", default="closed_form", choices=["closed_form", "simple"],
                   help="training loss of the first --steps steps")
    p.add_argument("--elbo-steps", type=int, default=0,
                   help="then this many steps on the closed-form ELBO (fine-tuning the "
                        "variances and the mean for the bound)")
    p.add_argument("--elbo-lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--particles", type=int, default=1000, help="IS particles per point")
    p.add_argument("--std", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for checkpoints and the picture")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.quick:
        a.steps, a.chunk, a.particles, a.timesteps, a.hidden = 20, 10, 20, 5, 16
    n_train, n_test = (300, 100) if a.quick else (2000, 500)
    x, centers, std = ring_of_gaussians(n_train, 8, 1.0, a.std, seed=a.seed)
    xt, _, _ = ring_of_gaussians(n_test, 8, 1.0, a.std, seed=a.seed + 1)
    x, xt = x.float(), xt.float()
    exact = ring_log_prob(xt, centers, std)
    std_normal = torch.distributions.Normal(0.0, 1.0).log_prob(xt.double()).sum(1)
    print(f"ring of 8 Gaussians (radius 1, std {a.std}); {n_train} train / {n_test} test; "
          f"exact mean log p_data {exact.mean():.4f} (se over points "
          f"{exact.std() / math.sqrt(n_test):.4f}); N(0, I): {std_normal.mean():.4f}")
    ckpt = os.path.join(a.out, "diffusion_ring.pt") if a.out else None
    if ckpt and os.path.exists(ckpt):
        model = load(ckpt)
        print(f"resumed from {ckpt}: {model.data_info.get('steps_done', 0)} steps done")
    else:
        model = DiffusionModel(2, num_timesteps=a.timesteps, hidden_dims=(a.hidden, a.hidden),
                               seed=a.seed)
        model.data_info = {"steps_done": 0, "fit_seconds": 0.0}
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    total = a.steps + a.elbo_steps
    while model.data_info["steps_done"] < total:
        done = model.data_info["steps_done"]
        first = done < a.steps
        k = min(a.chunk, (a.steps if first else total) - done)
        t0 = time.perf_counter()
        model.fit(x, num_steps=k, lr=a.lr if first else a.elbo_lr, batch_size=a.batch_size,
                  tol=None, progress=False, seed=a.seed + done,
                  loss=a.loss if first else "closed_form")
        info = dict(model.data_info)
        info["fit_seconds"] += time.perf_counter() - t0
        info["steps_done"] += k
        model.data_info = info
        e = model.elbo(xt, num_particles=20)
        phase = a.loss if first else "closed_form"
        print(f"step {info['steps_done']:6d} ({phase})  fit {info['fit_seconds']:8.1f}s  "
              f"held-out ELBO {e.mean():.4f} ± {e.mean_stderr():.4f}", flush=True)
        if ckpt:
            model.save(ckpt)
    t0 = time.perf_counter()
    e = model.elbo(xt, num_particles=100)
    ll = model.log_likelihood(xt, num_particles=a.particles, chunk=min(a.particles, 500))
    eval_s = time.perf_counter() - t0
    s = model.sample(2000)
    cov = mode_coverage(s, centers, std)
    fd = frechet_distance(s[:n_test], xt)
    x_ref, _, _ = ring_of_gaussians(n_test, 8, 1.0, a.std, seed=a.seed + 2)
    fd_floor = frechet_distance(x_ref, xt)
    print(f"T={model.num_timesteps}, hidden {a.hidden}x2, {a.steps} steps loss={a.loss} (lr "
          f"{a.lr}) + {a.elbo_steps} closed-form ELBO steps (lr {a.elbo_lr}), batch "
          f"{a.batch_size}, in {model.data_info['fit_seconds']:.1f}s")
    print(f"held-out ELBO        {e.mean():.4f} ± {e.mean_stderr():.4f}  [elbo, lower bound]")
    print(f"held-out IS estimate {ll.mean():.4f} ± {ll.mean_stderr():.4f}  [is_estimate, "
          f"stochastic lower bound; K={a.particles}, mean ESS {ll.info['mean_ess']:.1f}, "
          f"min ESS {ll.info['min_ess']:.1f}; {eval_s:.1f}s with the ELBO]")
    print(f"exact mean log p_data {exact.mean():.4f}  (upper limit); gap of the IS estimate "
          f"{exact.mean() - ll.mean():.4f} nats")
    print(f"samples: {cov.modes_covered}/8 modes, {100 * cov.high_quality:.1f}% within 3 std of "
          f"a mode, KL(mode histogram || uniform) {cov.kl_to_uniform:.4f}; Fréchet distance "
          f"{fd:.4f} (data vs data at n={n_test}: {fd_floor:.4f})")
    if a.out:
        from pyrogen.plotting import _plt, save_figure

        plt = _plt()
        fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
        for ax, pts, title in ((axes[0], x, "training data"), (axes[1], s, "samples")):
            q = pts.double().numpy()
            ax.scatter(q[:, 0], q[:, 1], s=1, alpha=0.4)
            ax.set_xlim(-1.6, 1.6)
            ax.set_ylim(-1.6, 1.6)
            ax.set_aspect("equal")
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        print("picture:", save_figure(fig, os.path.join(a.out, "diffusion_ring.png")))
        plt.close(fig)


if __name__ == "__main__":
    main()
