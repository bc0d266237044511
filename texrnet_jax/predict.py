"""Text masks for image files: `run.py --mode=predict` and the one-call `predict_image` API (requirement R1).

    python run.py --mode=predict --config=configs/synth_quick.py --workdir=/tmp/texrnet_synth \\
        --config.predict.input='photos/*.jpg' --config.predict.output=/tmp/masks

The model comes from the workdir's latest checkpoint, else `config.init_from` (`weights.load_for_inference`).
Every image goes through the evaluation protocol of `config.eval` (`evaluate.Predictor`: area-based 32k+1
scales, averaged softmax, optional flip) and the argmax of the refined map (semantic without a refinement
head) is the mask. Outputs per image, in `config.predict.output` (default `<workdir>/predict`):

* `<name>_mask.png`: 8-bit, 255 = text, 0 = background, the size of the (EXIF-rotated) image;
* `<name>_overlay.png`: the image with text pixels tinted red at 50%.

`<name>` is the file stem; when stems collide (`a.png` and `a.jpg`, or the same name in two folders of a
glob) the extension and then a running number are appended so no output overwrites another.

Inputs: a folder (its files with an image extension, not recursive; other files are ignored), a glob
pattern, or one file. Decoding (`to_rgb`): EXIF orientation is applied; transparency (RGBA, LA, PA, P with
a transparent colour) is composited onto white, as a viewer shows it on a page; 16/32-bit grayscale is
scaled to 8 bits; CMYK, palette, 1-bit and other modes go through Pillow's RGB conversion. Tiny images
work (the reference scales upsample them to at least 321 px a side). Large images are not capped: the
network input is bounded by the scales (area about `(int(base_size * max(scales)) + 1)^2`, whatever the image
size), and only the normalised image, the resizes back to full size and the averaged maps grow with `H * W`
(a 4000x3000 photo peaked at 1.3 GB of host memory on CPU, about 60 bytes per pixel over the runtime).
`evaluate.Predictor` compiles the network once per network input size, which depends only on the aspect ratio
(32k+1 quantised), so images of many sizes share the compilations.
Pillow refuses images over `2 * Image.MAX_IMAGE_PIXELS` (about 179 MP) as decompression bombs, which is
then reported like any unreadable file. An image so elongated that a scale would give the network a side
below 33 px (aspect ratio beyond about 1:140 with the reference scales) is refused with that reason.

A file that cannot be read or predicted is reported on stderr with the reason and skipped; the exit code
is 1 if any file failed, else 0. No matching input at all is an error that names the pattern.
"""

from __future__ import annotations

import dataclasses
import glob
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from texrnet_jax import evaluate, preprocessing
from texrnet_jax.constants import IMAGENET_MEAN, IMAGENET_STD

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Text pixels in the overlay: blended half-and-half with this colour.
OVERLAY_COLOR = (255, 0, 0)
OVERLAY_ALPHA = 0.5
# The smallest network input side that still goes through the backbone's stride-32 path meaningfully.
MIN_NETWORK_SIDE = 33


def find_inputs(spec: str) -> list[pathlib.Path]:
    """Resolves `config.predict.input` to a sorted list of files.

    Args:
        spec: a folder (its image-extension files, case-insensitive, not recursive), an existing file (taken
            whatever its extension), or a glob pattern (`**` recurses; every matching file is taken, so a
            corrupt or non-image match is reported as a failure rather than silently dropped).

    Returns:
        The files, sorted by path.

    Raises:
        FileNotFoundError: nothing matches `spec`.
    """
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        what = f"no image files ({' '.join(IMAGE_EXTENSIONS)}) in folder {spec}"
    elif path.is_file():
        files = [path]
        what = ""
    else:
        files = [pathlib.Path(p) for p in glob.glob(str(path), recursive=True) if pathlib.Path(p).is_file()]
        what = f"no files match config.predict.input={spec!r}"
    if not files:
        raise FileNotFoundError(what)
    return sorted(files)


