"""Label layouts: labels written at `label_path` build unchanged with the project's builder of each set.

Each case writes tiny fake downloads (real archive names, real file naming) into a manual dir and the labels
into `<manual dir>/weak_labels`, as a user would place the label mode's output, then builds the dataset with
`tfds_builders.build.prepare` and checks every example's mask and split.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from texrnet_jax.weak_labels import layouts
from texrnet_jax.weak_labels.records import Record
from tfds_builders import build, common

H, W = 12, 16


def _label(index: int) -> np.ndarray:
    """0/1/255 content that differs per example, so a label paired with the wrong image is caught."""
    label = np.zeros((H, W), np.uint8)
    label[2 : 5 + index, 1 + 2 * index : 7 + 2 * index] = 1
    label[H - 2 :, : 3 + index] = 255
    return label


def _photos(names: list[str], seed: int) -> dict[str, bytes]:
    """{name: bytes} of distinct small photos, encoded as each name's suffix says (jpg, png or gif)."""
    out = {}
    for i, name in enumerate(names):
        photo = common.fake_photo(seed + i, H, W)
        if name.endswith(".gif"):
            buffer = io.BytesIO()
            Image.fromarray(photo).convert("P", palette=Image.ADAPTIVE, colors=16).save(buffer, format="gif")
            out[name] = buffer.getvalue()
        else:
            out[name] = common.png_bytes(photo) if name.endswith(".png") else common.jpeg_bytes(photo)
    return out


# Each case writes the downloads into the manual dir and returns [(record, split the example must land in)].


def _coco_ts(manual: Path) -> list[tuple[Record, str]]:
    """COCO ids 36, 49 are COCO-Text v2 `train`, 61 `val`; 77 is a train2014 image without a label (dropped)."""
    sets = {36: "train", 49: "train", 61: "val", 77: "train"}
    names = {i: f"COCO_train2014_{i:012d}.jpg" for i in sets}
    photos = _photos(list(names.values()), 10)
    common.write_archive(manual / "train2014.zip", {f"train2014/{n}": data for n, data in photos.items()})
    imgs = {str(i): {"id": i, "set": s, "file_name": names[i], "width": W, "height": H} for i, s in sets.items()}
    (manual / "cocotext.v2.json").write_text(json.dumps({"cats": {}, "anns": {}, "imgToAnns": {}, "imgs": imgs}))
    records = [Record(names[i], split=sets[i], source=f"cocotext.v2.json image {i}") for i in (36, 49, 61)]
    return [(r, {"train": "train", "val": "validation"}[r.split]) for r in records]


def _mlt_s(manual: Path) -> list[tuple[Record, str]]:
    """img_1 is a training and a validation image (MLT names repeat); png and gif images too; img_4 unlabelled."""
    common.write_archive(manual / "ch8_training_images_1.zip", _photos(["img_1.jpg", "img_2.png", "img_4.jpg"], 20))
    common.write_archive(manual / "ch8_validation_images.zip", _photos(["img_1.jpg", "img_3.gif"], 30))
    return [
        (Record("img_1.jpg", split="train"), "train"),
        (Record("img_2.png", split="train"), "train"),
        (Record("img_1.jpg", split="val"), "validation"),
        (Record("img_3.gif", split="validation"), "validation"),
    ]


def _ist_s(manual: Path) -> list[tuple[Record, str]]:
    """img_1 is a training and a test image (ICDAR 2015 names repeat); test img_3 is unlabelled."""
    common.write_archive(manual / "ch4_training_images.zip", _photos(["img_1.jpg", "img_2.jpg"], 40))
    common.write_archive(manual / "ch4_test_images.zip", _photos(["img_1.jpg", "img_3.jpg"], 50))
    return [
        (Record("img_1.jpg", split="train", source="gt_img_1.txt"), "train"),
        (Record("img_2.jpg", split="train", source="gt_img_2.txt"), "train"),
        (Record("img_1.jpg", split="test", source="gt_img_1.txt"), "test"),
    ]


def _isic_wsm(manual: Path) -> list[tuple[Record, str]]:
    """Three labelled ISIC images in a sub-folder of the image folder, one unlabelled; `full` puts all in train."""
    photos = _photos([f"ISIC_{i:07d}.jpg" for i in range(4)], 60)
    common.write_archive(manual / "ISIC-images.zip", {f"ISIC-images/{n}": data for n, data in photos.items()})
    return [(Record(f"ISIC-images/ISIC_{i:07d}.jpg"), "train") for i in range(3)]


