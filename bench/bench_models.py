"""Model benchmark: compile time, step time, throughput, FLOPs, MFU and memory of TexRNet's jitted steps.

Models (`--models`, comma-separated backbone presets; `tiny` = `hrnet_tiny,deeplab_tiny`, `all` = full + tiny):
TexRNet + HRNetV2-W48 (`hrnet_w48`) and TexRNet + DeepLabV3+ ResNet-101 (`deeplab_r101`) by default, random
weights. Cases (`--cases`, comma-separated):

* `eval_512`: the eval-mode forward (no gradient), 512 x 512, batch 1;
* `train_512`: one training step at 512 x 512, batch 1;
* `train_513`: one training step on 513 x 513 crops at the reference's per-GPU batch (5 for HRNet, 8 for DeepLab);
* `MODE:SIZE:BATCH`, e.g. `train:512:2` or `eval:65:1`: any other shape.

The training step is the project's own (`train.make_train_step` with `optim.build_optimizer` on the reference
optimizer config): forward, TexRNet losses (1 sem + 0.5 rfn + 0.5 trimap), gradient, SGD with momentum 0.9, weight
decay 5e-4 and the per-group LR multipliers, jitted with the state donated. At batch 1 the DeepLab ASPP
image-pooling BatchNorm sees one value per channel, which raises in training mode (in the reference too); as in
the reference's timing, that one BN runs in eval mode there.

Per case: trace and compile time (`lower()`, `compile()`), one warm-up call, then the median of `--repeats`
calls, each blocked until ready; images/s = batch / median. FLOPs come from XLA's cost analysis of the compiled
executable, so they count what XLA runs (both passes and the update for training). MFU divides the achieved
FLOP/s by the dense peak of the device kind and compute dtype in `PEAK_FLOPS` (none for CPUs; `--peak_tflops`
overrides). Memory: `mem_xla_bytes` is the compiled executable's arguments + outputs + temporaries - aliased
(donated) bytes; `mem_device_peak_bytes_in_use` is the accelerator allocator's peak (since process start, it
cannot be reset); `mem_process_max_rss_bytes` is the host process's peak resident set (also since start). The
benchmark first makes glibc keep freed memory (`texrnet_jax.xla_cpu.host_memory`; `machine.host_memory_kept` in the
record; `TEXRNET_KEEP_HOST_MEMORY=0` measures without), so that XLA:CPU's per-call buffers are not page-faulted in again
on every call. `run.py` does the same only with `TEXRNET_KEEP_HOST_MEMORY=1`.

Devices (`--cpu_devices=N`): the host CPU is split into N XLA devices before JAX starts, as `run.py --cpu_devices`
does, and each case runs data-parallel over them as training does (state replicated, batch split on the mesh's
`data` axis, so the batch must divide by N); on a GPU/TPU host the first N devices. `flops_per_step` then sums
the N device programs, and MFU divides by N peaks. The default, 1, is XLA's single device, as every figure in the
docs before this option was measured.

Side by side with PyTorch (`--torch_python`): before each JAX case the same case runs in a subprocess under the
given interpreter with `bench/torch_twin/torch_texrnet.py`, an independent PyTorch port of the reference models checked
against the parity fixtures by `bench/torch_twin/check_torch_parity.py` (float32, PyTorch's defaults,
`torch.set_num_threads` = `--torch_threads`, on CUDA when that interpreter's torch has it). The record gains
`torch_median_s`, `torch_times_s`, `torch_device` and `ratio_to_torch` (JAX median / PyTorch median, same machine,
same run). Only the full presets have a port (`TORCH_ARCHS`); the project's own environment stays torch-free. With
it, JAX does not preallocate accelerator memory (`XLA_PYTHON_CLIENT_PREALLOCATE=false`), so the PyTorch process
finds it free.

Usage::

    python -m bench.bench_models                                  # full models, all three cases, float32
    python -m bench.bench_models --torch_python=/path/to/torch-venv/bin/python   # + PyTorch, same cases
    python -m bench.bench_models --models=hrnet_w48 --cases=train_513 --repeats=2 --json_out=/tmp/bench.jsonl
    python -m bench.bench_models --dtype=bfloat16                 # on a GPU/TPU
    python -m bench.bench_models --models=hrnet_tiny --cases=train:129:16 --cpu_devices=2   # 2 CPU devices
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from configs import base
from texrnet_jax import optim, parallel, train
from texrnet_jax.xla_cpu import host_memory
from texrnet_jax.models import build_model

# Reference PyTorch 2.13 CPU medians (2-core x86-64 Xeon, 2 threads, random weights, median of 3 after a warm-up),
# keyed by (backbone, mode, batch) at 512 x 512.
REFERENCE_S = {
    ("hrnet_w48", "eval", 1): 1.21,
    ("hrnet_w48", "train", 1): 4.42,
    ("deeplab_r101", "eval", 1): 0.87,
    ("deeplab_r101", "train", 1): 3.02,
    ("deeplab_r101", "train", 2): 7.0,
}
REFERENCE_SIZE = 512
# Per-GPU training batch of the reference, by backbone family.
REFERENCE_BATCH = {"hrnet": 5, "deeplab": 8}
NAMED_CASES = {"eval_512": ("eval", 512, 1), "train_512": ("train", 512, 1), "train_513": ("train", 513, None)}
MODEL_GROUPS = {"full": "hrnet_w48,deeplab_r101", "tiny": "hrnet_tiny,deeplab_tiny"}
MODEL_GROUPS["all"] = MODEL_GROUPS["full"] + "," + MODEL_GROUPS["tiny"]

# Backbones `bench/torch_twin/torch_texrnet.py` builds, and the script itself.
TORCH_ARCHS = ("hrnet_w18", "hrnet_w32", "hrnet_w48", "deeplab_r50", "deeplab_r101")
TORCH_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_twin", "torch_texrnet.py")

# Dense peak FLOP/s per device by `device_kind` substring (lower case, first match wins) and compute dtype.
# NVIDIA figures are the SXM data-sheet numbers without sparsity. The models pin `Precision.HIGHEST` on every
# float32 convolution and matmul (no TF32 on GPUs, no bfloat16 passes on TPUs), so float32 work is measured against
# the true float32 peak whatever `jax_default_matmul_precision` says. Unknown kinds (all CPUs) give no MFU.
PEAK_FLOPS = (
    ("h100 pcie", {"bfloat16": 756e12, "float32": 51e12}),
    ("h100", {"bfloat16": 989e12, "float32": 67e12}),
    ("h200", {"bfloat16": 989e12, "float32": 67e12}),
    ("a100", {"bfloat16": 312e12, "float32": 19.5e12}),
    ("tpu v4", {"bfloat16": 275e12}),
    ("tpu v5 lite", {"bfloat16": 197e12}),
    ("tpu v5e", {"bfloat16": 197e12}),
    ("tpu v5", {"bfloat16": 459e12}),  # v5p reports 'TPU v5'
    ("tpu v6 lite", {"bfloat16": 918e12}),
)


def peak_flops(device_kind: str, dtype: str) -> tuple[float | None, str]:
    """Dense peak FLOP/s of one device for `dtype` compute; returns (peak or None, the table entry used)."""
    for pattern, peaks in PEAK_FLOPS:
        if pattern in device_kind.lower():
            return peaks.get(dtype), f"{pattern} {dtype}"
    return None, f"unknown ({device_kind!r})"


def machine_info() -> dict[str, Any]:
    """The machine a record was measured on."""
    dev = jax.devices()[0]
    return {"platform": dev.platform, "device_kind": dev.device_kind, "device_count": jax.device_count(),
            "cpu_count": os.cpu_count(), "arch": platform.machine(), "jax": jax.__version__,
            "matmul_precision": jax.config.jax_default_matmul_precision,
            "host_memory_kept": host_memory.active()}


def xla_flops(compiled) -> float | None:
    """FLOPs of one call from `compiled.cost_analysis()` (a dict, a one-per-device list of dicts, or None)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


