"""The record every annotation format is read into: one image, its text boxes and its don't-care regions."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Record:
    """Box annotations of one image.

    Attributes:
      image: the image's path relative to `config.label.images`, as the annotations name it (e.g.
        'COCO_train2014_000000000036.jpg', 'img_12.jpg', 'lesions/ISIC_0000001.jpg').
      boxes: polygons of the regions that hold text (or a lesion), each an [N, 2] float64 array of (x, y) in
        pixels, N >= 3; an axis-aligned box is the 4-point polygon of its corners.
      ignore: polygons of don't-care regions (illegible words, '###' transcriptions, explicit ignore boxes).
      split: the split the annotations assign the image to ('train', 'val', ...), '' when the format has none.
      source: where the record came from, for messages: 'gt_img_3.txt', 'cocotext.v2.json image 36', ...
    """

    image: str
    boxes: list[np.ndarray] = dataclasses.field(default_factory=list)
    ignore: list[np.ndarray] = dataclasses.field(default_factory=list)
    split: str = ""
    source: str = ""
