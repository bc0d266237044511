"""Layers shared by every architecture, with PyTorch semantics where the reference depends on them.

* `Conv2d`: NHWC convolution with explicit symmetric padding `dilation * (k - 1) // 2` (never 'SAME',
  which pads (0, 1) for stride-2 convs on even sizes) and PyTorch's default initialisation.
  1x1 convolutions run as a (subsample and) matrix product, which XLA:CPU executes far faster; on CPU, dilated
  ones run as per-tap products and some kernel gradients have their own forms (`kernel_grad_method`).
* `BatchNorm`: PyTorch `BatchNorm2d` (eps 1e-5, momentum 0.1): training normalises with the biased
  batch variance and updates the running variance with the *unbiased* one.
* `ConvBN`: a (conv, BN[, ReLU]) pair stored as an `nnx.List`, so its state paths are `.0.*` and
  `.1.*` exactly like the reference's `nn.Sequential` and the weight converter stays a leaf-name table.
* `resize_bilinear`: bilinear resize with `align_corners=True` (the reference's convention everywhere)
  or False, as two small interpolation matrices.
* `BasicBlock`, `Bottleneck`: residual blocks shared by HRNet and the dilated ResNet; their outputs pass
  through `fusion_boundary`, which stops XLA:CPU from recomputing whole residual chains in the backward pass.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# PyTorch's default conv init: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_kernel_init = nnx.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _precision(dtype) -> jax.lax.Precision:
    # Full float32 accuracy for float32 compute (no TF32 on GPUs); bf16 compute gets the default.
    return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else jax.lax.Precision.DEFAULT


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
        prec = _precision(self.dtype)
        if self.kernel_size == 1 and self.padding == 0:
            # A strided 1x1 convolution reads every stride-th pixel from the first: a subsample, then a product.
            x = x[:, ::self.stride, ::self.stride] if self.stride > 1 else x
            y = _pointwise(x, w[0, 0], prec)
        else:
            conv = functools.partial(_conv, stride=self.stride, padding=self.padding, dilation=self.dilation,
                                     precision=prec)
            cpu = _cpu_conv(x.shape, w.shape, self.stride, self.padding, self.dilation, prec)
            # The platform is the one the step is compiled for, known at lowering: only that branch reaches the
            # compiler. A program compiled on a CPU host for a TPU or GPU (ahead of time, `jax.export`) gets
            # XLA's convolution, as it would on that device.
            y = conv(x, w) if cpu is None else jax.lax.platform_dependent(x, w, cpu=cpu, default=conv)
        if self.bias is not None:
            # Added in float32: the bias gradient is a sum over every output pixel, and XLA reduces a bfloat16
            # cotangent in bfloat16 (on CPU a sum of 10,000 ones comes out as 1,024).
            y = (y.astype(jnp.float32) + self.bias.value).astype(self.dtype)
        return y


def _pointwise(x, w, precision) -> jax.Array:
    # A product of the pixels as rows `[N*H*W, Cin]`: the kernel gradient is then `rows^T @ cotangent`, which
    # XLA:CPU multiplies as stored. From the 4-d einsum it instead copies each cotangent transposed to
    # `[Cout, N*H*W]` first, with the BatchNorm backward fused in (about 0.5 s of a DeepLab-R101 step).
    return jnp.dot(x.reshape(-1, x.shape[-1]), w, precision=precision).reshape(*x.shape[:-1], w.shape[-1])


def _conv(x, w, stride: int, padding: int, dilation: int, precision) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision,
    )


def _single_device() -> bool:
    """One device: that of the mesh set with `jax.set_mesh` (a compile target, e.g. a TPU slice), else this host's.

    Tracing asks: the CPU branches of `Conv2d` are traced for every platform (and lowered only for CPUs), and an
    unrolled per-sample gradient of a pod's global batch would take minutes to trace for nothing.
    """
    mesh = jax.sharding.get_abstract_mesh()
    return mesh.size == 1 if not mesh.empty else jax.device_count() == 1


def dilated_as_taps(stride: int, dilation: int) -> bool:
    """Whether `Conv2d` runs a dilated convolution as one matrix product per kernel tap (`_conv_taps`) on CPU.

    On any number of devices: the taps slice the spatial axes, not the batch. XLA:CPU computes a dilated
    convolution over its whole zero padding: for the ASPP's 3x3 rate-18 convolution on a 32x32 map, 61% of the
    multiply-adds read only padding, and the rate-6 one is still 1.8x slower than the taps (docs/cpu_kernels.md).
    Other platforms keep their own convolution.
    """
    return stride == 1 and dilation > 1


# Kernel gradients per sample on a single CPU device, for feature maps of at least this many output pixels.
PER_SAMPLE_KERNEL_GRAD_MIN_PIXELS = 32 * 32
# Kernel gradients as per-tap products on a single CPU device, for maps and channel counts of at least these sizes
# (the map size also bounds the shifted-cotangent form).
TAPS_KERNEL_GRAD_MIN_PIXELS = 64 * 64
TAPS_KERNEL_GRAD_MIN_CHANNELS = 256
# Kernel gradients as one product with shifted copies of the cotangent, for inputs at least this wide.
SHIFTED_KERNEL_GRAD_MIN_IN_CHANNELS = 256


def per_sample_kernel_grad(x_shape, stride: int = 1) -> bool:
    """Whether `Conv2d` computes its kernel gradient as a sum of per-sample kernel gradients.

    XLA:CPU's kernel-gradient convolution slows down far more than linearly with the batch: for 48 channels at
    128x128 one sample takes about 10 ms and five take 390 ms, where five single-sample gradients summed take
    85 ms; 304->256 channels at 128x128, batch 8: 3.7 s against 1.4 s (docs/cpu_kernels.md). Smaller maps
    (16x16) lose. Only on a single CPU device: the per-sample slices of a batch sharded over several devices
    would each live on one device.
    """
    n, h, w = x_shape[0], x_shape[1], x_shape[2]
    return n > 1 and (h // stride) * (w // stride) >= PER_SAMPLE_KERNEL_GRAD_MIN_PIXELS and _single_device()


def taps_kernel_grad(x_shape, w_shape, stride: int = 1, dilation: int = 1) -> bool:
    """Whether `Conv2d` computes its kernel gradient as one matrix product per tap and sample (`_kernel_grad_taps`).

    For wide 3x3 stride-1 convolutions on large maps on a single CPU device: the DeepLab decoder's 304->256 and
    256->256 at 128x128, where it is 1.6x faster than XLA:CPU's kernel-gradient convolution (107 against 173 ms)
    and 2.2x faster than the per-sample sum at batch 8 (754 against 1663 ms). It also wins for 48-384 channels in
    isolation, but made the HRNet-W48 step slower and doubled its memory; 64 -> 64 loses (docs/cpu_kernels.md).
    """
    return (w_shape[0] == 3 and w_shape[1] == 3 and stride == 1 and dilation == 1
            and x_shape[1] * x_shape[2] >= TAPS_KERNEL_GRAD_MIN_PIXELS
            and min(w_shape[2], w_shape[3]) >= TAPS_KERNEL_GRAD_MIN_CHANNELS and _single_device())


def shifted_kernel_grad(x_shape, w_shape, stride: int = 1, dilation: int = 1) -> bool:
    """Whether `Conv2d` computes its kernel gradient as one product with shifted cotangents (`_kernel_grad_shifted`).

    For stride-1 convolutions from a wide input (>= 256 channels) on large maps on a single CPU device, where
    XLA:CPU first copies the whole input transposed: the refinement head's 5x5 725->64 (HRNet) and 261->64
    (DeepLab) and HRNet's 3x3 256->48 transition at 128x128. Isolated, 134 against 223 ms, 60 against 76 ms and
    18 against 82 ms at batch 1; 725->64 at batch 5 (129x129), 642 against 1091 ms for the per-sample sum. In the
    full steps: HRNet-W48 at 512x512 batch 1 3.19 against 3.36 s, the others within noise (docs/cpu_kernels.md).
    Wide outputs too (the decoder's 256->256) run faster as per-tap products.
    """
    return (w_shape[0] > 1 and stride == 1 and dilation == 1 and x_shape[1] * x_shape[2] >= TAPS_KERNEL_GRAD_MIN_PIXELS
            and w_shape[2] >= SHIFTED_KERNEL_GRAD_MIN_IN_CHANNELS and _single_device())


def kernel_grad_method(x_shape, w_shape, stride: int = 1, dilation: int = 1) -> str:
    """How `Conv2d` computes a convolution's kernel gradient on CPU: 'taps', 'shifted', 'per_sample' or XLA's ('xla').

    Other platforms always use XLA's: the choice is made per platform when the step is lowered (`Conv2d`).
    """
    if taps_kernel_grad(x_shape, w_shape, stride, dilation):
        return "taps"
    if shifted_kernel_grad(x_shape, w_shape, stride, dilation):
        return "shifted"
    if per_sample_kernel_grad(x_shape, stride):
        return "per_sample"
    return "xla"


def _cpu_conv(x_shape, w_shape, stride: int, padding: int, dilation: int, precision):
    """The CPU form of a (non-1x1) convolution `(x, w) -> y` where it is not XLA's own, else None."""
    if dilated_as_taps(stride, dilation):
        return functools.partial(_conv_taps, padding=padding, dilation=dilation, precision=precision)
    method = kernel_grad_method(x_shape, w_shape, stride, dilation)
    if method == "xla":
        return None
    return lambda x, w: _conv_own_kernel_grad(x, w, stride, padding, dilation, precision, method)


def _conv_taps(x, w, padding: int, dilation: int, precision) -> jax.Array:
    """A stride-1 convolution as one matrix product per kernel tap, each over the outputs where it reads the image.

    Tap `(ky, kx)` reads input pixel `(i + ky*d - p, j + kx*d - p)` for output `(i, j)`: its contribution is the
    product of that shifted input rectangle with the tap's `[Cin, Cout]` matrix, zero-padded back to the output's
    size. Taps that would read only padding are skipped. Same sums as the convolution, in another order.
    """
    _, h, wd, _ = x.shape
    k = w.shape[0]
    oh, ow = h + 2 * padding - dilation * (k - 1), wd + 2 * padding - dilation * (k - 1)
    y = None
    for ky in range(k):
        dy = ky * dilation - padding
        r0, r1 = max(0, -dy), min(oh, h - dy)
        for kx in range(k):
            dx = kx * dilation - padding
            c0, c1 = max(0, -dx), min(ow, wd - dx)
            if r1 <= r0 or c1 <= c0:
                continue
            part = _pointwise(x[:, r0 + dy:r1 + dy, c0 + dx:c1 + dx], w[ky, kx], precision)
            part = jnp.pad(part, ((0, 0), (r0, oh - r1), (c0, ow - c1), (0, 0)))
            y = part if y is None else y + part
    if y is None:  # every tap reads padding only
        y = jnp.zeros((x.shape[0], oh, ow, w.shape[3]), jnp.result_type(x, w))
    return y


def _flat_padded(x, g, padding: int) -> tuple[jax.Array, jax.Array, int]:
    """The layout of the flattened kernel gradients: `x` zero-padded and `g` widened to the padded width `wp`,
    each image flattened row by row, `[N, rows * wp, Cin]` and `[N, OH * wp, Cout]`, and `wp`. `x` gets a spare
    zero row at the bottom: the last tap's run ends `k - 1` elements past the padded image."""
    _, h, wd, _ = x.shape
    n, oh, ow, _ = g.shape
    wp, rows = wd + 2 * padding, h + 2 * padding + 1
    xf = jnp.pad(x, ((0, 0), (padding, padding + 1), (padding, padding), (0, 0))).reshape(n, rows * wp, -1)
    gf = jnp.pad(g, ((0, 0), (0, 0), (0, wp - ow), (0, 0))).reshape(n, oh * wp, -1)
    return xf, gf, wp


def _kernel_grad_taps(x, g, k: int, padding: int, precision) -> jax.Array:
    """The kernel gradient of a stride-1, undilated `k x k` convolution as one matrix product per tap and sample.

    With the input zero-padded and each image flattened row by row (padded width `wp`), output pixel `(i, j)`
    reads flat position `(i + ky) * wp + (j + kx)` through tap `(ky, kx)`: the output grid widened to `wp`
    columns (the extra columns given a zero cotangent) meets every tap's input as one contiguous run of rows,
    `[L, Cin]` at offset `ky * wp + kx`. Each tap's gradient is then `g_wide^T @ run`, a plain matrix product.
    """
    xf, gf, wp = _flat_padded(x, g, padding)
    n, length = gf.shape[0], gf.shape[1]
    taps = [None] * (k * k)
    for i in range(n):  # unrolled per sample, like the per-sample gradient: XLA:CPU runs each at full speed
        for t in range(k * k):
            off = (t // k) * wp + t % k
            d = jnp.dot(gf[i].T, xf[i, off:off + length], precision=precision, preferred_element_type=jnp.float32)
            taps[t] = d if taps[t] is None else taps[t] + d
    return jnp.stack(taps).reshape(k, k, -1, x.shape[-1]).transpose(0, 1, 3, 2)


def _kernel_grad_shifted(x, g, k: int, padding: int, precision) -> jax.Array:
    """The kernel gradient of a stride-1, undilated `k x k` convolution as one matrix product per sample.

    In the row-flattened padded layout of `_kernel_grad_taps`, tap `t` at flat offset `o_t` contributes
    `sum_m x[m] g[m - o_t]`: the whole flattened input against the cotangent shifted down by `o_t` rows. Stacking
    the `k*k` shifted cotangents side by side, `[L, k*k*Cout]`, turns all taps into one product with the input,
    `[k*k*Cout, L] @ [L, Cin]`, read as stored: no transposed copy of the (wide) input.
    """
    cin, cout = x.shape[-1], g.shape[-1]
    xf, gf, wp = _flat_padded(x, g, padding)
    length, wide = xf.shape[1], gf.shape[1]
    offsets = [(t // k) * wp + t % k for t in range(k * k)]

    def add_sample(dw, sample):
        xi, gi = sample
        shifted = jnp.stack([jnp.pad(gi, ((o, length - wide - o), (0, 0))) for o in offsets], axis=1)
        return dw + jnp.dot(shifted.reshape(length, k * k * cout).T, xi, precision=precision,
                            preferred_element_type=jnp.float32), None

    # A loop, not unrolled: one sample's shifted cotangents (112 MiB for 725->64 at 128x128) live at a time.
    dw, _ = jax.lax.scan(add_sample, jnp.zeros((k * k * cout, cin), jnp.float32), (xf, gf))
    return dw.reshape(k, k, cout, cin).transpose(0, 1, 3, 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _conv_own_kernel_grad(x, w, stride, padding, dilation, precision, method):
    return _conv(x, w, stride, padding, dilation, precision)


def _conv_okg_fwd(x, w, stride, padding, dilation, precision, method):
    return _conv(x, w, stride, padding, dilation, precision), (x, w)


def _conv_okg_bwd(stride, padding, dilation, precision, method, res, g):
    x, w = res
    conv = functools.partial(_conv, stride=stride, padding=padding, dilation=dilation, precision=precision)
    dx = jax.vjp(lambda x_: conv(x_, w), x)[1](g)[0]
    if method in ("taps", "shifted"):
        kernel_grad = _kernel_grad_taps if method == "taps" else _kernel_grad_shifted
        return dx, kernel_grad(x, g, w.shape[0], padding, precision).astype(w.dtype)
    dw = None
    for i in range(x.shape[0]):  # unrolled: XLA:CPU runs each single-sample gradient at full speed
        dw_i = jax.vjp(functools.partial(conv, x[i:i + 1]), w)[1](g[i:i + 1])[0].astype(jnp.float32)
        dw = dw_i if dw is None else dw + dw_i
    return dx, dw.astype(w.dtype)


_conv_own_kernel_grad.defvjp(_conv_okg_fwd, _conv_okg_bwd)


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


def linear_taps(in_size: int, out_size: int, align_corners: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear interpolation taps of every output index: (left index, right index, right weight).

    align_corners=True maps output i to source `i * (in - 1) / (out - 1)`; False uses half-pixel centres with
    negative sources clamped to 0, as `F.interpolate` does. PyTorch computes the scale, the source coordinate and
    the weight in float32 (its CPU opmath type for float tensors); doing the same here removes a 1e-3-level
    mismatch at sizes whose ratio is inexact in binary.
    """
    o = np.arange(out_size, dtype=np.float32)
    if align_corners:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0.0)
        src = scale * o
    else:
        ratio = np.float32(in_size) / np.float32(out_size)
        src = np.maximum((o + np.float32(0.5)) * ratio - np.float32(0.5), np.float32(0.0))
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0.astype(np.float32)).astype(np.float32)


@functools.lru_cache(maxsize=256)
def interp_matrix(in_size: int, out_size: int, align_corners: bool = True) -> np.ndarray:
    """The `[out_size, in_size]` float32 matrix of 1-D linear interpolation (see `linear_taps`)."""
    i0, i1, w1 = linear_taps(in_size, out_size, align_corners)
    w1 = w1.astype(np.float64)
    m = np.zeros((out_size, in_size), np.float64)
    np.add.at(m, (np.arange(out_size), i0), 1.0 - w1)
    np.add.at(m, (np.arange(out_size), i1), w1)
    return m.astype(np.float32)


def resize_bilinear(x: jax.Array, size: tuple[int, int], align_corners: bool = True) -> jax.Array:
    """Bilinear resize of `x` `[N, H, W, C]` to `[N, size[0], size[1], C]` (no antialiasing).

    `jax.image.resize` uses half-pixel centres and cannot express align_corners=True, which every
    resize of the reference uses; separable interpolation matrices reproduce it exactly.
    """
    h, w = x.shape[1:3]
    oh, ow = int(size[0]), int(size[1])
    prec = _precision(x.dtype)
    if oh != h:
        x = jnp.einsum("oh,nhwc->nowc", jnp.asarray(interp_matrix(h, oh, align_corners), x.dtype), x, precision=prec)
    if ow != w:
        x = jnp.einsum("pw,nowc->nopc", jnp.asarray(interp_matrix(w, ow, align_corners), x.dtype), x, precision=prec)
    return x


def _cut(x: jax.Array, anchor: jax.Array) -> jax.Array:
    # A conditional XLA cannot fold away: the predicate is data (always true, NaN included: both branches are x).
    a = anchor.reshape(-1)[0]
    return jax.lax.cond(a == a, lambda t: t, lambda t: t * 1, x)


def _fusion_boundary_cpu(x: jax.Array, anchor: jax.Array) -> jax.Array:
    return jax.lax.platform_dependent(x, anchor, cpu=_cut, default=lambda t, _: t)


@jax.custom_vjp
def fusion_boundary(x: jax.Array, anchor: jax.Array) -> jax.Array:
    """Identity on `x` whose value XLA:CPU materialises once instead of recomputing it inside every consumer.

    XLA:CPU fuses cheap elementwise producers into each consumer. Through residual connections, a block's output
    is an elementwise chain (BatchNorm, ReLU, addition) reaching back through every earlier block of the stage, and
    the backward pass's layout transposes for kernel gradients each recomputed that whole chain: up to 209 inputs
    per transpose in HRNet-W48. An optimisation barrier does not stop it (XLA:CPU expands barriers before fusion);
    a conditional does. On other platforms, and in the gradient, this is a plain identity (a conditional costs a
    device-to-host copy of its predicate on GPUs). See docs/cpu_kernels.md.

    Args:
        x: the value to materialise.
        anchor: a small replicated array (a BatchNorm scale) the predicate is read from. Read from `x`, a predicate
            of a batch-sharded activation would need a collective per call to replicate it.
    """
    return _fusion_boundary_cpu(x, anchor)


def _fusion_boundary_fwd(x, anchor):
    return _fusion_boundary_cpu(x, anchor), anchor


fusion_boundary.defvjp(_fusion_boundary_fwd, lambda anchor, g: (g, jnp.zeros_like(anchor)))


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