def memory_fields(compiled) -> dict[str, int | None]:
    """Compiled-executable bytes, the accelerator allocator's peak and the host's max RSS (both since start)."""
    out: dict[str, int | None] = {"mem_xla_bytes": None, "mem_xla_temp_bytes": None}
    mem = compiled.memory_analysis()
    if mem is not None:
        out["mem_xla_bytes"] = int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
                                   - mem.alias_size_in_bytes)
        out["mem_xla_temp_bytes"] = int(mem.temp_size_in_bytes)
    stats = jax.devices()[0].memory_stats()
    out["mem_device_peak_bytes_in_use"] = int(stats["peak_bytes_in_use"]) if stats else None
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["mem_process_max_rss_bytes"] = int(rss if sys.platform == "darwin" else rss * 1024)
    return out


def _timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def build(backbone: str, dtype: str) -> nnx.Module:
    """TexRNet on `backbone` with random weights (parameters float32, compute `dtype`)."""
    # 'rbg' keys: the random init compiles several times faster on CPU than threefry; values are irrelevant here.
    return build_model({"name": "texrnet", "backbone": backbone, "dtype": dtype},
                       rngs=nnx.Rngs(params=jax.random.key(0, impl="rbg"), dropout=jax.random.key(1, impl="rbg")))


