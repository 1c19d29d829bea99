"""pyrogen.distributed: torchrun equivalence, the disjoint sampler, streamed data, bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyro
import pyro.distributions as pdist
import pytest
import torch

import pyrogen.distributed as pd
from pyrogen.infer import importance_log_likelihood
from pyrogen.models import BernoulliRBM, FactorAnalysis
from pyrogen.models.base import GenerativeModel

WORKER = Path(__file__).with_name("distributed_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ two processes (torchrun)
def test_torchrun_two_processes_equal_one(tmp_path):
    """A 2-process gloo run: full-batch fit per step within 1e-6 of one process, the sampler
    covers every row once, AIS and IS evaluation bitwise equal, ranks' parameters equal."""
    out = tmp_path / "two.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1", str(WORKER), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    two = torch.load(out, weights_only=False)

    sys.path.insert(0, str(WORKER.parent))
    try:
        from distributed_worker import run
    finally:
        sys.path.remove(str(WORKER.parent))
    threads = torch.get_num_threads()
    try:
        run(str(tmp_path / "one.pt"))
    finally:
        torch.set_num_threads(threads)
    one = torch.load(tmp_path / "one.pt", weights_only=False)

    assert one["world_size"] == 1 and two["world_size"] == 2
    torch.testing.assert_close(two["fit_losses"], one["fit_losses"], atol=1e-6, rtol=0)
    for k, v in one["fit_params"].items():
        torch.testing.assert_close(two["fit_params"][k], v, atol=1e-6, rtol=0)
    assert two["saved_exists_on_every_rank"]
    saved = FactorAnalysis.load(tmp_path / "fa_2.pt")
    for k, v in two["fit_params"].items():
        assert torch.equal(saved.state_dict()[k], v)
    ranks = two["mb_params_all_ranks"]
    assert torch.equal(ranks[0], ranks[1])  # gradients synchronized: same parameters
    assert torch.isfinite(ranks).all()
    assert sorted(two["rows"].tolist()) == list(range(37))
    idx = two["plate_idx"]
    assert idx.shape == (2, 5) and len(set(idx.reshape(-1).tolist())) == 10
    assert torch.equal(two["ais_log_weights"], one["ais_log_weights"])
    assert torch.equal(two["ais_log_z"], one["ais_log_z"])
    assert torch.equal(two["raise_log_weights"], one["raise_log_weights"])
    assert torch.equal(two["is_values"], one["is_values"])
    assert torch.equal(two["is_stderr"], one["is_stderr"])


# ------------------------------------------------------------------ the sampler
@pytest.mark.parametrize("n,batch_size,world", [(37, 12, 2), (37, None, 3), (10, 4, 4),
                                                (25, 6, 2), (7, 7, 1), (8, 2, 2)])
def test_sampler_covers_every_row_once(n, batch_size, world):
    g = torch.Generator().manual_seed(0)
    for _ in range(3):  # epochs
        batches = pd.epoch_batches(n, batch_size, world_size=world, generator=g)
        parts = [pd.shard(b, r, world) for b in batches for r in range(world)]
        rows = torch.cat(parts).tolist()
        assert sorted(rows) == list(range(n))  # every row exactly once, no padding
        assert all(p.numel() >= 1 for p in parts)  # every rank gets rows of every batch
        for b in batches:
            sizes = [pd.shard(b, r, world).numel() for r in range(world)]
            assert max(sizes) - min(sizes) <= 1


def test_sampler_bad_input():
    with pytest.raises(ValueError, match="world size must be at most the number of data rows"):
        pd.epoch_batches(3, None, world_size=4)
    with pytest.raises(ValueError, match="multiple of the world size 2.*batch_size=5"):
        pd.epoch_batches(20, 5, world_size=2)


def test_block_range_splits_contiguously(monkeypatch):
    got = []
    for r in range(3):
        monkeypatch.setattr(pd, "world", lambda group=None, r=r: (r, 3))
        got.append(list(pd.block_range(7)))
    assert got == [[0, 1, 2], [3, 4], [5, 6]]


def test_sharded_subsample_is_disjoint_across_ranks():
    idx = []
    for r in range(2):
        g = torch.Generator().manual_seed(5)
        with pd.ShardedSubsample(g, r, 2):
            with pyro.plate("p", 20, subsample_size=4) as i:
                idx.append(i.tolist())
    assert len(set(idx[0]) | set(idx[1])) == 8
    with pytest.raises(ValueError, match="subsample_size <= 10"):
        with pd.ShardedSubsample(torch.Generator(), 0, 2):
            with pyro.plate("p", 20, subsample_size=11):
                pass


# ------------------------------------------------------------------ streamed data
class _Gauss(GenerativeModel):
    """A model on the shared fit: x ~ Normal(loc, 1), loc a parameter."""

    def __init__(self, n_features=3):
        super().__init__(n_features=n_features)
        self.loc = torch.nn.Parameter(torch.zeros(n_features))

    def model(self, x, num_data=None):
        with self._data_plate(x, num_data):
            pyro.sample("x", pdist.Normal(self.loc, 1.0).to_event(1), obs=x)

    def guide(self, x, num_data=None):
        pass


