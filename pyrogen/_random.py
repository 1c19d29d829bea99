r"""Random numbers keyed by chain block, so that splitting chains over processes changes nothing.

Many-chain samplers (AIS, SMC, RAISE) draw random numbers for ``M`` chains at once. With one
``torch.Generator`` for all chains, chain ``m``'s numbers depend on how many chains come before
it, so running chains ``0..M/2`` in one process and ``M/2..M`` in another gives a different
answer than one run. :class:`ChainRNG` splits the chains (dimension 0 of every draw) into
blocks of ``block_size`` consecutive chains and gives block ``k`` its own generator seeded
from ``(seed, k)`` by :class:`numpy.random.SeedSequence`; block ``k``'s stream depends only on
the seed and ``k``. Two runs over blocks ``0..K/2`` and ``K/2..K`` (``first_block``) then
reproduce the one run over ``0..K`` exactly.

Every sampler in pyrogen draws through :func:`uniform_`, :func:`normal_` and
:func:`bernoulli`, which accept a ``ChainRNG``, a plain ``torch.Generator`` (one stream for all
chains, as before) or ``None`` (the global torch RNG).

This module sits at the bottom of the layers (beside ``_validation``): distributions, the
annealing engine and the normalizers all use it.
"""

from __future__ import annotations

import numpy as np
import torch

from ._validation import check_int

__all__ = ["ChainRNG", "uniform_", "normal_", "bernoulli", "derived_seed", "DEFAULT_BLOCK_SIZE"]

#: default number of consecutive chains that share one generator
DEFAULT_BLOCK_SIZE = 64


def derived_seed(seed: int, *key: int) -> int:
    """A 63-bit seed derived from ``(seed, *key)`` by :class:`numpy.random.SeedSequence`."""
    ss = np.random.SeedSequence([int(seed), *[int(k) for k in key]])
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


