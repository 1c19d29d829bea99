"""DBM 784-500-1000 on binarized MNIST: pyrogen against pytorch-probgraph (time per step, AIS time).

    pip install --no-deps --target /tmp/ppg pytorch-probgraph   # pure Python, last release 2020
    PYTHONPATH=/tmp/ppg PYROGEN_DATA=path/to/data python benchmarks/bench_dbm_peer.py

What is timed, one thread each, float32, the same 784-500-1000 sizes, batch 100, 100 persistent
chains, one Gibbs step per update, runs interleaved (pyrogen, peer, pyrogen, ...):

* a training step as each library runs it by default for PCD: pyrogen ``DBM.fit(method="vsml")``
  (Algorithm 20.1 as ``pyro.infer.SVI``: mean-field guide with ``mean_field_iters`` fixed-point
  iterations, 1 block-Gibbs step of the persistent chains, Adam) and pytorch-probgraph
  ``DeepBoltzmannMachineLS(learning="PCD").train_batch`` (its conditional mean-field sample with
  ``iterations`` updates for the positive phase, the same number of updates of its fantasy
  particles, Adam). The two do comparable work per step when pyrogen's ``mean_field_iters``
  equals the peer's ``iterations``; the script uses 10 for both.
* one AIS run of log Z: pyrogen ``AIS`` on the DBM path vs the peer's ``ais(steps, M)``, both
  100 chains x ``--betas`` temperatures, per temperature.

Times are CPU seconds of this process (``time.process_time``), both libraries single-threaded:
on a shared machine wall-clock times of interleaved runs were distorted several-fold by other
load, CPU time is not. Only times are compared: the peer's AIS returns log Z without a standard
error and its training objective is not Algorithm 20.1 step for step, so its numbers are not
scored against pyrogen's.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch


def _peer_dbm(sizes, lr, k, chains):
    from pytorch_probgraph.dbm import DeepBoltzmannMachineLS
    from pytorch_probgraph.interaction import InteractionLinear
    from pytorch_probgraph.rbm import RestrictedBoltzmannMachinePCD
    from pytorch_probgraph.unitlayer import BernoulliLayer

    layers = [BernoulliLayer(torch.zeros([1, n], requires_grad=True)) for n in sizes]
    rbms = [RestrictedBoltzmannMachinePCD(layers[i], layers[i + 1],
                                          InteractionLinear(sizes[i], sizes[i + 1]))
            for i in range(len(sizes) - 1)]
    params = [p for r in rbms for p in r.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10**9, gamma=1.0)
    return DeepBoltzmannMachineLS(rbms, opt, sched, ksteps=k, learning="PCD", nFantasy=chains)


def main(argv=None):
    from pyrogen.datasets import load_binarized_mnist
    from pyrogen.exceptions import ConvergenceWarning
    from pyrogen.models import DBM
    from pyrogen.normalizers import AIS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20, help="training steps timed per repeat")
    ap.add_argument("--betas", type=int, default=200, help="AIS temperatures timed per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10, help="mean-field iterations (both)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x = load_binarized_mnist(args.data, "train", limit=args.train).x.float()
    sizes = [784, 500, 1000]
    try:
        import pytorch_probgraph  # noqa: F401
        have_peer = True
    except ImportError:
        have_peer = False
        print("pytorch-probgraph not importable: pyrogen only (see the docstring to install it)")
    ours_step, peer_step, ours_ais, peer_ais = [], [], [], []
    for r in range(-1, args.repeats):  # r = -1: warm-up, untimed
        steps = 2 if r < 0 else args.steps
        m = DBM(784, sizes[1:], k=1, num_chains=100, mean_field_iters=args.iters, seed=max(r, 0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.process_time()
            m.fit(x, method="vsml", num_steps=steps, batch_size=100, lr=1e-3, tol=None,
                  progress=False, seed=max(r, 0))
            t_ours = (time.process_time() - t0) / steps
        d = m.distribution(AIS(num_chains=100, num_betas=2 if r < 0 else args.betas))
        t0 = time.process_time()
        d.log_normalizer()  # one AIS run
        t_ours_ais = (time.process_time() - t0) / max(args.betas, 1)
        if have_peer:
            torch.manual_seed(max(r, 0))
            peer = _peer_dbm(sizes, 1e-3, args.iters, 100)
            nb = x.shape[0] // 100  # the same epochs of 100-row batches pyrogen's fit sees
            batches = [x[(i % nb) * 100:(i % nb + 1) * 100] for i in range(steps)]
            t0 = time.process_time()
            for b in batches:
                peer.train_batch(b, iterations=args.iters)
            t_peer = (time.process_time() - t0) / steps
            t0 = time.process_time()
            try:
                with torch.no_grad():
                    peer.ais(2 if r < 0 else args.betas, 100)
                t_peer_ais = (time.process_time() - t0) / max(args.betas, 1)
            except RuntimeError as e:  # seen once: its sampler got probabilities outside [0, 1]
                print(f"pytorch-probgraph AIS failed: {str(e)[:120]}")
                t_peer_ais = float("nan")
        if r < 0:
            continue
        ours_step.append(t_ours)
        ours_ais.append(t_ours_ais)
        line = (f"repeat {r}: pyrogen step {1000 * t_ours:.0f} ms, "
                f"AIS {1000 * t_ours_ais:.1f} ms/temp")
        if have_peer:
            peer_step.append(t_peer)
            peer_ais.append(t_peer_ais)
            line += (f"; pytorch-probgraph step {1000 * t_peer:.0f} ms, "
                     f"AIS {1000 * t_peer_ais:.1f} ms/temp")
        print(line, flush=True)
    med = statistics.median
    print(f"median step: pyrogen {1000 * med(ours_step):.0f} ms"
          + (f", pytorch-probgraph {1000 * med(peer_step):.0f} ms, ratio "
             f"{med(ours_step) / med(peer_step):.2f}x" if have_peer else ""))
    print(f"median AIS per temperature (100 chains): pyrogen {1000 * med(ours_ais):.1f} ms"
          + (f", pytorch-probgraph {1000 * med(peer_ais):.1f} ms, ratio "
             f"{med(ours_ais) / med(peer_ais):.2f}x" if have_peer else ""))


if __name__ == "__main__":
    main()
