"""`coco_ts`: COCO_TS (Bonechi et al., ICANN 2019), weakly supervised text masks for 14,690 COCO-Text images.

Raw-to-canonical mapping (`COCO_TS_labels.zip`, PNG named like the COCO image): none needed,

    raw 0 background -> 0,   raw 1 text -> 1,   raw 255 uncertain -> 255 (ignore)

and any other value fails the build, naming the file and the values.

Images are MS-COCO train2014 (`COCO_train2014_<12 digits>.jpg`, from `train2014.zip` or a folder). The split
follows TexRNet: COCO-Text v2's `imgs[*].set` in `cocotext.v2.json` (from `cocotext.v2.zip` or as a file),
`train` -> `train`, `val` -> `validation`. Images without a COCO_TS label are dropped (most of train2014); a
label whose image is missing fails the build; labels of images that COCO-Text does not list are skipped and
counted in the log. COCO's grayscale JPEGs are stored as RGB PNG (see `common.encode_rgb`).

Build without TensorFlow:

    python -m tfds_builders.build coco_ts --manual_dir=~/downloads/coco_ts --data_dir=~/tensorflow_datasets

or with the optional `build` extra, from the repository root:

    PYTHONPATH=. tfds build tfds_builders/coco_ts --manual_dir=~/downloads/coco_ts --file_format=array_record
"""

from __future__ import annotations

import json

import tensorflow_datasets as tfds
from absl import logging

from tfds_builders import common

PREFIX = "COCO_train2014_"
SPLITS = {"train": "train", "val": "validation"}  # COCO-Text `set` -> split name

_INSTRUCTIONS = """\
Put these in the manual dir, as downloaded (or unpacked, any folder names):
  * COCO_TS_labels.zip: the COCO_TS labels (form at http://clem.diism.unisi.it/~coco_ts/download_coco_ts.html);
  * train2014.zip: MS-COCO 2014 training images (https://cocodataset.org/#download);
  * cocotext.v2.zip (or cocotext.v2.json): COCO-Text v2 annotations (https://bgshih.github.io/cocotext/),
    used only for the train/validation split.
"""


def _is_label(entry: common.Entry) -> bool:
    return entry.suffix == ".png" and entry.basename.startswith(PREFIX)


def _is_image(entry: common.Entry) -> bool:
    return entry.suffix in (".jpg", ".jpeg") and entry.basename.startswith(PREFIX)


def _is_cocotext(entry: common.Entry) -> bool:
    return entry.basename == "cocotext.v2.json"


class Builder(common.WeakLabelBuilder):
    """DatasetBuilder for COCO_TS labels on COCO train2014 images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: original COCO_TS labels, COCO-Text v2 train/val split."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    IMAGE_FORMAT = "jpeg"

    def _requirements(self):
        return [
            common.Requirement(f"COCO_TS_labels.zip ({PREFIX}*.png)", _is_label),
            common.Requirement(f"train2014.zip ({PREFIX}*.jpg)", _is_image),
            common.Requirement("cocotext.v2.zip or cocotext.v2.json", _is_cocotext),
        ]

    def _plan(self, files):
        json_entries = files.select(_is_cocotext)
        if len(json_entries) > 1:
            raise ValueError(f"several cocotext.v2.json files: {[e.display for e in json_entries]}")
        try:
            imgs = json.loads(files.read(json_entries[0]))["imgs"]
        except (ValueError, KeyError) as e:
            raise ValueError(f"{json_entries[0].display}: not COCO-Text v2 json with an 'imgs' table ({e})") from e
        labels = common.find_by_stem(files.select(_is_label))
        images = common.find_by_stem(files.select(_is_image))
        plan = {split: [] for split in SPLITS.values()}
        missing, listed = [], set()
        for info in sorted(imgs.values(), key=lambda i: i["file_name"]):
            stem = info["file_name"].rsplit(".", 1)[0]
            listed.add(stem)
            if stem not in labels or info.get("set") not in SPLITS:
                continue
            if stem not in images:
                missing.append(info["file_name"])
                continue
            plan[SPLITS[info["set"]]].append(
                common.Sample(common.example_id(stem), images[stem], {"mask": labels[stem]})
            )
        common.raise_if_missing(f"COCO train2014 images of COCO_TS labels are missing in {files.root}", missing)
        unlisted = len(labels.keys() - listed)
        if unlisted:
            logging.warning("%d COCO_TS labels belong to no COCO-Text v2 image and are skipped", unlisted)
        return plan
