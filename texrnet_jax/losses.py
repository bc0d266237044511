"""TexRNet training losses: label resizing, CE with ignore label, trimap CE and the glyph-discriminator loss.

Pure, jit-compatible functions on NHWC logits, following the reference's segmentation losses and its glyph
classifier loss.
Losses are computed at logit resolution (stride 4): the integer label is downsampled with the
reference's nearest rule and the logits are never upsampled. Unlike the reference, a term with no pixel
to average over is 0 (with a zero gradient) instead of NaN; `texrnet_losses` reports it in its counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from texrnet_jax.constants import GLYPH_NUM_CLASSES, GLYPH_OTHER_CLASS
from texrnet_jax.resample import resize_labels_nearest

ArrayLike = jax.Array | np.ndarray


def cross_entropy_ignore(logits: jax.Array, labels: jax.Array, ignore_label: int) -> tuple[jax.Array, jax.Array]:
    """Mean softmax cross-entropy over the valid pixels of the whole batch (torch `ignore_index` style).

    A pixel is valid when its label is a class index `0 <= label < C` and differs from `ignore_label`.
    Every other value (the ignore label, 255 in a 999 data set, negatives) is skipped instead of being
    gathered out of bounds. With no valid pixel the loss is 0 and so is its gradient (torch gives NaN).

    Args:
        logits: [N, h, w, C] logits (any float dtype; the math runs in float32).
        labels: [N, h, w] integer labels at logit resolution.
        ignore_label: label value to skip.

    Returns:
        (loss, num_valid): the float32 scalar mean loss and the int32 scalar number of valid pixels.
    """
    logits = logits.astype(jnp.float32)
    num_classes = logits.shape[-1]
    labels = labels.astype(jnp.int32)
    valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
    safe = jnp.where(valid, labels, 0)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    # `nll` is finite everywhere (safe labels), so masking with where keeps the gradient finite too.
    total = jnp.sum(jnp.where(valid, nll, 0.0))
    num_valid = jnp.sum(valid, dtype=jnp.int32)
    return total / jnp.maximum(num_valid, 1).astype(jnp.float32), num_valid


def trimap_labels(labels_small: ArrayLike, ignore_label: int, num_classes: int | None = None) -> jax.Array:
    """Keeps only the 4-neighbour label-change band of a label map; everything else becomes ignore.

    Reference rule (its `trimapce` loss): a pixel is a boundary pixel if any 4-neighbour has a different label.
    It is ignored if it or any 4-neighbour equals `ignore_label`, or if it lies on the image border
    (the missing neighbour counts as ignore). Non-boundary pixels are ignored as well.

    Args:
        labels_small: [N, h, w] integer labels, already at logit resolution.
        ignore_label: the ignore value.
        num_classes: if given, any label outside [0, num_classes) is treated like `ignore_label` (for
            example 255 in a data set whose ignore value is 999). The reference only knows
            `ignore_label`; with None this function follows it exactly, and both agree whenever every
            label is a class or the ignore value.

    Returns:
        [N, h, w] int32 labels: the input value on the band, `ignore_label` elsewhere.
    """
    lab = jnp.asarray(labels_small).astype(jnp.int32)
    ign = lab == ignore_label
    if num_classes is not None:
        ign = ign | (lab < 0) | (lab >= num_classes)
    h, w = lab.shape[-2:]
    # Pad the ignore mask with True so that image-border pixels see an ignored neighbour, as in the reference.
    lab_p = jnp.pad(lab, ((0, 0), (1, 1), (1, 1)))
    ign_p = jnp.pad(ign, ((0, 0), (1, 1), (1, 1)), constant_values=True)
    differs = jnp.zeros_like(ign)
    near_ignore = ign
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nb_lab = lab_p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        nb_ign = ign_p[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        differs = differs | (nb_lab != lab)
        near_ignore = near_ignore | nb_ign
    keep = differs & ~near_ignore
    return jnp.where(keep, lab, jnp.asarray(ignore_label, jnp.int32))


def texrnet_losses(
    logit_sem: jax.Array,
    logit_rfn: jax.Array | None,
    labels: ArrayLike,
    ignore_label: int,
    weights: Sequence[float] = (1.0, 0.5, 0.5),
) -> dict[str, jax.Array]:
    """The TexRNet training loss: semantic CE, refined CE and trimap CE at stride 4.

    Args:
        logit_sem: [N, h, w, C] semantic (coarse) logits at stride 4.
        logit_rfn: [N, h, w, C] refined logits, or None for the baseline without refinement (its two
            terms are then 0).
        labels: [N, H, W] integer labels at input resolution; downsampled here to (h, w).
        ignore_label: the data set's ignore value (999 or 255). Other label values that are not a class
            (such as 255 in a 999 data set) are ignored as well, also for the trimap band.
        weights: weights of (losssem, lossrfn, lossrfntri); the reference uses (1, 0.5, 0.5).

    Returns:
        A dict of float32 scalars: `losssem`, `lossrfn`, `lossrfntri`, `total` (the weighted sum),
        `num_valid` (valid pixels of the semantic/refined CE), `num_trimap` (pixels of the trimap band),
        and the flags `valid_empty` / `trimap_empty` (1.0 when that count is 0, in which case the
        matching terms are 0 rather than the reference's NaN).
    """
    out_hw, num_classes = logit_sem.shape[1:3], logit_sem.shape[-1]
    labels_small = resize_labels_nearest(jnp.asarray(labels), out_hw).astype(jnp.int32)
    losssem, num_valid = cross_entropy_ignore(logit_sem, labels_small, ignore_label)
    if logit_rfn is None:
        lossrfn = lossrfntri = jnp.zeros((), jnp.float32)
        num_trimap = jnp.sum(trimap_labels(labels_small, ignore_label, num_classes) != ignore_label, dtype=jnp.int32)
    else:
        lossrfn, _ = cross_entropy_ignore(logit_rfn, labels_small, ignore_label)
        trimap = trimap_labels(labels_small, ignore_label, num_classes)
        lossrfntri, num_trimap = cross_entropy_ignore(logit_rfn, trimap, ignore_label)
    w_sem, w_rfn, w_tri = (float(x) for x in weights)
    total = w_sem * losssem + w_rfn * lossrfn + w_tri * lossrfntri
    return {
        "losssem": losssem,
        "lossrfn": lossrfn,
        "lossrfntri": lossrfntri,
        "total": total,
        "num_valid": num_valid.astype(jnp.float32),
        "num_trimap": num_trimap.astype(jnp.float32),
        "valid_empty": (num_valid == 0).astype(jnp.float32),
        "trimap_empty": (num_trimap == 0).astype(jnp.float32),
    }


# ----------------------------------------------------------------------------------------------------
# Glyph discriminator (the reference's `--trainwithcls` loss `losscls`, weight 0.1 in the total).
# ----------------------------------------------------------------------------------------------------


def _axis_weights(start, bin_size, grid, num_bins: int, size: int, max_grid: int) -> jax.Array:
    """Per-box [K, num_bins, size] matrix that sums torchvision's bilinear samples of each bin along one axis."""
    g = jnp.arange(max_grid, dtype=jnp.float32)
    b = jnp.arange(num_bins, dtype=jnp.float32)
    safe_grid = jnp.maximum(grid, 1).astype(jnp.float32)
    # Sample positions exactly as torchvision: start + bin * bin_size + (i + 0.5) * bin_size / grid.
    pos = (
        start[:, None, None]
        + b[None, :, None] * bin_size[:, None, None]
        + (g[None, None, :] + 0.5) * bin_size[:, None, None] / safe_grid[:, None, None]
    )
    used = (g[None, None, :] < grid[:, None, None]) & (pos >= -1.0) & (pos <= size)
    pos = jnp.maximum(pos, 0.0)
    low = jnp.floor(pos).astype(jnp.int32)
    at_end = low >= size - 1
    low = jnp.where(at_end, size - 1, low)
    high = jnp.where(at_end, size - 1, low + 1)
    frac = jnp.where(at_end, 0.0, pos - low.astype(jnp.float32))
    weight = jnp.where(used, 1.0, 0.0)
    onehot_low = jax.nn.one_hot(low, size, dtype=jnp.float32)
    onehot_high = jax.nn.one_hot(high, size, dtype=jnp.float32)
    w = (weight * (1.0 - frac))[..., None] * onehot_low + (weight * frac)[..., None] * onehot_high
    return jnp.sum(w, axis=2)


def roi_align(
    features: jax.Array,
    boxes: jax.Array,
    output_size: int | tuple[int, int] = 32,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = True,
    max_sampling_grid: int | None = None,
) -> jax.Array:
    """`torchvision.ops.roi_align` on NHWC features, as a fixed-shape, differentiable computation.

    As in torchvision, each bin averages a `grid_h x grid_w` grid of bilinear samples (`grid =
    sampling_ratio` if > 0, else `ceil(roi_size / out_size)` per box); samples below -1 or beyond the
    map add 0 but still count, samples in [-1, 0] clamp to 0, samples past the last row/column use it.
    Bilinear sampling is separable, so each box is `Wy @ F @ Wx^T` with per-box [out, size] weights;
    the adaptive counts become a fixed grid of `max_sampling_grid` samples with the unused ones masked.

    Args:
        features: [N, H, W, C] feature maps.
        boxes: [K, 5] rows `(batch_index, x1, y1, x2, y2)` in input pixel coordinates (torchvision's
            Tensor[K, 5] form). Gradients are not propagated into the boxes (as in torchvision).
        output_size: bin count `out` or `(out_h, out_w)`.
        spatial_scale: factor from box coordinates to feature coordinates.
        sampling_ratio: samples per bin and axis; <= 0 means adaptive.
        aligned: subtract 0.5 from the scaled coordinates (pixel-centre alignment).
        max_sampling_grid: static cap on the adaptive sample count per bin and axis. Defaults to
            `max(H, W) // min(out_h, out_w) + 1`, enough for any box that lies inside the map (5 for a
            129 x 129 map and 32 x 32 bins). A larger box with adaptive sampling gets only this many
            samples per bin and axis (an approximation of torchvision); a positive `sampling_ratio`
            raises the cap, so fixed sampling is always exact.

    Returns:
        [K, out_h, out_w, C] pooled features, float32.
    """
    out_h, out_w = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    _, height, width, _ = features.shape
    if max_sampling_grid is None:
        # floor + 1 rather than ceil: a box as large as the map whose size divides exactly by the bin
        # count could otherwise get one sample too few after float32 round-off.
        max_sampling_grid = max(height, width) // min(out_h, out_w) + 1
    if sampling_ratio > 0:
        max_sampling_grid = max(max_sampling_grid, int(sampling_ratio))
    boxes = jax.lax.stop_gradient(boxes.astype(jnp.float32))
    batch_idx = boxes[:, 0].astype(jnp.int32)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (boxes[:, i] * spatial_scale - offset for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = jnp.maximum(roi_w, 1.0), jnp.maximum(roi_h, 1.0)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    if sampling_ratio > 0:
        grid_h = jnp.full(roi_h.shape, sampling_ratio, jnp.int32)
        grid_w = jnp.full(roi_w.shape, sampling_ratio, jnp.int32)
    else:
        grid_h = jnp.ceil(roi_h / out_h).astype(jnp.int32)
        grid_w = jnp.ceil(roi_w / out_w).astype(jnp.int32)
    grid_h_used = jnp.minimum(grid_h, max_sampling_grid)
    grid_w_used = jnp.minimum(grid_w, max_sampling_grid)
    wy = _axis_weights(y1, bin_h, grid_h_used, out_h, height, max_sampling_grid)
    wx = _axis_weights(x1, bin_w, grid_w_used, out_w, width, max_sampling_grid)
    # torchvision divides by max(grid_h * grid_w, 1), even when a degenerate box has no samples.
    count = jnp.maximum(grid_h_used * grid_w_used, 1).astype(jnp.float32)
    feats = features.astype(jnp.float32)[batch_idx]
    pooled = jnp.einsum("kph,khwc,kqw->kpqc", wy, feats, wx)
    return pooled / count[:, None, None, None]


def glyph_loss(
    classifier_fn: Callable[[jax.Array], jax.Array],
    prob_text: jax.Array,
    boxes: jax.Array,
    box_batch_idx: jax.Array,
    box_labels: jax.Array,
    box_valid: jax.Array,
    input_hw: Sequence[int],
    pred_hw: Sequence[int] | None = None,
    roi_size: int = 32,
) -> tuple[jax.Array, jax.Array]:
    """Glyph-discriminator loss `losscls`: a frozen character classifier on crops of the text probability.

    Follows the reference `ts_with_classifier`: boxes that leave the input crop or have the "other"
    class 36 are dropped; the remaining boxes are divided by the per-axis ratio `input / pred`
    (513 / 129, not exactly 4), cropped from `prob_text` with `roi_align` (aligned, 32 x 32, adaptive
    sampling) and classified; the loss is the mean cross-entropy against the box classes. With fewer
    than 2 valid boxes in the batch the reference runs a dummy batch times 0, so this returns 0 (and a
    zero gradient). The weight 0.1 of the total loss is applied by the caller.

    Args:
        classifier_fn: frozen classifier, [K, roi, roi, 1] crops -> [K, 37] logits. It sees all K crops,
            the dropped ones as zeros, so it must treat crops independently (eval-mode BatchNorm).
        prob_text: [N, h, w, 1] text-class softmax of the semantic logits (stride 4).
        boxes: [K, 4] boxes `(y1, x1, y2, x2)` in input (crop) pixels, the row-first order of the
            reference data pipeline, squared and with exclusive max. Padded rows may hold anything finite.
        box_batch_idx: [K] image index of each box.
        box_labels: [K] class in [0, 37).
        box_valid: [K] bool, False for padding rows.
        input_hw: (H, W) of the network input.
        pred_hw: (h, w) of `prob_text`; defaults to its shape.
        roi_size: crop size fed to the classifier.

    Returns:
        (loss, num_boxes): the float32 scalar `losscls` and the int32 number of boxes used.
    """
    in_h, in_w = (float(v) for v in input_hw)
    pred_h, pred_w = prob_text.shape[1:3] if pred_hw is None else pred_hw
    boxes = boxes.astype(jnp.float32)
    box_labels = box_labels.astype(jnp.int32)
    y1, x1, y2, x2 = (boxes[:, i] for i in range(4))
    valid = (
        box_valid.astype(bool)
        & (y1 >= 0)
        & (x1 >= 0)
        & (y2 <= in_h)
        & (x2 <= in_w)
        & (box_labels != GLYPH_OTHER_CLASS)
        & (box_labels >= 0)
        & (box_labels < GLYPH_NUM_CLASSES)
    )
    ratio_h = jnp.float32(in_h / pred_h)
    ratio_w = jnp.float32(in_w / pred_w)
    rois = jnp.stack(
        [box_batch_idx.astype(jnp.float32), x1 / ratio_w, y1 / ratio_h, x2 / ratio_w, y2 / ratio_h], axis=-1
    )
    rois = jnp.where(valid[:, None], rois, 0.0)  # dropped rows become empty boxes: finite, all-zero crops
    crops = roi_align(prob_text, rois, output_size=roi_size, aligned=True)
    crops = jnp.where(valid[:, None, None, None], crops, 0.0)
    logits = classifier_fn(crops).astype(jnp.float32)
    # Reuse the pixel CE with a 1 x 1 "image" per box; dropped boxes get the ignore value -1.
    targets = jnp.where(valid, box_labels, -1)
    loss, num_boxes = cross_entropy_ignore(logits[:, None, None, :], targets[:, None, None], -1)
    return jnp.where(num_boxes >= 2, loss, 0.0), num_boxes
