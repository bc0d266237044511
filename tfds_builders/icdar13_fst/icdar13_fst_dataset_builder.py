"""`icdar13_fst`: ICDAR 2013 Focused Scene Text, Task 2.2 (text segmentation), from the official RRC zips.

Raw ground truth: training `<n>_GT.bmp` (RGB, white background, one colour per character) with
`<n>_GT.txt` (`R G B cx cy x1 y1 x2 y2 "c"` per character; '#'-prefixed lines are don't-care characters,
blank lines separate words); test `gt_img_<n>.png` (same colour convention; a `gt_img_<n>.txt` is used when
present, but the test GT zip is not known to have one).

Raw-to-canonical mapping, per config:

    binary (default)  white (255,255,255) -> 0; every other colour -> 1
    with_ignore       as binary, but pixels whose colour appears only on don't-care ('#') lines of the txt
                      -> 255 (TexRNet's 'original' source mode); without a txt (test) nothing is ignored

`binary` is the default because it is the binarisation of the third-party loaders and of the reference's
default ('addon') labels, where every character pixel counts as text.

Character features (from the txt, non-'#' lines only): `char_boxes` `[y1, x1, y2 + 1, x2 + 1]` (the txt's
corners are read as inclusive pixel coordinates, and are clipped to the image) and `char_labels` (0-9
digits, 10-35 letters a-z of either case, 36 other). Examples without a txt have zero-row tensors.

Splits (naming identifies them, so folder names do not matter): `train` = `<n>.jpg` (229), `test` =
`img_<n>.jpg` (233), as in TexRNet (issue #23).

Build without TensorFlow:

    python -m tfds_builders.build icdar13_fst --manual_dir=~/downloads/icdar13 --data_dir=~/tensorflow_datasets
    python -m tfds_builders.build icdar13_fst/with_ignore --manual_dir=~/downloads/icdar13

or with the optional `build` extra, from the repository root:

    PYTHONPATH=. tfds build tfds_builders/icdar13_fst --manual_dir=~/downloads/icdar13 --file_format=array_record
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import common

_TRAIN_IMAGE = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)
_TEST_IMAGE = re.compile(r"^(img_\d+)\.jpe?g$", re.IGNORECASE)
_LINE = re.compile(
    r"^\s*(#?)\s*(\d+)\s+(\d+)\s+(\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s+(-?\d+)\s*(.*)$"
)

_INSTRUCTIONS = """\
From https://rrc.cvc.uab.es/?ch=2 (ICDAR 2013 Focused Scene Text; registration needed), Downloads,
Task 2.2 "Text Segmentation", put these zips in the manual dir as downloaded (or unpacked, any folder names):
  Challenge2_Training_Task12_Images.zip   (229 images <n>.jpg)
  Challenge2_Test_Task12_Images.zip       (233 images img_<n>.jpg)
  Challenge2_Training_Task2_GT.zip        (<n>_GT.bmp and <n>_GT.txt)
  Challenge2_Test_Task2_GT.zip            (gt_img_<n>.png)
"""


@dataclasses.dataclass(eq=False, kw_only=True)
class Icdar13Config(tfds.core.BuilderConfig):
    """How don't-care characters are labelled.

    Attributes:
      ignore_dont_care: map the colours of '#' characters to 255 instead of 1.
    """

    ignore_dont_care: bool = False


@dataclasses.dataclass(frozen=True)
class CharLine:
    """One character line of a `_GT.txt` file.

    Attributes:
      colour: (R, G, B) of the character in the GT map.
      box: (x1, y1, x2, y2) inclusive pixel corners.
      text: the character.
      dont_care: the line started with '#'.
    """

    colour: tuple[int, int, int]
    box: tuple[int, int, int, int]
    text: str
    dont_care: bool


def parse_gt_txt(entry: common.Entry, data: bytes) -> list[CharLine]:
    """Parses a `_GT.txt`; blank lines (word separators) are skipped; a malformed line fails with its number."""
    out = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"{entry.display}:{number}: expected 'R G B cx cy x1 y1 x2 y2 \"c\"', got {line!r}")
        values = [int(v) for v in match.groups()[1:10]]
        text = match.group(11).strip()
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        out.append(CharLine(tuple(values[:3]), tuple(values[5:9]), text, match.group(1) == "#"))
    return out


def gt_to_mask(rgb: np.ndarray, chars: list[CharLine], ignore_dont_care: bool) -> np.ndarray:
    """Canonical mask of a colour GT map [H, W, 3]; see the module docstring."""
    mask = np.any(rgb != 255, axis=-1).astype(np.uint8)
    if ignore_dont_care:
        cared = {c.colour for c in chars if not c.dont_care}
        for colour in {c.colour for c in chars if c.dont_care} - cared:
            mask[np.all(rgb == colour, axis=-1)] = 255
    return mask


def char_features(chars: list[CharLine], image_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boxes `[y1, x1, y2, x2]` (max exclusive, clipped) and classes of the cared-for characters."""
    height, width = image_hw
    boxes, labels = [], []
    for c in chars:
        if c.dont_care:
            continue
        x1, y1, x2, y2 = c.box
        box = [max(0, y1), max(0, x1), min(height, y2 + 1), min(width, x2 + 1)]
        if box[2] > box[0] and box[3] > box[1]:
            boxes.append(box)
            labels.append(common.char_class(c.text))
    return common.char_arrays(boxes, labels)


