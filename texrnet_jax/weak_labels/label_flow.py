"""`run.py --mode=label`: box annotations + a trained BF-Net -> one 0/1/255 label PNG per image, and its quality.

    python run.py --config=configs/bfnet_synth.py --workdir=W --mode=label --config.label.format=coco_text \
        --config.label.annotations=cocotext.v2.json --config.label.images=train2014 --config.label.output=O

The crops of many images are batched into fixed-size model calls, sharded over this process's devices (the
multi-scale `evaluate.Predictor` with `config.eval`); processes label disjoint shares of the images. Every PNG is
written atomically (a temporary file, then a rename), so a killed run leaves no truncated file and a rerun skips
the images already written. Problems (unreadable image, box outside the image, malformed annotation) are logged
with the file, line or id and skipped; the run ends with a one-line summary.

With truth (`config.label.truth`, or the masks of a `tfds` source) it also writes `<output>/quality.json`:
fgIoU and F of the labels against the truth on the pixels where both are 0 or 1, the fraction of box pixels that
are 255, and the same for the whole-box baseline (`compose.whole_box_labels`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from PIL import Image

from texrnet_jax import metrics, preprocessing
from texrnet_jax.weak_labels import compose, geometry, layouts
from texrnet_jax.weak_labels.records import Record


@dataclasses.dataclass
class Item:
    """One image to label: its record, how to read its pixels, and its truth (if known)."""

    record: Record
    load: Callable[[], np.ndarray]
    truth: Callable[[], np.ndarray | None] = lambda: None


def read_rgb(path: str | pathlib.Path) -> np.ndarray:
    """`[H, W, 3]` uint8 of an image file as stored (no EXIF rotation: boxes and builders use stored pixels)."""
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


def _read_truth(path: pathlib.Path) -> np.ndarray | None:
    if not path.exists():
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) if im.mode not in ("L", "P") else np.asarray(im)


def file_items(label_cfg, problems: list[str]) -> list[Item]:
    """Items of a `coco_text`, `icdar` or `boxes_json` annotation source (`formats.read_annotations`)."""
    if not label_cfg.images:
        raise ValueError(f"config.label.images is empty: the folder that the {label_cfg.format} annotations' image "
                         f"names are relative to")
    images = pathlib.Path(label_cfg.images).expanduser()
    if not images.is_dir():
        raise FileNotFoundError(f"config.label.images={label_cfg.images!r} is not a folder")
    from texrnet_jax.weak_labels import formats

    records, found = formats.read_annotations(label_cfg.format, str(pathlib.Path(label_cfg.annotations).expanduser()),
                                              str(images))
    problems.extend(found)
    truth_dir = pathlib.Path(label_cfg.truth).expanduser() if label_cfg.truth else None
    items = []
    for record in records:
        stem = pathlib.PurePath(record.image).stem
        truth = (lambda p=truth_dir / f"{stem}.png": _read_truth(p)) if truth_dir else (lambda: None)
        items.append(Item(record, lambda p=images / record.image: read_rgb(p), truth))
    return items


def tfds_items(label_cfg, data_cfg) -> list[Item]:
    """Items of a TFDS dataset with word boxes: `config.label.annotations` = 'name[/config]:split'.

    Boxes are the `word_boxes` grown by `box_pad` px on every side (`tfds_boxes='boxes'`) or the `word_quads`
    (`'quads'`); the truth is the dataset's own mask.
    """
    from texrnet_jax import input_pipeline

    name, sep, split = label_cfg.annotations.rpartition(":")
    if not sep or not name:
        raise ValueError(f"config.label.annotations={label_cfg.annotations!r}: for format 'tfds' give "
                         f"'<dataset>:<split>', e.g. 'synth_text/quick:test'")
    if label_cfg.tfds_boxes not in ("boxes", "quads"):
        raise ValueError(f"config.label.tfds_boxes={label_cfg.tfds_boxes!r}: expected 'boxes' or 'quads'")
    cfg = data_cfg.copy_and_resolve_references()
    with cfg.unlocked():
        cfg.name, cfg.auto_prepare = name, True
    source = input_pipeline.data_source(cfg, split)
    n = len(source) if not label_cfg.max_images else min(len(source), label_cfg.max_images)
    pad = float(label_cfg.box_pad)
    items = []
    for i in range(n):
        ex = source[i]
        if "word_boxes" not in ex:
            raise ValueError(f"dataset {name!r} has no word_boxes feature (synth_text >= 2.1.0 has)")
        ident = ex["id"].decode() if isinstance(ex["id"], bytes) else str(ex["id"])
        if label_cfg.tfds_boxes == "quads":
            boxes = [np.asarray(q, np.float64) for q in np.asarray(ex["word_quads"]).reshape(-1, 4, 2)]
        else:
            boxes = [geometry.box_polygon(x1 - pad, y1 - pad, x2 + pad, y2 + pad)
                     for y1, x1, y2, x2 in np.asarray(ex["word_boxes"], np.float64).reshape(-1, 4)]
        image, mask = np.asarray(ex["image"]), np.asarray(ex["mask"])[..., 0]
        items.append(Item(Record(f"{ident}.png", boxes, [], split, f"{name}:{split} {ident}"),
                          lambda im=image: im, lambda m=mask: m))
    return items


class CropModel:
    """`[K, S, S, 3]` uint8 crops -> `[K, S, S]` text probabilities, in fixed-size batches over the devices."""

    def __init__(self, eval_def, variables, config):
        from texrnet_jax import evaluate

        eval_cfg = config.eval.copy_and_resolve_references()
        with eval_cfg.unlocked():
            eval_cfg.base_size = 0  # crops are evaluated at their own size, as the model was trained
        self.predictor = evaluate.Predictor(eval_def, variables, eval_cfg)
        devices = self.predictor.num_devices
        self.batch = max(devices, -(-int(config.label.batch_size) // devices) * devices)
        self.mean, self.std = tuple(config.data.mean), tuple(config.data.std)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(crops), self.batch):
            chunk = crops[start:start + self.batch]
            x = preprocessing.normalize_values(chunk, self.mean, self.std)
            if len(x) < self.batch:  # one compiled shape for every call
                x = np.concatenate([x, np.zeros((self.batch - len(x), *x.shape[1:]), np.float32)])
            probs = self.predictor(x)
            key = "predrfn" if "predrfn" in probs else "predsem"
            out.append(probs[key][: len(chunk), ..., 1])
        return np.concatenate(out) if out else np.zeros((0, *crops.shape[1:3]), np.float32)


def _outside(polygon: np.ndarray, h: int, w: int) -> bool:
    (x1, y1), (x2, y2) = polygon.min(0), polygon.max(0)
    return x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h or not geometry.polygon_mask(polygon, h, w).any()


def _write_png(path: pathlib.Path, label: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    Image.fromarray(label.astype(np.uint8), mode="L").save(tmp, format="png")
    os.replace(tmp, path)


class Quality:
    """Label quality against the truth: the BF-Net labels and the whole-box baseline."""

    def __init__(self):
        self.labels, self.whole = metrics.SegMetrics(), metrics.SegMetrics()
        self.box_px = self.box_uncertain = self.whole_uncertain = 0
        self.images = 0

    def update(self, label: np.ndarray, whole: np.ndarray, record: Record, truth: np.ndarray) -> None:
        if truth.shape != label.shape:
            raise ValueError(f"truth of {record.image} is {truth.shape[1]}x{truth.shape[0]}, the image "
                             f"{label.shape[1]}x{label.shape[0]}")
        h, w = label.shape
        inside = np.zeros((h, w), bool)
        for polygon in record.boxes:
            inside |= geometry.polygon_mask(polygon, h, w)
        self.labels.update(label, np.where(label == compose.UNCERTAIN, compose.UNCERTAIN, truth))
        self.whole.update(whole, np.where(whole == compose.UNCERTAIN, compose.UNCERTAIN, truth))
        self.box_px += int(inside.sum())
        self.box_uncertain += int((inside & (label == compose.UNCERTAIN)).sum())
        self.whole_uncertain += int((inside & (whole == compose.UNCERTAIN)).sum())
        self.images += 1

    def result(self) -> dict[str, Any]:
        def part(m, uncertain):
            r = m.result()
            return {"fgiou": r["fgiou"], "fscore": r["fscore"], "precision": r["precision"], "recall": r["recall"],
                    "box_uncertain_fraction": uncertain / max(1, self.box_px)}

        return {"num_images": self.images, "box_pixels": self.box_px,
                "bfnet": part(self.labels, self.box_uncertain), "whole_box": part(self.whole, self.whole_uncertain)}


@dataclasses.dataclass
class Report:
    written: int = 0
    existing: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    quality: dict[str, Any] | None = None

    def summary(self) -> str:
        why = ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items()))
        return (f"label: {self.written} written, {self.existing} already there, {sum(self.skipped.values())} "
                f"skipped{f' ({why})' if why else ''}")


def _prepared(items: list[Item], rules: compose.Rules, report: Report, log: Callable[[str], None],
              paths: list[pathlib.Path]) -> Iterator[tuple[Item, pathlib.Path, compose.Pending | None, np.ndarray]]:
    """(item, path, pending crops or None when the PNG exists, image) in order, read two images ahead in threads."""

    def work(k):
        item, path = items[k], paths[k]
        image = item.load()
        if path.exists():
            with Image.open(path) as im:
                return k, None, image, np.asarray(im)
        h, w = image.shape[:2]
        boxes = []
        for j, polygon in enumerate(item.record.boxes):
            if _outside(polygon, h, w):
                log(f"{item.record.source}: box {j} {np.round(polygon.min(0), 1).tolist()}-"
                    f"{np.round(polygon.max(0), 1).tolist()} is outside the {w}x{h} image (skipped)")
                report.skipped["boxes outside the image"] += 1
                continue
            boxes.append(polygon)
        item.record = dataclasses.replace(item.record, boxes=boxes)
        return k, compose.prepare(image, boxes, item.record.ignore, rules), image, None

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        queue: collections.deque = collections.deque()
        nxt = 0
        while nxt < len(items) or queue:
            while nxt < len(items) and len(queue) < 4:
                queue.append((nxt, pool.submit(work, nxt)))
                nxt += 1
            k, future = queue.popleft()
            try:
                _, pending, image, existing = future.result()
            except Exception as e:  # an unreadable or corrupt image: name it and go on
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                log(f"{items[k].record.source or items[k].record.image}: cannot read image {items[k].record.image}: "
                    f"{first} (skipped)")
                report.skipped["unreadable images"] += 1
                continue
            yield items[k], paths[k], pending, (existing if pending is None else image)


def label_items(items: list[Item], predict_fn: Callable[[np.ndarray], np.ndarray], rules: compose.Rules,
                output: pathlib.Path, layout: str, batch: int, progress: bool = True,
                log: Callable[[str], None] | None = None) -> Report:
    """Labels `items` into `output` (`layouts.label_path`); crops of consecutive images share model calls."""
    from tqdm import tqdm

    report = Report()
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    paths = []
    kept = []
    for item in items:
        try:
            paths.append(layouts.label_path(layout, output, item.record))
            kept.append(item)
        except ValueError as e:
            log(f"{e} (skipped)")
            report.skipped["images the layout cannot place"] += 1
    quality = Quality()
    has_truth = False
    bar = tqdm(total=len(kept), desc="label", unit="img", disable=not progress)
    waiting: collections.deque = collections.deque()  # (item, path, pending, probs list)
    queued: list[tuple[int, np.ndarray]] = []  # (index into waiting order, crop)

    def finish_ready(flush: bool) -> None:
        nonlocal has_truth
        if queued and (flush or len(queued) >= batch):
            crops = np.stack([c for _, c in queued])
            probs = predict_fn(crops)
            for (slot, _), p in zip(queued, probs, strict=True):
                slot.append(p)
            queued.clear()
        while waiting and len(waiting[0][3]) == len(waiting[0][2].crops):
            item, path, pending, probs = waiting.popleft()
            label = compose.finish(pending, np.asarray(probs).reshape(len(probs), rules.size, rules.size), rules)
            _write_png(path, label)
            report.written += 1
            has_truth |= _score(quality, item, label)
            bar.update(1)

    for item, path, pending, pixels in _prepared(kept, rules, report, log, paths):
        if pending is None:  # already written by an earlier run
            report.existing += 1
            has_truth |= _score(quality, item, pixels)
            bar.update(1)
            continue
        slot: list = []
        waiting.append((item, path, pending, slot))
        for crop in pending.crops:
            queued.append((slot, crop))
            if len(queued) >= batch:
                finish_ready(False)
        finish_ready(False)
    finish_ready(True)
    bar.close()
    report.quality = quality.result() if has_truth else None
    return report


def _score(quality: Quality, item: Item, label: np.ndarray) -> bool:
    truth = item.truth()
    if truth is None:
        return False
    h, w = label.shape
    quality.update(label, compose.whole_box_labels((h, w), item.record.boxes, item.record.ignore), item.record, truth)
    return True


def label_from_config(config, workdir: str, model: tuple[Any, Any] | None = None, quiet: bool = False) -> Report:
    """`--mode=label` (module docstring); `model` = `(eval_graphdef, variables)` to skip loading the workdir's."""
    label_cfg = config.label
    known = ("coco_text", "icdar", "boxes_json", "tfds")
    if label_cfg.format not in known:
        raise ValueError(f"config.label.format={label_cfg.format!r}: expected one of {list(known)}")
    if not label_cfg.annotations:
        raise ValueError("config.label.annotations is empty: the annotation file or folder to read boxes from")
    if label_cfg.layout not in layouts.LAYOUTS:
        raise ValueError(f"config.label.layout={label_cfg.layout!r}: expected one of {list(layouts.LAYOUTS)}")
    rules = compose.rules_from_config(config)
    output = pathlib.Path(label_cfg.output or pathlib.Path(workdir) / "labels").expanduser()
    problems: list[str] = []
    items = tfds_items(label_cfg, config.data) if label_cfg.format == "tfds" else file_items(label_cfg, problems)
    if label_cfg.max_images:
        items = items[: label_cfg.max_images]
    items = items[jax.process_index()::jax.process_count()]
    log = (lambda m: None) if quiet else (lambda m: print(f"label: {m}", file=sys.stderr, flush=True))
    for p in problems:
        log(p)
    if model is None:
        from texrnet_jax import weights

        eval_def, variables, _ = weights.load_for_inference(config, workdir)
    else:
        eval_def, variables = model
    crop_model = CropModel(eval_def, variables, config)
    report = label_items(items, crop_model, rules, output, label_cfg.layout, crop_model.batch, progress=not quiet,
                         log=log)
    report.skipped["annotation problems"] += len(problems)
    report.skipped = +report.skipped  # drop zero counts
    layouts.finalize(label_cfg.layout, output, [i.record for i in items])
    if report.quality is not None and jax.process_index() == 0:
        report.quality["rules"] = dataclasses.asdict(rules)
        (output / "quality.json").write_text(json.dumps(_json_safe(report.quality), indent=1) + "\n")
    if not quiet:
        print(report.summary() + f" -> {output}", flush=True)
        if report.quality is not None:
            q = report.quality
            print(f"label: quality on {q['num_images']} images: BF-Net fgIoU {q['bfnet']['fgiou']:.4f} F "
                  f"{q['bfnet']['fscore']:.4f}, {100 * q['bfnet']['box_uncertain_fraction']:.1f}% of box pixels 255; "
                  f"whole box fgIoU {q['whole_box']['fgiou']:.4f} F {q['whole_box']['fscore']:.4f}", flush=True)
        if label_cfg.layout != "flat":
            print(f"label: {layouts.instructions(label_cfg.layout, output)}", flush=True)
    return report


