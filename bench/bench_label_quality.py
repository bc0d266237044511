"""Label quality of a trained BF-Net on the held-out sets, for several eval scales and thresholds in one run.

    python -m bench.bench_label_quality --bfnet_workdir=/tmp/bfnet [--scales='1,1.5;1,1.5,2'] [--rules='0.2,0.5,3']
    python -m bench.bench_label_quality --bfnet_workdir=/tmp/bfnet --sets=train --max_images=500  # choose here

The workdir is a finished `configs/bfnet_synth.py` run. The model's probabilities are computed once per set and
scales (the slow part); each rule (lo, hi, colour radius; radius 0 = no colour step, the other colour fields as in
the config) then only recomposes the labels. Sets:

- `test`, `test_quads`: `synth_text/quick` test split, word boxes grown by 2 px, or the baseline rectangles;
- `photo_check`, `photo_check_quads`: the held-out photos and fonts of `synth_text/photo_check`;
- `page_words`, `page_paragraphs`: the real photograph of `real_text` (scikit-image's `page.png`), with word and
  phrase boxes derived from its truth (text pixels closed with a 7x7 square, each component's box plus 2 px) or
  its hand-placed paragraph boxes, and its don't-care boxes;
- `train`: `synth_text/quick` training split, where settings may be chosen without touching the held-out sets.

One JSON line per set, scales and rule: fgIoU, F and the share of box pixels 255 of the BF-Net labels and of the
whole-box baseline, the crop count and the seconds the model took. A script, not a test.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
from absl import app, flags
from scipy import ndimage

from configs import bfnet_synth
from texrnet_jax import weights
from texrnet_jax.weak_labels import compose, geometry, label_flow
from texrnet_jax.weak_labels.records import Record

_WORKDIR = flags.DEFINE_string("bfnet_workdir", None, "A finished configs/bfnet_synth.py run.", required=True)
_SCALES = flags.DEFINE_string("scales", "1,1.5;1,1.5,2", "Eval scale sets, ';'-separated.")
_RULES = flags.DEFINE_string("rules", "0.2,0.5,0;0.2,0.5,3;0.25,0.5,0",
                             "lo,hi[,colour_radius] rules, ';'-separated (radius omitted: the config's).")
_SETS = flags.DEFINE_list("sets", "test,test_quads,photo_check,photo_check_quads,page_words,page_paragraphs",
                          "Sets to label (module docstring).")
_MAX_IMAGES = flags.DEFINE_integer("max_images", 0, "First images of each TFDS set; 0 = all.")

Example = tuple[Record, np.ndarray, np.ndarray]  # record, image, truth


def _tfds_set(config, annotations: str, quads: bool) -> list[Example]:
    cfg = config.copy_and_resolve_references()
    with cfg.unlocked():
        cfg.label.format, cfg.label.annotations = "tfds", annotations
        cfg.label.tfds_boxes = "quads" if quads else "boxes"
        cfg.label.max_images = _MAX_IMAGES.value
    return [(it.record, it.load(), it.truth()) for it in label_flow.tfds_items(cfg.label, cfg.data)]


def _page_set(paragraphs: bool) -> list[Example]:
    from tfds_builders.real_text import truth

    image, mask = truth.page()
    ignore = [geometry.box_polygon(*b) for b in truth.IGNORE_BOXES]
    if paragraphs:
        boxes = [geometry.box_polygon(*b) for b in truth.TEXT_BOXES]
    else:
        text = mask == 1
        components, _ = ndimage.label(ndimage.binary_closing(text, structure=np.ones((7, 7))) | text)
        boxes = [geometry.box_polygon(x.start - 2, y.start - 2, x.stop + 2, y.stop + 2)
                 for y, x in ndimage.find_objects(components)]
    return [(Record("page.png", boxes, ignore), image, mask)]


def _examples(config, name: str) -> list[Example]:
    sets = {
        "train": lambda: _tfds_set(config, "synth_text/quick:train", False),
        "test": lambda: _tfds_set(config, "synth_text/quick:test", False),
        "test_quads": lambda: _tfds_set(config, "synth_text/quick:test", True),
        "photo_check": lambda: _tfds_set(config, "synth_text/photo_check:test", False),
        "photo_check_quads": lambda: _tfds_set(config, "synth_text/photo_check:test", True),
        "page_words": lambda: _page_set(False),
        "page_paragraphs": lambda: _page_set(True),
    }
    if name not in sets:
        raise app.UsageError(f"--sets: unknown set {name!r}; expected some of {sorted(sets)}")
    return sets[name]()


def _pairs(text: str) -> list[tuple[float, ...]]:
    return [tuple(float(v) for v in part.split(",")) for part in text.split(";") if part.strip()]


def main(argv) -> None:
    del argv
    config = bfnet_synth.get_config()
    eval_def, variables, step = weights.load_for_inference(config, _WORKDIR.value)
    print(f"BF-Net of {_WORKDIR.value}, step {step}", flush=True)
    base_rules = compose.rules_from_config(config)
    for name in _SETS.value:
        examples = _examples(config, name)
        pending = [compose.prepare(image, record.boxes, record.ignore, base_rules) for record, image, _ in examples]
        crops = np.concatenate([p.crops for p in pending])
        # The baseline does not depend on the scales or thresholds: once per set.
        whole = [compose.whole_box_labels(truth.shape, record.boxes, record.ignore) for record, _, truth in examples]
        for scales in _pairs(_SCALES.value):
            cfg = config.copy_and_resolve_references()
            with cfg.unlocked():
                cfg.eval.scales = scales
            start = time.perf_counter()
            probs = label_flow.CropModel(eval_def, variables, cfg)(crops)
            seconds = time.perf_counter() - start
            per_image = np.split(probs, np.cumsum([len(p.crops) for p in pending])[:-1])
            for lo, hi, *radius in _pairs(_RULES.value):
                rules = dataclasses.replace(base_rules, lo=lo, hi=hi,
                                            colour_radius=int(radius[0]) if radius else base_rules.colour_radius)
                quality = label_flow.Quality()
                for (record, _, truth), p, image_probs, baseline in zip(examples, pending, per_image, whole,
                                                                          strict=True):
                    quality.update(compose.finish(p, image_probs, rules), baseline, record, truth)
                q = quality.result()
                row = {"set": name, "images": q["num_images"], "crops": len(crops), "scales": scales, "lo": lo,
                       "hi": hi, "colour_radius": rules.colour_radius, "seconds": round(seconds, 1)}
                for key in ("bfnet", "whole_box"):
                    row[key] = {k: round(q[key][k], 4) for k in ("fgiou", "fscore", "box_uncertain_fraction")}
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    app.run(main)
