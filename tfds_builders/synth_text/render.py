"""Pure numpy/PIL renderer of synthetic scene-text images with exact text masks.

No TFDS and no TensorFlow here: the builder in `synth_text_dataset_builder.py` only wraps
`render_sample`. Every asset comes from pip packages: fonts are Pillow's built-in scalable font and the
TTFs in matplotlib's `mpl-data/fonts/ttf/`; photos and textures come from `mpl-data/sample_data/`
(found with `matplotlib.get_data_path()`, which does not import pyplot).

How an image is made (`render_sample`):
  1. A background (`random_background`): flat, gradients, smooth noise, stripes/checks/dots, photo crops,
     height fields through colour ramps, sometimes blended, with distractor shapes and a pasted sprite.
  2. Zero or more `TextBlock`s: one to three lines of random words in one font and size, optionally
     stretched, sheared and rotated, with an optional outline and drop shadow.
  3. `compose` rasterises every block with FreeType's anti-aliased alpha (which is the exact area
     coverage of the glyph in each pixel) and alpha-composites shadow, outline and fill in that order.
     It tracks, per pixel, the fraction of the pixel that shows text *fill* (`coverage`) and which
     character owns it. Outlines and shadows occlude text below them but are never text themselves
     (as TextSeg maps 'word-effect' to background).
  4. `coverage_to_mask`: coverage >= `FG_THRESHOLD` -> 1, coverage <= `BG_THRESHOLD` -> 0, anything in
     between -> 255 (ignore). Character boxes are the extents of each character's non-zero mask pixels.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import math
import pathlib
import string

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# Coverage thresholds of the canonical mask encoding (see README.md): a pixel is text when at least 75% of
# its area shows text fill, background when at most 25% does, and ignored in between.
FG_THRESHOLD = 0.75
BG_THRESHOLD = 0.25
IGNORE_VALUE = 255
# Glyph-classifier class for anything that is not a digit or an ASCII letter (TexRNet drops these boxes).
OTHER_CLASS = 36
SPLIT_CODES = {"train": 0, "test": 1}
PILLOW_DEFAULT = "pillow-default"

# OT1-encoded Computer Modern fonts draw other glyphs (inverted marks, dashes) at some ASCII code points.
_CM_PUNCT = "!#%&'()*+,-./:;=?@[]"
_DEJAVU = [f"DejaVu{fam}{sty}.ttf" for fam in ("Sans", "SansMono") for sty in ("", "-Bold", "-Oblique", "-BoldOblique")]
_DEJAVU += [f"DejaVuSerif{sty}.ttf" for sty in ("", "-Bold", "-Italic", "-BoldItalic")]
_STIX = [f"STIXGeneral{sty}.ttf" for sty in ("", "Bol", "Italic", "BolIta")]
# Font name -> punctuation that the font draws as the ASCII character it stands for.
FONTS: dict[str, str] = {
    PILLOW_DEFAULT: string.punctuation,
    **{name: string.punctuation for name in _DEJAVU + _STIX + ["cmtt10.ttf"]},
    **{name: _CM_PUNCT for name in ("cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf")},
    "cmmi10.ttf": "",  # math italic: letters and (old-style) digits only
}
# Letters drawn with English frequencies so words look plausible, digits and case are mixed in separately.
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_P = np.array(
    [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 2.0, 1.5, 1.0, 0.8]
    + [0.2, 0.2, 0.1, 0.1]
)
_LETTER_P = _LETTER_P / _LETTER_P.sum()
_WORD_LEN_P = np.array([3, 12, 14, 14, 12, 10, 9, 7, 6, 5, 4, 4], dtype=float)
_WORD_LEN_P = _WORD_LEN_P / _WORD_LEN_P.sum()


@dataclasses.dataclass(frozen=True)
class RenderConfig:
    """What `render_sample` draws.

    Attributes:
      height: image height in pixels.
      width: image width in pixels.
      min_font_size: smallest font size (pixels per em).
      max_font_size: largest font size.
      small_font_fraction: if set, this fraction of blocks uses sizes in [min, 2 * min] and the rest is
        log-uniform in [2 * min, max]; if None, sizes are log-uniform over the whole range.
      max_blocks: most text blocks per image (1 block is the most likely, each extra one 0.7 times as likely).
      empty_fraction: fraction of images without any text.
      fg_threshold: coverage at or above which a pixel is text (1).
      bg_threshold: coverage at or below which a pixel is background (0); in between is 255.
    """

    height: int = 128
    width: int = 128
    min_font_size: int = 12
    max_font_size: int = 120
    small_font_fraction: float | None = 0.15
    max_blocks: int = 3
    empty_fraction: float = 0.05
    fg_threshold: float = FG_THRESHOLD
    bg_threshold: float = BG_THRESHOLD


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
    """

    image: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray
    char_boxes: np.ndarray
    char_labels: np.ndarray
    chars: str
    text: str


