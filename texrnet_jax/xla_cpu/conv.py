"""Convolutions in the forms XLA:CPU runs fastest, with the same sums as `lax.conv_general_dilated`.

`conv2d` is the one entry point (`models.layers.Conv2d` calls it). On every platform a 1x1 convolution is a
(subsample and) matrix product. On CPU only, chosen when the program is lowered (`lax.platform_dependent`):

* a stride-1 dilated convolution runs as one product per kernel tap, skipping taps that read only padding
  (`dilated_as_taps`);
* on a single device, the kernel gradients of some convolutions have their own forms (`kernel_grad_method`):
  per tap ('taps'), one product with shifted cotangents ('shifted'), or a sum of per-sample gradients
  ('per_sample'); the rest keep XLA's ('xla').

A program lowered for a GPU or TPU (also ahead of time on a CPU host) gets XLA's convolution and gradients. The
thresholds below are the measured crossovers; the figures are in docs/cpu_kernels.md ("The thresholds").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from texrnet_jax import xla_cpu

# Kernel gradients per sample on a single CPU device, for feature maps of at least this many output pixels.
PER_SAMPLE_KERNEL_GRAD_MIN_PIXELS = 32 * 32
# Kernel gradients as per-tap products on a single CPU device, for maps and channel counts of at least these sizes
# (the map size also bounds the shifted-cotangent form).
TAPS_KERNEL_GRAD_MIN_PIXELS = 64 * 64
TAPS_KERNEL_GRAD_MIN_CHANNELS = 256
# Kernel gradients as one product with shifted copies of the cotangent, for inputs at least this wide.
SHIFTED_KERNEL_GRAD_MIN_IN_CHANNELS = 256

KERNEL_GRAD_METHODS = ("taps", "shifted", "per_sample", "xla")


def conv2d(x: jax.Array, w: jax.Array, *, stride: int, padding: int, dilation: int, precision,
           kernel_grad: str | None = None) -> jax.Array:
    """NHWC x HWIO convolution with symmetric `padding`, in the fastest form for the platform it is lowered for.

    Args:
        x: `[N, H, W, Cin]` input.
        w: `[k, k, Cin, Cout]` kernel.
        stride, padding, dilation: as in PyTorch's `Conv2d` (the same on both spatial axes).
        precision: the `lax.Precision` of the products.
        kernel_grad: force this kernel-gradient form on CPU (one of `KERNEL_GRAD_METHODS`) instead of the measured
            choice; for tests and benchmarks.

    With the forms switched off (`xla_cpu.disabled()`), this is `lax.conv_general_dilated` on every platform.
    """
    if kernel_grad is not None and kernel_grad not in KERNEL_GRAD_METHODS:
        raise ValueError(f"kernel_grad must be one of {KERNEL_GRAD_METHODS}, got {kernel_grad!r}")
    if not xla_cpu.enabled():
        return xla_conv(x, w, stride, padding, dilation, precision)
    if w.shape[0] == 1 and w.shape[1] == 1 and padding == 0:
        # A strided 1x1 convolution reads every stride-th pixel from the first: a subsample, then a product.
        x = x[:, ::stride, ::stride] if stride > 1 else x
        return pointwise(x, w[0, 0], precision)
    conv = functools.partial(xla_conv, stride=stride, padding=padding, dilation=dilation, precision=precision)
    cpu = _cpu_form(x.shape, w.shape, stride, padding, dilation, precision, kernel_grad)
    # Only the branch of the platform the program is lowered for reaches the compiler.
    return conv(x, w) if cpu is None else jax.lax.platform_dependent(x, w, cpu=cpu, default=conv)


def pointwise(x, w, precision) -> jax.Array:
    """A 1x1 convolution as a product of the pixels as rows `[N*H*W, Cin]` with `w` `[Cin, Cout]`.

    The kernel gradient is then `rows^T @ cotangent`, which XLA:CPU multiplies as stored; from a 4-d einsum it
    first copies each cotangent transposed.
    """
    return jnp.dot(x.reshape(-1, x.shape[-1]), w, precision=precision).reshape(*x.shape[:-1], w.shape[-1])


def xla_conv(x, w, stride: int, padding: int, dilation: int, precision) -> jax.Array:
    """XLA's own convolution (symmetric padding, NHWC x HWIO)."""
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        rhs_dilation=(dilation, dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=precision,
    )


