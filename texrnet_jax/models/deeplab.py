"""DeepLabV3+ on a dilated ResNet (the reference's `DeepLabv3p_Base`).

* `ASPP`: a 1x1 branch, three 3x3 branches with dilation = padding = rate (6/12/18 at output stride
  16, 12/24/36 at 8), an image-pooling branch (global average pool, 1x1 conv, BN, ReLU, broadcast back),
  then concat (5 x 256) -> 1x1 conv -> BN -> ReLU -> Dropout(0.5).
* `Decoder`: the layer1 feature projected to 48 channels (1x1 conv, BN, ReLU); the ASPP output resized
  bilinearly (align_corners=True) to layer1's size; concat `[aspp, low]` (304 ch); two 3x3 conv-BN-ReLU
  (256 ch) followed by Dropout(0.5) and Dropout(0.1).
* `DeepLabV3Plus`: `resnet` + `aspp` + `decoder`, returning `{'s4': [N, H/4, W/4, 256]}`, the feature the
  TexRNet head receives. There is no classifier conv (the baseline adds one, see `models/__init__.py`).

All convs are bias-free. Dropout is `nnx.Dropout`: `model.train()` enables it, `model.eval()` disables it,
and it draws from the `dropout` rng stream (or `default` if the `nnx.Rngs` given at construction has none).
Sub-module names mirror the reference state dict (`aspp.conv5.1`, `aspp.bottleneck.0`, `decoder.bn2`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from texrnet_jax.resample import resize_bilinear
from texrnet_jax.models.layers import BatchNorm, Conv2d, ConvBN
from texrnet_jax.models.resnet import RESNET_PRESETS, ResNet, ResNetSpec

ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


class ASPP(nnx.Module):
    """Atrous spatial pyramid pooling.

    Attributes:
        conv1: 1x1 ConvBN(+ReLU) branch.
        conv2, conv3, conv4: 3x3 dilated ConvBN(+ReLU) branches.
        conv5: image pooling `[None (the pool, no state), Conv2d 1x1, BatchNorm]`, paths `conv5.1` / `conv5.2`.
        bottleneck: `[Conv2d 1x1 (5C -> C), BatchNorm]`, followed by ReLU and `dropout`.
    """

    def __init__(self, in_channels: int, channels: int = 256, rates: tuple[int, int, int] = ASPP_RATES[16], *,
                 dropout: float = 0.5, dtype=jnp.float32, rngs: nnx.Rngs):
        self.conv1 = ConvBN(in_channels, channels, 1, dtype=dtype, rngs=rngs)
        self.conv2 = ConvBN(in_channels, channels, 3, dilation=rates[0], dtype=dtype, rngs=rngs)
        self.conv3 = ConvBN(in_channels, channels, 3, dilation=rates[1], dtype=dtype, rngs=rngs)
        self.conv4 = ConvBN(in_channels, channels, 3, dilation=rates[2], dtype=dtype, rngs=rngs)
        # Index 0 stands for the reference's AdaptiveAvgPool2d, which has no state.
        self.conv5 = nnx.List([None, Conv2d(in_channels, channels, 1, dtype=dtype, rngs=rngs),
                               BatchNorm(channels, dtype=dtype)])
        self.bottleneck = ConvBN(5 * channels, channels, 1, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Maps `x` `[N, h, w, Cin]` to `[N, h, w, C]`.

        In training mode the pooling branch's BN sees one value per channel and image, so it needs a batch
        of at least 2 (the reference raises too); see `BatchNorm`.
        """
        h, w = x.shape[1:3]
        pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(x.dtype)
        pooled = jax.nn.relu(self.conv5[2](self.conv5[1](pooled)))
        # The reference's nearest resize from 1x1 is a broadcast.
        pooled = jnp.broadcast_to(pooled, (x.shape[0], h, w, pooled.shape[-1]))
        y = jnp.concatenate([self.conv1(x), self.conv2(x), self.conv3(x), self.conv4(x), pooled], axis=-1)
        return self.dropout(self.bottleneck(y))


