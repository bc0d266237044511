"""Pure numpy preprocessing on `{'image', 'mask'}` examples, and the grain transforms that wrap it.

The training augmentation is the reference's, identical for every dataset:

1. normalise with the ImageNet mean/std;
2. random one-side scale: the short side becomes a random integer in `[lo, hi]` (inclusive), the long side
   `int(new_short / old_short * old_long)`; bilinear with align_corners=True for the image, the reference's
   nearest rule (`resample.nearest_indices`) for the mask;
3. a random square crop (padding with 0 / ignore when the scaled image is smaller, which the reference
   sizes never trigger).

No flip, colour jitter or rotation. Only the crop window of the scaled image is ever computed, and only that
window is normalised (`random_scale_crop` with `normalize_fn`; equal to normalising first up to float32
rounding). An optional photometric augmentation (`photometric`, off in the reference configs) comes before step 1.

Speed (`bench/bench_input_pipeline.py`): images and masks are decoded here (`decode_features`), by OpenCV by default;
the window is resized by OpenCV's `warpAffine` on the same align-corners grid (`resize_crop_image_opencv`, within
0.51 of 255 levels of the numpy taps; `backend='numpy'` keeps the exact path); with `uint8_output` the crop stays
uint8 and the jitted train step normalises it (`normalize_batch`). Labels always take the exact nearest rule.

With the glyph loss, the examples' character boxes (`char_boxes` `[N, 4]` `[y1, x1, y2, x2]`, exclusive max, and
`char_labels`) follow the same geometry (`crop_char_boxes`): squared by padding the short side symmetrically,
scaled with the image, shifted by the crop offset; boxes that leave the crop or have the "other" class are
dropped and the rest padded to a fixed count. With box supervision the word boxes (`word_boxes`) follow it too
(`crop_word_boxes`: a margin, the mask's align-corners grid, not clipped to the crop) and the mask is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import grain
import numpy as np

from texrnet_jax.constants import GLYPH_OTHER_CLASS, IMAGENET_MEAN, IMAGENET_STD
from texrnet_jax.resample import linear_taps, nearest_indices


def normalize(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
              ) -> np.ndarray:
    """uint8 `[H, W, 3]` RGB -> float32 `(x / 255 - mean) / std`, as the reference (mean/std math in float64)."""
    x = image.astype(np.float32) / np.float32(255.0)
    return ((x - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)).astype(np.float32)


def normalization_constants(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
                            ) -> tuple[np.ndarray, np.ndarray]:
    """float32 `(scale, shift)` with `x * scale - shift == (x / 255 - mean) / std` for pixel values x in 0..255."""
    scale = (1.0 / (255.0 * np.asarray(std, np.float64))).astype(np.float32)
    shift = (np.asarray(mean, np.float64) / np.asarray(std, np.float64)).astype(np.float32)
    return scale, shift


def normalize_values(x: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
                     ) -> np.ndarray:
    """Pixel values in 0..255 (uint8, or float32 from a resize) -> `(x / 255 - mean) / std`, in float32.

    One multiply into a fresh float32 array and an in-place subtract: the same float32 arithmetic as
    `x.astype(float32) * scale - shift`, without its two temporaries.
    """
    scale, shift = normalization_constants(mean, std)
    out = np.multiply(np.asarray(x), scale, dtype=np.float32)
    np.subtract(out, shift, out=out)
    return out


def scaled_size(h: int, w: int, short: int) -> tuple[int, int]:
    """The reference RandomScaleOneSide size for a new short side."""
    if h <= w:
        return short, int(short / h * w)
    return int(short / w * h), short


def resize_crop_image(image: np.ndarray, size: tuple[int, int], top: int, left: int, crop: tuple[int, int]
                      ) -> np.ndarray:
    """Window `[top:top+ch, left:left+cw]` of `image` `[H, W, C]` float32 bilinearly resized to `size`."""
    h, w = image.shape[:2]
    y0, y1, wy = (t[top:top + crop[0]] for t in linear_taps(h, size[0]))
    x0, x1, wx = (t[left:left + crop[1]] for t in linear_taps(w, size[1]))
    rows = image[y0] * (1.0 - wy)[:, None, None] + image[y1] * wy[:, None, None]
    return rows[:, x0] * (1.0 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]


def resize_crop_image_opencv(image: np.ndarray, size: tuple[int, int], top: int, left: int, crop: tuple[int, int]
                             ) -> np.ndarray:
    """`resize_crop_image` of a uint8 image by OpenCV's `warpAffine` (uint8 out), about 40x faster.

    The affine map is the align-corners one, output `(i, j)` -> source `((top + i) sy, (left + j) sx)` with
    `s = (in - 1) / (out - 1)`, sampled bilinearly with edge replication, so the geometry is the exact path's.
    OpenCV 5 interpolates in float32 and rounds the result to uint8: a value differs from the exact path by at most
    0.51 levels (measured on white noise, the worst case), 0.25 on average. (OpenCV 4.10 and older round source
    positions to 1/32 pixel, up to 4 levels more at a black-white edge; requirements.txt pins 5.1.)
    """
    cv2 = _cv2()
    h, w = image.shape[:2]
    sy = float(np.float32(h - 1) / np.float32(size[0] - 1)) if size[0] > 1 else 0.0
    sx = float(np.float32(w - 1) / np.float32(size[1] - 1)) if size[1] > 1 else 0.0
    matrix = np.array([[sx, 0.0, left * sx], [0.0, sy, top * sy]], np.float64)
    out = cv2.warpAffine(np.ascontiguousarray(image), matrix, (int(crop[1]), int(crop[0])),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(int(crop[0]), int(crop[1]), *image.shape[2:])


_CV2 = None


def _cv2():
    """OpenCV, imported on first use with its own thread pool off (data workers are the parallelism)."""
    global _CV2
    if _CV2 is None:
        import cv2

        cv2.setNumThreads(1)
        _CV2 = cv2
    return _CV2


AUGMENT_BACKENDS = ("opencv", "numpy")


def decode_image(data, channels: int, backend: str = "opencv") -> np.ndarray:
    """Encoded PNG/JPEG bytes (or an already decoded array, returned as is) -> uint8 `[H, W, channels]`.

    'opencv' and 'numpy' (Pillow) decode with the same libjpeg-turbo and zlib and give the same pixels (measured
    on JPEGs of quality 75-95); OpenCV is about 25% faster. EXIF orientation is ignored by both, as TFDS does.
    """
    if isinstance(data, np.ndarray) and data.dtype != np.object_:
        return data
    data = bytes(data.item() if isinstance(data, np.ndarray) else data)
    if backend == "opencv":
        cv2 = _cv2()
        # IMREAD_COLOR_RGB has libjpeg-turbo write RGB itself: the pixels of IMREAD_COLOR + cvtColor, 0.5 ms sooner
        # on a 1000x800 JPEG.
        flags = (cv2.IMREAD_COLOR_RGB if channels == 3 else cv2.IMREAD_GRAYSCALE) | cv2.IMREAD_IGNORE_ORIENTATION
        out = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
        if out is None:
            raise ValueError("not a decodable image (OpenCV imdecode failed)")
    elif backend == "numpy":
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            out = np.asarray(im.convert("RGB" if channels == 3 else "L"))
    else:
        raise ValueError(f"config.data.augment_backend must be one of {AUGMENT_BACKENDS}, not {backend!r}")
    return out.reshape(*out.shape[:2], channels)


def decode_features(element, features: dict[str, int], backend: str = "opencv"):
    """`element` with the named image features (`{name: channels}`, read undecoded from TFDS) decoded by
    `decode_image`; a bad one raises a ValueError naming the example's id and the feature.

    The random transforms call it first thing, rather than a map of its own: grain derives each random transform's
    seed from its position in the pipeline, so an extra map would change every augmentation draw of a given seed.
    """
    if backend not in AUGMENT_BACKENDS:
        raise ValueError(f"config.data.augment_backend must be one of {AUGMENT_BACKENDS}, not {backend!r}")
    out = dict(element)
    for name, channels in features.items():
        if name in out:
            try:
                out[name] = decode_image(out[name], channels, backend)
            except ValueError as e:
                ident = element.get("id", b"?")
                raise ValueError(f"example {ident!r}, feature {name!r}: {e}") from None
    return out


def resize_crop_mask(mask: np.ndarray, size: tuple[int, int], top: int, left: int, crop: tuple[int, int]
                     ) -> np.ndarray:
    """The same window of `mask` `[H, W]` resized with the reference's nearest rule."""
    ys = nearest_indices(mask.shape[0], size[0])[top:top + crop[0]]
    xs = nearest_indices(mask.shape[1], size[1])[left:left + crop[1]]
    return mask[ys][:, xs]  # rows, then columns: the same pixels as np.ix_, 8x faster on a 513x513 window


