"""`synth_text`: synthetic scene-text segmentation images with exact per-pixel masks; no download.

Words of random letters (both cases), digits and punctuation are drawn in fonts shipped by Pillow, matplotlib
and `font-*` pip packages onto crops of real photos (scikit-image, scikit-learn, matplotlib) and procedural
textures with non-text clutter, with rotation, shear, curvature, perspective, outlines and drop shadows, then
lighting, blur, noise and JPEG artefacts (see `render.py` and README.md). The `photo_check` config draws English
words in held-out fonts on held-out photos: a check of transfer to real photos that training never saw. Masks use the project's canonical encoding:

    0    background, including outlines and shadows ("word effects", mapped to background as in TextSeg)
    1    text fill whose pixel coverage is >= 0.75 (`render.FG_THRESHOLD`)
    255  ignore: anti-aliased edge pixels with coverage strictly between 0.25 and 0.75

Every example is rendered by its own generator seeded from (config seed, split, index), so the build is
byte-identical on every run and any single example can be re-rendered with `render_example`.

Build (no TensorFlow needed; nothing to download, so no `--manual_dir`):

    python -m tfds_builders.build synth_text --config=quick --data_dir=~/tensorflow_datasets

or, with the optional `build` extra (tensorflow-cpu, apache-beam, mlcroissant) installed, from the repository
root (the module imports `tfds_builders.synth_text.render`):

    PYTHONPATH=. tfds build tfds_builders/synth_text --config=quick --file_format=array_record
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders.synth_text import render

_SPLIT_SIZES = {"train": "num_train", "test": "num_test"}


@dataclasses.dataclass(eq=False, kw_only=True)
class SynthTextConfig(tfds.core.BuilderConfig):
    """Size and content knobs of one `synth_text` variant.

    Attributes:
      image_size: side of the square images in pixels.
      num_train: number of training examples.
      num_test: number of test examples.
      seed: base seed; example i of split s uses `render.example_rng(seed, s, i)`.
      min_font_size: smallest font size in pixels.
      max_font_size: largest font size in pixels.
      small_font_fraction: fraction of blocks drawn at [min, 2 * min] px, the rest log-uniform above; None
        draws all sizes log-uniform over [min, max].
      max_blocks: most text blocks per image.
      empty_fraction: fraction of images without text.
      pool: 'train' or 'holdout' fonts and photos (`assets`); check sets use 'holdout', which no training
        render ever draws from.
      photo_only: plain photo backgrounds (no procedural textures or clutter).
      words: 'random' tokens or 'english' words (`render.ENGLISH_WORDS`).
      low_contrast: allow blocks with little or no contrast.
    """

    image_size: int = 128
    num_train: int = 3000
    num_test: int = 300
    seed: int = 0
    min_font_size: int = 12
    max_font_size: int = 120
    small_font_fraction: float | None = 0.15
    max_blocks: int = 3
    empty_fraction: float = 0.08
    pool: str = "train"
    photo_only: bool = False
    words: str = "random"
    low_contrast: bool = True

    def render_config(self) -> render.RenderConfig:
        """The renderer settings of this variant."""
        return render.RenderConfig(
            height=self.image_size,
            width=self.image_size,
            min_font_size=self.min_font_size,
            max_font_size=self.max_font_size,
            small_font_fraction=self.small_font_fraction,
            max_blocks=self.max_blocks,
            empty_fraction=self.empty_fraction,
            pool=self.pool,
            photo_only=self.photo_only,
            words=self.words,
            low_contrast=self.low_contrast,
        )


def render_example(config: SynthTextConfig, split: str, index: int) -> tuple[str, dict]:
    """Renders example `index` of `split` exactly as the builder stores it.

    Returns:
      (key, example): the key is also the `id` feature, e.g. 'train_000012'; the example holds PNG bytes
      for `image` and `mask` (Image features cannot encode numpy arrays without TensorFlow) and numpy
      arrays for the character and word features.
    """
    sample = render.render_sample(render.example_rng(config.seed, split, index), config.render_config())
    key = f"{split}_{index:06d}"
    return key, {
        "image": _png(sample.image),
        "mask": _png(sample.mask),
        "id": key,
        "text": sample.text,
        "char_boxes": sample.char_boxes.astype(np.float32).reshape(-1, 4),
        "char_labels": sample.char_labels.astype(np.int32).reshape(-1),
        "word_boxes": sample.word_boxes.astype(np.float32).reshape(-1, 4),
        "word_quads": sample.word_quads.astype(np.float32).reshape(-1, 4, 2),
    }


def _png(array: np.ndarray) -> bytes:
    # Encoded here rather than by TFDS so the zlib level (1: fast, still lossless) is ours to choose.
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for `synth_text`: rendered scene text, masks and character boxes."""

    VERSION = tfds.core.Version("3.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: quick (128 px) and standard (384 px) configs.",
        "2.0.0": "Backgrounds mostly real photos (scikit-image, scikit-learn, matplotlib) with non-text clutter; "
        "30 more font faces; curved and perspective text; lighting, JPEG and stronger blur; held-out photos and "
        "fonts for the `photo_check` config.",
        "2.1.0": "Word boxes (axis-aligned and minimum-area rectangles) for box-supervised training and BF-Net; "
        "images, masks and character boxes unchanged.",
        "3.0.0": "Thin man-made structures in perspective (railings, spoked wheels, shelves, fences, wires, pipes) "
        "on 30% of the training backgrounds; three more training photos (PyWavelets' ascent and aero, mahotas' "
        "portrait). `photo_check` unchanged.",
    }
    BUILDER_CONFIGS = [
        SynthTextConfig(
            name="quick",
            description="128x128, 6000 train / 300 test; 12-120 px fonts, ~15% at 12-24 px, the rest "
            "log-uniform 24-120 px (mostly medium-to-large text).",
            image_size=128,
            num_train=6000,
            num_test=300,
            seed=0,
            small_font_fraction=0.15,
            max_blocks=3,
        ),
        SynthTextConfig(
            name="standard",
            description="384x384, 20000 train / 1000 test; fonts log-uniform over 12-120 px.",
            image_size=384,
            num_train=20000,
            num_test=1000,
            seed=1,
            small_font_fraction=None,
            max_blocks=5,
        ),
        SynthTextConfig(
            name="tiny",
            description="64x64, 64 train / 16 test; builds in about a second, for smoke runs and tests.",
            image_size=64,
            num_train=64,
            num_test=16,
            seed=2,
            min_font_size=12,
            max_font_size=60,
            small_font_fraction=0.15,
            max_blocks=2,
        ),
        SynthTextConfig(
            name="photo_check",
            description="Check set of real photos: 256x256 views of photos that no training render uses, English "
            "words of 10-56 px in fonts that no training render uses, camera degradations; 200 test images, no "
            "train split.",
            image_size=256,
            num_train=0,
            num_test=200,
            seed=3,
            min_font_size=10,
            max_font_size=56,
            small_font_fraction=0.15,
            max_blocks=3,
            empty_fraction=0.05,
            pool="holdout",
            photo_only=True,
            words="english",
            low_contrast=False,
        ),
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                    "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
                    "id": tfds.features.Text(),
                    "text": tfds.features.Text(),
                    "char_boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
                    "char_labels": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                    # [y1, x1, y2, x2] and (x, y) corners of every word that shows text (`raster.Sample`).
                    "word_boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
                    "word_quads": tfds.features.Tensor(shape=(None, 4, 2), dtype=np.float32),
                }
            ),
            supervised_keys=("image", "mask"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # everything is rendered locally
        config = self.builder_config
        return {split: self._generate_examples(split) for split, size in _SPLIT_SIZES.items()
                if getattr(config, size) > 0}

    def _generate_examples(self, split: str):
        config = self.builder_config
        for index in range(getattr(config, _SPLIT_SIZES[split])):
            yield render_example(config, split, index)
