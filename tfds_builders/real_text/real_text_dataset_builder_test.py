"""Tests of the `real_text` check set: the build, and the truth rule's regions."""

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.real_text import real_text_dataset_builder as rtb
from tfds_builders.real_text import truth


def test_build_and_read(tmp_path):
    rtb.Builder(data_dir=tmp_path).download_and_prepare(
        file_format="array_record", download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    source = tfds.data_source("real_text", split="test", data_dir=tmp_path, download=False)
    assert len(source) == 1
    ex = source[0]
    image, mask = truth.page()
    np.testing.assert_array_equal(ex["image"], image)
    np.testing.assert_array_equal(ex["mask"][..., 0], mask)


def test_truth_is_text_only_inside_the_boxes():
    image, mask = truth.page()
    assert image.shape == (191, 384, 3) and mask.shape == (191, 384)
    assert set(np.unique(mask)) == {0, 1, 255}
    inside = np.zeros(mask.shape, bool)
    for x0, y0, x1, y1 in truth.TEXT_BOXES + truth.IGNORE_BOXES:
        inside[y0:y1, x0:x1] = True
    assert np.all(mask[~inside] == 0)
    # Print is a minority of each text box, and darker than the paper around it.
    grey = image[..., 0].astype(float)
    for x0, y0, x1, y1 in truth.TEXT_BOXES:
        box = mask[y0:y1, x0:x1]
        assert 0.05 < (box == 1).mean() < 0.5
        assert grey[y0:y1, x0:x1][box == 1].mean() < grey[y0:y1, x0:x1][box == 0].mean() - 60
