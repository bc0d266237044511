"""Tests of the weak-label composition (`labels_from_boxes` with oracle models), box crops and BF-Net crops."""

import numpy as np
import pytest

from texrnet_jax.weak_labels import Rules, compose, crops, geometry, labels_from_boxes, whole_box_labels


def _box(x1, y1, x2, y2):
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)


def _constant(p):
    return lambda c: np.full(c.shape[:3], p, np.float32)


RULES = Rules(margin=0.5, size=33, hi=0.7, lo=0.3)


def test_polygon_mask_covers_pixel_centres():
    np.testing.assert_array_equal(geometry.polygon_mask(_box(1, 2, 4, 3), 4, 5),
                                  [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]])
    # A diamond (rotated square) holds the centres within |dx| + |dy| < 2.2 of (3, 3).
    diamond = geometry.polygon_mask(np.array([[3, 0.8], [5.2, 3], [3, 5.2], [0.8, 3]], float), 6, 6)
    ys, xs = np.mgrid[:6, :6]
    np.testing.assert_array_equal(diamond, np.abs(xs + 0.5 - 3) + np.abs(ys + 0.5 - 3) < 2.2)


@pytest.mark.parametrize("p, value", [(0.9, 1), (0.7, 1), (0.5, 255), (0.3, 0), (0.1, 0)])
def test_thresholds_inside_a_box_and_zero_outside(p, value):
    image = np.zeros((12, 16, 3), np.uint8)
    label = labels_from_boxes(image, [_box(2, 3, 9, 8)], [], _constant(p), RULES)
    expected = np.zeros((12, 16), np.uint8)
    expected[3:8, 2:9] = value
    np.testing.assert_array_equal(label, expected)


def test_overlaps_255_over_1_over_0_and_dont_care():
    image = np.zeros((10, 20, 3), np.uint8)
    calls = []

    def by_box(c):  # first box certain text, second certain background, third uncertain
        calls.append(len(c))
        return np.stack([np.full(c.shape[1:3], v, np.float32) for v in (0.9, 0.1, 0.5)][: len(c)])

    boxes = [_box(0, 0, 8, 6), _box(5, 2, 14, 9), _box(12, 0, 17, 4)]
    label = labels_from_boxes(image, boxes, [_box(18, 6, 20, 10)], by_box, RULES)
    expected = np.zeros((10, 20), np.uint8)
    expected[2:9, 5:14] = 0  # the background box
    expected[0:6, 0:8] = 1  # text wins over its overlap with the background box
    expected[0:4, 12:17] = 255  # uncertain wins over the background box below it
    expected[6:10, 18:20] = 255  # don't-care
    np.testing.assert_array_equal(label, expected)
    assert calls == [3]  # one batched call for the image's three crops


def test_quadrilateral_and_boxes_touching_or_leaving_the_border():
    image = np.zeros((16, 16, 3), np.uint8)
    quad = np.array([[8, 0], [16, 8], [8, 16], [0, 8]], np.float64)  # a diamond touching all four borders
    label = labels_from_boxes(image, [quad, _box(-5, -5, 2, 2), _box(20, 20, 30, 30)], [], _constant(1.0), RULES)
    np.testing.assert_array_equal(label == 1, geometry.polygon_mask(quad, 16, 16) | (geometry.polygon_mask(
        _box(0, 0, 2, 2), 16, 16)))
    assert label[0, 0] == 1 and label[15, 15] == 0 and label[8, 8] == 1