class _Rows(torch.utils.data.Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], 0  # (x, y) items: the row is the first element


@pytest.fixture
def binary_npy(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(48, 10, generator=g) < 0.3).float()
    path = tmp_path / "x.npy"
    np.save(path, x.numpy().astype(np.uint8))
    return x, np.load(path, mmap_mode="r")


def _fit_state(model, x, **kw):
    model.fit(x, num_steps=6, tol=None, seed=1, progress=False, lr=0.05, **kw)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_memmap_fit_equals_tensor_fit_rbm(binary_npy):
    x, mm = binary_npy
    a = _fit_state(BernoulliRBM(10, 4, seed=0), x, batch_size=16)
    b = _fit_state(BernoulliRBM(10, 4, seed=0), mm, batch_size=16)
    c = _fit_state(BernoulliRBM(10, 4, seed=0),
                   torch.utils.data.DataLoader(_Rows(x), batch_size=16))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(c[k], a[k], rtol=0, atol=1e-6)


@pytest.mark.parametrize("batch_size", [None, 16])
def test_memmap_and_dataset_fit_equal_tensor_fit_shared_loop(binary_npy, batch_size):
    x, mm = binary_npy
    a = _fit_state(_Gauss(10), x, batch_size=batch_size)
    b = _fit_state(_Gauss(10), mm, batch_size=batch_size)
    c = _fit_state(_Gauss(10), _Rows(x), batch_size=batch_size)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(c[k], a[k], rtol=0, atol=1e-6)


def test_row_source_checks_each_batch(tmp_path):
    bad = np.zeros((6, 10), dtype=np.float32)
    bad[4, 2] = 0.5  # not binary: found when its batch is read
    path = tmp_path / "bad.npy"
    np.save(path, bad)
    with pytest.raises(ValueError, match="binary|0 or 1|0/1"):
        BernoulliRBM(10, 3).fit(np.load(path, mmap_mode="r"), num_steps=2, tol=None,
                                progress=False)
    with pytest.raises(TypeError, match="x must be a Tensor, numpy array or memmap"):
        pd.RowSource(object(), lambda r: r)
    with pytest.raises(ValueError, match="2-D array"):
        pd.RowSource(np.zeros(3), lambda r: r)


def test_data_on_another_device_than_the_model():
    fa = FactorAnalysis(5, 2)
    with pytest.raises(ValueError, match="model's device cpu.*meta"):
        fa.fit(torch.zeros(10, 5, device="meta"), method="svi", num_steps=2, tol=None,
               progress=False)


# ------------------------------------------------------------------ keyed evaluation
def _toy():
    def model(xb):
        with pyro.plate("data", xb.shape[0]):
            z = pyro.sample("z", pdist.Normal(0.0, 1.0))
            pyro.sample("x", pdist.Normal(z.unsqueeze(-1).expand(*z.shape, 4), 1.0)
                        .to_event(1), obs=xb)

    def guide(xb):
        with pyro.plate("data", xb.shape[0]):
            pyro.sample("z", pdist.Normal(0.1 * xb[..., 0], 1.0))

    return model, guide


def test_importance_keyed_by_batch_and_streams(tmp_path):
    model, guide = _toy()
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    kw = dict(num_particles=20, batch_size=4, chunk=6, seed=3)
    state = torch.get_rng_state()
    full = importance_log_likelihood(model, guide, x, **kw)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is left alone
    head = importance_log_likelihood(model, guide, x[:8], **kw)
    assert torch.equal(head.values, full.values[:8])  # an image's draws: its batch's key
    np.save(tmp_path / "x.npy", x.numpy())
    mm = importance_log_likelihood(model, guide, np.load(tmp_path / "x.npy", mmap_mode="r"),
                                   **kw)
    assert torch.equal(mm.values, full.values)
    again = importance_log_likelihood(model, guide, x, **kw)
    assert torch.equal(again.values, full.values)


@pytest.mark.slow
def test_binarized_mnist_memmap_fit_equals_tensor_fit(tmp_path):
    """The issue's case: the fixed binarized MNIST training split as a memory-mapped .npy."""
    from pyrogen.datasets import load_binarized_mnist

    data = os.environ.get("PYROGEN_DATA") or str(
        Path(__file__).resolve().parents[2] / "shared" / "data" / "binarized_mnist.npz")
    try:
        x = load_binarized_mnist(data, split="train", dtype=torch.float32).x
    except (FileNotFoundError, OSError, ValueError) as e:
        pytest.skip(f"binarized MNIST not available: {e}")
    path = tmp_path / "mnist_train.npy"
    np.save(path, x.numpy().astype(np.uint8))
    mm = np.load(path, mmap_mode="r")
    kw = dict(method="cd", optimizer="sgd", batch_size=100)
    a = _fit_state(BernoulliRBM(784, 20, seed=0), x, **kw)
    b = _fit_state(BernoulliRBM(784, 20, seed=0), mm, **kw)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-5)
