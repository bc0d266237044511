"""Tests for texrnet_jax.metrics: the reference evaluator's values and hand-computed edge cases."""

import math

import numpy as np
import pytest

from texrnet_jax import metrics

SCALARS = ("fgiou", "miou", "iou_bg", "fscore", "fscore_bg", "precision", "recall")


@pytest.fixture(scope="module")
def k0(parity_dir):
    with np.load(parity_dir / "metrics_cases.npz") as d:
        case = {k[3:]: d[k] for k in d.files if k.startswith("k0/")}
    n = int(case["n"])
    case["preds"] = [case[f"pred{i}"] for i in range(n)]
    case["labels"] = [case[f"label{i}"] for i in range(n)]
    return case


def test_reference_values(k0):
    assert int(k0["ignore"]) == 999
    result = metrics.evaluate_masks(k0["preds"], k0["labels"], int(k0["ignore"]))
    for key in SCALARS:
        assert abs(result[key] - float(k0[key])) <= 1e-9, (key, result[key], float(k0[key]))
    assert result["num_images"] == int(k0["n"]) == 6


def test_reference_per_image_counts(k0):
    acc = metrics.SegMetrics()
    for pred, label in zip(k0["preds"], k0["labels"], strict=True):
        acc.update(pred, label)
    for key in metrics.COUNT_KEYS:
        np.testing.assert_array_equal(acc.counts[key], k0[f"per_image/{key}"], err_msg=key)
    per_image = acc.per_image()
    np.testing.assert_allclose(per_image["precision"][:, 1], k0["per_image/prec_img"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(per_image["recall"][:, 1], k0["per_image/recl_img"], rtol=0, atol=1e-12)
    assert k0["tags"][3] == "no_text_in_label" and per_image["recall"][3, 1] == 0.0
    # Worst images by per-image mIoU, from the reference's own counts.
    inter, union = k0["per_image/I"].astype(float), k0["per_image/U"].astype(float)
    expected_order = np.argsort(np.nanmean(np.where(union > 0, inter / np.maximum(union, 1), np.nan), axis=1))
    np.testing.assert_array_equal(acc.worst(3), expected_order[:3])


def test_ignore_255_equals_999(k0):
    labels_255 = [np.where(lab == 999, 255, lab) for lab in k0["labels"]]
    base = metrics.evaluate_masks(k0["preds"], k0["labels"], 999)
    assert metrics.evaluate_masks(k0["preds"], labels_255, 255) == base
    assert metrics.evaluate_masks(k0["preds"], labels_255) == base  # labels >= 2 are ignored anyway
    assert metrics.evaluate_masks(k0["preds"], [lab.astype(np.uint8) for lab in labels_255], 255) == base


def test_two_halves_merged_equal_all_at_once(k0):
    whole = metrics.SegMetrics(999)
    first, second = metrics.SegMetrics(999), metrics.SegMetrics(999)
    for i, (pred, label) in enumerate(zip(k0["preds"], k0["labels"], strict=True)):
        whole.update(pred, label)
        (first if i < 3 else second).update(pred, label)
    merged = first.merge(second)
    assert merged.result() == whole.result()
    for key in metrics.COUNT_KEYS:
        np.testing.assert_array_equal(merged.counts[key], whole.counts[key])
    # Counts gathered as plain arrays (for example from other processes) give the same result.
    assert metrics.SegMetrics.from_arrays(whole.counts).result() == whole.result()


def test_padded_batch_with_valid_mask(k0):
    preds, labels = k0["preds"], k0["labels"]
    h = max(p.shape[0] for p in preds)
    w = max(p.shape[1] for p in preds)
    batch_pred = np.ones((len(preds) + 1, h, w), np.int64)  # padding predicts text everywhere
    batch_label = np.full((len(preds) + 1, h, w), 999)
    for i, (pred, label) in enumerate(zip(preds, labels, strict=True)):
        batch_pred[i, : pred.shape[0], : pred.shape[1]] = pred
        batch_label[i, : label.shape[0], : label.shape[1]] = label
    batch_label[-1] = 1  # a padded batch slot with real-looking content must be skipped
    acc = metrics.SegMetrics(999)
    acc.update_batch(batch_pred, batch_label, valid=np.arange(len(preds) + 1) < len(preds))
    assert acc.result() == metrics.evaluate_masks(preds, labels, 999)


def _hand_images():
    ign = 999
    return [
        # ordinary: text I=2, PN=3, GN=3, U=4; background I=1, PN=2, GN=2, U=3 (the ignore pixel is not counted)
        (np.array([[1, 1, 0], [0, 1, 0]]), np.array([[1, 0, 0], [ign, 1, 1]])),
        # no text in the label: text I=0, PN=1, GN=0, U=1; background I=3, PN=3, GN=4, U=4
        (np.array([[1, 0], [0, 0]]), np.zeros((2, 2), int)),
        # no text predicted: text I=0, PN=0, GN=2, U=2; background I=2, PN=4, GN=2, U=4
        (np.zeros((2, 2), int), np.array([[1, 0], [1, 0]])),
        # fully ignored: nothing counts
        (np.array([[1, 0, 1]]), np.full((1, 3), ign)),
    ]


def test_hand_computed_counts():
    expected = [
        {"I": [1, 2], "U": [3, 4], "PN": [2, 3], "GN": [2, 3]},
        {"I": [3, 0], "U": [4, 1], "PN": [3, 1], "GN": [4, 0]},
        {"I": [2, 0], "U": [4, 2], "PN": [4, 0], "GN": [2, 2]},
        {"I": [0, 0], "U": [0, 0], "PN": [0, 0], "GN": [0, 0]},
    ]
    for (pred, label), exp in zip(_hand_images(), expected, strict=True):
        got = metrics.image_counts(pred, label, 999)
        for key in metrics.COUNT_KEYS:
            assert got[key].dtype == np.int64 and got[key].shape == (2,)
            np.testing.assert_array_equal(got[key], exp[key], err_msg=key)


def test_hand_computed_metrics():
    preds, labels = zip(*_hand_images(), strict=True)
    result = metrics.evaluate_masks(preds, labels, 999)
    assert result["fgiou"] == pytest.approx(2 / 7, abs=1e-15)
    assert result["iou_bg"] == pytest.approx(6 / 11, abs=1e-15)
    assert result["miou"] == pytest.approx((2 / 7 + 6 / 11) / 2, abs=1e-15)
    # Text: per-image P = (2/3, 0, 0, 0) and R = (2/3, 0, 0, 0); all four images are in the means.
    assert result["precision"] == pytest.approx(1 / 6, abs=1e-15)
    assert result["recall"] == pytest.approx(1 / 6, abs=1e-15)
    assert result["fscore"] == pytest.approx(1 / 6, abs=1e-15)
    # Background: P = (1/2, 1, 1/2, 0) -> 1/2, R = (1/2, 3/4, 1, 0) -> 9/16, F = 9/17.
    assert result["precision_bg"] == pytest.approx(0.5, abs=1e-15)
    assert result["recall_bg"] == pytest.approx(9 / 16, abs=1e-15)
    assert result["fscore_bg"] == pytest.approx(9 / 17, abs=1e-15)
    assert result["num_images"] == 4


def test_class_that_never_occurs_is_nan_and_skipped_in_miou():
    # Neither labelled nor predicted text anywhere: text IoU is 0/0 = NaN, mIoU is the background IoU.
    preds = [np.zeros((3, 4), int), np.array([[0, 0], [1, 0]])]
    labels = [np.zeros((3, 4), int), np.array([[0, 0], [999, 0]])]
    result = metrics.evaluate_masks(preds, labels, 999)
    assert math.isnan(result["fgiou"])
    assert result["iou_bg"] == 1.0 and result["miou"] == 1.0
    assert result["precision"] == 0.0 and result["recall"] == 0.0 and result["fscore"] == 0.0
    assert result["fscore_bg"] == 1.0
    counts = [metrics.image_counts(p, g) for p, g in zip(preds, labels, strict=True)]
    stacked = {k: np.stack([c[k] for c in counts]) for k in metrics.COUNT_KEYS}
    per_image = metrics.SegMetrics.from_arrays(stacked).per_image()
    assert np.isnan(per_image["iou"][:, 1]).all() and np.array_equal(per_image["miou"], [1.0, 1.0])


def test_invalid_prediction_value_counts_as_miss_and_shape_check():
    got = metrics.image_counts(np.array([[2, 1]]), np.array([[1, 1]]))
    np.testing.assert_array_equal(got["I"], [0, 1])
    np.testing.assert_array_equal(got["PN"], [0, 1])
    np.testing.assert_array_equal(got["U"], [0, 2])
    with pytest.raises(ValueError):
        metrics.image_counts(np.zeros((2, 3)), np.zeros((3, 2)))


def test_empty_accumulator():
    result = metrics.SegMetrics().result()
    assert result["num_images"] == 0 and all(math.isnan(result[k]) for k in SCALARS)
