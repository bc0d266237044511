"""Shared pieces of the manual-download builders: archive access, label checks, encoding, character classes.

The builders of the real text-segmentation sets (textseg, total_text, coco_ts, mlt_s, icdar13_fst, ist_s,
isic_wsm) all read a manual directory that may hold the archives as downloaded (`.zip`, `.tar.gz`, `.tgz`,
`.tar`), folders someone already unpacked, or a mix. `ManualFiles` walks that directory once and presents
every plain file *and every member of every archive* as an `Entry`, so a builder selects its inputs by file
name pattern and never depends on a top-level folder name (datasets.md section 1, general rule).

Reading follows the cost model of each container: zip members and plain files are read on demand (random
access is cheap), tar members are read in one streaming pass per container (`ManualFiles.read_many`), so a
gzipped tar is decompressed once per split instead of once per member.

`ManualSegmentationBuilder` is the base class: a subclass plans its splits (`_plan`: which image goes with
which label files) and converts one sample (`_label_features`); the base class checks for missing inputs,
validates and encodes images, and writes the canonical features:

    image  Image(shape=(None, None, 3))   original JPEG bytes when the source is an RGB JPEG, else lossless PNG
    mask   Image(shape=(None, None, 1))   PNG, 0 background, 1 text/foreground, 255 ignore
    id     Text                           the file stem (never a local path)

Everything here uses `etils.epath`, `zipfile`, `tarfile` and PIL; no TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import io
import re
import string
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from PIL import Image

# Class of anything that is not an ASCII digit or letter, as in the reference glyph classifier (37 classes).
OTHER_CHAR_CLASS = 36
_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
# At most this many names are listed in one error message; the count of the rest follows.
_MAX_LISTED = 20


# ---------------------------------------------------------------------------------------------------------------
# Files in a manual directory, inside and outside archives.


@dataclasses.dataclass(frozen=True, order=True)
class Entry:
    """One file of the manual directory: a plain file or a member of an archive.

    Attributes:
      container: path of the archive relative to the manual dir, or '' for a plain file.
      name: member name inside the archive, or the path relative to the manual dir for a plain file.
    """

    container: str
    name: str

    @property
    def display(self) -> str:
        """Human-readable location for error messages, e.g. 'image.tar.gz:image/a00001.jpg'."""
        return f"{self.container}:{self.name}" if self.container else self.name

    @property
    def basename(self) -> str:
        return self.name.rstrip("/").rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        """File name without its last suffix ('a00001_maskfg.png' -> 'a00001_maskfg')."""
        base = self.basename
        return base.rsplit(".", 1)[0] if "." in base else base

    @property
    def suffix(self) -> str:
        """Lower-case last suffix with the dot ('.jpg'), '' when there is none."""
        base = self.basename
        return "." + base.rsplit(".", 1)[1].lower() if "." in base else ""

    @property
    def folders(self) -> tuple[str, ...]:
        """Lower-case names of the enclosing folders and archive, outermost first, without archive suffixes.

        Builders use these to tell e.g. training from validation files whose names collide.
        """
        parts = [p for p in self.container.split("/") if p] + self.name.split("/")[:-1]
        return tuple(_strip_archive_suffix(p).lower() for p in parts if p)


def _strip_archive_suffix(name: str) -> str:
    for suffix in _ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _walk(folder: epath.Path) -> Iterator[epath.Path]:
    """Every file below `folder`, depth first in name order (epath has no recursive glob for local paths)."""
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path


def _is_tar_member(entry: Entry) -> bool:
    return bool(entry.container) and not entry.container.lower().endswith(".zip")


def _is_archive(path: epath.Path) -> bool:
    return path.name.lower().endswith(_ARCHIVE_SUFFIXES)


class ManualFiles:
    """Every file of a manual directory, with archives expanded virtually (never extracted to disk).

    Attributes:
      root: the manual directory.
      entries: all files, sorted; archives appear only through their members, not as files themselves.
    """

    def __init__(self, root: epath.PathLike):
        self.root = epath.Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"manual directory {self.root} does not exist")
        self._zips: dict[str, zipfile.ZipFile] = {}
        entries = []
        for path in _walk(self.root):
            rel = path.relative_to(self.root).as_posix()
            if _is_archive(path):
                entries.extend(Entry(rel, name) for name in self._list_archive(rel))
            else:
                entries.append(Entry("", rel))
        # Zips made on macOS carry `__MACOSX/._name` resource forks that look like images but are not.
        self.entries: list[Entry] = sorted(
            e for e in entries if "__macosx" not in e.folders and not e.basename.startswith("._")
        )

    def _list_archive(self, rel: str) -> list[str]:
        path = self.root / rel
        try:
            if rel.lower().endswith(".zip"):
                return [i.filename for i in self._zip(rel).infolist() if not i.is_dir()]
            # Streaming mode reads headers in order; for .tar.gz this decompresses the archive once.
            with path.open("rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
                return [m.name for m in tar if m.isfile()]
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
            raise ValueError(f"cannot read archive {path}: {e}") from e

    def _zip(self, rel: str) -> zipfile.ZipFile:
        if rel not in self._zips:
            self._zips[rel] = zipfile.ZipFile((self.root / rel).open("rb"))
        return self._zips[rel]

    def select(self, predicate: Callable[[Entry], bool]) -> list[Entry]:
        """The entries for which `predicate` is true, sorted."""
        return [e for e in self.entries if predicate(e)]

    def read(self, entry: Entry) -> bytes:
        """Bytes of one entry. Cheap for plain files and zip members; tar members use `read_many` instead."""
        if not entry.container:
            return (self.root / entry.name).read_bytes()
        if entry.container.lower().endswith(".zip"):
            return self._zip(entry.container).read(entry.name)
        return dict(self.read_many([entry]))[entry]

    def read_many(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        """(entry, bytes) for every requested entry, in storage order: one streaming pass per tar archive."""
        by_container: dict[str, set[str]] = collections.defaultdict(set)
        for e in entries:
            by_container[e.container].add(e.name)
        for container in sorted(by_container):
            names = by_container[container]
            if not _is_tar_member(Entry(container, "")):
                for name in sorted(names):
                    entry = Entry(container, name)
                    yield entry, self.read(entry)
                continue
            remaining = set(names)
            with (self.root / container).open("rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
                for member in tar:
                    if member.name in remaining:
                        remaining.discard(member.name)
                        yield Entry(container, member.name), tar.extractfile(member).read()
                        if not remaining:
                            break
            if remaining:
                raise FileNotFoundError(f"{container}: members vanished while reading: {sorted(remaining)[:5]}")

    def lookup(self, entries: Iterable[Entry]) -> Callable[[Entry], bytes]:
        """A reader for `entries`: members of tar archives are loaded now in one pass, the rest on demand.

        Use it for the small side of a join (labels), and `read_many` to stream the large side (images).
        """
        entries = list(entries)
        preloaded = dict(self.read_many(e for e in entries if _is_tar_member(e)))

        def read(entry: Entry) -> bytes:
            return preloaded[entry] if entry in preloaded else self.read(entry)

        return read

    def close(self) -> None:
        for z in self._zips.values():
            z.close()
        self._zips.clear()


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One input a builder needs, for the 'missing input' error.

    Attributes:
      description: what to put where, e.g. "image.tar.gz (or a folder) with the <id>.jpg images".
      predicate: true for entries that satisfy it; the requirement is met when at least one entry does.
    """

    description: str
    predicate: Callable[[Entry], bool]