def _fresh(tree):
    # New buffers: the train step donates its state, and the model object must keep its own.
    return jax.tree.map(jnp.copy, tree)


def _place(tree, mesh: Mesh | None, batch: bool = False):
    """On `mesh`: replicated, or split on `data` (`batch`); without a mesh, unchanged (the default device)."""
    if mesh is None:
        return tree
    return jax.device_put(tree, parallel.batch_sharding(mesh) if batch else parallel.replicated(mesh))


def compile_eval(model: nnx.Module, x: jax.Array, mesh: Mesh | None = None):
    """(lower_s, compile_s, run) for the eval-mode forward; data-parallel over `mesh` when given."""
    model.eval()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest, x = _place(params, mesh), _place(rest, mesh), _place(x, mesh, batch=True)
    t0 = time.perf_counter()
    lowered = jax.jit(lambda p, r, x: nnx.merge(graphdef, p, r)(x)).lower(params, rest, x)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, compiled, lambda: jax.block_until_ready(compiled(params, rest, x))


def compile_train(model: nnx.Module, x: jax.Array, label: jax.Array, pool_bn_eval: bool, mesh: Mesh | None = None):
    """(lower_s, compile_s, run) for one donated training step of the project's `train.make_train_step`; with
    `mesh`, data-parallel as `train.py` runs it (state replicated, batch split, BatchNorm statistics global)."""
    cfg = base.get_base_config()
    model.train()
    pool_bn = model.deeplab.aspp.conv5[2] if pool_bn_eval else None
    if pool_bn is not None:
        pool_bn.use_running_average = True  # as in the reference's batch-1 timing
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if pool_bn is not None:
        pool_bn.use_running_average = False
    tx, schedule = optim.build_optimizer(cfg.optim, params)
    state = _place(train.init_state(_fresh(params), _fresh(rest), tx), mesh)
    step = train.make_train_step(graphdef, tx, schedule, cfg.loss, cfg.data.ignore_label)
    batch = _place({"image": x, "mask": label}, mesh, batch=True)
    out_shardings = None if mesh is None else (parallel.replicated(mesh), parallel.replicated(mesh))
    t0 = time.perf_counter()
    lowered = jax.jit(step, donate_argnums=0, out_shardings=out_shardings).lower(state, batch)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    carry = [state]

    def run():
        carry[0], metrics = compiled(carry[0], batch)
        jax.block_until_ready(metrics)

    return t1 - t0, t2 - t1, compiled, run


def torch_case(torch_python: str, backbone: str, mode: str, size: int, batch: int, repeats: int,
               threads: int | None) -> dict[str, Any]:
    """Times one case with the PyTorch port under `torch_python`, in its own process; returns its JSON record.

    Raises RuntimeError naming the interpreter and the case (with the end of its output) when it cannot run.
    """
    cmd = [torch_python, TORCH_SCRIPT, f"--arch={backbone}", f"--mode={mode}", f"--size={size}", f"--batch={batch}",
           f"--repeats={repeats}"]
    if threads:
        cmd.append(f"--threads={threads}")
    what = f"--torch_python={torch_python}: the PyTorch case {backbone} {mode} {size}x{size} batch {batch}"
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    except OSError as e:
        raise RuntimeError(f"{what} could not start: {e}") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {tail}")
    return json.loads(lines[-1])


def reference_batch(backbone: str) -> int:
    """The reference's per-GPU training batch for `backbone`'s family (`REFERENCE_BATCH`)."""
    return REFERENCE_BATCH[backbone.split("_")[0]]


def parse_cases(spec: str, backbone: str) -> list[tuple[str, str, int, int]]:
    """`--cases` for one backbone as (name, mode, size, batch)."""
    out = []
    for name in filter(None, spec.split(",")):
        if name in NAMED_CASES:
            mode, size, batch = NAMED_CASES[name]
        else:
            try:
                mode, size, batch = name.split(":")
                size, batch = int(size), int(batch)
            except ValueError:
                raise ValueError(f"case {name!r} is neither one of {sorted(NAMED_CASES)} nor MODE:SIZE:BATCH") from None
            if mode not in ("eval", "train"):
                raise ValueError(f"case {name!r}: mode must be 'eval' or 'train'")
        if batch is None:
            batch = reference_batch(backbone)
        out.append((name, mode, size, batch))
    return out


