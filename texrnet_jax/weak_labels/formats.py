"""Readers of box annotations as users download them: COCO-Text v2, ICDAR15 / MLT gt_*.txt and a plain boxes JSON.

`read_annotations(fmt, annotations, images)` returns one `Record` per image, sorted by image name, and one-line
problem messages for everything it skipped (each names the file and the line, entry or id):

  coco_text   `cocotext.v2.json`: the `bbox` of every annotation, illegible ones as don't-care; boxes are
              clipped to the image's listed width and height. Images without annotations are kept.
  icdar       a folder of `gt_<stem>.txt` (or `<stem>.txt`) files, one quadrilateral per line; the image is the
              file `<stem>.<jpg|jpeg|png|gif|bmp>` in `images`. Transcription '###' is don't-care.
  boxes_json  `[{"image": "a.jpg", "boxes": [[x1, y1, x2, y2] or [x1, y1, x2, y2, x3, y3, ...], ...],
              "ignore": [...], "split": "train"}, ...]` ("ignore" and "split" optional; messages count entries
              from 0, as `data[i]`).

Degenerate boxes are skipped: non-finite coordinates, an axis-aligned box with x2 <= x1 or y2 <= y1 (COCO-Text:
w <= 0 or h <= 0), a quadrilateral or polygon under 1 px^2 (`polygon_area`; a self-intersecting one, such as a
bow-tie quadrilateral, which is kept as given, by the area of its convex hull). When two sources name the same
image, the first (in file order) is kept and the others are reported.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from texrnet_jax.weak_labels.geometry import box_polygon
from texrnet_jax.weak_labels.records import Record

__all__ = ["FORMATS", "IMAGE_EXTENSIONS", "MLT_SCRIPTS", "box_polygon", "polygon_area", "read_annotations"]

FORMATS = ("coco_text", "icdar", "boxes_json")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
MLT_SCRIPTS = frozenset(("Arabic", "Latin", "Chinese", "Japanese", "Korean", "Bangla", "Hindi", "Symbols", "Mixed",
                         "None"))
MIN_AREA = 1.0  # px^2: smaller boxes are degenerate
DONT_CARE = "###"


def polygon_area(points: np.ndarray) -> float:
    """The absolute shoelace area of a polygon `[N, 2]` (x, y); 0 for fewer than 3 points.

    For a self-intersecting polygon this is |difference| of its lobes' areas (0 for a symmetric bow-tie).
    """
    p = np.asarray(points, np.float64).reshape(-1, 2)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def read_annotations(fmt: str, annotations: str | os.PathLike, images: str | os.PathLike, *,
                     keep_empty: bool = True) -> tuple[list[Record], list[str]]:
    """Records of an annotation source and the problems met reading it.

    Args:
      fmt: one of `FORMATS`.
      annotations: `cocotext.v2.json` (coco_text), the folder of gt files (icdar) or the JSON file (boxes_json).
      images: the folder the image names are relative to; icdar searches it (non-recursively) for each gt
        file's image, the other formats name their images themselves and do not read it.
      keep_empty: keep records with neither boxes nor ignore regions (text-free images, all-zero labels).

    Returns:
      (records sorted by `image`, one-line messages of what was skipped, each naming the file and the line,
      entry or id).

    Raises:
      ValueError: unknown `fmt`, or an annotation source of which nothing can be read (malformed JSON, a JSON
        of the wrong shape, a gt folder without .txt files).
      FileNotFoundError: `annotations` (or, for icdar, `images`) does not exist.
    """
    if fmt not in _READERS:
        raise ValueError(f"unknown annotation format {fmt!r}: expected one of {list(FORMATS)}")
    path = pathlib.Path(annotations)
    if not path.exists():
        raise FileNotFoundError(f"{fmt} annotations not found: {str(annotations)!r}")
    problems: list[str] = []
    records: list[Record] = []
    first: dict[str, Record] = {}
    for record in _READERS[fmt](path, pathlib.Path(images), problems):
        if record.image in first:
            problems.append(f"{record.source}: duplicate image {record.image!r} (first in "
                            f"{first[record.image].source}) (skipped)")
            continue
        first[record.image] = record
        if keep_empty or record.boxes or record.ignore:
            records.append(record)
    records.sort(key=lambda r: r.image)
    return records, problems


# ----------------------------------------------------------------------------------------------------------------
# Shared checks.


def _show(value: Any, limit: int = 80) -> str:
    """`value` as the file wrote it (JSON), cut to `limit` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cross(o: Sequence[float], a: Sequence[float], b: Sequence[float]) -> float:
    """z of (a - o) x (b - o): > 0 when o, a, b turn counter-clockwise (in x-right, y-up axes)."""
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def _self_intersecting(p: np.ndarray) -> bool:
    """Whether two non-adjacent edges of the closed polygon `p` `[N, 2]` cross (strictly)."""
    n = len(p)
    for i in range(n):
        a, b = p[i], p[(i + 1) % n]
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            c, d = p[j], p[(j + 1) % n]
            if (_cross(a, b, c) * _cross(a, b, d) < 0) and (_cross(c, d, a) * _cross(c, d, b) < 0):
                return True
    return False