def check_requirements(files: ManualFiles, requirements: Sequence[Requirement]) -> None:
    """Raises FileNotFoundError naming *every* unmet requirement at once."""
    missing = [r.description for r in requirements if not any(r.predicate(e) for e in files.entries)]
    if missing:
        found = sorted({e.container or e.name.split("/")[0] for e in files.entries})
        raise FileNotFoundError(
            f"manual_dir {files.root} lacks:\n  - "
            + "\n  - ".join(missing)
            + f"\nIt contains: {_listing(found) or 'nothing'}. See the builder's MANUAL_DOWNLOAD_INSTRUCTIONS."
        )


def raise_if_missing(what: str, names: Sequence[str]) -> None:
    """Raises FileNotFoundError listing `names` (e.g. images that a label refers to) when there are any."""
    if names:
        raise FileNotFoundError(f"{len(names)} {what}: {_listing(sorted(names))}")


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


# ---------------------------------------------------------------------------------------------------------------
# Decoding, validation and encoding.


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
            f"{entry.display}: label values {_listing([str(v) for v in bad])} outside the documented set "
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


# ---------------------------------------------------------------------------------------------------------------
# Characters and ids.


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


# ---------------------------------------------------------------------------------------------------------------
# Base builder.


@dataclasses.dataclass(frozen=True)
class Sample:
    """One planned example: its id, its image and the label files it needs.

    Attributes:
      id: example id and key (`example_id` of the image's stem).
      image: the image entry.
      labels: named label entries, e.g. {'mask': ..., 'anno': ...}; what the names mean is up to the builder.
    """

    id: str
    image: Entry
    labels: Mapping[str, Entry]


