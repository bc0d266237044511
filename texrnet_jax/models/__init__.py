"""Model registry: `build_model(model_cfg, rngs=...)` builds what `config.model` names.

`config.model.name` picks the architecture (`texrnet`), `config.model.backbone` the backbone preset
(`hrnet_w18`, `hrnet_w32`, `hrnet_w48`, `hrnet_small`, `hrnet_tiny`), and `config.model.dtype` the
compute dtype (`float32` or `bfloat16`; parameters are always float32).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
from flax import nnx

from texrnet_jax.models.hrnet import HRNET_PRESETS, HRNet
from texrnet_jax.models.texrnet import TexRNet


def build_backbone(name: str, *, dtype, rngs: nnx.Rngs) -> tuple[nnx.Module, str, int]:
    """Builds a backbone preset; returns (module, reference attribute name, output channels)."""
    if name in HRNET_PRESETS:
        net = HRNet(HRNET_PRESETS[name], dtype=dtype, rngs=rngs)
        return net, "hrnet", net.out_channels
    raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")


BACKBONES = tuple(HRNET_PRESETS)


def _texrnet(cfg: Mapping[str, Any], *, rngs: nnx.Rngs) -> TexRNet:
    dtype = jnp.dtype(cfg.get("dtype", "float32"))
    backbone, attr, channels = build_backbone(cfg["backbone"], dtype=dtype, rngs=rngs)
    return TexRNet(backbone, attr, channels, num_classes=cfg.get("num_classes", 2),
                   rfn_channels=cfg.get("rfn_channels", 64), dtype=dtype, rngs=rngs)


MODELS: dict[str, Callable[..., nnx.Module]] = {"texrnet": _texrnet}


def build_model(model_cfg: Mapping[str, Any], *, rngs: nnx.Rngs) -> nnx.Module:
    """Builds `MODELS[model_cfg['name']]` from a config section (any mapping, e.g. a ConfigDict)."""
    name = model_cfg["name"]
    if name not in MODELS:
        raise ValueError(f"config.model.name={name!r} is not a model; choose one of {sorted(MODELS)}")
    return MODELS[name](model_cfg, rngs=rngs)
