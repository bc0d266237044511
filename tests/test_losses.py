"""Tests for texrnet_jax.losses: reference fixtures, hand-computed cases, empty batches and roi_align."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from texrnet_jax import losses, resample

IGN = 999
FIXTURES = ("texrnet_hrnet_small.npz", "texrnet_deeplab_small.npz")
LOSS_KEYS = ("losssem", "lossrfn", "lossrfntri", "total")


def _nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


@pytest.fixture(scope="module", params=FIXTURES)
def fixture(request, parity_dir):
    with np.load(parity_dir / request.param) as d:
        prefixes = ("loss/", "aux/logit_", "train/logit_", "train/label", "train/loss", "train/total")
        return {k: d[k] for k in d.files if k.startswith(prefixes)}


# ---------------------------------------------------------------------------------------------------
# Reference fixtures.
# ---------------------------------------------------------------------------------------------------


def test_fixture_label_small_and_trimap_exact(fixture):
    label_small = resample.resize_labels_nearest(fixture["loss/label"], fixture["loss/label_small"].shape[1:])
    assert isinstance(label_small, np.ndarray)
    np.testing.assert_array_equal(label_small, fixture["loss/label_small"])
    trimap = np.asarray(losses.trimap_labels(label_small, IGN))
    np.testing.assert_array_equal(trimap, fixture["loss/trimap_target"])
    assert 100 < np.count_nonzero(trimap != IGN) < 2000  # a real band, not empty or everything


@pytest.mark.parametrize("prefix,src", [("loss", "aux"), ("train", "train")])
def test_fixture_losses(fixture, prefix, src):
    fn = jax.jit(losses.texrnet_losses, static_argnames=("ignore_label",))
    logit_sem, logit_rfn = _nhwc(fixture[f"{src}/logit_sem"]), _nhwc(fixture[f"{src}/logit_rfn"])
    out = fn(logit_sem, logit_rfn, fixture[f"{prefix}/label"], ignore_label=IGN)
    for k in LOSS_KEYS:
        np.testing.assert_allclose(float(out[k]), float(fixture[f"{prefix}/{k}"]), rtol=1e-5, err_msg=k)
    assert float(out["trimap_empty"]) == 0.0 and float(out["valid_empty"]) == 0.0
    if prefix == "loss":
        assert float(out["num_valid"]) == np.count_nonzero(fixture["loss/label_small"] != IGN)
        assert float(out["num_trimap"]) == np.count_nonzero(fixture["loss/trimap_target"] != IGN)


def test_fixture_non_class_label_acts_as_ignore(fixture):
    # 255 in a data set whose ignore value is 999 must behave exactly like 999 (CE and trimap band).
    logit_sem, logit_rfn = _nhwc(fixture["aux/logit_sem"]), _nhwc(fixture["aux/logit_rfn"])
    label_255 = np.where(fixture["loss/label"] == IGN, 255, fixture["loss/label"])
    out = jax.jit(losses.texrnet_losses, static_argnums=3)(logit_sem, logit_rfn, label_255, IGN)
    for k in LOSS_KEYS:
        np.testing.assert_allclose(float(out[k]), float(fixture[f"loss/{k}"]), rtol=1e-5, err_msg=k)


# ---------------------------------------------------------------------------------------------------
# Hand-computed cases.
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "in_size,out_size,expected",
    [
        (5, 3, [0, 2, 4]),
        (4, 3, [0, 1, 3]),  # 1.5 is in the second half: rounds down (towards the centre)
        (6, 3, [0, 2, 5]),  # 2.5 -> 2
        (4, 7, [0, 1, 1, 1, 2, 2, 3]),  # 0.5 -> 1 (first half, up); 1.5 -> 1 and 2.5 -> 2 (second half, down)
        (7, 1, [0]),
        (1, 4, [0, 0, 0, 0]),
        (3, 3, [0, 1, 2]),
        (3, 5, [0, 1, 1, 1, 2]),  # 0.5 -> 1 (i=1 < 2), 1.0, 1.5 -> 1 (i=3 >= 2)
    ],
)
def test_nearest_indices_small(in_size, out_size, expected):
    np.testing.assert_array_equal(resample.nearest_indices(in_size, out_size), expected)


def test_nearest_indices_exact_stride_and_range():
    np.testing.assert_array_equal(resample.nearest_indices(513, 129), np.arange(129) * 4)
    for in_size, out_size in [(256, 64), (320, 80), (1025, 257), (100, 37), (37, 100)]:
        idx = resample.nearest_indices(in_size, out_size)
        assert idx[0] == 0 and idx[-1] == in_size - 1 and np.all(np.diff(idx) >= 0)
    with pytest.raises(ValueError):
        resample.nearest_indices(4, 0)


def test_resize_labels_jax_matches_numpy():
    labels = np.random.default_rng(0).integers(0, 3, size=(2, 33, 45))
    expected = labels[:, resample.nearest_indices(33, 9)][:, :, resample.nearest_indices(45, 12)]
    got = jax.jit(lambda x: resample.resize_labels_nearest(x, (9, 12)))(jnp.asarray(labels))
    np.testing.assert_array_equal(np.asarray(got), expected)
    np.testing.assert_array_equal(resample.resize_labels_nearest(labels[0], (9, 12)), expected[0])


def test_trimap_tiny_label():
    x = IGN
    label = np.array(
        [
            [0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, x],
            [0, 0, 0, 0, 0, 0],
        ]
    )
    expected = np.array(
        [
            [x, x, x, x, x, x],
            [x, x, 0, 0, x, x],
            [x, 0, 1, 1, 0, x],
            [x, 0, 1, 1, 0, x],
            [x, x, 0, 0, x, x],  # (4, 4) is a boundary-free pixel next to the ignore pixel anyway
            [x, x, x, x, x, x],
        ]
    )
    got = np.asarray(losses.trimap_labels(np.stack([label, np.zeros_like(label)]), IGN))
    np.testing.assert_array_equal(got[0], expected)
    np.testing.assert_array_equal(got[1], np.full_like(label, IGN))  # constant image: no band


def test_trimap_ignore_neighbour_and_uint8_255():
    # Boundary pixels next to an ignore pixel are dropped; uint8 labels with ignore 255 work.
    label = np.zeros((1, 5, 5), np.uint8)
    label[0, :, 3:] = 1
    label[0, 1, 3] = 255
    got = np.asarray(losses.trimap_labels(label, 255))[0]
    expected = np.full((5, 5), 255)
    expected[2:4, 2] = 0  # (1, 2) is lost: its right neighbour is ignore
    expected[3, 3] = 1  # (2, 3) is lost: its upper neighbour is ignore
    np.testing.assert_array_equal(got, expected)
    # With num_classes, a non-class value (255 in a 999 data set) acts exactly like the ignore value.
    got_999 = np.asarray(losses.trimap_labels(label, IGN, num_classes=2))[0]
    np.testing.assert_array_equal(got_999, np.where(expected == 255, IGN, expected))


def test_cross_entropy_hand_values_and_invalid_labels():
    # p(text) = 3/4 everywhere: CE is -log(3/4) on text and -log(1/4) on background pixels.
    logits = jnp.broadcast_to(jnp.array([0.0, math.log(3.0)]), (1, 2, 3, 2))
    labels = jnp.array([[[1, 0, IGN], [255, -1, 1]]])  # 255 and -1 are not classes: skipped, not gathered
    loss, num = losses.cross_entropy_ignore(logits, labels, IGN)
    expected = (2 * -math.log(0.75) - math.log(0.25)) / 3
    assert int(num) == 3
    np.testing.assert_allclose(float(loss), expected, rtol=1e-6)


def _loss_and_grads(logit_sem, logit_rfn, labels):
    def f(a, b):
        return losses.texrnet_losses(a, b, labels, IGN)["total"]

    out = jax.jit(lambda a, b: losses.texrnet_losses(a, b, labels, IGN))(logit_sem, logit_rfn)
    grads = jax.jit(jax.grad(f, argnums=(0, 1)))(logit_sem, logit_rfn)
    return out, grads


def test_no_boundary_batch_gives_zero_trimap_term():
    rng = np.random.default_rng(1)
    sem, rfn = (jnp.asarray(rng.normal(size=(2, 8, 10, 2)), jnp.float32) for _ in range(2))
    labels = np.ones((2, 29, 37), np.int64)  # all text: no label change anywhere
    out, (g_sem, g_rfn) = _loss_and_grads(sem, rfn, labels)
    assert float(out["trimap_empty"]) == 1.0 and float(out["num_trimap"]) == 0.0
    assert float(out["lossrfntri"]) == 0.0
    assert float(out["valid_empty"]) == 0.0 and float(out["num_valid"]) == 160.0
    ce_rfn = float(jnp.mean(-jax.nn.log_softmax(rfn)[..., 1]))
    np.testing.assert_allclose(float(out["lossrfn"]), ce_rfn, rtol=1e-6)
    np.testing.assert_allclose(float(out["total"]), float(out["losssem"]) + 0.5 * ce_rfn, rtol=1e-6)
    assert np.all(np.isfinite(g_sem)) and np.all(np.isfinite(g_rfn))
    assert float(jnp.abs(g_rfn).sum()) > 0


def test_all_ignored_batch_is_zero_not_nan():
    rng = np.random.default_rng(2)
    sem, rfn = (jnp.asarray(rng.normal(size=(2, 8, 10, 2)), jnp.float32) for _ in range(2))
    labels = np.full((2, 29, 37), IGN)
    out, (g_sem, g_rfn) = _loss_and_grads(sem, rfn, labels)
    for k in LOSS_KEYS:
        assert float(out[k]) == 0.0, k
    assert float(out["valid_empty"]) == 1.0 and float(out["trimap_empty"]) == 1.0
    assert float(out["num_valid"]) == 0.0
    for g in (g_sem, g_rfn):
        assert np.all(np.isfinite(g)) and float(jnp.abs(g).max()) == 0.0


def test_without_refinement_and_bfloat16_logits():
    rng = np.random.default_rng(3)
    sem = jnp.asarray(rng.normal(size=(1, 4, 4, 2)), jnp.bfloat16)
    labels = np.zeros((1, 13, 13), np.int64)
    labels[0, :, 7:] = 1
    out = jax.jit(lambda s: losses.texrnet_losses(s, None, labels, IGN))(sem)
    assert out["losssem"].dtype == jnp.float32
    assert float(out["lossrfn"]) == 0.0 and float(out["lossrfntri"]) == 0.0
    np.testing.assert_allclose(float(out["total"]), float(out["losssem"]), rtol=0)
    assert float(out["num_trimap"]) == 4.0  # rows 1-2 on both sides of the change between columns 1 and 2


# ---------------------------------------------------------------------------------------------------
# roi_align and the glyph loss.
# ---------------------------------------------------------------------------------------------------


def _roi_align_loops(feat, rois, out, sampling_ratio=-1, aligned=True):
    """Direct transcription of torchvision's documented roi_align algorithm (one sample at a time)."""
    _, height, width, channels = feat.shape
    res = np.zeros((len(rois), out, out, channels))

    def bilinear(img, y, x):
        if y < -1.0 or y > height or x < -1.0 or x > width:
            return np.zeros(channels)
        y, x = max(y, 0.0), max(x, 0.0)
        y0, x0 = int(y), int(x)
        if y0 >= height - 1:
            y0 = y1 = height - 1
            y = float(y0)
        else:
            y1 = y0 + 1
        if x0 >= width - 1:
            x0 = x1 = width - 1
            x = float(x0)
        else:
            x1 = x0 + 1
        ly, lx = y - y0, x - x0
        return (
            (1 - ly) * (1 - lx) * img[y0, x0]
            + (1 - ly) * lx * img[y0, x1]
            + ly * (1 - lx) * img[y1, x0]
            + ly * lx * img[y1, x1]
        )

    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois):
        sx, sy, ex, ey = x1 - off, y1 - off, x2 - off, y2 - off
        rw, rh = ex - sx, ey - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / out, rw / out
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / out)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / out)
        count = max(gh * gw, 1)
        for p in range(out):
            for q in range(out):
                acc = np.zeros(channels)
                for iy in range(gh):
                    y = sy + p * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = sx + q * bw + (ix + 0.5) * bw / gw
                        acc += bilinear(feat[int(b)], y, x)
                res[k, p, q] = acc / count
    return res