def random_geometry(h: int, w: int, rng: np.random.Generator, scale_range: Sequence[int], crop_size: int
                    ) -> tuple[int, int, int, int]:
    """Draws the reference's random scale and crop: `(scaled_h, scaled_w, top, left)` of the crop window."""
    short = int(rng.integers(scale_range[0], scale_range[1] + 1))
    nh, nw = scaled_size(h, w, short)
    # Draw the offsets over the padded extent, as a crop of a padded image would.
    ph, pw = max(nh, crop_size), max(nw, crop_size)
    top = int(rng.integers(0, ph - crop_size + 1))
    left = int(rng.integers(0, pw - crop_size + 1))
    return nh, nw, top, left


def random_scale_crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, scale_range: Sequence[int],
                      crop_size: int, ignore_label: int, geometry: tuple[int, int, int, int] | None = None,
                      normalize_fn=None, backend: str = "numpy") -> tuple[np.ndarray, np.ndarray]:
    """Reference training augmentation on a normalised float32 image `[H, W, 3]` and mask `[H, W]`.

    `geometry` (from `random_geometry`) fixes the scale and crop instead of drawing them from `rng`. With
    `normalize_fn`, `image` is raw (uint8) and only the resized crop window is normalised: bilinear weights sum
    to one and normalisation is affine per channel, so this equals normalising first up to float32 rounding
    (a few 1e-7), at a fraction of the cost; padding stays 0 in normalised units (the image mean).
    `backend='opencv'` resizes a uint8 image with `resize_crop_image_opencv` (same geometry, values within 0.51
    levels); the mask is always resized by the exact nearest rule.

    Returns:
        `[crop, crop, 3]` float32 image and `[crop, crop]` int32 mask.
    """
    h, w = mask.shape
    nh, nw, top, left = geometry or random_geometry(h, w, rng, scale_range, crop_size)
    ch, cw = min(crop_size, nh - top), min(crop_size, nw - left)
    out_img = np.zeros((crop_size, crop_size, 3), np.float32)
    out_mask = np.full((crop_size, crop_size), ignore_label, np.int32)
    if ch > 0 and cw > 0:
        window = _resize_window(image, (nh, nw), top, left, (ch, cw), backend)
        out_img[:ch, :cw] = normalize_fn(window) if normalize_fn is not None else window
        out_mask[:ch, :cw] = resize_crop_mask(mask, (nh, nw), top, left, (ch, cw))
    return out_img, out_mask