class ChainRNG:
    r"""Per-block generators for ``num_chains`` chains (dimension 0 of every draw).

    Parameters
    ----------
    seed : int
        Base seed (non-negative).
    num_chains : int
        Number of chains ``M``; every draw must have ``M`` rows.
    block_size : int
        Chains per block (default :data:`DEFAULT_BLOCK_SIZE`). The last block may be shorter.
    first_block : int
        Index of the first block: a process that runs chains ``k * block_size`` onwards passes
        ``first_block=k`` and gets the same numbers for them as a single run.
    device : torch.device or str
        Device of the generators.

    Notes
    -----
    Cost: one ``uniform_``/``normal_`` call per block per draw; with blocks of 64 chains and
    a few hundred chains this is negligible next to the model's matrix products.
    """

    def __init__(
        self, seed, num_chains, block_size=DEFAULT_BLOCK_SIZE, first_block=0, device="cpu"
    ):
        self.seed = check_int(seed, "seed", low=0)
        self.num_chains = check_int(num_chains, "num_chains", low=1)
        self.block_size = check_int(block_size, "block_size", low=1)
        self.first_block = check_int(first_block, "first_block", low=0)
        self.device = torch.device(device)
        self.blocks = []
        for i, start in enumerate(range(0, self.num_chains, self.block_size)):
            g = torch.Generator(device=self.device)
            g.manual_seed(derived_seed(self.seed, 0, self.first_block + i))
            self.blocks.append((start, min(start + self.block_size, self.num_chains), g))

    def _check(self, out: torch.Tensor) -> None:
        if out.dim() < 1 or out.shape[0] != self.num_chains:
            raise ValueError(
                f"a ChainRNG for {self.num_chains} chains draws tensors with {self.num_chains} "
                f"rows (chains first). Got shape {tuple(out.shape)} instead."
            )

    def uniform_(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` (chains first) with Uniform[0, 1) draws, block by block."""
        self._check(out)
        for a, b, g in self.blocks:
            out[a:b].uniform_(generator=g)
        return out

    def normal_(self, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out`` (chains first) with standard normal draws, block by block."""
        self._check(out)
        for a, b, g in self.blocks:
            out[a:b].normal_(generator=g)
        return out

    def generator(self, *key: int) -> torch.Generator:
        """A generator for draws that are not per chain (e.g. SMC resampling), from
        ``(seed, 1, *key)``: independent of the chain blocks."""
        g = torch.Generator(device=self.device)
        g.manual_seed(derived_seed(self.seed, 1, *key))
        return g

    def __repr__(self) -> str:
        return (
            f"ChainRNG(seed={self.seed}, num_chains={self.num_chains}, "
            f"block_size={self.block_size}, first_block={self.first_block})"
        )


def _is_rng(generator) -> bool:
    return generator is None or isinstance(generator, (torch.Generator, ChainRNG))


def _check_rng(generator) -> None:
    if not _is_rng(generator):
        raise TypeError(
            "generator must be None, a torch.Generator or a pyrogen ChainRNG. Got "
            f"{type(generator).__name__} instead."
        )


class _GlobalPCG64:
    """numpy's PCG64 driven by torch's global random state (see :func:`fast_uniform_`)."""

    def __init__(self):
        self.bit_generator = np.random.PCG64(0)
        self.generator = np.random.Generator(self.bit_generator)
        self._seed = torch.empty(4, dtype=torch.int64)

    def reseed(self) -> np.random.Generator:
        s = self._seed.random_().tolist()  # four 63-bit draws from torch's global generator
        self.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": (s[0] << 64) | s[1], "inc": (s[2] << 64) | s[3] | 1},
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self.generator


_GLOBAL_PCG64 = _GlobalPCG64()


def fast_uniform_(out: torch.Tensor) -> torch.Tensor:
    """Fill ``out`` with Uniform[0, 1) draws like ``out.uniform_()`` (the global RNG), faster
    on CPU: a contiguous float32 / float64 CPU tensor is filled by numpy's PCG64 whose 128-bit
    state and increment are drawn from torch's global generator first (four ``random_``
    draws), so ``torch.manual_seed`` / ``pyro.set_rng_seed`` still make the fill
    reproducible; anything else falls back to ``out.uniform_()``. The numbers differ from
    ``uniform_``'s (another generator), not their distribution (numpy's ``random``: 24-bit
    float32, 53-bit float64 resolution, as torch's)."""
    if (
        out.device.type == "cpu"
        and out.dtype in (torch.float32, torch.float64)
        and out.is_contiguous()
        and not out.requires_grad
        and out.numel() > 0
    ):
        g = _GLOBAL_PCG64.reseed()
        g.random(out=out.numpy(), dtype=np.float32 if out.dtype == torch.float32 else np.float64)
        return out
    return out.uniform_()


def uniform_(out: torch.Tensor, generator=None) -> torch.Tensor:
    """Fill ``out`` with Uniform[0, 1) draws from ``generator`` (ChainRNG, Generator, None)."""
    if isinstance(generator, ChainRNG):
        return generator.uniform_(out)
    _check_rng(generator)
    return out.uniform_(generator=generator)


def normal_(out: torch.Tensor, generator=None) -> torch.Tensor:
    """Fill ``out`` with standard normal draws from ``generator`` (ChainRNG, Generator, None)."""
    if isinstance(generator, ChainRNG):
        return generator.normal_(out)
    _check_rng(generator)
    return out.normal_(generator=generator)


def bernoulli(p: torch.Tensor, generator=None, out: torch.Tensor | None = None) -> torch.Tensor:
    """0./1. draws with probabilities ``p`` in ``p``'s dtype (``U < p``, ``U`` uniform drawn in
    place; about 3x faster on CPU than ``torch.bernoulli``). ``out`` may be ``p`` itself."""
    if out is None:
        out = torch.empty_like(p)
    if out is p:
        u = uniform_(torch.empty_like(p), generator)
        return out.copy_(u < p)
    return uniform_(out, generator).lt_(p)
