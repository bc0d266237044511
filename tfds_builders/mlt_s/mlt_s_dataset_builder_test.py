"""TF-free tests of the `mlt_s` builder on `dummy_data/` (see make_dummy_data.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tfds_builders import common
from tfds_builders.mlt_s import make_dummy_data as dummy
from tfds_builders.mlt_s import mlt_s_dataset_builder as mb


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return common.prepare_for_test(mb.Builder(data_dir=tmp_path_factory.mktemp("mlt_s")), dummy.OUT)


def test_splits_keep_labelled_images_only(examples):
    for split, stems in dummy.LABELLED.items():
        exs = common.by_id(examples[split])
        assert sorted(exs) == sorted(stems)
        for stem, ex in exs.items():
            assert ex["image"].shape == (dummy.H, dummy.W, 3) and ex["image"].dtype == np.uint8
            # The label of the same-named image of the *other* split would differ: this pins the split logic.
            np.testing.assert_array_equal(ex["mask"][..., 0], dummy.label_array(split, stem))


def test_gif_and_png_images_become_rgb(examples):
    gif = common.by_id(examples["validation"])["img_2"]["image"]
    png = common.by_id(examples["train"])["img_2"]["image"]
    assert gif.shape == png.shape == (dummy.H, dummy.W, 3)
    assert not np.array_equal(gif, png)


def test_missing_validation_images_named(tmp_path):
    shutil.copytree(dummy.OUT, tmp_path / "m")
    (tmp_path / "m" / "ch8_validation_images.zip").unlink()
    with pytest.raises(FileNotFoundError, match=r"ch8_validation_images\.zip") as err:
        common.prepare_for_test(mb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")
    assert "training_labels" not in str(err.value)


def test_label_without_image_fails(tmp_path):
    extra = {"MLT_S_labels/validation_labels/img_77.png": common.png_bytes(np.zeros((dummy.H, dummy.W)))}
    common.copy_replacing(dummy.OUT, tmp_path / "m", "MLT_S_labels.zip", extra)
    with pytest.raises(FileNotFoundError, match=r"validation: MLT_S_labels\.zip:MLT_S_labels/validation_labels/img_77"):
        common.prepare_for_test(mb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")
