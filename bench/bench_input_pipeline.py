"""Training-crop throughput of `texrnet_jax.input_pipeline.train_iterator` on TextSeg-sized images.

    python -m bench.bench_input_pipeline [--num_images=64] [--batches=12] [--workdir=/tmp/texrnet_bench]

Writes a fake TextSeg manual dir (split.json + image/annotation/semantic_label tar.gz archives, as
downloaded) with `--num_images` JPEGs of about 1000x800, builds it with the real `textseg` builder, then prints,
for the old path (`config.data.augment_backend='numpy'`: Pillow decode, numpy align-corners taps) and the new one
('opencv') side by side:

1. milliseconds per example of each stage on one thread (read, decode, resize, crop, normalise, batch, transfer);
   their sum is the inverse of images/s per core. The new path ships uint8 crops (`config.data.uint8_batches`) and
   normalises in the jitted step: that time is printed apart, as device work;
2. `train_iterator` end to end with 0 and 2 grain worker processes: images/s, and images per CPU-second of the
   whole process tree (main process, its reader threads, the workers), the per-core figure;
3. the cores one accelerator needs for each paper model at 40% bfloat16 MFU (`_accelerator_rates`).

Parts 1 and 2 run `--repeats` rounds, old and new alternating, and print each figure as min-max over the rounds.

Short-side scale (513, 1025), 513x513 crops, batch 8. This is a script, not a test; the first batch (start-up,
worker spawn) and `--warmup` batches after it (what the prefetch buffers filled meanwhile) are excluded from the
end-to-end timing.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags

from configs import base
from texrnet_jax import input_pipeline, preprocessing
from tfds_builders import build, common

_NUM_IMAGES = flags.DEFINE_integer("num_images", 64, "Fake TextSeg images to build.")
_BATCHES = flags.DEFINE_integer("batches", 12, "Timed batches per setting (after one warm-up batch).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Examples per batch (the reference's 8 per GPU).")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/texrnet_bench", "Where the fake manual dir and build go.")
_WARMUP = flags.DEFINE_integer("warmup", 8, "Batches drawn before the end-to-end clock starts, so that what the "
                                "prefetch buffers held at start-up (up to 3 batches per worker) is not counted.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds of the stage and end-to-end timings; tables print min-max.")


def _span(values) -> str:
    """`min-max` of a list of figures (one figure when they agree to the printed digit)."""
    lo, hi = f"{min(values):.1f}", f"{max(values):.1f}"
    return lo if lo == hi else f"{lo}-{hi}"


def _fake_textseg(manual_dir: str, num_images: int) -> None:
    """A TextSeg-format manual dir: photo-like noise JPEGs (~1000x800) with random text rectangles."""
    os.makedirs(manual_dir, exist_ok=True)
    rng = np.random.default_rng(0)
    ids = [f"a{i:05d}" for i in range(num_images)]
    images, labels, annos = {}, {}, {}
    for i, data_id in enumerate(ids):
        height, width = int(rng.integers(760, 840)), int(rng.integers(960, 1040))
        photo = common.fake_photo(i, height, width).astype(np.int16)
        photo = np.clip(photo + rng.integers(-12, 13, photo.shape), 0, 255).astype(np.uint8)  # JPEG-size texture
        label = np.zeros((height, width), np.uint8)
        for _ in range(4):
            y, x = int(rng.integers(0, height - 80)), int(rng.integers(0, width - 300))
            label[y : y + 60, x : x + 280] = 100
            label[y + 60 : y + 64, x : x + 280] = 200
        images[f"image/{data_id}.jpg"] = common.jpeg_bytes(photo, quality=90)
        labels[f"semantic_label/{data_id}_maskfg.png"] = common.png_bytes(label)
        annos[f"annotation/{data_id}_anno.json"] = b"{}"
        annos[f"annotation/{data_id}_mask.png"] = common.png_bytes((label == 100).astype(np.uint8))
    with open(os.path.join(manual_dir, "split.json"), "w") as f:
        json.dump({"train": ids, "val": ids[:1], "test": ids[1:2]}, f)
    common.write_archive(os.path.join(manual_dir, "image.tar.gz"), images)
    common.write_archive(os.path.join(manual_dir, "semantic_label.tar.gz"), labels)
    common.write_archive(os.path.join(manual_dir, "annotation.tar.gz"), annos)


class _TreeCpu:
    """CPU seconds (user + system) of this process and all its live descendants, read from /proc (Linux)."""

    @staticmethod
    def _stat(pid: int) -> tuple[int, float] | None:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick  # ppid, utime + stime

    def seconds(self) -> float:
        stats = {int(p): self._stat(int(p)) for p in os.listdir("/proc") if p.isdigit()}
        stats = {p: s for p, s in stats.items() if s is not None}
        tree, frontier = {os.getpid()}, [os.getpid()]
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in stats.items():
            children.setdefault(ppid, []).append(pid)
        while frontier:
            for child in children.get(frontier.pop(), []):
                if child not in tree:
                    tree.add(child)
                    frontier.append(child)
        return sum(stats[p][1] for p in tree if p in stats)


def _time(data_cfg, num_workers: int) -> tuple[float, float]:
    """(images/s, images per CPU-second of the whole process tree) of `train_iterator` batches."""
    data_cfg.num_workers = num_workers
    it = input_pipeline.train_iterator(data_cfg, _BATCH_SIZE.value, seed=0)
    # Start-up (worker processes, first reads), then drain what the buffers filled meanwhile: with 2 reader threads
    # prefetching 2 batches per process and grain's one batch per worker in flight, a timing that starts after the
    # first batch counts work done before the clock (a 2-batch timing with 2 workers read 3-4x the steady rate).
    for _ in range(1 + _WARMUP.value):
        next(it)
    cpu = _TreeCpu()
    cpu_start, start = cpu.seconds(), time.perf_counter()
    for _ in range(_BATCHES.value):
        batch = next(it)
        assert batch["image"].shape == (_BATCH_SIZE.value, 513, 513, 3)
    elapsed, cpu_used = time.perf_counter() - start, cpu.seconds() - cpu_start
    if hasattr(it, "close"):
        it.close()
    images = _BATCHES.value * _BATCH_SIZE.value
    return images / elapsed, images / max(cpu_used, 1e-9)


STAGES = ("read", "decode image", "decode mask", "resize+crop image", "resize+crop mask", "normalise", "batch",
          "transfer")


def _stages(data_cfg, backend: str, num_examples: int) -> dict[str, float]:
    """Milliseconds per example of each stage of the training path, one thread, examples in order."""
    import jax

    source = input_pipeline.data_source(data_cfg, data_cfg.train_split, skip_decoding=("image", "mask",
                                                                                        "effect_mask"))
    ms = dict.fromkeys(STAGES, 0.0)
    rng = np.random.default_rng(0)
    mean, std = data_cfg.mean, data_cfg.std
    crops, masks = [], []
    device = jax.devices()[0]

    def timed(name, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        ms[name] += (time.perf_counter() - t) * 1e3
        return out

    for i in range(num_examples):
        ex = timed("read", source.__getitem__, i % len(source))
        image = timed("decode image", preprocessing.decode_image, ex["image"], 3, backend)
        mask = timed("decode mask", preprocessing.decode_image, ex["mask"], 1, backend)[..., 0]
        nh, nw, top, left = preprocessing.random_geometry(*mask.shape, rng, data_cfg.scale_range, 513)
        ch, cw = min(513, nh - top), min(513, nw - left)
        resize = preprocessing.resize_crop_image_opencv if backend == "opencv" else preprocessing.resize_crop_image
        window = timed("resize+crop image", resize, image, (nh, nw), top, left, (ch, cw))
        crop_mask = timed("resize+crop mask", preprocessing.resize_crop_mask, mask, (nh, nw), top, left, (ch, cw))
        if backend == "numpy":  # the earlier path: float32 crops normalised on the host with two temporaries
            scale, shift = preprocessing.normalization_constants(mean, std)
            crop = timed("normalise", lambda x: np.asarray(x, np.float32) * scale - shift, window)
            crops.append(np.zeros((513, 513, 3), np.float32))
            masks.append(np.full((513, 513), 255, np.int32))
        else:  # uint8 crops and masks, normalised in the jitted step (`normalize_batch`, timed apart below)
            crop = window
            crops.append(np.zeros((513, 513, 3), np.uint8))
            masks.append(np.full((513, 513), 255, np.uint8))
        crops[-1][:ch, :cw], masks[-1][:ch, :cw] = crop, crop_mask
        if len(crops) == _BATCH_SIZE.value:
            batch = timed("batch", lambda: {"image": np.stack(crops), "mask": np.stack(masks)})
            if backend != "numpy":
                batch["image_hw"] = np.full((len(crops), 2), 513, np.int32)
            on_device = timed("transfer", lambda b: jax.block_until_ready(jax.device_put(b, device)), batch)
            crops, masks = [], []
    if backend != "numpy":  # the step's normalisation, on the device (the CPU here): not host work on a GPU
        normalize = jax.jit(lambda b: preprocessing.normalize_batch(b, mean, std))
        jax.block_until_ready(normalize(on_device))
        start = time.perf_counter()
        for _ in range(5):
            jax.block_until_ready(normalize(on_device))
        device_ms = (time.perf_counter() - start) / 5 / _BATCH_SIZE.value * 1e3
    else:
        device_ms = 0.0
    return {k: v / num_examples for k, v in ms.items()}, device_ms


def _accelerator_rates() -> list[tuple[str, float]]:
    """Training images/s of one accelerator at 40% bfloat16 MFU, from the FLOPs per 513x513 training image that
    XLA:TPU counts (`docs/benchmarks.md`, 'Ahead of time on TPU topologies': HRNet-W48 804, DeepLab-R101 561 GFLOP)
    and the chips' dense bfloat16 peaks (H100 SXM 989, TPU v5e 197 TFLOP/s). Targets, not measurements."""
    rates = []
    for chip, peak in (("H100 SXM", 989e12), ("TPU v5e", 197e12)):
        for model, gflop in (("HRNet-W48", 804), ("DeepLab-R101", 561)):
            rates.append((f"{model} on {chip}", 0.4 * peak / (gflop * 1e9)))
    return rates


