"""PyTorch state dicts -> NNX state for TexRNet (reference checkpoints, ImageNet inits, parity fixtures).

The NNX modules are named after the reference's state-dict keys (`hrnet.stage4.0.fuse_layers.3.0.2.0`,
`deeplab.aspp.conv5.1`, `semrfnhead.conv_ref.bn1`, ...), so a key maps to an NNX state path by its last
component only (`_LEAF_TABLE`):

| PyTorch leaf | NNX leaf | transform |
| --- | --- | --- |
| conv `weight` `[O, I, kh, kw]` | `kernel` `[kh, kw, I, O]` | transpose (2, 3, 1, 0) |
| Linear `weight` `[out, in]` | `kernel` `[in, out]` | transpose (1, 0) |
| BN `weight` / `bias` | `scale` / `bias` | |
| conv / Linear `bias`, `bias_sem` | same name | |
| `running_mean` / `running_var` | `mean` / `var` | |
| `num_batches_tracked` | dropped | |

Whether a `weight` is a kernel or a BN scale is decided by what the model has at that module path.
Every problem (key missing from the file, key the model does not have, shape mismatch) is collected and
raised as ONE `ValueError`. Partial files (backbone-only ImageNet inits) load with `strict=False` plus a
`prefix_map` (e.g. `{'': 'deeplab.resnet.'}` for a torchvision ResNet) and `skip` patterns for the
ImageNet heads; shape mismatches and unknown keys are still errors then.

Public API:

* `read_state_dict(path)`: `.pth` (needs the optional `torch`, see requirements-torch.txt) or `.npz`.
* `match_keys(model, shapes, ...)`: the key plan, also on an abstract (`nnx.eval_shape`) model.
* `torch_to_nnx(model, state_dict, ...)`: loads a state dict into a model in place;
  `export_state_dict(model)` is the inverse.
* `load_torch_weights(arch, state_dict)`: a jitted eval-mode TexRNet callable on NHWC images.
* `load_converted(path)`: restores what the CLI wrote, as `(model_cfg, state)`.

CLI (writes an Orbax checkpoint of the eval-mode model's params and batch stats, plus `model.json`)::

    python -m texrnet_jax.convert --arch=hrnet_w48 --input=texrnet_hrnet.pth --output=/tmp/texrnet_hrnet_w48
    python -m texrnet_jax.convert --arch=deeplab_r101 --backbone_only \\
        --input=resnet101_imagenet.pth.base --output=/tmp/init_deeplab_r101
    python -m texrnet_jax.convert --model=glyph_classifier --arch=glyph_resnet50 \
        --input=resnet50_textcls.pth --output=/tmp/glyph_resnet50   # for config.loss.glyph_classifier
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from texrnet_jax.models import build_model

# Torch leaf -> candidate NNX leaves (the first present in the model wins); empty = dropped.
_LEAF_TABLE: dict[str, tuple[str, ...]] = {
    "weight": ("kernel", "scale"),
    "bias": ("bias",),
    "running_mean": ("mean",),
    "running_var": ("var",),
    "num_batches_tracked": (),
    "bias_sem": ("bias_sem",),
}
# NNX leaf -> torch leaf, for naming keys the file lacks.
_INVERSE_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
                 "var": "running_var", "bias_sem": "bias_sem"}
# Kernel layout change by rank: conv OIHW -> HWIO, Linear (out, in) -> (in, out).
_KERNEL_PERM = {4: (2, 3, 1, 0), 2: (1, 0)}

ARCHS = ("hrnet_w18", "hrnet_w32", "hrnet_w48", "deeplab_r50", "deeplab_r101")
# Backbone attribute path of each architecture family, for backbone-only (ImageNet) files.
_BACKBONE_PREFIX = {"hrnet": "hrnet.", "deeplab": "deeplab.resnet."}
# ImageNet classification heads that a backbone-only file may carry and the segmentation model lacks
# (torchvision `fc`; the HRNet classification net's incre/downsample/final layers and classifier).
IMAGENET_HEAD_KEYS = (r"^fc\.", r"^incre_modules\.", r"^downsamp_modules\.", r"^final_layer\.", r"^classifier\.")
_STATE_TYPES = (nnx.Param, nnx.BatchStat)


def model_config(arch: str, name: str = "texrnet", output_stride: int = 16) -> dict[str, Any]:
    """The `config.model` mapping of an architecture in `ARCHS` (or any registered backbone preset)."""
    if name == "glyph_classifier":  # arch is a GLYPH_PRESETS name, e.g. glyph_resnet50 (resnet50_textcls.pth)
        return {"name": name, "backbone": arch, "dtype": "float32"}
    cfg = {"name": name, "backbone": arch, "dtype": "float32", "num_classes": 2}
    if arch.startswith("deeplab"):
        cfg["output_stride"] = output_stride
    return cfg


def _flat_target(model: nnx.Module | nnx.State) -> dict[str, Any]:
    """'.'-joined path -> Variable of the params and batch stats of a model (also abstract) or a state."""
    state = model if isinstance(model, nnx.State) else nnx.state(model, _STATE_TYPES)
    return {".".join(str(p) for p in path): var for path, var in nnx.to_flat_state(state)}


def _torch_shape(nnx_leaf: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    perm = _KERNEL_PERM.get(len(shape)) if nnx_leaf == "kernel" else None
    return shape if perm is None else tuple(shape[i] for i in np.argsort(perm))


def to_torch_layout(nnx_path: str, array: Any) -> np.ndarray:
    """The inverse layout change: an NNX value (e.g. a gradient) at `nnx_path` in the torch layout."""
    array = np.asarray(array)
    if nnx_path.rpartition(".")[2] == "kernel" and array.ndim in _KERNEL_PERM:
        array = np.transpose(array, np.argsort(_KERNEL_PERM[array.ndim]))
    return array


@dataclasses.dataclass
class KeyMatch:
    """Result of matching file keys with a model.

    Attributes:
        assign: torch name -> NNX path of every key that loads.
        dropped: torch names deliberately ignored (`num_batches_tracked`, `skip` patterns).
        missing: NNX paths (with their torch name) the file does not provide.
        unexpected: torch names the model has no place for.
        mismatched: (torch name, file shape, shape the model expects in torch layout).
    """

    assign: dict[str, str] = dataclasses.field(default_factory=dict)
    dropped: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = dataclasses.field(default_factory=list)

    def problems(self, strict: bool = True) -> list[str]:
        """Human-readable lines, one per problem; missing keys count only when `strict`."""
        lines = [f"shape mismatch: {k}: file {fs} vs model {ms}" for k, fs, ms in self.mismatched]
        lines += [f"unexpected in the file (not in the model): {k}" for k in self.unexpected]
        if strict:
            lines += [f"missing in the file: {k}" for k in self.missing]
        return lines


def _apply_prefix(name: str, prefix_map: Mapping[str, str] | None) -> str:
    if not prefix_map:
        return name
    if any(name.startswith(dst) for dst in prefix_map.values() if dst):
        return name  # already in model naming
    for src in sorted(prefix_map, key=len, reverse=True):  # longest source prefix wins
        if name.startswith(src):
            return prefix_map[src] + name[len(src):]
    return name


def match_keys(model: nnx.Module, shapes: Mapping[str, Sequence[int]], *,
               prefix_map: Mapping[str, str] | None = None, skip: Iterable[str] = ()) -> KeyMatch:
    """Matches torch names and shapes with the params and batch stats of `model` (concrete or abstract).

    Args:
        model: an NNX model, e.g. from `build_model` or `nnx.eval_shape(lambda: build_model(...))`.
        shapes: torch name -> torch-layout shape.
        prefix_map: torch name prefix -> model prefix, e.g. `{'': 'hrnet.'}` for a bare backbone file;
            names that already start with one of the model prefixes are left alone.
        skip: regexes (re.search) of torch names to drop silently (e.g. `IMAGENET_HEAD_KEYS`).

    Returns:
        The `KeyMatch`; missing keys are those of the model not covered, restricted to `prefix_map`'s model
        prefixes when one is given (a backbone file says nothing about the head).
    """
    target = _flat_target(model)
    skip_res = [re.compile(s) for s in skip]
    result, covered = KeyMatch(), set()
    for name, shape in shapes.items():
        if any(r.search(name) for r in skip_res):
            result.dropped.append(name)
            continue
        mapped = _apply_prefix(name, prefix_map)
        module, _, leaf = mapped.rpartition(".")
        if leaf not in _LEAF_TABLE:
            result.unexpected.append(name)
            continue
        if not _LEAF_TABLE[leaf]:
            result.dropped.append(name)
            continue
        path = next((f"{module}.{c}" if module else c for c in _LEAF_TABLE[leaf]
                     if (f"{module}.{c}" if module else c) in target), None)
        if path is None:
            result.unexpected.append(name)
            continue
        covered.add(path)
        want = _torch_shape(path.rpartition(".")[2], tuple(target[path].shape))
        if tuple(shape) != want:
            result.mismatched.append((name, tuple(int(s) for s in shape), want))
            continue
        result.assign[name] = path
    scopes = [dst for dst in (prefix_map or {}).values() if dst]
    for path in target:
        if path not in covered and (not scopes or any(path.startswith(s) for s in scopes)):
            module, _, leaf = path.rpartition(".")
            result.missing.append(f"{module}.{_INVERSE_LEAF.get(leaf, leaf)} (model {path})")
    return result


def normalize_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Numpy copy of a state dict: keeps the fixtures' `state_dict/<name>` entries if present, strips `module.`."""
    if any(k.startswith("state_dict/") for k in state_dict):
        state_dict = {k[len("state_dict/"):]: v for k, v in state_dict.items() if k.startswith("state_dict/")}
    out = {}
    for k, v in state_dict.items():
        # DataParallel / DistributedDataParallel checkpoints prefix every key with `module.`.
        out[k[len("module."):] if k.startswith("module.") else k] = np.asarray(v)
    return out