CASES = {"coco_ts": _coco_ts, "mlt_s": _mlt_s, "ist_s": _ist_s, "isic_wsm": _isic_wsm}


@pytest.mark.parametrize("layout", list(CASES))
def test_labels_build_with_the_builder(layout, tmp_path):
    manual = tmp_path / "manual"
    out = manual / "weak_labels"
    manual.mkdir()
    cases = CASES[layout](manual)
    expected = {}
    for i, (record, split) in enumerate(cases):
        path = layouts.label_path(layout, out, record)
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(_label(i))
        assert image.mode == "L"
        image.save(path)
        expected[split, Path(record.image).stem] = _label(i)
    records = [r for r, _ in cases]
    assert layouts.finalize(layout, out, records) == layouts.finalize(layout, out, records) == []
    command = f"python -m tfds_builders.build {layout} --manual_dir={manual} --data_dir="
    assert command in layouts.instructions(layout, out)

    builder = build.prepare(layout, data_dir=str(tmp_path / "data"), manual_dir=str(manual))
    got = {}
    for split in builder.info.splits:
        source = builder.as_data_source(split)
        for stem, ex in common.by_id(source[i] for i in range(len(source))).items():
            assert ex["image"].shape == (H, W, 3)
            got[split, stem] = ex["mask"][..., 0]
    assert sorted(got) == sorted(expected)
    for key, mask in got.items():
        np.testing.assert_array_equal(mask, expected[key], err_msg=str(key))


def test_flat_layout(tmp_path):
    record = Record("sub/dir/img_3.JPG", split="anything")
    assert layouts.label_path("flat", tmp_path / "out", record) == tmp_path / "out" / "img_3.png"
    assert layouts.finalize("flat", tmp_path / "out", [record]) == []
    assert "no TFDS builder reads" in layouts.instructions("flat", tmp_path / "out")


def test_dataset_layout_paths(tmp_path):
    out = tmp_path / "out"
    assert layouts.label_path("mlt_s", out, Record("img_9.gif", split="val")) == (
        out / "MLT_S_labels" / "validation_labels" / "img_9.png"
    )
    assert layouts.label_path("ist_s", out, Record("img_9.jpg", split="test")) == (
        out / "IST_Segmentation_labels" / "test" / "img_9.png"
    )


def test_unknown_layout_names_the_known_ones(tmp_path):
    for call in (layouts.label_path, layouts.finalize):
        with pytest.raises(ValueError, match="unknown label layout 'coco'.*flat, coco_ts, mlt_s, ist_s, isic_wsm"):
            call("coco", tmp_path, [Record("x.jpg")] if call is layouts.finalize else Record("x.jpg"))
    with pytest.raises(ValueError, match="known layouts: flat"):
        layouts.instructions("coco", tmp_path)


@pytest.mark.parametrize(
    "layout, record, why",
    [
        ("coco_ts", Record("COCO_val2014_000000000042.jpg", split="val"), "images named COCO_train2014_*"),
        ("coco_ts", Record("COCO_train2014_000000000042.jpg", split="test"), "split 'test' is none of train, val"),
        ("mlt_s", Record("img_7.bmp", split="train"), "reads only .jpg/.jpeg/.png/.gif images"),
        ("ist_s", Record("img_7.jpg", split=""), "split '' is none of test, train"),
        ("ist_s", Record("img_7.png", split="train"), "reads only .jpg/.jpeg images"),
        ("isic_wsm", Record("lesions/ISIC_0000007.tif"), "reads only .jpg/.jpeg/.png images"),
    ],
)
def test_unplaceable_record_names_image_and_reason(layout, record, why, tmp_path):
    with pytest.raises(ValueError, match=re.escape(record.image) + ".*" + re.escape(why)):
        layouts.label_path(layout, tmp_path / "out", record)


def test_output_dir_name_that_would_mislead_the_split(tmp_path):
    with pytest.raises(ValueError, match="containing 'test'"):
        layouts.label_path("ist_s", tmp_path / "ist_s_latest", Record("img_1.jpg", split="train"))
    with pytest.raises(ValueError, match="containing 'validation'"):
        layouts.label_path("mlt_s", tmp_path / "MLT_validation_run", Record("img_1.jpg", split="train"))


def test_finalize_rejects_two_labels_on_one_path(tmp_path):
    records = [Record("a/ISIC_0000001.jpg"), Record("b/ISIC_0000001.png"), Record("ISIC_0000002.jpg")]
    with pytest.raises(ValueError, match="a/ISIC_0000001.jpg and b/ISIC_0000001.png"):
        layouts.finalize("isic_wsm", tmp_path / "out", records)