def _eval_host(data_cfg, num_images: int) -> dict[str, dict[str, float]]:
    """Host milliseconds per TextSeg-sized evaluation image, old (`evaluate_split` before: float64 normalisation on
    the host, two float32 `[H, W, 2]` probability maps back, argmax on the host) and new (`Predictor.labels`:
    uint8 in, one uint8 label map back), without the model: the probabilities are stand-ins of the right size.
    Both columns decode as `eval_examples` does now (OpenCV since 12-07; TFDS's decoder before: 7.5 against 6.3
    ms here)."""
    from texrnet_jax import metrics

    rng = np.random.default_rng(0)
    out = {"old": dict.fromkeys(("decode", "normalise", "copy back + argmax", "metrics"), 0.0),
           "new": dict.fromkeys(("decode", "normalise", "copy back + argmax", "metrics"), 0.0)}
    _, examples = input_pipeline.eval_examples(data_cfg, "train", num_images)
    start = time.perf_counter()
    for _, ex in examples:
        t = time.perf_counter()
        out["old"]["decode"] += t - start
        out["new"]["decode"] += t - start
        image, mask = ex["image"], ex["mask"]
        h, w = mask.shape
        t = time.perf_counter()
        np.stack([preprocessing.normalize(image, data_cfg.mean, data_cfg.std)])
        out["old"]["normalise"] += time.perf_counter() - t
        probs = {k: rng.random((1, h, w, 2), np.float32) for k in ("predsem", "predrfn")}
        t = time.perf_counter()
        host = {k: np.array(v) for k, v in probs.items()}  # the device-to-host copies of __call__
        pred = np.argmax(host["predrfn"], axis=-1).astype(np.uint8)[0]
        out["old"]["copy back + argmax"] += time.perf_counter() - t
        t = time.perf_counter()
        np.array(pred)  # the one uint8 map of labels()
        out["new"]["copy back + argmax"] += time.perf_counter() - t
        for path in ("old", "new"):
            t = time.perf_counter()
            metrics.SegMetrics().update(pred, mask)
            out[path]["metrics"] += time.perf_counter() - t
        start = time.perf_counter()
    return {path: {k: v / num_images * 1e3 for k, v in stages.items()} for path, stages in out.items()}


