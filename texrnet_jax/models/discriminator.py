"""The frozen glyph classifier of the discriminator loss (the reference's `--trainwithcls`).

A standard (non-dilated, output stride 32) ResNet-50 whose stem takes **1** channel (the text-class
probability crop), followed by global average pooling and `cls_head.fc`, a Linear 2048 -> 37 (digits 0-9,
case-insensitive letters 10-35, anything else 36). State names follow the reference's unprefixed
torchvision layout (`conv1`, `bn1`, `layer1..4`, `cls_head.fc`), loaded from `resnet50_textcls.pth`.

The classifier is frozen in the reference: its BatchNorm runs on running statistics and its weights
never update, while gradients flow through it into the segmentation network. Callers therefore keep it
in eval mode (`classifier.eval()`), keep it out of the optimizer, and differentiate only w.r.t. the input.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from texrnet_jax.constants import GLYPH_NUM_CLASSES
from texrnet_jax.models.resnet import ResNet, ResNetSpec

# The reference classifier: torchvision ResNet-50 block counts and widths, 1-channel stem.
GLYPH_RESNET50 = ResNetSpec(blocks=(3, 4, 6, 3), in_channels=1)
# `config.loss.glyph_arch` presets. `glyph_tiny` (one narrow block per layer) is for smoke runs and tests only:
# it has no trained weights, so its loss carries no glyph knowledge.
GLYPH_PRESETS = {
    "glyph_resnet50": GLYPH_RESNET50,
    "glyph_tiny": ResNetSpec(blocks=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem_channels=8, in_channels=1),
}


class ClsHead(nnx.Module):
    """`cls_head` of the reference: only the `fc` Linear (kernel `[in, out]`, PyTorch weight transposed)."""

    def __init__(self, in_features: int, num_classes: int, *, rngs: nnx.Rngs):
        # Full float32 matmul precision (no TF32), like every conv of the port.
        self.fc = nnx.Linear(in_features, num_classes, precision=jax.lax.Precision.HIGHEST, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.fc(x)


class GlyphClassifier(ResNet):
    """ResNet-50 character classifier on 1-channel crops.

    Attributes:
        conv1, bn1, layer1..4: as in `ResNet` (output stride 32, no dilation).
        cls_head: `ClsHead` with `fc` 2048 -> 37.
    """

    def __init__(self, spec: ResNetSpec = GLYPH_RESNET50, *,
                 num_classes: int = GLYPH_NUM_CLASSES, dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__(spec, output_stride=32, dtype=dtype, rngs=rngs)
        self.cls_head = ClsHead(spec.out_channels, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Classifies crops `x` `[K, h, w, 1]` (32 x 32 in the reference); returns float32 logits `[K, 37]`.

        A 32 x 32 crop shrinks to 1 x 1 at layer4; the average pool makes any crop size valid.
        """
        feat = super().__call__(x)["out"].astype(jnp.float32)
        return self.cls_head(jnp.mean(feat, axis=(1, 2)))