def _gt_key(entry: common.Entry) -> str | None:
    """The image stem a GT file belongs to: '<n>_GT.bmp' -> '<n>', 'gt_img_<n>.png' -> 'img_<n>'."""
    stem = entry.stem
    if entry.suffix in (".bmp", ".txt") and stem.endswith("_GT"):
        return stem[: -len("_GT")]
    if entry.suffix in (".png", ".txt") and stem.startswith("gt_img_"):
        return stem[len("gt_") :]
    return None


class Builder(common.ManualSegmentationBuilder):
    """DatasetBuilder for ICDAR 2013 FST text segmentation."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: binary and with_ignore configs, char boxes from the GT txt."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
    BUILDER_CONFIGS = [
        Icdar13Config(name="binary", description="Every non-white GT pixel is text.", ignore_dont_care=False),
        Icdar13Config(name="with_ignore", description="Don't-care ('#') characters are 255.", ignore_dont_care=True),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "binary"
    IMAGE_FORMAT = "jpeg"
    EXTRA_FEATURES = common.char_features()

    def _requirements(self):
        return [
            common.Requirement(
                "Challenge2_Training_Task12_Images.zip (<n>.jpg)", lambda e: _TRAIN_IMAGE.match(e.basename)
            ),
            common.Requirement(
                "Challenge2_Test_Task12_Images.zip (img_<n>.jpg)", lambda e: _TEST_IMAGE.match(e.basename)
            ),
            common.Requirement(
                "Challenge2_Training_Task2_GT.zip (<n>_GT.bmp)", lambda e: e.basename.endswith("_GT.bmp")
            ),
            common.Requirement(
                "Challenge2_Test_Task2_GT.zip (gt_img_<n>.png)",
                lambda e: e.basename.startswith("gt_img_") and e.suffix == ".png",
            ),
        ]

    def _plan(self, files):
        maps = common.find_by_stem(files.select(lambda e: e.suffix != ".txt" and _gt_key(e)), _gt_key)
        texts = common.find_by_stem(files.select(lambda e: e.suffix == ".txt" and _gt_key(e)), _gt_key)
        plan, missing = {}, []
        for split, pattern in (("train", _TRAIN_IMAGE), ("test", _TEST_IMAGE)):
            images = common.find_by_stem(files.select(lambda e, p=pattern: p.match(e.basename)))
            plan[split] = []
            for stem, image in sorted(images.items()):
                gt_name = f"{stem}_GT.bmp" if split == "train" else f"gt_{stem}.png"
                absent = [] if stem in maps else [gt_name]
                if split == "train" and stem not in texts:  # the training txt is required, a test txt optional
                    absent.append(f"{stem}_GT.txt")
                missing += absent
                if not absent:
                    labels = {"gt": maps[stem], **({"txt": texts[stem]} if stem in texts else {})}
                    plan[split].append(common.Sample(common.example_id(stem), image, labels))
        common.raise_if_missing(f"ground-truth files are missing in {files.root}", missing)
        return plan

    def _label_features(self, sample, read, image_hw):
        entry = sample.labels["gt"]
        rgb = np.asarray(common.decode_image(entry, read(entry)).convert("RGB"))
        common.check_same_size(entry, rgb.shape[:2], sample.image, image_hw)
        chars = parse_gt_txt(sample.labels["txt"], read(sample.labels["txt"])) if "txt" in sample.labels else []
        mask = gt_to_mask(rgb, chars, self.builder_config.ignore_dont_care)
        return {"mask": common.png_bytes(mask), **char_features(chars, image_hw)}
