"""Where the label mode writes each label PNG, so that the output dir reads like an unpacked released label set.

Every layout writes `<image stem>.png` (single channel uint8, the image's size: 0 background, 1 text/lesion,
255 uncertain); a dataset layout puts it where the project's builder of that set finds it, as if the set's
label zip had been unpacked into the output dir (every builder accepts unpacked folders):

    flat      <out>/<stem>.png; any image, any split (no builder reads it)
    coco_ts   <out>/COCO_TS_labels/COCO_train2014_<id>.png; split train or val (the builder reads cocotext.v2.json)
    mlt_s     <out>/MLT_S_labels/{training,validation}_labels/<stem>.png, by the record's split (train, val/validation)
    ist_s     <out>/IST_Segmentation_labels/{train,test}/<stem>.png, by the record's split (names repeat across splits)
    isic_wsm  <out>/ISIC_WSM_labels/<stem>.png; any split (the builder splits by itself: configs `full`, `holdout`)

To build, the user puts the output dir and the downloaded images (for coco_ts also cocotext.v2.json) in one
folder, without the released label zip of the same set (two labels for one image fail the build), and passes
that folder as `--manual_dir`; `instructions` spells it out. The mlt_s and ist_s builders take a label's split
from the folder names below the manual dir, so the output dir's own name must not contain 'validation' (mlt_s)
or 'test' (ist_s). No builder reads an index or list file, so `finalize` writes nothing (it checks for clashes).
The inner folder names of the released COCO_TS, IST_S and ISIC_WSM label zips are not documented; the ones
above are those of the builders' dummy data and carry the folder-name words the builders match (mlt_s '_labels'
and 'train'/'validation', ist_s 'train'/'test', isic_wsm 'wsm' or 'label'; coco_ts matches file names only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from texrnet_jax.weak_labels.records import Record

LAYOUTS = ("flat", "coco_ts", "mlt_s", "ist_s", "isic_wsm")


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How one layout places labels (the matching rules are those of the set's builder in tfds_builders/).

    Attributes:
      folder: folder under the output dir, the top folder of the released label zip ('' for flat).
      suffixes: lower-case suffixes of the images the builder reads; () for any.
      prefix: start of the image file names the builder matches ('' for any).
      splits: {record split: sub-folder of `folder`}; None when the split does not enter the path (any is fine).
      split_word: a word that in the output dir's name would make the builder misread labels' splits.
      inputs: what else the manual dir must hold, for `instructions`.
      note: a last sentence for `instructions`.
    """

    folder: str = ""
    suffixes: tuple[str, ...] = ()
    prefix: str = ""
    splits: Mapping[str, str] | None = None
    split_word: str = ""
    inputs: str = ""
    note: str = ""


_TABLE = {
    "flat": _Layout(),
    "coco_ts": _Layout(
        folder="COCO_TS_labels",
        suffixes=(".jpg", ".jpeg"),
        prefix="COCO_train2014_",
        # The builder keeps only COCO-Text v2 `set` train/val images; the split itself comes from the json.
        splits={"train": "", "val": ""},
        inputs="train2014.zip (or the unpacked train2014/ folder) and cocotext.v2.json (or cocotext.v2.zip)",
    ),
    "mlt_s": _Layout(
        folder="MLT_S_labels",
        suffixes=(".jpg", ".jpeg", ".png", ".gif"),
        splits={"train": "training_labels", "val": "validation_labels", "validation": "validation_labels"},
        split_word="validation",
        inputs="ch8_training_images_1..8.zip and ch8_validation_images.zip (or folders unpacked under those names)",
    ),
    "ist_s": _Layout(
        folder="IST_Segmentation_labels",
        suffixes=(".jpg", ".jpeg"),
        splits={"train": "train", "test": "test"},
        split_word="test",
        inputs="ch4_training_images.zip and ch4_test_images.zip",
        note="The builder takes every .png in the manual dir for an IST_S label, so keep other PNGs out of it.",
    ),
    "isic_wsm": _Layout(
        folder="ISIC_WSM_labels",
        suffixes=(".jpg", ".jpeg", ".png"),
        inputs="the ISIC archive images (ISIC_<7 digits>.jpg, zips or folders)",
        note="Build isic_wsm/holdout instead for a 10% validation split.",
    ),
}


def _layout(layout: str) -> _Layout:
    if layout not in _TABLE:
        raise ValueError(f"unknown label layout {layout!r}; known layouts: {', '.join(LAYOUTS)}")
    return _TABLE[layout]


def label_path(layout: str, output_dir: str | Path, record: Record) -> Path:
    """Where the label of `record` goes: `<output_dir>/<folder>/<split folder>/<image stem>.png`.

    Raises:
      ValueError: for an unknown layout; for a record the layout cannot place (an image name or suffix the
        builder would not match, a split the layout has no place for), naming the image and why; for an output
        dir whose name would make the builder misread the splits.
    """
    spec = _layout(layout)
    name = PurePosixPath(record.image).name
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix.lower()
    why = ""
    if not stem:
        why = "it has no file name"
    elif spec.suffixes and suffix not in spec.suffixes:
        why = f"the {layout} builder reads only {'/'.join(spec.suffixes)} images"
    elif not name.startswith(spec.prefix):
        why = f"the {layout} builder matches only images named {spec.prefix}*"
    elif spec.splits is not None and record.split not in spec.splits:
        why = f"its split {record.split!r} is none of {', '.join(sorted(spec.splits))}, the splits {layout!r} places"
    if why:
        raise ValueError(f"cannot place the label of {record.image} ({record.source or 'no source'}): {why}")
    output_dir = Path(output_dir)
    if spec.split_word and spec.split_word in output_dir.absolute().name.lower():
        raise ValueError(
            f"output dir {output_dir}: the {layout} builder reads splits from folder names and would take every "
            f"label below a name containing {spec.split_word!r} for that split; choose another name"
        )
    sub = spec.splits[record.split] if spec.splits else ""
    return output_dir / spec.folder / sub / f"{stem}.png"


def finalize(layout: str, output_dir: str | Path, records: Sequence[Record]) -> list[Path]:
    """Writes whatever the layout needs besides the PNGs and returns the paths written; idempotent.

    No released archive has an index file that its builder reads, so this writes nothing and returns []. It
    checks that no two records share a label path (the later PNG would have replaced the earlier one).
    """
    seen: dict[Path, str] = {}
    clashes = []
    for record in records:
        path = label_path(layout, output_dir, record)
        if path in seen:
            clashes.append(f"{seen[path]} and {record.image} -> {path}")
        seen[path] = record.image
    if clashes:
        raise ValueError(f"{len(clashes)} labels written twice in layout {layout!r}: {'; '.join(clashes[:5])}")
    return []


def instructions(layout: str, output_dir: str | Path) -> str:
    """How to build the dataset from `output_dir`, for the log: the build command and what else it needs."""
    spec = _layout(layout)
    out = Path(output_dir).absolute()
    if not spec.folder:
        return (
            f"Labels are {out}/<image stem>.png; no TFDS builder reads this layout "
            f"(choose one of {', '.join(LAYOUTS[1:])} to get a folder that one reads)."
        )
    return " ".join(
        s
        for s in (
            f"Labels are in {out / spec.folder}, laid out as the released {layout} labels. To build the dataset, "
            f"put {spec.inputs} in {out.parent} next to {out.name}/ (without the released label zip), then run "
            f"`python -m tfds_builders.build {layout} --manual_dir={out.parent} --data_dir=~/tensorflow_datasets`.",
            spec.note,
        )
        if s
    )
