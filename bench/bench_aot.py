"""Compiles the data-parallel training step for an accelerator topology ahead of time, on a host without it.

What a TPU slice or pod would run, compiled by the accelerator's own XLA on any x86-64 machine, no TPU attached:
per-device memory (does a per-device batch fit in HBM?), FLOPs per device from the compiled program and the
compile time, for the project's real `train.make_train_step` under the shardings `run.py` uses
(`parallel.state_shardings`, batch split on the `data` axis; `--fsdp` shards parameters and optimizer state).
Nothing runs, and no weights are materialised (the model is built with `nnx.eval_shape`). The step is
`bench_models.py`'s: the TexRNet losses without the optional glyph-classifier term.

TPU topologies need libtpu, the same version `jax[tpu]` pins (`pip install libtpu==0.0.42.*` for jax 0.10.2);
no TPU is needed. `--topology=cpu` compiles for this host's own devices (a check of the script itself).

Usage::

    python -m bench.bench_aot --topology=v5e:2x2 --dtype=bfloat16                # reference batches, 513 crops
    python -m bench.bench_aot --topology=v5e:16x16 --models=hrnet_w48 --per_device_batch=8 --fsdp
    python -m bench.bench_aot --topology=v4:2x2x1 --models=deeplab_r101 --dtype=float32 --json_out=/tmp/aot.jsonl

Topology names are libtpu's, chips per dimension: `v5e:2x2`, `v5p:2x2x1`, `v6e:2x2`, `v4:2x2x1` (8 devices: each v4
chip's two cores are devices of their own, sharing its 32 GiB).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from bench import bench_models
from configs import base
from texrnet_jax import optim, parallel, train

# HBM per chip (GiB) by `device_kind` substring (lower case, first match wins): public data-sheet figures. Where a
# chip's cores are separate devices (libtpu's v4 topologies) they share it.
HBM_GIB = (("tpu v5 lite", 16), ("tpu v5", 95), ("tpu v4", 32), ("tpu v6 lite", 32), ("h100", 80), ("h200", 141),
           ("a100", 80))


def hbm_bytes(device_kind: str) -> int | None:
    for pattern, gib in HBM_GIB:
        if pattern in device_kind.lower():
            return gib << 30
    return None


def cores_per_chip(devices: list[Any]) -> int:
    """How many of `devices` share the first one's chip (TPU `coords`); 1 for devices without coordinates."""
    coords = getattr(devices[0], "coords", None)
    return sum(1 for d in devices if getattr(d, "coords", None) == coords) if coords is not None else 1


def topology_devices(topology: str) -> list[Any]:
    """The devices of `topology` (`cpu` or a libtpu topology name); a one-line error naming --topology if not."""
    if topology == "cpu":
        return jax.devices("cpu")
    from jax.experimental import topologies

    try:
        return list(topologies.get_topology_desc(platform="tpu", topology_name=topology).devices)
    except Exception as e:  # noqa: BLE001 - libtpu raises several kinds; the message is what helps
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"--topology={topology}: cannot describe it ({first}). TPU topologies need libtpu of the "
                         "version jax[tpu] pins, and a name such as v5e:2x2 or v4:2x2x1") from None


