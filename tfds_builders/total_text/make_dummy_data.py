"""Writes `dummy_data/` for the total_text builder tests, in the layout of the two downloads.

    python -m tfds_builders.total_text.make_dummy_data

`totaltext.zip` holds `Images/Train/img11.jpg`, `Images/Train/img61.JPG` (upper-case suffix, as in the
release) and `Images/Test/img1.jpg`, `Images/Test/img2.jpg`; the mask zip holds
`groundtruth_pixel/{Train,Test}/<stem>.jpg`, JPEG masks (quality 60, so values scatter around 0 and 255)
with a text rectangle at `TEXT_BOX`.
"""

from __future__ import annotations

import numpy as np
from etils import epath

from tfds_builders import common

OUT = epath.Path(__file__).parent / "dummy_data"
SPLITS = {"Train": ["img11", "img61"], "Test": ["img1", "img2"]}
H, W = 20, 28
TEXT_BOX = (5, 6, 14, 20)  # y1, x1, y2, x2 of the text rectangle in every mask
MASK_ARCHIVE = "Character Level Mask.zip"


def mask_array() -> np.ndarray:
    y1, x1, y2, x2 = TEXT_BOX
    mask = np.zeros((H, W), np.uint8)
    mask[y1:y2, x1:x2] = 255
    return mask


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images, masks = {}, {}
    for n, (folder, stem) in enumerate((f, s) for f, ss in SPLITS.items() for s in ss):
        suffix = ".JPG" if stem == "img61" else ".jpg"
        images[f"Images/{folder}/{stem}{suffix}"] = common.jpeg_bytes(common.fake_photo(100 + n, H, W))
        masks[f"groundtruth_pixel/{folder}/{stem}.jpg"] = common.jpeg_bytes(mask_array(), quality=60)
    common.write_archive(OUT / "totaltext.zip", images)
    common.write_archive(OUT / MASK_ARCHIVE, masks)


if __name__ == "__main__":
    main()
