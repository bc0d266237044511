"""Writes `dummy_data/` for the ist_s builder tests, with the real archive names.

    python -m tfds_builders.ist_s.make_dummy_data

Training images img_1, img_2, img_3 (img_3 unlabelled: dropped), test images img_1, img_5. The label zip
(layout undocumented) holds `IST_Segmentation_labels/train/img_1.png`, `.../test/img_1.png` (same name, the
folder decides) and `IST_Segmentation_labels/img_2.png`, `.../img_5.png` (flat: the unique stem decides).
"""

from __future__ import annotations

import numpy as np
from etils import epath

from tfds_builders import common

OUT = epath.Path(__file__).parent / "dummy_data"
H, W = 16, 20
TRAIN, TEST = ("img_1", "img_2", "img_3"), ("img_1", "img_5")
LABELS = {
    "IST_Segmentation_labels/train/img_1.png": ("train", "img_1"),
    "IST_Segmentation_labels/test/img_1.png": ("test", "img_1"),
    "IST_Segmentation_labels/img_2.png": ("train", "img_2"),
    "IST_Segmentation_labels/img_5.png": ("test", "img_5"),
}


def label_array(split: str, stem: str) -> np.ndarray:
    shift = int(stem[-1]) + (6 if split == "test" else 0)
    label = np.zeros((H, W), np.uint8)
    label[3:7, shift : shift + 3] = 1
    label[12:14, 1:4] = 255
    return label


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for archive, stems, seed in (("ch4_training_images.zip", TRAIN, 600), ("ch4_test_images.zip", TEST, 700)):
        photos = {f"{s}.jpg": common.jpeg_bytes(common.fake_photo(seed + i, H, W)) for i, s in enumerate(stems)}
        common.write_archive(OUT / archive, photos)
    labels = {name: common.png_bytes(label_array(*key)) for name, key in LABELS.items()}
    common.write_archive(OUT / "IST_Segmentation_labels.zip", labels)


if __name__ == "__main__":
    main()