def image_features(image_format: str) -> dict[str, tfds.features.FeatureConnector]:
    """The canonical `image`, `mask` and `id` features."""
    return {
        "image": tfds.features.Image(shape=(None, None, 3), encoding_format=image_format),
        "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
        "id": tfds.features.Text(),
    }


def char_features() -> dict[str, tfds.features.FeatureConnector]:
    """The `char_boxes` ([N, 4] float32, [y1, x1, y2, x2] pixels) and `char_labels` ([N] int32) features."""
    return {
        "char_boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
        "char_labels": tfds.features.Tensor(shape=(None,), dtype=np.int32),
    }


class ManualSegmentationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders that read a manual directory; subclasses implement `_plan` and `_label_features`.

    Attributes:
      IMAGE_FORMAT: declared `encoding_format` of `image` ('jpeg' when the sources are mostly JPEG).
      EXTRA_FEATURES: features beyond image/mask/id, e.g. `char_features()`.
    """

    IMAGE_FORMAT = "jpeg"
    EXTRA_FEATURES: Mapping[str, tfds.features.FeatureConnector] = {}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({**image_features(self.IMAGE_FORMAT), **self.EXTRA_FEATURES}),
            supervised_keys=("image", "mask"),
        )

    def _requirements(self) -> Sequence[Requirement]:
        """Inputs that must be present in the manual dir (checked all at once before anything is read)."""
        raise NotImplementedError

    def _plan(self, files: ManualFiles) -> dict[str, list[Sample]]:
        """{split: samples}; raise (via `raise_if_missing`) when a label has no image or vice versa."""
        raise NotImplementedError

    def _label_features(
        self, sample: Sample, read: Callable[[Entry], bytes], image_hw: tuple[int, int]
    ) -> dict[str, object]:
        """The `mask` (PNG bytes) and any extra features of one sample; must check sizes and values."""
        raise NotImplementedError

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        files = ManualFiles(dl_manager.manual_dir)
        check_requirements(files, self._requirements())
        plan = self._plan(files)
        for split, samples in plan.items():
            if not samples:
                raise FileNotFoundError(f"split {split!r} would be empty: no usable image/label pair in {files.root}")
            ids = collections.Counter(s.id for s in samples)
            raise_if_missing(f"ids occur twice in split {split!r}", [i for i, n in ids.items() if n > 1])
            logging.info("%s: %d examples", split, len(samples))
        return {split: self._generate_examples(files, samples) for split, samples in plan.items()}

    def _generate_examples(self, files: ManualFiles, samples: Sequence[Sample]):
        read = files.lookup(e for s in samples for e in s.labels.values())
        by_image = {s.image: s for s in samples}
        # Images are the large side of the join: stream them in storage order, one pass per tar archive.
        for entry, data in files.read_many(by_image):
            sample = by_image[entry]
            image, image_hw = encode_rgb(entry, data)
            yield sample.id, {"image": image, "id": sample.id, **self._label_features(sample, read, image_hw)}


# Raw values of the Bonechi et al. weak labels (COCO_TS, MLT_S, IST_S, ISIC_WSM): already canonical.
WEAK_LABEL_MAPPING = {0: 0, 1: 1, 255: 255}


class WeakLabelBuilder(ManualSegmentationBuilder, skip_registration=True):
    """Base of the builders whose labels are PNG maps with values 0 (background), 1 (text/lesion), 255 (uncertain).

    Samples carry one label entry, `labels['mask']`; its values are checked and stored unchanged.
    """

    def _label_features(self, sample, read, image_hw):
        entry = sample.labels["mask"]
        label = decode_label(entry, read(entry))
        check_same_size(entry, label.shape, sample.image, image_hw)
        return {"mask": png_bytes(map_values(entry, label, WEAK_LABEL_MAPPING))}


def find_by_stem(entries: Iterable[Entry], key: Callable[[Entry], str] = lambda e: e.stem) -> dict[str, Entry]:
    """{key(entry): entry}; raises ValueError listing keys that occur in more than one entry."""
    out: dict[str, Entry] = {}
    clashes = []
    for e in entries:
        k = key(e)
        if k in out:
            clashes.append(f"{out[k].display} and {e.display}")
        out[k] = e
    if clashes:
        raise ValueError(f"two files for the same example: {_listing(clashes)}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# Helpers of the `make_dummy_data.py` scripts (tiny archives in the real layout, byte-identical on reruns).


def write_archive(path: epath.PathLike, members: Mapping[str, bytes]) -> None:
    """Writes `members` ({inner name: bytes}) as a .zip or .tar.gz, with fixed timestamps so reruns match."""
    path = epath.Path(path)
    buffer = io.BytesIO()
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in members.items():
                z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    else:
        with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())


def jpeg_bytes(array: np.ndarray, quality: int = 75) -> bytes:
    """JPEG of a uint8 [H, W] or [H, W, 3] array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, format="jpeg", quality=quality)
    return buffer.getvalue()


