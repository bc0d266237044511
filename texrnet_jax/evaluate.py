"""Evaluation exactly as the reference (`eval_utils.es`): multi-scale, averaged softmax, argmax.

* `multiscale_sizes`: the area-based 32k+1 input sizes of each scale.
* `multiscale_apply`: the multi-scale protocol on a batch of equal-size images, traced or eager.
* `multiscale_probs`, `Predictor`: the same protocol around any model callable, compiling the network once per
  network input size (shared across image sizes) rather than once per image size.
* `evaluate_split`: every image of a split, dataset-level fgIoU / F-score (`metrics.SegMetrics`), the metrics
  JSON, side-by-side sample PNGs and optionally every predicted mask.
"""

from __future__ import annotations

import functools
import json
import math
import pathlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from texrnet_jax import input_pipeline, metrics, parallel, preprocessing
from texrnet_jax.constants import EVAL_BASE_SIZE, IMAGENET_MEAN, IMAGENET_STD, REFERENCE_SCALES
from texrnet_jax.resample import resize_bilinear
from texrnet_jax.workdir import check_workdir


def multiscale_sizes(h: int, w: int, scales: Sequence[float] = REFERENCE_SCALES, base_size: int = EVAL_BASE_SIZE
                     ) -> list[tuple[int, int]]:
    """Network input sizes: area about `(int(base_size * s) + 1)^2`, aspect kept, both sides 32k+1.

    `base_size` 0 means the image's own size (`sqrt(h * w)`): scale s then magnifies every image s times, whatever
    its resolution (for photos, whose text is small, instead of shrinking them to one area).
    """
    base = base_size if base_size > 0 else math.sqrt(h * w)
    sizes = []
    for s in scales:
        m = int(base * s) + 1
        r = math.sqrt(m * m / (h * w))
        sizes.append((int(h * r) // 32 * 32 + 1, int(w * r) // 32 * 32 + 1))
    return sizes


def multiscale_apply(apply_fn: Callable[[jax.Array], Mapping[str, Any]], images: jax.Array, scales: Sequence[float],
                     base_size: int, flip: bool = False, *, resize: Callable[[jax.Array, tuple[int, int]], jax.Array]
                     = resize_bilinear) -> dict[str, jax.Array]:
    """Averaged multi-scale probabilities of `images` `[B, H, W, 3]` (normalised): the reference protocol.

    Each scale resizes the input (bilinear, align_corners=True), runs `apply_fn`, and resizes its stride-4
    softmax maps back to `(H, W)`; the maps are summed and divided by their count. With `flip`, every scale
    also runs on the mirrored image (the reference evaluates without flip).

    Traced whole (inside `jax.jit`), it is one program per image size. `Predictor` and `multiscale_probs` call it
    eagerly instead, with a jitted `apply_fn` and `resize`: the network then compiles once per network input size
    (sizes are quantised to 32k+1, so images of many sizes share them) and each resize once per size pair.

    Returns:
        `predsem` and `predrfn` (when the model has a refinement head), each `[B, H, W, K]` float32.
    """
    h, w = images.shape[1:3]
    acc: dict[str, jax.Array] = {}
    passes = 0
    for size in multiscale_sizes(h, w, scales, base_size):
        x = resize(images, size)
        for mirrored in (False, True) if flip else (False,):
            out = apply_fn(x[:, :, ::-1] if mirrored else x)
            for key in ("predsem", "predrfn"):
                if key in out:
                    p = jnp.asarray(out[key], jnp.float32)
                    p = resize(p[:, :, ::-1] if mirrored else p, (h, w))
                    acc[key] = p if key not in acc else acc[key] + p
            passes += 1
    return {k: v / passes for k, v in acc.items()}


@functools.partial(jax.jit, static_argnums=1)
def _resize(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    return resize_bilinear(x, size, align_corners=True)


def _multiscale(model_fn: Callable[[Any], Mapping[str, Any]], images: jax.Array, scales: Sequence[float],
                flip: bool, base_size: int) -> dict[str, jax.Array]:
    # The eager form: one program per network input size and per resize, shared across image sizes.
    return multiscale_apply(model_fn, images, scales, base_size, flip, resize=_resize)


def multiscale_probs(model_fn: Callable[[Any], Mapping[str, Any]], image: np.ndarray,
                     scales: Sequence[float] = REFERENCE_SCALES, flip: bool = False, base_size: int = EVAL_BASE_SIZE
                     ) -> dict[str, np.ndarray]:
    """The reference protocol on one uint8 `[H, W, 3]` image with any batch model callable.

    Args:
        model_fn: maps normalised `[1, h, w, 3]` float32 images to a dict with `predsem` / `predrfn` at stride 4.
        image: RGB uint8 image.
        scales, flip, base_size: the protocol's knobs (reference: 8 scales, no flip, 512).

    Returns:
        `predsem` and `predrfn` averaged at the original size, each `[H, W, 2]` float32.
    """
    norm = jnp.asarray(preprocessing.normalize(np.asarray(image))[None])
    return {k: np.asarray(v[0]) for k, v in _multiscale(model_fn, norm, scales, flip, base_size).items()}


class Predictor:
    """Multi-scale prediction of image batches with a model state, on this process's devices.

    Each process evaluates its own share of a split independently (image sizes differ across processes), so
    the state is copied onto a process-local mesh; a batch is padded to a multiple of the local device count.
    """

    def __init__(self, graphdef: nnx.GraphDef, state: Any, eval_cfg: Mapping[str, Any]):
        self.mesh = parallel.local_mesh()
        self.state = parallel.to_local_replicated(state, self.mesh)
        self.scales, self.base_size = tuple(eval_cfg["scales"]), int(eval_cfg["base_size"])
        self.flip = bool(eval_cfg["flip"])
        self._forward = jax.jit(lambda state, x: nnx.merge(graphdef, *state)(x))

    @property
    def num_devices(self) -> int:
        return self.mesh.devices.size

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised `[B, H, W, 3]` float32 -> averaged `predsem` / `predrfn` `[B, H, W, K]` numpy."""
        b = images.shape[0]
        images = self._pad_to_devices(images)
        x = jax.device_put(images, parallel.batch_sharding(self.mesh))
        out = _multiscale(lambda t: self._forward(self.state, t), x, self.scales, self.flip, self.base_size)
        return {k: np.asarray(v)[:b] for k, v in out.items()}

    def labels(self, images: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
        """uint8 RGB `[B, H, W, 3]` -> `[B, H, W]` uint8 labels, the argmax of `predrfn` (else `predsem`).

        Normalisation, the multi-scale average and the argmax run on the devices, so the host ships uint8 in and
        gets one byte per pixel back (against float32 in and two `[H, W, K]` float32 maps back for `__call__`).
        """
        b = images.shape[0]
        images = self._pad_to_devices(images)
        x = self._normalize(jax.device_put(np.asarray(images, np.uint8), parallel.batch_sharding(self.mesh)),
                            tuple(mean), tuple(std))
        out = _multiscale(lambda t: self._forward(self.state, t), x, self.scales, self.flip, self.base_size)
        return np.asarray(_argmax_labels(out["predrfn"] if "predrfn" in out else out["predsem"]))[:b]

    def _pad_to_devices(self, images: np.ndarray) -> np.ndarray:
        """The batch padded to a multiple of the device count by repeating its last image."""
        extra = -images.shape[0] % self.num_devices
        return np.concatenate([images, np.repeat(images[-1:], extra, axis=0)]) if extra else images

    _normalize = staticmethod(jax.jit(preprocessing.normalize_uint8, static_argnums=(1, 2)))


@jax.jit
def _argmax_labels(probs: jax.Array) -> jax.Array:
    return jnp.argmax(probs, axis=-1).astype(jnp.uint8)


def prefetch(items: Iterable, depth: int) -> Iterator:
    """Iterates `items` in a background thread, up to `depth` ahead (decoding overlaps the devices' work);
    an exception in the thread is raised here, at the item where it happened."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    done = object()
    stop = threading.Event()

    def fill():
        try:
            for item in items:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            q.put(e)

    thread = threading.Thread(target=fill, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _batches_of_equal_size(examples, batch_size: int):
    """Groups consecutive examples of identical image size into lists of at most `batch_size`."""
    group: list = []
    for item in examples:
        if group and (len(group) == batch_size or group[0][1]["image"].shape != item[1]["image"].shape):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def mask_to_rgb(mask: np.ndarray) -> np.ndarray:
    """Visualises a label map: 0 black, 1 white, anything else (ignore) mid grey."""
    vis = np.full(mask.shape + (3,), 128, np.uint8)
    vis[mask == 0] = 0
    vis[mask == 1] = 255
    return vis


def side_by_side(image: np.ndarray, label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """`image | ground truth | prediction` as one uint8 RGB image with 4-pixel separators."""
    sep = np.full((image.shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([image, sep, mask_to_rgb(label), sep, mask_to_rgb(pred)], axis=1)


def evaluate_split(data_cfg: Mapping[str, Any], eval_cfg: Mapping[str, Any], predictor: Predictor,
                   out_dir: str | pathlib.Path, split: str, step: int | None = None) -> dict[str, Any]:
    """Evaluates every image of `split`; writes `<out_dir>/<split>_metrics.json` and sample PNGs.

    Returns:
        The metrics dict (`fgiou`, `miou`, `fscore`, `precision`, `recall`, `num_images`, ...).
    """
    from tqdm import tqdm

    out_dir = pathlib.Path(out_dir)
    samples_dir, masks_dir = out_dir / f"{split}_samples", out_dir / f"{split}_masks"
    main = parallel.is_main_process()
    if main:
        samples_dir.mkdir(parents=True, exist_ok=True)
        if eval_cfg["save_masks"]:
            masks_dir.mkdir(parents=True, exist_ok=True)
    n, examples = input_pipeline.eval_examples(data_cfg, split, eval_cfg["max_images"])
    batch_size = eval_cfg["batch_size"] or predictor.num_devices
    seg = metrics.SegMetrics()
    mean, std = data_cfg["mean"], data_cfg["std"]
    bar = tqdm(total=n, desc=f"eval {split}", unit="img", disable=not main)
    # Decoding runs ahead in a thread; normalisation and the argmax run on the devices (`Predictor.labels`).
    for group in _batches_of_equal_size(prefetch(examples, 2 * batch_size), batch_size):
        preds = predictor.labels(np.stack([ex["image"] for _, ex in group]), mean, std)
        for (index, ex), pred in zip(group, preds, strict=True):
            seg.update(pred, ex["mask"])
            if index < eval_cfg["num_samples"]:
                Image.fromarray(side_by_side(ex["image"], ex["mask"], pred)).save(samples_dir / f"{index:05d}.png")
            if eval_cfg["save_masks"]:
                Image.fromarray(pred * 255).save(masks_dir / f"{ex['id'].replace('/', '_')}.png")
        bar.update(len(group))
    bar.close()
    if jax.process_count() > 1:  # per-image rows from every process, so the F-score stays image-averaged
        seg = metrics.SegMetrics.from_arrays({k: parallel.concat_across_processes(v) for k, v in seg.counts.items()})
    result = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in seg.result().items()}
    result.update(split=split, step=step, scales=list(eval_cfg["scales"]), base_size=int(eval_cfg["base_size"]),
                  flip=bool(eval_cfg["flip"]))
    if main:
        (out_dir / f"{split}_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_evaluation(config, eval_def: nnx.GraphDef, variables: tuple[Any, Any], workdir: pathlib.Path,
                   step: int | None) -> dict[str, Any]:
    """Evaluates `config.data.eval_split` (and `config.eval.check_set`, if set) and prints the headline metrics.

    Returns:
        The metrics of `config.data.eval_split`; with a check set, its metrics are under the key `check`.
    """
    if config.data.get("sampler", "images") == "box_crops":  # a BF-Net: what counts is the labels it makes
        from texrnet_jax.weak_labels import label_flow

        return label_flow.evaluate_bfnet(config, (eval_def, variables), workdir)
    predictor = Predictor(eval_def, variables, config.eval)
    result = _evaluate_and_print(config.data, config.eval, predictor, workdir / "eval", step,
                                 config.data.eval_split)
    check = config.eval.get("check_set", "")
    if check:
        data_cfg = config.data.copy_and_resolve_references()
        eval_cfg = config.eval.copy_and_resolve_references()
        with data_cfg.unlocked(), eval_cfg.unlocked():
            data_cfg.name, data_cfg.auto_prepare = check, True
            if config.eval.check_base_size >= 0:
                eval_cfg.base_size = config.eval.check_base_size
        predictor = Predictor(eval_def, variables, eval_cfg)
        result["check"] = _evaluate_and_print(data_cfg, eval_cfg, predictor, workdir / "eval" / check.replace("/", "_"),
                                              step, config.eval.check_split, label=check)
    return result


def _evaluate_and_print(data_cfg, eval_cfg, predictor, out_dir: pathlib.Path, step: int | None, split: str,
                        label: str = "") -> dict[str, Any]:
    result = evaluate_split(data_cfg, eval_cfg, predictor, out_dir, split, step)
    if parallel.is_main_process():
        print(f"eval {label + ' ' if label else ''}{split} ({result['num_images']} images, step {step}): "
              f"fgIoU={result['fgiou']:.4f} F={result['fscore']:.4f} P={result['precision']:.4f} "
              f"R={result['recall']:.4f} -> {out_dir / (split + '_metrics.json')}", flush=True)
    return result


def evaluate_checkpoint(config, workdir: str) -> dict[str, Any]:
    """`--mode=eval`: restores the workdir's latest checkpoint (or `config.init_from`) and evaluates."""
    workdir = check_workdir(workdir)
    from texrnet_jax import weights

    eval_def, variables, step = weights.load_for_inference(config, workdir)
    return run_evaluation(config, eval_def, variables, workdir, step)