def _abstract(tree, shardings):
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def compile_case(backbone: str, devices: list[Any], per_device_batch: int, crop: int, dtype: str,
                 fsdp: bool) -> dict[str, Any]:
    """Lowers and compiles one training step over a `data` mesh of `devices`; returns its record (nothing runs)."""
    mesh = Mesh(np.asarray(devices), ("data",))
    cfg = base.get_base_config()
    model = nnx.eval_shape(lambda: bench_models.build(backbone, dtype))
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, schedule = optim.build_optimizer(cfg.optim, params)
    state = jax.eval_shape(lambda p, r: train.init_state(p, r, tx), params, rest)
    state_sharding = parallel.state_shardings(state, mesh, fsdp)
    state = _abstract(state, state_sharding)
    n = len(devices)
    batch_sharding = parallel.batch_sharding(mesh)
    batch = {"image": jax.ShapeDtypeStruct((n * per_device_batch, crop, crop, 3), jnp.float32, sharding=batch_sharding),
             "mask": jax.ShapeDtypeStruct((n * per_device_batch, crop, crop), jnp.int32, sharding=batch_sharding)}
    step = jax.jit(train.make_train_step(graphdef, tx, schedule, cfg.loss, cfg.data.ignore_label),
                   donate_argnums=0, out_shardings=(state_sharding, parallel.replicated(mesh)))
    t0 = time.perf_counter()
    with jax.set_mesh(mesh):  # the layers' single-device forms ask the mesh, not this host (xla_cpu.conv.single_device)
        lowered = step.lower(state, batch)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()

    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    mem = compiled.memory_analysis()
    kind = devices[0].device_kind
    flops = float(cost.get("flops", 0.0)) or None
    total = mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes - mem.alias_size_in_bytes
    hbm = hbm_bytes(kind)
    if hbm is not None:  # per device: libtpu's v4 topologies list each chip's two cores as devices of their own
        hbm //= cores_per_chip(devices)
    n_params = sum(int(np.prod(v.shape)) for v in jax.tree.leaves(params))
    return {
        "model": f"texrnet_{backbone}", "topology": None, "platform": devices[0].platform, "device_kind": kind,
        "num_devices": n, "per_device_batch": per_device_batch, "global_batch": n * per_device_batch, "crop": crop,
        "dtype": dtype, "fsdp": fsdp, "lower_s": round(t1 - t0, 2), "compile_s": round(t2 - t1, 2),
        "flops_per_device": flops,
        "mem_argument_bytes": mem.argument_size_in_bytes, "mem_output_bytes": mem.output_size_in_bytes,
        "mem_alias_bytes": mem.alias_size_in_bytes, "mem_temp_bytes": mem.temp_size_in_bytes,
        "mem_total_bytes": total, "hbm_bytes": hbm, "fits_hbm": None if hbm is None else total <= hbm,
        "params_M": round(n_params / 1e6, 2), "jax": jax.__version__,
    }


def format_table(records: list[dict[str, Any]]) -> str:
    def gib(b):
        return "-" if b is None else f"{b / 2**30:.2f}"

    head = ("| model | devices | kind | batch/dev | crop | dtype | fsdp | compile s | GFLOP/dev | temp GiB | total GiB "
            "| HBM GiB | fits |")
    rows = [head, "|" + " --- |" * head.count(" | ") + " --- |"]
    for r in records:
        rows.append(" | ".join(str(v) for v in (
            f"| {r['model']}", r["num_devices"], r["device_kind"], r["per_device_batch"], r["crop"], r["dtype"],
            r["fsdp"], r["compile_s"], "-" if r["flops_per_device"] is None else f"{r['flops_per_device'] / 1e9:.0f}",
            gib(r["mem_temp_bytes"]), gib(r["mem_total_bytes"]), gib(r["hbm_bytes"]),
            "-" if r["fits_hbm"] is None else ("yes" if r["fits_hbm"] else "NO"))) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Compiles each model's step; prints one JSON line per model (or appends them to --json_out) and a table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--topology", default="v5e:2x2", help="a libtpu topology name (v5e:2x2, v4:2x2x1, ...) or cpu")
    p.add_argument("--models", default="full", help="backbone presets, comma-separated, or full / tiny / all")
    p.add_argument("--per_device_batch", type=int, default=0,
                   help="images per device (default: the reference's per-GPU batch, 5 HRNet / 8 DeepLab)")
    p.add_argument("--crop", type=int, default=513, help="training crop size")
    p.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16"), help="compute dtype")
    p.add_argument("--fsdp", action="store_true", help="shard parameters and optimizer state (config.train.fsdp)")
    p.add_argument("--json_out", default=None, help="append the JSON lines to this file instead of stdout")
    args = p.parse_args(argv)
    if args.per_device_batch < 0:
        raise ValueError(f"--per_device_batch={args.per_device_batch} must be >= 0 (0: the reference's batch)")
    if args.crop < 1:
        raise ValueError(f"--crop={args.crop} must be positive")

    devices = topology_devices(args.topology)
    records = []
    for backbone in bench_models.expand_models(args.models):
        batch = args.per_device_batch or bench_models.reference_batch(backbone)
        record = {**compile_case(backbone, devices, batch, args.crop, args.dtype, args.fsdp),
                  "topology": args.topology}
        records.append(record)
        bench_models.emit(record, args.json_out)
    print("\n" + format_table(records), flush=True)
    return records


if __name__ == "__main__":
    main()