def torch_to_nnx(model: nnx.Module, state_dict: Mapping[str, Any], *, strict: bool = True,
                 prefix_map: Mapping[str, str] | None = None, skip: Iterable[str] = ()) -> nnx.Module:
    """Loads a PyTorch-named state dict into `model` in place and returns it.

    Args:
        model: the target NNX model (built with the matching architecture).
        state_dict: torch name -> array (numpy or anything `np.asarray` takes), torch layouts.
        strict: if True every param and batch stat of the model (within `prefix_map`'s scope) must be in
            the file. False allows partial files; unexpected and mis-shaped keys are errors either way.
        prefix_map: see `match_keys`; e.g. `{'': 'deeplab.resnet.'}` for a torchvision ResNet file.
        skip: regexes of file keys to ignore (e.g. `IMAGENET_HEAD_KEYS`).

    Returns:
        `model`, updated.

    Raises:
        ValueError: listing every missing (if strict), unexpected and mis-shaped key, in one message.
    """
    sd = normalize_state_dict(state_dict)
    match = match_keys(model, {k: v.shape for k, v in sd.items()}, prefix_map=prefix_map, skip=skip)
    problems = match.problems(strict)
    if problems:
        raise ValueError(f"{len(problems)} problem(s) loading a state dict of {len(sd)} keys into "
                         f"{type(model).__name__}:\n  " + "\n  ".join(problems))
    target = _flat_target(model)
    flat = []
    for name, path in match.assign.items():
        arr = sd[name]
        leaf = path.rpartition(".")[2]
        if leaf == "kernel":
            arr = np.transpose(arr, _KERNEL_PERM[arr.ndim])
        var = target[path]
        parts = tuple(int(p) if p.isdigit() else p for p in path.split("."))
        flat.append((parts, var.replace(jnp.asarray(arr, dtype=var.dtype))))
    nnx.update(model, nnx.from_flat_state(flat))
    return model


