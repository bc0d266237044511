"""Model registry: `build_model(model_cfg, rngs=...)` builds what `config.model` names.

`config.model.name` picks the architecture:

* `texrnet`: backbone + TexRNet refinement head (`TexRNet`);
* `baseline`: backbone + 1x1 classifier conv with bias, no refinement (`Baseline`, the paper's ablation);
* `glyph_classifier`: the frozen character classifier of the glyph loss (`GlyphClassifier`); its `backbone`
  is a preset of `GLYPH_PRESETS` (`glyph_resnet50`, the reference's; `glyph_tiny` for smoke runs).

`config.model.backbone` picks the backbone preset: `hrnet_w18`, `hrnet_w32`, `hrnet_w48`, `hrnet_small`,
`hrnet_tiny` (HRNetV2, attribute `hrnet`) or `deeplab_r50`, `deeplab_r101`, `deeplab_tiny` (DeepLabV3+ on a
dilated ResNet, attribute `deeplab`; optional `config.model.output_stride` 16 (default) or 8).
`config.model.dtype` is the compute dtype (`float32` or `bfloat16`; parameters are always float32).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
from flax import nnx

from texrnet_jax.models.deeplab import DEEPLAB_PRESETS, deeplab_from_preset
from texrnet_jax.models.discriminator import GLYPH_PRESETS, GlyphClassifier
from texrnet_jax.models.hrnet import HRNET_PRESETS, HRNet
from texrnet_jax.models.texrnet import Baseline, TexRNet


def build_backbone(name: str, *, dtype, rngs: nnx.Rngs, output_stride: int = 16) -> tuple[nnx.Module, str, int]:
    """Builds a backbone preset; returns (module, reference attribute name, output channels).

    `output_stride` applies to the DeepLab presets only (HRNet is always stride 4 at its output).
    """
    if name in HRNET_PRESETS:
        net = HRNet(HRNET_PRESETS[name], dtype=dtype, rngs=rngs)
        return net, "hrnet", net.out_channels
    if name in DEEPLAB_PRESETS:
        net = deeplab_from_preset(name, output_stride=output_stride, dtype=dtype, rngs=rngs)
        return net, "deeplab", net.out_channels
    raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")


BACKBONES = tuple(HRNET_PRESETS) + tuple(DEEPLAB_PRESETS)


def _backbone_from_cfg(cfg: Mapping[str, Any], rngs: nnx.Rngs):
    dtype = jnp.dtype(cfg.get("dtype", "float32"))
    return dtype, *build_backbone(cfg["backbone"], dtype=dtype, rngs=rngs, output_stride=cfg.get("output_stride", 16))


def _texrnet(cfg: Mapping[str, Any], *, rngs: nnx.Rngs) -> TexRNet:
    dtype, backbone, attr, channels = _backbone_from_cfg(cfg, rngs)
    return TexRNet(backbone, attr, channels, num_classes=cfg.get("num_classes", 2),
                   rfn_channels=cfg.get("rfn_channels", 64), dtype=dtype, rngs=rngs)


def _baseline(cfg: Mapping[str, Any], *, rngs: nnx.Rngs) -> Baseline:
    dtype, backbone, attr, channels = _backbone_from_cfg(cfg, rngs)
    return Baseline(backbone, attr, channels, num_classes=cfg.get("num_classes", 2), dtype=dtype, rngs=rngs)


def _glyph_classifier(cfg: Mapping[str, Any], *, rngs: nnx.Rngs) -> GlyphClassifier:
    name = cfg["backbone"]
    if name not in GLYPH_PRESETS:
        raise ValueError(f"unknown glyph classifier {name!r}; choose one of {sorted(GLYPH_PRESETS)}")
    return GlyphClassifier(GLYPH_PRESETS[name], dtype=jnp.dtype(cfg.get("dtype", "float32")), rngs=rngs)


MODELS: dict[str, Callable[..., nnx.Module]] = {"texrnet": _texrnet, "baseline": _baseline,
                                               "glyph_classifier": _glyph_classifier}


def build_model(model_cfg: Mapping[str, Any], *, rngs: nnx.Rngs) -> nnx.Module:
    """Builds `MODELS[model_cfg['name']]` from a config section (any mapping, e.g. a ConfigDict)."""
    name = model_cfg["name"]
    if name not in MODELS:
        raise ValueError(f"config.model.name={name!r} is not a model; choose one of {sorted(MODELS)}")
    return MODELS[name](model_cfg, rngs=rngs)
