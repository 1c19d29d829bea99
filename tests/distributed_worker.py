"""Run by tests/test_distributed.py under ``torchrun --nproc_per_node=N`` (gloo, CPU), and in
one plain process (no process group) for the reference: the same calls, results to ``out``.

Usage: ``python -m torch.distributed.run --nproc_per_node=2 tests/distributed_worker.py OUT``
"""

from __future__ import annotations

import os
import sys

import torch

torch.set_num_threads(1)


def run(out: str) -> None:
    import pyro.distributions as pdist
    import torch.distributed as dist

    import pyrogen.distributed as pd
    from pyrogen.infer import ais, importance_log_likelihood
    from pyrogen.infer.annealing import RBMBaseRatePath
    from pyrogen.models import FactorAnalysis

    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank, world = pd.world()
    res = {"world_size": world}

    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 5, generator=g, dtype=torch.float64)
    x = x @ torch.randn(5, 5, generator=g, dtype=torch.float64)

    # (1) a small full-batch fit: deterministic loss (collapsed FA), per-step comparison
    fa = FactorAnalysis(5, 2, seed=0).double()
    losses = []
    fa.fit(x, method="svi", num_steps=15, lr=0.05, tol=None, seed=0, progress=False,
           callback=lambda i, v: losses.append(v))
    res["fit_losses"] = torch.tensor(losses)
    res["fit_params"] = {k: v.detach().clone() for k, v in fa.state_dict().items()}
    saved = os.path.join(os.path.dirname(os.path.abspath(out)), f"fa_{world}.pt")
    fa.save(saved)  # every rank calls it; rank 0 writes, all wait at a barrier
    res["saved_exists_on_every_rank"] = all(pd.gather_in_order(os.path.exists(saved)))
    # (1b) minibatches: global batch 12 of 37 rows (3 epochs), per-rank 6
    fa2 = FactorAnalysis(5, 2, seed=0).double()
    fa2.fit(x, method="svi", num_steps=9, lr=0.05, batch_size=12, tol=None, seed=0,
            progress=False)
    res["mb_params"] = {k: v.detach().clone() for k, v in fa2.state_dict().items()}
    flat = torch.cat([v.reshape(-1) for v in fa2.state_dict().values()])
    res["mb_params_all_ranks"] = torch.stack(pd.gather_in_order(flat))

    # (1c) a plate that subsamples by itself: disjoint indices on the ranks
    import pyro

    with pd.data_parallel(torch.nn.Linear(1, 1)):
        with pyro.plate("p", 37, subsample_size=5) as idx:
            pass
    res["plate_idx"] = torch.stack(pd.gather_in_order(idx))

    # (2) the sampler: every row exactly once per epoch over the ranks
    gen = torch.Generator().manual_seed(3)
    batches = pd.epoch_batches(37, 12, world_size=world, generator=gen)
    mine = torch.cat([pd.shard(b, rank, world) for b in batches])
    res["rows"] = torch.cat(pd.gather_in_order(mine))

    # (3) distributed AIS: chain blocks over ranks
    gw = torch.Generator().manual_seed(1)
    w = 0.3 * torch.randn(12, 6, generator=gw)
    bv, bh = 0.1 * torch.randn(12, generator=gw), 0.1 * torch.randn(6, generator=gw)
    path = RBMBaseRatePath(w, bv, bh, torch.zeros(12))
    r = ais(path, 50, 200, seed=7, chain_block_size=16, warn=False)
    res["ais_log_weights"] = r.log_weights
    res["ais_log_z"] = r.log_z
    # (3b) distributed RAISE: chunks of data points over ranks
    from pyrogen.infer.annealing import reverse_ais

    v = (torch.rand(9, 12, generator=gw) < 0.5).float()
    rr = reverse_ais(path, v, 20, 5, chunk_size=2, seed=5)
    res["raise_log_weights"] = rr.log_weights

    # (4) distributed importance sampling: batches of images over ranks, keyed RNG
    def model(xb):
        with pyro.plate("data", xb.shape[0]):
            z = pyro.sample("z", pdist.Normal(0.0, 1.0).expand([2]).to_event(1))
            pyro.sample("x", pdist.Normal(z.sum(-1, keepdim=True).expand(*z.shape[:-1], 5), 1.0)
                        .to_event(1), obs=xb)

    def guide(xb):
        with pyro.plate("data", xb.shape[0]):
            pyro.sample("z", pdist.Normal(0.1 * xb[:, :2], 1.0).to_event(1))

    ll = importance_log_likelihood(model, guide, x.float(), num_particles=30, batch_size=8,
                                   chunk=7, seed=11)
    res["is_values"] = ll.values
    res["is_stderr"] = ll.stderr

    if rank == 0:
        torch.save(res, out)
    if dist.is_initialized():
        # every rank reaches the teardown together: a rank that destroys its gloo group while
        # its peer is still writing can abort at exit ("terminate called without an active
        # exception", seen once in CI)
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    run(sys.argv[1])
