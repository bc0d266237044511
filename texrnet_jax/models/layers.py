"""Layers shared by every architecture, with PyTorch semantics where the reference depends on them.

* `Conv2d`: NHWC convolution with explicit symmetric padding `dilation * (k - 1) // 2` (never 'SAME',
  which pads (0, 1) for stride-2 convs on even sizes) and PyTorch's default initialisation; the arithmetic is
  `xla_cpu.conv.conv2d`'s (XLA's convolution, or an equivalent faster form of the same sums).
* `BatchNorm`: PyTorch `BatchNorm2d` (eps 1e-5, momentum 0.1): training normalises with the biased
  batch variance and updates the running variance with the *unbiased* one.
* `ConvBN`: a (conv, BN[, ReLU]) pair stored as an `nnx.List`, so its state paths are `.0.*` and
  `.1.*` exactly like the reference's `nn.Sequential` and the weight converter stays a leaf-name table.
* `BasicBlock`, `Bottleneck`: residual blocks shared by HRNet and the dilated ResNet; their outputs pass
  through `xla_cpu.fusion.fusion_boundary` (an identity, materialised where the compiler would recompute it).

The resizes (align-corners bilinear, the nearest-label rule) are `texrnet_jax.resample`'s.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from texrnet_jax.resample import precision_for
from texrnet_jax.xla_cpu import conv
from texrnet_jax.xla_cpu.fusion import fusion_boundary

# PyTorch's default conv init: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_kernel_init = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


class Conv2d(nnx.Module):
    """NHWC 2-D convolution with PyTorch padding and initialisation.

    Attributes:
        kernel: `[k, k, in_channels, out_channels]` (HWIO) parameter.
        bias: `[out_channels]` parameter, or None.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        padding: int | None = None,
        use_bias: bool = False,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.padding = dilation * (kernel_size - 1) // 2 if padding is None else padding
        self.dtype = dtype
        shape = (kernel_size, kernel_size, in_channels, out_channels)
        self.kernel = nnx.Param(torch_kernel_init(rngs.params(), shape, param_dtype))
        if use_bias:
            bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
            self.bias = nnx.Param(jax.random.uniform(rngs.params(), (out_channels,), param_dtype, -bound, bound))
        else:
            self.bias = None

    def __call__(self, x: jax.Array) -> jax.Array:
        """Applies the convolution to `x` `[N, H, W, Cin]`, returning `[N, H', W', Cout]`."""
        x = x.astype(self.dtype)
        w = self.kernel.value.astype(self.dtype)
        y = conv.conv2d(x, w, stride=self.stride, padding=self.padding, dilation=self.dilation,
                        precision=precision_for(self.dtype))
        if self.bias is not None:
            # Added in float32: the bias gradient is a sum over every output pixel, and XLA reduces a bfloat16
            # cotangent in bfloat16 (a sum of 10,000 ones can come out as 1,024).
            y = (y.astype(jnp.float32) + self.bias.value).astype(self.dtype)
        return y


