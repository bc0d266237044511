"""TF-free tests of the `isic_wsm` builder on `dummy_data/` (see make_dummy_data.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tfds_builders import common
from tfds_builders.isic_wsm import isic_wsm_dataset_builder as wb
from tfds_builders.isic_wsm import make_dummy_data as dummy


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return {
        c: common.prepare_for_test(wb.Builder(config=c, data_dir=tmp_path_factory.mktemp(c)), dummy.OUT)
        for c in ("full", "holdout")
    }


def test_full_config(built):
    exs = common.by_id(built["full"]["train"])
    assert list(built["full"]) == ["train"]
    assert sorted(exs) == dummy.STEMS  # ISIC_0000009 has no image and is skipped
    for i, stem in enumerate(dummy.STEMS):
        np.testing.assert_array_equal(exs[stem]["mask"][..., 0], dummy.label_array(i))


def test_holdout_config_is_deterministic(built):
    val = sorted(common.by_id(built["holdout"]["validation"]))
    assert val == [s for s in dummy.STEMS if wb.in_holdout(s, 0.1)] == ["ISIC_0000002"]
    assert len(built["holdout"]["train"]) == len(dummy.STEMS) - 1


def test_no_images_fails(tmp_path):
    (tmp_path / "m").mkdir()
    shutil.copy(dummy.OUT / "ISIC_WSM_labels.zip", tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="ISIC archive images"):
        common.prepare_for_test(wb.Builder(data_dir=tmp_path / "d"), tmp_path / "m")
