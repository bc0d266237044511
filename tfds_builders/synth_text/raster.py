"""Text blocks and their rasterisation: glyph drawing, resampling, compositing, masks and character boxes.

`compose` rasterises every `TextBlock` with FreeType's anti-aliased alpha (the exact area coverage of the
glyph in each pixel) and alpha-composites shadow, outline and fill in that order. It tracks, per pixel, the
fraction that shows text *fill* (`coverage`) and which character owns it; `coverage_to_mask` turns coverage
into the canonical {0, 1, 255} mask, and character boxes are the extents of each character's non-zero mask
pixels. Outlines and shadows occlude text below them but are never text themselves.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from tfds_builders.synth_text.assets import load_font

# Coverage thresholds of the canonical mask encoding (see README.md): a pixel is text when at least 75% of
# its area shows text fill, background when at most 25% does, and ignored in between.
FG_THRESHOLD = 0.75
BG_THRESHOLD = 0.25
IGNORE_VALUE = 255
# Glyph-classifier class for anything that is not a digit or an ASCII letter (TexRNet drops these boxes).
OTHER_CLASS = 36


@dataclasses.dataclass(frozen=True)
class Outline:
    """A stroke around the glyphs, drawn below the fill. Attributes: width (px), color (RGB 0..255)."""

    width: int
    color: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Shadow:
    """A drop shadow of fill plus outline.

    Attributes:
      offset: (dy, dx) in block pixels before rotation.
      blur: Gaussian blur radius in pixels (0 for a hard shadow).
      color: RGB 0..255.
      opacity: 0..1.
    """

    offset: tuple[int, int]
    blur: float
    color: tuple[float, float, float]
    opacity: float = 1.0


@dataclasses.dataclass(frozen=True)
class TextBlock:
    """One paragraph in one font, placed by an affine map (stretch, shear, rotation) around its centre.

    Attributes:
      lines: text lines, top to bottom.
      font: a key of `FONTS`.
      size: font size in pixels.
      center: (y, x) of the block centre in image pixels.
      color: fill colour, RGB 0..255.
      angle: counter-clockwise rotation in degrees.
      color2: if set, the fill is a linear gradient from `color` to `color2` along `gradient_angle`.
      gradient_angle: gradient direction in degrees (image frame).
      outline: optional `Outline`.
      shadow: optional `Shadow`.
      align: 'left', 'center' or 'right'.
      line_spacing: line pitch as a multiple of ascent + descent.
      tracking: extra pixels between characters.
      stretch: horizontal scale before rotation.
      shear: x shift per pixel of y before rotation (faux italic).
      curve: bend of the lines along a circular arc, as the angle (radians) that the layout width spans;
        positive bends the line ends up (the arc's centre above the text), negative down (an arch); applied
        before stretch, shear and rotation.
      perspective: (a, b), a projective tilt applied last: an image offset (x, y) from the centre becomes
        (x, y) / (1 + (a x + b y) / E), E the half diagonal of the transformed layout box; |a| + |b| <= 0.6
        keeps the text in front of the camera.
    """

    lines: tuple[str, ...]
    font: str
    size: int
    center: tuple[float, float]
    color: tuple[float, float, float]
    angle: float = 0.0
    color2: tuple[float, float, float] | None = None
    gradient_angle: float = 0.0
    outline: Outline | None = None
    shadow: Shadow | None = None
    align: str = "left"
    line_spacing: float = 1.0
    tracking: float = 0.0
    stretch: float = 1.0
    shear: float = 0.0
    curve: float = 0.0
    perspective: tuple[float, float] = (0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One rendered example.

    Attributes:
      image: [H, W, 3] uint8 RGB.
      mask: [H, W] uint8, 0 background, 1 text, 255 ignore.
      coverage: [H, W] float32, fraction of each pixel that shows text fill.
      char_boxes: [N, 4] float32 [y1, x1, y2, x2], inclusive-exclusive pixel bounds.
      char_labels: [N] int32 glyph classes (see `glyph_class`).
      chars: the N characters, in box order.
      text: all words of all blocks joined by single spaces.
      word_boxes: [W, 4] float32 [y1, x1, y2, x2], inclusive-exclusive bounds of the non-zero mask pixels of each
        word that has at least one text (1) pixel, in the order the words were drawn.
      word_quads: [W, 4, 2] float32 (x, y) corners of a rectangle around the same pixels (pixel squares, not
        centres) with sides along and across the line of the word's characters, in clockwise order on the image
        starting near the top-left: the oriented box an ICDAR-style annotator would draw around a rotated word.
    """

    image: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray
    char_boxes: np.ndarray
    char_labels: np.ndarray
    chars: str
    text: str
    word_boxes: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4), np.float32))
    word_quads: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 4, 2), np.float32))


