"""`ist_s`: IST_S (Bonechi et al.), weakly supervised text masks for ICDAR 2015 Incidental Scene Text images.

Raw-to-canonical mapping (`IST_Segmentation_labels.zip`, PNG named like the source image): none needed,

    raw 0 background -> 0,   raw 1 text -> 1,   raw 255 uncertain -> 255 (ignore)

and any other value fails the build, naming the file and the values.

Images: RRC challenge 4 `ch4_training_images.zip` (1,000) and `ch4_test_images.zip` (500), `img_<n>.jpg`.
The label zip's inner layout is not documented, so every `.png` in the manual dir is a label and every `.jpg`
an image. An image's split comes from its archive/folder name ('test' -> `test`, else 'train' -> `train`).
A label's split is decided in this order:
  1. its own path names a split (a folder containing 'test' or 'train', other than the label archive's name);
  2. otherwise its stem matches an image of exactly one split;
  3. otherwise (the stem exists in both image sets, e.g. img_1, and the path names no split) the build fails
     listing the ambiguous labels: training and test images share names, so the pairing cannot be guessed.
Expected sizes: `train` 979, `test` 496. Images without a label are dropped; labels without an image fail.

Build without TensorFlow:

    python -m tfds_builders.build ist_s --manual_dir=~/downloads/ist_s --data_dir=~/tensorflow_datasets

or with the optional `build` extra, from the repository root:

    PYTHONPATH=. tfds build tfds_builders/ist_s --manual_dir=~/downloads/ist_s --file_format=array_record
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from tfds_builders import common

SPLITS = ("train", "test")

_INSTRUCTIONS = """\
Put these in the manual dir, as downloaded (or unpacked; image folders must keep 'training'/'test' in
their names):
  * IST_Segmentation_labels.zip (form at http://clem.diism.unisi.it/~coco_ts/, IST_S);
  * ch4_training_images.zip and ch4_test_images.zip (https://rrc.cvc.uab.es/?ch=4, ICDAR 2015 Incidental
    Scene Text, registration needed).
"""


def _split_from_folders(folders) -> str | None:
    if any("test" in f for f in folders):
        return "test"
    if any("train" in f for f in folders):
        return "train"
    return None


def _is_image(entry: common.Entry) -> bool:
    return entry.suffix in (".jpg", ".jpeg") and _split_from_folders(entry.folders) is not None


def _is_label(entry: common.Entry) -> bool:
    return entry.suffix == ".png"


def _label_split(entry: common.Entry) -> str | None:
    # The label archive's own name ('ist_segmentation_labels') names no split; inner folders may.
    return _split_from_folders(tuple(f for f in entry.folders if "segmentation_labels" not in f))


class Builder(common.WeakLabelBuilder):
    """DatasetBuilder for IST_S labels on ICDAR 2015 images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: IST_S labels, train/test by the ICDAR 2015 image sets."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    IMAGE_FORMAT = "jpeg"

    def _requirements(self):
        return [
            common.Requirement("IST_Segmentation_labels.zip (*.png)", _is_label),
            common.Requirement(
                "ch4_training_images.zip (img_<n>.jpg)",
                lambda e: _is_image(e) and _split_from_folders(e.folders) == "train",
            ),
            common.Requirement(
                "ch4_test_images.zip (img_<n>.jpg)", lambda e: _is_image(e) and _split_from_folders(e.folders) == "test"
            ),
        ]

    def _plan(self, files):
        images = {
            split: common.find_by_stem(
                files.select(lambda e, s=split: _is_image(e) and _split_from_folders(e.folders) == s)
            )
            for split in SPLITS
        }
        plan = {split: [] for split in SPLITS}
        ambiguous, missing, seen = [], [], {split: set() for split in SPLITS}
        for label in files.select(_is_label):
            split = _label_split(label)
            if split is None:
                candidates = [s for s in SPLITS if label.stem in images[s]]
                if len(candidates) > 1:
                    ambiguous.append(label.display)
                    continue
                split = candidates[0] if candidates else None
            if split is None or label.stem not in images[split]:
                missing.append(label.display)
                continue
            if label.stem in seen[split]:
                raise ValueError(f"two {split} labels for {label.stem}, one is {label.display}")
            seen[split].add(label.stem)
            plan[split].append(common.Sample(common.example_id(label.stem), images[split][label.stem], {"mask": label}))
        common.raise_if_missing(
            "labels match a training and a test image of the same name and their path names no split "
            "(put them under folders named train/ and test/)",
            ambiguous,
        )
        common.raise_if_missing("IST_S labels have no ICDAR 2015 image", missing)
        return plan
