"""TF-free tests of the `textseg` builder on `dummy_data/` (see make_dummy_data.py for its contents)."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import common
from tfds_builders.textseg import make_dummy_data as dummy
from tfds_builders.textseg import textseg_dataset_builder as tsb


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{config: (data_dir, {split: examples})} for both configs, built from the archives in dummy_data/."""
    out = {}
    for config in ("v2", "v1"):
        data_dir = tmp_path_factory.mktemp(f"textseg_{config}")
        builder = tsb.Builder(config=config, data_dir=data_dir)
        out[config] = (data_dir, common.prepare_for_test(builder, dummy.OUT))
    return out


def test_counts_ids_and_features(built):
    _, examples = built["v2"]
    for split, ids in dummy.SPLITS.items():
        assert sorted(common.by_id(examples[split])) == sorted(ids)
        for ex in examples[split]:
            assert ex["image"].shape == (dummy.H, dummy.W, 3) and ex["image"].dtype == np.uint8
            assert ex["mask"].shape == (dummy.H, dummy.W, 1)
            assert set(np.unique(ex["mask"])) == {0, 1, 255}
            assert set(np.unique(ex["effect_mask"])) == {0, 1}


def test_mask_mapping_on_known_pixels(built):
    _, examples = built["v2"]
    ex = common.by_id(examples["train"])["a00001"]
    for (y, x), raw in dummy.LABEL_PIXELS.items():
        # Written out rather than read from tsb.MASK_MAPPING, so a wrong mapping fails here.
        assert ex["mask"][y, x, 0] == {0: 0, 100: 1, 200: 0, 255: 255}[raw], (y, x, raw)
        assert ex["effect_mask"][y, x, 0] == (raw == 200)
    # The only source of 200 in the dummy labels is the effect strip.
    np.testing.assert_array_equal(ex["effect_mask"][4:9, 12:14, 0], 1)


def test_v1_reads_the_v1_labels(built):
    y, x = dummy.V1_PIXEL
    v2 = common.by_id(built["v2"][1]["test"])["c00004"]
    v1 = common.by_id(built["v1"][1]["test"])["c00004"]
    assert v2["mask"][y, x, 0] == 0 and v1["mask"][y, x, 0] == 1


def test_char_boxes_and_labels(built):
    ex = common.by_id(built["v2"][1]["val"])["b00003"]
    np.testing.assert_array_equal(ex["char_boxes"], [box for _, _, box in dummy.CHARS])
    np.testing.assert_array_equal(ex["char_labels"], [10, 7, 36])  # 'A', '7', '!'; 'b' has no pixels
    assert ex["char_boxes"].dtype == np.float32 and ex["char_labels"].dtype == np.int32


