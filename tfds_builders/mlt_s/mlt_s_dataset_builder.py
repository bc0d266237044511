"""`mlt_s`: MLT_S (Bonechi et al., PRL 2020), weakly supervised text masks for ICDAR 2017 MLT images.

Raw-to-canonical mapping (`MLT_S_labels.zip`: `{training,validation}_labels/<img>.png`): none needed,

    raw 0 background -> 0,   raw 1 text -> 1,   raw 255 uncertain -> 255 (ignore)

and any other value fails the build, naming the file and the values.

Images are the ICDAR 2017 MLT (RRC challenge 8) zips `ch8_training_images_1..8.zip` and
`ch8_validation_images.zip` (or their unpacked folders), `img_<n>.{jpg,png,gif}`. Training and validation
images share names, so the split comes from the folder/archive names: a path with a folder containing
'validation' is `validation`, else one containing 'train' is `train` (labels: `validation_labels/`,
`training_labels/`; images: a folder containing 'images'). Splits keep only images with a label, like the
reference's `trainseg`/`valseg`: `train` 5,540, `validation` 1,356. A label whose image is missing fails the
build. PNG and GIF images (first frame) are stored as RGB PNG; RGB JPEGs as they are.

Unlike the reference loader, the word-level GT zips (`ch8_*_localization_transcription_gt_v2.zip`) are not
required: they play no part in the masks, and not requiring them saves a registration step.

Build without TensorFlow:

    python -m tfds_builders.build mlt_s --manual_dir=~/downloads/mlt --data_dir=~/tensorflow_datasets

or with the optional `build` extra, from the repository root:

    PYTHONPATH=. tfds build tfds_builders/mlt_s --manual_dir=~/downloads/mlt --file_format=array_record
"""

from __future__ import annotations

import tensorflow_datasets as tfds
from absl import logging

from tfds_builders import common

SPLITS = ("train", "validation")
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif")

_INSTRUCTIONS = """\
Put these in the manual dir, as downloaded (or unpacked, keeping 'training'/'validation' in folder names):
  * MLT_S_labels.zip (form at http://clem.diism.unisi.it/~coco_ts/, MLT_S; holds training_labels/ and
    validation_labels/);
  * ch8_training_images_1.zip ... ch8_training_images_8.zip and ch8_validation_images.zip
    (https://rrc.cvc.uab.es/?ch=8, ICDAR 2017 MLT, registration needed).
"""


def _split_of(entry: common.Entry) -> str | None:
    if any("validation" in f for f in entry.folders):
        return "validation"
    if any("train" in f for f in entry.folders):
        return "train"
    return None


def _is_label(entry: common.Entry) -> bool:
    return entry.suffix == ".png" and any(f.endswith("_labels") for f in entry.folders)


def _is_image(entry: common.Entry) -> bool:
    return (
        entry.suffix in _IMAGE_SUFFIXES
        and not _is_label(entry)
        and any("images" in f for f in entry.folders)
        and _split_of(entry) is not None
    )


class Builder(common.WeakLabelBuilder):
    """DatasetBuilder for MLT_S labels on ICDAR 2017 MLT images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: original MLT_S labels, images with a label only."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    IMAGE_FORMAT = "jpeg"

    def _requirements(self):
        return [
            common.Requirement(
                "MLT_S_labels.zip (training_labels/*.png)", lambda e: _is_label(e) and _split_of(e) == "train"
            ),
            common.Requirement(
                "MLT_S_labels.zip (validation_labels/*.png)", lambda e: _is_label(e) and _split_of(e) == "validation"
            ),
            common.Requirement(
                "ch8_training_images_1..8.zip (img_<n>.jpg)", lambda e: _is_image(e) and _split_of(e) == "train"
            ),
            common.Requirement(
                "ch8_validation_images.zip (img_<n>.jpg)", lambda e: _is_image(e) and _split_of(e) == "validation"
            ),
        ]

    def _plan(self, files):
        plan, missing = {}, []
        for split in SPLITS:
            labels = common.find_by_stem(files.select(lambda e, s=split: _is_label(e) and _split_of(e) == s))
            images = common.find_by_stem(files.select(lambda e, s=split: _is_image(e) and _split_of(e) == s))
            missing += [f"{split}: {labels[k].display}" for k in sorted(labels.keys() - images.keys())]
            plan[split] = [
                common.Sample(common.example_id(k), images[k], {"mask": labels[k]})
                for k in sorted(labels.keys() & images.keys())
            ]
            logging.info("mlt_s %s: %d of %d images have a label", split, len(plan[split]), len(images))
        common.raise_if_missing("MLT_S labels have no MLT image", missing)
        return plan
