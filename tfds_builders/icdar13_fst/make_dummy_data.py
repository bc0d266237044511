"""Writes `dummy_data/` for the icdar13_fst builder tests: the four official zip names with tiny content.

    python -m tfds_builders.icdar13_fst.make_dummy_data

Training images 100.jpg, 101.jpg with `<n>_GT.bmp` colour maps (white background) and `<n>_GT.txt`: three
characters per image, 'H' (red) and 'i' (green) in one word, a blank line, then a don't-care '#' character
(blue). Test images img_1.jpg, img_2.jpg with RGB `gt_img_<n>.png` maps (one black and one red character).
"""

from __future__ import annotations

import io

import numpy as np
from etils import epath
from PIL import Image

from tfds_builders import common

OUT = epath.Path(__file__).parent / "dummy_data"
H, W = 20, 30
TRAIN, TEST = ("100", "101"), ("img_1", "img_2")
# (colour, (x1, y1, x2, y2) inclusive, text, dont_care) of the training characters.
TRAIN_CHARS = [
    ((255, 0, 0), (3, 4, 7, 12), "H", False),
    ((0, 255, 0), (9, 4, 10, 12), "i", False),
    ((0, 0, 255), (20, 5, 25, 9), ".", True),
]
TEST_CHARS = [((0, 0, 0), (2, 2, 6, 8)), ((200, 10, 10), (12, 3, 15, 9))]


def _paint(chars) -> np.ndarray:
    gt = np.full((H, W, 3), 255, np.uint8)
    for colour, (x1, y1, x2, y2), *_ in chars:
        gt[y1 : y2 + 1, x1 : x2 + 1] = colour
    return gt


def train_gt() -> np.ndarray:
    return _paint(TRAIN_CHARS)


def test_gt() -> np.ndarray:
    return _paint(TEST_CHARS)


def _bmp(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="bmp")
    return buffer.getvalue()


def _txt() -> bytes:
    lines = []
    for colour, (x1, y1, x2, y2), text, dont_care in TRAIN_CHARS:
        if dont_care:
            lines.append("")  # blank line between words
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        lines.append(
            f'{"# " if dont_care else ""}{colour[0]} {colour[1]} {colour[2]} {cx} {cy} {x1} {y1} {x2} {y2} "{text}"'
        )
    return ("\r\n".join(lines) + "\r\n").encode()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photos = {s: common.jpeg_bytes(common.fake_photo(500 + i, H, W)) for i, s in enumerate(TRAIN + TEST)}
    common.write_archive(OUT / "Challenge2_Training_Task12_Images.zip", {f"{s}.jpg": photos[s] for s in TRAIN})
    common.write_archive(OUT / "Challenge2_Test_Task12_Images.zip", {f"{s}.jpg": photos[s] for s in TEST})
    gt = {}
    for s in TRAIN:
        gt[f"{s}_GT.bmp"] = _bmp(train_gt())
        gt[f"{s}_GT.txt"] = _txt()
    common.write_archive(OUT / "Challenge2_Training_Task2_GT.zip", gt)
    common.write_archive(
        OUT / "Challenge2_Test_Task2_GT.zip", {f"gt_{s}.png": common.png_bytes(test_gt()) for s in TEST}
    )


if __name__ == "__main__":
    main()
