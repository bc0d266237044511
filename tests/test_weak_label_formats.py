"""Tests of `texrnet_jax.weak_labels.formats`: small COCO-Text v2, ICDAR15/MLT and boxes JSON files."""

import json

import numpy as np
import pytest

from texrnet_jax.weak_labels import formats
from texrnet_jax.weak_labels.formats import box_polygon, polygon_area, read_annotations


def _box(x1, y1, x2, y2):
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)


def _same(polygons, expected):
    assert len(polygons) == len(expected)
    for got, want in zip(polygons, expected, strict=True):
        assert got.dtype == np.float64 and got.ndim == 2 and got.shape[1] == 2
        np.testing.assert_array_equal(got, np.asarray(want, np.float64))


def _problem(problems, *parts):
    """The one problem message that contains all of `parts`."""
    hits = [p for p in problems if all(part in p for part in parts)]
    assert len(hits) == 1, (parts, problems)
    return hits[0]


def test_helpers():
    np.testing.assert_array_equal(box_polygon(1, 2, 4, 6), _box(1, 2, 4, 6))
    assert polygon_area(_box(1, 2, 4, 6)) == 12.0
    assert polygon_area(_box(1, 2, 4, 6)[::-1]) == 12.0  # orientation does not matter
    assert polygon_area(np.array([[0, 0], [10, 10], [10, 0], [0, 10]])) == 0.0  # symmetric bow-tie
    assert polygon_area(np.array([[0, 0], [1, 1]])) == 0.0


def test_unknown_format_and_missing_path(tmp_path):
    with pytest.raises(ValueError, match="coco_text.*icdar.*boxes_json"):
        read_annotations("pascal_voc", str(tmp_path), str(tmp_path))
    missing = tmp_path / "nowhere" / "cocotext.v2.json"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_annotations("coco_text", str(missing), str(tmp_path))
    assert formats.FORMATS == ("coco_text", "icdar", "boxes_json")


# ---------------------------------------------------------------------------------------------------------------
# coco_text


