"""Per-file conversions of the builders: image and label decoding, value checks, encoding, char classes, ids.

Errors name the offending file (`Entry.display`) and, where values are wrong, the values. Everything here
uses numpy and PIL; no TensorFlow.
"""

from __future__ import annotations

import io
import re
import string
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from PIL import Image

from tfds_builders.manual_files import Entry, listing

# Class of anything that is not an ASCII digit or letter, as in the reference glyph classifier (37 classes).
OTHER_CHAR_CLASS = 36


def decode_image(entry: Entry, data: bytes) -> Image.Image:
    """Fully decodes an image (so truncated or corrupt files fail here, with the file's name)."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise ValueError(f"{entry.display}: cannot decode image ({type(e).__name__}: {e})") from e
    return image


def encode_rgb(entry: Entry, data: bytes) -> tuple[bytes, tuple[int, int]]:
    """The bytes to store for an `image` feature, and the image's (height, width).

    An RGB JPEG is passed through unchanged: re-encoding would add a second round of JPEG loss. Anything else
    (grayscale or CMYK JPEG, PNG, GIF, palette or alpha images) is converted to RGB and stored as lossless
    PNG; TFDS decodes by content, so both kinds read back as uint8 [H, W, 3].
    """
    image = decode_image(entry, data)
    size = (image.height, image.width)
    if image.format == "JPEG" and image.mode == "RGB":
        return data, size
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white rather than whatever colour the alpha channel hides.
        rgba = image.convert("RGBA")
        image = Image.new("RGB", rgba.size, (255, 255, 255))
        image.paste(rgba, mask=rgba.getchannel("A"))
    return png_bytes(np.asarray(image.convert("RGB"))), size


def decode_label(entry: Entry, data: bytes) -> np.ndarray:
    """A single-channel label map as uint8 [H, W]; palette PNGs give their indices, not their colours.

    RGB(A) label files are accepted only when their three colour channels are equal.
    """
    image = decode_image(entry, data)
    if image.mode in ("L", "P", "1"):
        return np.asarray(image.convert("L") if image.mode == "1" else image, dtype=np.uint8)
    if image.mode in ("RGB", "RGBA"):
        rgb = np.asarray(image)[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0])
    raise ValueError(f"{entry.display}: expected a single-channel label map, got PIL mode {image.mode!r}")


def check_values(entry: Entry, label: np.ndarray, allowed: Iterable[int]) -> None:
    """Raises ValueError naming the file and the values of `label` that are not in `allowed`."""
    allowed = set(allowed)
    values = np.unique(label)
    bad = [int(v) for v in values if int(v) not in allowed]
    if bad:
        raise ValueError(
            f"{entry.display}: label values {listing([str(v) for v in bad])} outside the documented set "
            f"{sorted(allowed)}"
        )


def check_same_size(label_entry: Entry, label_hw: tuple[int, int], image_entry: Entry, image_hw: tuple[int, int]):
    """Raises ValueError when a label map does not have its image's height and width."""
    if tuple(label_hw) != tuple(image_hw):
        raise ValueError(
            f"{label_entry.display} is {label_hw[0]}x{label_hw[1]} (HxW) but its image "
            f"{image_entry.display} is {image_hw[0]}x{image_hw[1]}"
        )


def map_values(entry: Entry, label: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """Maps raw label values through `mapping` after checking that no other value occurs."""
    check_values(entry, label, mapping)
    lut = np.zeros(256, np.uint8)
    for raw, canonical in mapping.items():
        lut[raw] = canonical
    return lut[label]


def png_bytes(array: np.ndarray) -> bytes:
    """Lossless PNG of a uint8 [H, W] or [H, W, 3] array (Image features cannot encode numpy without TF)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="png")
    return buffer.getvalue()


def char_class(text: str) -> int:
    """Glyph class of the reference classifier: '0'-'9' -> 0-9, letters a-z of either case -> 10-35, else 36.

    Only ASCII counts: accented letters, punctuation and multi-character strings are class 36.
    """
    if len(text) == 1 and text in string.digits:
        return int(text)
    if len(text) == 1 and text.lower() in string.ascii_lowercase:
        return 10 + string.ascii_lowercase.index(text.lower())
    return OTHER_CHAR_CLASS


def char_arrays(boxes: Sequence[Sequence[float]], labels: Sequence[int]) -> dict[str, np.ndarray]:
    """The `char_boxes` [N, 4] float32 ([y1, x1, y2, x2]) and `char_labels` [N] int32 features."""
    return {
        "char_boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "char_labels": np.asarray(labels, np.int32).reshape(-1),
    }


def example_id(stem: str) -> str:
    """A stable example id from a file stem: the stem itself, with anything but [A-Za-z0-9_.-] replaced by '_'.

    Never pass a path: ids must not depend on where the files were unpacked.
    """
    if "/" in stem or "\\" in stem:
        raise ValueError(f"example ids are file stems, got a path: {stem!r}")
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
