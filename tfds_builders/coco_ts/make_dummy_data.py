"""Writes `dummy_data/` for the coco_ts builder tests, with the real archive names and inner paths.

    python -m tfds_builders.coco_ts.make_dummy_data

COCO ids 1, 2 are COCO-Text `train`, 3, 4 `val` (4 is a grayscale JPEG), 5 is `train` without a label (dropped),
6 has a label but is not in COCO-Text (skipped). Labels hold 0/1/255 at `LABEL_PIXELS`.
"""

from __future__ import annotations

import json

import numpy as np
from etils import epath

from tfds_builders import common

OUT = epath.Path(__file__).parent / "dummy_data"
H, W = 18, 26
SETS = {1: "train", 2: "train", 3: "val", 4: "val", 5: "train"}
LABELLED = (1, 2, 3, 4, 6)
LABEL_PIXELS = {(1, 1): 0, (6, 9): 1, (15, 22): 255}


def name(coco_id: int) -> str:
    return f"COCO_train2014_{coco_id:012d}"


def label_array() -> np.ndarray:
    label = np.zeros((H, W), np.uint8)
    label[4:9, 5:14] = 1
    label[14:17, 20:24] = 255
    return label


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images = {}
    for i in sorted(set(SETS) | set(LABELLED)):
        photo = common.fake_photo(200 + i, H, W)
        images[f"train2014/{name(i)}.jpg"] = common.jpeg_bytes(photo[..., 1] if i == 4 else photo)
    common.write_archive(OUT / "train2014.zip", images)
    labels = {f"COCO_TS_labels/{name(i)}.png": common.png_bytes(label_array()) for i in LABELLED}
    common.write_archive(OUT / "COCO_TS_labels.zip", labels)
    imgs = {
        str(i): {"id": i, "set": s, "width": W, "height": H, "file_name": f"{name(i)}.jpg"} for i, s in SETS.items()
    }
    cocotext = {"cats": {}, "anns": {}, "imgToAnns": {}, "imgs": imgs, "info": {"version": "dummy"}}
    common.write_archive(OUT / "cocotext.v2.zip", {"cocotext.v2.json": json.dumps(cocotext).encode()})


if __name__ == "__main__":
    main()
