r"""Running ``fit`` and evaluation under :mod:`torch.distributed` (``torchrun``), no own engine.

Every pyrogen ``fit`` goes through the one training loop
(:meth:`pyrogen.models.base.GenerativeModel._train`). When a default process group is
initialized with more than one process (``torchrun --nproc_per_node=N script.py`` and
``torch.distributed.init_process_group(...)`` in the script, or an explicit group), that loop
runs data-parallel SVI, the pattern of Pyro's ``svi_lightning.py`` example:

* **data**: every process holds (or memory-maps) the same data set; each step's **global
  batch** of ``batch_size`` rows (all rows when ``batch_size`` is unset) is drawn from one
  permutation that all processes share (a generator seeded with a seed agreed on rank 0) and
  cut into ``world_size`` contiguous, disjoint parts (:func:`epoch_batches`,
  :func:`shard`): every row exactly once per epoch, no padding duplicates. ``batch_size`` is
  the global batch and must be divisible by the world size; each rank gets
  ``batch_size / world_size`` rows (the parts of the full batch and of a last, smaller batch
  differ by at most one row; a last batch with fewer rows than processes is merged into the
  one before it).
* **num_data scaling**: each rank's plate is scaled to the full data set, ``num_data = n``
  (its loss estimates the full-data loss from its own rows); the gradients are combined as
  :math:`\sum_r (b_r / B)\, g_r` (``b_r`` rows on rank ``r`` of a global batch of ``B``), so
  the update equals the one-process update on the global batch (exactly, for a deterministic
  loss, up to floating-point summation order). The recorded loss is combined the same way.
* **gradients** are synchronized by a hook that runs before every torch optimizer step inside
  the loop (``torch.optim.optimizer.register_optimizer_step_pre_hook``): one ``all_reduce``
  of all fresh gradients of the model's parameters and of Pyro's parameter store, in a fixed
  order (module order, then the store's names sorted). ``SVI.step`` itself is unchanged.
* **randomness**: the permutation is shared; Monte Carlo draws (and persistent PCD chains) are
  per rank: each rank's global torch/Pyro RNG is reseeded from ``(seed, rank)``.
* A Pyro ``plate`` that subsamples by itself (``subsample_size`` without ``subsample``) would
  draw overlapping indices on every rank: inside the loop such a plate draws a global
  subsample of ``world_size * subsample_size`` indices from the shared generator and each rank
  takes its own disjoint part (:class:`ShardedSubsample`).
* progress bars and warnings on rank 0 only; ``save`` writes on rank 0 only (atomically) and
  waits at a barrier.

Evaluation: :func:`pyrogen.infer.ais` splits its chain blocks over the ranks (random numbers
keyed by the block, :class:`pyrogen._random.ChainRNG`) and
:func:`pyrogen.infer.importance_log_likelihood` (with ``seed``) its batches of test images
(random numbers keyed by the batch index); results are gathered in block/batch order, so they
are bitwise identical for one and several processes with the same seed.

Data larger than memory: ``fit`` accepts a :class:`numpy.memmap` (e.g. ``np.load(path,
mmap_mode="r")``), a :class:`torch.utils.data.Dataset` or a
:class:`~torch.utils.data.DataLoader` (its dataset and batch size) besides a tensor; rows are
read, converted and validated one batch at a time (:class:`RowSource`).

This module sits low in the layers (it imports only pyrogen's foundations), so that the
models, the annealing engine and the importance sampler can use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pyro
import torch
import torch.distributed as dist
from pyro.poutine.messenger import Messenger

from ._random import derived_seed
from ._validation import check_int

__all__ = [
    "world",
    "rank",
    "world_size",
    "is_main_process",
    "barrier",
    "agreed_seed",
    "block_range",
    "gather_in_order",
    "epoch_batches",
    "shard",
    "RowSource",
    "as_row_source",
    "ShardedSubsample",
    "GradientSync",
    "reduce_weighted",
    "broadcast_parameters",
    "before_optimizer_step",
    "data_parallel",
]


# --------------------------------------------------------------------------------------------
# The process group
# --------------------------------------------------------------------------------------------
def world(group=None) -> tuple[int, int]:
    """``(rank, world_size)`` of ``group`` (default group); ``(0, 1)`` when none is initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def rank(group=None) -> int:
    """This process's rank (0 without a process group)."""
    return world(group)[0]