def run_case(model: nnx.Module, backbone: str, case: tuple[str, str, int, int], dtype: str, repeats: int,
             peak_override: float | None, torch_python: str | None = None,
             torch_threads: int | None = None, devices: int = 1) -> dict[str, Any]:
    """Compiles and times one case (first with PyTorch when `torch_python` is set), data-parallel over the first
    `devices` devices when more than one; returns its JSON record."""
    name, mode, size, batch = case
    if batch % devices:
        raise ValueError(f"case {name!r}: batch {batch} does not split over --cpu_devices={devices} devices")
    mesh = parallel.make_mesh(devices) if devices > 1 else None
    # PyTorch first, in a process that has exited (and freed its memory) before JAX allocates for this case.
    ported = torch_python is not None and backbone in TORCH_ARCHS
    tr = torch_case(torch_python, backbone, mode, size, batch, repeats, torch_threads) if ported else {}
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, size, size, 3)), jnp.float32)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if mode == "eval":
        lower_s, compile_s, compiled, run = compile_eval(model, x, mesh)
    else:
        label = jnp.asarray(rng.integers(0, 2, size=(batch, size, size)), jnp.int32)
        pool_bn_eval = backbone.startswith("deeplab") and batch == 1
        lower_s, compile_s, compiled, run = compile_train(model, x, label, pool_bn_eval, mesh)
    times = _timed(run, repeats)
    median = statistics.median(times)
    machine = machine_info()
    flops = xla_flops(compiled)
    if flops:
        flops *= devices  # cost analysis counts one device's program
    achieved = flops / median if flops else None
    peak, peak_basis = peak_flops(machine["device_kind"], dtype)
    peak = peak * devices if peak else None
    if peak_override:
        peak, peak_basis = peak_override * devices, "--peak_tflops"
    ref = REFERENCE_S.get((backbone, mode, batch)) if size == REFERENCE_SIZE else None
    record = {
        "model": f"texrnet_{backbone}", "backbone": backbone, "case": name, "mode": mode, "size": size,
        "batch": batch, "dtype": dtype, "repeats": repeats, "devices": devices,
        "lower_s": round(lower_s, 3), "compile_s": round(compile_s, 3),
        "median_s": round(median, 6), "times_s": [round(t, 6) for t in times],
        "images_per_s": round(batch / median, 3),
        "flops_per_step": flops, "gflops_per_image": round(flops / batch / 1e9, 2) if flops else None,
        "achieved_tflops": round(achieved / 1e12, 4) if achieved else None,
        "peak_tflops": round(peak / 1e12, 1) if peak else None, "peak_basis": peak_basis,
        "mfu": round(achieved / peak, 4) if achieved and peak else None,
        **memory_fields(compiled),
        "reference_torch_s": ref, "ratio_to_reference": round(median / ref, 3) if ref else None,
        "torch_median_s": tr.get("median_s"), "torch_times_s": tr.get("times_s"), "torch_device": tr.get("device"),
        "torch_threads": tr.get("threads"), "torch_version": tr.get("torch"),
        "torch_cudnn_allow_tf32": tr.get("cudnn_allow_tf32"),
        "ratio_to_torch": round(median / tr["median_s"], 3) if tr.get("median_s") else None,
        "loadavg_1m_before": round(load, 2) if load is not None else None,
        "machine": machine,
    }
    return record