def _json_safe(value):
    """NaN (a metric with no pixel to count) -> null, so that quality.json is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and value != value else value


def evaluate_bfnet(config, model: tuple[Any, Any], workdir: str | pathlib.Path) -> dict[str, Any]:
    """The evaluation of a BF-Net run: label quality on `config.data.eval_split` treated as a box-only data set
    (its word boxes in, its masks as truth), and on `config.eval.check_set` if set; labels and quality.json in
    `<workdir>/eval/labels_<dataset>_<split>/`.

    Returns:
      `{'split', 'fgiou', 'fscore', 'box_uncertain_fraction', 'whole_box': {...}, 'check': {...}}`.
    """
    def one(name: str, split: str) -> dict[str, Any]:
        cfg = config.copy_and_resolve_references()
        with cfg.unlocked():
            cfg.label.format, cfg.label.annotations, cfg.label.layout = "tfds", f"{name}:{split}", "flat"
            cfg.label.output = str(pathlib.Path(workdir) / "eval" / f"labels_{name.replace('/', '_')}_{split}")
            cfg.label.max_images = config.eval.max_images
        report = label_from_config(cfg, str(workdir), model=model, quiet=True)
        q = report.quality
        out = {"split": f"{name}:{split} labels", **q["bfnet"], "whole_box": q["whole_box"],
               "num_images": q["num_images"]}
        print(f"label quality {name}:{split} ({q['num_images']} images): BF-Net fgIoU {out['fgiou']:.4f} "
              f"F {out['fscore']:.4f}, {100 * out['box_uncertain_fraction']:.1f}% of box pixels 255; whole box "
              f"fgIoU {q['whole_box']['fgiou']:.4f} F {q['whole_box']['fscore']:.4f}", flush=True)
        return out

    result = one(config.data.name, config.data.eval_split)
    if config.eval.get("check_set", ""):
        result["check"] = one(config.eval.check_set, config.eval.check_split)
    return result