def _hull_area(p: np.ndarray) -> float:
    """Area of the convex hull of the points `p` `[N, 2]` (monotone chain)."""
    pts = sorted(map(tuple, p.tolist()))
    if len(pts) < 3:
        return 0.0

    def half(seq: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for q in seq:
            while len(out) >= 2 and _cross(out[-2], out[-1], q) <= 0:
                out.pop()
            out.append(q)
        return out

    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    return polygon_area(np.array(hull))


def _degenerate(p: np.ndarray) -> str | None:
    """Why the polygon `p` `[N, 2]` is degenerate, or None.

    Degenerate: a non-finite coordinate, or an area below `MIN_AREA`. The area is the shoelace area; for a
    self-intersecting polygon (a bow-tie quadrilateral, kept as given), whose shoelace area can be 0, it is the
    area of its convex hull.
    """
    if not np.all(np.isfinite(p)):
        return "non-finite coordinates"
    area = _hull_area(p) if _self_intersecting(p) else polygon_area(p)
    return None if area >= MIN_AREA else f"area {area:.3g} px^2"


# ----------------------------------------------------------------------------------------------------------------
# coco_text


def _load_json(path: pathlib.Path) -> Any:
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a JSON file")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a valid JSON file ({e})") from e


def _coco_text(path: pathlib.Path, images: pathlib.Path, problems: list[str]) -> list[Record]:
    """COCO-Text v2: `imgs` (id -> file_name, width, height, set) and `anns` (id -> image_id, bbox, legibility).

    Every annotation's `bbox` [x, y, w, h] becomes an axis-aligned box (its `mask` polygon is not used), an
    illegible one goes to `ignore`; `imgToAnns` is not needed, as each annotation names its image.
    """
    del images
    data = _load_json(path)
    name = path.name
    if not isinstance(data, dict) or not isinstance(data.get("imgs"), dict) or not isinstance(data.get("anns"), dict):
        raise ValueError(f"{path}: expected a COCO-Text v2 JSON object with 'imgs' and 'anns' objects")
    by_id: dict[str, tuple[Record, float | None, float | None]] = {}
    for key, img in data["imgs"].items():
        source = f"{name} image {key}"
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str) or not img["file_name"]:
            problems.append(f"{source}: no 'file_name' (skipped)")
            continue
        split = img.get("set", "")
        width, height = img.get("width"), img.get("height")
        size = [v if _is_number(v) and math.isfinite(v) and v > 0 else None for v in (width, height)]
        by_id[str(key)] = (Record(img["file_name"], [], [], split if isinstance(split, str) else "", source), *size)
    for key, ann in data["anns"].items():
        where = f"{name} ann {key}"
        if not isinstance(ann, dict):
            problems.append(f"{where}: not an object (skipped)")
            continue
        image_id = ann.get("image_id")
        if str(image_id) not in by_id:
            problems.append(f"{where}: image_id {_show(image_id)} is not in 'imgs' (skipped)")
            continue
        record, width, height = by_id[str(image_id)]
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) and math.isfinite(v) for v in bbox)):
            problems.append(f"{where}: bbox {_show(bbox)} is not 4 finite numbers [x, y, w, h] (skipped)")
            continue
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            problems.append(f"{where}: degenerate bbox {_show(bbox)} (skipped)")
            continue
        x1, y1, x2, y2 = x, y, x + w, y + h
        if width is not None:
            x1, x2 = max(x1, 0.0), min(x2, float(width))
        if height is not None:
            y1, y2 = max(y1, 0.0), min(y2, float(height))
        if x2 <= x1 or y2 <= y1:
            size = f"{_show(width)}x{_show(height)}"
            problems.append(f"{where}: bbox {_show(bbox)} is outside the {size} image {record.image} (skipped)")
            continue
        (record.ignore if ann.get("legibility") == "illegible" else record.boxes).append(box_polygon(x1, y1, x2, y2))
    return [record for record, _, _ in by_id.values()]


# ----------------------------------------------------------------------------------------------------------------
# icdar


def _image_index(images: pathlib.Path) -> dict[str, list[str]]:
    """Stem -> sorted names of the image files (`IMAGE_EXTENSIONS`, any case) directly in `images`."""
    index: dict[str, list[str]] = {}
    with os.scandir(images) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS and entry.is_file():
                index.setdefault(stem, []).append(entry.name)
    return {stem: sorted(names) for stem, names in index.items()}


def _icdar_line(line: str, where: str, record: Record, problems: list[str]) -> None:
    """One gt line `x1,y1,...,x4,y4[,script],transcription` into `record.boxes` / `record.ignore`."""
    fields = line.split(",")
    try:
        if len(fields) < 8:
            raise ValueError
        coords = [float(v) for v in fields[:8]]
    except ValueError:
        shown = line if len(line) <= 80 else line[:77] + "..."
        problems.append(f"{where}: expected 8 coordinates, got {shown!r} (skipped)")
        return
    quad = np.array(coords, np.float64).reshape(4, 2)
    why = _degenerate(quad)
    if why:
        problems.append(f"{where}: degenerate quadrilateral ({why}) (skipped)")
        return
    # MLT: a script name, then the transcription; ICDAR15: the transcription. Either may contain commas.
    rest = fields[9:] if len(fields) >= 10 and fields[8].strip() in MLT_SCRIPTS else fields[8:]
    transcription = ",".join(rest).strip()
    (record.ignore if transcription == DONT_CARE else record.boxes).append(quad)


