"""Writes `dummy_data/` for the textseg builder tests: tiny archives with the real names and inner paths.

    python -m tfds_builders.textseg.make_dummy_data

Ids: train a00001, a00002; val b00003; test c00004, c00005 (c00005 is a grayscale JPEG, stored as PNG by the
builder). Every `_maskfg.png` holds all four raw values 0/100/200/255 at known pixels (see `LABEL_PIXELS`);
the v1 labels differ from v2 in one pixel so the configs can be told apart. Each instance map has three
characters ('A', '7', '!') with mask values 1, 2, 3 and one json char (mask value 4) without pixels.
"""

from __future__ import annotations

import json

import numpy as np
from etils import epath

from tfds_builders import common

OUT = epath.Path(__file__).parent / "dummy_data"
SPLITS = {"train": ["a00001", "a00002"], "val": ["b00003"], "test": ["c00004", "c00005"]}
H, W = 24, 32
# (y, x) -> raw value in every v2 `_maskfg.png`; the test checks the canonical value of each.
LABEL_PIXELS = {(2, 2): 0, (5, 5): 100, (5, 12): 200, (20, 28): 255}
# The pixel where v1 differs from v2: 100 in v1, 0 in v2.
V1_PIXEL = (20, 2)
# (text, mask_value, (y1, x1, y2, x2)) of the characters drawn in every instance map.
CHARS = [("A", 1, (4, 4, 9, 8)), ("7", 2, (4, 10, 9, 14)), ("!", 3, (12, 4, 16, 6))]


def _labels(version: str) -> np.ndarray:
    raw = np.zeros((H, W), np.uint8)
    for _, _, (y1, x1, y2, x2) in CHARS:
        raw[y1:y2, x1:x2] = 100
    raw[4:9, 12:14] = 200  # effect pixels beside the '7'
    raw[18:22, 26:30] = 255
    if version == "v1":
        raw[V1_PIXEL] = 100
    for (y, x), value in LABEL_PIXELS.items():
        assert raw[y, x] == value, (y, x)
    return raw


def _instances() -> np.ndarray:
    inst = np.zeros((H, W), np.uint8)
    for _, value, (y1, x1, y2, x2) in CHARS:
        inst[y1:y2, x1:x2] = value
    inst[18:22, 26:30] = 255
    return inst


def _anno() -> dict:
    chars = {
        f"{i:02d}": {"text": t, "mask_value": v, "bbox": [x1, y1, x2, y1, x2, y2, x1, y2]}
        for i, (t, v, (y1, x1, y2, x2)) in enumerate(CHARS)
    }
    chars["03"] = {"text": "b", "mask_value": 4, "bbox": [0, 0, 1, 0, 1, 1, 0, 1]}  # no pixels: no box
    return {"0000": {"text": "A7!b", "bbox": [4, 4, 16, 4, 16, 16, 4, 16], "char": chars}}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ids = [i for split in SPLITS.values() for i in split]
    (OUT / "split.json").write_text(json.dumps(SPLITS))
    images = {}
    for n, data_id in enumerate(ids):
        photo = common.fake_photo(n, H, W)
        images[f"image/{data_id}.jpg"] = common.jpeg_bytes(photo[..., 0] if data_id == "c00005" else photo)
    common.write_archive(OUT / "image.tar.gz", images)
    for version, archive in (("v2", "semantic_label"), ("v1", "semantic_label_v1")):
        png = common.png_bytes(_labels(version))
        common.write_archive(OUT / f"{archive}.tar.gz", {f"{archive}/{i}_maskfg.png": png for i in ids})
    annotation = {}
    for data_id in ids:
        annotation[f"annotation/{data_id}_anno.json"] = json.dumps(_anno()).encode()
        annotation[f"annotation/{data_id}_mask.png"] = common.png_bytes(_instances())
        annotation[f"annotation/{data_id}_maskeff.png"] = common.png_bytes(_instances())
    common.write_archive(OUT / "annotation.tar.gz", annotation)


if __name__ == "__main__":
    main()
