"""The reference's constants are defined once (`texrnet_jax.constants`); the dataset builders keep their own copy
of the glyph classes (they must build without the library) and it must agree."""

from __future__ import annotations

import pytest

from configs import base
from texrnet_jax import constants
from tfds_builders import encoding
from tfds_builders.synth_text import raster

CHARS = [chr(c) for c in range(0x250)] + ["ab", "", "١", "Ａ", "ß", "İ"]


def test_the_builders_glyph_classes_are_the_librarys():
    assert encoding.OTHER_CHAR_CLASS == raster.OTHER_CLASS == constants.GLYPH_OTHER_CLASS
    for ch in CHARS:
        assert encoding.char_class(ch) == constants.glyph_class(ch), repr(ch)
        if len(ch) == 1:
            assert raster.glyph_class(ch) == constants.glyph_class(ch), repr(ch)


@pytest.mark.parametrize("ch,expected", [("0", 0), ("9", 9), ("a", 10), ("A", 10), ("z", 35), ("Z", 35), ("!", 36),
                                         ("é", 36), ("ab", 36), ("", 36)])
def test_glyph_classes(ch, expected):
    assert constants.glyph_class(ch) == expected
    assert max(constants.glyph_class(c) for c in CHARS) == constants.GLYPH_NUM_CLASSES - 1


def test_configs_take_the_reference_values_from_the_constants():
    config = base.get_base_config()
    assert tuple(config.data.mean) == constants.IMAGENET_MEAN and tuple(config.data.std) == constants.IMAGENET_STD
    assert config.data.ignore_label == constants.IGNORE_LABEL
    assert tuple(config.eval.scales) == constants.REFERENCE_SCALES == (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5)
    assert config.eval.base_size == constants.EVAL_BASE_SIZE == 512
