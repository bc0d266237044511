"""Pure numpy/PIL renderer of synthetic scene-text images with exact text masks: the random scene.

No TFDS and no TensorFlow here: the builder in `synth_text_dataset_builder.py` only wraps `render_sample`.
This module samples the scene (text blocks, their words, sizes, colours and placement) and holds the public
entry points; the work is split over sibling modules:

  assets.py       fonts (`TRAIN_FONTS`, `HOLDOUT_FONTS`, `load_font`), photos, height fields and sprites, all
                  from pip packages, in disjoint training and hold-out pools.
  backgrounds.py  `random_background`: text-free photo and procedural backgrounds with non-text clutter.
  raster.py       `TextBlock`, `Sample`, `compose`, `coverage_to_mask`, `glyph_class`, the mask thresholds.

How an image is made (`render_sample`):
  1. A background (`random_background`): mostly real photo crops, else procedural textures, with clutter.
  2. Zero or more `TextBlock`s: one to three lines of random words in one font and size, optionally
     stretched, sheared, rotated, bent along an arc and tilted in perspective, with an optional outline and
     drop shadow.
  3. `compose` rasterises every block with FreeType's anti-aliased alpha (which is the exact area
     coverage of the glyph in each pixel) and alpha-composites shadow, outline and fill in that order.
     It tracks, per pixel, the fraction of the pixel that shows text *fill* (`coverage`) and which
     character owns it. Outlines and shadows occlude text below them but are never text themselves
     (as TextSeg maps 'word-effect' to background).
  4. `coverage_to_mask`: coverage >= `FG_THRESHOLD` -> 1, coverage <= `BG_THRESHOLD` -> 0, anything in
     between -> 255 (ignore). Character boxes are the extents of each character's non-zero mask pixels.
  5. Camera-like degradations of the image only (uneven lighting, blur, noise, JPEG); the mask is unchanged.

The names that the builder, its README and tests use (`render.TextBlock`, `render.compose`, ...) are
re-exported here (`__all__`).
"""

from __future__ import annotations

import dataclasses
import io
import math
import string

import numpy as np
from PIL import Image, ImageFilter, ImageFont

from tfds_builders.synth_text.assets import FONTS, HOLDOUT_FONTS, PILLOW_DEFAULT, TRAIN_FONTS, fonts, load_font
from tfds_builders.synth_text.backgrounds import luminance, random_background
from tfds_builders.synth_text.raster import (
    BG_THRESHOLD,
    FG_THRESHOLD,
    IGNORE_VALUE,
    OTHER_CLASS,
    Outline,
    Sample,
    Shadow,
    TextBlock,
    block_extent,
    compose,
    coverage_to_mask,
    glyph_class,
    line_width,
)

__all__ = [
    "BG_THRESHOLD",
    "FG_THRESHOLD",
    "FONTS",
    "HOLDOUT_FONTS",
    "IGNORE_VALUE",
    "OTHER_CLASS",
    "PILLOW_DEFAULT",
    "SPLIT_CODES",
    "Outline",
    "RenderConfig",
    "Sample",
    "Shadow",
    "TRAIN_FONTS",
    "TextBlock",
    "compose",
    "coverage_to_mask",
    "example_rng",
    "glyph_class",
    "render_sample",
]

SPLIT_CODES = {"train": 0, "test": 1}
# Letters drawn with English frequencies so words look plausible, digits and case are mixed in separately.
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_P = np.array(
    [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 2.0, 1.5, 1.0, 0.8]
    + [0.2, 0.2, 0.1, 0.1]
)
_LETTER_P = _LETTER_P / _LETTER_P.sum()
_WORD_LEN_P = np.array([3, 12, 14, 14, 12, 10, 9, 7, 6, 5, 4, 4], dtype=float)
_WORD_LEN_P = _WORD_LEN_P / _WORD_LEN_P.sum()
# Words of signs, labels and captions, for check sets drawn with `words='english'` (training uses random tokens).
ENGLISH_WORDS = tuple("""
open closed exit entrance sale today coffee tea bakery fresh bread market street road avenue stop slow school
zone parking only no entry push pull welcome hotel cafe bar restaurant menu pizza burger special offer free wifi
station platform train bus taxi airport gate arrivals departures north south east west city centre museum park
garden library bank pharmacy hospital police fire emergency danger caution warning keep out private office
store shop books music news sport fashion shoes kitchen house home family friends summer winter spring autumn
morning evening night happy birthday party love life world water juice milk sugar organic local farm fish
chicken beef vegetable fruit apple orange lemon banana cherry honey cream cheese butter wine beer hot cold
price discount best quality since original classic modern design studio gallery theatre cinema ticket show
live concert festival team club game play start finish race time clock week month year monday friday sunday
""".split())


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
      pool: 'train' or 'holdout': the fonts and photos drawn from (`assets`); a check set uses 'holdout'.
      photo_only: backgrounds are plain photo crops, without procedural textures or clutter.
      words: 'random' tokens (letters with English frequencies, numbers, codes, punctuation) or 'english'
        (`ENGLISH_WORDS` in lower, Capitalised or UPPER case).
      curve_fraction: fraction of one- and two-line blocks bent along an arc.
      perspective_fraction: fraction of blocks tilted in perspective.
      degrade: apply camera-like degradations (lighting, blur, noise, JPEG) to the image.
      low_contrast: let some blocks have little or no contrast with the background (off for check sets,
        whose truth should be text a person can read).
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
    pool: str = "train"
    photo_only: bool = False
    words: str = "random"
    curve_fraction: float = 0.12
    perspective_fraction: float = 0.25
    degrade: bool = True
    low_contrast: bool = True


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one example: independent of every other example, so any one can be re-rendered."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index]))


