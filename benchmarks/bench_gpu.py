"""The headline benchmarks on one device (CUDA), figures to a JSON file: run by ``gpu.sh``.

Figures (all through pyrogen's public API, defaults on unless said):

* ``rbm_epoch_cd1_s`` / ``rbm_epoch_pcd1_s``: ``BernoulliRBM(784, 500).fit(x, method="cd" |
  "pcd", optimizer="sgd", lr=0.05, batch_size=100)`` on the fixed binarized MNIST training set
  (50,000 images, 500 steps = one epoch; the default log Z value refresh included);
* ``ais_784x500_1000chains_s``: ``log_normalizer(num_chains=1000)`` of that RBM (the default
  number of temperatures), with the estimate and its standard error;
* ``vae_epoch_s``: ``VAE(784, 50, (400,)).fit(x, num_epochs=1, batch_size=256, lr=1e-3)``;
* ``is_k5000_1000images_s``: ``vae.log_likelihood(x_test, num_particles=5000)`` on 1000 evenly
  spaced test images.

``--tiny`` shrinks everything (synthetic binary data, 784-50 RBM, 10 steps, 50 AIS chains x 100
temperatures, 512 images, IS k=50 on 20 images) so that the script itself is tested on CPU in
seconds; its figures mean nothing. Usage: ``python benchmarks/bench_gpu.py --device cuda --out
runs/gpu.json`` (``benchmarks/gpu.sh`` does this).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time

DATA = os.environ.get("PYROGEN_DATA") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "binarized_mnist.npz"
)


def _sync(device):
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(device, fn):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _data(tiny: bool, device):
    import torch

    if tiny:
        g = torch.Generator().manual_seed(0)
        return ((torch.rand(512, 784, generator=g) < 0.2).float().to(device),
                (torch.rand(20, 784, generator=g) < 0.2).float().to(device))
    from pyrogen.datasets import load_binarized_mnist

    train = load_binarized_mnist(DATA, split="train", dtype=torch.float32).x.to(device)
    test = load_binarized_mnist(DATA, split="test", dtype=torch.float32, limit=1000,
                               subset="spaced").x.to(device)  # the split is class-ordered
    return train, test


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="runs/gpu.json")
    p.add_argument("--tiny", action="store_true", help="tiny sizes (a CPU test of the script)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = p.parse_args(argv)

    import torch

    from pyrogen._io import atomic_write_text
    from pyrogen.models import VAE, BernoulliRBM

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    tiny = args.tiny
    x, x_test = _data(tiny, dev)
    hidden, steps = (50, 10) if tiny else (500, 500)
    figures: dict = {}

    for method in ("cd", "pcd"):
        rbm = BernoulliRBM(784, hidden, seed=0).to(dev)
        s, _ = _timed(dev, lambda rbm=rbm, method=method: rbm.fit(
            x, method=method, optimizer="sgd", lr=0.05, batch_size=100, num_steps=steps,
            tol=None, seed=0, progress=False))
        figures[f"rbm_epoch_{method}1_s"] = s * (500 / steps) if tiny else s
    chains, betas = (50, 100) if tiny else (1000, None)
    s, est = _timed(dev, lambda: rbm.log_normalizer(num_chains=chains, num_betas=betas, seed=0))
    figures["ais_784x500_1000chains_s"] = s
    figures["ais_log_z"] = float(est.log_z)
    figures["ais_log_z_stderr"] = float(est.stderr)

    vae = VAE(784, latent_dims=50, hidden_dims=(400,), activation="softplus").to(dev)
    s, _ = _timed(dev, lambda: vae.fit(x, num_epochs=1, batch_size=256, lr=1e-3,
                                       tol=None, progress=False))
    figures["vae_epoch_s"] = s
    k = 50 if tiny else 5000
    s, ll = _timed(dev, lambda: vae.log_likelihood(x_test, num_particles=k))
    figures["is_k5000_1000images_s"] = s
    figures["is_mean_log_likelihood"] = float(ll.values.mean())

    result = {
        "figures": figures,
        "tiny": tiny,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else
        platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
