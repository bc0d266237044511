"""All device logic: the 1-D `('data',)` mesh, shardings, host-to-global batches, and divisibility checks.

Data parallelism is `jax.jit` over a mesh: state replicated (`P()`), batches split on `data`
(`P('data')`). BatchNorm statistics inside the jitted step are then global over the whole batch.
With `config.train.fsdp`, parameters and optimizer state are sharded over `data` too (`state_shardings`).
Nothing else in the project calls `jax.devices()`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


# The most CPU devices `--cpu_devices=-1` (auto) splits a host into; more is unmeasured (docs/benchmarks.md).
AUTO_CPU_DEVICES_MAX = 8


def auto_cpu_device_count(global_batch_size: int, cores: int) -> int:
    """The CPU devices an automatic run uses: the most, up to one per core and `AUTO_CPU_DEVICES_MAX`, that split
    the global batch evenly (1 when none does)."""
    limit = max(1, min(cores, AUTO_CPU_DEVICES_MAX))
    return max([n for n in range(1, limit + 1) if global_batch_size > 0 and global_batch_size % n == 0] or [1])


def configure_cpu_devices(requested: int, global_batch_size: int) -> int | None:
    """Splits the host CPU into `requested` XLA devices (-1: `auto_cpu_device_count` over this process's cores)
    before any backend starts, so a CPU run is data-parallel over them like a multi-GPU one. XLA:CPU runs
    the devices' programs side by side, which keeps two cores busier than one device's intra-op threads on
    small convolutions (measured: docs/benchmarks.md). Left alone (returns None) where the device count is
    set already: `--xla_force_host_platform_device_count` in `XLA_FLAGS`, or `JAX_NUM_CPU_DEVICES`. Other
    backends (GPU, TPU) are unaffected; the default device is theirs."""
    if requested == 0 or requested < -1:
        raise ValueError(f"--cpu_devices={requested} must be -1 (auto) or a positive device count")
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "") or os.environ.get(
            "JAX_NUM_CPU_DEVICES"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = auto_cpu_device_count(global_batch_size, cores) if requested == -1 else requested
    jax.config.update("jax_num_cpu_devices", n)
    return n


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


# Arrays below this many elements (16 KiB in float32: biases, BatchNorm scales, small kernels) stay replicated:
# sharding them saves little memory and adds a collective each per step.
FSDP_MIN_SIZE = 4096


def fsdp_spec(shape: Sequence[int], axis_size: int, min_size: int = FSDP_MIN_SIZE) -> P:
    """The FSDP partitioning of one array: its largest dimension divisible by `axis_size`, split on `data`.

    Ties go to the last such dimension (a conv kernel's output channels). Arrays smaller than `min_size`
    elements, arrays with no divisible dimension, scalars, and any array on a 1-device axis get `P()`.

    Args:
        shape: the array's shape.
        axis_size: the size of the mesh's `data` axis.
        min_size: arrays with fewer elements stay replicated.

    Returns:
        `P()` or `P(None, ..., None, 'data')` with `'data'` at the chosen dimension.
    """
    if axis_size <= 1 or math.prod(shape) < min_size:
        return P()
    divisible = [i for i, d in enumerate(shape) if d % axis_size == 0]
    if not divisible:
        return P()
    dim = max(divisible, key=lambda i: (shape[i], i))
    return P(*([None] * dim), "data")


def state_shardings(state: Mapping[str, Any], mesh: Mesh, fsdp: bool) -> dict[str, Any]:
    """Per-leaf shardings of the train state `{'params', 'rest', 'opt_state', 'step'}` (arrays or ShapeDtypeStructs).

    Without `fsdp` everything is replicated (plain data parallelism). With `fsdp`, `params` and `opt_state`
    leaves follow `fsdp_spec`, so an optimizer moment is split like its parameter; `rest` (BatchNorm
    statistics, RNG state) and `step` stay replicated.

    What FSDP saves and costs: each device holds about 1/n of every sharded parameter, its gradient and its
    optimizer state instead of all of it (n = devices), which is what bounds model size under data parallelism.
    In exchange, XLA all-gathers each sharded parameter before it is used in the forward and backward passes
    and reduce-scatters its gradient (instead of all-reducing it), every step; activations are not reduced.
    Evaluation and `to_local_replicated` all-gather the parameters once. Numerics match the replicated run up
    to reduction order.
    """
    rep = replicated(mesh)
    out = {k: jax.tree.map(lambda _: rep, v) for k, v in state.items()}
    if fsdp:
        n = mesh.shape["data"]
        for key in ("params", "opt_state"):
            out[key] = jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(x.shape, n)), state[key])
    return out


def per_device_nbytes(tree: Any) -> int:
    """Bytes of the jax arrays in `tree` held on one device (the first addressable shard of each array)."""
    return sum(x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(tree) if isinstance(x, jax.Array))


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
    """Copies a global pytree onto `mesh` (this process's devices), replicated.

    Arrays sharded over a global mesh (FSDP) are all-gathered there first; every process must then call this.
    """
    sharded = [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array) and not x.is_fully_replicated]
    if sharded:
        tree = jax.jit(lambda t: t, out_shardings=replicated(sharded[0].sharding.mesh))(tree)
    sharding = replicated(mesh)
    return jax.tree.map(lambda x: jax.device_put(x.addressable_data(0) if isinstance(x, jax.Array) else x,
                                                 sharding), tree)