def test_roi_align_constant_and_ramp():
    roi_align = jax.jit(losses.roi_align, static_argnums=2, static_argnames=("aligned",))
    const = jnp.full((1, 8, 8, 1), 2.5)
    boxes = jnp.array([[0, 0.5, 0.5, 4.5, 4.5], [0, 1.0, 2.0, 7.0, 6.0]])
    np.testing.assert_allclose(np.asarray(roi_align(const, boxes, 2)), 2.5, rtol=1e-6)
    # f(y, x) = 10 y + x is reproduced exactly by bilinear sampling, so each bin gives its centre value.
    yy, xx = np.mgrid[0:8, 0:8]
    ramp = jnp.asarray((10 * yy + xx)[None, :, :, None], jnp.float32)
    got = np.asarray(roi_align(ramp, jnp.array([[0, 0.5, 0.5, 4.5, 4.5]]), 2))[0, :, :, 0]
    np.testing.assert_allclose(got, [[11.0, 13.0], [31.0, 33.0]], rtol=1e-6)  # centres (1, 1), (1, 3), ...
    got = np.asarray(roi_align(ramp, jnp.array([[0, 1.0, 1.0, 5.0, 5.0]]), 2, aligned=False))[0, :, :, 0]
    np.testing.assert_allclose(got, [[22.0, 24.0], [42.0, 44.0]], rtol=1e-6)


