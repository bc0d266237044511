"""Writes `dummy_data/` for the isic_wsm builder tests.

    python -m tfds_builders.isic_wsm.make_dummy_data

`ISIC_WSM_labels.zip` holds labels for ISIC_0000000..ISIC_0000003 and ISIC_0000009 (no image: skipped);
the images are split over a zip (`ISIC-images.zip`, 0-1) and an unpacked folder (`ISIC-images-2/`, 2-3), as
people download the archive in parts. With the `holdout` config ISIC_0000002 falls in validation.
"""

from __future__ import annotations

import numpy as np
from etils import epath

from tfds_builders import common

OUT = epath.Path(__file__).parent / "dummy_data"
H, W = 14, 18
STEMS = [f"ISIC_{i:07d}" for i in range(4)]


def label_array(index: int) -> np.ndarray:
    label = np.zeros((H, W), np.uint8)
    label[3 + index : 9, 4:12] = 1
    label[0, :] = 255
    return label


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photos = {s: common.jpeg_bytes(common.fake_photo(800 + i, H, W)) for i, s in enumerate(STEMS)}
    common.write_archive(OUT / "ISIC-images.zip", {f"ISIC-images/{s}.jpg": photos[s] for s in STEMS[:2]})
    (OUT / "ISIC-images-2").mkdir(exist_ok=True)
    for s in STEMS[2:]:
        (OUT / "ISIC-images-2" / f"{s}.jpg").write_bytes(photos[s])
    labels = {f"ISIC_WSM_labels/{s}.png": common.png_bytes(label_array(i)) for i, s in enumerate(STEMS)}
    labels["ISIC_WSM_labels/ISIC_0000009.png"] = common.png_bytes(label_array(0))
    common.write_archive(OUT / "ISIC_WSM_labels.zip", labels)


if __name__ == "__main__":
    main()
