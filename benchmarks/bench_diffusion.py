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

``--binary digits`` / ``--binary mnist``: the binomial diffusion (``BinomialDiffusion``,
Sohl-Dickstein et al. 2015) on binary images -- scikit-learn's 8x8 digits thresholded at 0.5
(1,497 train / 300 test, fixed shuffle) or the fixed binarized MNIST (50,000 train,
``--test-images`` test images drawn at random with seed 0: the test split is sorted by
class) -- trained on the closed-form ELBO, then the held-out ELBO
(lower bound) and the IS estimate with the forward chain as proposal (stochastic lower bound),
each with standard errors over images, next to the factorial Bernoulli model of the pixel
marginals (exact); a picture of samples and of one reverse chain. CPU seconds
(``time.process_time``) and the load average are printed.
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


def binary(a):
    """The binomial diffusion on binary images (``--binary``)."""
    from pyrogen.datasets import load_binarized_mnist, load_digits
    from pyrogen.models.diffusion import BinomialDiffusion

    if a.binary == "digits":
        ds = load_digits(binarize="threshold")
        perm = torch.randperm(ds.x.shape[0], generator=torch.Generator().manual_seed(0))
        x, xt = ds.x[perm[:1497]].float(), ds.x[perm[1497:]].float()
        shape = (8, 8)
    else:
        data = os.environ.get("PYROGEN_DATA", "../shared/data/binarized_mnist.npz")
        x = load_binarized_mnist(data, "train", limit=2000 if a.quick else None).x.float()
        xt = load_binarized_mnist(data, "test").x.float()
        # a fixed random subset: the file's test split is sorted by class (first 980 are 0s)
        xt = xt[torch.randperm(xt.shape[0], generator=torch.Generator().manual_seed(0))
                [: a.test_images]]
        shape = (28, 28)
    if a.quick:
        a.steps, a.chunk, a.particles, a.timesteps, a.hidden = 20, 10, 20, 4, 32
        xt = xt[:50]
    marg = x.mean(0).clamp(1e-3, 1 - 1e-3)
    base = marg.tolist() if a.base_rate == "marginal" else float(a.base_rate)
    factorial = torch.distributions.Bernoulli(probs=marg.double()).log_prob(xt.double()).sum(1)
    print(f"binary {a.binary}: {x.shape[0]} train / {xt.shape[0]} test, D={x.shape[1]}; "
          f"factorial Bernoulli (pixel marginals, exact) test mean log p "
          f"{factorial.mean():.3f} ± {factorial.std() / math.sqrt(len(xt)):.3f}")
    ckpt = os.path.join(a.out, f"binomial_{a.binary}.pt") if a.out else None
    model = BinomialDiffusion(x.shape[1], num_timesteps=a.timesteps, base_rate=base,
                              hidden_dims=(a.hidden,) * a.layers, seed=a.seed)
    state = {"steps_done": 0, "cpu": 0.0}
    if ckpt and os.path.exists(ckpt):
        saved = torch.load(ckpt, weights_only=True)
        model.load_state_dict(saved["state_dict"])
        state = saved["state"]
        print(f"resumed from {ckpt}: {state['steps_done']} steps done")
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    while state["steps_done"] < a.steps:
        k = min(a.chunk, a.steps - state["steps_done"])
        c0 = time.process_time()
        model.fit(x, num_steps=k, lr=a.lr, batch_size=a.batch_size, tol=None, progress=False,
                  seed=a.seed + state["steps_done"])
        state["cpu"] += time.process_time() - c0
        state["steps_done"] += k
        e = model.elbo(xt[:200], num_particles=10)
        print(f"step {state['steps_done']:6d}  fit cpu {state['cpu']:8.1f}s  held-out ELBO "
              f"(first 200) {e.mean():.3f} ± {e.mean_stderr():.3f}  load "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        if ckpt:
            from pyrogen._io import atomic_torch_save

            atomic_torch_save({"config": model.config, "state_dict": model.state_dict(),
                               "state": state}, ckpt)
    c0 = time.process_time()
    e = model.elbo(xt, num_particles=100 if a.binary == "digits" else 20)
    c1 = time.process_time()
    ll = model.log_likelihood(xt, num_particles=a.particles, chunk=min(a.particles, 100),
                              batch_size=50)
    c2 = time.process_time()
    print(f"T={model.num_timesteps}, hidden {a.hidden}x{a.layers}, base rate {a.base_rate}, "
          f"{a.steps} closed-form ELBO steps (lr {a.lr}, batch {a.batch_size}), fit cpu "
          f"{state['cpu']:.1f}s")
    sq = math.sqrt(len(xt))
    print("(± Monte Carlo se of the mean ± se over test images)")
    print(f"test ELBO        {e.mean():.3f} ± {e.mean_stderr():.3f} ± "
          f"{e.values.std() / sq:.3f}  [elbo, lower bound; "
          f"{e.info['num_particles']} draws/image; cpu {c1 - c0:.1f}s]")
    print(f"test IS estimate {ll.mean():.3f} ± {ll.mean_stderr():.3f} ± "
          f"{ll.values.std() / sq:.3f}  [is_estimate, "
          f"stochastic lower bound; K={a.particles}, mean ESS {ll.info['mean_ess']:.1f}, "
          f"min ESS {ll.info['min_ess']:.1f}; cpu {c2 - c1:.1f}s; load "
          f"{os.getloadavg()[0]:.1f}]")
    d = (ll.values.double() - factorial)
    print(f"IS - factorial (paired over images) {d.mean():.3f} ± "
          f"{d.std() / math.sqrt(len(d)):.3f}")
    if a.out:
        from pyrogen.plotting import save_image_grid

        s = model.sample(40)
        chain = model.sample_chain(1)[:, 0]
        steps = torch.linspace(0, model.num_timesteps, 10).round().long()
        pic = torch.cat([s, chain[steps]])
        print("picture:", save_image_grid(
            pic, shape, os.path.join(a.out, f"binomial_{a.binary}.png"), ncols=10,
            title=f"binomial diffusion, {a.binary}: 40 samples; last row one reverse chain "
                  f"x_T -> x_0"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--binary", choices=["digits", "mnist"], default=None,
                   help="binomial diffusion on binary images instead of the ring")
    p.add_argument("--layers", type=int, default=2, help="--binary: hidden layers")
    p.add_argument("--base-rate", default="marginal",
                   help="--binary: 'marginal' (pixel marginals of the training data) or a float")
    p.add_argument("--test-images", type=int, default=1000, help="--binary mnist")
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
    if a.binary:
        return binary(a)
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