def main(argv) -> None:
    del argv
    import jax
    manual_dir = os.path.join(_WORKDIR.value, "manual")
    data_dir = os.path.join(_WORKDIR.value, "tfds")
    if not os.path.exists(os.path.join(manual_dir, "split.json")):
        start = time.perf_counter()
        _fake_textseg(manual_dir, _NUM_IMAGES.value)
        print(f"fake manual dir: {_NUM_IMAGES.value} images in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    build.prepare("textseg", data_dir=data_dir, manual_dir=manual_dir)
    print(f"textseg build (or reuse): {time.perf_counter() - start:.1f} s")
    data_cfg = base.data_config("textseg")
    data_cfg.data_dir = data_dir
    data_cfg.auto_prepare = False
    data_cfg.train_split = "train"
    data_cfg.crop_size = 513
    data_cfg.scale_range = (513, 1025)
    print(f"cpu cores: {os.cpu_count()}, batch {_BATCH_SIZE.value}, {_BATCHES.value} timed batches; old = 'numpy' "
          f"(Pillow decode, numpy align-corners taps), new = 'opencv' (config.data.augment_backend)")

    rounds = {"stages": [], "device": [], "end to end": []}
    for _ in range(_REPEATS.value):  # the old and new paths alternate, so a slow spell of the machine hits both
        runs = {b: _stages(data_cfg, b, _BATCH_SIZE.value * _BATCHES.value) for b in ("numpy", "opencv")}
        rounds["stages"].append({b: r[0] for b, r in runs.items()})
        rounds["device"].append(runs["opencv"][1])
        per_core = {}
        for backend in ("numpy", "opencv"):
            data_cfg.augment_backend = backend
            data_cfg.uint8_batches = backend == "opencv"
            for num_workers in (0, 2):
                per_core[backend, num_workers] = _time(data_cfg, num_workers)
        rounds["end to end"].append(per_core)
    n = _REPEATS.value
    print(f"\nstages, ms per example on one thread, min-max over {n} rounds (the sum is the inverse of images/s per "
          f"core):")
    print("| stage | old | new |\n| --- | --- | --- |")
    for name in STAGES:
        cells = [_span([r[b][name] for r in rounds["stages"]]) for b in ("numpy", "opencv")]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    totals = [{b: sum(v.values()) for b, v in r.items()} for r in rounds["stages"]]
    print(f"| host total | {_span([t['numpy'] for t in totals])} | {_span([t['opencv'] for t in totals])} |")
    ratio = _span([t["numpy"] / t["opencv"] for t in totals])
    print(f"| images/s per core | {_span([1e3 / t['numpy'] for t in totals])} | "
          f"{_span([1e3 / t['opencv'] for t in totals])} | new/old {ratio}x")
    print(f"new path: normalise in the step on {jax.devices()[0].platform}: {_span(rounds['device'])} ms per example "
          f"(device work, not in the host total)")

    print(f"\ntrain_iterator end to end, min-max over {n} rounds (images per CPU-second counts the whole process tree: "
          f"main process with its 2 reader threads, and worker processes):")
    print("| path | num_workers | images/s | images per CPU-second (per core) |\n| --- | --- | --- | --- |")
    ends = rounds["end to end"]
    for backend in ("numpy", "opencv"):
        for num_workers in (0, 2):
            rates = [r[backend, num_workers][0] for r in ends]
            cpu = [r[backend, num_workers][1] for r in ends]
            print(f"| {'old' if backend == 'numpy' else 'new'} | {num_workers} | {_span(rates)} | {_span(cpu)} |")
    for num_workers in (0, 2):
        ratio = [r["opencv", num_workers][1] / r["numpy", num_workers][1] for r in ends]
        print(f"new/old per core, num_workers={num_workers}: {_span(ratio)}x")

    num_eval = min(_NUM_IMAGES.value, 32)
    host = _eval_host(data_cfg, num_eval)
    print(f"\nevaluation, host ms per TextSeg-sized image ({num_eval} images; decoding runs in a prefetch thread in "
          f"the new path):")
    print("| stage | old | new |\n| --- | --- | --- |")
    for name in host["old"]:
        print(f"| {name} | {host['old'][name]:.2f} | {host['new'][name]:.2f} |")
    print(f"| host total | {sum(host['old'].values()):.2f} | {sum(host['new'].values()):.2f} |")
    print("model side at 40% bfloat16 MFU, 8 reference scales at base size 512, no flip (232 GFLOP per 512x512 "
          "HRNet-W48 eval image, XLA:CPU's count, docs/benchmarks.md, times the 23.75 of the scales' squares):")
    for chip, peak in (("H100 SXM", 989e12), ("TPU v5e", 197e12)):
        model_ms = 232e9 * 23.75 / (0.4 * peak) * 1e3
        print(f"  {chip}: {model_ms:.1f} ms per image")

    print("\ncores one accelerator needs at 513x513 (step rate at 40% MFU / images per CPU-second with 2 workers):")
    print("| accelerator and model | step images/s | cores, old path | cores, new path |\n| --- | --- | --- | --- |")
    for name, rate in _accelerator_rates():
        cores = [_span([rate / r[b, 2][1] for r in ends]) for b in ("numpy", "opencv")]
        print(f"| {name} | {rate:.0f} | {cores[0]} | {cores[1]} |")


if __name__ == "__main__":
    app.run(main)