def test_images_pass_through_or_png(built):
    # An RGB JPEG is stored as is: decoded pixels equal a direct decode of the source bytes.
    with tarfile.open(dummy.OUT / "image.tar.gz") as tar:
        source = tar.extractfile("image/a00002.jpg").read()
    ex = common.by_id(built["v2"][1]["train"])["a00002"]
    np.testing.assert_array_equal(ex["image"], common.decode_image(common.Entry("", "x"), source))
    gray = common.by_id(built["v2"][1]["test"])["c00005"]["image"]  # grayscale JPEG, stored as RGB PNG
    assert gray.shape == (dummy.H, dummy.W, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_splits_differ(built):
    digests = {s: {ex["image"].tobytes() for ex in exs} for s, exs in built["v2"][1].items()}
    assert not digests["train"] & digests["test"] and not digests["val"] & digests["test"]


def test_train_plus_val_data_source(built):
    data_dir, _ = built["v2"]
    source = tfds.data_source("textseg", split="train+val", data_dir=data_dir, download=False)
    assert len(source) == 3


def test_extracted_folders_work(tmp_path, built):
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.copy(dummy.OUT / "split.json", manual / "split.json")
    for archive in ("image", "annotation", "semantic_label"):
        with tarfile.open(dummy.OUT / f"{archive}.tar.gz") as tar:
            tar.extractall(manual / "TextSeg_Release", filter="data")
    examples = common.prepare_for_test(tsb.Builder(config="v2", data_dir=tmp_path / "data"), manual)
    again = common.by_id(examples["test"])["c00004"]
    np.testing.assert_array_equal(again["mask"], common.by_id(built["v2"][1]["test"])["c00004"]["mask"])


def test_missing_archives_are_all_named(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.copy(dummy.OUT / "image.tar.gz", manual)
    with pytest.raises(FileNotFoundError) as err:
        common.prepare_for_test(tsb.Builder(config="v2", data_dir=tmp_path / "data"), manual)
    message = str(err.value)
    for name in ("split.json", "semantic_label.tar.gz", "annotation.tar.gz"):
        assert name in message
    assert "image.tar.gz (the" not in message


def _copy_with(manual, archive: str, replace: dict[str, bytes]) -> None:
    """Copies dummy_data to `manual`, replacing members of `archive`."""
    common.copy_replacing(dummy.OUT, manual, archive, replace)


def test_unexpected_label_value_fails_with_file_name(tmp_path):
    bad = np.zeros((dummy.H, dummy.W), np.uint8)
    bad[0, 0], bad[0, 1] = 50, 201
    _copy_with(
        tmp_path / "manual", "semantic_label.tar.gz", {"semantic_label/b00003_maskfg.png": common.png_bytes(bad)}
    )
    with pytest.raises(ValueError, match=r"b00003_maskfg\.png: label values 50, 201 outside"):
        common.prepare_for_test(tsb.Builder(config="v2", data_dir=tmp_path / "data"), tmp_path / "manual")


def test_interrupted_build_is_not_prepared(tmp_path):
    # A truncated JPEG in the test split: train and val are written before the build fails.
    with tarfile.open(dummy.OUT / "image.tar.gz") as tar:
        good = tar.extractfile("image/c00005.jpg").read()
    _copy_with(tmp_path / "manual", "image.tar.gz", {"image/c00005.jpg": good[: len(good) // 2]})
    data_dir = tmp_path / "data"
    builder = tsb.Builder(config="v2", data_dir=data_dir)
    with pytest.raises(ValueError, match=r"c00005\.jpg: cannot decode image"):
        common.prepare_for_test(builder, tmp_path / "manual")
    assert not tsb.Builder(config="v2", data_dir=data_dir).is_prepared()
    assert not (data_dir / "textseg" / "v2" / "1.0.0").exists()
    with pytest.raises(Exception):  # noqa: B017  (tfds raises AssertionError or FileNotFoundError by version)
        tfds.data_source("textseg/v2", split="train", data_dir=data_dir, download=False)


def test_missing_files_named_in_split_json(tmp_path):
    shutil.copytree(dummy.OUT, tmp_path / "manual")
    splits = json.loads((dummy.OUT / "split.json").read_text())
    splits["test"].append("z09999")
    (tmp_path / "manual" / "split.json").write_text(json.dumps(splits))
    with pytest.raises(FileNotFoundError, match=r"z09999\.jpg.*z09999_maskfg\.png"):
        common.prepare_for_test(tsb.Builder(config="v2", data_dir=tmp_path / "data"), tmp_path / "manual")


def test_char_boxes_function():
    inst = np.zeros((6, 6), np.uint8)
    inst[1:3, 2:5] = 7
    inst[5, 5] = 255
    anno = {"w": {"text": "x", "char": {"0": {"text": "Z", "mask_value": 7}, "1": {"text": "q", "mask_value": 9}}}}
    out = tsb.char_boxes(anno, inst)
    np.testing.assert_array_equal(out["char_boxes"], [[1, 2, 3, 5]])
    np.testing.assert_array_equal(out["char_labels"], [35])
    assert tsb.char_boxes({}, inst)["char_boxes"].shape == (0, 4)


def test_common_char_class():
    assert [common.char_class(c) for c in ["0", "9", "a", "A", "z", "Z", "!", "é", "ab", ""]] == [
        0,
        9,
        10,
        10,
        35,
        35,
        36,
        36,
        36,
        36,
    ]


def test_example_id_rejects_paths():
    assert common.example_id("img 61(1)") == "img_61_1_"
    with pytest.raises(ValueError):
        common.example_id("/tmp/x")