def _resize_window(image: np.ndarray, size: tuple[int, int], top: int, left: int, crop: tuple[int, int],
                   backend: str) -> np.ndarray:
    """The crop window resized by `backend`: OpenCV for a uint8 image (uint8 out), else the exact numpy taps."""
    if backend == "opencv" and image.dtype == np.uint8:
        return resize_crop_image_opencv(image, size, top, left, crop)
    return resize_crop_image(image, size, top, left, crop)


def scale_crop_uint8(image: np.ndarray, mask: np.ndarray, geometry: tuple[int, int, int, int], crop_size: int,
                     ignore_label: int, backend: str = "opencv") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`random_scale_crop` with a fixed geometry, left in uint8 for `normalize_batch` in the jitted step.

    Returns:
        `[crop, crop, 3]` uint8 image (the resized window, rounded; zero padding), `[crop, crop]` uint8 mask
        (`ignore_label` padding) and `image_hw` `[2]` int32, the window's extent: the step sets the image outside it
        to 0 after normalising, as the host path pads.
    """
    if not 0 <= ignore_label <= 255:
        raise ValueError(f"uint8 batches need an ignore_label in 0..255, not {ignore_label}")
    nh, nw, top, left = geometry
    ch, cw = max(0, min(crop_size, nh - top)), max(0, min(crop_size, nw - left))
    out_img = np.zeros((crop_size, crop_size, 3), np.uint8)
    out_mask = np.full((crop_size, crop_size), ignore_label, np.uint8)
    if ch > 0 and cw > 0:
        window = _resize_window(image, (nh, nw), top, left, (ch, cw), backend)
        out_img[:ch, :cw] = window if window.dtype == np.uint8 else np.clip(np.rint(window), 0, 255).astype(np.uint8)
        out_mask[:ch, :cw] = resize_crop_mask(mask, (nh, nw), top, left, (ch, cw))
    return out_img, out_mask, np.asarray([ch, cw], np.int32)


def normalize_uint8(images, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """uint8 pixels (a jnp array, on device) -> `(x / 255 - mean) / std` in float32, as `normalize_values`."""
    import jax.numpy as jnp

    scale, shift = normalization_constants(mean, std)
    return images.astype(jnp.float32) * scale - shift


def normalize_batch(batch, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """A batch of uint8 crops (`TrainAugment(uint8_output=True)`) -> the float32 batch of the host path, in jnp.

    `image` `[B, S, S, 3]` uint8 becomes `(x / 255 - mean) / std` in float32 (`normalize_values`' arithmetic), 0
    outside each example's `image_hw` extent (the padding of a crop larger than the scaled image); `mask` becomes
    int32 and `image_hw` is dropped. A batch without `image_hw` comes back unchanged.
    """
    import jax.numpy as jnp

    if "image_hw" not in batch:
        return batch
    image = normalize_uint8(batch["image"], mean, std)
    hw = batch["image_hw"]
    size = image.shape[1:3]
    inside = ((jnp.arange(size[0])[None, :, None] < hw[:, 0, None, None])
              & (jnp.arange(size[1])[None, None, :] < hw[:, 1, None, None]))
    out = {k: v for k, v in batch.items() if k != "image_hw"}
    out["image"] = jnp.where(inside[..., None], image, jnp.float32(0.0))
    if "mask" in out:
        out["mask"] = out["mask"].astype(jnp.int32)
    return out


def square_boxes(boxes: np.ndarray) -> np.ndarray:
    """`[N, 4]` `[y1, x1, y2, x2]` boxes made square by padding the short side symmetrically (float32)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    y1, x1, y2, x2 = boxes.T
    pad = (np.abs((y2 - y1) - (x2 - x1)) / 2).astype(np.float32)
    taller = (y2 - y1) > (x2 - x1)
    return np.stack([np.where(taller, y1, y1 - pad), np.where(taller, x1 - pad, x1),
                     np.where(taller, y2, y2 + pad), np.where(taller, x2 + pad, x2)], axis=1)


def crop_char_boxes(boxes: np.ndarray, labels: np.ndarray, src_hw: tuple[int, int],
                    geometry: tuple[int, int, int, int], crop_size: int, max_boxes: int
                    ) -> dict[str, np.ndarray]:
    """Character boxes of an example in the coordinates of its training crop, padded to `max_boxes` rows.

    Args:
        boxes: `[N, 4]` `[y1, x1, y2, x2]` pixel boxes of the source image (exclusive max, not squared).
        labels: `[N]` glyph classes (36 = other).
        src_hw: source image size.
        geometry: `(scaled_h, scaled_w, top, left)` of the crop (`random_geometry`).
        crop_size: side of the crop.
        max_boxes: rows of the output; boxes beyond it (in source order) are dropped.

    Returns:
        `char_boxes` `[max_boxes, 4]` float32, `char_labels` `[max_boxes]` int32 and `char_valid` `[max_boxes]` bool;
        padding rows are zero and invalid.
    """
    nh, nw, top, left = geometry
    sq = square_boxes(boxes)
    labels = np.asarray(labels, np.int32).reshape(-1)
    scale = np.asarray([nh / src_hw[0], nw / src_hw[1], nh / src_hw[0], nw / src_hw[1]], np.float32)
    sq = sq * scale - np.asarray([top, left, top, left], np.float32)
    keep = ((sq[:, 0] >= 0) & (sq[:, 1] >= 0) & (sq[:, 2] <= crop_size) & (sq[:, 3] <= crop_size)
            & (labels != GLYPH_OTHER_CLASS))
    sq, labels = sq[keep][:max_boxes], labels[keep][:max_boxes]
    n = len(labels)
    out = {"char_boxes": np.zeros((max_boxes, 4), np.float32), "char_labels": np.zeros((max_boxes,), np.int32),
           "char_valid": np.zeros((max_boxes,), bool)}
    out["char_boxes"][:n], out["char_labels"][:n], out["char_valid"][:n] = sq, labels, True
    return out


def crop_word_boxes(boxes: np.ndarray, src_hw: tuple[int, int], geometry: tuple[int, int, int, int],
                    crop_size: int, max_boxes: int, pad: float = 0.0, ignore: np.ndarray | None = None
                    ) -> dict[str, np.ndarray]:
    """Word boxes of an example in the coordinates of its training crop (box supervision, `box_losses`).

    Each box grows by `pad` source pixels per side (an annotator's margin; clipped to the image), then maps to the
    scaled image on the align-corners grid of the mask's nearest resize (edge `e -> (e - 0.5) k + 0.5`,
    `k = (scaled - 1) / (src - 1)`), so a scaled pixel is inside when the source pixel it takes its label from is.
    Boxes are not clipped to the crop: `box_losses` reads a coordinate past the crop's edge as a cut word. Boxes
    with no area in the crop are dropped. With more than `max_boxes` boxes in the crop the last row becomes a
    don't-care box over the union of the boxes that do not fit, so that no word's pixels pass for background.

    Args:
        boxes: `[N, 4]` `[y1, x1, y2, x2]` pixel boxes of the source image (inclusive-exclusive).
        src_hw: source image size.
        geometry: `(scaled_h, scaled_w, top, left)` of the crop (`random_geometry`).
        crop_size: side of the crop.
        max_boxes: rows of the output.
        pad: margin in source pixels added to every side before the crop.
        ignore: `[N]` bool don't-care flags, or None (none).

    Returns:
        `word_boxes` `[max_boxes, 4]` float32, `word_valid` and `word_ignore` `[max_boxes]` bool; padding rows are
        zero and invalid.
    """
    nh, nw, top, left = geometry
    h, w = src_hw
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    ignore = np.zeros(len(boxes), bool) if ignore is None else np.asarray(ignore, bool).reshape(-1)
    lim = np.asarray([h, w, h, w], np.float64)
    b = np.clip(boxes + np.asarray([-pad, -pad, pad, pad]), 0.0, lim)
    k = np.asarray([(n - 1) / (s - 1) if s > 1 else n for n, s in ((nh, h), (nw, w))] * 2)
    b = np.clip((b - 0.5) * k + 0.5, 0.0, np.asarray([nh, nw, nh, nw], np.float64))
    b = b - np.asarray([top, left, top, left], np.float64)
    keep = (b[:, 2] > np.maximum(b[:, 0], 0)) & (b[:, 3] > np.maximum(b[:, 1], 0)) & (b[:, 0] < crop_size) & (
        b[:, 1] < crop_size)
    b, ignore = b[keep], ignore[keep]
    if len(b) > max_boxes:  # the overflow becomes one don't-care box over its union, clipped to the crop
        rest = np.clip(b[max_boxes - 1:], 0.0, crop_size)
        union = np.concatenate([rest[:, :2].min(0), rest[:, 2:].max(0)])
        b = np.concatenate([b[:max_boxes - 1], union[None]])
        ignore = np.concatenate([ignore[:max_boxes - 1], [True]])
    n = len(b)
    out = {"word_boxes": np.zeros((max_boxes, 4), np.float32), "word_valid": np.zeros((max_boxes,), bool),
           "word_ignore": np.zeros((max_boxes,), bool)}
    out["word_boxes"][:n], out["word_valid"][:n], out["word_ignore"][:n] = b, True, ignore
    return out


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random photometric augmentation of a uint8 image `[H, W, 3]` (geometry and labels untouched).

    Brightness, contrast, saturation and per-channel gains; sometimes grey, inverted (light text on dark and
    dark on light), blurred (Gaussian, sigma 0.3-1 px) or JPEG re-encoded (quality 30-90). Not part of the
    reference recipe: `config.data.photometric` turns it on (the synthetic main job does, for transfer to photos).
    """
    import io

    from PIL import Image, ImageFilter

    x = image.astype(np.float32)
    grey = (x @ np.asarray([0.299, 0.587, 0.114], np.float32))[..., None]
    if rng.random() < 0.1:
        x = np.repeat(grey, 3, axis=-1)
    else:
        x = grey + (x - grey) * np.float32(rng.uniform(0.6, 1.4))
    mean = np.float32(grey.mean())
    x = mean + (x - mean) * np.float32(rng.uniform(0.7, 1.3))
    x = x * np.float32(rng.uniform(0.75, 1.25)) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    if rng.random() < 0.2:
        x = 255.0 - x
    out = np.clip(np.round(x), 0, 255).astype(np.uint8)
    if rng.random() < 0.15:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0)))))
    if rng.random() < 0.15:
        buffer = io.BytesIO()
        Image.fromarray(out).save(buffer, format="jpeg", quality=int(rng.integers(30, 91)))
        out = np.asarray(Image.open(buffer).convert("RGB"))
    return out


class TrainAugment(grain.transforms.RandomMap):
    """Decoded TFDS example -> `{'image': [S, S, 3] float32 normalised, 'mask': [S, S] int32}`.

    With `max_char_boxes > 0` the output also has the crop's `char_boxes`, `char_labels`, `char_valid`
    (`crop_char_boxes`); the example must then carry `char_boxes` and `char_labels`. With `max_word_boxes > 0` it
    has `word_boxes`, `word_valid`, `word_ignore` (`crop_word_boxes`, `word_box_pad` px of margin; an optional
    `word_ignore` feature marks don't-care words); the example must carry `word_boxes`. `with_mask=False` (box
    supervision) leaves the mask out of the output and never reads it (it may be undecoded bytes).
    `backend` ('opencv' or 'numpy', `config.data.augment_backend`) picks the image resize of `random_scale_crop` and
    the decoder of the features named in `decode` (`{name: channels}`, given as encoded bytes).
    With `uint8_output` (`config.data.uint8_batches`) the image and mask stay uint8 with an `image_hw` extent
    (`scale_crop_uint8`) and the train step normalises them (`normalize_batch`).
    """

    def __init__(self, scale_range: Sequence[int], crop_size: int, ignore_label: int,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, max_char_boxes: int = 0,
                 photometric: bool = False, max_word_boxes: int = 0, word_box_pad: float = 2.0,
                 with_mask: bool = True, backend: str = "opencv", uint8_output: bool = False,
                 decode: dict[str, int] | None = None):
        self.scale_range = tuple(int(s) for s in scale_range)
        self.crop_size = int(crop_size)
        self.ignore_label = int(ignore_label)
        self.mean, self.std = tuple(mean), tuple(std)
        self.max_char_boxes = int(max_char_boxes)
        self.photometric = bool(photometric)
        self.max_word_boxes = int(max_word_boxes)
        self.word_box_pad = float(word_box_pad)
        self.with_mask = bool(with_mask)
        if backend not in AUGMENT_BACKENDS:
            raise ValueError(f"config.data.augment_backend must be one of {AUGMENT_BACKENDS}, not {backend!r}")
        self.backend = backend
        self.uint8_output = bool(uint8_output)
        self.decode = dict(decode or {})

    def random_map(self, element, rng: np.random.Generator):
        element = decode_features(element, self.decode, self.backend)
        image = np.asarray(element["image"])
        if self.photometric:
            image = photometric(image, rng)
        # Without the mask a zero stand-in of the image's size keeps the geometry code shared; its crop is dropped.
        mask = np.asarray(element["mask"])[..., 0] if self.with_mask else np.zeros(image.shape[:2], np.uint8)
        geometry = random_geometry(*mask.shape, rng, self.scale_range, self.crop_size)
        if self.uint8_output:
            img, msk, hw = scale_crop_uint8(image, mask, geometry, self.crop_size, self.ignore_label, self.backend)
            out = {"image": img, "image_hw": hw}
        else:
            img, msk = random_scale_crop(image, mask, rng, self.scale_range, self.crop_size, self.ignore_label,
                                         geometry, normalize_fn=lambda x: normalize_values(x, self.mean, self.std),
                                         backend=self.backend)
            out = {"image": img}
        if self.with_mask:
            out["mask"] = msk
        if self.max_char_boxes:
            out.update(crop_char_boxes(element["char_boxes"], element["char_labels"], mask.shape, geometry,
                                       self.crop_size, self.max_char_boxes))
        if self.max_word_boxes:
            out.update(crop_word_boxes(element["word_boxes"], mask.shape, geometry, self.crop_size,
                                       self.max_word_boxes, self.word_box_pad, element.get("word_ignore")))
        return out
