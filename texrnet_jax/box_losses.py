"""Box-supervised TexRNet losses in the style of BoxInst (Tian et al., CVPR 2021): training from word boxes alone.

With `config.loss.box_supervision` the pixel mask never reaches the loss (the pipeline does not even decode it);
each head is trained from the word boxes of the crop and the crop's colours with three terms:

* **Projection** (`box_prj`, BoxInst's projection loss). For every box, the text probability's maximum along y,
  taken over the box's rows, is a profile over the box's columns; every column of a word box holds ink, so the
  profile's target is 1 on every column. Likewise the maximum along x is a profile over the box's rows with
  target 1. Each profile is scored with BoxInst's dice, `1 - 2 sum(p t) / (sum(p^2) + sum(t^2) + 1e-5)`, which is 0
  exactly when the profile is 1 everywhere; the term is the mean column dice over the boxes plus the mean row dice.
  Unlike BoxInst (one mask per instance, projected over the whole image) the maxima run inside the box only, since
  one text map holds all words. Known mismatches with text: gaps between letters are empty columns, and the
  `word_box_pad` margin adds empty rows and columns (less than one stride-4 cell at the default 2 px).
* **Background** (`box_bg`): softmax cross-entropy with label 0 on every pixel outside all boxes (counted and
  don't-care ones), averaged over those pixels of the batch. A box says nothing about its inside, but it does say
  that everything outside it is not text: this is the strongest signal a box gives for free.
* **Pairwise colour affinity** (`box_pair`, BoxInst's pairwise loss). The crop is averaged over each logit cell
  (an area average over the stride around the cell's centre), converted to CIE Lab (exactly as
  `skimage.color.rgb2lab`: sRGB, D65, 2 degrees, no cheaper colour space), and each pair of cells `d` apart along
  the 8 directions (dilation `d`, BoxInst: 2) whose colour similarity `exp(-||lab_i - lab_j|| / theta) >= tau`
  (BoxInst: theta 2, tau 0.3) gets `-log(p_i p_j + (1 - p_i)(1 - p_j))`, computed from log-softmax with logaddexp.
  The mean runs over such pairs whose two cells lie inside counted boxes. Each unordered pair is counted once (4
  offsets; BoxInst visits both orders, which gives the same mean). BoxInst ramps this term up linearly over its
  first 10k iterations (`pairwise_warmup`).

Don't-care boxes (`box_ignore`): their pixels get no loss at all; they are neither background, nor part of any
box's profile, nor an end of a pair. A box cut by the crop (its coordinates pass the crop's edge; boxes are given
unclipped) keeps only the profile along the cut: a word cut at the right still has ink in every visible column, but
not in every row of the visible part, so a cut along x drops the row profile and a cut along y the column profile.
Its pixels are still not background and still count for the pairwise term.

Resolution: as in `losses.texrnet_losses`, everything is computed at logit resolution (stride 4) and the logits
are never upsampled. Logit cell `j` stands for crop pixel `resample.nearest_indices(H, h)[j]`, the pixel the
reference's nearest rule takes a label from; a cell is inside box `[y1, y2) x [x1, x2)` (crop pixels, inclusive-
exclusive, float) when that pixel's centre is, i.e. `y1 <= r + 0.5 < y2`, so the rasterised boxes agree with
downsampled masks.

Heads: the semantic and the refined logits both get the full set of terms (`losssem`, `lossrfn`, weighted by
`config.loss.sem` and `config.loss.rfn` as the pixel CE terms are). The refinement head sees the image at stride 4,
so the colour-affinity term is its natural boundary signal. The trimap term `lossrfntri` needs the pixel labels'
boundary band and is off (0) in this mode whatever `config.loss.rfntri` says.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from texrnet_jax.resample import nearest_indices

DICE_EPS = 1e-5  # BoxInst's dice_coefficient eps

# sRGB (D65) -> XYZ and the D65 white point, as skimage.color uses them.
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]], np.float32)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)


def rgb_from_normalized(image: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
    """Undoes `preprocessing.normalize_values`: `[..., 3]` normalised float -> RGB values in 0..255 (float32)."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    return (image.astype(jnp.float32) * std + mean) * 255.0