@pytest.mark.parametrize("sampling_ratio,aligned", [(-1, True), (2, True), (-1, False)])
def test_roi_align_matches_loop_reference(sampling_ratio, aligned):
    rng = np.random.default_rng(4)
    feat = rng.normal(size=(2, 11, 13, 2)).astype(np.float32)
    rois = np.array(
        [
            [0, 0.0, 0.0, 13.0, 11.0],  # the whole map: 3 x 3 adaptive samples per bin at out = 5
            [1, 2.3, 1.7, 9.1, 6.2],
            [1, -2.5, -3.0, 4.0, 3.0],  # partly outside: samples below -1 contribute zero
            [0, 10.0, 8.0, 15.5, 14.0],  # beyond the far edge
            [0, 3.0, 3.0, 3.0, 3.0],  # empty box
        ]
    )
    expected = _roi_align_loops(feat, rois, 5, sampling_ratio, aligned)
    got = jax.jit(lambda f, r: losses.roi_align(f, r, 5, sampling_ratio=sampling_ratio, aligned=aligned))(feat, rois)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def _glyph_case():
    rng = np.random.default_rng(5)
    prob = rng.uniform(size=(2, 17, 21, 1)).astype(np.float32)
    # (y1, x1, y2, x2) in input pixels of a 65 x 81 crop; prediction 17 x 21 (ratios 65/17 and 81/21).
    boxes = [[4, 6, 40, 42], [10, 30, 34, 54], [0, 0, 65, 65], [20, 50, 40, 70], [-2, 5, 20, 27], [30, 70, 50, 90]]
    boxes = np.array(boxes + [[0, 0, 0, 0]], np.float32)
    batch_idx = np.array([0, 1, 1, 0, 0, 1, 0])
    labels = np.array([3, 17, 25, 36, 5, 8, 0])  # box 3 has class 36; boxes 4 and 5 leave the crop
    valid = np.array([True, True, True, True, True, True, False])
    weight = rng.normal(size=(32 * 32, 37)).astype(np.float32) * 0.1
    return prob, boxes, batch_idx, labels, valid, weight


