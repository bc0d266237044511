"""BF-Net training examples: crops around the word boxes of a dataset with pixel masks, boxes jittered.

Each example becomes one crop: a random word box of the image (`word_boxes` feature, `[W, 4]` `[y1, x1, y2, x2]`),
each of its edges moved by up to `jitter` times the box's shorter side (annotators' boxes are loose or tight,
rarely exact), cut out with `geometry.box_windows` exactly as label generation cuts real boxes (one of its tiles
at random where the box is longer than `tile_aspect` times its short side), resized to `crop_size`, mirrored half
the time. A fraction `text_free_fraction` of the crops (and every image without
words) is a random square window instead, so that the network also sees boxes with little or no text. The target
is the crop's own mask (text outside the box stays text: only pixels inside a box are ever used when labelling).
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import numpy as np

from texrnet_jax import preprocessing
from texrnet_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from texrnet_jax.weak_labels import geometry


def jittered_box(box: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """The 4-point polygon of box `[y1, x1, y2, x2]` with each edge moved by U(-jitter, jitter) x its shorter side."""
    y1, x1, y2, x2 = (float(v) for v in box)
    short = max(1.0, min(y2 - y1, x2 - x1))
    dy1, dx1, dy2, dx2 = rng.uniform(-jitter, jitter, 4) * short
    y1, x1, y2, x2 = y1 + dy1, x1 + dx1, max(y2 + dy2, y1 + dy1 + 1), max(x2 + dx2, x1 + dx1 + 1)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])


def random_window_box(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A random axis-aligned box polygon inside an `h x w` image, 8 px to the full short side."""
    side_y = rng.uniform(min(8, h), h)
    side_x = min(w, side_y * float(np.exp(rng.uniform(-0.7, 1.4))))
    y1, x1 = rng.uniform(0, h - side_y), rng.uniform(0, max(0.0, w - side_x))
    return np.array([[x1, y1], [x1 + side_x, y1], [x1 + side_x, y1 + side_y], [x1, y1 + side_y]])


class BoxCropAugment(grain.transforms.RandomMap):
    """Decoded example with `word_boxes` -> `{'image': [S, S, 3] float32 normalised, 'mask': [S, S] int32}`."""

    def __init__(self, crop_size: int, margin: float, jitter: float, text_free_fraction: float,
                 tile_aspect: float = 0.0, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 photometric: bool = False, ignore_label: int = 255, decode: dict[str, int] | None = None,
                 backend: str = "opencv"):
        self.crop_size, self.margin, self.jitter = int(crop_size), float(margin), float(jitter)
        self.text_free_fraction, self.tile_aspect = float(text_free_fraction), float(tile_aspect)
        self.mean, self.std = tuple(mean), tuple(std)
        self.pad_value = tuple(int(round(255 * m)) for m in self.mean)
        self.photometric, self.ignore_label = bool(photometric), int(ignore_label)
        self.decode, self.backend = dict(decode or {}), backend  # features given encoded (`decode_features`)

    def random_map(self, element, rng: np.random.Generator):
        element = preprocessing.decode_features(element, self.decode, self.backend)
        image = np.asarray(element["image"])
        mask = np.asarray(element["mask"])[..., 0]
        boxes = np.asarray(element["word_boxes"], np.float64).reshape(-1, 4)
        if len(boxes) == 0 or rng.random() < self.text_free_fraction:
            polygon = random_window_box(*mask.shape, rng)
        else:
            polygon = jittered_box(boxes[rng.integers(len(boxes))], self.jitter, rng)
        windows = geometry.box_windows(polygon, self.margin, self.tile_aspect)
        window = windows[rng.integers(len(windows))] if len(windows) > 1 else windows[0]
        img = geometry.crop_image(image, window, self.crop_size, self.pad_value)
        msk = geometry.crop_mask(mask, window, self.crop_size, self.ignore_label)
        if self.photometric:
            img = preprocessing.photometric(img, rng)
        if rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        return {"image": preprocessing.normalize_values(img, self.mean, self.std),
                "mask": np.ascontiguousarray(msk).astype(np.int32)}