def rgb_to_lab(rgb: jax.Array) -> jax.Array:
    """CIE Lab (D65, 2 degree observer) of `[..., 3]` RGB values in 0..255, as `skimage.color.rgb2lab`."""
    c = jnp.clip(rgb.astype(jnp.float32) / 255.0, 0.0, 1.0)
    lin = jnp.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = jnp.einsum("...c,kc->...k", lin, jnp.asarray(_XYZ_FROM_RGB), precision=jax.lax.Precision.HIGHEST)
    t = xyz / jnp.asarray(_D65_WHITE)
    f = jnp.where(t > 0.008856, jnp.cbrt(t), 7.787 * t + 16.0 / 116.0)
    return jnp.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                     axis=-1)


def area_matrix(in_size: int, out_size: int) -> np.ndarray:
    """`[out, in]` float32 weights that average input pixels over each output cell of the align-corners grid.

    Output `j` sits at input position `p = j (in - 1) / (out - 1)` (pixel centres); its cell is `[p - s/2, p + s/2]`
    with `s = (in - 1) / (out - 1)` (clipped to the image) and pixel `r` (covering `[r - 0.5, r + 0.5]`) weighs its
    overlap with the cell. Equal sizes give the identity; `out == 1` averages everything.
    """
    r = np.arange(in_size, dtype=np.float64)
    if out_size == 1:
        lo, hi = np.array([-0.5]), np.array([in_size - 0.5])
    else:
        s = (in_size - 1) / (out_size - 1)
        p = np.arange(out_size, dtype=np.float64) * s
        lo, hi = np.maximum(p - s / 2, -0.5), np.minimum(p + s / 2, in_size - 0.5)
    w = np.clip(np.minimum(hi[:, None], r[None] + 0.5) - np.maximum(lo[:, None], r[None] - 0.5), 0.0, None)
    return (w / w.sum(1, keepdims=True)).astype(np.float32)


def box_masks(boxes: jax.Array, box_valid: jax.Array, box_ignore: jax.Array | None, input_hw: Sequence[int],
              out_hw: Sequence[int]) -> dict[str, jax.Array]:
    """Rasterises each image's boxes onto the logit grid (see the module docstring for the inside rule).

    Args:
        boxes: [N, K, 4] `[y1, x1, y2, x2]` float boxes in crop pixels, inclusive-exclusive, not clipped to the
            crop (a coordinate past the crop's edge marks the box as cut along that axis).
        box_valid: [N, K] bool, False for padding rows (which then do nothing at all).
        box_ignore: [N, K] bool, True for don't-care boxes; None = none.
        input_hw: (H, W) of the crop.
        out_hw: (h, w) of the logits.

    Returns:
        A dict of bool arrays: `region` [N, K, h, w] (cells of each counted box outside every don't-care box),
        `inside` [N, h, w] (cells of some counted box, outside don't-care boxes), `outside` [N, h, w] (cells of no
        valid box: background), `cols_ok` / `rows_ok` [N, K] (the box has a usable column / row profile).
    """
    (in_h, in_w), (out_h, out_w) = (int(v) for v in input_hw), (int(v) for v in out_hw)
    boxes = boxes.astype(jnp.float32)
    valid = box_valid.astype(bool)
    ignore = jnp.zeros_like(valid) if box_ignore is None else box_ignore.astype(bool) & valid
    counted = valid & ~ignore
    cy = jnp.asarray(nearest_indices(in_h, out_h), jnp.float32) + 0.5
    cx = jnp.asarray(nearest_indices(in_w, out_w), jnp.float32) + 0.5
    y1, x1, y2, x2 = (boxes[..., i, None] for i in range(4))
    in_rows = (cy >= y1) & (cy < y2)  # [N, K, h]
    in_cols = (cx >= x1) & (cx < x2)  # [N, K, w]
    cells = in_rows[..., :, None] & in_cols[..., None, :]  # [N, K, h, w]
    ignored = jnp.any(cells & ignore[..., None, None], axis=1)
    region = cells & counted[..., None, None] & ~ignored[:, None]
    return {
        "region": region,
        "inside": jnp.any(region, axis=1),
        "outside": ~jnp.any(cells & valid[..., None, None], axis=1),
        # Cut along y (rows missing): the column profile no longer has to be all ink, and vice versa.
        "cols_ok": counted & (boxes[..., 0] >= 0) & (boxes[..., 2] <= in_h),
        "rows_ok": counted & (boxes[..., 1] >= 0) & (boxes[..., 3] <= in_w),
    }


def _dice_to_ones(profile: jax.Array, used: jax.Array) -> jax.Array:
    """BoxInst dice between `profile` and a target of 1 on the `used` entries, over the last axis."""
    used = used.astype(jnp.float32)
    inter = jnp.sum(profile * used, axis=-1)
    denom = jnp.sum(profile * profile * used, axis=-1) + jnp.sum(used, axis=-1) + DICE_EPS
    return 1.0 - 2.0 * inter / denom


