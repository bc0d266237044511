"""Composition of 0/1/255 weak labels from boxes and a box-level foreground model (BF-Net).

The rules, each a field of `Rules` (and of `config.label`):

- outside every box: 0 (background);
- inside a box, the model's text probability p of that box's crop (the mean over its tiles where a long box is
  tiled, `geometry.box_windows`): 1 where p >= `hi`, 0 where p <= `lo`, 255 (uncertain) in between;
- optionally (`colour_radius` > 0), an uncertain pixel whose colour is clearly that of the nearby confident text,
  or of the nearby confident background, takes that side (`_resolve_by_colour`); the rest stay 255;
- inside a don't-care region (illegible words, '###'): 255;
- where regions overlap, 255 wins over 1 and 1 wins over 0.

`labels_from_boxes` does it for one image with any `predict_fn`; `prepare` / `finish` split it so that a caller
can batch the crops of many images into one model call (`label_flow`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from texrnet_jax.weak_labels import geometry

UNCERTAIN = 255


@dataclasses.dataclass(frozen=True)
class Rules:
    """Crop geometry and thresholds of the composition.

    Attributes:
      margin: context around each box, as a fraction of its shorter side, on every side (`geometry.box_window`).
      tile_aspect: a box longer than this times its short side is cut into overlapping square tiles
        (`geometry.box_windows`); 0 gives every box one square crop.
      size: side of the square crops the model sees.
      hi: probability at or above which a box pixel is text (1).
      lo: probability at or below which a box pixel is background (0); between `lo` and `hi` it is 255.
      pad_value: RGB of the crop where its window leaves the image (the training data's mean colour).
      colour_radius: half-side of the square window whose confident pixels give an uncertain pixel its local text
        and background colours; 0 turns the colour step off.
      colour_margin: an uncertain pixel whose colour, projected on the line from the local background colour (0)
        to the local text colour (1), lies at or above 1 - margin is text, at or below margin background.
      colour_min_contrast: the two local colours must be at least this far apart (RGB distance, 0..255 units).
      colour_min_pixels: each local colour must be the mean of at least this many confident pixels.
    """

    margin: float = 0.5
    tile_aspect: float = 2.0
    size: int = 128
    hi: float = 0.5
    lo: float = 0.5
    pad_value: tuple[int, int, int] = (124, 116, 104)
    colour_radius: int = 0
    colour_margin: float = 0.2
    colour_min_contrast: float = 20.0
    colour_min_pixels: int = 12

    def __post_init__(self):
        if not 0.0 <= self.lo <= self.hi <= 1.0:
            raise ValueError(f"label thresholds need 0 <= lo <= hi <= 1, got lo={self.lo}, hi={self.hi}")
        if self.size < 33 or self.margin < 0:
            raise ValueError(f"label crop size must be >= 33 and margin >= 0, got {self.size}, {self.margin}")
        if self.tile_aspect and self.tile_aspect < 1:
            raise ValueError(f"tile_aspect must be 0 (no tiles) or >= 1, got {self.tile_aspect}")
        if self.colour_radius < 0 or not 0.0 <= self.colour_margin < 0.5 or self.colour_min_pixels < 1:
            raise ValueError(f"label colour step needs colour_radius >= 0, 0 <= colour_margin < 0.5 and "
                             f"colour_min_pixels >= 1, got {self.colour_radius}, {self.colour_margin}, "
                             f"{self.colour_min_pixels}")


def rules_from_config(config) -> Rules:
    """`Rules` of an experiment config: thresholds and the colour step from `config.label`, margin and crop size
    from `config.data`."""
    mean = tuple(int(round(255 * m)) for m in config.data.mean)
    label = config.label
    return Rules(margin=float(config.data.box_margin), tile_aspect=float(config.data.box_tile_aspect),
                 size=int(config.data.crop_size), hi=float(label.hi), lo=float(label.lo), pad_value=mean,
                 colour_radius=int(label.colour_radius), colour_margin=float(label.colour_margin),
                 colour_min_contrast=float(label.colour_min_contrast), colour_min_pixels=int(label.colour_min_pixels))


@dataclasses.dataclass
class Pending:
    """The crops of one image, waiting for their probabilities (`prepare` -> model -> `finish`)."""

    shape: tuple[int, int]
    crops: np.ndarray  # [K, size, size, 3] uint8, one per window (a box has one, or several tiles)
    windows: list[geometry.Window]
    owners: list[int]  # per window: the index of its box in `regions`
    regions: list[np.ndarray]  # [H, W] bool per box: its pixels
    uncertain: np.ndarray  # [H, W] bool: pixels of don't-care regions
    image: np.ndarray  # [H, W, 3] uint8, for the colour step


def prepare(image: np.ndarray, boxes: Sequence[np.ndarray], ignore: Sequence[np.ndarray], rules: Rules) -> Pending:
    """Crops `image` `[H, W, 3]` uint8 around each box polygon (boxes without a pixel in the image are left out)."""
    h, w = image.shape[:2]
    uncertain = np.zeros((h, w), bool)
    for polygon in ignore:
        uncertain |= geometry.polygon_mask(polygon, h, w)
    crops, windows, owners, regions = [], [], [], []
    for polygon in boxes:
        region = geometry.polygon_mask(polygon, h, w)
        if not region.any():
            continue
        for window in geometry.box_windows(polygon, rules.margin, rules.tile_aspect):
            crops.append(geometry.crop_image(image, window, rules.size, rules.pad_value))
            windows.append(window)
            owners.append(len(regions))
        regions.append(region)
    stacked = np.stack(crops) if crops else np.zeros((0, rules.size, rules.size, 3), np.uint8)
    return Pending((h, w), stacked, windows, owners, regions, uncertain, image)


def _local_mean(colours: np.ndarray, mask: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean colour `[h, w, 3]` and count `[h, w]` of the `mask` pixels in each pixel's (2r+1)^2 window."""
    k = (2 * radius + 1, 2 * radius + 1)
    m = mask.astype(np.float32)
    count = cv2.boxFilter(m, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    total = cv2.boxFilter(colours * m[..., None], -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return total / np.maximum(count, 1.0)[..., None], count


def _resolve_by_colour(colours: np.ndarray, text: np.ndarray, background: np.ndarray, band: np.ndarray,
                       rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    """Text and background masks grown into the uncertain `band` by local colour (the module docstring's rule).

    `colours` `[h, w, 3]` float32 and the masks `[h, w]` bool cover one box's rectangle. Each band pixel is
    projected on the segment from its window's mean confident-background colour to its mean confident-text colour;
    a band pixel is resolved only where both means have `colour_min_pixels` pixels and `colour_min_contrast`
    between them. Anti-aliased stroke edges fall mid-segment and stay uncertain."""
    text_mean, text_n = _local_mean(colours, text, rules.colour_radius)
    back_mean, back_n = _local_mean(colours, background, rules.colour_radius)
    axis = text_mean - back_mean
    contrast2 = (axis * axis).sum(-1)
    t = ((colours - back_mean) * axis).sum(-1) / np.maximum(contrast2, 1e-6)
    ok = (band & (text_n >= rules.colour_min_pixels) & (back_n >= rules.colour_min_pixels)
          & (contrast2 >= rules.colour_min_contrast ** 2))
    return text | (ok & (t >= 1.0 - rules.colour_margin)), background | (ok & (t <= rules.colour_margin))


def finish(pending: Pending, probs: np.ndarray, rules: Rules) -> np.ndarray:
    """The `[H, W]` uint8 label from the crops' text probabilities `probs` `[K, size, size]`."""
    h, w = pending.shape
    text = np.zeros((h, w), bool)
    uncertain = pending.uncertain.copy()
    if len(probs) != len(pending.windows):
        raise ValueError(f"{len(probs)} probability maps for {len(pending.windows)} crops")
    tiles: list[list[tuple[geometry.Window, np.ndarray]]] = [[] for _ in pending.regions]
    for window, owner, prob in zip(pending.windows, pending.owners, probs, strict=True):
        tiles[owner].append((window, prob))
    for region, parts in zip(pending.regions, tiles, strict=True):
        # The box's probability over the union of its windows: the mean of the tiles that cover each pixel.
        y0, x0 = max(0, min(wd.y0 for wd, _ in parts)), max(0, min(wd.x0 for wd, _ in parts))
        y1, x1 = min(h, max(wd.y0 + wd.side for wd, _ in parts)), min(w, max(wd.x0 + wd.side for wd, _ in parts))
        if y0 >= y1 or x0 >= x1:
            continue
        total = np.zeros((y1 - y0, x1 - x0), np.float32)
        count = np.zeros((y1 - y0, x1 - x0), np.float32)
        for window, prob in parts:
            (rows, cols), p = geometry.paste(prob, window, h, w)
            local = (slice(rows.start - y0, rows.stop - y0), slice(cols.start - x0, cols.stop - x0))
            total[local] += p
            count[local] += 1
        p = total / np.maximum(count, 1)
        inside = region[y0:y1, x0:x1] & (count > 0)
        fg, bg = inside & (p >= rules.hi), inside & (p <= rules.lo)
        band = inside & ~fg & ~bg
        if rules.colour_radius and band.any():
            colours = pending.image[y0:y1, x0:x1].astype(np.float32)
            fg, bg = _resolve_by_colour(colours, fg, bg, band, rules)
            band &= ~fg & ~bg
        text[y0:y1, x0:x1] |= fg
        uncertain[y0:y1, x0:x1] |= band
    label = text.astype(np.uint8)
    label[uncertain] = UNCERTAIN
    return label


def labels_from_boxes(image: np.ndarray, boxes: Sequence[np.ndarray], ignore: Sequence[np.ndarray],
                      predict_fn: Callable[[np.ndarray], np.ndarray], config: Rules | Mapping[str, Any]) -> np.ndarray:
    """The 0/1/255 label of one image from its boxes.

    Args:
      image: `[H, W, 3]` uint8 RGB.
      boxes: polygons of text (or lesion) regions, each `[N, 2]` (x, y) pixels; an axis-aligned box is 4 points.
      ignore: polygons of don't-care regions.
      predict_fn: `[K, size, size, 3]` uint8 crops -> `[K, size, size]` text probabilities in [0, 1].
      config: `Rules`, or a mapping of its fields.

    Returns:
      `[H, W]` uint8 in {0, 1, 255} (module docstring).
    """
    rules = config if isinstance(config, Rules) else Rules(**dict(config))
    pending = prepare(np.asarray(image), boxes, ignore, rules)
    probs = np.asarray(predict_fn(pending.crops)) if len(pending.crops) else np.zeros((0, rules.size, rules.size))
    if probs.shape != pending.crops.shape[:3]:
        raise ValueError(f"predict_fn returned shape {probs.shape} for crops of shape {pending.crops.shape}; "
                         f"expected {pending.crops.shape[:3]}")
    return finish(pending, probs, rules)


def whole_box_labels(shape: tuple[int, int], boxes: Sequence[np.ndarray], ignore: Sequence[np.ndarray]) -> np.ndarray:
    """The baseline a BF-Net is measured against: every box pixel is text, with the same overlap rules."""
    label = np.zeros(shape, np.uint8)
    for polygon in boxes:
        label[geometry.polygon_mask(polygon, *shape)] = 1
    for polygon in ignore:
        label[geometry.polygon_mask(polygon, *shape)] = UNCERTAIN
    return label
