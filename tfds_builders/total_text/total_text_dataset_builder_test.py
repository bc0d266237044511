"""TF-free tests of the `total_text` builder on `dummy_data/` (see make_dummy_data.py)."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from tfds_builders import common
from tfds_builders.total_text import make_dummy_data as dummy
from tfds_builders.total_text import total_text_dataset_builder as ttb


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return common.prepare_for_test(ttb.Builder(data_dir=tmp_path_factory.mktemp("tt")), dummy.OUT)


def test_counts_ids_and_threshold(examples):
    assert sorted(common.by_id(examples["train"])) == ["img11", "img61"]  # img61.JPG matched img61.jpg
    assert sorted(common.by_id(examples["test"])) == ["img1", "img2"]
    y1, x1, y2, x2 = dummy.TEXT_BOX
    for exs in examples.values():
        for ex in exs:
            mask = ex["mask"][..., 0]
            assert ex["image"].shape == (dummy.H, dummy.W, 3) and mask.shape == (dummy.H, dummy.W)
            # The JPEG noise around 0 and 255 is gone: exactly the rectangle is text, nothing is ignore.
            expected = np.zeros_like(mask)
            expected[y1:y2, x1:x2] = 1
            np.testing.assert_array_equal(mask, expected)


def test_splits_differ(examples):
    assert not {e["image"].tobytes() for e in examples["train"]} & {e["image"].tobytes() for e in examples["test"]}


def test_missing_mask_zip(tmp_path):
    (tmp_path / "m").mkdir()
    shutil.copy(dummy.OUT / "totaltext.zip", tmp_path / "m")
    with pytest.raises(FileNotFoundError, match=r"(?s)Train/\*\.jpg masks.*Test/\*\.jpg masks"):
        common.prepare_for_test(ttb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")


def test_image_without_mask_is_named(tmp_path):
    shutil.copytree(dummy.OUT, tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m" / "totaltext.zip", "a") as z:
        z.writestr("Images/Test/img9.jpg", common.jpeg_bytes(common.fake_photo(9, dummy.H, dummy.W)))
    with pytest.raises(FileNotFoundError, match=r"test: mask for totaltext\.zip:Images/Test/img9\.jpg"):
        common.prepare_for_test(ttb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")


def test_wrong_mask_size_fails(tmp_path):
    small = {"groundtruth_pixel/Test/img2.jpg": common.jpeg_bytes(np.zeros((5, 5), np.uint8))}
    common.copy_replacing(dummy.OUT, tmp_path / "m", dummy.MASK_ARCHIVE, small)
    with pytest.raises(ValueError, match=r"img2\.jpg is 5x5 .* but its image"):
        common.prepare_for_test(ttb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")