def fake_photo(seed: int, height: int, width: int) -> np.ndarray:
    """A small smooth random RGB image; different seeds give different images (splits must not repeat)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 8 + 2, width // 8 + 2, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))


# ---------------------------------------------------------------------------------------------------------------
# Helpers of the builder tests.


def prepare_for_test(builder: tfds.core.DatasetBuilder, manual_dir: epath.PathLike) -> dict[str, list[dict]]:
    """Prepares `builder` from `manual_dir` as array_record and returns {split: decoded examples}."""
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir), try_download_gcs=False),
    )
    out = {}
    for split in builder.info.splits:
        source = builder.as_data_source(split=split)
        out[split] = [source[i] for i in range(len(source))]
    return out


def by_id(examples: Iterable[dict]) -> dict[str, dict]:
    """{id as str: example} of decoded examples."""
    return {ex["id"].decode() if isinstance(ex["id"], bytes) else str(ex["id"]): ex for ex in examples}


def copy_replacing(
    src_dir: epath.PathLike,
    dst_dir: epath.PathLike,
    archive: str,
    replace: Mapping[str, bytes] | None = None,
    drop: Iterable[str] = (),
) -> None:
    """Copies a dummy manual dir, rewriting `archive` with members replaced, added (`replace`) or removed (`drop`)."""
    import shutil  # test helper only

    shutil.copytree(src_dir, dst_dir)
    files = ManualFiles(src_dir)
    drop = set(drop)
    members = {e.name: data for e, data in files.read_many(files.select(lambda e: e.container == archive))}
    members = {name: data for name, data in members.items() if name not in drop}
    write_archive(epath.Path(dst_dir) / archive, {**members, **(replace or {})})