class Decoder(nnx.Module):
    """DeepLabV3+ decoder.

    Attributes:
        conv1, bn1: 1x1 projection of the low-level (layer1) feature to `low_channels`.
        conv2, bn2: 3x3 conv over `[aspp, low]`, followed by ReLU and `dropout2` (0.5).
        conv3, bn3: 3x3 conv, followed by ReLU and `dropout3` (0.1).
    """

    def __init__(self, low_level_channels: int, aspp_channels: int = 256, channels: int = 256,
                 low_channels: int = 48, *, dropouts: tuple[float, float] = (0.5, 0.1), dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.conv1 = Conv2d(low_level_channels, low_channels, 1, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(low_channels, dtype=dtype)
        self.conv2 = Conv2d(aspp_channels + low_channels, channels, 3, dtype=dtype, rngs=rngs)
        self.bn2 = BatchNorm(channels, dtype=dtype)
        self.dropout2 = nnx.Dropout(dropouts[0], rngs=rngs)
        self.conv3 = Conv2d(channels, channels, 3, dtype=dtype, rngs=rngs)
        self.bn3 = BatchNorm(channels, dtype=dtype)
        self.dropout3 = nnx.Dropout(dropouts[1], rngs=rngs)

    def __call__(self, x: jax.Array, low: jax.Array) -> jax.Array:
        """Fuses the ASPP output `x` `[N, h, w, A]` with the low-level feature `low` `[N, H4, W4, L]`.

        Returns:
            `[N, H4, W4, channels]`.
        """
        low = jax.nn.relu(self.bn1(self.conv1(low)))
        x = resize_bilinear(x, low.shape[1:3], align_corners=True)
        y = jnp.concatenate([x, low.astype(x.dtype)], axis=-1)  # order [aspp, low] as in the reference
        y = self.dropout2(jax.nn.relu(self.bn2(self.conv2(y))))
        return self.dropout3(jax.nn.relu(self.bn3(self.conv3(y))))


class DeepLabV3Plus(nnx.Module):
    """Dilated ResNet + ASPP + decoder; returns `{'s4': [N, ceil(H/4), ceil(W/4), 256]}`.

    Attributes:
        resnet: the dilated `ResNet` backbone.
        aspp: `ASPP` on the last ResNet feature.
        decoder: `Decoder` fusing ASPP with the layer1 feature.
    """

    def __init__(self, spec: ResNetSpec, *, output_stride: int = 16, channels: int = 256, low_channels: int = 48,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if output_stride not in ASPP_RATES:
            raise ValueError(f"DeepLabV3+ supports output_stride 8 or 16, got {output_stride}")
        self.resnet = ResNet(spec, output_stride=output_stride, dtype=dtype, rngs=rngs)
        self.aspp = ASPP(spec.out_channels, channels, ASPP_RATES[output_stride], dtype=dtype, rngs=rngs)
        self.decoder = Decoder(spec.low_level_channels, channels, channels, low_channels, dtype=dtype, rngs=rngs)
        self.channels = channels

    @property
    def out_channels(self) -> int:
        return self.channels

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        """Computes the stride-4 decoder feature of normalized images `x` `[N, H, W, 3]`."""
        feats = self.resnet(x)
        return {"s4": self.decoder(self.aspp(feats["out"]), feats["s4"])}


# Backbone presets: (ResNet spec name, ASPP/decoder width, low-level projection width). The tiny one keeps
# every structural feature (dilations, multi-grid, image pooling, dropout) at a fraction of the cost.
DEEPLAB_PRESETS = {
    "deeplab_r50": ("resnet50", 256, 48),
    "deeplab_r101": ("resnet101", 256, 48),
    "deeplab_tiny": ("resnet_tiny", 32, 8),
}


def deeplab_from_preset(name: str, *, output_stride: int = 16, dtype=jnp.float32, rngs: nnx.Rngs) -> DeepLabV3Plus:
    """Builds a `DEEPLAB_PRESETS` entry."""
    spec_name, channels, low_channels = DEEPLAB_PRESETS[name]
    return DeepLabV3Plus(RESNET_PRESETS[spec_name], output_stride=output_stride, channels=channels,
                         low_channels=low_channels, dtype=dtype, rngs=rngs)