def _font_size(rng: np.random.Generator, cfg: RenderConfig) -> int:
    lo, hi = cfg.min_font_size, cfg.max_font_size
    if cfg.small_font_fraction is not None:
        mid = min(hi, 2 * lo)
        if rng.random() < cfg.small_font_fraction:
            return int(rng.integers(lo, mid + 1))
        lo = mid
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _english_word(rng: np.random.Generator, punct: str) -> str:
    word = ENGLISH_WORDS[int(rng.integers(len(ENGLISH_WORDS)))]
    word = [word, word.capitalize(), word.upper()][int(rng.choice(3, p=[0.3, 0.35, 0.35]))]
    if punct and rng.random() < 0.08:
        word += str(rng.choice([c for c in "!.:" if c in punct] or list(punct)))
    return word


def _word(rng: np.random.Generator, punct: str, words: str = "random") -> str:
    """A random token: a word in some casing, a number, a code, or a punctuation mark."""
    if words == "english":
        return _english_word(rng, punct)
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


def _line(rng: np.random.Generator, font: ImageFont.FreeTypeFont, punct: str, max_width: float, tracking: float,
          words_kind: str = "random") -> str:
    """Words up to a random fraction of `max_width`; the first word is cut to fit `max_width`."""
    target = rng.uniform(0.45, 1.0) * max_width
    words: list[str] = []
    for _ in range(8):
        word = _word(rng, punct, words_kind)
        for _ in range(8 if words_kind == "english" and not words else 0):  # real words: prefer one that fits
            if line_width(font, word, tracking) <= max_width:
                break
            word = _word(rng, punct, words_kind)
        if not words:
            while len(word) > 1 and line_width(font, word, tracking) > max_width:
                word = word[:-1]
        elif line_width(font, " ".join(words + [word]), tracking) > target:
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
    pool = fonts(cfg.pool)
    font_name = list(pool)[int(rng.integers(len(pool)))]
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
    lines = tuple(_line(rng, font, pool[font_name], 0.92 * w / stretch, tracking, cfg.words) for _ in range(n_lines))
    curve = 0.0
    if n_lines <= 2 and rng.random() < cfg.curve_fraction:
        curve = float(rng.uniform(0.3, 1.3) * rng.choice([-1.0, 1.0]))
    perspective = (0.0, 0.0)
    if rng.random() < cfg.perspective_fraction:
        tilt = rng.uniform(-0.35, 0.35, 2)
        perspective = tuple(float(v) for v in tilt * min(1.0, 0.6 / max(1e-6, float(np.abs(tilt).sum()))))
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
        curve=curve,
        perspective=perspective,
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
    r = rng.random() if cfg.low_contrast else 0.0
    contrast = 80.0 if r < 0.85 else float(rng.uniform(35.0, 80.0)) if r < 0.95 else 0.0  # some low-contrast text
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
    bg = random_background(rng, cfg.height, cfg.width, cfg.pool, cfg.photo_only)
    blocks: list[TextBlock] = []
    if rng.random() >= cfg.empty_fraction:
        taken: list = []
        n_blocks = 1 + int(rng.choice(cfg.max_blocks, p=_block_count_p(cfg.max_blocks)))
        for _ in range(n_blocks):
            block = _sample_block(rng, cfg, bg, taken)
            if block is not None:
                blocks.append(block)
    sample = compose(bg, blocks, cfg.fg_threshold, cfg.bg_threshold)
    if not cfg.degrade:
        return sample
    return dataclasses.replace(sample, image=degrade(rng, sample.image))


def _lighting(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth multiplicative shading [h, w, 1]: a linear falloff, a spot light or a vignette."""
    x, y = np.meshgrid(np.linspace(-1, 1, w, dtype=np.float32), np.linspace(-1, 1, h, dtype=np.float32))
    kind = int(rng.integers(3))
    if kind == 0:
        t = rng.uniform(0, 2 * math.pi)
        field = (math.cos(t) * x + math.sin(t) * y) / 2 + 0.5
    elif kind == 1:
        cx, cy, r = rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.5, 1.5)
        field = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))
    else:
        field = 1.0 - np.clip((x * x + y * y) / 2, 0, 1)
    lo, hi = rng.uniform(0.35, 0.85), rng.uniform(1.0, 1.25)
    return (lo + (hi - lo) * field)[..., None].astype(np.float32)


def degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera-like degradations of a uint8 image [H, W, 3]: uneven lighting, blur, noise, JPEG artefacts.

    They touch only the image; the mask keeps the exact geometric coverage (blur is at most 1 px).
    """
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    if rng.random() < 0.3:
        out = out * _lighting(rng, h, w)
    if rng.random() < 0.12:  # a colour cast over everything, text included
        out = out * rng.uniform(0.8, 1.2, 3).astype(np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0))))
    if rng.random() < 0.45:
        noise = rng.normal(0, rng.uniform(1, 8), out.shape).astype(np.float32)
        out = np.clip(np.round(out + noise), 0, 255).astype(np.uint8)
    if rng.random() < 0.35:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="jpeg", quality=int(rng.integers(25, 91)))
        out = np.asarray(Image.open(buffer).convert("RGB"))
    return out


def _block_count_p(n: int) -> np.ndarray:
    p = 0.7 ** np.arange(n)
    return p / p.sum()