def output_names(files: Sequence[pathlib.Path]) -> list[str]:
    """Unique output base names: the stem, else `<stem>_<ext>`, else `<stem>_<ext>_<i>` on collisions."""
    stems = [f.stem for f in files]
    names = [
        s if stems.count(s) == 1 else f"{s}_{f.suffix.lstrip('.').lower()}" for s, f in zip(stems, files, strict=True)
    ]
    seen: dict[str, int] = {}
    unique = []
    for n in names:
        count = seen.get(n, 0)
        seen[n] = count + 1
        unique.append(n if names.count(n) == 1 else f"{n}_{count}")
    return unique


def _composite_on_white(image: Image.Image) -> Image.Image:
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any Pillow image (or array Pillow can wrap) as the uint8 RGB array the model expects.

    Args:
        image: a PIL image of any mode, or an array `[H, W]`, `[H, W, 1]`, `[H, W, 3]` or `[H, W, 4]`
            (uint8; 2-D arrays may also be uint16/int32, 0..65535, or float, 0..1).

    Returns:
        `[H, W, 3]` uint8, after EXIF orientation; transparency composited onto white; the first frame of
        an animated or multi-page file.
    """
    if isinstance(image, np.ndarray):
        arr = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
        if arr.ndim == 2 and arr.dtype.kind == "f":
            arr = arr.astype(np.float32)  # Pillow's 'F' mode is float32 only
        elif arr.ndim == 2 and arr.dtype.kind in "iu" and arr.dtype not in (np.uint8, np.uint16):
            arr = np.clip(arr, 0, 65535).astype(np.int32)  # Pillow's 'I' mode is int32 only
        image = Image.fromarray(arr)
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        arr = np.asarray(image)
        if mode == "F":
            # Float images: 0..1 if that is their range, else already 0..255.
            scale = 255.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 1.0
            gray = np.clip(np.nan_to_num(arr) * scale, 0, 255)
        else:
            # 16-bit (I;16*) and 32-bit integer grayscale: the 16-bit range mapped onto 0..255.
            gray = np.clip(arr.astype(np.float64), 0, 65535) / 257.0
        gray = np.round(gray).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        return np.asarray(_composite_on_white(image))
    return np.asarray(image.convert("RGB"))


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """Decodes one file fully (so truncated files fail here) to `[H, W, 3]` uint8 RGB via `to_rgb`."""
    with Image.open(path) as im:
        im.load()
        return to_rgb(im)


def check_protocol_size(h: int, w: int, eval_cfg: Mapping[str, Any]) -> None:
    """Raises ValueError if a scale of the protocol would feed the network a degenerate side (< 33 px)."""
    sizes = evaluate.multiscale_sizes(h, w, tuple(eval_cfg["scales"]), int(eval_cfg["base_size"]))
    smallest = min(min(s) for s in sizes)
    if smallest < MIN_NETWORK_SIDE:
        raise ValueError(
            f"aspect ratio of {h}x{w} is too extreme for the multi-scale protocol (a network input "
            f"side would be {smallest} px)"
        )


def predict_image(
    predictor: evaluate.Predictor,
    image: Image.Image | np.ndarray,
    eval_cfg: Mapping[str, Any],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """The text mask of one image: the multi-scale protocol of `eval_cfg`, argmax of the averaged softmax.

    Args:
        predictor: an `evaluate.Predictor` built with the same `eval_cfg` (it holds the model; the network
            compiles once per network input size).
        image: a PIL image of any mode or an array (see `to_rgb`).
        eval_cfg: `config.eval` (`scales`, `base_size`, `flip`); used to reject degenerate aspect ratios.
        mean, std: normalisation of the training data (`config.data.mean` / `std`).

    Returns:
        `[H, W]` uint8 mask, 1 = text, 0 = background, at the size of `image` after EXIF orientation.
    """
    rgb = to_rgb(image)
    check_protocol_size(rgb.shape[0], rgb.shape[1], eval_cfg)
    probs = predictor(preprocessing.normalize(rgb, mean, std)[None])
    key = "predrfn" if "predrfn" in probs else "predsem"
    return np.argmax(probs[key][0], axis=-1).astype(np.uint8)


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`rgb` `[H, W, 3]` uint8 with the pixels of `mask` `[H, W]` (nonzero = text) tinted with `OVERLAY_COLOR`."""
    out = rgb.copy()
    text = mask.astype(bool)
    tint = (1 - OVERLAY_ALPHA) * rgb[text] + OVERLAY_ALPHA * np.asarray(OVERLAY_COLOR, np.float64)
    out[text] = np.round(tint).astype(np.uint8)
    return out