def test_glyph_loss_matches_numpy():
    prob, boxes, batch_idx, labels, valid, weight = _glyph_case()

    def classifier(crops):
        return crops.reshape(crops.shape[0], -1) @ weight

    loss, num = jax.jit(
        lambda p: losses.glyph_loss(classifier, p, boxes, batch_idx, labels, valid, (65, 81))
    )(prob)
    keep = [0, 1, 2]
    y1, x1, y2, x2 = (boxes[keep, i] / r for i, r in enumerate([65 / 17, 81 / 21] * 2))
    rois = np.stack([batch_idx[keep], x1, y1, x2, y2], axis=1)
    logits = _roi_align_loops(prob, rois, 32).reshape(3, -1) @ weight
    shifted = logits - logits.max(1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    expected = -logp[np.arange(3), labels[keep]].mean()
    assert int(num) == 3
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    grad_fn = jax.grad(lambda p: losses.glyph_loss(classifier, p, boxes, batch_idx, labels, valid, (65, 81))[0])
    grad = jax.jit(grad_fn)(prob)
    assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0


def test_glyph_loss_fewer_than_two_boxes_is_zero():
    prob, boxes, batch_idx, labels, valid, weight = _glyph_case()
    valid = valid & (np.arange(len(valid)) == 0)  # one usable box left

    def loss_fn(p):
        classifier = lambda c: c.reshape(c.shape[0], -1) @ weight  # noqa: E731
        return losses.glyph_loss(classifier, p, boxes, batch_idx, labels, valid, (65, 81))

    loss, num = jax.jit(loss_fn)(prob)
    assert int(num) == 1 and float(loss) == 0.0
    grad = jax.jit(jax.grad(lambda p: loss_fn(p)[0]))(prob)
    assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).max()) == 0.0
