"""The base builder of the manual-download datasets, and the one namespace their builders import.

`ManualSegmentationBuilder` is the base class: a subclass plans its splits (`_plan`: which image goes with
which label files) and converts one sample (`_label_features`); the base class checks for missing inputs,
validates and encodes images, and writes the canonical features:

    image  Image(shape=(None, None, 3))   original JPEG bytes when the source is an RGB JPEG, else lossless PNG
    mask   Image(shape=(None, None, 1))   PNG, 0 background, 1 text/foreground, 255 ignore
    id     Text                           the file stem (never a local path)

The shared helpers live in sibling modules and are re-exported here (`__all__`), so builders, dummy-data
scripts and tests use `common.X` for all of them:

    manual_files.py  `ManualFiles` and `Entry` (files inside and outside archives), `Requirement` checks,
                     `raise_if_missing`, `find_by_stem`
    encoding.py      image and label decoding, value checks, PNG encoding, `char_class`, `example_id`
    testing.py       helpers of the `make_dummy_data.py` scripts and the builder tests

None of these modules imports TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from tfds_builders.encoding import (
    OTHER_CHAR_CLASS,
    char_arrays,
    char_class,
    check_same_size,
    check_values,
    decode_image,
    decode_label,
    encode_rgb,
    example_id,
    map_values,
    png_bytes,
)
from tfds_builders.manual_files import (
    Entry,
    ManualFiles,
    Requirement,
    check_requirements,
    find_by_stem,
    raise_if_missing,
)
from tfds_builders.testing import by_id, copy_replacing, fake_photo, jpeg_bytes, prepare_for_test, write_archive

__all__ = [
    # Defined here.
    "WEAK_LABEL_MAPPING",
    "ManualSegmentationBuilder",
    "Sample",
    "WeakLabelBuilder",
    "char_features",
    "image_features",
    # manual_files.py
    "Entry",
    "ManualFiles",
    "Requirement",
    "check_requirements",
    "find_by_stem",
    "raise_if_missing",
    # encoding.py
    "OTHER_CHAR_CLASS",
    "char_arrays",
    "char_class",
    "check_same_size",
    "check_values",
    "decode_image",
    "decode_label",
    "encode_rgb",
    "example_id",
    "map_values",
    "png_bytes",
    # testing.py
    "by_id",
    "copy_replacing",
    "fake_photo",
    "jpeg_bytes",
    "prepare_for_test",
    "write_archive",
]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One planned example: its id, its image and the label files it needs.

    Attributes:
      id: example id and key (`example_id` of the image's stem).
      image: the image entry.
      labels: named label entries, e.g. {'mask': ..., 'anno': ...}; what the names mean is up to the builder.
    """

    id: str
    image: Entry
    labels: Mapping[str, Entry]


def image_features(image_format: str) -> dict[str, tfds.features.FeatureConnector]:
    """The canonical `image`, `mask` and `id` features."""
    return {
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format=image_format),
        "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
        "id": tfds.features.Text(),
    }


def char_features() -> dict[str, tfds.features.FeatureConnector]:
    """The `char_boxes` ([N, 4] float32, [y1, x1, y2, x2] pixels) and `char_labels` ([N] int32) features."""
    return {
        "char_boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
        "char_labels": tfds.features.Tensor(shape=(None,), dtype=np.int32),
    }


class ManualSegmentationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders that read a manual directory; subclasses implement `_plan` and `_label_features`.

    Attributes:
      IMAGE_FORMAT: declared `encoding_format` of `image` ('jpeg' when the sources are mostly JPEG).
      EXTRA_FEATURES: features beyond image/mask/id, e.g. `char_features()`.
    """

    IMAGE_FORMAT = "jpeg"
    EXTRA_FEATURES: Mapping[str, tfds.features.FeatureConnector] = {}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({**image_features(self.IMAGE_FORMAT), **self.EXTRA_FEATURES}),
            supervised_keys=("image", "mask"),
        )

    def _requirements(self) -> Sequence[Requirement]:
        """Inputs that must be present in the manual dir (checked all at once before anything is read)."""
        raise NotImplementedError

    def _plan(self, files: ManualFiles) -> dict[str, list[Sample]]:
        """{split: samples}; raise (via `raise_if_missing`) when a label has no image or vice versa."""
        raise NotImplementedError

    def _label_features(
        self, sample: Sample, read: Callable[[Entry], bytes], image_hw: tuple[int, int]
    ) -> dict[str, object]:
        """The `mask` (PNG bytes) and any extra features of one sample; must check sizes and values."""
        raise NotImplementedError

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        files = ManualFiles(dl_manager.manual_dir)
        check_requirements(files, self._requirements())
        plan = self._plan(files)
        for split, samples in plan.items():
            if not samples:
                raise FileNotFoundError(f"split {split!r} would be empty: no usable image/label pair in {files.root}")
            ids = collections.Counter(s.id for s in samples)
            raise_if_missing(f"ids occur twice in split {split!r}", [i for i, n in ids.items() if n > 1])
            logging.info("%s: %d examples", split, len(samples))
        return {split: self._generate_examples(files, samples) for split, samples in plan.items()}

    def _generate_examples(self, files: ManualFiles, samples: Sequence[Sample]):
        read = files.lookup(e for s in samples for e in s.labels.values())
        by_image = {s.image: s for s in samples}
        # Images are the large side of the join: stream them in storage order, one pass per tar archive.
        for entry, data in files.read_many(by_image):
            sample = by_image[entry]
            image, image_hw = encode_rgb(entry, data)
            yield sample.id, {"image": image, "id": sample.id, **self._label_features(sample, read, image_hw)}


# Raw values of the Bonechi et al. weak labels (COCO_TS, MLT_S, IST_S, ISIC_WSM): already canonical.
WEAK_LABEL_MAPPING = {0: 0, 1: 1, 255: 255}


class WeakLabelBuilder(ManualSegmentationBuilder, skip_registration=True):
    """Base of the builders whose labels are PNG maps with values 0 (background), 1 (text/lesion), 255 (uncertain).

    Samples carry one label entry, `labels['mask']`; its values are checked and stored unchanged.
    """

    def _label_features(self, sample, read, image_hw):
        entry = sample.labels["mask"]
        label = decode_label(entry, read(entry))
        check_same_size(entry, label.shape, sample.image, image_hw)
        return {"mask": png_bytes(map_values(entry, label, WEAK_LABEL_MAPPING))}
