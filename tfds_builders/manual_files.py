"""Files of a manual directory, inside and outside archives, and checks that the needed ones are there.

The builders of the real text-segmentation sets (textseg, total_text, coco_ts, mlt_s, icdar13_fst, ist_s,
isic_wsm) all read a manual directory that may hold the archives as downloaded (`.zip`, `.tar.gz`, `.tgz`,
`.tar`), folders someone already unpacked, or a mix. `ManualFiles` walks that directory once and presents
every plain file *and every member of every archive* as an `Entry`, so a builder selects its inputs by file
name pattern and never depends on a top-level folder name (the same archive is unpacked under different
top folder names by different projects' loaders).

Reading follows the cost model of each container: zip members and plain files are read on demand (random
access is cheap), tar members are read in one streaming pass per container (`ManualFiles.read_many`), so a
gzipped tar is decompressed once per split instead of once per member.

Everything here uses `etils.epath`, `zipfile` and `tarfile`; no TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence

from etils import epath

_ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
# At most this many names are listed in one error message; the count of the rest follows.
_MAX_LISTED = 20


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
            + f"\nIt contains: {listing(found) or 'nothing'}. See the builder's MANUAL_DOWNLOAD_INSTRUCTIONS."
        )


def raise_if_missing(what: str, names: Sequence[str]) -> None:
    """Raises FileNotFoundError listing `names` (e.g. images that a label refers to) when there are any."""
    if names:
        raise FileNotFoundError(f"{len(names)} {what}: {listing(sorted(names))}")


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
        raise ValueError(f"two files for the same example: {listing(clashes)}")
    return out


def listing(names: Sequence[str]) -> str:
    """`names` joined by commas for an error message: at most `_MAX_LISTED` of them, then the count of the rest."""
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f", ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")
