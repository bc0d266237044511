"""Dilated ResNet backbone of DeepLabV3+ (the reference's `ResNet_Dilated_Base`).

Torchvision-style ResNet with Bottleneck "v1.5" blocks (stride and dilation on the 3x3 conv):

* stem: conv7x7 stride 2 pad 3 (no bias), BN, ReLU, maxpool 3x3 stride 2 pad 1 (padded with -inf,
  floor mode), so a 513 input gives 257 then 129;
* `layer1..4` with `(3, 4, 23, 3)` blocks (ResNet-101) or `(3, 4, 6, 3)` (ResNet-50); block 0 of every
  layer has a 1x1 conv-BN `downsample` (stride 1 in layer1, and in layer4 for output stride 16);
* output stride 16: strides `(1, 2, 2, 1)`, dilations `(1, 1, 1, 2)`, and multi-grid `(1, 2, 4)` in
  layer4, so its blocks use dilation 2, 4, 8; output stride 8: strides `(1, 2, 1, 1)` and dilations
  `(1, 1, 2, 4)` (layer4 then 4, 8, 16).

The backbone returns a stride-keyed dict (for OS16; with OS8 `s16` and `out` are at stride 8):

* `'s4'`: layer1 output, `[N, H/4, W/4, 4 * widths[0]]` (256 channels), the decoder's low-level feature;
* `'s8'`: layer2 output, `[N, H/8, W/8, 4 * widths[1]]`;
* `'s16'`: layer3 output, `[N, H/16, W/16, 4 * widths[2]]`;
* `'out'`: layer4 output, `[N, H/16, W/16, 4 * widths[3]]` (2048 channels), the ASPP input.

Sizes are rounded up (`ceil`) at every stride-2 step, e.g. 129 -> 65 -> 33 -> 17 -> 9. Attribute names
mirror the reference state dict (`conv1`, `bn1`, `layer4.0.downsample.0`), so `convert.py` maps keys by
leaf name only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from texrnet_jax.models.layers import BatchNorm, Bottleneck, Conv2d, run_sequence


@dataclasses.dataclass(frozen=True)
class ResNetSpec:
    """Structure of a (dilated) Bottleneck ResNet.

    Attributes:
        blocks: Bottlenecks per layer (ResNet-50: 3, 4, 6, 3; ResNet-101: 3, 4, 23, 3).
        widths: Bottleneck planes per layer (torchvision: 64, 128, 256, 512; outputs are 4x).
        stem_channels: output channels of the 7x7 stem conv (torchvision: 64).
        in_channels: image channels (3; the glyph classifier uses 1).
    """

    blocks: tuple[int, int, int, int]
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem_channels: int = 64
    in_channels: int = 3

    @property
    def out_channels(self) -> int:
        return self.widths[3] * Bottleneck.expansion

    @property
    def low_level_channels(self) -> int:
        return self.widths[0] * Bottleneck.expansion


RESNET_PRESETS = {
    "resnet50": ResNetSpec(blocks=(3, 4, 6, 3)),
    "resnet101": ResNetSpec(blocks=(3, 4, 23, 3)),
    # Tests and quick runs only: one block per layer, narrow widths; dilations and strides unchanged.
    "resnet_tiny": ResNetSpec(blocks=(1, 1, 1, 1), widths=(8, 16, 16, 32), stem_channels=8),
}

# (strides, dilations) of layer1..4 per output stride; layer4 additionally multiplies by the multi-grid.
OUTPUT_STRIDES = {
    16: ((1, 2, 2, 1), (1, 1, 1, 2)),
    8: ((1, 2, 1, 1), (1, 1, 2, 4)),
    # Plain classification ResNet (the glyph classifier); no dilation.
    32: ((1, 2, 2, 2), (1, 1, 1, 1)),
}
MULTI_GRID = (1, 2, 4)


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    """PyTorch `MaxPool2d(3, stride=2, padding=1)` on `[N, H, W, C]`: -inf padding, floor mode."""
    # The init value must be a concrete constant (numpy, not a traced jnp array) so that JAX recognises a
    # max-pool and can differentiate it.
    init = np.array(-np.inf, dtype=x.dtype)
    return jax.lax.reduce_window(x, init, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))


class ResNet(nnx.Module):
    """Bottleneck ResNet with optional dilation (output stride 8, 16 or 32).

    Attributes:
        conv1, bn1: the 7x7 stride-2 stem conv and its BN.
        layer1, layer2, layer3, layer4: `nnx.List`s of `Bottleneck` blocks.
        dilations: dilation of every block, per layer (layer4 includes the multi-grid factors).
    """

    def __init__(self, spec: ResNetSpec, *, output_stride: int = 16, multi_grid: tuple[int, ...] = MULTI_GRID,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {sorted(OUTPUT_STRIDES)}, got {output_stride}")
        strides, dilations = OUTPUT_STRIDES[output_stride]
        self.spec, self.output_stride = spec, output_stride
        self.conv1 = Conv2d(spec.in_channels, spec.stem_channels, 7, stride=2, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(spec.stem_channels, dtype=dtype)
        inplanes = spec.stem_channels
        all_dilations = []
        for li in range(4):
            n = spec.blocks[li]
            if li == 3 and output_stride != 32:
                # Multi-grid: the reference scales layer4's dilation per block by (1, 2, 4), cycling if longer.
                block_dil = [dilations[li] * multi_grid[b % len(multi_grid)] for b in range(n)]
            else:
                block_dil = [dilations[li]] * n
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(inplanes, spec.widths[li], stride=strides[li] if b == 0 else 1,
                                         dilation=block_dil[b], dtype=dtype, rngs=rngs))
                inplanes = spec.widths[li] * Bottleneck.expansion
            setattr(self, f"layer{li + 1}", nnx.List(blocks))
            all_dilations.append(tuple(block_dil))
        self.dilations = tuple(all_dilations)

    @property
    def out_channels(self) -> int:
        return self.spec.out_channels

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        """Runs the network on `x` `[N, H, W, in_channels]`; returns the stride-keyed dict of the module docstring."""
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = max_pool_3x3_s2(x)
        c1 = run_sequence(self.layer1, x)
        c2 = run_sequence(self.layer2, c1)
        c3 = run_sequence(self.layer3, c2)
        c4 = run_sequence(self.layer4, c3)
        return {"s4": c1, "s8": c2, "s16": c3, "out": c4}