def world_size(group=None) -> int:
    """Number of processes (1 without a process group)."""
    return world(group)[1]


def is_main_process(group=None) -> bool:
    """Rank 0 (or no process group): the process that shows progress, warns and saves."""
    return rank(group) == 0


def barrier(group=None) -> None:
    """``torch.distributed.barrier`` when several processes run; nothing otherwise."""
    if world_size(group) > 1:
        dist.barrier(group)


def _collective_device() -> torch.device:
    # NCCL communicates CUDA tensors only; gloo CPU ones
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def agreed_seed(seed: int | None = None, group=None) -> int:
    """A seed every rank agrees on: ``seed`` when given (the caller passes the same value on
    every rank; it is not checked, which would cost a collective), else one drawn from rank
    0's global torch RNG and broadcast. Without a process group: ``seed`` or a draw from the
    global RNG."""
    if seed is not None:
        return check_int(seed, "seed", low=0)
    drawn = int(torch.randint(0, 2**62, (1,)).item())
    if world_size(group) == 1:
        return drawn
    t = torch.tensor([drawn], dtype=torch.int64, device=_collective_device())
    dist.broadcast(t, src=dist.get_global_rank(group, 0) if group is not None else 0, group=group)
    return int(t.item())


def block_range(num_blocks: int, group=None) -> range:
    """The contiguous blocks ``0..num_blocks`` this rank runs (sizes differ by at most one)."""
    num_blocks = check_int(num_blocks, "num_blocks", low=0)
    r, w = world(group)
    base, extra = divmod(num_blocks, w)
    start = r * base + min(r, extra)
    return range(start, start + base + (1 if r < extra else 0))


def gather_in_order(obj, group=None) -> list:
    """Every rank's ``obj``, in rank order, on every rank (``all_gather_object``); ``[obj]``
    without a process group. With :func:`block_range` the concatenation is in block order."""
    w = world_size(group)
    if w == 1:
        return [obj]
    out = [None] * w
    dist.all_gather_object(out, obj, group=group)
    return out


def reduce_weighted(value: float, weight: float, group=None) -> float:
    """:math:`\\sum_r w_r v_r` over the ranks (float64), the same on every rank."""
    if world_size(group) == 1:
        return float(value) * float(weight)
    t = torch.tensor([float(value) * float(weight)], dtype=torch.float64,
                     device=_collective_device())
    dist.all_reduce(t, group=group)
    return float(t.item())


@torch.no_grad()
def broadcast_parameters(module: torch.nn.Module, group=None) -> None:
    """Copy rank 0's parameters and buffers of ``module`` to every rank."""
    if world_size(group) == 1:
        return
    dev = _collective_device()
    src = dist.get_global_rank(group, 0) if group is not None else 0
    for t in [*module.parameters(), *module.buffers()]:
        buf = t.detach().to(dev).clone()
        dist.broadcast(buf, src=src, group=group)
        t.copy_(buf.to(t.device))


