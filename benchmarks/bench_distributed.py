"""Data-parallel training throughput: 2 processes vs 1 (torchrun, gloo, one thread each).

Candidates (what a user runs, defaults on; the global batch is the same for 1 and 2 processes,
so the optimizer takes the same number of steps on the same number of images):

* ``rbm``: ``BernoulliRBM(784, 500).fit(x, method="cd", optimizer="sgd", lr=0.05,
  batch_size=100, num_steps=--steps)`` on the fixed binarized MNIST (default log Z value
  refresh included);
* ``vae``: ``VAE(784, 50, (400,)).fit(x, num_epochs=1, batch_size=256)`` on the first
  ``--steps * 256`` training images.

``--compare`` launches ``python -m torch.distributed.run --nproc_per_node=P`` for P = 1 and 2,
interleaved over ``--repeats`` rounds, and prints the median wall seconds of the ``fit`` call
(rank 0, after a barrier; process start and imports excluded), images per second and the
2-vs-1 speed-up. Without ``--compare`` it is the worker torchrun runs.

Usage: ``PYTHONPATH=. python benchmarks/bench_distributed.py --compare --model rbm``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DATA = os.environ.get("PYROGEN_DATA") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "binarized_mnist.npz"
)


def worker(args) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.distributed import barrier, is_main_process, world_size
    from pyrogen.models import VAE, BernoulliRBM

    if args.model == "rbm":
        x = load_binarized_mnist(DATA, split="train", dtype=torch.float32,
                                 limit=max(args.steps * 100, 1000)).x
        m = BernoulliRBM(784, 500, seed=0)

        def fit():
            m.fit(x, method="cd", optimizer="sgd", lr=0.05, batch_size=100,
                  num_steps=args.steps, tol=None, seed=0, progress=False)
        images = args.steps * 100
    else:
        x = load_binarized_mnist(DATA, split="train", dtype=torch.float32,
                                 limit=args.steps * 256).x
        m = VAE(784, latent_dims=50, hidden_dims=(400,), activation="softplus")

        def fit():
            m.fit(x, num_epochs=1, batch_size=256, lr=1e-3, tol=None, seed=0,
                  progress=False)
        images = args.steps * 256
    barrier()
    t0, c0 = time.perf_counter(), time.thread_time()
    fit()
    cpu = time.thread_time() - c0
    barrier()
    wall = time.perf_counter() - t0
    if is_main_process():
        with open(args.out, "w") as f:
            json.dump({"wall": wall, "cpu_rank0": cpu, "images": images,
                       "world_size": world_size()}, f)
    if dist.is_initialized():
        dist.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compare(args) -> None:
    res: dict[int, list[dict]] = {1: [], 2: []}
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats + 1):
            for nproc in ((1, 2) if r % 2 == 0 else (2, 1)):
                out = os.path.join(tmp, f"{nproc}.json")
                cmd = [sys.executable, "-m", "torch.distributed.run",
                       f"--nproc_per_node={nproc}", f"--master_port={_port()}",
                       os.path.abspath(__file__), "--model", args.model, "--steps",
                       str(args.steps), "--out", out]
                subprocess.run(cmd, check=True, env=env, capture_output=True)
                with open(out) as f:
                    if r:  # round 0 is a warm-up
                        res[nproc].append(json.load(f))
    print(f"model={args.model} steps={args.steps} repeats={args.repeats} (1 warm-up round)")
    print("| processes | wall s (median) | images/s | rank-0 thread CPU s | speed-up |")
    print("|---|---|---|---|---|")
    base = statistics.median(x["wall"] for x in res[1])
    for p in (1, 2):
        wall = statistics.median(x["wall"] for x in res[p])
        cpu = statistics.median(x["cpu_rank0"] for x in res[p])
        print(f"| {p} | {wall:.3f} | {res[p][0]['images'] / wall:.0f} | {cpu:.3f} | "
              f"{base / wall:.2f}x |")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("rbm", "vae"), default="rbm")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare", action="store_true")
    p.add_argument("--out", default=os.devnull)
    args = p.parse_args(argv)
    compare(args) if args.compare else worker(args)


if __name__ == "__main__":
    main()
