"""TF-free tests of the `ist_s` builder on `dummy_data/` (see make_dummy_data.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tfds_builders import common
from tfds_builders.ist_s import ist_s_dataset_builder as isb
from tfds_builders.ist_s import make_dummy_data as dummy


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return common.prepare_for_test(isb.Builder(data_dir=tmp_path_factory.mktemp("ist_s")), dummy.OUT)


def test_split_assignment_and_masks(examples):
    assert sorted(common.by_id(examples["train"])) == ["img_1", "img_2"]
    assert sorted(common.by_id(examples["test"])) == ["img_1", "img_5"]
    for split, exs in examples.items():
        for stem, ex in common.by_id(exs).items():
            np.testing.assert_array_equal(ex["mask"][..., 0], dummy.label_array(split, stem))
            assert ex["image"].shape == (dummy.H, dummy.W, 3)


def test_ambiguous_flat_label_fails(tmp_path):
    extra = {"IST_Segmentation_labels/img_1.png": common.png_bytes(np.zeros((dummy.H, dummy.W)))}
    common.copy_replacing(dummy.OUT, tmp_path / "m", "IST_Segmentation_labels.zip", extra)
    with pytest.raises(FileNotFoundError, match=r"labels match a training and a test image.*labels/img_1\.png"):
        common.prepare_for_test(isb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")


def test_missing_image_zips_named(tmp_path):
    (tmp_path / "m").mkdir()
    shutil.copy(dummy.OUT / "IST_Segmentation_labels.zip", tmp_path / "m")
    with pytest.raises(FileNotFoundError, match=r"(?s)ch4_training_images\.zip.*ch4_test_images\.zip"):
        common.prepare_for_test(isb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")
