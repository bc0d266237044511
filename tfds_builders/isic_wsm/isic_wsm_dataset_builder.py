"""`isic_wsm`: ISIC_WSM (Bonechi et al., ESANN 2022 / Neurocomputing 2023), weak skin-lesion masks.

Raw-to-canonical mapping (`ISIC_WSM_labels.zip`, PNG named like the ISIC image): none needed,

    raw 0 background -> 0,   raw 1 lesion (foreground) -> 1,   raw 255 uncertain -> 255 (ignore)

and any other value fails the build, naming the file and the values.

Images come from the ISIC archive (downloaded separately, any zips or folders of `ISIC_<7 digits>.jpg`) and
are matched to labels by file stem. Labels live in a folder or archive whose name contains 'wsm' or 'label';
every other `.jpg`/`.jpeg`/`.png` is an image candidate. The ISIC archive is usually downloaded in parts, so
labels without an image are skipped and counted in the log (not an error); the build fails only when no
label has an image.

There is no official split. Configs:
  * `full` (default): every matched pair in `train` (about 43,885 with the whole archive).
  * `holdout`: a deterministic 10% `validation` split: an image goes to validation when the first 8 hex
    digits of md5(stem) / 2**32 < 0.1, so the assignment is stable under added or removed images.

Build without TensorFlow:

    python -m tfds_builders.build isic_wsm --manual_dir=~/downloads/isic --data_dir=~/tensorflow_datasets
    python -m tfds_builders.build isic_wsm/holdout --manual_dir=~/downloads/isic

or with the optional `build` extra, from the repository root:

    PYTHONPATH=. tfds build tfds_builders/isic_wsm --manual_dir=~/downloads/isic --file_format=array_record
"""

from __future__ import annotations

import dataclasses
import hashlib

import tensorflow_datasets as tfds
from absl import logging

from tfds_builders import common

_INSTRUCTIONS = """\
Put these in the manual dir, as downloaded (or unpacked):
  * ISIC_WSM_labels.zip (form linked from http://clem.diism.unisi.it/~coco_ts/, ISIC_WSM); if unpacked, keep
    'wsm' or 'label' in the folder name;
  * the ISIC archive images ISIC_<7 digits>.jpg (https://www.isic-archive.com), as zips or folders.
"""


@dataclasses.dataclass(eq=False, kw_only=True)
class IsicWsmConfig(tfds.core.BuilderConfig):
    """Split layout.

    Attributes:
      holdout_fraction: fraction of images (by stem hash) in a `validation` split; 0 puts all in `train`.
    """

    holdout_fraction: float = 0.0


def in_holdout(stem: str, fraction: float) -> bool:
    """Deterministic membership of `stem` in the holdout fraction (independent of the other files)."""
    return int(hashlib.md5(stem.encode()).hexdigest()[:8], 16) / 2**32 < fraction


def _is_label(entry: common.Entry) -> bool:
    return entry.suffix == ".png" and any("wsm" in f or "label" in f for f in entry.folders)


def _is_image(entry: common.Entry) -> bool:
    return entry.suffix in (".jpg", ".jpeg", ".png") and not _is_label(entry)


class Builder(common.WeakLabelBuilder):
    """DatasetBuilder for ISIC_WSM labels on ISIC archive images."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: full (train only) and holdout (10% validation) configs."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [
        IsicWsmConfig(name="full", description="All matched images in train.", holdout_fraction=0.0),
        IsicWsmConfig(name="holdout", description="10% of images (md5 of stem) in validation.", holdout_fraction=0.1),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "full"
    IMAGE_FORMAT = "jpeg"

    def _requirements(self):
        return [
            common.Requirement("ISIC_WSM_labels.zip (*.png)", _is_label),
            common.Requirement("ISIC archive images (ISIC_<n>.jpg, zips or folders)", _is_image),
        ]

    def _plan(self, files):
        labels = common.find_by_stem(files.select(_is_label))
        images = common.find_by_stem(files.select(_is_image))
        fraction = self.builder_config.holdout_fraction
        plan = {"train": []} if fraction == 0 else {"train": [], "validation": []}
        for stem in sorted(labels.keys() & images.keys()):
            split = "validation" if fraction and in_holdout(stem, fraction) else "train"
            plan[split].append(common.Sample(common.example_id(stem), images[stem], {"mask": labels[stem]}))
        unmatched = len(labels.keys() - images.keys())
        if unmatched:
            logging.warning(
                "isic_wsm: %d of %d labels have no image in the manual dir; skipped", unmatched, len(labels)
            )
        return plan
