"""HRNetV2 backbone (the reference's `HRNet_Base`: official seg_hrnet plus a 1x1 conv-BN-ReLU last layer).

Sub-module names and list indices mirror the reference state dict (`conv1`, `layer1.0.downsample.0`,
`transition1.1.0.0`, `stage2.0.branches.0.0.conv1`, `stage4.0.fuse_layers.3.0.2.0`, `last_layer.0`, ...),
so `convert.py` maps PyTorch keys by leaf name only.

Presets: `hrnet_w18`, `hrnet_w32`, `hrnet_w48` (the paper's) and `hrnet_tiny` (tests and quick runs).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from texrnet_jax.models import layers
from texrnet_jax.resample import resize_bilinear
from texrnet_jax.models.layers import BasicBlock, BatchNorm, Bottleneck, Conv2d, ConvBN, run_sequence


@dataclasses.dataclass(frozen=True)
class HRNetSpec:
    """Structure of an HRNetV2.

    Attributes:
        widths: channels of the 4 branches (W48: 48, 96, 192, 384).
        num_modules: HighResolutionModules in stage 2, 3 and 4 (reference: 1, 4, 3).
        num_blocks: BasicBlocks per branch in every module (reference: 4).
        stem_channels: channels of the two stride-2 stem convs (reference: 64).
        layer1_planes: Bottleneck planes of layer1 (reference: 64, so 256 output channels).
        layer1_blocks: Bottlenecks in layer1 (reference: 4).
    """

    widths: tuple[int, int, int, int]
    num_modules: tuple[int, int, int] = (1, 4, 3)
    num_blocks: int = 4
    stem_channels: int = 64
    layer1_planes: int = 64
    layer1_blocks: int = 4

    @property
    def out_channels(self) -> int:
        return sum(self.widths)


HRNET_PRESETS = {
    "hrnet_w18": HRNetSpec(widths=(18, 36, 72, 144)),
    "hrnet_w32": HRNetSpec(widths=(32, 64, 128, 256)),
    "hrnet_w48": HRNetSpec(widths=(48, 96, 192, 384)),
    # Used for tests and the quickstart; the structure (4 branches, fusions, transitions) is intact.
    "hrnet_tiny": HRNetSpec(widths=(8, 16, 32, 64), num_modules=(1, 1, 1), num_blocks=1, stem_channels=16,
                            layer1_planes=16, layer1_blocks=1),
    "hrnet_small": HRNetSpec(widths=(16, 32, 64, 128), num_modules=(1, 1, 1), num_blocks=2, stem_channels=32,
                             layer1_planes=32, layer1_blocks=2),
}


class HighResolutionModule(nnx.Module):
    """Parallel branches of BasicBlocks followed by all-to-all multi-resolution fusion."""

    def __init__(self, widths: tuple[int, ...], num_blocks: int, *, dtype, rngs: nnx.Rngs):
        n = len(widths)
        self.branches = nnx.List([
            nnx.List([BasicBlock(w, w, dtype=dtype, rngs=rngs) for _ in range(num_blocks)]) for w in widths
        ])
        if n == 1:
            self.fuse_layers = None
            return
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:  # lower resolution: 1x1 projection, then upsampled in __call__
                    row.append(ConvBN(widths[j], widths[i], 1, relu=False, dtype=dtype, rngs=rngs))
                elif j == i:
                    row.append(None)
                else:  # higher resolution: a chain of i - j stride-2 3x3 convs, ReLU on all but the last
                    chain = [ConvBN(widths[j], widths[j], 3, stride=2, dtype=dtype, rngs=rngs)
                             for _ in range(i - j - 1)]
                    chain.append(ConvBN(widths[j], widths[i], 3, stride=2, relu=False, dtype=dtype, rngs=rngs))
                    row.append(nnx.List(chain))
            fuse.append(nnx.List(row))
        self.fuse_layers = nnx.List(fuse)

    def __call__(self, xs: list[jax.Array]) -> list[jax.Array]:
        xs = [run_sequence(branch, x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            size = xs[i].shape[1:3]
            y = None
            for j, layer in enumerate(row):
                if j == i:
                    t = xs[j]
                elif j > i:
                    t = resize_bilinear(layer(xs[j]), size, align_corners=True)
                else:
                    t = run_sequence(layer, xs[j])
                y = t if y is None else y + t
            out.append(layers.fusion_boundary(jax.nn.relu(y), self.branches[i][-1].bn2.scale.value))
        return out


def _transition(prev: tuple[int, ...], cur: tuple[int, ...], *, dtype, rngs: nnx.Rngs) -> nnx.List:
    """Transition layers between stages: adapt existing branches, spawn new lower-resolution ones."""
    layers = []
    for i, c in enumerate(cur):
        if i < len(prev):
            layers.append(ConvBN(prev[i], c, 3, dtype=dtype, rngs=rngs) if c != prev[i] else None)
        else:
            chain = []
            for j in range(i + 1 - len(prev)):
                out = c if j == i - len(prev) else prev[-1]
                chain.append(ConvBN(prev[-1], out, 3, stride=2, dtype=dtype, rngs=rngs))
            layers.append(nnx.List(chain))
    return nnx.List(layers)


class HRNet(nnx.Module):
    """HRNetV2: returns `{'s4': [N, ceil(H/4), ceil(W/4), sum(widths)]}` after the 1x1 conv-BN-ReLU last layer."""

    def __init__(self, spec: HRNetSpec, *, dtype=jnp.float32, rngs: nnx.Rngs):
        self.spec = spec
        s = spec.stem_channels
        self.conv1 = Conv2d(3, s, 3, stride=2, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(s, dtype=dtype)
        self.conv2 = Conv2d(s, s, 3, stride=2, dtype=dtype, rngs=rngs)
        self.bn2 = BatchNorm(s, dtype=dtype)
        blocks, inplanes = [], s
        for _ in range(spec.layer1_blocks):
            blocks.append(Bottleneck(inplanes, spec.layer1_planes, dtype=dtype, rngs=rngs))
            inplanes = spec.layer1_planes * Bottleneck.expansion
        self.layer1 = nnx.List(blocks)
        w = spec.widths
        self.transition1 = _transition((inplanes,), w[:2], dtype=dtype, rngs=rngs)
        self.stage2 = nnx.List([HighResolutionModule(w[:2], spec.num_blocks, dtype=dtype, rngs=rngs)
                                for _ in range(spec.num_modules[0])])
        self.transition2 = _transition(w[:2], w[:3], dtype=dtype, rngs=rngs)
        self.stage3 = nnx.List([HighResolutionModule(w[:3], spec.num_blocks, dtype=dtype, rngs=rngs)
                                for _ in range(spec.num_modules[1])])
        self.transition3 = _transition(w[:3], w, dtype=dtype, rngs=rngs)
        self.stage4 = nnx.List([HighResolutionModule(w, spec.num_blocks, dtype=dtype, rngs=rngs)
                                for _ in range(spec.num_modules[2])])
        c = spec.out_channels
        self.last_layer = ConvBN(c, c, 1, use_bias=True, dtype=dtype, rngs=rngs)

    @property
    def out_channels(self) -> int:
        return self.spec.out_channels

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        """Computes the stride-4 feature of a normalized image batch `x` `[N, H, W, 3]`."""
        x = jax.nn.relu(self.bn1(self.conv1(x)))
        x = jax.nn.relu(self.bn2(self.conv2(x)))
        x = run_sequence(self.layer1, x)
        xs = [x]
        for transition, stage in ((self.transition1, self.stage2), (self.transition2, self.stage3),
                                  (self.transition3, self.stage4)):
            # New branches grow from the lowest-resolution output of the previous stage.
            xs = [xs[i] if t is None else (t(xs[i]) if i < len(xs) else run_sequence(t, xs[-1]))
                  for i, t in enumerate(transition)]
            xs = run_sequence(stage, xs)
        size = xs[0].shape[1:3]
        feat = jnp.concatenate([xs[0]] + [resize_bilinear(t, size, align_corners=True) for t in xs[1:]], axis=-1)
        return {"s4": self.last_layer(feat)}
