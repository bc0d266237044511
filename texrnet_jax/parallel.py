"""All device logic: the 1-D `('data',)` mesh, shardings, host-to-global batches, and divisibility checks.

Data parallelism is `jax.jit` over a mesh: state replicated (`P()`), batches split on `data`
(`P('data')`). BatchNorm statistics inside the jitted step are then global over the whole batch.
Nothing else in the project calls `jax.devices()`.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def make_mesh(num_devices: int = 0) -> Mesh:
    """A `('data',)` mesh over every device, or over the first `num_devices` (single-process only)."""
    devices = jax.devices()
    if num_devices:
        if jax.process_count() > 1:
            raise ValueError("config.train.num_devices must be 0 (all devices) in a multi-process run")
        if num_devices > len(devices):
            raise ValueError(f"config.train.num_devices={num_devices} but only {len(devices)} devices exist")
        devices = devices[:num_devices]
    return Mesh(np.asarray(devices), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def per_process_batch(global_batch_size: int, mesh: Mesh, field: str = "config.train.global_batch_size") -> int:
    """The batch each process loads; raises a one-line error unless it splits evenly over devices."""
    n = mesh.devices.size
    if global_batch_size <= 0 or global_batch_size % n:
        raise ValueError(f"{field}={global_batch_size} must be a positive multiple of the device count {n}")
    return global_batch_size // jax.process_count()


def host_to_global(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assembles each process's slice of the batch into global arrays sharded on `data`."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def should_block_each_step(mesh: Mesh) -> bool:
    """XLA:CPU collectives over several fake devices can deadlock with many steps in flight; block there."""
    return mesh.devices.size > 1 and mesh.devices.flat[0].platform == "cpu"


def is_main_process() -> bool:
    return jax.process_index() == 0



def concat_across_processes(x: np.ndarray) -> np.ndarray:
    """Concatenates per-process host arrays of different lengths along axis 0 (identity in one process)."""
    if jax.process_count() == 1:
        return x
    from jax.experimental import multihost_utils

    sizes = np.asarray(multihost_utils.process_allgather(np.asarray([len(x)])))[:, 0]
    padded = np.zeros((int(sizes.max()),) + x.shape[1:], x.dtype)
    padded[: len(x)] = x
    rows = np.asarray(multihost_utils.process_allgather(padded))
    return np.concatenate([rows[p, :n] for p, n in enumerate(sizes)], axis=0)


def local_mesh() -> Mesh:
    """A `('data',)` mesh over this process's devices only (for per-process evaluation)."""
    return Mesh(np.asarray(jax.local_devices()), ("data",))


def to_local_replicated(tree, mesh: Mesh):
    """Copies a replicated global pytree onto `mesh` (this process's devices), replicated."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.device_put(x.addressable_data(0) if isinstance(x, jax.Array) else x,
                                                 sharding), tree)
