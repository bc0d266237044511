"""Input pipelines: `tfds.data_source` (array_record, no TensorFlow) read through grain.

* `get_builder`: resolves `config.data.name`, builds datasets that need no manual download on first use,
  and otherwise fails with the exact build command.
* `train_iterator`: seeded shuffle that reshuffles every epoch, this process's slice of the records, the
  reference augmentation, fixed-size batches (remainder dropped), optional worker processes. The iterator is
  checkpointable (`get_state`/`set_state`) and saved with the model.
* `eval_examples`: every example of a split in order, this process's slice, never dropping any.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np

from texrnet_jax import preprocessing


def _data_dir(data_cfg: Mapping[str, Any]) -> str | None:
    return data_cfg["data_dir"] or None


def get_builder(data_cfg: Mapping[str, Any]):
    """The prepared TFDS builder for `config.data.name`, preparing it first when that needs no download."""
    import tensorflow_datasets as tfds

    import tfds_builders  # noqa: F401  (registers the project's builders)
    from tfds_builders import build

    name = data_cfg["name"]
    try:
        builder = tfds.builder(name, data_dir=_data_dir(data_cfg))
    except Exception as e:  # tfds raises several types for unknown names/configs
        # tfds appends the whole catalogue (hundreds of lines) to its message; its first line names the problem.
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ValueError(f"config.data.name={name!r} is not a known dataset: {first}") from None
    if builder.is_prepared():
        return builder
    if data_cfg["auto_prepare"] and not builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        if jax.process_index() == 0:
            build.prepare(name, data_dir=_data_dir(data_cfg))
        _barrier("prepare_dataset")
        return tfds.builder(name, data_dir=_data_dir(data_cfg))
    raise FileNotFoundError(
        f"dataset {name!r} is not prepared in {builder.data_dir}; build it first with: "
        f"python -m tfds_builders.build {name} --manual_dir=<downloads> --data_dir={_data_dir(data_cfg) or '<dir>'}")


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def data_source(data_cfg: Mapping[str, Any], split: str, skip_decoding: Sequence[str] = ()):
    """Random-access source of `split`; a one-line error names the split when it does not exist.

    Features named in `skip_decoding` come back as their encoded bytes (no decoding cost).
    """
    import tensorflow_datasets as tfds

    builder = get_builder(data_cfg)
    # TFDS split expressions such as 'train+val' or 'train[:90%]': check every named part.
    names = [part.split("[")[0].strip() for part in split.split("+")]
    unknown = [n for n in names if n not in builder.info.splits]
    if unknown:
        raise ValueError(f"split {split!r} of dataset {data_cfg['name']!r} names {unknown}; it has "
                         f"{sorted(builder.info.splits)}")
    decoders = {name: tfds.decode.SkipDecoding() for name in skip_decoding if name in builder.info.features}
    return builder.as_data_source(split=split, decoders=decoders or None)


def resolve_num_workers(requested: int) -> int:
    """`config.data.num_workers`; -1 (the default) sizes it to this host.

    On the CPU backend that is 0: the model's step needs every core, and the main process's two reader threads
    prefetch. With an accelerator it is one worker per CPU core less one (the main process feeds the device), at
    most 32. One worker delivers about 1 / (CPU time per image) images/s (`bench/bench_input_pipeline.py`), so a
    host needs `step images/s / per-worker images/s` workers; `docs/benchmarks.md` has the figures per config.
    """
    requested = int(requested)
    if requested >= 0:
        return requested
    if jax.default_backend() == "cpu":
        return 0
    return max(1, min(32, (os.cpu_count() or 2) - 1))


def train_iterator(data_cfg: Mapping[str, Any], batch_size: int, seed: int, max_char_boxes: int = 0,
                   max_word_boxes: int = 0, with_mask: bool = True) -> grain.DatasetIterator:
    """Infinite iterator of training batches for this process.

    Args:
        data_cfg: `config.data`.
        batch_size: examples per batch on this process (global batch / process count).
        seed: shuffle and augmentation seed; the same seed gives the same stream.
        max_char_boxes: if > 0, batches also carry each crop's character boxes for the glyph loss, padded to
            this many per image: `char_boxes` `[B, K, 4]` float32, `char_labels` `[B, K]` int32, `char_valid`
            `[B, K]` bool. The dataset must have the `char_boxes`/`char_labels` features.
        max_word_boxes: if > 0, batches also carry each crop's word boxes for box supervision (`box_losses`),
            grown by `data_cfg.word_box_pad` source pixels and padded to this many per image: `word_boxes`
            `[B, K, 4]` float32 (not clipped to the crop), `word_valid` and `word_ignore` `[B, K]` bool. The
            dataset must have the `word_boxes` feature.
        with_mask: False leaves the mask out of the batches and skips decoding it (box supervision).

    Returns:
        A checkpointable iterator of `{'image': [B, S, S, 3] float32, 'mask': [B, S, S] int32, ...}`; with
        `data_cfg.uint8_batches` (and the 'images' sampler) `{'image': uint8, 'image_hw': [B, 2] int32, 'mask': uint8}`,
        which `preprocessing.normalize_batch` (the train step) turns into the float32 batch.
    """
    import tensorflow_datasets as tfds

    # Image features that training does not read (e.g. TextSeg's effect_mask) are not decoded.
    features = get_builder(data_cfg).info.features
    unused = [k for k, f in features.items() if k not in ("image", "mask") and isinstance(f, tfds.features.Image)]
    if not with_mask or data_cfg.get("train_labels", ""):  # box supervision, or weak labels from a folder
        unused.append("mask")
    # The image and mask are read encoded and decoded by the augmentation (`preprocessing.decode_features`; OpenCV by
    # default, whatever TFDS would pick).
    decoded = {k: (3 if k == "image" else 1) for k in ("image", "mask") if k in features and k not in unused}
    source = data_source(data_cfg, data_cfg["train_split"], skip_decoding=unused + list(decoded))
    backend = data_cfg.get("augment_backend", "opencv")
    if max_char_boxes:
        if "char_boxes" not in features or "char_labels" not in features:
            raise ValueError(f"the glyph loss needs character boxes, but dataset {data_cfg['name']!r} has no "
                             f"char_boxes/char_labels features (set --config.loss.glyph=0)")
    if max_word_boxes and "word_boxes" not in features:
        raise ValueError(f"box supervision needs word boxes, but dataset {data_cfg['name']!r} has no word_boxes "
                         f"feature (set --config.loss.box_supervision=False)")
    if max_word_boxes and data_cfg.get("sampler", "images") != "images":
        raise ValueError(f"box supervision trains on whole-image crops: set config.data.sampler='images', not "
                         f"{data_cfg['sampler']!r}")
    ds = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
    if data_cfg.get("train_labels", ""):  # weak labels (`--mode=label`) in place of the dataset's masks
        ds = ds.map(LabelsFromFolder(data_cfg["train_labels"], decoded, backend))
        decoded = {}  # LabelsFromFolder decodes them
    if data_cfg.get("sampler", "images") == "box_crops":  # BF-Net: one crop around a word box per example
        if "word_boxes" not in features:
            raise ValueError(f"config.data.sampler='box_crops' needs word boxes, but dataset {data_cfg['name']!r} "
                             f"has no word_boxes feature")
        from texrnet_jax.weak_labels.crops import BoxCropAugment

        ds = ds.random_map(BoxCropAugment(data_cfg["crop_size"], data_cfg["box_margin"], data_cfg["box_jitter"],
                                          data_cfg["text_free_fraction"], data_cfg.get("box_tile_aspect", 0.0),
                                          data_cfg["mean"], data_cfg["std"],
                                          photometric=data_cfg.get("photometric", False),
                                          ignore_label=data_cfg["ignore_label"], decode=decoded,
                                          backend=backend))
    else:
        ds = ds.random_map(preprocessing.TrainAugment(data_cfg["scale_range"], data_cfg["crop_size"],
                                                      data_cfg["ignore_label"], data_cfg["mean"], data_cfg["std"],
                                                      max_char_boxes=max_char_boxes,
                                                      photometric=data_cfg.get("photometric", False),
                                                      max_word_boxes=max_word_boxes,
                                                      word_box_pad=data_cfg.get("word_box_pad", 2.0),
                                                      with_mask=with_mask, backend=backend,
                                                      uint8_output=data_cfg.get("uint8_batches", False),
                                                      decode=decoded))
    # Slice after the (lazy) augmentation: its randomness is keyed by the global index, so every process count
    # sees the same augmented examples; each process still decodes and augments only its own share.
    ds = ds[jax.process_index()::jax.process_count()]
    ds = ds.batch(batch_size, drop_remainder=True)
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=max(1, data_cfg["prefetch"])))
    num_workers = resolve_num_workers(data_cfg["num_workers"])
    if num_workers > 0:
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return iter(it)


class LabelsFromFolder(grain.transforms.Map):
    """Replaces each example's `mask` with `<folder>/<example id>.png` (0/1/255, the image's size), e.g. the
    labels `run.py --mode=label` wrote for the word boxes of a TFDS set (`config.label.format='tfds'`)."""

    def __init__(self, folder: str, decode: dict[str, int] | None = None, backend: str = "opencv"):
        import pathlib

        self.decode, self.backend = dict(decode or {}), backend
        self.folder = pathlib.Path(folder).expanduser()
        if not self.folder.is_dir():
            raise FileNotFoundError(f"config.data.train_labels={folder!r} is not a folder")

    def map(self, element):
        from PIL import Image

        element = preprocessing.decode_features(element, self.decode, self.backend)
        ident = element["id"].decode() if isinstance(element["id"], bytes) else str(element["id"])
        path = self.folder / f"{ident}.png"
        if not path.exists():
            raise FileNotFoundError(f"config.data.train_labels: no label {path} for example {ident!r}")
        with Image.open(path) as im:
            label = np.asarray(im)
        image = np.asarray(element["image"])
        if label.shape != image.shape[:2]:
            raise ValueError(f"label {path} is {label.shape[1]}x{label.shape[0]}, its image "
                             f"{image.shape[1]}x{image.shape[0]}")
        return {**element, "mask": label[..., None]}


def eval_examples(data_cfg: Mapping[str, Any], split: str, max_images: int = 0
                  ) -> tuple[int, Iterator[tuple[int, dict[str, np.ndarray]]]]:
    """(number of examples in the split, iterator of (index, example)) over this process's share.

    Examples are `{'image': [H, W, 3] uint8, 'mask': [H, W] uint8, 'id': str}`; every example of the split
    (or the first `max_images`) is visited exactly once across processes.
    """
    import tensorflow_datasets as tfds

    # Image features other than the image and mask (e.g. TextSeg's effect_mask) are not decoded: a third of the
    # host time per TextSeg image.
    features = get_builder(data_cfg).info.features
    unused = [k for k, f in features.items() if k not in ("image", "mask") and isinstance(f, tfds.features.Image)]
    # The image and mask are read encoded and decoded by OpenCV (`preprocessing.decode_features`): the pixels TFDS
    # would give, 7.5 -> 6.3 ms per TextSeg-sized image (bench_input_pipeline, 12-07).
    decoded = {k: int(features[k].shape[-1]) for k in ("image", "mask")}
    source = data_source(data_cfg, split, skip_decoding=unused + list(decoded))
    n = len(source) if not max_images else min(max_images, len(source))

    def gen():
        for i in range(jax.process_index(), n, jax.process_count()):
            ex = preprocessing.decode_features(source[i], decoded)
            ident = ex.get("id", str(i))
            yield i, {"image": ex["image"], "mask": ex["mask"][..., 0],
                      "id": ident.decode() if isinstance(ident, bytes) else str(ident)}

    return n, gen()