@dataclasses.dataclass
class PredictReport:
    """What `predict_files` did.

    Attributes:
        written: `(input file, mask file)` of every image that succeeded.
        failed: `(input file, reason)` of every file that did not.
    """

    written: list[tuple[pathlib.Path, pathlib.Path]] = dataclasses.field(default_factory=list)
    failed: list[tuple[pathlib.Path, str]] = dataclasses.field(default_factory=list)


def _reason(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def predict_files(
    predictor: evaluate.Predictor,
    files: Sequence[pathlib.Path],
    out_dir: str | pathlib.Path,
    eval_cfg: Mapping[str, Any],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    progress: bool = True,
) -> PredictReport:
    """Writes `<name>_mask.png` and `<name>_overlay.png` for each file; failures go to stderr and the report.

    A failing file (unreadable, corrupt, degenerate size, or an error while predicting or writing it) does
    not stop the others.
    """
    from tqdm import tqdm

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = PredictReport()
    bar = tqdm(list(zip(files, output_names(files), strict=True)), desc="predict", unit="img", disable=not progress)
    for path, name in bar:
        try:
            rgb = read_image(path)
            mask = predict_image(predictor, rgb, eval_cfg, mean, std)
            mask_path = out_dir / f"{name}_mask.png"
            Image.fromarray(mask * np.uint8(255)).save(mask_path)
            Image.fromarray(overlay(rgb, mask)).save(out_dir / f"{name}_overlay.png")
        except Exception as e:  # by design: any per-file problem is reported, the other files go on
            report.failed.append((path, _reason(e)))
            bar.write(f"predict: skipped {path}: {_reason(e)}", file=sys.stderr)
            continue
        report.written.append((path, mask_path))
    bar.close()
    return report


def predict_from_config(config, workdir: str) -> int:
    """`run.py --mode=predict`: masks and overlays for `config.predict.input` in `config.predict.output`.

    Returns:
        The exit code: 0 if every file was predicted, 1 if any failed.

    Raises:
        ValueError: `config.predict.input` is empty or the output folder is the input folder.
        FileNotFoundError: nothing matches the input, or there is no checkpoint and no `config.init_from`.
    """
    from texrnet_jax import weights

    spec = config.predict.input
    if not spec:
        raise ValueError("config.predict.input is empty: pass --config.predict.input=<folder, glob or file>")
    out_dir = pathlib.Path(config.predict.output or pathlib.Path(workdir) / "predict").expanduser()
    if pathlib.Path(spec).expanduser().is_dir() and out_dir.resolve() == pathlib.Path(spec).expanduser().resolve():
        # Otherwise a second run would read the first run's masks and overlays as inputs.
        raise ValueError(f"config.predict.output must differ from the input folder {spec}")
    files = find_inputs(spec)  # before loading the model: a wrong pattern fails in a second
    eval_def, variables, step = weights.load_for_inference(config, workdir)
    predictor = evaluate.Predictor(eval_def, variables, config.eval)
    report = predict_files(predictor, files, out_dir, config.eval, config.data.mean, config.data.std)
    source = f"checkpoint step {step}" if step is not None else config.init_from
    failed = f"{len(report.failed)} failed (listed above on stderr)" if report.failed else "none failed"
    print(f"predict: {len(report.written)}/{len(files)} images -> {out_dir} (weights: {source}); {failed}", flush=True)
    return 1 if report.failed else 0
