"""The reference's resampling rules, in one place: every module that resizes an image, a map or a label imports them.

* Bilinear with `align_corners=True` (the reference's convention for every resize) or False: the 1-D taps
  (`linear_taps`, computed in float32 as PyTorch does), their matrices (`interp_matrix`) and the separable
  resize of NHWC arrays (`resize_bilinear`).
* The reference's nearest rule for integer labels (`nearest_indices`, `resize_labels_nearest`).
* `precision_for`: full float32 products for float32 compute (no TF32 on GPUs), the default for bfloat16.

A leaf: it imports only numpy and JAX.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

ArrayLike = jax.Array | np.ndarray


def precision_for(dtype) -> jax.lax.Precision:
    """`HIGHEST` for float32 compute (no TF32 on GPUs), `DEFAULT` for bfloat16."""
    return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else jax.lax.Precision.DEFAULT


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
    prec = precision_for(x.dtype)
    if oh != h:
        x = jnp.einsum("oh,nhwc->nowc", jnp.asarray(interp_matrix(h, oh, align_corners), x.dtype), x, precision=prec)
    if ow != w:
        x = jnp.einsum("pw,nowc->nopc", jnp.asarray(interp_matrix(w, ow, align_corners), x.dtype), x, precision=prec)
    return x


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source indices of the reference nearest resize (align_corners=True grid) along one axis.

    The positions are `p = linspace(0, in_size - 1, out_size)` in float64. The reference nudges them by
    one float64 epsilon (relative) before `rint`: up for the first `out_size // 2` outputs and down for
    the rest, so exact .5 positions round towards the centre instead of to the even neighbour.

    Args:
        in_size: input length (>= 1).
        out_size: output length (>= 1). `out_size == 1` samples index 0.

    Returns:
        [out_size] int64 indices into the input axis.
    """
    in_size, out_size = int(in_size), int(out_size)
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
    p = np.linspace(0.0, in_size - 1, num=out_size, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    half = out_size // 2
    # `p + eps * p` is how the reference writes it; it rounds identically to `p * (1 + eps)`.
    nudged = np.concatenate([p[:half] + eps * p[:half], p[half:] - eps * p[half:]])
    return np.rint(nudged).astype(np.int64)


def resize_labels_nearest(labels: ArrayLike, out_hw: Sequence[int]) -> ArrayLike:
    """Resizes integer label maps with the reference nearest rule (`nearest_indices` per axis).

    Works on numpy arrays (returns numpy, for the host input pipeline) and on jax arrays, also under
    jit (the indices are computed from the static shapes at trace time).

    Args:
        labels: [..., H, W] integer labels, typically [N, H, W].
        out_hw: (h, w) output size.

    Returns:
        [..., h, w] labels of the input dtype and array type.
    """
    in_h, in_w = labels.shape[-2:]
    out_h, out_w = int(out_hw[0]), int(out_hw[1])
    xp = np if isinstance(labels, np.ndarray) else jnp
    if in_h != out_h:
        labels = xp.take(labels, nearest_indices(in_h, out_h), axis=-2)
    if in_w != out_w:
        labels = xp.take(labels, nearest_indices(in_w, out_w), axis=-1)
    return labels
