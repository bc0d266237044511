"""Model weights for every flow: building the model, restoring it for inference, initialising it from converted
weights, and the frozen glyph classifier of the glyph loss.

Evaluation and prediction restore only the checkpoint's model item (`checkpoint.Checkpointer.restore_model`): they
never build an optimizer or an input pipeline.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from texrnet_jax import checkpoint, parallel
from texrnet_jax.models import build_model


def create_model(config) -> tuple[nnx.GraphDef, nnx.GraphDef, Any, Any]:
    """Builds the model; returns (train graphdef, eval graphdef, params, rest)."""
    model = build_model(config.model, rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1))
    model.train()
    train_def, params, rest = nnx.split(model, nnx.Param, ...)
    model.eval()
    eval_def, _, _ = nnx.split(model, nnx.Param, ...)
    return train_def, eval_def, params, rest


def load_glyph_classifier(loss_cfg, seed: int) -> tuple[nnx.GraphDef, Any] | None:
    """The frozen classifier of the glyph loss as `(eval graphdef, params and batch stats)`; None if it is off.

    `config.loss.glyph_classifier` is a `python -m texrnet_jax.convert --model=glyph_classifier` directory (the
    reference's resnet50_textcls.pth), or `random` for an untrained `config.loss.glyph_arch` (smoke runs only).
    """
    if not loss_cfg.glyph:
        return None
    path = loss_cfg.glyph_classifier
    if not path:
        raise ValueError(f"config.loss.glyph={loss_cfg.glyph} needs config.loss.glyph_classifier: convert the "
                         "reference classifier with python -m texrnet_jax.convert --model=glyph_classifier "
                         "--arch=glyph_resnet50 --input=resnet50_textcls.pth --output=DIR and pass DIR, or set "
                         "--config.loss.glyph=0")
    if path == "random":
        model_cfg = {"name": "glyph_classifier", "backbone": loss_cfg.glyph_arch}
        model = build_model(model_cfg, rngs=nnx.Rngs(seed))
        model.eval()
        graphdef, state = nnx.split(model, (nnx.Param, nnx.BatchStat))
        return graphdef, state
    from texrnet_jax import convert

    if not (pathlib.Path(path) / "model.json").is_file():
        raise FileNotFoundError(f"config.loss.glyph_classifier={path} is not a converted classifier (no model.json)")
    model_cfg, state = convert.load_converted(path)
    if model_cfg.get("name") != "glyph_classifier":
        raise ValueError(f"config.loss.glyph_classifier={path} holds a {model_cfg.get('name')!r} model, not "
                         "a glyph_classifier")
    model = nnx.eval_shape(lambda: build_model(model_cfg, rngs=nnx.Rngs(0)))
    model.eval()
    graphdef, _ = nnx.split(model, (nnx.Param, nnx.BatchStat))
    return graphdef, state


def initialize_from(config, params: Any, rest: Any) -> tuple[Any, Any]:
    """Copies the weights of a `python -m texrnet_jax.convert` directory (`config.init_from`) into the model state.

    The converted model must be the one `config.model` describes (same name and backbone). Every converted array
    must land on a model variable of the same shape; variables the file lacks (e.g. RNG state) keep their values.
    """
    from texrnet_jax import convert

    model_cfg, converted = convert.load_converted(config.init_from)
    for key in ("name", "backbone"):
        if model_cfg.get(key) != config.model[key]:
            raise ValueError(f"config.init_from={config.init_from} holds model {key} {model_cfg.get(key)!r} but "
                             f"config.model.{key} is {config.model[key]!r}")
    source = {path: leaf for path, leaf in nnx.to_flat_state(converted)}
    used, problems = set(), []

    def fill(tree):
        flat = []
        for path, var in nnx.to_flat_state(tree):
            if path in source:
                value = np.asarray(source[path][...])
                if value.shape != var.shape:
                    problems.append(f"{'/'.join(map(str, path))}: file {value.shape} vs model {var.shape}")
                else:
                    var = var.replace(jnp.asarray(value, var.dtype))
                used.add(path)
            flat.append((path, var))
        return nnx.from_flat_state(flat)

    params, rest = fill(params), fill(rest)
    problems += [f"{'/'.join(map(str, p))}: not in the model" for p in source if p not in used]
    if problems:
        raise ValueError(f"config.init_from={config.init_from} does not fit config.model: " + "; ".join(problems))
    return params, rest


def load_for_inference(config, workdir: str | pathlib.Path) -> tuple[nnx.GraphDef, tuple[Any, Any], int | None]:
    """The eval-mode model of `config`: the workdir's latest checkpoint, else `config.init_from`.

    Returns:
        `(eval_graphdef, (params, rest), step)`; `step` is None for weights from `config.init_from`.

    Raises:
        FileNotFoundError: neither a checkpoint in `<workdir>/checkpoints` nor `config.init_from`.
    """
    workdir = pathlib.Path(workdir)
    with checkpoint.Checkpointer(workdir / "checkpoints", config.ckpt.every_steps, config.ckpt.max_to_keep) as ckpt:
        latest = ckpt.latest_step()
        if latest is None and not config.init_from:  # before building anything
            raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'} and config.init_from is empty")
        _, eval_def, params, rest = create_model(config)
        if latest is None:
            params, rest = initialize_from(config, params, rest)
            return eval_def, (params, rest), None
        mesh = parallel.make_mesh(config.train.num_devices)
        like = jax.device_put({"params": params, "rest": rest}, parallel.replicated(mesh))
        restored = ckpt.restore_model(latest, like)
        return eval_def, (restored["params"], restored["rest"]), latest