def glyph_class(ch: str) -> int:
    """TexRNet glyph-classifier class: digits 0..9, letters a-z (any case) 10..35, anything else 36."""
    if "0" <= ch <= "9":
        return ord(ch) - ord("0")
    if "a" <= ch.lower() <= "z" and ch.isascii():
        return 10 + ord(ch.lower()) - ord("a")
    return OTHER_CLASS


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one example: independent of every other example, so any one can be re-rendered."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index]))


def coverage_to_mask(
    coverage: np.ndarray, fg_threshold: float = FG_THRESHOLD, bg_threshold: float = BG_THRESHOLD
) -> np.ndarray:
    """Maps fill coverage [H, W] in 0..1 to the canonical uint8 mask {0, 1, 255}."""
    mask = np.full(coverage.shape, IGNORE_VALUE, np.uint8)
    mask[coverage >= fg_threshold] = 1
    mask[coverage <= bg_threshold] = 0
    return mask


@functools.cache
def _mpl_data() -> pathlib.Path:
    import matplotlib  # lazy: only the data path is needed (importing pyplot would start a backend)

    return pathlib.Path(matplotlib.get_data_path())


@functools.lru_cache(maxsize=2048)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A font of `FONTS` at `size` px; the basic layout engine keeps results independent of libraqm."""
    if name == PILLOW_DEFAULT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(_mpl_data() / "fonts" / "ttf" / name), size, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def photos() -> tuple[np.ndarray, ...]:
    """Natural images shipped with matplotlib: [H, W, 3] uint8 (the MRI slice is grey)."""
    sample = _mpl_data() / "sample_data"
    hopper = np.asarray(Image.open(sample / "grace_hopper.jpg").convert("RGB"))
    mri = np.frombuffer(gzip.decompress((sample / "s1045.ima.gz").read_bytes()), np.uint16).reshape(256, 256)
    mri = (mri.astype(np.float32) * (255.0 / max(1, int(mri.max())))).astype(np.uint8)
    return hopper, np.repeat(mri[..., None], 3, axis=-1)


@functools.cache
def height_fields() -> tuple[np.ndarray, ...]:
    """Terrain grids shipped with matplotlib, scaled to 0..1 float32; coloured by a random ramp later."""
    sample = _mpl_data() / "sample_data"
    fields = [np.load(sample / "jacksboro_fault_dem.npz")["elevation"], np.load(sample / "topobathy.npz")["topo"]]
    out = []
    for f in fields:
        f = np.asarray(f, np.float32)
        out.append((f - f.min()) / max(1e-6, float(f.max() - f.min())))
    return tuple(out)


@functools.cache
def sprite() -> np.ndarray:
    """An RGBA clip-art object without text (a gift box), pasted onto some backgrounds."""
    return np.asarray(Image.open(_mpl_data() / "sample_data" / "Minduka_Present_Blue_Pack.png").convert("RGBA"))


# ----------------------------------------------------------------------------------------------------------------
# Backgrounds: float32 [H, W, 3] in 0..255.


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


# ----------------------------------------------------------------------------------------------------------------
# Rasterisation and compositing.


def _glyphs(block: TextBlock):
    """Draws every visible character of `block` in block coordinates (baseline of line 0 at y = ascent).

    Returns:
      (glyphs, (layout_h, layout_w)): glyphs is a list of (char, top, left, fill_alpha [h, w] float32,
      union_alpha [h, w] float32), where union_alpha is fill plus outline. Each bitmap has a 1 px empty ring
      so that every inked pixel's neighbours are owned by the glyph (the owner lookup after resampling
      relies on it). The layout box spans x in [0, widest line] and y in [0, last baseline + descent].
    """
    font = load_font(block.font, block.size)
    stroke = block.outline.width if block.outline else 0
    ascent, descent = font.getmetrics()
    pitch = round((ascent + descent) * block.line_spacing)
    widths = [_line_width(font, line, block.tracking) for line in block.lines]
    out = []
    for k, line in enumerate(block.lines):
        shift = {"left": 0.0, "center": (max(widths) - widths[k]) / 2, "right": max(widths) - widths[k]}[block.align]
        baseline = ascent + k * pitch
        for i, ch in enumerate(line):
            if ch.isspace():
                continue
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
                out.append((ch, baseline + y0 - 1, pen + x0 - 1, fill, union))
    return out, (ascent + descent + (len(block.lines) - 1) * pitch, max(widths))


def _line_width(font: ImageFont.FreeTypeFont, line: str, tracking: float) -> float:
    return font.getlength(line) + max(0, len(line) - 1) * tracking


def _affine(block: TextBlock) -> np.ndarray:
    """[2, 2] matrix mapping block (x, y) offsets to image offsets: rotation @ shear/stretch."""
    t = math.radians(block.angle)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    return rot @ np.array([[block.stretch, block.shear], [0.0, 1.0]])


def block_extent(block: TextBlock) -> tuple[float, float]:
    """Approximate (height, width) of the block's ink box in the image, from font metrics only."""
    font = load_font(block.font, block.size)
    ascent, descent = font.getmetrics()
    stroke = block.outline.width if block.outline else 0
    w = max(_line_width(font, line, block.tracking) for line in block.lines) + 2 * stroke
    h = ascent + descent + round((ascent + descent) * block.line_spacing) * (len(block.lines) - 1) + 2 * stroke
    corners = _affine(block) @ np.array([[0, w, 0, w], [0, 0, h, h]]) / 1.0
    return float(np.ptp(corners[1])), float(np.ptp(corners[0]))