# --------------------------------------------------------------------------------------------
# The sampler
# --------------------------------------------------------------------------------------------
def epoch_batches(
    n: int,
    batch_size: int | None,
    *,
    world_size: int = 1,
    generator: torch.Generator | None = None,
    device=None,
) -> list[torch.Tensor]:
    """The global batches of one epoch: a permutation of ``range(n)`` cut into batches of
    ``batch_size`` (the last one may be smaller), every row exactly once.

    ``batch_size=None`` (or ``>= n``): one batch, ``arange(n)`` (no permutation). With
    ``world_size > 1`` a last batch with fewer than ``world_size`` rows is merged into the one
    before it, so that every rank gets at least one row of every batch (:func:`shard`).

    Raises
    ------
    ValueError
        ``world_size`` larger than ``n``, or ``batch_size`` not a multiple of ``world_size``.
    """
    n = check_int(n, "n", low=1)
    world_size = check_int(world_size, "world_size", low=1)
    if world_size > n:
        raise ValueError(
            f"the world size must be at most the number of data rows, so that every process "
            f"gets data. Got world_size={world_size} for n={n} rows instead."
        )
    if batch_size is None or batch_size >= n:
        return [torch.arange(n, device=device)]
    batch_size = check_int(batch_size, "batch_size", low=1)
    if batch_size % world_size:
        raise ValueError(
            f"batch_size (the global batch of all processes together) must be a multiple of "
            f"the world size {world_size}, so that every process gets batch_size / "
            f"world_size rows. Got batch_size={batch_size} instead."
        )
    perm = torch.randperm(n, generator=generator, device="cpu" if generator is None
                          else generator.device)
    if device is not None:
        perm = perm.to(device)
    batches = list(torch.split(perm, batch_size))
    if world_size > 1 and len(batches) > 1 and batches[-1].numel() < world_size:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s contiguous part of a global ``batch`` (parts differ by at most one)."""
    return torch.tensor_split(batch, world_size)[rank]


# --------------------------------------------------------------------------------------------
# Data sources
# --------------------------------------------------------------------------------------------
class RowSource:
    """Rows of a data set read one batch at a time: a memory-mapped (or plain) array, a
    :class:`torch.utils.data.Dataset` or the dataset of a :class:`~torch.utils.data.DataLoader`.

    Parameters
    ----------
    data : numpy.ndarray, numpy.memmap, Dataset or DataLoader
        2-D array, or a dataset whose items are rows (a tensor or array of shape
        ``(n_features,)``) or tuples whose first element is the row (``(x, y)``).
    check : callable ``(Tensor) -> Tensor``
        Validates and converts each batch read (the model's ``_check_x``: dtype, device,
        features, finite values).
    name : str
        The argument's name, for error messages.

    Notes
    -----
    ``rows[idx]`` reads the rows ``idx`` (a ``LongTensor`` or an index array) in that order;
    for an array the indices are sorted for the read (sequential disk access) and the rows put
    back in order. Memory: one batch at a time.
    """

    def __init__(self, data, check: Callable[[torch.Tensor], torch.Tensor], name: str = "x"):
        self.batch_size = None
        if isinstance(data, torch.utils.data.DataLoader):
            self.batch_size = data.batch_size
            data = data.dataset
        self.data = data
        self.name = name
        self._check = check
        if isinstance(data, np.ndarray):
            if data.ndim != 2:
                raise ValueError(
                    f"{name} must be a 2-D array of shape (n, n_features). Got shape "
                    f"{data.shape} instead."
                )
            if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
                raise TypeError(f"{name} must be a numeric array. Got dtype {data.dtype} instead.")
            n = data.shape[0]
        elif isinstance(data, torch.utils.data.Dataset):
            try:
                n = len(data)
            except TypeError as e:
                raise TypeError(
                    f"{name} must be a map-style Dataset with a length (an IterableDataset "
                    f"cannot be split into disjoint batches). Got {type(data).__name__} "
                    "instead."
                ) from e
        else:
            raise TypeError(
                f"{name} must be a Tensor, numpy array or memmap, Dataset or DataLoader. Got "
                f"{type(data).__name__} instead."
            )
        if n < 1:
            raise ValueError(f"{name} must have at least 1 row. Got 0 instead.")
        first = self[torch.tensor([0])]
        self.shape = (n, *first.shape[1:])
        self.dtype, self.device = first.dtype, first.device

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, idx: np.ndarray) -> torch.Tensor:
        if isinstance(self.data, np.ndarray):
            order = np.argsort(idx, kind="stable")
            rows = np.empty((len(idx), *self.data.shape[1:]), dtype=self.data.dtype)
            rows[order] = self.data[idx[order]]
            return torch.from_numpy(rows)
        items = [self.data[int(i)] for i in idx]
        items = [it[0] if isinstance(it, (tuple, list)) else it for it in items]
        return torch.stack([torch.as_tensor(np.asarray(it) if not torch.is_tensor(it) else it)
                            for it in items])

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, slice):
            idx = np.arange(*idx.indices(len(self.data)))
        idx = idx.cpu().numpy() if torch.is_tensor(idx) else np.asarray(idx)
        return self._check(self._read(idx.astype(np.int64, copy=False)))

    def chunks(self, size: int = 4096) -> Iterator[torch.Tensor]:
        """All rows in order, ``size`` at a time (validated)."""
        for start in range(0, len(self), size):
            yield self[slice(start, min(start + size, len(self)))]

    def column_mean(self, size: int = 4096) -> torch.Tensor:
        """Mean of every column over all rows, streamed (float64 accumulation)."""
        total = None
        for c in self.chunks(size):
            s = c.double().sum(0)
            total = s if total is None else total + s
        return (total / len(self)).to(self.dtype)

    def to_tensor(self) -> torch.Tensor:
        """All rows in memory (validated)."""
        return torch.cat(list(self.chunks()))

    def __repr__(self) -> str:
        return f"RowSource({type(self.data).__name__}, shape={self.shape})"


def as_row_source(x, check: Callable[[torch.Tensor], torch.Tensor], name: str = "x"):
    """``x`` as a :class:`RowSource` when it streams (memmap, Dataset, DataLoader, or already
    a RowSource), else ``None`` (tensors and in-memory arrays are validated whole, as before)."""
    if isinstance(x, RowSource):
        return x
    if isinstance(x, (np.memmap, torch.utils.data.Dataset, torch.utils.data.DataLoader)):
        return RowSource(x, check, name)
    return None


# --------------------------------------------------------------------------------------------
# Data-parallel SVI
# --------------------------------------------------------------------------------------------
class ShardedSubsample(Messenger):
    """Under data parallelism, a plate that subsamples by itself draws a global subsample of
    ``world_size * subsample_size`` indices from ``generator`` (shared by the ranks) and this
    rank takes its contiguous part of ``subsample_size`` indices: disjoint across ranks. Plates
    given explicit ``subsample`` indices (pyrogen's own data plates) are left alone."""

    def __init__(self, generator: torch.Generator, rank: int, world_size: int):
        super().__init__()
        self.generator, self.rank, self.world_size = generator, rank, world_size

    def _pyro_sample(self, msg) -> None:
        from pyro.poutine.subsample_messenger import _Subsample

        fn = msg["fn"]
        if not isinstance(fn, _Subsample) or msg["value"] is not None or msg["done"]:
            return
        size, sub = fn.size, fn.subsample_size
        if sub is None or sub >= size:
            return
        total = sub * self.world_size
        if total > size:
            raise ValueError(
                f"plate {msg['name']!r}: subsample_size={sub} on each of {self.world_size} "
                f"processes needs at least {total} indices, but the plate has size={size}; "
                f"use subsample_size <= {size // self.world_size}."
            )
        perm = torch.randperm(size, generator=self.generator)[:total]
        idx = perm[self.rank * sub : (self.rank + 1) * sub]
        dev = getattr(fn, "device", None)
        msg["value"] = idx if dev is None else idx.to(dev)
        msg["done"] = True


class GradientSync:
    """Synchronizes gradients before every torch optimizer step while active (a context).

    All parameters of ``module`` (in module order) and of Pyro's parameter store (names
    sorted) whose gradient is fresh (written since the last synchronization) are multiplied by
    :attr:`weight` (this rank's share ``b_r / B`` of the global batch) and summed over the
    ranks in one ``all_reduce`` per dtype. Pyro's optimizers build one torch optimizer per
    parameter and call them in a set's order: the first call synchronizes every fresh gradient
    at once, in the fixed order, and the later ones find nothing fresh.
    """

    def __init__(self, module: torch.nn.Module, group=None):
        self.module = module
        self.group = group
        self.weight = 1.0
        self.num_syncs = 0
        self._stamps: dict[int, tuple[int, int]] = {}
        self._handle = None

    def _candidates(self) -> list[torch.Tensor]:
        params = list(self.module.parameters())
        ids = {id(p) for p in params}
        for _, p in sorted(pyro.get_param_store().named_parameters(), key=lambda kv: kv[0]):
            if id(p) not in ids:
                params.append(p)
                ids.add(id(p))
        return params

    def _fresh(self, p) -> bool:
        g = p.grad
        return g is not None and self._stamps.get(id(p)) != (id(g), g._version)

    @torch.no_grad()
    def sync(self, optimizer_params: Sequence[torch.Tensor] = ()) -> None:
        """Synchronize every fresh gradient now (called by the optimizer hook)."""
        cands = self._candidates()
        fresh = [p for p in cands if self._fresh(p)]
        known = {id(p) for p in cands}
        stray = [p for p in optimizer_params if id(p) not in known and p.grad is not None]
        if stray:
            raise RuntimeError(
                "data-parallel fit: an optimizer steps a parameter that is neither the model's "
                f"nor in Pyro's parameter store (shape {tuple(stray[0].shape)}); its gradient "
                "cannot be synchronized in a fixed order across processes."
            )
        if not fresh:
            return
        by_dtype: dict[str, list[torch.Tensor]] = {}
        for p in fresh:
            by_dtype.setdefault(str(p.grad.dtype), []).append(p)
        dev = _collective_device()
        for key in sorted(by_dtype):
            ps = by_dtype[key]
            flat = torch.cat([p.grad.reshape(-1) for p in ps]).to(dev)
            flat.mul_(self.weight)
            dist.all_reduce(flat, group=self.group)
            off = 0
            for p in ps:
                k = p.grad.numel()
                p.grad.copy_(flat[off : off + k].view_as(p.grad))
                off += k
        for p in fresh:
            self._stamps[id(p)] = (id(p.grad), p.grad._version)
        self.num_syncs += 1

    def _hook(self, optimizer, args, kwargs):
        self.sync([p for g in optimizer.param_groups for p in g["params"]])

    def __enter__(self):
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        self._handle = register_optimizer_step_pre_hook(self._hook)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc):
        _ACTIVE.remove(self)
        self._handle.remove()
        self._handle = None
        return False


