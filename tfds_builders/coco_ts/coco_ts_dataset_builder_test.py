"""TF-free tests of the `coco_ts` builder on `dummy_data/` (see make_dummy_data.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tfds_builders import common
from tfds_builders.coco_ts import coco_ts_dataset_builder as cb
from tfds_builders.coco_ts import make_dummy_data as dummy


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return common.prepare_for_test(cb.Builder(data_dir=tmp_path_factory.mktemp("coco_ts")), dummy.OUT)


def test_split_by_cocotext_set(examples):
    assert sorted(examples) == ["train", "validation"]
    assert sorted(common.by_id(examples["train"])) == [dummy.name(1), dummy.name(2)]
    assert sorted(common.by_id(examples["validation"])) == [dummy.name(3), dummy.name(4)]


def test_labels_kept_as_is(examples):
    for exs in examples.values():
        for ex in exs:
            assert ex["image"].shape == (dummy.H, dummy.W, 3)
            np.testing.assert_array_equal(ex["mask"][..., 0], dummy.label_array())
            for (y, x), value in dummy.LABEL_PIXELS.items():
                assert ex["mask"][y, x, 0] == value


def test_missing_inputs_all_named(tmp_path):
    (tmp_path / "m").mkdir()
    shutil.copy(dummy.OUT / "COCO_TS_labels.zip", tmp_path / "m")
    with pytest.raises(FileNotFoundError, match=r"(?s)train2014\.zip.*cocotext\.v2\.zip"):
        common.prepare_for_test(cb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")


def test_label_without_image_fails(tmp_path):
    common.copy_replacing(dummy.OUT, tmp_path / "m", "train2014.zip", drop=[f"train2014/{dummy.name(3)}.jpg"])
    with pytest.raises(FileNotFoundError, match=dummy.name(3)):
        common.prepare_for_test(cb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")


def test_bad_label_value_fails(tmp_path):
    bad = dummy.label_array()
    bad[0, 0] = 2
    replace = {f"COCO_TS_labels/{dummy.name(2)}.png": common.png_bytes(bad)}
    common.copy_replacing(dummy.OUT, tmp_path / "m", "COCO_TS_labels.zip", replace)
    with pytest.raises(ValueError, match=rf"{dummy.name(2)}\.png: label values 2 outside"):
        common.prepare_for_test(cb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")