def glyph_class(ch: str) -> int:
    """TexRNet glyph-classifier class: digits 0..9, letters a-z (any case) 10..35, anything else 36."""
    if "0" <= ch <= "9":
        return ord(ch) - ord("0")
    if "a" <= ch.lower() <= "z" and ch.isascii():
        return 10 + ord(ch.lower()) - ord("a")
    return OTHER_CLASS


def coverage_to_mask(
    coverage: np.ndarray, fg_threshold: float = FG_THRESHOLD, bg_threshold: float = BG_THRESHOLD
) -> np.ndarray:
    """Maps fill coverage [H, W] in 0..1 to the canonical uint8 mask {0, 1, 255}."""
    mask = np.full(coverage.shape, IGNORE_VALUE, np.uint8)
    mask[coverage >= fg_threshold] = 1
    mask[coverage <= bg_threshold] = 0
    return mask


def _glyphs(block: TextBlock):
    """Draws every visible character of `block` in block coordinates (baseline of line 0 at y = ascent).

    Returns:
      (glyphs, (layout_h, layout_w)): glyphs is a list of (char, top, left, fill_alpha [h, w] float32,
      union_alpha [h, w] float32, word), where union_alpha is fill plus outline and word is the index of the
      character's word in the block (words are runs of non-space characters, counted over all lines). Each bitmap has a 1 px empty ring
      so that every inked pixel's neighbours are owned by the glyph (the owner lookup after resampling
      relies on it). The layout box spans x in [0, widest line] and y in [0, last baseline + descent].
    """
    font = load_font(block.font, block.size)
    stroke = block.outline.width if block.outline else 0
    ascent, descent = font.getmetrics()
    pitch = round((ascent + descent) * block.line_spacing)
    widths = [line_width(font, line, block.tracking) for line in block.lines]
    out = []
    word = -1
    for k, line in enumerate(block.lines):
        shift = {"left": 0.0, "center": (max(widths) - widths[k]) / 2, "right": max(widths) - widths[k]}[block.align]
        baseline = ascent + k * pitch
        for i, ch in enumerate(line):
            if ch.isspace():
                continue
            if i == 0 or line[i - 1].isspace():
                word += 1
            pen = round(shift + font.getlength(line[:i]) + i * block.tracking)
            x0, y0, x1, y1 = font.getbbox(ch, anchor="ls", stroke_width=stroke)
            if x1 <= x0 or y1 <= y0:
                continue
            size = (x1 - x0 + 2, y1 - y0 + 2)
            origin = (1 - x0, 1 - y0)
            fill_im = Image.new("L", size)
            ImageDraw.Draw(fill_im).text(origin, ch, font=font, fill=255, anchor="ls")
            fill = np.asarray(fill_im, np.float32) / 255.0
            union = fill
            if stroke:
                union_im = Image.new("L", size)
                ImageDraw.Draw(union_im).text(
                    origin, ch, font=font, fill=255, anchor="ls", stroke_width=stroke, stroke_fill=255
                )
                union = np.maximum(fill, np.asarray(union_im, np.float32) / 255.0)
            if fill.max() > 0:
                out.append((ch, baseline + y0 - 1, pen + x0 - 1, fill, union, word))
    return out, (ascent + descent + (len(block.lines) - 1) * pitch, max(widths))


