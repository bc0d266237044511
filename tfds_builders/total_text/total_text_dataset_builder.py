"""`total_text`: Total-Text (Ch'ng and Chan, ICDAR 2017) with the character-level pixel masks.

Raw-to-canonical mapping (`groundtruth_pixel/{Train,Test}/<stem>.jpg`, JPEG masks, as in the reference):

    grey value > 127   -> mask 1 (text)
    grey value <= 127  -> mask 0 (background)
    (no ignore label: Total-Text's pixel annotation has none, so `mask` never holds 255)

RGB mask files are converted to grey first (PIL 'L'). Every grey value is valid, so no value check applies;
a mask that cannot be decoded or whose size differs from its image fails the build.

Inputs are found by path, never by a fixed top folder: an image is a file with a folder named `Images` above
it; a mask is any other .jpg/.png; its split is the nearest enclosing folder named `Train` or `Test` (any
case). Masks are matched to images by case-insensitive stem within a split (the release has `img61.JPG`).
Splits: `train` (1,255) and `test` (300), as used by TexRNet.

Build without TensorFlow:

    python -m tfds_builders.build total_text --manual_dir=~/downloads/total_text --data_dir=~/tensorflow_datasets

or with the optional `build` extra, from the repository root:

    PYTHONPATH=. tfds build tfds_builders/total_text --manual_dir=~/downloads/total_text --file_format=array_record
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import common

SPLITS = {"train": "train", "test": "test"}  # folder name (lower case) -> split
THRESHOLD = 127
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_INSTRUCTIONS = """\
Download from https://github.com/cs-chan/Total-Text-Dataset (non-commercial research use only):
  * the images, `totaltext.zip` (Dataset/README.md; holds Images/Train and Images/Test), and
  * the pixel ground truth, "Character Level Mask" zip (Groundtruth/Pixel/Character Level Mask/README.md;
    holds Train/ and Test/ JPEG masks; the "Text Region Mask" zip is a different annotation, do not use it).
Put both zips in the manual dir as downloaded, or unpack them there, e.g. as
Images/{Train,Test}/<img>.jpg and groundtruth_pixel/{Train,Test}/<img>.jpg (any top folder names work).
"""


def _split_of(entry: common.Entry) -> str | None:
    for folder in reversed(entry.folders):
        if folder in SPLITS:
            return SPLITS[folder]
    return None


def _is_image(entry: common.Entry) -> bool:
    return entry.suffix in _IMAGE_SUFFIXES and "images" in entry.folders and _split_of(entry) is not None


def _is_mask(entry: common.Entry) -> bool:
    return entry.suffix in _IMAGE_SUFFIXES and "images" not in entry.folders and _split_of(entry) is not None


class Builder(common.ManualSegmentationBuilder):
    """DatasetBuilder for Total-Text with pixel-level masks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: binary masks from the character-level JPEG masks (> 127)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    IMAGE_FORMAT = "jpeg"

    def _requirements(self):
        reqs = []
        for folder, split in SPLITS.items():
            name = folder.capitalize()
            reqs.append(
                common.Requirement(
                    f"totaltext.zip images (Images/{name}/*.jpg)", lambda e, s=split: _is_image(e) and _split_of(e) == s
                )
            )
            reqs.append(
                common.Requirement(
                    f"Character Level Mask zip ({name}/*.jpg masks, e.g. groundtruth_pixel/{name}/)",
                    lambda e, s=split: _is_mask(e) and _split_of(e) == s,
                )
            )
        return reqs

    def _plan(self, files):
        plan, missing = {}, []
        for split in SPLITS.values():
            images = common.find_by_stem(
                files.select(lambda e, s=split: _is_image(e) and _split_of(e) == s), lambda e: e.stem.lower()
            )
            masks = common.find_by_stem(
                files.select(lambda e, s=split: _is_mask(e) and _split_of(e) == s), lambda e: e.stem.lower()
            )
            missing += [f"{split}: mask for {images[k].display}" for k in sorted(images.keys() - masks.keys())]
            missing += [f"{split}: image for {masks[k].display}" for k in sorted(masks.keys() - images.keys())]
            plan[split] = [
                common.Sample(common.example_id(images[k].stem), images[k], {"mask": masks[k]})
                for k in sorted(images.keys() & masks.keys())
            ]
        common.raise_if_missing("files without a counterpart", missing)
        return plan

    def _label_features(self, sample, read, image_hw):
        entry = sample.labels["mask"]
        grey = np.asarray(common.decode_image(entry, read(entry)).convert("L"))
        common.check_same_size(entry, grey.shape, sample.image, image_hw)
        return {"mask": common.png_bytes((grey > THRESHOLD).astype(np.uint8))}