def single_device() -> bool:
    """One device: that of the mesh set with `jax.set_mesh` (a compile target, e.g. a TPU slice), else this host's.

    The single-device forms slice the batch; over several devices each slice would live on one of them. Tracing
    asks, because the CPU branches are traced for every platform.
    """
    mesh = jax.sharding.get_abstract_mesh()
    return mesh.size == 1 if not mesh.empty else jax.device_count() == 1


def dilated_as_taps(stride: int, dilation: int) -> bool:
    """Whether a dilated convolution runs as one product per kernel tap on CPU (any number of devices).

    XLA:CPU computes a dilated convolution over its whole zero padding.
    """
    return stride == 1 and dilation > 1


def per_sample_kernel_grad(x_shape, stride: int = 1) -> bool:
    """Whether the kernel gradient is a sum of per-sample kernel gradients (single CPU device, maps >= 32x32).

    XLA:CPU's kernel-gradient convolution slows down far more than linearly with the batch; small maps lose.
    """
    n, h, w = x_shape[0], x_shape[1], x_shape[2]
    return n > 1 and (h // stride) * (w // stride) >= PER_SAMPLE_KERNEL_GRAD_MIN_PIXELS and single_device()


def taps_kernel_grad(x_shape, w_shape, stride: int = 1, dilation: int = 1) -> bool:
    """Whether the kernel gradient is one product per tap and sample (`_kernel_grad_taps`).

    Wide (>= 256 channels in and out) 3x3 stride-1 convolutions on maps of at least 64x64 on a single CPU device:
    the DeepLab decoder. Narrower ones win in isolation but made the HRNet-W48 step slower.
    """
    return (w_shape[0] == 3 and w_shape[1] == 3 and stride == 1 and dilation == 1
            and x_shape[1] * x_shape[2] >= TAPS_KERNEL_GRAD_MIN_PIXELS
            and min(w_shape[2], w_shape[3]) >= TAPS_KERNEL_GRAD_MIN_CHANNELS and single_device())


def shifted_kernel_grad(x_shape, w_shape, stride: int = 1, dilation: int = 1) -> bool:
    """Whether the kernel gradient is one product with shifted cotangents per sample (`_kernel_grad_shifted`).

    Stride-1 convolutions from a wide input (>= 256 channels) on maps of at least 64x64 on a single CPU device,
    where XLA:CPU first copies the whole input transposed: the refinement head's 5x5 convolutions and HRNet's
    first transition.
    """
    return (w_shape[0] > 1 and stride == 1 and dilation == 1 and x_shape[1] * x_shape[2] >= TAPS_KERNEL_GRAD_MIN_PIXELS
            and w_shape[2] >= SHIFTED_KERNEL_GRAD_MIN_IN_CHANNELS and single_device())


def kernel_grad_method(x_shape, w_shape, stride: int = 1, dilation: int = 1) -> str:
    """The CPU kernel-gradient form of a convolution: 'taps', 'shifted', 'per_sample' or XLA's own ('xla')."""
    if taps_kernel_grad(x_shape, w_shape, stride, dilation):
        return "taps"
    if shifted_kernel_grad(x_shape, w_shape, stride, dilation):
        return "shifted"
    if per_sample_kernel_grad(x_shape, stride):
        return "per_sample"
    return "xla"


def _cpu_form(x_shape, w_shape, stride: int, padding: int, dilation: int, precision, kernel_grad: str | None):
    """The CPU form of a (non-1x1) convolution `(x, w) -> y` where it is not XLA's own, else None."""
    if dilated_as_taps(stride, dilation):
        return functools.partial(_conv_taps, padding=padding, dilation=dilation, precision=precision)
    method = kernel_grad or kernel_grad_method(x_shape, w_shape, stride, dilation)
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
            part = pointwise(x[:, r0 + dy:r1 + dy, c0 + dx:c1 + dx], w[ky, kx], precision)
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

    # A loop, not unrolled: one sample's shifted cotangents live at a time.
    dw, _ = jax.lax.scan(add_sample, jnp.zeros((k * k * cout, cin), jnp.float32), (xf, gf))
    return dw.reshape(k, k, cout, cin).transpose(0, 1, 3, 2)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5, 6))
def _conv_own_kernel_grad(x, w, stride, padding, dilation, precision, method):
    return xla_conv(x, w, stride, padding, dilation, precision)


def _conv_okg_fwd(x, w, stride, padding, dilation, precision, method):
    return xla_conv(x, w, stride, padding, dilation, precision), (x, w)


def _conv_okg_bwd(stride, padding, dilation, precision, method, res, g):
    x, w = res
    conv = functools.partial(xla_conv, stride=stride, padding=padding, dilation=dilation, precision=precision)
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