def _colour_case(text=230, back=20):
    """A bright bar on a dark ground in a 33 px box (crop = image pixels), with three uncertain columns beside it:
    x=10 nearly the ground colour, x=11 halfway (an anti-aliased edge), x=22 nearly the bar colour."""
    image = np.full((40, 40, 3), back, np.uint8)
    image[8:29, 12:22] = text
    image[8:29, 10] = back + max(1, (text - back) // 25)
    image[8:29, 11] = (text + back) // 2
    image[8:29, 22] = text - max(1, (text - back) // 40)

    def oracle(c):  # certain on the two pure colours, 0.5 (uncertain) on every other
        return np.where(c[..., 0] == text, 0.9, np.where(c[..., 0] == back, 0.1, 0.5)).astype(np.float32)

    return image, oracle


def test_colour_step_resolves_only_clear_band_pixels():
    import dataclasses

    image, oracle = _colour_case()
    rules = Rules(margin=0.0, size=33, hi=0.7, lo=0.3, tile_aspect=0, colour_radius=3, colour_min_pixels=4)
    box = [_box(2, 2, 35, 35)]
    expected = np.zeros((40, 40), np.uint8)
    expected[8:29, 12:23] = 1  # the bar, and the column that has its colour
    expected[8:29, 11] = 255  # the halfway column stays uncertain; x=10 joins the ground
    np.testing.assert_array_equal(labels_from_boxes(image, box, [], oracle, rules), expected)
    # Off (radius 0), all three columns stay uncertain: the papers' rule.
    expected[8:29, [10, 11, 22]] = 255
    off = dataclasses.replace(rules, colour_radius=0)
    np.testing.assert_array_equal(labels_from_boxes(image, box, [], oracle, off), expected)
    # Local text and ground colours 17 apart (RGB distance): below colour_min_contrast 20 nothing is resolved,
    # with 10 the two near columns are.
    image, oracle = _colour_case(text=30, back=20)
    np.testing.assert_array_equal(labels_from_boxes(image, box, [], oracle, rules), expected)
    low = labels_from_boxes(image, box, [], oracle, dataclasses.replace(rules, colour_min_contrast=10.0))
    assert np.all(low[8:29, 10] == 0) and np.all(low[8:29, 22] == 1) and np.all(low[8:29, 11] == 255)


def test_probabilities_follow_the_crop_geometry():
    # An oracle that marks the left half of every crop: inside a centred wide box that is its left half.
    image = np.zeros((20, 40, 3), np.uint8)

    def left_half(c):
        p = np.zeros(c.shape[:3], np.float32)
        p[:, :, : c.shape[2] // 2] = 1
        return p

    rules = Rules(margin=0.5, size=40, hi=0.5, lo=0.5, tile_aspect=0)  # one crop per box
    label = labels_from_boxes(image, [_box(10, 8, 30, 12)], [], left_half, rules)
    assert np.all(label[8:12, 10:20] == 1) and np.all(label[8:12, 21:30] == 0)


def test_long_boxes_are_tiled_and_their_tiles_averaged():
    box = _box(10, 20, 130, 30)  # 12:1
    windows = geometry.box_windows(box, 0.5, tile_aspect=2.0)
    assert len(windows) == 11 and {w.side for w in windows} == {30}  # 20 px pieces, 10 px apart, 5 px context
    covered = np.zeros((50, 140), bool)
    for w in windows:
        covered[max(w.y0, 0):w.y0 + w.side, max(w.x0, 0):w.x0 + w.side] = True
    assert covered[20:30, 10:130].all()
    square = _box(10, 20, 30, 30)
    assert geometry.box_windows(square, 0.5, tile_aspect=2.0) == [geometry.box_window(square, 0.5)]
    assert len(geometry.box_windows(box, 0.5, tile_aspect=0)) == 1
    # Vertical text is tiled along y.
    assert {w.x0 for w in geometry.box_windows(_box(20, 10, 30, 130), 0.5, 2.0)} == {10}

    image = np.zeros((50, 140, 3), np.uint8)
    image[22:28, 15:125] = 255  # a bright bar inside the box
    bright = lambda c: (c.mean(-1) > 127).astype(np.float32)  # noqa: E731
    rules = Rules(margin=0.5, size=33, hi=0.5, lo=0.2)
    calls = []
    label = labels_from_boxes(image, [box], [], lambda c: calls.append(len(c)) or bright(c), rules)
    assert calls == [11]
    truth = np.zeros((50, 140), np.uint8)
    truth[22:28, 15:125] = 1
    known = label != 255
    assert (label[known] == truth[known]).all() and known[20:30, 10:130].mean() > 0.8
    # Tiles that disagree average out: every other tile says text, and inside the box every pixel is covered by two
    # or three consecutive tiles, so its mean is 1/3, 1/2 or 2/3: uncertain between lo=0.2 and hi=0.8.
    alternate = lambda c: (np.arange(len(c)) % 2)[:, None, None] * np.ones(c.shape[:3], np.float32)  # noqa: E731
    label = labels_from_boxes(image, [box], [], alternate, Rules(margin=0.5, size=33, hi=0.8, lo=0.2))
    assert (label[20:30, 25:115] == 255).all()


def test_predict_fn_shape_is_checked():
    with pytest.raises(ValueError, match="predict_fn returned shape"):
        labels_from_boxes(np.zeros((8, 8, 3), np.uint8), [_box(1, 1, 5, 5)], [], lambda c: np.ones((1, 5, 5)), RULES)


def test_whole_box_baseline():
    label = whole_box_labels((6, 6), [_box(0, 0, 4, 4)], [_box(3, 3, 6, 6)])
    assert label[0, 0] == 1 and label[3, 3] == 255 and label[5, 0] == 0


def test_rules_reject_bad_thresholds():
    with pytest.raises(ValueError, match="lo <= hi"):
        Rules(hi=0.3, lo=0.6)
    with pytest.raises(ValueError, match="colour_margin < 0.5"):
        Rules(colour_radius=3, colour_margin=0.6)


def test_box_window_crop_and_paste_round_trip():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (30, 50, 3), np.uint8)
    window = geometry.box_window(_box(10, 10, 40, 20), margin=0.5)
    assert window.side == 40 and (window.x0, window.y0) == (5, -5)  # 30 + 2 * 0.5 * 10, centred on (25, 15)
    crop = geometry.crop_image(image, window, 40, (1, 2, 3))
    np.testing.assert_array_equal(crop[5:35], image[:, 5:45])  # same size: an exact copy
    assert np.all(crop[:5] == (1, 2, 3)) and np.all(crop[35:] == (1, 2, 3))  # above and below the image: padding
    mask = geometry.crop_mask(np.ones((30, 50), np.uint8), window, 40)
    assert np.all(mask[:5] == 255) and np.all(mask[5:35] == 1) and np.all(mask[35:] == 255)
    (rows, cols), values = geometry.paste(np.arange(40 * 40, dtype=np.float32).reshape(40, 40), window, 30, 50)
    assert (rows, cols) == (slice(0, 30), slice(5, 45)) and values[0, 0] == 5 * 40


def test_bfnet_crops_centre_the_word_and_keep_its_mask():
    image = np.zeros((64, 64, 3), np.uint8)
    mask = np.zeros((64, 64, 1), np.uint8)
    mask[30:38, 10:50] = 1  # a 40 x 8 "word"
    image[30:38, 10:50] = 255
    aug = crops.BoxCropAugment(crop_size=33, margin=0.5, jitter=0.0, text_free_fraction=0.0)
    out = aug.random_map({"image": image, "mask": mask, "word_boxes": np.array([[30, 10, 38, 50]], np.float32)},
                         np.random.default_rng(0))
    assert out["image"].shape == (33, 33, 3) and out["image"].dtype == np.float32
    assert out["mask"].shape == (33, 33) and out["mask"].dtype == np.int32
    rows = np.nonzero((out["mask"] == 1).any(1))[0]
    assert abs(rows.mean() - 16) <= 1 and 5 <= len(rows) <= 7  # centred band of 33 * 8 / 48 px
    # The text pixels are the bright ones (normalised value > 0), wherever the crop was mirrored.
    np.testing.assert_array_equal(out["mask"] == 1, out["image"][..., 0] > 1.5)


def test_bfnet_crops_jitter_and_text_free_windows():
    rng = np.random.default_rng(1)
    sides = {geometry.box_window(crops.jittered_box(np.array([10, 10, 20, 60]), 0.15, rng), 0.5).side
             for _ in range(20)}
    assert len(sides) > 3 and all(45 <= s <= 70 for s in sides)
    for _ in range(20):
        box = crops.random_window_box(40, 30, rng)
        assert box[:, 0].min() >= 0 and box[:, 0].max() <= 30 + 1e-9 and box[:, 1].max() <= 40 + 1e-9
    assert compose.UNCERTAIN == 255
