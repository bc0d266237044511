"""TF-free tests of the `icdar13_fst` builder on `dummy_data/` (see make_dummy_data.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tfds_builders import common
from tfds_builders.icdar13_fst import icdar13_fst_dataset_builder as ib
from tfds_builders.icdar13_fst import make_dummy_data as dummy


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return {
        config: common.prepare_for_test(ib.Builder(config=config, data_dir=tmp_path_factory.mktemp(config)), dummy.OUT)
        for config in ("binary", "with_ignore")
    }


def _expected(gt: np.ndarray, dont_care_value: int) -> np.ndarray:
    mask = np.any(gt != 255, axis=-1).astype(np.uint8)
    mask[np.all(gt == (0, 0, 255), axis=-1)] = dont_care_value
    return mask


def test_counts_and_ids(built):
    for examples in built.values():
        assert sorted(common.by_id(examples["train"])) == list(dummy.TRAIN)
        assert sorted(common.by_id(examples["test"])) == list(dummy.TEST)


def test_masks_per_config(built):
    for config, dont_care in (("binary", 1), ("with_ignore", 255)):
        for ex in built[config]["train"]:
            np.testing.assert_array_equal(ex["mask"][..., 0], _expected(dummy.train_gt(), dont_care), err_msg=config)
        for ex in built[config]["test"]:
            # Black characters count as text too (a grey-level '> 0' rule would lose them).
            np.testing.assert_array_equal(ex["mask"][..., 0], np.any(dummy.test_gt() != 255, axis=-1))


def test_char_boxes(built):
    ex = common.by_id(built["binary"]["train"])["100"]
    np.testing.assert_array_equal(ex["char_boxes"], [[4, 3, 13, 8], [4, 9, 13, 11]])  # '#' char left out
    np.testing.assert_array_equal(ex["char_labels"], [17, 18])  # 'H', 'i'
    assert common.by_id(built["binary"]["test"])["img_1"]["char_boxes"].shape == (0, 4)


def test_parse_gt_txt_rejects_garbage():
    entry = common.Entry("", "1_GT.txt")
    assert [c.text for c in ib.parse_gt_txt(entry, b'1 2 3 4 5 6 7 8 9 """\n\n# 1 2 3 4 5 6 7 8 9 "a"\n')] == ['"', "a"]
    with pytest.raises(ValueError, match=r"1_GT\.txt:2"):
        ib.parse_gt_txt(entry, b'1 2 3 4 5 6 7 8 9 "x"\nnot a line\n')


def test_missing_gt_zips_named(tmp_path):
    (tmp_path / "m").mkdir()
    for name in ("Challenge2_Training_Task12_Images.zip", "Challenge2_Test_Task12_Images.zip"):
        shutil.copy(dummy.OUT / name, tmp_path / "m")
    with pytest.raises(FileNotFoundError, match=r"(?s)Training_Task2_GT\.zip.*Test_Task2_GT\.zip"):
        common.prepare_for_test(ib.Builder(data_dir=tmp_path / "d"), tmp_path / "m")


def test_missing_txt_named(tmp_path):
    common.copy_replacing(dummy.OUT, tmp_path / "m", "Challenge2_Training_Task2_GT.zip", drop=["101_GT.txt"])
    with pytest.raises(FileNotFoundError, match=r"101_GT\.txt"):
        common.prepare_for_test(ib.Builder(data_dir=tmp_path / "d"), tmp_path / "m")
