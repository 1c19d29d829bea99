"""Deep belief net on the fixed binarized MNIST: greedy layer-wise RBM pretraining, up-down
fine-tuning (wake-sleep with an RBM prior), and the Salakhutdinov & Murray (2008) estimate
(variational bound over the lower layers + AIS log Z of the top RBM), labelled.

    python examples/dbn_mnist.py --data ../shared/data/binarized_mnist.npz   # small budget
    python examples/dbn_mnist.py --quick   # CI smoke run (8x8 digits, tiny DBN, seconds)

The quick run uses a first hidden layer small enough for the exact log-likelihood, so the bound
is printed next to the exact value.

With ``--run-dir`` the greedy stack is trained by :func:`pyrogen.models.dbn.pretrain_rbm_stack`
directly (the same call ``DBN.fit(method="greedy")`` makes) so that every RBM is kept, and the
learning curve *per layer* is written (``curve.json``/``curve.png``): each RBM's training loss
per step (free energy + a stale AIS log Z: a monitoring number) and, after layer l, the test
log-likelihood of the l-layer model (l = 1: the bottom RBM, AIS estimate; l >= 2: the DBN of the
first l RBMs, Salakhutdinov & Murray bound with AIS log Z of its top RBM), i.e. whether adding a
layer raised the bound (Hinton et al. 2006)::

    nice -n 10 python examples/dbn_mnist.py --run-dir runs/dbn/dbn_500_500_2000 --train 50000 \\
        --test 10000 --rbm-steps 5000 --up-down-steps 0 --ais-betas 15000 --curve-betas 3000
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import pyro
import torch

from pyrogen import ConvergenceWarning
from pyrogen.datasets import load_binarized_mnist, load_digits
from pyrogen.models import DBN


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--data", default=None, help="binarized_mnist.npz (default: the shared copy)")
    ap.add_argument("--sizes", default="784,500,500,2000")
    ap.add_argument("--train", type=int, default=10000, help="training images used")
    ap.add_argument("--test", type=int, default=1000, help="test images evaluated")
    ap.add_argument("--rbm-steps", type=int, default=2000, help="CD-1 steps per RBM")
    ap.add_argument("--up-down-steps", type=int, default=1000)
    ap.add_argument("--ais-betas", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="dbn_samples.png", help="PNG of model samples ('' for none)")
    ap.add_argument("--run-dir", default=None, help="per-layer curve, model and numbers here")
    ap.add_argument("--curve-betas", type=int, default=3000,
                    help="AIS temperatures of the per-layer points below the full DBN")
    ap.add_argument("--importance-samples", type=int, default=1000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    pyro.set_rng_seed(args.seed)
    if args.run_dir and not args.quick:
        return run_layers(args)
    if args.quick:
        d = load_digits(binarize="threshold", seed=args.seed)
        x = d.x.float()
        x_train, x_test = x[:1500], x[1500:1700]
        sizes, rbm_steps, ud_steps, betas = [64, 12, 8, 16], 40, 40, 200
    else:
        d = load_binarized_mnist(args.data, "train", limit=args.train)
        x_train = d.x.float()
        x_test = load_binarized_mnist(args.data, "test", limit=args.test,
                                      subset="spaced").x.float()  # test split: class-ordered
        sizes = [int(s) for s in args.sizes.split(",")]
        rbm_steps, ud_steps, betas = args.rbm_steps, args.up_down_steps, args.ais_betas
    dbn = DBN(sizes, training="cd", ais_num_betas=betas, ais_num_chains=100, seed=args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fixed budgets: reported below
        g = dbn.fit(x_train, method="greedy", num_steps=rbm_steps, lr=1e-3, batch_size=100,
                    tol=None, progress=not args.quick, seed=args.seed)
        print(f"greedy: {len(sizes) - 1} RBMs x {rbm_steps} CD-1 steps, "
              f"{g.seconds:.1f}s, per layer {[round(s, 1) for s in g.info['layer_seconds']]}")
        ll0 = dbn.log_likelihood(x_test, method="bound", num_samples=10, seed=args.seed)
        print(f"after greedy:   {ll0}")
        if ud_steps > 0:  # 0: the greedy stack alone (the paper's figure)
            u = dbn.fit(x_train, method="up_down", num_steps=ud_steps, lr=1e-4,
                        batch_size=100, tol=None, progress=not args.quick, seed=args.seed,
                        dream_steps=10)
            print(f"up-down: {ud_steps} wake-sleep steps, {u.seconds:.1f}s")
    ll = dbn.log_likelihood(x_test, method="bound", num_samples=10, seed=args.seed)
    print(f"after up-down:  {ll}  [{ll.description}]")
    if dbn.exact:
        print(f"exact:          {dbn.log_likelihood(x_test, method='exact')}")
    imp = dbn.log_likelihood(x_test, method="importance", num_samples=100 if args.quick else 1000,
                             seed=args.seed)
    print(f"importance:     {imp}")
    if args.out:
        from pyrogen.plotting import save_image_grid

        side = int(round(sizes[0] ** 0.5))
        save_image_grid(dbn.sample(30), (side, side), args.out, ncols=10,
                        title="DBN samples (Gibbs in the top RBM, then down the sigmoid layers)")
        print(f"samples written to {args.out}")


def _plot(curve, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for lay in curve["layers"]:
        tr = lay["train_loss_every_50"]
        ax[0].plot([50 * (i + 1) for i in range(len(tr))], tr, label=f"RBM {lay['layer']}")
    ax[0].set(xlabel="CD-1 step", ylabel="loss / example (free energy + stale log Z)",
              title="training loss per RBM (mean of 50 steps)")
    ax[0].legend()
    pts = [lay for lay in curve["layers"] if "test_ll" in lay]
    ax[1].errorbar([p["layer"] for p in pts], [p["test_ll"] for p in pts],
                   yerr=[p["test_ll_se"] for p in pts], fmt="o-")
    ax[1].set(xlabel="layers in the model", ylabel="test nats / image",
              title="after layer l: RBM (AIS) / DBN bound (AIS log Z)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _summary(ll):
    se = float(ll.info.get("log_z_stderr", 0.0))
    data_se = float(ll.values.std() / len(ll) ** 0.5)
    return {"mean": float(ll.values.mean()), "se_data": data_se, "log_z_se": se,
            "ess": ll.info.get("ess"), "kind": ll.kind, "log_z": ll.info.get("log_z")}


def run_layers(args):
    """The greedy stack with a per-layer learning curve (module docstring)."""
    from pyrogen.models import DBN as _DBN
    from pyrogen.models.dbn import pretrain_rbm_stack

    os.makedirs(args.run_dir, exist_ok=True)
    x_train = load_binarized_mnist(args.data, "train", limit=args.train).x.float()
    x_test = load_binarized_mnist(args.data, "test", limit=args.test,
                                  subset="spaced").x.float()  # the test split is class-ordered
    sizes = [int(s) for s in args.sizes.split(",")]
    c0, w0 = time.process_time(), time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = pretrain_rbm_stack(x_train, sizes[1:], training="cd", seed=args.seed,
                                 progress=False, num_steps=args.rbm_steps, lr=1e-3,
                                 batch_size=100, tol=None)
    curve = {"sizes": sizes, "rbm_steps": args.rbm_steps, "n_train": x_train.shape[0],
             "n_test": x_test.shape[0], "greedy_cpu_s": time.process_time() - c0,
             "greedy_wall_s": time.perf_counter() - w0, "load": os.getloadavg()[0],
             "layers": []}
    print(f"greedy: {len(res.layers)} RBMs x {args.rbm_steps} CD-1 steps, "
          f"cpu {curve['greedy_cpu_s']:.0f}s, per layer {[round(s) for s in res.seconds]}s wall",
          flush=True)
    for l, h in enumerate(res.histories, start=1):
        tr = [float(sum(h.losses[i:i + 50]) / len(h.losses[i:i + 50]))
              for i in range(0, len(h.losses) - 49, 50)]
        curve["layers"].append({"layer": l, "wall_s": res.seconds[l - 1],
                                "train_loss_every_50": tr})
    dbn = _DBN(sizes, training="cd", ais_num_betas=args.ais_betas, ais_num_chains=100,
               seed=args.seed)
    dbn.load_stack(res.layers)
    dbn.save(os.path.join(args.run_dir, "dbn.pt"))
    # after layer l: the l-layer model's test number
    for l in range(1, len(res.layers) + 1):
        t0 = time.perf_counter()
        betas = args.ais_betas if l == len(res.layers) else args.curve_betas
        if l == 1:
            ll = res.layers[0].log_likelihood(x_test, num_chains=100, num_betas=betas,
                                              seed=args.seed)
        elif l == len(res.layers):
            ll = dbn.log_likelihood(x_test, method="bound", num_samples=10, seed=args.seed)
        else:
            rb = res.layers[:l]
            part = _DBN.from_parameters(
                [r.weight.detach() for r in rb],
                [rb[0].visible_bias.detach(), *[r.visible_bias.detach() for r in rb[1:]],
                 rb[-1].hidden_bias.detach()],
                [r.hidden_bias.detach() for r in rb[:-1]], ais_num_betas=betas,
                ais_num_chains=100, seed=args.seed)
            with torch.no_grad():
                part.top_base_rate_logits.copy_(rb[-1].base_rate_logits)
            ll = part.log_likelihood(x_test, method="bound", num_samples=10, seed=args.seed)
        sm = _summary(ll)
        curve["layers"][l - 1].update(test_ll=sm["mean"], test_ll_se=(
            sm["se_data"] ** 2 + sm["log_z_se"] ** 2) ** 0.5, test=sm, ais_betas=betas,
            eval_wall_s=time.perf_counter() - t0, eval_load=os.getloadavg()[0])
        print(f"after layer {l}: {ll} [{ll.kind}] ({betas} temperatures, ESS {sm['ess']}, "
              f"{time.perf_counter() - t0:.0f}s)", flush=True)
        torch.save(ll.values.detach().cpu(), os.path.join(args.run_dir, f"test_values_l{l}.pt"))
        with open(os.path.join(args.run_dir, "curve.json"), "w") as f:
            json.dump(curve, f, indent=1, default=str)
        _plot(curve, os.path.join(args.run_dir, "curve.png"))
    if args.importance_samples > 0:
        t0 = time.perf_counter()
        imp = dbn.log_likelihood(x_test, method="importance", num_samples=args.importance_samples,
                                 seed=args.seed)
        curve["importance"] = dict(_summary(imp), k=args.importance_samples,
                                   wall_s=time.perf_counter() - t0)
        print(f"importance (k={args.importance_samples}): {imp}", flush=True)
    with open(os.path.join(args.run_dir, "curve.json"), "w") as f:
        json.dump(curve, f, indent=1, default=str)
    if args.out:
        from pyrogen.plotting import save_image_grid

        save_image_grid(dbn.sample(30), (28, 28), os.path.join(args.run_dir, "samples.png"),
                        ncols=10, title="DBN samples")
    return curve


if __name__ == "__main__":
    main()
