"""Training-crop throughput of `texrnet_jax.input_pipeline.train_iterator` on TextSeg-sized images.

    python bench/bench_input_pipeline.py [--num_images=64] [--batches=12] [--workdir=/tmp/texrnet_bench]

Writes a fake TextSeg manual dir (split.json + image/annotation/semantic_label tar.gz archives, as
downloaded) with `--num_images` JPEGs of about 1000x800, builds it with the real `textseg` builder, then
times batches of 513x513 crops with short-side scale (513, 1025) for 0 and 2 grain worker processes. Prints
images/s overall and per worker process (the main process counts as one worker when num_workers is 0).
This is a script, not a test; the first batch (start-up, worker spawn) is excluded from the timing.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import base  # noqa: E402
from texrnet_jax import input_pipeline  # noqa: E402
from tfds_builders import build, common  # noqa: E402

_NUM_IMAGES = flags.DEFINE_integer("num_images", 64, "Fake TextSeg images to build.")
_BATCHES = flags.DEFINE_integer("batches", 12, "Timed batches per setting (after one warm-up batch).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Examples per batch (the reference's 8 per GPU).")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/texrnet_bench", "Where the fake manual dir and build go.")


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


def _time(data_cfg, num_workers: int) -> float:
    data_cfg.num_workers = num_workers
    it = input_pipeline.train_iterator(data_cfg, _BATCH_SIZE.value, seed=0)
    next(it)  # start-up: worker processes, first reads
    start = time.perf_counter()
    for _ in range(_BATCHES.value):
        batch = next(it)
        assert batch["image"].shape == (_BATCH_SIZE.value, 513, 513, 3)
    elapsed = time.perf_counter() - start
    if hasattr(it, "close"):
        it.close()
    return _BATCHES.value * _BATCH_SIZE.value / elapsed


def main(argv) -> None:
    del argv
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
    print(f"cpu cores: {os.cpu_count()}, batch {_BATCH_SIZE.value}, {_BATCHES.value} timed batches")
    for num_workers in (0, 2):
        rate = _time(data_cfg, num_workers)
        print(f"num_workers={num_workers}: {rate:.1f} images/s, {rate / max(1, num_workers):.1f} images/s per worker")


if __name__ == "__main__":
    app.run(main)