class BatchNorm(nnx.Module):
    """PyTorch-semantics BatchNorm over the channel (last) axis; statistics always in float32.

    `model.train()` / `model.eval()` flip `use_running_average`. Under `jax.jit` over a device mesh the
    batch statistics are global over the sharded batch.

    Attributes:
        scale, bias: affine parameters `[C]` (PyTorch `weight`, `bias`).
        mean, var: running statistics `[C]` (PyTorch `running_mean`, `running_var`).
    """

    def __init__(self, num_features: int, *, momentum: float = 0.9, epsilon: float = 1e-5, dtype=jnp.float32):
        self.momentum, self.epsilon, self.dtype = momentum, epsilon, dtype
        self.use_running_average = False
        self.scale = nnx.Param(jnp.ones((num_features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((num_features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        """Normalises `x` `[..., C]`; in training mode also updates the running statistics."""
        xf = x.astype(jnp.float32)
        axes = tuple(range(xf.ndim - 1))
        if self.use_running_average:
            mean, var = self.mean.value, self.var.value
        else:
            n = math.prod(xf.shape[:-1])
            if n < 2:
                # The reference raises here too ("Expected more than 1 value per channel when training");
                # an unbiased variance of one value would poison the running statistics with inf.
                raise ValueError(f"BatchNorm in training mode needs more than 1 value per channel, got input {x.shape}")
            mean = jnp.mean(xf, axis=axes)
            var = jnp.mean(jnp.square(xf - mean), axis=axes)  # biased: used for normalisation
            m = self.momentum
            self.mean.value = m * self.mean.value + (1.0 - m) * jax.lax.stop_gradient(mean)
            self.var.value = m * self.var.value + (1.0 - m) * jax.lax.stop_gradient(var) * (n / (n - 1))
        mul = self.scale.value * jax.lax.rsqrt(var + self.epsilon)
        y = (xf - mean) * mul + self.bias.value
        return y.astype(self.dtype)


class ConvBN(nnx.List):
    """Conv2d then BatchNorm, optionally followed by ReLU; state paths `0.*` (conv) and `1.*` (BN)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, relu: bool = True,
                 stride: int = 1, dilation: int = 1, use_bias: bool = False, dtype=jnp.float32, rngs: nnx.Rngs):
        super().__init__([
            Conv2d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, use_bias=use_bias,
                   dtype=dtype, rngs=rngs),
            BatchNorm(out_channels, dtype=dtype),
        ])
        self.relu = relu

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self[1](self[0](x))
        return jax.nn.relu(y) if self.relu else y


def run_sequence(layers, x: jax.Array) -> jax.Array:
    """Applies the modules of an `nnx.List` in order (the reference's nested `nn.Sequential`)."""
    for layer in layers:
        x = layer(x)
    return x


class BasicBlock(nnx.Module):
    """ResNet basic block (two 3x3 convs) as used in HRNet branches; expansion 1."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, dilation: int = 1,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        self.conv1 = Conv2d(inplanes, planes, 3, stride=stride, dilation=dilation, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(planes, dtype=dtype)
        self.conv2 = Conv2d(planes, planes, 3, dilation=dilation, dtype=dtype, rngs=rngs)
        self.bn2 = BatchNorm(planes, dtype=dtype)
        self.downsample = _downsample(inplanes, planes, stride, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        identity = x if self.downsample is None else self.downsample(x)
        return fusion_boundary(jax.nn.relu(y + identity), self.bn2.scale.value)


class Bottleneck(nnx.Module):
    """ResNet v1.5 bottleneck (stride and dilation on the 3x3 conv); expansion 4."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, *, stride: int = 1, dilation: int = 1,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        out = planes * self.expansion
        self.conv1 = Conv2d(inplanes, planes, 1, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(planes, dtype=dtype)
        self.conv2 = Conv2d(planes, planes, 3, stride=stride, dilation=dilation, dtype=dtype, rngs=rngs)
        self.bn2 = BatchNorm(planes, dtype=dtype)
        self.conv3 = Conv2d(planes, out, 1, dtype=dtype, rngs=rngs)
        self.bn3 = BatchNorm(out, dtype=dtype)
        self.downsample = _downsample(inplanes, out, stride, dtype, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.bn1(self.conv1(x)))
        y = jax.nn.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return fusion_boundary(jax.nn.relu(y + identity), self.bn3.scale.value)


def _downsample(inplanes: int, out: int, stride: int, dtype, rngs: nnx.Rngs) -> ConvBN | None:
    # A 1x1 projection (conv + BN, no ReLU) whenever the residual changes shape, as in torchvision.
    if stride == 1 and inplanes == out:
        return None
    return ConvBN(inplanes, out, 1, stride=stride, relu=False, dtype=dtype, rngs=rngs)
