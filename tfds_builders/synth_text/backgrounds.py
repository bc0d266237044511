"""Random text-free backgrounds of the synthetic renderer: float32 [H, W, 3] in 0..255.

Flat colours, gradients, smooth noise, stripes/checks/dots, recoloured photo crops and height fields through
colour ramps, sometimes blended, with distractor shapes and a pasted sprite (`random_background`).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from tfds_builders.synth_text.assets import height_fields, photos, sprite


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of RGB values [..., 3] in 0..255."""
    rgb = np.asarray(rgb, np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _ramp(values: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Maps values [H, W] in 0..1 through a piecewise-linear colour ramp [K, 3]."""
    stops = np.linspace(0.0, 1.0, len(colors))
    return np.stack([np.interp(values, stops, colors[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Fractal value noise [h, w] in 0..1: bicubic-upsampled random grids of doubling resolution."""
    total = np.zeros((h, w), np.float32)
    cells, amp = int(rng.integers(2, 6)), 1.0
    for _ in range(int(rng.integers(1, 5))):
        grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32), "F")
        total += amp * np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC))
        cells, amp = cells * 2, amp * float(rng.uniform(0.3, 0.7))
    return (total - total.min()) / max(1e-6, float(np.ptp(total)))


def _coords(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates [h, w] rotated by a random angle (for gradients and patterns)."""
    t = rng.uniform(0, math.pi)
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return math.cos(t) * x + math.sin(t) * y, -math.sin(t) * x + math.cos(t) * y


def _crop(rng: np.random.Generator, src: np.ndarray, h: int, w: int) -> np.ndarray:
    """A random crop of `src` [H, W, C] with the aspect of (h, w), resized to it, maybe mirrored."""
    sh, sw = src.shape[:2]
    ch = max(4, min(sh, round(sw * h / w)) * rng.uniform(0.15, 1.0))
    cw = ch * w / h
    y, x = rng.uniform(0, sh - ch), rng.uniform(0, sw - cw)
    im = Image.fromarray(src).resize((w, h), Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
    out = np.asarray(im, np.float32)
    return out[:, ::-1] if rng.random() < 0.5 else out


def _base_background(rng: np.random.Generator, h: int, w: int, kind: int) -> np.ndarray:
    colors = rng.uniform(0, 255, (int(rng.integers(2, 5)), 3)).astype(np.float32)
    if kind == 0:  # flat colour with a faint smooth variation
        return colors[0] + (_smooth_noise(rng, h, w)[..., None] - 0.5) * rng.uniform(0, 40)
    if kind == 1:  # linear or radial gradient
        u, v = _coords(rng, h, w)
        if rng.random() < 0.3:
            u = np.hypot(u - rng.uniform(u.min(), u.max()), v - rng.uniform(v.min(), v.max()))
        return _ramp((u - u.min()) / max(1e-6, float(np.ptp(u))), colors)
    if kind == 2:  # smooth noise through a colour ramp
        return _ramp(_smooth_noise(rng, h, w), colors)
    if kind == 3:  # stripes, checks or dots, hard or soft
        u, v = _coords(rng, h, w)
        period = rng.uniform(3, max(4.0, min(h, w) / 2))
        pattern = int(rng.integers(3))
        if pattern == 0:
            t = 0.5 + 0.5 * np.sin(2 * math.pi * u / period)
            t = t if rng.random() < 0.5 else (t > rng.uniform(0.2, 0.8)).astype(np.float32)
        elif pattern == 1:
            t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
        else:
            du, dv = u % period - period / 2, v % period - period / 2
            t = (np.hypot(du, dv) < period * rng.uniform(0.15, 0.45)).astype(np.float32)
        return colors[0] * (1 - t[..., None]) + colors[1] * t[..., None]
    if kind == 4:  # photo crop, recoloured so that the few shipped photos look less alike
        pics = photos()
        pic = _crop(rng, pics[0] if rng.random() < 0.75 else pics[1], h, w)
        if rng.random() < 0.4:
            pic = pic[..., rng.permutation(3)]
        if rng.random() < 0.15:
            pic = 255.0 - pic
        return pic * rng.uniform(0.6, 1.3, 3).astype(np.float32) + rng.uniform(-40, 40, 3).astype(np.float32)
    fields = height_fields()  # terrain through a colour ramp
    field = _crop(rng, fields[int(rng.integers(len(fields)))], h, w)
    field = (field - field.min()) / max(1e-6, float(np.ptp(field)))
    return _ramp(field, colors)


def _distractors(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Draws a few non-text shapes (boxes, ellipses, lines, arcs) so that edges alone do not mean text."""
    h, w = image.shape[:2]
    im = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 5))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x = np.sort(rng.uniform(-0.2 * w, 1.2 * w, 2))
        y = np.sort(rng.uniform(-0.2 * h, 1.2 * h, 2))
        box = [float(x[0]), float(y[0]), float(x[1]) + 1, float(y[1]) + 1]
        width = int(rng.integers(1, max(2, min(h, w) // 16)))
        shape = int(rng.integers(4))
        if shape == 0:
            draw.rectangle(box, fill=color if rng.random() < 0.5 else None, outline=color, width=width)
        elif shape == 1:
            draw.ellipse(box, fill=color if rng.random() < 0.5 else None, outline=color, width=width)
        elif shape == 2:
            draw.line(box, fill=color, width=width)
        else:
            draw.arc(box, float(rng.uniform(0, 360)), float(rng.uniform(0, 360)), fill=color, width=width)
    return np.asarray(im, np.float32)


def _paste_sprite(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    side = max(8, int(min(h, w) * rng.uniform(0.2, 0.7)))
    rgba = np.asarray(Image.fromarray(sprite()).resize((side, side), Image.Resampling.BILINEAR), np.float32)
    y, x = int(rng.integers(-side // 3, h - side // 2)), int(rng.integers(-side // 3, w - side // 2))
    ys, xs = slice(max(0, y), min(h, y + side)), slice(max(0, x), min(w, x + side))
    part = rgba[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
    alpha = part[..., 3:] / 255.0
    image[ys, xs] = image[ys, xs] * (1 - alpha) + part[..., :3] * alpha
    return image


def random_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random background [h, w, 3] float32 in 0..255 (no text in it)."""
    image = _base_background(rng, h, w, int(rng.choice(6, p=[0.12, 0.16, 0.22, 0.18, 0.16, 0.16])))
    if rng.random() < 0.25:  # blend in a second texture for more varied local statistics
        other = _base_background(rng, h, w, int(rng.choice(6, p=[0.1, 0.2, 0.3, 0.15, 0.1, 0.15])))
        image = image + (other - image) * np.float32(rng.uniform(0.2, 0.6))
    if rng.random() < 0.35:
        image = _distractors(rng, image)
    if rng.random() < 0.08:
        image = _paste_sprite(rng, image)
    return np.clip(image, 0, 255).astype(np.float32)