def export_state_dict(model: nnx.Module | nnx.State) -> dict[str, np.ndarray]:
    """The inverse of `torch_to_nnx`: params and batch stats under reference names, in torch layouts.

    Takes a model or a state of params and batch stats (e.g. the one `load_converted` returns).

    Every BN also gets a `num_batches_tracked` of 0 (int64), so PyTorch's strict `load_state_dict` accepts it.
    """
    out = {}
    for path, var in _flat_target(model).items():
        module, _, leaf = path.rpartition(".")
        name = f"{module}.{_INVERSE_LEAF.get(leaf, leaf)}" if module else _INVERSE_LEAF.get(leaf, leaf)
        out[name] = to_torch_layout(path, var[...])
        if leaf == "mean":
            out[f"{module}.num_batches_tracked"] = np.zeros((), np.int64)
    return out


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a state dict as numpy arrays.

    `.npz`: names as keys (the parity fixtures' `state_dict/<name>` layout is recognised). Anything else
    is a PyTorch file (`.pth`, `.pth.base`), read with `torch.load(map_location='cpu', weights_only=True)`;
    a raw state dict or a dict holding it under `state_dict` or `model` is accepted. `module.` prefixes
    are stripped.
    """
    path = pathlib.Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return normalize_state_dict({k: data[k] for k in data.files if not k.startswith(("out/", "aux/"))})
    try:
        import torch  # optional dependency (requirements-torch.txt), only needed for .pth files
    except ImportError as e:
        raise ImportError(f"reading {path} needs PyTorch: pip install -r requirements-torch.txt") from e
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    out = {}
    for k, v in obj.items():
        if torch.is_tensor(v):
            v = v.detach().cpu()
            # numpy has no bfloat16; half-precision checkpoints become float32 here and in the model.
            out[k] = (v.float() if v.is_floating_point() else v).numpy()
    return normalize_state_dict(out)


def _build(cfg: Mapping[str, Any], seed: int = 0) -> nnx.Module:
    return build_model(cfg, rngs=nnx.Rngs(seed))


def build_for_loading(model_cfg: Mapping[str, Any]) -> nnx.Module:
    """Builds a concrete model whose parameters are all about to be overwritten by a full state dict.

    The random init then only costs time: XLA:CPU compiles one threefry sampler per distinct parameter
    shape (about 16 s for HRNet-W18). The 'rbg' PRNG compiles several times faster; its values differ,
    which does not matter here (dropout rng streams stay valid).
    """
    return build_model(model_cfg, rngs=nnx.Rngs(jax.random.key(0, impl="rbg")))


def load_torch_weights(arch: str, state_dict: Mapping[str, Any]) -> Callable[[Any], dict[str, np.ndarray]]:
    """An eval-mode TexRNet of `arch` with the reference weights `state_dict`, as a jitted function.

    Args:
        arch: one of `ARCHS` (`hrnet_w18`, `hrnet_w32`, `hrnet_w48`, `deeplab_r50`, `deeplab_r101`; DeepLab at
            output stride 16).
        state_dict: reference name -> numpy array (full TexRNet state dict, strict).

    Returns:
        `fn(images)`: normalized NHWC images `[N, H, W, 3]` (any N, H, W) -> dict of float32 numpy arrays at
        stride 4 (`ceil(H/4)`): `att_key`, `att`, `predsem`, `predrfn` `[N, h, w, 2]` (probabilities),
        `logit_sem`, `logit_rfn` `[N, h, w, 2]` and `feat` `[N, h, w, C]`. Compiled once per input shape.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    model = torch_to_nnx(build_for_loading(model_config(arch)), state_dict, strict=True)
    model.eval()
    return make_eval_fn(model)


def make_eval_fn(model: nnx.Module) -> Callable[[Any], dict[str, np.ndarray]]:
    """Wraps an eval-mode model as a jitted numpy-in, numpy-out function (one compile per input shape)."""
    graphdef, state = nnx.split(model)
    # jax.jit keeps one executable per input shape and dtype; the state is an argument, not a constant,
    # so the weights are not folded into (and copied by) every compiled program.
    forward = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x))

    def fn(images) -> dict[str, np.ndarray]:
        out = forward(state, jnp.asarray(images, jnp.float32))
        return {k: np.asarray(jax.block_until_ready(v)) for k, v in out.items()}

    return fn


