r"""Data-sharded log-densities for large ``n``: the rows of the data split over JAX devices.

NumPyro's NUTS evaluates the model's log-density (and its gradient) once per leapfrog step; for
a per-row likelihood that is :math:`O(n)` work. :func:`shard_rows` places the data on a 1-D
device mesh, split by rows (``jax.sharding.NamedSharding(Mesh(devices, ("data",)),
PartitionSpec("data"))``). The compiled potential then runs sharded (XLA's SPMD partitioner):
each device sums the log-likelihood of its own rows and the partial sums are added by a
collective. Nothing else changes: the same model, the same ``run_nuts`` call, the same
``seed`` give the same draws up to floating-point summation order.

On CPU the devices are host devices: set ``XLA_FLAGS=--xla_force_host_platform_device_count=N``
(or :func:`pyrogen.numpyro.setup_host_devices`) before JAX initialises its backend. With two
host devices, chains and data shards can combine: ``chain_method="parallel"`` puts one chain on
each device; sharded data with ``chain_method="vectorized"`` or ``"sequential"`` splits each
log-density over the devices instead.

Tested (``tests/numpyro/test_sharding.py``, two host devices, marked slow): the sharded
log-density and its gradient equal the unsharded ones (to 1e-9 in float64), and two parallel
chains give the draws of two sequential chains with the same keys (to 1e-4; measured 2.3e-6:
the pmap and sequential compilations round differently, so not bitwise).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .._validation import check_int

__all__ = ["shard_rows"]


def shard_rows(x, num_devices: int | None = None):
    """``x`` (rows first) as a JAX array split by rows over ``num_devices`` devices.

    Parameters
    ----------
    x : array-like, shape ``(n, ...)``
        The data; ``n`` must be a multiple of ``num_devices`` (no padding rows, which would
        change the likelihood).
    num_devices : int, optional
        Default: all local devices (``jax.local_device_count()``).

    Returns
    -------
    jax.Array
        Sharded over a mesh with one axis ``"data"``; ``x.sharding`` says how.

    Raises
    ------
    ValueError
        More devices requested than there are, or ``n`` not a multiple of ``num_devices``.
    """
    devices = jax.local_devices()
    num_devices = len(devices) if num_devices is None else check_int(
        num_devices, "num_devices", low=1)
    if num_devices > len(devices):
        raise ValueError(
            f"num_devices must be at most the {len(devices)} local JAX device(s) (on CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts). Got "
            f"{num_devices} instead."
        )
    x = np.asarray(x) if not isinstance(x, jax.Array) else x
    if x.ndim < 1 or x.shape[0] % num_devices:
        raise ValueError(
            f"x must have a number of rows divisible by num_devices={num_devices} (every "
            f"device gets n / num_devices rows, no padding). Got shape {tuple(x.shape)} "
            "instead."
        )
    mesh = Mesh(np.array(devices[:num_devices]), ("data",))
    return jax.device_put(x, NamedSharding(mesh, PartitionSpec("data")))