def _rasterize(block: TextBlock, height: int, width: int):
    """Resamples one block into the image frame.

    Returns:
      None if nothing lands in the image, else (region, layers, owner, chars): `region` the (y0, y1, x0, x1)
      window of the image, `layers` [3, h, w] float32 alphas (fill, fill+outline, shadow), `owner` [h, w]
      int32 index into `chars` (-1 where no glyph is near) and `chars` the inked characters in order.
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
    for idx, (_, gy, gx, fill, union) in enumerate(glyphs):
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

    a = _affine(block)
    # The block is anchored at the centre of its layout box (lines x advance widths), which does not depend on
    # outline or shadow, so adding effects never moves the text.
    center_local = np.array([layout_w / 2.0 - left + 2, layout_h / 2.0 - top + 2])
    cy, cx = block.center
    pos = np.array([cx, cy], dtype=np.float64)
    if np.allclose(a, np.eye(2)):  # unrotated blocks land on whole pixels, so glyph bitmaps are copied exactly
        pos = np.round(pos - center_local) + center_local
    corners = a @ (np.array([[0, cw + 3, 0, cw + 3], [0, 0, ch + 3, ch + 3]]) - center_local[:, None]) + pos[:, None]
    x0, x1 = max(0, math.floor(corners[0].min())), min(width, math.ceil(corners[0].max()) + 1)
    y0, y1 = max(0, math.floor(corners[1].min())), min(height, math.ceil(corners[1].max()) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    inv = np.linalg.inv(a)
    gx, gy = np.meshgrid(np.arange(x0, x1) - pos[0], np.arange(y0, y1) - pos[1])
    sx = inv[0, 0] * gx + inv[0, 1] * gy + center_local[0]
    sy = inv[1, 0] * gx + inv[1, 1] * gy + center_local[1]
    fx, fy = np.floor(sx), np.floor(sy)
    wx, wy = (sx - fx).astype(np.float32), (sy - fy).astype(np.float32)
    ix = np.clip(fx.astype(np.int64), 0, cw + 2)
    iy = np.clip(fy.astype(np.int64), 0, ch + 2)
    top_row = layers[:, iy, ix] * (1 - wx) + layers[:, iy, ix + 1] * wx
    bottom_row = layers[:, iy + 1, ix] * (1 - wx) + layers[:, iy + 1, ix + 1] * wx
    sampled = top_row * (1 - wy) + bottom_row * wy
    # Nearest tap is always one of the four bilinear taps, which the glyph rings make owned wherever fill > 0.
    nx = np.clip(np.floor(sx + 0.5).astype(np.int64), 0, cw + 3)
    ny = np.clip(np.floor(sy + 0.5).astype(np.int64), 0, ch + 3)
    return (y0, y1, x0, x1), np.clip(sampled, 0.0, 1.0), owner[ny, nx], [g[0] for g in glyphs]


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
        chars.extend(block_chars)
    mask = coverage_to_mask(coverage, fg_threshold, bg_threshold)
    boxes, kept = _char_boxes(mask, owner, len(chars))
    kept_chars = "".join(chars[i] for i in kept)
    text = " ".join(word for b in blocks for line in b.lines for word in line.split())
    return Sample(
        image=np.clip(np.round(image), 0, 255).astype(np.uint8),
        mask=mask,
        coverage=coverage,
        char_boxes=boxes,
        char_labels=np.array([glyph_class(c) for c in kept_chars], np.int32),
        chars=kept_chars,
        text=text,
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


# ----------------------------------------------------------------------------------------------------------------
# Random scenes.


def _font_size(rng: np.random.Generator, cfg: RenderConfig) -> int:
    lo, hi = cfg.min_font_size, cfg.max_font_size
    if cfg.small_font_fraction is not None:
        mid = min(hi, 2 * lo)
        if rng.random() < cfg.small_font_fraction:
            return int(rng.integers(lo, mid + 1))
        lo = mid
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _word(rng: np.random.Generator, punct: str) -> str:
    """A random token: a word in some casing, a number, a code, or a punctuation mark."""
    kind = rng.choice(7, p=[0.31, 0.17, 0.15, 0.07, 0.14, 0.11, 0.05])
    n = 1 + int(rng.choice(len(_WORD_LEN_P), p=_WORD_LEN_P))
    if kind <= 3:
        word = "".join(rng.choice(list(_LETTERS), size=n, p=_LETTER_P))
        word = [word, word.capitalize(), word.upper(), "".join(c.upper() if rng.random() < 0.5 else c for c in word)][
            kind
        ]
    elif kind == 4:
        word = "".join(rng.choice(list(string.digits), size=min(n, 6)))
        seps = [s for s in ".,:/-" if s in punct]
        if len(word) > 2 and seps and rng.random() < 0.4:
            cut = int(rng.integers(1, len(word)))
            word = word[:cut] + str(rng.choice(seps)) + word[cut:]
        if rng.random() < 0.2:
            extra = [s for s in "$%#+" if s in punct]
            word = str(rng.choice(extra)) + word if extra else word
    elif kind == 5:
        word = "".join(rng.choice(list(string.ascii_uppercase + string.digits), size=max(2, min(n, 7))))
    else:
        return str(rng.choice(list(punct))) if punct else "".join(rng.choice(list(string.digits), size=2))
    if punct and rng.random() < 0.2:
        tail = [s for s in ".,!?:;" if s in punct] or list(punct)
        word += str(rng.choice(tail))
    if punct and rng.random() < 0.05:
        pairs = [p for p in ("()", "[]", '""', "''", "{}", "<>") if p[0] in punct and p[1] in punct]
        if pairs:
            pair = pairs[int(rng.integers(len(pairs)))]
            word = pair[0] + word + pair[1]
    return word


def _line(rng: np.random.Generator, font: ImageFont.FreeTypeFont, punct: str, max_width: float, tracking: float) -> str:
    """Words up to a random fraction of `max_width`; the first word is cut to fit `max_width`."""
    target = rng.uniform(0.45, 1.0) * max_width
    words: list[str] = []
    for _ in range(8):
        word = _word(rng, punct)
        if not words:
            while len(word) > 1 and _line_width(font, word, tracking) > max_width:
                word = word[:-1]
        elif _line_width(font, " ".join(words + [word]), tracking) > target:
            break
        words.append(word)
    return " ".join(words)


def _pick_color(rng: np.random.Generator, reference: float, min_contrast: float) -> tuple[float, float, float]:
    """A random colour whose luminance differs from `reference` by at least `min_contrast` (0..255)."""
    allowed = [(0.0, reference - min_contrast), (reference + min_contrast, 255.0)]
    allowed = [(a, b) for a, b in allowed if b > a]
    if not allowed:
        allowed = [(0.0, 255.0)]
    spans = np.array([b - a for a, b in allowed])
    a, b = allowed[int(rng.choice(len(allowed), p=spans / spans.sum()))]
    target = rng.uniform(a, b)
    base = rng.uniform(0, 255, 3) if rng.random() < 0.75 else np.full(3, rng.uniform(0, 255))
    lum = float(luminance(base))
    if lum < target:  # mix towards white or scale towards black to reach the target luminance exactly
        base = base + (255.0 - base) * ((target - lum) / max(1e-6, 255.0 - lum))
    else:
        base = base * (target / max(1e-6, lum))
    return tuple(float(v) for v in np.clip(base, 0, 255))


def _sample_block(rng: np.random.Generator, cfg: RenderConfig, bg: np.ndarray, taken: list) -> TextBlock | None:
    """A random block that fits the image (most of the time) and avoids earlier blocks' boxes."""
    h, w = cfg.height, cfg.width
    font_name = list(FONTS)[int(rng.integers(len(FONTS)))]
    size = _font_size(rng, cfg)
    r = rng.random()
    angle = 0.0 if r < 0.55 else float(np.clip(rng.normal(0, 12), -40, 40)) if r < 0.92 else rng.uniform(-90, 90)
    stretch = float(rng.uniform(0.8, 1.25)) if rng.random() < 0.2 else 1.0
    shear = float(rng.uniform(-0.25, 0.25)) if rng.random() < 0.1 else 0.0
    tracking = float(rng.uniform(0, 0.15) * size) if rng.random() < 0.15 else 0.0
    outline = shadow = None
    if rng.random() < 0.2:
        outline = Outline(max(1, round(size * rng.uniform(0.03, 0.1))), (0.0, 0.0, 0.0))
    if rng.random() < 0.2:
        d, t = max(1, round(size * rng.uniform(0.03, 0.1))), rng.uniform(0, 2 * math.pi)
        blur = float(rng.uniform(0.5, max(0.6, size * 0.06))) if rng.random() < 0.5 else 0.0
        shadow = Shadow(
            (round(d * math.sin(t)), round(d * math.cos(t))), blur, (0.0, 0.0, 0.0), float(rng.uniform(0.5, 1.0))
        )
    font = load_font(font_name, size)
    max_lines = max(1, min(3, int(0.9 * h / (sum(font.getmetrics()) * 1.1))))
    n_lines = min(max_lines, 1 + int(rng.choice(3, p=[0.6, 0.28, 0.12])))
    lines = tuple(_line(rng, font, FONTS[font_name], 0.92 * w / stretch, tracking) for _ in range(n_lines))
    block = TextBlock(
        lines,
        font_name,
        size,
        (h / 2, w / 2),
        (0.0, 0.0, 0.0),
        angle=angle,
        outline=outline,
        shadow=shadow,
        align=str(rng.choice(["left", "center", "right"])),
        line_spacing=float(rng.uniform(1.0, 1.3)),
        tracking=tracking,
        stretch=stretch,
        shear=shear,
    )
    for _ in range(3):  # shrink the font until the (rotated) block fits; the text stays the same
        bh, bw = block_extent(block)
        scale = min(0.95 * h / bh, 0.95 * w / bw)
        if scale >= 1 or block.size <= cfg.min_font_size:
            break
        block = _rescaled(block, max(cfg.min_font_size, int(block.size * scale)))
    bh, bw = block_extent(block)
    for _ in range(10):
        if rng.random() < 0.05:  # sometimes let text run off the border, as in cropped photos
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        else:
            cy = rng.uniform(min(bh / 2, h / 2), max(h - bh / 2, h / 2))
            cx = rng.uniform(min(bw / 2, w / 2), max(w - bw / 2, w / 2))
        box = (cy - bh / 2, cx - bw / 2, cy + bh / 2, cx + bw / 2)
        if all(_overlap(box, other) < 0.1 for other in taken):
            break
    else:
        # No free spot: usually drop the block, sometimes keep it so that text occluding text also occurs.
        if rng.random() >= 0.1:
            return None
    taken.append(box)
    ys = slice(max(0, int(box[0])), max(1, min(h, int(box[2]) + 1)))
    xs = slice(max(0, int(box[1])), max(1, min(w, int(box[3]) + 1)))
    local = float(luminance(bg[ys, xs].reshape(-1, 3).mean(axis=0)))
    contrast = 80.0 if rng.random() < 0.93 else 0.0
    color = _pick_color(rng, local, contrast)
    fill_lum = float(luminance(np.array(color)))
    color2 = None
    if rng.random() < 0.15:
        color2 = _pick_color(rng, local, contrast)
    # Effects contrast with the fill (not the background), like outlined captions and stickers.
    outline = block.outline and dataclasses.replace(block.outline, color=_pick_color(rng, fill_lum, 90.0))
    shadow = block.shadow and dataclasses.replace(block.shadow, color=_pick_color(rng, fill_lum, 90.0))
    return dataclasses.replace(
        block,
        center=(cy, cx),
        color=color,
        color2=color2,
        outline=outline,
        shadow=shadow,
        gradient_angle=float(rng.uniform(0, 360)),
    )