def save_converted(model: nnx.Module, model_cfg: Mapping[str, Any], output: str | os.PathLike,
                   extra: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Writes `output/state` (Orbax, params and batch stats) and `output/model.json` (the model config)."""
    import orbax.checkpoint as ocp  # heavy import, only for the CLI and checkpoint users

    out = pathlib.Path(output).absolute()
    out.mkdir(parents=True, exist_ok=True)
    ckptr = ocp.StandardCheckpointer()
    # Only params and batch stats: dropout rng keys are runtime state, not weights.
    ckptr.save(out / "state", nnx.state(model, _STATE_TYPES), force=True)
    ckptr.wait_until_finished()
    (out / "model.json").write_text(json.dumps({"model": dict(model_cfg), **(extra or {})}, indent=2) + "\n")
    return out


def load_converted(path: str | os.PathLike) -> tuple[dict[str, Any], nnx.State]:
    """Restores a `python -m texrnet_jax.convert` output directory.

    Returns:
        `(model_cfg, state)`: the `config.model` mapping (`name`, `backbone`, `dtype`, ...) and the params and
        batch stats as an `nnx.State`; apply with `nnx.update(build_model(model_cfg, rngs=...), state)`.
    """
    import orbax.checkpoint as ocp

    path = pathlib.Path(path).absolute()
    model_cfg = json.loads((path / "model.json").read_text())["model"]
    abstract = nnx.eval_shape(lambda: _build(model_cfg))
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.state(abstract, _STATE_TYPES))
    state = ocp.StandardCheckpointer().restore(path / "state", target)
    return model_cfg, state


def main(argv: Sequence[str] | None = None) -> pathlib.Path:
    """CLI entry point; see the module docstring."""
    p = argparse.ArgumentParser(prog="python -m texrnet_jax.convert", description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True, help="backbone preset, e.g. " + ", ".join(ARCHS))
    p.add_argument("--input", required=True, help=".pth / .pth.base (needs torch) or .npz state dict")
    p.add_argument("--output", required=True, help="output directory (Orbax checkpoint + model.json)")
    p.add_argument("--model", default="texrnet", choices=("texrnet", "baseline", "glyph_classifier"),
                   help="glyph_classifier: the frozen classifier of the glyph loss (--arch=glyph_resnet50, "
                        "--input=resnet50_textcls.pth); use the output as config.loss.glyph_classifier")
    p.add_argument("--output_stride", type=int, default=16, help="DeepLab only")
    p.add_argument("--backbone_only", action="store_true",
                   help="partial ImageNet init: keys without prefix go to the backbone, the rest stays random")
    p.add_argument("--seed", type=int, default=0, help="init seed of the parts the file does not cover")
    args = p.parse_args(argv)
    if args.backbone_only and args.model == "glyph_classifier":
        p.error("--backbone_only applies to segmentation models, not --model=glyph_classifier")
    cfg = model_config(args.arch, args.model, args.output_stride)
    sd = read_state_dict(args.input)
    if args.backbone_only:
        model = _build(cfg, args.seed)
        family = model.backbone_name
        torch_to_nnx(model, sd, strict=False, prefix_map={"": _BACKBONE_PREFIX[family]}, skip=IMAGENET_HEAD_KEYS)
    else:
        model = torch_to_nnx(build_for_loading(cfg), sd, strict=True)
    model.eval()
    out = save_converted(model, cfg, args.output, {"source": str(args.input), "backbone_only": args.backbone_only})
    print(f"wrote {out} ({len(sd)} keys from {args.input})")
    return out


def run() -> None:
    """Console-script entry point (`texrnet-convert`)."""
    main()


if __name__ == "__main__":
    run()