_ACTIVE: list[GradientSync] = []


def before_optimizer_step(params: Sequence[torch.Tensor] = ()) -> None:
    """For optimizers that update parameters without ``torch.optim.Optimizer.step`` (e.g. a
    functional update): synchronize the gradients now when a data-parallel fit is running."""
    for s in _ACTIVE:
        s.sync(params)


@contextlib.contextmanager
def data_parallel(module: torch.nn.Module, seed: int | None = None, group=None):
    """The data-parallel context of the training loop: yields a state with ``rank``,
    ``world_size``, the shared permutation ``generator`` and the :class:`GradientSync`.

    Agrees on a seed (rank 0's draw), broadcasts rank 0's parameters and buffers, reseeds each
    rank's global RNG from ``(seed, rank)`` (independent Monte Carlo draws and PCD chains per
    rank), and installs the gradient hook and :class:`ShardedSubsample`.
    """
    r, w = world(group)
    shared = agreed_seed(seed, group)
    gen = torch.Generator()
    gen.manual_seed(derived_seed(shared, 0))
    broadcast_parameters(module, group)
    pyro.set_rng_seed(derived_seed(shared, 1, r) % 2**32)
    sync = GradientSync(module, group)

    class _State:
        pass

    state = _State()
    state.rank, state.world_size, state.generator, state.sync = r, w, gen, sync
    with sync, ShardedSubsample(gen, r, w):
        yield state