def format_table(records: list[dict[str, Any]]) -> str:
    """A readable fixed-width table of the records."""
    head = (f"{'model':22s} {'case':11s} {'batch':>5s} {'dtype':>8s} {'compile s':>9s} {'median s':>9s} "
            f"{'img/s':>7s} {'GFLOP/img':>9s} {'TFLOP/s':>8s} {'MFU':>6s} {'XLA MiB':>8s} {'RSS MiB':>8s} "
            f"{'spec s':>6s} {'/spec':>6s} {'torch s':>7s} {'/torch':>6s}")
    lines = [head, "-" * len(head)]

    def fmt(v, spec):
        return format(v, spec) if v is not None else "-"

    for r in records:
        mib = 1024 * 1024
        lines.append(
            f"{r['model']:22s} {r['case']:11s} {r['batch']:5d} {r['dtype']:>8s} {r['compile_s']:9.1f} "
            f"{r['median_s']:9.3f} {r['images_per_s']:7.2f} {fmt(r['gflops_per_image'], '9.1f'):>9s} "
            f"{fmt(r['achieved_tflops'], '8.3f'):>8s} {fmt(r['mfu'], '6.1%'):>6s} "
            f"{fmt(r['mem_xla_bytes'] and r['mem_xla_bytes'] / mib, '8.0f'):>8s} "
            f"{r['mem_process_max_rss_bytes'] / mib:8.0f} {fmt(r['reference_torch_s'], '6.2f'):>6s} "
            f"{fmt(r['ratio_to_reference'], '6.2f'):>6s} {fmt(r.get('torch_median_s'), '7.3f'):>7s} "
            f"{fmt(r.get('ratio_to_torch'), '6.2f'):>6s}")
    m = records[0]["machine"] if records else machine_info()
    lines.append(f"machine: {m['platform']} / {m['device_kind']} x{m['device_count']}, {m['cpu_count']} CPUs, "
                 f"jax {m['jax']}; /spec = median / the reference PyTorch CPU median "
                 f"(REFERENCE_S, its 2-core machine); torch s, /torch = the PyTorch port on this machine in "
                 f"this run (--torch_python)")
    return "\n".join(lines)


def expand_models(spec: str) -> list[str]:
    """`--models`: backbone presets, comma-separated, with the groups of `MODEL_GROUPS` expanded."""
    return [m for g in spec.split(",") for m in MODEL_GROUPS.get(g, g).split(",") if m]


def emit(record: dict[str, Any], json_out: str | None) -> None:
    """One JSON line: appended to `json_out`, or printed."""
    line = json.dumps(record)
    if json_out:
        with open(json_out, "a") as f:
            f.write(line + "\n")
    else:
        print(line, flush=True)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Runs the benchmark; prints one JSON line per case (or appends them to --json_out) and a table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="full", help="backbone presets, comma-separated, or full / tiny / all")
    p.add_argument("--cases", default="eval_512,train_512,train_513",
                   help=f"comma-separated: {', '.join(NAMED_CASES)} or MODE:SIZE:BATCH")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="compute dtype")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per case (after one warm-up)")
    p.add_argument("--peak_tflops", type=float, default=None, help="device peak for MFU, overriding PEAK_FLOPS")
    p.add_argument("--cpu_devices", type=int, default=1,
                   help="split the host CPU into this many XLA devices (as run.py --cpu_devices) and run each case "
                        "data-parallel over them; 1 (default): XLA's single device. On GPUs/TPUs: the first N devices")
    p.add_argument("--json_out", default=None, help="append the JSON lines to this file instead of stdout")
    p.add_argument("--torch_python", default=None,
                   help="a Python interpreter with torch: also time every case with "
                        "bench/torch_twin/torch_texrnet.py under it")
    p.add_argument("--torch_threads", type=int, default=os.cpu_count(),
                   help="torch.set_num_threads for the PyTorch cases (default: the CPU count, as the reference timed)")
    args = p.parse_args(argv)
    if args.cpu_devices < 1:
        p.error(f"--cpu_devices={args.cpu_devices} must be a positive device count")

    # XLA:CPU's per-call buffers reuse freed memory instead of page-faulting it in again
    # (texrnet_jax/xla_cpu/host_memory.py; TEXRNET_KEEP_HOST_MEMORY=0 measures without). Before the first
    # computation starts JAX's threads.
    host_memory.keep_freed_host_memory()
    if args.torch_python:
        # PyTorch runs in a child process while this one holds the accelerator: without this JAX would have
        # reserved most of its memory already (read when the backend starts, which is after this line).
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.cpu_devices > 1:
        # Before the backend starts; left to XLA_FLAGS / JAX_NUM_CPU_DEVICES where they set the count already. The
        # batch argument only matters to the automatic count (-1), which the benchmark does not offer.
        parallel.configure_cpu_devices(args.cpu_devices, global_batch_size=args.cpu_devices)
    backbones = expand_models(args.models)
    peak_override = args.peak_tflops * 1e12 if args.peak_tflops else None
    records = []
    for backbone in backbones:
        cases = parse_cases(args.cases, backbone)  # before the (slow) build: fail early on a bad spec
        model = build(backbone, args.dtype)
        n_params = sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))
        for case in cases:
            record = {**run_case(model, backbone, case, args.dtype, args.repeats, peak_override, args.torch_python,
                                 args.torch_threads, args.cpu_devices),
                      "params_M": round(n_params / 1e6, 2)}
            records.append(record)
            emit(record, args.json_out)
    print("\n" + format_table(records), flush=True)
    return records


if __name__ == "__main__":
    main()
