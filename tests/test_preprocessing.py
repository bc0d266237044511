"""Tests for texrnet_jax.preprocessing: normalisation, the windowed resizes and the reference augmentation.

The windowed resizes are checked against the project's full-image resizes (`resample.resize_bilinear` with
align_corners=True, `losses.resize_labels_nearest`) followed by a crop. The augmentation is checked for image/mask
alignment, the inclusive short-side range, the int() long-side rule and the padding path.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from texrnet_jax import preprocessing
from texrnet_jax.resample import resize_labels_nearest
from texrnet_jax.resample import resize_bilinear

IGNORE = 255


def _full_resize(image: np.ndarray, size) -> np.ndarray:
    return np.asarray(resize_bilinear(jnp.asarray(image)[None], size, align_corners=True))[0]


def _random_image(rng, h, w) -> np.ndarray:
    return rng.normal(size=(h, w, 3)).astype(np.float32)


def test_normalize_matches_formula():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    out = preprocessing.normalize(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, (image / 255.0 - mean) / std, rtol=1e-6, atol=1e-6)
    custom = preprocessing.normalize(image, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0))
    np.testing.assert_allclose(custom, (image / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "h, w, size",
    [
        (7, 9, (13, 20)),  # odd input, up-scaling
        (8, 10, (16, 17)),  # even input, up-scaling (odd and even outputs)
        (9, 12, (5, 8)),  # down-scaling
        (10, 7, (10, 12)),  # one axis unchanged
    ],
)
def test_resize_crop_image_equals_full_resize_then_crop(h, w, size):
    rng = np.random.default_rng(h * 100 + w)
    image = _random_image(rng, h, w)
    full = _full_resize(image, size)
    for top, left, crop in [(0, 0, size), (1, 2, (size[0] - 2, size[1] - 3)), (size[0] - 3, size[1] - 4, (3, 4))]:
        window = preprocessing.resize_crop_image(image, size, top, left, crop)
        assert window.shape == (crop[0], crop[1], 3)
        np.testing.assert_allclose(window, full[top : top + crop[0], left : left + crop[1]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("h, w, size", [(7, 9, (13, 20)), (8, 10, (16, 17)), (9, 12, (5, 8)), (11, 6, (11, 3))])
def test_resize_crop_mask_equals_reference_nearest_then_crop(h, w, size):
    rng = np.random.default_rng(h * 100 + w)
    mask = rng.integers(0, 3, size=(h, w)).astype(np.uint8)
    full = resize_labels_nearest(mask, size)
    for top, left, crop in [(0, 0, size), (1, 1, (size[0] - 1, size[1] - 2)), (size[0] - 2, size[1] - 3, (2, 3))]:
        window = preprocessing.resize_crop_mask(mask, size, top, left, crop)
        np.testing.assert_array_equal(window, full[top : top + crop[0], left : left + crop[1]])


def test_scaled_size_follows_reference_int_rule():
    assert preprocessing.scaled_size(100, 150, 513) == (513, 769)  # 769.5 truncates
    assert preprocessing.scaled_size(150, 100, 513) == (769, 513)  # portrait: the width is the short side
    assert preprocessing.scaled_size(64, 64, 65) == (65, 65)
    # int(516 / 111 * 148) is 687 in floating point although 516 * 148 / 111 is exactly 688.
    assert preprocessing.scaled_size(111, 148, 516) == (516, 687)


def _find_window(out_img, candidates, crop):
    """(short, top, left) of the first window of a candidate resize equal to `out_img` (random content: unique)."""
    for short, full in candidates.items():
        for top in range(full.shape[0] - crop + 1):
            for left in range(full.shape[1] - crop + 1):
                if np.allclose(full[top : top + crop, left : left + crop], out_img, atol=1e-5):
                    return short, top, left
    return None


def test_random_scale_crop_is_a_window_of_the_full_resizes():
    """Image and mask come from the same scale and the same window; offsets cover the full range."""
    h, w, lo, hi, crop = 9, 13, 11, 14, 10
    rng = np.random.default_rng(1)
    image = _random_image(rng, h, w)
    mask = rng.integers(0, 2, size=(h, w)).astype(np.uint8)
    sizes = {s: preprocessing.scaled_size(h, w, s) for s in range(lo, hi + 1)}
    images = {s: _full_resize(image, size) for s, size in sizes.items()}
    seen_short, ends = set(), set()
    for seed in range(40):
        out_img, out_mask = preprocessing.random_scale_crop(
            image, mask, np.random.default_rng(seed), (lo, hi), crop, IGNORE
        )
        found = _find_window(out_img, images, crop)
        assert found is not None, f"seed {seed}: the image is not a window of any full resize"
        short, top, left = found
        expected_mask = resize_labels_nearest(mask, sizes[short])[top : top + crop, left : left + crop]
        np.testing.assert_array_equal(out_mask, expected_mask, err_msg=f"seed {seed}: mask window differs")
        seen_short.add(short)
        max_top, max_left = sizes[short][0] - crop, sizes[short][1] - crop
        hits = {"top=0": top == 0, "top=max": top == max_top, "left=0": left == 0, "left=max": left == max_left}
        ends.update(name for name, hit in hits.items() if hit)
    assert seen_short == set(range(lo, hi + 1))
    assert ends == {"top=0", "top=max", "left=0", "left=max"}, "offsets must cover [0, scaled - crop] inclusive"


def _band_labels(rng, n: int) -> np.ndarray:
    """0/1 along one axis in bands 3-8 pixels wide."""
    widths = rng.integers(3, 9, size=n)
    return (np.repeat(np.arange(n) % 2, widths)[:n]).astype(np.uint8)


def test_random_scale_crop_keeps_colour_and_label_aligned():
    """The image colour encodes the label; wherever a pure label colour survives, the mask has that label."""
    rng = np.random.default_rng(2)
    h, w = 37, 45
    mask = _band_labels(rng, h)[:, None] ^ _band_labels(rng, w)[None, :]
    mask[:6, :6] = IGNORE
    colours = {0: (20, 200, 40), 1: (230, 30, 90), IGNORE: (90, 90, 250)}
    palette = np.zeros((256, 3), np.uint8)
    for label, rgb in colours.items():
        palette[label] = rgb
    image = preprocessing.normalize(palette[mask])
    refs = {label: preprocessing.normalize(palette[label][None, None])[0, 0] for label in colours}
    for seed in range(12):
        out_img, out_mask = preprocessing.random_scale_crop(
            image, mask, np.random.default_rng(seed), (33, 70), 32, IGNORE
        )
        dist = np.stack([np.abs(out_img - ref).max(-1) for ref in refs.values()])
        pure = dist.min(0) < 1e-4
        colour_label = np.asarray(list(refs))[dist.argmin(0)]
        assert pure.mean() > 0.5, "too few pure pixels for the check to mean anything"
        np.testing.assert_array_equal(out_mask[pure], colour_label[pure], err_msg=f"seed {seed}")
        assert set(np.unique(out_mask)) <= {0, 1, IGNORE}


def test_short_side_drawn_inclusive_and_long_side_int_rule():
    """With a crop larger than any scaled size the valid (non-padded) extent is the scaled size itself."""
    h, w, lo, hi, crop = 4, 6, 3, 6, 10
    image = np.ones((h, w, 3), np.float32)
    mask = np.zeros((h, w), np.uint8)
    shorts = set()
    for seed in range(60):
        out_img, out_mask = preprocessing.random_scale_crop(
            image, mask, np.random.default_rng(seed), (lo, hi), crop, IGNORE
        )
        nh, nw = int((out_mask == 0).any(1).sum()), int((out_mask == 0).any(0).sum())
        assert (nh, nw) == preprocessing.scaled_size(h, w, nh)
        # Padding is at the bottom and right: image 0, mask ignore.
        assert np.all(out_mask[:nh, :nw] == 0) and np.all(out_img[:nh, :nw] == 1.0)
        assert np.all(out_mask[nh:] == IGNORE) and np.all(out_mask[:, nw:] == IGNORE)
        assert np.all(out_img[nh:] == 0.0) and np.all(out_img[:, nw:] == 0.0)
        shorts.add(nh)
    assert shorts == set(range(lo, hi + 1))


def test_padding_when_one_side_is_smaller_than_the_crop():
    rng = np.random.default_rng(3)
    image = _random_image(rng, 4, 20)
    mask = rng.integers(0, 2, size=(4, 20)).astype(np.uint8)
    out_img, out_mask = preprocessing.random_scale_crop(image, mask, np.random.default_rng(0), (8, 8), 12, IGNORE)
    assert out_img.shape == (12, 12, 3) and out_img.dtype == np.float32
    assert out_mask.shape == (12, 12) and out_mask.dtype == np.int32
    assert np.all(out_mask[8:] == IGNORE) and np.all(out_img[8:] == 0.0)
    # The 8 valid rows are a horizontal window of the full 8x40 resize.
    full = _full_resize(image, (8, 40))
    lefts = [x for x in range(40 - 12 + 1) if np.allclose(full[:, x : x + 12], out_img[:8], atol=1e-5)]
    assert len(lefts) == 1
    np.testing.assert_array_equal(out_mask[:8], resize_labels_nearest(mask, (8, 40))[:, lefts[0] : lefts[0] + 12])


def test_train_augment_transform_dtypes_and_determinism():
    rng = np.random.default_rng(4)
    element = {
        "image": rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8),
        "mask": rng.integers(0, 2, size=(30, 40, 1)).astype(np.uint8),
        "id": b"x",
    }
    aug = preprocessing.TrainAugment((33, 49), 33, IGNORE)
    out = aug.random_map(element, np.random.default_rng(7))
    assert set(out) == {"image", "mask"}
    assert out["image"].shape == (33, 33, 3) and out["image"].dtype == np.float32
    assert out["mask"].shape == (33, 33) and out["mask"].dtype == np.int32
    again = aug.random_map(element, np.random.default_rng(7))
    np.testing.assert_array_equal(out["image"], again["image"])
    np.testing.assert_array_equal(out["mask"], again["mask"])
    other = aug.random_map(element, np.random.default_rng(8))
    assert not np.array_equal(out["image"], other["image"])
    # Normalisation happens before the resize: a constant image stays the normalised constant.
    flat = dict(element, image=np.full((30, 40, 3), 128, np.uint8))
    np.testing.assert_allclose(
        aug.random_map(flat, np.random.default_rng(0))["image"],
        np.broadcast_to(preprocessing.normalize(flat["image"][:1, :1]), (33, 33, 3)),
        atol=1e-6,
    )


def test_square_boxes_pads_the_short_side_symmetrically():
    boxes = np.array([[10, 20, 20, 26], [0, 0, 4, 10], [5, 5, 9, 9]], np.float32)  # tall, wide, square
    np.testing.assert_array_equal(
        preprocessing.square_boxes(boxes), [[10, 18, 20, 28], [-3, 0, 7, 10], [5, 5, 9, 9]])


def test_crop_char_boxes_follows_scale_and_crop():
    boxes = np.array([[10, 20, 20, 26],  # kept
                      [0, 0, 4, 10],  # squared to y -3: leaves the crop at the top
                      [12, 40, 18, 46],  # class 36 (other): dropped
                      [30, 50, 36, 56]], np.float32)  # kept
    labels = np.array([3, 11, 36, 35], np.int32)
    # Source 40 x 60 scaled 2x to 80 x 120, crop window from (5, 10).
    out = preprocessing.crop_char_boxes(boxes, labels, (40, 60), (80, 120, 5, 10), crop_size=110, max_boxes=4)
    np.testing.assert_array_equal(out["char_valid"], [True, True, False, False])
    np.testing.assert_array_equal(out["char_labels"], [3, 35, 0, 0])
    # [10, 18, 20, 28] * 2 - [5, 10, 5, 10]; [30, 50, 36, 56] * 2 - offset.
    np.testing.assert_array_equal(out["char_boxes"], [[15, 26, 35, 46], [55, 90, 67, 102], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert out["char_boxes"].dtype == np.float32 and out["char_labels"].dtype == np.int32
    # A smaller crop drops the box that now leaves it; max_boxes truncates in source order.
    small = preprocessing.crop_char_boxes(boxes, labels, (40, 60), (80, 120, 5, 10), crop_size=64, max_boxes=4)
    np.testing.assert_array_equal(small["char_valid"], [True, False, False, False])
    one = preprocessing.crop_char_boxes(boxes, labels, (40, 60), (80, 120, 5, 10), crop_size=110, max_boxes=1)
    np.testing.assert_array_equal(one["char_labels"], [3])
    empty = preprocessing.crop_char_boxes(np.zeros((0, 4)), np.zeros((0,)), (40, 60), (80, 120, 5, 10), 100, 3)
    assert empty["char_boxes"].shape == (3, 4) and not empty["char_valid"].any()


def test_train_augment_char_boxes_cover_the_character_in_the_crop():
    # One character: a text rectangle with exclusive bounds [12, 30) x [20, 28) in a 48 x 64 image.
    mask = np.zeros((48, 64, 1), np.uint8)
    mask[12:30, 20:28] = 1
    element = {"image": np.zeros((48, 64, 3), np.uint8), "mask": mask,
               "char_boxes": np.array([[12, 20, 30, 28]], np.float32), "char_labels": np.array([7], np.int32)}
    aug = preprocessing.TrainAugment((48, 96), 48, IGNORE, max_char_boxes=2)
    seen = 0
    for seed in range(40):
        out = aug.random_map(element, np.random.default_rng(seed))
        assert out["char_boxes"].shape == (2, 4) and not out["char_valid"][1]
        if not out["char_valid"][0]:
            continue
        seen += 1
        y1, x1, y2, x2 = out["char_boxes"][0]
        assert y2 - y1 == pytest.approx(x2 - x1, rel=0.02)  # squared before the (per-axis) scaling
        ys, xs = np.nonzero(out["mask"] == 1)
        # The text pixels of the crop lie inside the box, up to the nearest-neighbour rounding of the mask.
        assert ys.min() >= y1 - 1 and ys.max() + 1 <= y2 + 1
        assert xs.min() >= x1 - 1 and xs.max() + 1 <= x2 + 1
        assert (ys.max() + 1 - ys.min()) == pytest.approx(y2 - y1, abs=2)  # the tall side is not padded
    assert seen >= 5


def test_photometric_augmentation_changes_colours_only():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    outs = [preprocessing.photometric(image, np.random.default_rng(s)) for s in range(12)]
    for out in outs:
        assert out.shape == image.shape and out.dtype == np.uint8
    assert sum(not np.array_equal(o, image) for o in outs) == len(outs)
    np.testing.assert_array_equal(outs[3], preprocessing.photometric(image, np.random.default_rng(3)))
    # Some draws invert the image, so dark-on-light and light-on-dark text both occur.
    corr = [np.corrcoef(o.reshape(-1).astype(float), image.reshape(-1).astype(float))[0, 1] for o in outs]
    assert min(corr) < 0 < max(corr)
    element = {"image": image, "mask": rng.integers(0, 2, size=(30, 40, 1)).astype(np.uint8), "id": b"x"}
    plain = preprocessing.TrainAugment((33, 49), 33, IGNORE)
    jittered = preprocessing.TrainAugment((33, 49), 33, IGNORE, photometric=True)
    a, b = plain.random_map(element, np.random.default_rng(7)), jittered.random_map(element, np.random.default_rng(7))
    assert not np.array_equal(a["image"], b["image"])
    assert a["image"].shape == b["image"].shape and b["mask"].shape == (33, 33)


def test_train_augment_normalises_the_crop_as_the_reference_normalises_the_image():
    # TrainAugment resizes the uint8 image and normalises only the crop; the reference normalises the whole image
    # first. Same geometry, values equal up to float32 rounding, labels identical, padding at normalised 0.
    rng = np.random.default_rng(11)
    element = {"image": rng.integers(0, 256, size=(37, 52, 3), dtype=np.uint8),
               "mask": rng.integers(0, 2, size=(37, 52, 1)).astype(np.uint8)}
    aug = preprocessing.TrainAugment((30, 60), 41, IGNORE, backend="numpy")
    for seed in range(6):
        out = aug.random_map(element, np.random.default_rng(seed))
        geo_rng = np.random.default_rng(seed)
        geometry = preprocessing.random_geometry(37, 52, geo_rng, (30, 60), 41)
        ref_img, ref_mask = preprocessing.random_scale_crop(preprocessing.normalize(element["image"]),
                                                            element["mask"][..., 0], geo_rng, (30, 60), 41, IGNORE,
                                                            geometry)
        np.testing.assert_allclose(out["image"], ref_img, atol=2e-6, rtol=0)
        np.testing.assert_array_equal(out["mask"], ref_mask)


# The stated bound of the OpenCV resize, in levels of 255: float32 interpolation and uint8 rounding (white noise
# measures 0.507-0.513). An OpenCV that rounds source positions to 1/32 pixel misses it on noise.
LEVEL_BOUND = 0.52


@pytest.mark.parametrize("kind", ["noise", "photo"])
@pytest.mark.parametrize("h, w, size, top, left, crop", [
    (37, 52, (30, 42), 0, 0, (30, 41)),  # down-scaling, the window at the corner
    (37, 52, (60, 84), 17, 40, (41, 41)),  # up-scaling, the window at the far edges
    (80, 100, (64, 80), 5, 9, (33, 50)),  # down-scaling by 0.8, an inner window
    (9, 12, (9, 12), 0, 0, (9, 12)),  # identity
])
def test_opencv_resize_is_the_exact_resize_within_the_stated_bound(kind, h, w, size, top, left, crop):
    # The fast path keeps the geometry (same window of the same align-corners grid) and stays within 1/255 on
    # average and within the stated bound everywhere; white noise is the worst case for the bound.
    rng = np.random.default_rng(h + w)
    if kind == "noise":
        image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    else:
        yy, xx = np.mgrid[0:h, 0:w]
        smooth = 128 + 60 * np.sin(yy / 5.0)[..., None] * np.cos(xx[..., None] / 7.0 + np.arange(3))
        image = np.clip(smooth + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    exact = preprocessing.resize_crop_image(image, size, top, left, crop)
    fast = preprocessing.resize_crop_image_opencv(image, size, top, left, crop)
    assert fast.shape == exact.shape == (*crop, 3) and fast.dtype == np.uint8
    err = np.abs(fast.astype(np.float64) - exact)
    assert err.mean() <= 0.3, err.mean()
    assert err.max() <= LEVEL_BOUND, (err.max(), LEVEL_BOUND)
    if size == (h, w):
        np.testing.assert_array_equal(fast, image)


def test_train_augment_opencv_backend_keeps_geometry_labels_and_padding():
    # Same seed: same draws, the same crop window and padding; labels identical (the nearest rule is exact in both);
    # image values within the bound above (in normalised units: levels / (255 std)).
    rng = np.random.default_rng(5)
    element = {"image": rng.integers(0, 256, size=(37, 52, 3), dtype=np.uint8),
               "mask": rng.integers(0, 2, size=(37, 52, 1)).astype(np.uint8)}
    exact = preprocessing.TrainAugment((30, 60), 41, IGNORE, backend="numpy")
    fast = preprocessing.TrainAugment((30, 60), 41, IGNORE, backend="opencv")
    per_level = 1.0 / (255.0 * np.asarray(preprocessing.IMAGENET_STD))
    for seed in range(8):
        a = exact.random_map(element, np.random.default_rng(seed))
        b = fast.random_map(element, np.random.default_rng(seed))
        np.testing.assert_array_equal(b["mask"], a["mask"])
        assert b["image"].dtype == np.float32 and b["image"].shape == a["image"].shape
        levels = np.abs(b["image"] - a["image"]) / per_level
        assert levels.mean() <= 1.0 and levels.max() <= LEVEL_BOUND
        np.testing.assert_array_equal(b["image"][a["mask"] == IGNORE], 0.0)  # padding at the normalised mean


def test_decode_image_backends_agree_and_name_a_bad_example():
    import io

    from PIL import Image

    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(23, 31, 3), dtype=np.uint8)
    encoded = {}
    for fmt in ("jpeg", "png"):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format=fmt)
        encoded[fmt] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(rgb[..., 0]).save(buf, format="jpeg")  # a grayscale JPEG in a 3-channel feature
    encoded["grey"] = buf.getvalue()
    buf = io.BytesIO()
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(buf, format="png")  # RGBA: both drop the alpha
    encoded["rgba"] = buf.getvalue()
    for fmt, data in encoded.items():
        a = preprocessing.decode_image(data, 3, "numpy")
        b = preprocessing.decode_image(data, 3, "opencv")
        assert a.shape == b.shape == (23, 31, 3) and a.dtype == b.dtype == np.uint8
        np.testing.assert_array_equal(a, b, err_msg=fmt)
    np.testing.assert_array_equal(preprocessing.decode_image(encoded["png"], 3, "opencv"), rgb)
    mask = rng.integers(0, 2, size=(9, 11), dtype=np.uint8) * 255
    buf = io.BytesIO()
    Image.fromarray(mask).save(buf, format="png")
    np.testing.assert_array_equal(preprocessing.decode_image(buf.getvalue(), 1, "opencv")[..., 0], mask)
    with pytest.raises(ValueError, match=r"example b'img_7', feature 'image'"):
        preprocessing.decode_features({"image": b"not an image", "id": b"img_7"}, {"image": 3}, "opencv")
    with pytest.raises(ValueError, match="augment_backend"):
        preprocessing.decode_features({"image": encoded["png"]}, {"image": 3}, "cv3")
