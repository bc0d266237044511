"""The reference's constants, defined once: evaluation scales, input normalisation, label values, glyph classes.

A leaf with no imports beyond the standard library, so configs and builders can read it without JAX.
"""

from __future__ import annotations

import string

# The eight scales of the reference's multi-scale evaluation (with `EVAL_BASE_SIZE`, see evaluate.multiscale_sizes).
REFERENCE_SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5)
EVAL_BASE_SIZE = 512

# ImageNet mean and standard deviation of RGB values in [0, 1], as the reference normalises its inputs.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Mask values of every builder: 0 background, 1 text, 255 ignore (also the padding value of label crops).
IGNORE_LABEL = 255

# The glyph classifier's classes: digits '0'-'9' are 0-9, ASCII letters a-z of either case 10-35, anything else 36.
GLYPH_NUM_CLASSES = 37
GLYPH_OTHER_CLASS = 36


def glyph_class(text: str) -> int:
    """The glyph class of one character; anything but a single ASCII digit or letter is `GLYPH_OTHER_CLASS`."""
    if len(text) == 1 and text in string.digits:
        return int(text)
    if len(text) == 1 and text.lower() in string.ascii_lowercase and text.isascii():
        return 10 + string.ascii_lowercase.index(text.lower())
    return GLYPH_OTHER_CLASS
