"""A build from dummy data reads back through the training pipeline (`texrnet_jax.input_pipeline`).

Builds the textseg and icdar13_fst dummy data (JPEG images, char features, several configs) and pulls batches
from `train_iterator` with the project's data config, as training would.
"""

from __future__ import annotations

import numpy as np
import pytest

from configs import base
from texrnet_jax import input_pipeline, preprocessing
from tfds_builders import common
from tfds_builders.icdar13_fst import icdar13_fst_dataset_builder as ib
from tfds_builders.icdar13_fst import make_dummy_data as icdar_dummy
from tfds_builders.textseg import make_dummy_data as textseg_dummy
from tfds_builders.textseg import textseg_dataset_builder as tsb

CROP = 65


@pytest.mark.parametrize(
    "name, builder_cls, manual_dir",
    [("textseg", tsb.Builder, textseg_dummy.OUT), ("icdar13_fst/with_ignore", ib.Builder, icdar_dummy.OUT)],
)
def test_train_iterator_batches(tmp_path, name, builder_cls, manual_dir):
    config = name.partition("/")[2] or None
    common.prepare_for_test(builder_cls(config=config, data_dir=tmp_path), manual_dir)
    data_cfg = base.data_config(name)
    data_cfg.data_dir = str(tmp_path)
    data_cfg.auto_prepare = False
    data_cfg.train_split = "train"
    data_cfg.crop_size = CROP
    data_cfg.scale_range = (CROP, 97)
    it = input_pipeline.train_iterator(data_cfg, batch_size=2, seed=0)
    for _ in range(3):  # more batches than examples: the iterator repeats
        batch = next(it)
        # Host batches are uint8 (the default `uint8_batches`); the train step normalises them on device.
        assert batch["image"].shape == (2, CROP, CROP, 3) and batch["image"].dtype == np.uint8
        assert batch["image_hw"].shape == (2, 2) and np.all(batch["image_hw"] <= CROP)
        assert batch["mask"].shape == (2, CROP, CROP)
        assert set(np.unique(batch["mask"])) <= {0, 1, 255}
        assert np.any(batch["mask"] == 1)
        image = np.asarray(preprocessing.normalize_batch(batch)["image"])
        assert image.dtype == np.float32 and np.all(np.isfinite(image))