def _coco(tmp_path):
    imgs = {
        "36": {"id": 36, "file_name": "COCO_train2014_000000000036.jpg", "width": 100, "height": 80, "set": "train"},
        "9": {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": 50, "height": 40, "set": "val"},
        "7": {"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "width": 30, "height": 30, "set": "train"},
    }
    anns = {
        "1": {"id": 1, "image_id": 36, "bbox": [10, 20, 30, 5], "legibility": "legible", "mask": [10, 20, 40, 20]},
        "2": {"id": 2, "image_id": 36, "bbox": [1.5, 2.5, 4.0, 3.0], "legibility": "illegible"},
        "3": {"id": 3, "image_id": 9, "bbox": [40, -5, 20, 15], "legibility": "legible"},  # partly outside
        "1234": {"id": 1234, "image_id": 36, "bbox": [10, 20, 0, 5], "legibility": "legible"},
        "5": {"id": 5, "image_id": 36, "bbox": [10, 20, 5], "legibility": "legible"},
        "6": {"id": 6, "image_id": 36, "bbox": [10, "20", 5, 5], "legibility": "legible"},
        "8": {"id": 8, "image_id": 999, "bbox": [1, 2, 3, 4], "legibility": "legible"},
        "10": {"id": 10, "image_id": 9, "bbox": [60, 10, 5, 5], "legibility": "legible"},  # right of the image
        "11": {"id": 11, "image_id": 9, "bbox": [-20, 10, 20, 5], "legibility": "illegible"},  # left, touching
    }
    to_anns = {"36": [1, 2, 1234, 5, 6], "9": [3, 10, 11], "7": []}
    path = tmp_path / "cocotext.v2.json"
    path.write_text(json.dumps({"imgs": imgs, "anns": anns, "imgToAnns": to_anns, "cats": {}, "info": {}}))
    return path


def test_coco_text(tmp_path):
    records, problems = read_annotations("coco_text", str(_coco(tmp_path)), str(tmp_path))
    assert [r.image for r in records] == [f"COCO_train2014_0000000000{i:02d}.jpg" for i in (7, 9, 36)]
    empty, partly, full = records
    assert (empty.boxes, empty.ignore, empty.split) == ([], [], "train")
    _same(partly.boxes, [_box(40, 0, 50, 10)])  # clipped to the 50 x 40 image
    assert partly.ignore == [] and partly.split == "val"
    _same(full.boxes, [_box(10, 20, 40, 25)])
    _same(full.ignore, [_box(1.5, 2.5, 5.5, 5.5)])
    assert full.split == "train" and full.source == "cocotext.v2.json image 36"
    assert len(problems) == 6, problems
    assert "cocotext.v2.json ann 1234: degenerate bbox [10, 20, 0, 5] (skipped)" in problems
    _problem(problems, "cocotext.v2.json ann 5:", "[10, 20, 5]", "skipped")
    _problem(problems, "cocotext.v2.json ann 6:", "skipped")
    _problem(problems, "cocotext.v2.json ann 8:", "999", "not in 'imgs'")
    _problem(problems, "cocotext.v2.json ann 10:", "outside the 50x40 image", "skipped")
    _problem(problems, "cocotext.v2.json ann 11:", "outside", "skipped")


def test_coco_text_drop_empty_and_malformed(tmp_path):
    records, _ = read_annotations("coco_text", str(_coco(tmp_path)), str(tmp_path), keep_empty=False)
    assert [r.image for r in records] == ["COCO_train2014_000000000009.jpg", "COCO_train2014_000000000036.jpg"]
    bad = tmp_path / "broken.json"
    bad.write_text('{"imgs": {')
    with pytest.raises(ValueError, match="broken.json"):
        read_annotations("coco_text", str(bad), str(tmp_path))
    bad.write_text("[]")
    with pytest.raises(ValueError, match="broken.json"):
        read_annotations("coco_text", str(bad), str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------
# icdar


def _icdar(tmp_path):
    gt, images = tmp_path / "gt", tmp_path / "images"
    gt.mkdir()
    images.mkdir()
    for name in ("img_1.jpg", "img_2.PNG", "img_3.jpeg", "plain.bmp", "notes.txt"):
        (images / name).write_bytes(b"")
    icdar15 = ["377,117,463,117,465,130,378,130,Genaxis Theatre", "", "493,115,519,115,519,131,493,131,[06]  ",
               "374,155,409,155,409,170,374,170,###", "0,0,10,10,10,0,0,10,bowtie"]
    (gt / "gt_img_1.txt").write_bytes(("\r\n".join(icdar15) + "\r\n").encode("utf-8-sig"))
    mlt = ["10,10,50,10,50,30,10,30,Latin,Hello, world", "1.5,2,20.5,2,20.5,12,1.5,12,Arabic,مرحبا",
           "60,60,80,60,80,70,60,70,None,###", "5,5,25,5,25,15,5,15,Latin"]
    (gt / "gt_img_2.txt").write_text("\n".join(mlt), encoding="utf-8")
    bad = ["abc", "1,2,3,4,5,6,7", "1,2,3,4,5,6,7,x,word", "0,0,10,0,20,0,30,0,line", "0,0,1,0,1,0.5,0,0.5,tiny",
           "nan,0,10,0,10,10,0,10,nan", "0,0,10,0,10,10,0,10,kept"]
    (gt / "gt_img_3.txt").write_text("\n".join(bad) + "\n", encoding="utf-8")
    (gt / "plain.txt").write_text("", encoding="utf-8")  # no gt_ prefix; an image without text
    (gt / "gt_img_4.txt").write_text("1,1,9,1,9,9,1,9,lost\n", encoding="utf-8")  # no img_4.* image
    return gt, images


def test_icdar(tmp_path):
    gt, images = _icdar(tmp_path)
    records, problems = read_annotations("icdar", str(gt), str(images))
    assert [r.image for r in records] == ["img_1.jpg", "img_2.PNG", "img_3.jpeg", "plain.bmp"]
    assert all(r.split == "" for r in records)
    icdar15, mlt, bad, plain = records
    assert icdar15.source == "gt_img_1.txt"
    _same(icdar15.boxes, [[[377, 117], [463, 117], [465, 130], [378, 130]], [[493, 115], [519, 115], [519, 131],
                          [493, 131]], [[0, 0], [10, 10], [10, 0], [0, 10]]])  # the bow-tie as given
    _same(icdar15.ignore, [[[374, 155], [409, 155], [409, 170], [374, 170]]])
    _same(mlt.boxes, [_box(10, 10, 50, 30), _box(1.5, 2, 20.5, 12), _box(5, 5, 25, 15)])
    _same(mlt.ignore, [_box(60, 60, 80, 70)])
    _same(bad.boxes, [_box(0, 0, 10, 10)])
    assert bad.ignore == [] and plain.boxes == [] and plain.ignore == []
    assert "gt_img_3.txt line 1: expected 8 coordinates, got 'abc' (skipped)" in problems
    _problem(problems, "gt_img_3.txt line 2: expected 8 coordinates", "(skipped)")
    _problem(problems, "gt_img_3.txt line 3: expected 8 coordinates", "(skipped)")
    _problem(problems, "gt_img_3.txt line 4: degenerate quadrilateral", "area 0 ")
    _problem(problems, "gt_img_3.txt line 5: degenerate quadrilateral", "area 0.5 ")
    _problem(problems, "gt_img_3.txt line 6: degenerate quadrilateral", "non-finite")
    _problem(problems, "gt_img_4.txt: no image img_4.", "(skipped)")
    assert len(problems) == 7, problems


def test_icdar_mlt_transcriptions(tmp_path):
    """A '###' after an MLT script name is don't-care; an ICDAR15 word that is a script name is a word."""
    gt, images = tmp_path / "gt", tmp_path / "images"
    gt.mkdir()
    images.mkdir()
    (images / "a.gif").write_bytes(b"")
    (gt / "gt_a.txt").write_text("0,0,9,0,9,9,0,9,None\n0,0,9,0,9,9,0,9,Latin,###,\n0,0,9,0,9,9,0,9,Mixed,###\n")
    records, problems = read_annotations("icdar", str(gt), str(images))
    assert problems == []
    assert len(records[0].boxes) == 2 and len(records[0].ignore) == 1  # '###,' is a transcription, not '###'


def test_icdar_folder_errors(tmp_path):
    gt, images = _icdar(tmp_path)
    with pytest.raises(FileNotFoundError, match="no_images"):
        read_annotations("icdar", str(gt), str(tmp_path / "no_images"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        read_annotations("icdar", str(tmp_path / "empty"), str(images))


# ---------------------------------------------------------------------------------------------------------------
# boxes_json


def test_boxes_json(tmp_path):
    entries = [
        {"image": "b.jpg", "boxes": [[1, 2, 11, 7], [0, 0, 10, 0, 10, 10, 0, 10, -5, 5]], "ignore": [[3, 3, 6, 9]],
         "split": "train"},
        {"image": "a.jpg", "boxes": [[0.5, 0.5, 2.5, 3.5]]},
        {"boxes": [[1, 2, 3, 4]]},
        {"image": "c.jpg",
         "boxes": [[1, 2, 3], [1, 2, "3", 4], [5, 5, 5, 9], [0, 0, 1, 0, 1, 1, 0, 1, 5], [1, 1, 4, 5]],
         "ignore": [[0, 0, 5, 0, 9, 0], [True, 0, 4, 4]]},
        {"image": "a.jpg", "boxes": []},
        {"image": "d.jpg", "boxes": [], "split": 3},
        "e.jpg",
        {"image": "f.jpg"},
    ]
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(entries))
    records, problems = read_annotations("boxes_json", str(path), str(tmp_path))
    assert [r.image for r in records] == ["a.jpg", "b.jpg", "c.jpg", "f.jpg"]
    a, b, c, f = records
    _same(a.boxes, [_box(0.5, 0.5, 2.5, 3.5)])
    assert a.ignore == [] and a.split == "" and a.source == "boxes.json entry 1"
    _same(b.boxes, [_box(1, 2, 11, 7), [[0, 0], [10, 0], [10, 10], [0, 10], [-5, 5]]])
    _same(b.ignore, [_box(3, 3, 6, 9)])
    assert b.split == "train"
    _same(c.boxes, [_box(1, 1, 4, 5)])
    assert c.ignore == [] and f.boxes == [] and f.ignore == []
    assert "boxes.json entry 2: no 'image' (skipped)" in problems
    _problem(problems, "boxes.json entry 3 boxes[0]:", "[1, 2, 3]", "(skipped)")
    _problem(problems, "boxes.json entry 3 boxes[1]:", '"3"', "(skipped)")
    _problem(problems, "boxes.json entry 3 boxes[2]: degenerate box [5, 5, 5, 9]")
    _problem(problems, "boxes.json entry 3 boxes[3]:", "(skipped)")  # odd count
    _problem(problems, "boxes.json entry 3 ignore[0]: degenerate polygon", "area 0")
    _problem(problems, "boxes.json entry 3 ignore[1]:", "(skipped)")  # a bool is not a number
    _problem(problems, "boxes.json entry 4: duplicate image 'a.jpg'", "entry 1", "(skipped)")
    _problem(problems, "boxes.json entry 5: 'split'", "(skipped)")
    _problem(problems, "boxes.json entry 6: not an object (skipped)")
    assert len(problems) == 10, problems
    records, _ = read_annotations("boxes_json", str(path), str(tmp_path), keep_empty=False)
    assert [r.image for r in records] == ["a.jpg", "b.jpg", "c.jpg"]


def test_boxes_json_not_a_list(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"image": "a.jpg", "boxes": []}))
    with pytest.raises(ValueError, match="boxes.json"):
        read_annotations("boxes_json", str(path), str(tmp_path))
    path.write_text("[{")
    with pytest.raises(ValueError, match="boxes.json"):
        read_annotations("boxes_json", str(path), str(tmp_path))
