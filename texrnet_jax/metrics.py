"""Text-segmentation metrics of the TexRNet reference evaluator: fgIoU, mIoU and the F-score.

Host-side numpy. Per image b and class c (0 = background, 1 = text) we count, on the pixels whose label
is a class (any label >= 2, such as 255 or 999, is ignored together with the prediction there):

* `I[b, c]`  = #(pred == c and label == c)
* `PN[b, c]` = #(pred == c) on non-ignored pixels
* `GN[b, c]` = #(label == c)
* `U[b, c]`  = PN + GN - I

The data-set metrics are then, as in the reference evaluator (`distributed_evaluator`, session 'rfn'):

* IoU_c = sum_b I[b, c] / sum_b U[b, c], accumulated over the data set (fgIoU is the text IoU);
  a class that never occurs (sum of U is 0) has IoU NaN, and mIoU is the mean of the non-NaN IoUs;
* P_b = I/PN (0 if PN == 0), R_b = I/GN (0 if GN == 0), P and R their means over *all* images and
  F = 2PR / (P + R), taken as 0 when P + R == 0 (the reference would give NaN there).

The per-image counts are kept (not only sums), so the F-score is exact and counts from several
processes or eval shards can be concatenated with `merge`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

NUM_CLASSES = 2
COUNT_KEYS = ("I", "U", "PN", "GN")
RESULT_KEYS = ("fgiou", "iou_bg", "miou", "fscore", "precision", "recall", "fscore_bg", "precision_bg", "recall_bg")


def image_counts(pred: np.ndarray, label: np.ndarray, ignore_label: int | None = None) -> dict[str, np.ndarray]:
    """Intersection, union, predicted and label counts of one image.

    Args:
        pred: [H, W] integer prediction (0 or 1; any other value predicts no class).
        label: [H, W] integer label. Values outside {0, 1} are ignored (255, 999, and negatives), and so
            is `ignore_label` if given (only matters for an unusual ignore value in {0, 1}).
        ignore_label: optional extra ignore value.

    Returns:
        dict with `I`, `U`, `PN`, `GN`, each [2] int64 (background, text).
    """
    pred = np.asarray(pred)
    label = np.asarray(label)
    if pred.shape != label.shape:
        raise ValueError(f"pred shape {pred.shape} != label shape {label.shape}")
    counted = (label >= 0) & (label < NUM_CLASSES)
    if ignore_label is not None:
        counted &= label != ignore_label
    out = {k: np.zeros(NUM_CLASSES, np.int64) for k in COUNT_KEYS}
    for c in range(NUM_CLASSES):
        is_pred = (pred == c) & counted
        is_label = (label == c) & counted
        out["I"][c] = np.count_nonzero(is_pred & is_label)
        out["PN"][c] = np.count_nonzero(is_pred)
        out["GN"][c] = np.count_nonzero(is_label)
    out["U"] = out["PN"] + out["GN"] - out["I"]
    return out


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0 (the reference's per-image precision and recall rule)."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def _fscore(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


class SegMetrics:
    """Accumulates per-image counts and turns them into the reference metrics.

    Attributes:
        ignore_label: extra ignore value passed to `image_counts` (labels >= 2 are always ignored).
        counts: dict of per-image count arrays `I`, `U`, `PN`, `GN`, each [num_images, 2] int64, in
            update order.
    """

    def __init__(self, ignore_label: int | None = None):
        self.ignore_label = ignore_label
        self._rows: dict[str, list[np.ndarray]] = {k: [] for k in COUNT_KEYS}

    @classmethod
    def from_arrays(cls, counts: Mapping[str, np.ndarray], ignore_label: int | None = None) -> SegMetrics:
        """Builds an accumulator from [n, 2] count arrays (for example gathered from other processes)."""
        metrics = cls(ignore_label)
        metrics.update_counts(counts)
        return metrics

    @property
    def num_images(self) -> int:
        return sum(len(r) for r in self._rows["I"])

    @property
    def counts(self) -> dict[str, np.ndarray]:
        return {
            k: np.concatenate(v, axis=0) if v else np.zeros((0, NUM_CLASSES), np.int64) for k, v in self._rows.items()
        }

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        """Adds one image: pred and label are [H, W] integer arrays of the same (any) size."""
        self.update_counts(image_counts(pred, label, self.ignore_label))

    def update_batch(self, preds: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Adds a padded batch: [B, H, W] preds and labels, skipping images with `valid[b] == False`.

        Padded pixels must carry an ignore label so that they do not count.
        """
        for b in range(len(preds)):
            if valid is None or bool(valid[b]):
                self.update(preds[b], labels[b])

    def update_counts(self, counts: Mapping[str, np.ndarray]) -> None:
        """Adds counts of one image ([2] arrays) or of several images ([n, 2] arrays)."""
        rows = {k: np.asarray(counts[k], np.int64).reshape(-1, NUM_CLASSES) for k in COUNT_KEYS}
        if len({len(r) for r in rows.values()}) != 1:
            shapes = {k: v.shape for k, v in rows.items()}
            raise ValueError(f"count arrays disagree on the number of images: {shapes}")
        for k in COUNT_KEYS:
            self._rows[k].append(rows[k])

    def merge(self, other: SegMetrics) -> SegMetrics:
        """Appends the images of `other` after the images of this accumulator; returns self."""
        self.update_counts(other.counts)
        return self

    def per_image(self) -> dict[str, np.ndarray]:
        """Per-image records for reports such as "find the worst images".

        Returns:
            dict with the counts plus `precision` and `recall` ([n, 2] float64, 0 where undefined),
            `iou` ([n, 2], NaN where the image has neither label nor prediction of that class) and
            `miou` ([n], the NaN-skipping mean of `iou`, NaN for a fully ignored image).
        """
        c = self.counts
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(c["U"] > 0, c["I"] / np.maximum(c["U"], 1), np.nan)
        has = ~np.isnan(iou)
        miou = np.where(has.any(axis=1), np.where(has, iou, 0.0).sum(axis=1) / np.maximum(has.sum(axis=1), 1), np.nan)
        return dict(
            c, precision=_safe_ratio(c["I"], c["PN"]), recall=_safe_ratio(c["I"], c["GN"]), iou=iou, miou=miou
        )

    def worst(self, n: int | None = None) -> np.ndarray:
        """Indices of the images with the lowest per-image mIoU, worst first (NaN images last)."""
        order = np.argsort(self.per_image()["miou"], kind="stable")
        return order if n is None else order[:n]

    def result(self) -> dict[str, float]:
        """The data-set metrics.

        Returns:
            dict of floats: `fgiou` (text IoU), `iou_bg`, `miou`, `fscore` / `precision` / `recall` (text,
            from the mean per-image precision and recall), `fscore_bg` / `precision_bg` / `recall_bg`
            (the same for the background class) and `num_images`. With no image every metric is NaN.
        """
        n = self.num_images
        if n == 0:
            return {**dict.fromkeys(RESULT_KEYS, float("nan")), "num_images": 0}
        c = self.counts
        inter, union = c["I"].sum(axis=0), c["U"].sum(axis=0)
        iou = np.full(NUM_CLASSES, np.nan)
        np.divide(inter.astype(np.float64), union.astype(np.float64), out=iou, where=union > 0)
        present = iou[~np.isnan(iou)]
        miou = float(present.mean()) if present.size else float("nan")
        # Mean over axis 0 of the [n, 2] arrays: the same reduction order as the reference evaluator.
        prec = _safe_ratio(c["I"], c["PN"]).mean(axis=0)
        recl = _safe_ratio(c["I"], c["GN"]).mean(axis=0)
        return {
            "fgiou": float(iou[1]),
            "iou_bg": float(iou[0]),
            "miou": miou,
            "fscore": _fscore(float(prec[1]), float(recl[1])),
            "precision": float(prec[1]),
            "recall": float(recl[1]),
            "fscore_bg": _fscore(float(prec[0]), float(recl[0])),
            "precision_bg": float(prec[0]),
            "recall_bg": float(recl[0]),
            "num_images": n,
        }


def evaluate_masks(
    preds: Sequence[np.ndarray] | Iterable[np.ndarray],
    labels: Sequence[np.ndarray] | Iterable[np.ndarray],
    ignore_label: int | None = None,
) -> dict[str, float]:
    """Metrics of a list of hard predictions against their labels (one-call form of `SegMetrics`).

    Args:
        preds: [H_i, W_i] integer predictions (0 background, 1 text), any size per image.
        labels: [H_i, W_i] integer labels with the same sizes; any value >= 2 is ignored.
        ignore_label: optional extra ignore value (255 and 999 are ignored anyway).

    Returns:
        The dict of `SegMetrics.result`: `fgiou`, `miou`, `fscore`, `precision`, `recall`, ...
    """
    metrics = SegMetrics(ignore_label)
    preds, labels = list(preds), list(labels)
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions but {len(labels)} labels")
    for pred, label in zip(preds, labels, strict=True):
        metrics.update(pred, label)
    return metrics.result()
