"""`textseg`: TextSeg (Xu et al., CVPR 2021), 4,024 images with word, word-effect and character masks.

Raw-to-canonical mapping (`<id>_maskfg.png` of `semantic_label[_v1].tar.gz`):

    raw 0    background   -> mask 0
    raw 100  word (text)  -> mask 1
    raw 200  word-effect  -> mask 0   (background in training and evaluation, as in the reference and Hi-SAM)
    raw 255  ignore       -> mask 255
    any other value       -> the build fails, naming the file and the values

Word effects stay recoverable: `effect_mask` is 1 where the raw label is 200 and 0 elsewhere.

Character features come from `<id>_anno.json` (words -> `char` entries with `text` and `mask_value`) and the
instance map `<id>_mask.png`: for each character whose `mask_value` has pixels, `char_boxes` holds the tight
box of those pixels as `[y1, x1, y2, x2]` (max exclusive, not squared; the reference squares boxes at training
time) and `char_labels` its class (0-9 digits, 10-35 letters a-z of either case, 36 anything else).

Configs: `v2` (default) reads the released `semantic_label.tar.gz`; `v1` reads `semantic_label_v1.tar.gz`,
the labels of the paper's numbers (TexRNet issue #36). Splits come from `split.json`: `train` (2,646),
`val` (340), `test` (1,038); the reference trains on train+val (`split='train+val'`) and tests on `test`.

Build without TensorFlow:

    python -m tfds_builders.build textseg --manual_dir=~/downloads/textseg --data_dir=~/tensorflow_datasets
    python -m tfds_builders.build textseg/v1 --manual_dir=~/downloads/textseg

or with the optional `build` extra (requirements-build.txt), from the repository root:

    PYTHONPATH=. tfds build tfds_builders/textseg --manual_dir=~/downloads/textseg --file_format=array_record
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import common

SPLITS = ("train", "val", "test")
# Raw `_maskfg.png` value -> canonical mask value; see the module docstring.
MASK_MAPPING = {0: 0, 100: 1, 200: 0, 255: 255}
EFFECT_VALUE = 200
# File-name endings of the label files of one id, by their role in `Sample.labels`.
_SUFFIXES = {"mask": "_maskfg.png", "anno": "_anno.json", "instances": "_mask.png"}

_INSTRUCTIONS = """\
Request TextSeg from textseg.dataset@gmail.com (academic use only; see
https://github.com/SHI-Labs/Rethinking-Text-Segmentation). Put these files, as downloaded, in the manual dir:

    split.json
    image.tar.gz            (<id>.jpg)
    annotation.tar.gz       (<id>_anno.json, <id>_mask.png, <id>_maskeff.png)
    semantic_label.tar.gz   (<id>_maskfg.png; config v2, the default)
    semantic_label_v1.tar.gz (<id>_maskfg.png; only for config v1)

Already-unpacked folders work too (any folder names, files are found by suffix); for v1 the folder or archive
holding the v1 `_maskfg.png` files must have 'v1' in its name, e.g. semantic_label_v1/.
"""


@dataclasses.dataclass(eq=False, kw_only=True)
class TextSegConfig(tfds.core.BuilderConfig):
    """Which label release to read.

    Attributes:
      label_version: 'v2' (released `semantic_label`) or 'v1' (`semantic_label_v1`).
    """

    label_version: str = "v2"


def _is_v1(entry: common.Entry) -> bool:
    return any("v1" in folder for folder in entry.folders)


def char_boxes(anno: dict, instances: np.ndarray) -> dict[str, np.ndarray]:
    """Character boxes and classes from an `_anno.json` dict and its `_mask.png` instance map.

    Args:
      anno: {word_key: {'text', 'bbox', 'char': {char_key: {'text', 'mask_value', 'bbox'}}}}.
      instances: uint8 [H, W] instance map (0 background, 1..n characters, 255 ignore).

    Returns:
      `char_boxes` [N, 4] float32 `[y1, x1, y2, x2]` (max exclusive) and `char_labels` [N] int32, in the order
      of the json, for the characters whose `mask_value` occurs in `instances`.
    """
    # One pass over the labelled pixels gives every instance's extent (instead of one mask per character).
    ys, xs = np.nonzero((instances > 0) & (instances < 255))
    values = instances[ys, xs]
    lo = np.full((256, 2), np.iinfo(np.int64).max)
    hi = np.full((256, 2), -1)
    np.minimum.at(lo, values, np.stack([ys, xs], 1))
    np.maximum.at(hi, values, np.stack([ys, xs], 1))
    boxes, labels = [], []
    for _, word in sorted(anno.items()):
        chars = word.get("char") if isinstance(word, dict) else None
        for _, char in sorted((chars or {}).items()):
            value = char.get("mask_value")
            if not isinstance(value, int) or not 0 < value < 255 or hi[value, 0] < 0:
                continue  # a character without pixels (fully occluded or ignore) has no box
            boxes.append([lo[value, 0], lo[value, 1], hi[value, 0] + 1, hi[value, 1] + 1])
            labels.append(common.char_class(str(char.get("text", ""))))
    return common.char_arrays(boxes, labels)


class Builder(common.ManualSegmentationBuilder):
    """DatasetBuilder for TextSeg from the manually downloaded archives."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: v2 (released) and v1 (paper) labels, effect mask, char boxes."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [
        TextSegConfig(name="v2", description="Released labels (semantic_label.tar.gz).", label_version="v2"),
        TextSegConfig(name="v1", description="Paper labels (semantic_label_v1.tar.gz).", label_version="v1"),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "v2"
    IMAGE_FORMAT = "jpeg"
    EXTRA_FEATURES = {
        "effect_mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
        **common.char_features(),
    }

    def _is_label(self, entry: common.Entry) -> bool:
        wanted_v1 = self.builder_config.label_version == "v1"
        return entry.basename.endswith("_maskfg.png") and _is_v1(entry) == wanted_v1

    def _requirements(self):
        archive = "semantic_label_v1.tar.gz" if self.builder_config.label_version == "v1" else "semantic_label.tar.gz"
        return [
            common.Requirement("split.json", lambda e: e.basename == "split.json"),
            common.Requirement("image.tar.gz (the <id>.jpg images)", lambda e: e.suffix in (".jpg", ".jpeg")),
            common.Requirement(f"{archive} (the <id>_maskfg.png labels)", self._is_label),
            common.Requirement(
                "annotation.tar.gz (<id>_anno.json and <id>_mask.png)", lambda e: e.basename.endswith("_anno.json")
            ),
        ]

    def _plan(self, files: common.ManualFiles) -> dict[str, list[common.Sample]]:
        split_files = files.select(lambda e: e.basename == "split.json")
        if len(split_files) > 1:
            raise ValueError(f"several split.json files: {[e.display for e in split_files]}")
        split_ids = json.loads(files.read(split_files[0]))
        images = common.find_by_stem(files.select(lambda e: e.suffix in (".jpg", ".jpeg")))
        suffixed = {}
        for kind, ending in _SUFFIXES.items():
            accept = self._is_label if kind == "mask" else (lambda e, ending=ending: e.basename.endswith(ending))
            suffixed[kind] = common.find_by_stem(
                files.select(accept), key=lambda e, ending=ending: e.basename[: -len(ending)]
            )
        plan, missing = {}, []
        for split in SPLITS:
            if split not in split_ids:
                raise ValueError(f"{split_files[0].display} has no {split!r} list (keys: {sorted(split_ids)})")
            plan[split] = []
            for data_id in split_ids[split]:
                absent = [] if data_id in images else [f"{data_id}.jpg"]
                absent += [f"{data_id}{_SUFFIXES[kind]}" for kind, table in suffixed.items() if data_id not in table]
                missing += absent
                if not absent:
                    labels = {kind: table[data_id] for kind, table in suffixed.items()}
                    plan[split].append(common.Sample(common.example_id(data_id), images[data_id], labels))
        common.raise_if_missing(f"files named in split.json are missing in {files.root}", missing)
        return plan

    def _label_features(self, sample, read, image_hw):
        entry = sample.labels["mask"]
        raw = common.decode_label(entry, read(entry))
        common.check_same_size(entry, raw.shape, sample.image, image_hw)
        mask = common.map_values(entry, raw, MASK_MAPPING)
        inst_entry = sample.labels["instances"]
        instances = common.decode_label(inst_entry, read(inst_entry))
        common.check_same_size(inst_entry, instances.shape, sample.image, image_hw)
        anno_entry = sample.labels["anno"]
        try:
            anno = json.loads(read(anno_entry))
        except ValueError as e:
            raise ValueError(f"{anno_entry.display}: not valid JSON ({e})") from e
        return {
            "mask": common.png_bytes(mask),
            "effect_mask": common.png_bytes((raw == EFFECT_VALUE).astype(np.uint8)),
            **char_boxes(anno, instances),
        }