def _rescaled(block: TextBlock, size: int) -> TextBlock:
    """`block` at font size `size`, with tracking, outline width and shadow offset scaled alike."""
    f = size / block.size
    outline = block.outline and dataclasses.replace(block.outline, width=max(1, round(block.outline.width * f)))
    shadow = block.shadow and dataclasses.replace(
        block.shadow, offset=tuple(round(v * f) for v in block.shadow.offset), blur=block.shadow.blur * f
    )
    return dataclasses.replace(block, size=size, tracking=block.tracking * f, outline=outline, shadow=shadow)


def _overlap(a, b) -> float:
    """Intersection over the smaller area of two (y0, x0, y1, x1) boxes."""
    ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ih * iw / max(1e-6, small)


def render_sample(rng: np.random.Generator, cfg: RenderConfig) -> Sample:
    """Renders one random image with its mask and character boxes; a pure function of `rng`'s state."""
    bg = random_background(rng, cfg.height, cfg.width)
    blocks: list[TextBlock] = []
    if rng.random() >= cfg.empty_fraction:
        taken: list = []
        n_blocks = 1 + int(rng.choice(cfg.max_blocks, p=_block_count_p(cfg.max_blocks)))
        for _ in range(n_blocks):
            block = _sample_block(rng, cfg, bg, taken)
            if block is not None:
                blocks.append(block)
    sample = compose(bg, blocks, cfg.fg_threshold, cfg.bg_threshold)
    image = sample.image
    # Camera-like degradations touch only the image; the mask keeps the exact geometric coverage.
    if rng.random() < 0.15:
        image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8))))
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(1, 6), image.shape).astype(np.float32)
        image = np.clip(np.round(image + noise), 0, 255).astype(np.uint8)
    return dataclasses.replace(sample, image=image)


def _block_count_p(n: int) -> np.ndarray:
    p = 0.7 ** np.arange(n)
    return p / p.sum()