def line_width(font: ImageFont.FreeTypeFont, line: str, tracking: float) -> float:
    """Advance width of `line` in pixels, with `tracking` extra pixels between characters."""
    return font.getlength(line) + max(0, len(line) - 1) * tracking


def _affine(block: TextBlock) -> np.ndarray:
    """[2, 2] matrix mapping block (x, y) offsets to image offsets: rotation @ shear/stretch."""
    t = math.radians(block.angle)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    return rot @ np.array([[block.stretch, block.shear], [0.0, 1.0]])


class _Warp:
    """The map of a block's centred layout offsets (u, v) to image offsets (x, y) and back.

    Forward: bend along an arc (`curve`), then `_affine` (stretch, shear, rotation), then the projective tilt
    (`perspective`). `inverse` undoes the three in reverse order; the rasteriser samples with it.
    """

    def __init__(self, block: TextBlock, layout_h: float, layout_w: float):
        self.a = _affine(block)
        self.inv = np.linalg.inv(self.a)
        self.radius = layout_w / block.curve if block.curve else 0.0
        corners = self.a @ np.array([[-layout_w, layout_w, -layout_w, layout_w], [-layout_h, -layout_h, layout_h,
                                                                                   layout_h]]) / 2.0
        half_diagonal = max(1.0, float(np.max(np.hypot(corners[0], corners[1]))))
        self.g, self.h = (v / half_diagonal for v in block.perspective)
        self.identity = not block.curve and not any(block.perspective) and np.allclose(self.a, np.eye(2))

    def forward(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.radius:
            r, t = self.radius + v, u / self.radius  # arc centre at v = -radius (above the text when positive)
            u, v = r * np.sin(t), r * np.cos(t) - self.radius
        x = self.a[0, 0] * u + self.a[0, 1] * v
        y = self.a[1, 0] * u + self.a[1, 1] * v
        if self.g or self.h:
            d = np.maximum(1.0 + self.g * x + self.h * y, 1e-3)
            x, y = x / d, y / d
        return x, y

    def inverse(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.g or self.h:
            d = np.maximum(1.0 - self.g * x - self.h * y, 1e-3)
            x, y = x / d, y / d
        u = self.inv[0, 0] * x + self.inv[0, 1] * y
        v = self.inv[1, 0] * x + self.inv[1, 1] * y
        if self.radius:
            s = math.copysign(1.0, self.radius)
            r = s * np.hypot(u, v + self.radius)
            u, v = self.radius * np.arctan2(s * u, s * (v + self.radius)), r - self.radius
        return u, v


def _outline_points(h0: float, w0: float, h1: float, w1: float, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Points along the edges of the rectangle [w0, w1] x [h0, h1] (enough to bound its bent, tilted image)."""
    t = np.linspace(0.0, 1.0, n)
    u = np.concatenate([w0 + (w1 - w0) * t, w0 + (w1 - w0) * t, np.full(n, w0), np.full(n, w1)])
    v = np.concatenate([np.full(n, h0), np.full(n, h1), h0 + (h1 - h0) * t, h0 + (h1 - h0) * t])
    return u, v


def block_extent(block: TextBlock) -> tuple[float, float]:
    """Approximate (height, width) of the block's ink box in the image, from font metrics only."""
    font = load_font(block.font, block.size)
    ascent, descent = font.getmetrics()
    stroke = block.outline.width if block.outline else 0
    w = max(line_width(font, line, block.tracking) for line in block.lines) + 2 * stroke
    h = ascent + descent + round((ascent + descent) * block.line_spacing) * (len(block.lines) - 1) + 2 * stroke
    x, y = _Warp(block, h, w).forward(*_outline_points(-h / 2, -w / 2, h / 2, w / 2))
    return float(np.ptp(y)), float(np.ptp(x))


def _rasterize(block: TextBlock, height: int, width: int):
    """Resamples one block into the image frame.

    Returns:
      None if nothing lands in the image, else (region, layers, owner, chars): `region` the (y0, y1, x0, x1)
      window of the image, `layers` [3, h, w] float32 alphas (fill, fill+outline, shadow), `owner` [h, w]
      int32 index into `chars` (-1 where no glyph is near) and `chars` the inked characters in order, each as
      (character, index of its word in the block, direction of the baseline there in radians).
    """
    glyphs, (layout_h, layout_w) = _glyphs(block)
    if not glyphs:
        return None
    pad = 2
    if block.shadow:
        pad += max(abs(v) for v in block.shadow.offset) + math.ceil(3 * block.shadow.blur)
    top = min(g[1] for g in glyphs) - pad
    left = min(g[2] for g in glyphs) - pad
    ch = max(g[1] + g[3].shape[0] for g in glyphs) + pad - top
    cw = max(g[2] + g[3].shape[1] for g in glyphs) + pad - left
    # Two empty pixels on every side make out-of-canvas bilinear taps read zeros after index clipping.
    layers = np.zeros((3, ch + 4, cw + 4), np.float32)
    owner = np.full((ch + 4, cw + 4), -1, np.int32)
    best = np.full((ch + 4, cw + 4), -1.0, np.float32)
    for idx, (_, gy, gx, fill, union, _) in enumerate(glyphs):
        ys, xs = slice(gy - top + 2, gy - top + 2 + fill.shape[0]), slice(gx - left + 2, gx - left + 2 + fill.shape[1])
        np.maximum(layers[0, ys, xs], fill, out=layers[0, ys, xs])
        np.maximum(layers[1, ys, xs], union, out=layers[1, ys, xs])
        wins = fill > best[ys, xs]
        owner[ys, xs][wins] = idx
        best[ys, xs][wins] = fill[wins]
    if block.shadow:
        dy, dx = block.shadow.offset
        shifted = np.zeros_like(layers[1])
        shifted[max(0, dy) : ch + 4 + min(0, dy), max(0, dx) : cw + 4 + min(0, dx)] = layers[
            1, max(0, -dy) : ch + 4 + min(0, -dy), max(0, -dx) : cw + 4 + min(0, -dx)
        ]
        if block.shadow.blur > 0:
            im = Image.fromarray(np.round(shifted * 255).astype(np.uint8))
            shifted = np.asarray(im.filter(ImageFilter.GaussianBlur(block.shadow.blur)), np.float32) / 255.0
        layers[2] = shifted * block.shadow.opacity
        layers[2, :2] = layers[2, -2:] = layers[2, :, :2] = layers[2, :, -2:] = 0  # keep the zero ring

    warp = _Warp(block, layout_h, layout_w)
    # The block is anchored at the centre of its layout box (lines x advance widths), which does not depend on
    # outline or shadow, so adding effects never moves the text.
    center_local = np.array([layout_w / 2.0 - left + 2, layout_h / 2.0 - top + 2])
    cy, cx = block.center
    pos = np.array([cx, cy], dtype=np.float64)
    if warp.identity:  # unrotated, unwarped blocks land on whole pixels, so glyph bitmaps are copied exactly
        pos = np.round(pos - center_local) + center_local
    bx, by = warp.forward(*_outline_points(-center_local[1], -center_local[0], ch + 3 - center_local[1],
                                           cw + 3 - center_local[0]))
    bx, by = bx + pos[0], by + pos[1]
    x0, x1 = max(0, math.floor(bx.min())), min(width, math.ceil(bx.max()) + 1)
    y0, y1 = max(0, math.floor(by.min())), min(height, math.ceil(by.max()) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    gx, gy = np.meshgrid(np.arange(x0, x1) - pos[0], np.arange(y0, y1) - pos[1])
    su, sv = warp.inverse(gx, gy)
    sx, sy = su + center_local[0], sv + center_local[1]
    fx, fy = np.floor(sx), np.floor(sy)
    wx, wy = (sx - fx).astype(np.float32), (sy - fy).astype(np.float32)
    ix = np.clip(fx, 0, cw + 2).astype(np.int64)
    iy = np.clip(fy, 0, ch + 2).astype(np.int64)
    top_row = layers[:, iy, ix] * (1 - wx) + layers[:, iy, ix + 1] * wx
    bottom_row = layers[:, iy + 1, ix] * (1 - wx) + layers[:, iy + 1, ix + 1] * wx
    sampled = top_row * (1 - wy) + bottom_row * wy
    # Nearest tap is always one of the four bilinear taps, which the glyph rings make owned wherever fill > 0.
    nx = np.clip(np.floor(sx + 0.5), 0, cw + 3).astype(np.int64)
    ny = np.clip(np.floor(sy + 0.5), 0, ch + 3).astype(np.int64)
    # Direction of the baseline at each glyph's centre (the warp's derivative along u): words' oriented boxes.
    u = np.array([g[2] - left + 2 + g[3].shape[1] / 2 for g in glyphs]) - center_local[0]
    v = np.array([g[1] - top + 2 + g[3].shape[0] / 2 for g in glyphs]) - center_local[1]
    (xa, ya), (xb, yb) = warp.forward(u - 0.5, v), warp.forward(u + 0.5, v)
    angles = np.arctan2(yb - ya, xb - xa)
    chars = [(g[0], g[5], float(t)) for g, t in zip(glyphs, angles)]
    return (y0, y1, x0, x1), np.clip(sampled, 0.0, 1.0), owner[ny, nx], chars


def _fill_color(block: TextBlock, region) -> np.ndarray:
    """[h, w, 3] or [3] fill colour over `region` (a gradient across the region when `color2` is set)."""
    c1 = np.asarray(block.color, np.float32)
    if block.color2 is None:
        return c1
    y0, y1, x0, x1 = region
    t = math.radians(block.gradient_angle)
    gx, gy = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
    proj = math.cos(t) * gx + math.sin(t) * gy
    ramp = ((proj - proj.min()) / max(1e-6, float(np.ptp(proj)))).astype(np.float32)[..., None]
    return c1 * (1 - ramp) + np.asarray(block.color2, np.float32) * ramp


def compose(
    background: np.ndarray,
    blocks: list[TextBlock],
    fg_threshold: float = FG_THRESHOLD,
    bg_threshold: float = BG_THRESHOLD,
) -> Sample:
    """Draws `blocks` in order onto `background` [H, W, 3] (float or uint8, 0..255) and labels the result.

    Returns:
      A `Sample`; its image is float32 0..255 rounded to uint8, without post-processing (noise, blur).
    """
    height, width = background.shape[:2]
    image = np.asarray(background, np.float32).copy()
    coverage = np.zeros((height, width), np.float32)
    owner = np.full((height, width), -1, np.int32)
    chars: list[str] = []
    char_words: list[int] = []  # global word index of every character
    char_angles: list[float] = []  # baseline direction at every character
    n_words = 0
    for block in blocks:
        raster = _rasterize(block, height, width)
        if raster is None:
            continue
        (y0, y1, x0, x1), (fill, union, shadow), local_owner, block_chars = raster
        img, cov, own = image[y0:y1, x0:x1], coverage[y0:y1, x0:x1], owner[y0:y1, x0:x1]
        # Each layer covers a fraction of the pixel; whatever was below (text included) keeps only the rest.
        if block.shadow:
            img += (np.asarray(block.shadow.color, np.float32) - img) * shadow[..., None]
            cov *= 1 - shadow
        if block.outline:
            img += (np.asarray(block.outline.color, np.float32) - img) * union[..., None]
            cov *= 1 - union
        img += (_fill_color(block, (y0, y1, x0, x1)) - img) * fill[..., None]
        cov *= 1 - fill
        takes = (fill > 0) & (fill >= cov)  # the new glyph owns the pixel when it shows more of it
        own[takes] = local_owner[takes] + len(chars)
        cov += fill
        chars.extend(c for c, _, _ in block_chars)
        char_words.extend(n_words + w for _, w, _ in block_chars)
        char_angles.extend(t for _, _, t in block_chars)
        n_words += 1 + max(w for _, w, _ in block_chars)
    mask = coverage_to_mask(coverage, fg_threshold, bg_threshold)
    boxes, kept = _char_boxes(mask, owner, len(chars))
    kept_chars = "".join(chars[i] for i in kept)
    word_boxes, word_quads = _word_boxes(mask, owner, char_words, char_angles, n_words)
    text = " ".join(word for b in blocks for line in b.lines for word in line.split())
    return Sample(
        image=np.clip(np.round(image), 0, 255).astype(np.uint8),
        mask=mask,
        coverage=coverage,
        char_boxes=boxes,
        char_labels=np.array([glyph_class(c) for c in kept_chars], np.int32),
        chars=kept_chars,
        text=text,
        word_boxes=word_boxes,
        word_quads=word_quads,
    )


def _char_boxes(mask: np.ndarray, owner: np.ndarray, n: int) -> tuple[np.ndarray, list[int]]:
    """Boxes [K, 4] of the non-zero mask pixels of each character that has at least one text (1) pixel."""
    valid = (mask != 0) & (owner >= 0)
    ys, xs = np.nonzero(valid)
    ids = owner[ys, xs]
    has_text = np.bincount(owner[(mask == 1) & (owner >= 0)], minlength=n) > 0
    big = np.iinfo(np.int64).max
    y1, x1 = np.full(n, big), np.full(n, big)
    y2, x2 = np.full(n, -1), np.full(n, -1)
    np.minimum.at(y1, ids, ys)
    np.minimum.at(x1, ids, xs)
    np.maximum.at(y2, ids, ys + 1)
    np.maximum.at(x2, ids, xs + 1)
    kept = [i for i in range(n) if has_text[i]]
    boxes = np.array([[y1[i], x1[i], y2[i], x2[i]] for i in kept], np.float32).reshape(-1, 4)
    return boxes, kept


def _word_boxes(mask: np.ndarray, owner: np.ndarray, char_words: list[int], char_angles: list[float], n: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned boxes [W, 4] and oriented rectangles [W, 4, 2] of the words that show text.

    A word's rectangle has sides along and across its baseline (the mean direction over its characters), as an
    annotator would draw it.
    """
    words = np.asarray(char_words + [-1], np.int32)[owner]  # owner -1 -> word -1
    angles = np.asarray(char_angles, np.float64)
    word_of = np.asarray(char_words, np.int32)
    inked = mask != 0
    boxes, quads = [], []
    for word in range(n):
        ys, xs = np.nonzero((words == word) & inked)
        if not np.any(mask[ys, xs] == 1):
            continue
        boxes.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
        corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(np.float64)
        t = angles[word_of == word]
        quads.append(oriented_rectangle(corners, math.atan2(np.sin(t).mean(), np.cos(t).mean())))
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(quads, np.float32).reshape(-1, 4, 2))


def oriented_rectangle(points: np.ndarray, angle: float) -> np.ndarray:
    """Corners [4, 2] of the smallest rectangle with sides at `angle` (radians, image x axis towards y) and
    `angle` + 90 degrees that holds `points` [N, 2] (x, y); clockwise on the image (y down), starting at the corner
    nearest the top-left of its bounding box."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # rows: the rectangle's axes
    proj = np.asarray(points, np.float64) @ rot.T
    lo, hi = proj.min(0), proj.max(0)
    quad = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]) @ rot
    if np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1]) < 0:
        quad = quad[::-1]
    start = int(np.argmin(np.hypot(quad[:, 0] - quad[:, 0].min(), quad[:, 1] - quad[:, 1].min())))
    return np.roll(quad, -start, axis=0)

