"""Box geometry shared by BF-Net training and label generation: polygons to pixels, box crops and their inverse.

A box crop is the square window of side `L = max(w, h) + 2 * margin * min(w, h)` centred on the box's bounding
rectangle (`w`, `h`), so a word keeps its aspect ratio and gets context on every side; parts of the window
outside the image are padded (image: `pad_value`, mask: ignore). A box longer than `tile_aspect` times its short
side (a long word, a text line) is covered instead by square tiles along its long axis, each the window of a
`tile_aspect : 1` piece of it, half overlapping (`box_windows`): a single square window would shrink its text
by its aspect ratio. The window is resized to the network's
`size x size` input with Pillow's bilinear filter (antialiased when it shrinks). `paste` undoes it for a
probability map. Training (`crops.BoxCropAugment`) and labelling (`compose`) call the same functions, so the
network sees the same geometry in both.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class Window:
    """A square window `[x0, x0 + side) x [y0, y0 + side)` in image pixels (it may extend past the image)."""

    x0: int
    y0: int
    side: int


def box_polygon(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    """The 4-point polygon `[4, 2]` (x, y) of an axis-aligned box, clockwise on the image from the top-left."""
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)


def polygon_mask(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """`[height, width]` bool: the pixels whose centre lies inside `polygon` `[N, 2]` (x, y), even-odd rule.

    Polygon coordinates are continuous: pixel (i, j) covers `[j, j + 1) x [i, i + 1)`, so the axis-aligned box
    `(x1, y1, x2, y2)` with integer corners covers exactly rows `y1..y2-1` and columns `x1..x2-1`.
    """
    poly = np.asarray(polygon, np.float64)
    out = np.zeros((height, width), bool)
    x_lo, y_lo = np.floor(poly.min(0)).astype(int)
    x_hi, y_hi = np.ceil(poly.max(0)).astype(int)
    x_lo, y_lo, x_hi, y_hi = max(x_lo, 0), max(y_lo, 0), min(x_hi, width), min(y_hi, height)
    if x_lo >= x_hi or y_lo >= y_hi:
        return out
    px, py = np.meshgrid(np.arange(x_lo, x_hi) + 0.5, np.arange(y_lo, y_hi) + 0.5)
    inside = np.zeros(px.shape, bool)
    ax, ay = poly[:, 0], poly[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    for k in range(len(poly)):  # crossing number: toggle for every edge that a ray to +x crosses
        if ay[k] == by[k]:
            continue
        crosses = (ay[k] > py) != (by[k] > py)
        x_at = ax[k] + (py - ay[k]) * (bx[k] - ax[k]) / (by[k] - ay[k])
        inside ^= crosses & (px < x_at)
    out[y_lo:y_hi, x_lo:x_hi] = inside
    return out


def box_window(polygon: np.ndarray, margin: float) -> Window:
    """The square crop window of a box polygon `[N, 2]` (see the module docstring)."""
    poly = np.asarray(polygon, np.float64)
    (x1, y1), (x2, y2) = poly.min(0), poly.max(0)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    side = max(2, math.ceil(max(w, h) + 2 * margin * min(w, h)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return Window(int(math.floor(cx - side / 2 + 0.5)), int(math.floor(cy - side / 2 + 0.5)), side)


def box_windows(polygon: np.ndarray, margin: float, tile_aspect: float = 0.0) -> list[Window]:
    """The crop windows of a box polygon: `[box_window]`, or its tiles when it is longer than `tile_aspect` times its
    short side (module docstring; `tile_aspect` 0 never tiles)."""
    poly = np.asarray(polygon, np.float64)
    (x1, y1), (x2, y2) = poly.min(0), poly.max(0)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    short, long = min(w, h), max(w, h)
    if tile_aspect <= 0 or long <= tile_aspect * short:
        return [box_window(poly, margin)]
    piece = tile_aspect * short  # the length of box that one tile covers
    lo, hi = (x1, x2) if w >= h else (y1, y2)
    first, last = lo + piece / 2, hi - piece / 2
    centres = np.linspace(first, last, math.ceil((last - first) / (piece / 2)) + 1)
    windows = []
    for c in centres:
        a, b = c - piece / 2, c + piece / 2
        part = box_polygon(a, y1, b, y2) if w >= h else box_polygon(x1, a, x2, b)
        windows.append(box_window(part, margin))
    return windows


def _window_slices(window: Window, height: int, width: int):
    """(source rows, source cols, destination rows, destination cols) of the window's part inside the image."""
    ys0, xs0 = max(window.y0, 0), max(window.x0, 0)
    ys1, xs1 = min(window.y0 + window.side, height), min(window.x0 + window.side, width)
    src = (slice(ys0, max(ys0, ys1)), slice(xs0, max(xs0, xs1)))
    dst = (slice(ys0 - window.y0, max(ys0, ys1) - window.y0), slice(xs0 - window.x0, max(xs0, xs1) - window.x0))
    return src, dst


def crop_image(image: np.ndarray, window: Window, size: int, pad_value: np.ndarray | tuple) -> np.ndarray:
    """`[size, size, 3]` uint8: the window of `image` `[H, W, 3]` uint8, padded with `pad_value`, resized."""
    canvas = np.empty((window.side, window.side, 3), np.uint8)
    canvas[:] = np.asarray(pad_value, np.uint8)
    src, dst = _window_slices(window, *image.shape[:2])
    canvas[dst] = image[src]
    if window.side == size:
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))


def crop_mask(mask: np.ndarray, window: Window, size: int, pad_label: int = 255) -> np.ndarray:
    """`[size, size]` uint8: the window of a label map `[H, W]`, padded with `pad_label`, nearest-resized."""
    canvas = np.full((window.side, window.side), pad_label, np.uint8)
    src, dst = _window_slices(window, *mask.shape[:2])
    canvas[dst] = mask[src]
    if window.side == size:
        return canvas
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.NEAREST))


def paste(prob: np.ndarray, window: Window, height: int, width: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """A `[size, size]` probability map of a crop back in image pixels.

    Returns:
      (image slices, values): the rows/columns of the window's part inside the `[height, width]` image and the
      bilinearly resized probabilities there.
    """
    src, dst = _window_slices(window, height, width)
    full = np.asarray(prob, np.float32)
    if full.shape[0] != window.side:
        full = np.asarray(Image.fromarray(full, mode="F").resize((window.side, window.side), Image.BILINEAR))
    return src, full[dst]
