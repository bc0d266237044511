"""Helpers of the `make_dummy_data.py` scripts and of the builder tests (no TensorFlow).

The dummy-data helpers write tiny archives in the real layout, byte-identical on reruns; the test helpers
prepare a builder from a manual dir as array_record and read it back with `as_data_source`.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from tfds_builders.manual_files import ManualFiles

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
