"""Writes `dummy_data/` for the mlt_s builder tests, with the real archive names and inner paths.

    python -m tfds_builders.mlt_s.make_dummy_data

Training images img_1 (jpg), img_2 (png) in ch8_training_images_1.zip, img_3 (gif, unlabelled: dropped) in
ch8_training_images_2.zip; validation images img_1 (jpg), img_2 (gif) in ch8_validation_images.zip. The
names collide across splits on purpose. Labels hold 0/1/255 with the text box shifted per example.
"""

from __future__ import annotations

import io

import numpy as np
from etils import epath
from PIL import Image

from tfds_builders import common

OUT = epath.Path(__file__).parent / "dummy_data"
H, W = 16, 24
TRAIN = {"img_1": ".jpg", "img_2": ".png", "img_3": ".gif"}
VAL = {"img_1": ".jpg", "img_2": ".gif"}
LABELLED = {"train": ("img_1", "img_2"), "validation": ("img_1", "img_2")}


def label_array(split: str, stem: str) -> np.ndarray:
    """Text at a position that depends on the split and stem, so examples are told apart by their masks."""
    shift = int(stem[-1]) + (5 if split == "validation" else 0)
    label = np.zeros((H, W), np.uint8)
    label[2:6, shift : shift + 4] = 1
    label[12:15, 18:22] = 255
    return label


def _encode(array: np.ndarray, suffix: str) -> bytes:
    if suffix == ".jpg":
        return common.jpeg_bytes(array)
    if suffix == ".png":
        return common.png_bytes(array)
    buffer = io.BytesIO()
    Image.fromarray(array).convert("P", palette=Image.ADAPTIVE, colors=16).save(buffer, format="gif")
    return buffer.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    train = {f"{s}{x}": _encode(common.fake_photo(300 + i, H, W), x) for i, (s, x) in enumerate(TRAIN.items())}
    names = sorted(train)
    common.write_archive(OUT / "ch8_training_images_1.zip", {n: train[n] for n in names[:2]})
    common.write_archive(OUT / "ch8_training_images_2.zip", {n: train[n] for n in names[2:]})
    val = {f"{s}{x}": _encode(common.fake_photo(400 + i, H, W), x) for i, (s, x) in enumerate(VAL.items())}
    common.write_archive(OUT / "ch8_validation_images.zip", val)
    folders = {"train": "training_labels", "validation": "validation_labels"}
    labels = {
        f"MLT_S_labels/{folders[split]}/{stem}.png": common.png_bytes(label_array(split, stem))
        for split, stems in LABELLED.items()
        for stem in stems
    }
    common.write_archive(OUT / "MLT_S_labels.zip", labels)


if __name__ == "__main__":
    main()