def _icdar(path: pathlib.Path, images: pathlib.Path, problems: list[str]) -> list[Record]:
    """ICDAR15 / MLT: one `gt_<stem>.txt` (or `<stem>.txt`) per image; one quadrilateral per line."""
    if not path.is_dir():
        raise ValueError(f"{path}: expected the folder of gt_<image>.txt files")
    if not images.is_dir():
        raise FileNotFoundError(f"icdar images folder not found: {str(images)!r}")
    gt_files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".txt" and p.is_file())
    if not gt_files:
        raise ValueError(f"{path}: no gt_<image>.txt files in the folder")
    index = _image_index(images)
    records = []
    for gt in gt_files:
        stems = [gt.stem[3:], gt.stem] if gt.stem.startswith("gt_") else [gt.stem]
        stem = next((s for s in stems if s in index), None)
        if stem is None:
            exts = "|".join(e[1:] for e in IMAGE_EXTENSIONS)
            problems.append(f"{gt.name}: no image {stems[0]}.({exts}) in {images} (skipped)")
            continue
        if len(index[stem]) > 1:
            problems.append(f"{gt.name}: several images named {stem} ({', '.join(index[stem])}), "
                            f"using {index[stem][0]}")
        try:
            text = gt.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            problems.append(f"{gt.name}: not UTF-8 text ({e}) (skipped)")
            continue
        record = Record(index[stem][0], [], [], "", gt.name)
        for number, line in enumerate(text.split("\n"), 1):
            line = line.strip()
            if line:
                _icdar_line(line, f"{gt.name} line {number}", record, problems)
        records.append(record)
    return records


# ----------------------------------------------------------------------------------------------------------------
# boxes_json


def _json_box(value: Any, where: str, problems: list[str]) -> np.ndarray | None:
    """`[x1, y1, x2, y2]` or a flat polygon `[x1, y1, x2, y2, x3, y3, ...]` -> `[N, 2]`, or None (a problem)."""
    if not (isinstance(value, list) and all(_is_number(v) for v in value)
            and (len(value) == 4 or (len(value) >= 6 and len(value) % 2 == 0))):
        problems.append(f"{where}: expected [x1, y1, x2, y2] or a flat polygon of >= 6 numbers (even count), "
                        f"got {_show(value)} (skipped)")
        return None
    if len(value) == 4:
        x1, y1, x2, y2 = (float(v) for v in value)
        if not all(math.isfinite(v) for v in value) or x2 <= x1 or y2 <= y1:
            problems.append(f"{where}: degenerate box {_show(value)} (needs x2 > x1, y2 > y1) (skipped)")
            return None
        return box_polygon(x1, y1, x2, y2)
    polygon = np.array(value, np.float64).reshape(-1, 2)
    why = _degenerate(polygon)
    if why:
        problems.append(f"{where}: degenerate polygon ({why}) (skipped)")
        return None
    return polygon


def _boxes_json(path: pathlib.Path, images: pathlib.Path, problems: list[str]) -> list[Record]:
    """A JSON list of `{"image", "boxes", "ignore"?, "split"?}`; entries are numbered from 0, as in `data[i]`."""
    del images
    data = _load_json(path)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of {{\"image\": ..., \"boxes\": [...]}} objects, "
                         f"got {type(data).__name__}")
    name = path.name
    records = []
    for i, entry in enumerate(data):
        where = f"{name} entry {i}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: not an object (skipped)")
            continue
        image = entry.get("image")
        if not isinstance(image, str) or not image:
            problems.append(f"{where}: no 'image' (skipped)")
            continue
        split = entry.get("split", "")
        if not isinstance(split, str):
            problems.append(f"{where}: 'split' {_show(split)} is not a string (skipped)")
            continue
        lists = {key: entry.get(key, []) for key in ("boxes", "ignore")}
        bad = [key for key, value in lists.items() if not isinstance(value, list)]
        if bad:
            problems.append(f"{where}: {bad[0]!r} is not a list (skipped)")
            continue
        parsed: dict[str, list[np.ndarray]] = {}
        for key, values in lists.items():
            polygons = (_json_box(v, f"{where} {key}[{k}]", problems) for k, v in enumerate(values))
            parsed[key] = [p for p in polygons if p is not None]
        records.append(Record(image, parsed["boxes"], parsed["ignore"], split, where))
    return records


_READERS: dict[str, Callable[[pathlib.Path, pathlib.Path, list[str]], list[Record]]] = {
    "coco_text": _coco_text,
    "icdar": _icdar,
    "boxes_json": _boxes_json,
}