def projection_loss(prob_text: jax.Array, masks: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
    """Mean column-profile dice plus mean row-profile dice over the boxes (module docstring).

    Args:
        prob_text: [N, h, w] text probability.
        masks: `box_masks` output.

    Returns:
        (loss, num_profiles): float32 scalar (0 without a usable box) and the int32 number of profiles scored.
    """
    region = masks["region"]
    inside_p = jnp.where(region, prob_text[:, None].astype(jnp.float32), 0.0)  # probabilities are >= 0
    total, count = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
    for axis, ok in ((-2, masks["cols_ok"]), (-1, masks["rows_ok"])):
        used = jnp.any(region, axis=axis)  # [N, K, w] columns (or [N, K, h] rows) with a cell of the box
        dice = _dice_to_ones(jnp.max(inside_p, axis=axis), used)
        keep = ok & jnp.any(used, axis=-1)
        n = jnp.sum(keep, dtype=jnp.int32)
        total = total + jnp.sum(jnp.where(keep, dice, 0.0)) / jnp.maximum(n, 1).astype(jnp.float32)
        count = count + n
    return total, count


def background_loss(logits: jax.Array, outside: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy with label 0 (background) over the `outside` [N, h, w] cells; (loss, count)."""
    nll = -jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)[..., 0]
    n = jnp.sum(outside, dtype=jnp.int32)
    return jnp.sum(jnp.where(outside, nll, 0.0)) / jnp.maximum(n, 1).astype(jnp.float32), n


def _pair_views(x: jax.Array, dy: int, dx: int) -> tuple[jax.Array, jax.Array]:
    """The two ends `(x[i], x[i + (dy, dx)])` of every in-image pair, for [N, h, w, ...] arrays and dy >= 0."""
    h, w = x.shape[1:3]
    xa = slice(0, w - dx) if dx >= 0 else slice(-dx, w)
    xb = slice(dx, w) if dx >= 0 else slice(0, w + dx)
    return x[:, : h - dy, xa], x[:, dy:, xb]


def pair_offsets(dilation: int) -> tuple[tuple[int, int], ...]:
    """The 4 offsets that visit each unordered 8-neighbour pair at `dilation` once."""
    d = int(dilation)
    return ((0, d), (d, -d), (d, 0), (d, d))


def pairwise_weights(lab: jax.Array, inside: jax.Array, dilation: int = 2, theta: float = 2.0, tau: float = 0.3
                     ) -> list[jax.Array]:
    """Per offset of `pair_offsets`, the bool [N, h - dy, w - |dx|] pairs the pairwise loss averages over.

    Args:
        lab: [N, h, w, 3] Lab colour of each logit cell.
        inside: [N, h, w] cells inside counted boxes and outside don't-care boxes (`box_masks`).
        dilation, theta, tau: BoxInst's neighbour spacing, colour scale and similarity threshold.
    """
    out = []
    for dy, dx in pair_offsets(dilation):
        la, lb = _pair_views(lab, dy, dx)
        ia, ib = _pair_views(inside, dy, dx)
        similarity = jnp.exp(-jnp.sqrt(jnp.sum(jnp.square(la - lb), axis=-1)) / theta)
        out.append((similarity >= tau) & ia & ib)
    return out


def pairwise_loss(logits: jax.Array, weights: list[jax.Array], dilation: int = 2) -> tuple[jax.Array, jax.Array]:
    """Mean `-log(p_i p_j + (1 - p_i)(1 - p_j))` over the pairs of `pairwise_weights`; (loss, number of pairs)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    total, count = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
    for (dy, dx), w in zip(pair_offsets(dilation), weights, strict=True):
        a, b = _pair_views(logp, dy, dx)
        nll = -jnp.logaddexp(a[..., 1] + b[..., 1], a[..., 0] + b[..., 0])
        total = total + jnp.sum(jnp.where(w, nll, 0.0))
        count = count + jnp.sum(w, dtype=jnp.int32)
    return total / jnp.maximum(count, 1).astype(jnp.float32), count


def pairwise_warmup(step: jax.Array, warmup_steps: int) -> jax.Array:
    """BoxInst's linear ramp `min(step / warmup_steps, 1)` of the pairwise weight (1 when warmup_steps <= 0)."""
    if warmup_steps <= 0:
        return jnp.ones((), jnp.float32)
    return jnp.minimum(jnp.asarray(step, jnp.float32) / float(warmup_steps), 1.0)


def cell_lab(rgb: jax.Array, out_hw: Sequence[int]) -> jax.Array:
    """[N, H, W, 3] RGB (0..255) -> [N, h, w, 3] Lab of the RGB averaged over each logit cell (`area_matrix`)."""
    h, w = rgb.shape[1:3]
    prec = jax.lax.Precision.HIGHEST
    ay = jnp.asarray(area_matrix(h, int(out_hw[0])))
    ax = jnp.asarray(area_matrix(w, int(out_hw[1])))
    small = jnp.einsum("oh,nhwc,pw->nopc", ay, rgb.astype(jnp.float32), ax, precision=prec)
    return rgb_to_lab(small)


def texrnet_box_losses(
    logit_sem: jax.Array,
    logit_rfn: jax.Array | None,
    rgb: jax.Array,
    boxes: jax.Array,
    box_valid: jax.Array,
    box_ignore: jax.Array | None = None,
    weights: Sequence[float] = (1.0, 0.5),
    term_weights: Sequence[float | jax.Array] = (1.0, 1.0, 1.0),
    dilation: int = 2,
    theta: float = 2.0,
    tau: float = 0.3,
) -> dict[str, jax.Array]:
    """The box-supervised TexRNet loss: projection + background + pairwise on the semantic and refined logits.

    Args:
        logit_sem: [N, h, w, 2] semantic logits at stride 4.
        logit_rfn: [N, h, w, 2] refined logits, or None (its term is then 0).
        rgb: [N, H, W, 3] the crop's RGB values in 0..255 (`rgb_from_normalized` of the network input).
        boxes: [N, K, 4] word boxes `[y1, x1, y2, x2]` in crop pixels (`box_masks`).
        box_valid: [N, K] bool, False for padding rows.
        box_ignore: [N, K] bool don't-care boxes, or None.
        weights: weights of (losssem, lossrfn), `config.loss.sem` and `config.loss.rfn`.
        term_weights: weights of (projection, background, pairwise) within each head's loss; the pairwise one
            may be a traced scalar (the warm-up ramp).
        dilation, theta, tau: the pairwise term's neighbour spacing, colour scale and threshold.

    Returns:
        A dict of float32 scalars with the keys of `losses.texrnet_losses` (`lossrfntri` 0, `num_valid` the
        background cells, `valid_empty` 1.0 with neither a box profile nor a background cell, `num_trimap` and
        `trimap_empty` 0) plus `box_prj_{sem,rfn}`, `box_bg_{sem,rfn}`, `box_pair_{sem,rfn}`, `num_box_profiles`,
        `num_pairs`.
    """
    if logit_sem.shape[-1] != 2:
        raise ValueError(f"box supervision needs 2 classes (background, text); the logits have {logit_sem.shape[-1]}")
    out_hw = logit_sem.shape[1:3]
    masks = box_masks(boxes, box_valid, box_ignore, rgb.shape[1:3], out_hw)
    pair_w = pairwise_weights(cell_lab(rgb, out_hw), masks["inside"], dilation, theta, tau)
    w_prj, w_bg, w_pair = term_weights
    terms: dict[str, jax.Array] = {}

    def head(logits, name):
        prj, n_prof = projection_loss(jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[..., 1], masks)
        bg, n_bg = background_loss(logits, masks["outside"])
        pair, n_pair = pairwise_loss(logits, pair_w, dilation)
        terms.update({f"box_prj_{name}": prj, f"box_bg_{name}": bg, f"box_pair_{name}": pair})
        return w_prj * prj + w_bg * bg + w_pair * pair, n_prof, n_bg, n_pair

    losssem, n_prof, n_bg, n_pair = head(logit_sem, "sem")
    lossrfn = head(logit_rfn, "rfn")[0] if logit_rfn is not None else jnp.zeros((), jnp.float32)
    w_sem, w_rfn = (float(x) for x in weights)
    zero = jnp.zeros((), jnp.float32)
    return {
        "losssem": losssem,
        "lossrfn": lossrfn,
        "lossrfntri": zero,
        "total": w_sem * losssem + w_rfn * lossrfn,
        "num_valid": n_bg.astype(jnp.float32),
        "num_trimap": zero,
        "valid_empty": ((n_bg == 0) & (n_prof == 0)).astype(jnp.float32),
        "trimap_empty": zero,
        **terms,
        "num_box_profiles": n_prof.astype(jnp.float32),
        "num_pairs": n_pair.astype(jnp.float32),
    }
