"""Tests of the `synth_text` builder and its renderer; no TensorFlow needed.

The builder tests prepare a tiny config into array_record in temporary directories (twice, the second time in
a fresh interpreter, for determinism) and read it back with `tfds.data_source`.
`tfds.testing.DatasetBuilderTestCase` is not used: in tfds 4.9.10 it needs TensorFlow, and this builder has no
download to fake.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders.synth_text import render
from tfds_builders.synth_text import synth_text_dataset_builder as stb

SIZE = 64
# empty_fraction is raised so that examples without any character box (zero-row tensors) occur.
TINY = stb.SynthTextConfig(
    name="unit_test",
    description="test only",
    image_size=SIZE,
    num_train=6,
    num_test=4,
    seed=3,
    min_font_size=8,
    max_font_size=60,
    empty_fraction=0.3,
)
SPLITS = {"train": 6, "test": 4}
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _prepare(data_dir) -> None:
    builder = stb.Builder(config=TINY, data_dir=data_dir)
    builder.download_and_prepare(
        file_format="array_record", download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two builds of the tiny config, the second in a fresh interpreter; returns their data dirs."""
    dirs = [tmp_path_factory.mktemp(f"synth_text_{i}") for i in range(2)]
    _prepare(dirs[0])
    # A separate process with another hash seed catches state that leaks into the output (set order, caches).
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO_ROOT))
    code = f"from {__name__} import _prepare; _prepare({str(dirs[1])!r})"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, env=env, capture_output=True)
    return dirs


def _read(data_dir) -> dict[str, list[dict]]:
    out = {}
    for split in SPLITS:
        source = tfds.data_source(
            "synth_text", split=split, data_dir=data_dir, download=False, builder_kwargs={"config": TINY}
        )
        out[split] = [source[i] for i in range(len(source))]
    return out


@pytest.fixture(scope="module")
def examples(built):
    """Decoded examples of the first build: {split: [example, ...]}, read with `tfds.data_source`."""
    return _read(built[0])


def test_counts_keys_and_features(examples):
    for split, n in SPLITS.items():
        exs = examples[split]
        assert len(exs) == n
        assert sorted(_text(ex["id"]) for ex in exs) == [f"{split}_{i:06d}" for i in range(n)]
        for ex in exs:
            assert ex["image"].shape == (SIZE, SIZE, 3) and ex["image"].dtype == np.uint8
            assert ex["mask"].shape == (SIZE, SIZE, 1) and ex["mask"].dtype == np.uint8
            assert set(np.unique(ex["mask"])) <= {0, 1, 255}
            boxes, labels = ex["char_boxes"], ex["char_labels"]
            assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
            assert labels.dtype == np.int32 and labels.shape == (boxes.shape[0],)
            assert np.all((labels >= 0) & (labels <= render.OTHER_CLASS))
            assert isinstance(_text(ex["text"]), str)


def test_text_pixels_and_boxes(examples):
    exs = examples["train"] + examples["test"]
    with_text = [ex for ex in exs if np.any(ex["mask"] == 1)]
    assert len(with_text) >= len(exs) // 2
    assert any(ex["char_boxes"].shape[0] == 0 for ex in exs), "zero-row tensors should round-trip"
    for ex in exs:
        mask = ex["mask"][..., 0]
        boxes = ex["char_boxes"]
        assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2:] <= SIZE)
        assert np.all(boxes[:, 2:] > boxes[:, :2])
        covered = np.zeros_like(mask, bool)
        for y1, x1, y2, x2 in boxes.astype(int):
            covered[y1:y2, x1:x2] = True
        assert np.all(covered[mask == 1]), "every text pixel lies in some character box"
        assert (boxes.shape[0] > 0) == bool(np.any(mask == 1))


def test_build_is_deterministic(built, examples):
    # Records are compared decoded: TFDS serialises features as a protobuf map, whose byte order depends on a
    # per-process hash seed in upb, so the raw array_record bytes differ between processes (not contents).
    again = _read(built[1])
    for split in SPLITS:
        assert len(again[split]) == len(examples[split])
        for a, b in zip(examples[split], again[split], strict=True):
            assert a.keys() == b.keys()
            for key in a:
                np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def test_splits_differ_and_examples_rerender(examples):
    digest = {split: {hashlib.md5(ex["image"].tobytes()).hexdigest() for ex in exs} for split, exs in examples.items()}
    assert not digest["train"] & digest["test"]
    assert len(digest["train"]) == SPLITS["train"]
    ex = next(e for e in examples["test"] if _text(e["id"]) == "test_000002")
    _, again = stb.render_example(TINY, "test", 2)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(again["mask"])))[..., None], ex["mask"])


def test_zero_row_tensors_roundtrip_without_tf():
    features = stb.Builder(config=TINY, data_dir="/nonexistent-unused").info.features
    _, example = stb.render_example(TINY, "train", 0)
    example = dict(example, char_boxes=np.zeros((0, 4), np.float32), char_labels=np.zeros((0,), np.int32))
    decoded = features.deserialize_example_np(features.serialize_example(features.encode_example(example)))
    assert decoded["char_boxes"].shape == (0, 4) and decoded["char_boxes"].dtype == np.float32
    assert decoded["char_labels"].shape == (0,) and decoded["char_labels"].dtype == np.int32


def test_builder_configs():
    names = [c.name for c in stb.Builder.BUILDER_CONFIGS]
    assert names[0] == "quick" and "standard" in names
    quick = stb.Builder.BUILDER_CONFIGS[0]
    assert (quick.image_size, quick.num_train, quick.num_test) == (128, 6000, 300)
    check = next(c for c in stb.Builder.BUILDER_CONFIGS if c.name == "photo_check")
    assert check.pool == "holdout" and check.photo_only and check.num_train == 0


def test_check_config_has_only_a_test_split_and_holdout_assets(tmp_path):
    check = stb.SynthTextConfig(name="check_unit", description="test only", image_size=48, num_train=0, num_test=3,
                                seed=4, max_font_size=30, pool="holdout", photo_only=True, words="english",
                                low_contrast=False)
    builder = stb.Builder(config=check, data_dir=tmp_path)
    assert list(builder._split_generators(None)) == ["test"]
    builder.download_and_prepare(file_format="array_record",
                                 download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    source = tfds.data_source("synth_text", split="test", data_dir=tmp_path, download=False,
                              builder_kwargs={"config": check})
    assert len(source) == 3
    words = set(render.ENGLISH_WORDS)
    for ex in (source[i] for i in range(3)):
        for word in _text(ex["text"]).split():
            assert word.rstrip("!.:").lower() in words or len(word) < 4  # whole words, or a cut one that fits


def test_asset_pools_are_disjoint():
    from tfds_builders.synth_text import assets

    assert not set(assets.TRAIN_FONTS) & set(assets.HOLDOUT_FONTS)
    assert {assets.font_path(n) for n in assets.HOLDOUT_FONTS}.isdisjoint(
        assets.font_path(n) for n in assets.TRAIN_FONTS if n != render.PILLOW_DEFAULT)
    digest = {pool: {hashlib.md5(p.tobytes()).hexdigest() for p in assets.photos(pool)} for pool in ("train", "holdout")}
    assert len(digest["train"]) >= 17 and len(digest["holdout"]) >= 6
    assert not digest["train"] & digest["holdout"]


def test_structures_warp_into_the_image_and_repeat_per_seed():
    from PIL import Image

    from tfds_builders.synth_text import backgrounds

    # The perspective solve sends the layer's corners to the chosen quadrilateral (PIL maps output -> input).
    src = [(0.0, 0.0), (100.0, 0.0), (100.0, 100.0), (0.0, 100.0)]
    dst = [(10.0, 12.0), (90.0, 5.0), (120.0, 110.0), (-5.0, 95.0)]
    a, b, c, d, e, f, g, h = backgrounds._perspective(src, dst)
    for (x, y), (u, v) in zip(dst, src):
        z = g * x + h * y + 1
        np.testing.assert_allclose([(a * x + b * y + c) / z, (d * x + e * y + f) / z], [u, v], atol=1e-6)
    layer = Image.new("RGBA", (100, 100), (255, 0, 0, 255))
    warped = np.asarray(layer.transform((128, 128), Image.Transform.PERSPECTIVE, (a, b, c, d, e, f, g, h)))
    assert warped[50, 50, 3] == 255 and warped[2, 2, 3] == 0  # inside the quadrilateral / outside it
    # A structure changes part of a flat image, not all of it, and the same seed draws the same one.
    changed = []
    for seed in range(8):
        one = backgrounds._structures(np.random.default_rng(seed), _flat())
        np.testing.assert_array_equal(one, backgrounds._structures(np.random.default_rng(seed), _flat()))
        changed.append(np.any(one != _flat(), axis=-1).mean())
    assert 0 < min(changed) and max(changed) < 1


# ---------------------------------------------------------------------------------------------------------------
# Renderer.


def _flat(value=(40, 60, 80), size=128):
    return np.broadcast_to(np.asarray(value, np.float32), (size, size, 3)).copy()


def _block(**kw):
    args = dict(lines=("HE",), font="DejaVuSans-Bold.ttf", size=90, center=(64.0, 64.0), color=(250.0, 240.0, 10.0))
    args.update(kw)
    return render.TextBlock(**args)


def test_coverage_thresholds():
    cov = np.array([0.0, 0.25, 0.26, 0.5, 0.74, 0.75, 1.0], np.float32)
    np.testing.assert_array_equal(render.coverage_to_mask(cov), [0, 0, 255, 255, 255, 1, 1])


@pytest.mark.parametrize("warp", [dict(angle=0.0), dict(angle=23.0), dict(curve=0.9), dict(curve=-1.1, angle=10.0),
                                  dict(perspective=(0.35, -0.25))])
def test_ignore_only_at_glyph_edges(warp):
    sample = render.compose(_flat(), [_block(**warp)])
    mask = sample.mask
    assert (mask == 1).sum() > 1000
    # A pixel whose whole 3x3 neighbourhood is inked is interior and must be text, never ignore.
    inked = np.pad(mask != 0, 1)
    interior = np.ones_like(mask, bool)
    for dy in range(3):
        for dx in range(3):
            interior &= inked[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    assert np.all(mask[interior] == 1)
    assert np.any(mask == 255)


def test_outline_and_shadow_are_background():
    plain = render.compose(_flat(), [_block()])
    effects = _block(
        outline=render.Outline(6, (255.0, 0.0, 255.0)), shadow=render.Shadow((9, 7), 0.0, (0.0, 255.0, 0.0))
    )
    styled = render.compose(_flat(), [effects])
    # Effects are drawn below the fill, so the text mask is unchanged...
    np.testing.assert_array_equal(plain.mask, styled.mask)
    # ...and every pixel that shows the outline or shadow colour is background.
    outline_px = np.all(styled.image == (255, 0, 255), axis=-1)
    shadow_px = np.all(styled.image == (0, 255, 0), axis=-1)
    assert outline_px.sum() > 200 and shadow_px.sum() > 100
    assert np.all(styled.mask[outline_px | shadow_px] == 0)


def test_occluded_text_is_background():
    below = _block(lines=("O",), center=(64.0, 40.0))
    cover = _block(lines=("I",), center=(64.0, 40.0), outline=render.Outline(30, (0.0, 0.0, 255.0)))
    alone = render.compose(_flat(), [below])
    both = render.compose(_flat(), [below, cover])
    hidden = np.all(both.image == (0, 0, 255), axis=-1)
    assert np.any(alone.mask[hidden] == 1)
    assert np.all(both.mask[hidden] == 0)
    assert both.chars == "OI" or both.chars == "I"


def test_char_boxes_and_labels():
    sample = render.compose(_flat(), [_block(lines=("a9 !",), size=40)])
    assert sample.chars == "a9!"
    np.testing.assert_array_equal(sample.char_labels, [10, 9, 36])
    x_starts = sample.char_boxes[:, 1]
    assert np.all(np.diff(x_starts) > 0)
    assert sample.text == "a9 !"
    assert [render.glyph_class(c) for c in "0Zz?"] == [0, 35, 35, 36]


def _inside(quad: np.ndarray, x: np.ndarray, y: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Whether points are inside the convex quadrilateral `quad` [4, 2] (clockwise on the image)."""
    inside = np.ones(x.shape, bool)
    for k in range(4):
        (ax, ay), (bx, by) = quad[k], quad[(k + 1) % 4]
        inside &= (bx - ax) * (y - ay) - (by - ay) * (x - ax) >= -tol * np.hypot(bx - ax, by - ay)
    return inside


@pytest.mark.parametrize("warp", [dict(angle=0.0), dict(angle=31.0), dict(curve=0.8, angle=-12.0)])
def test_word_boxes_bound_their_words(warp):
    sample = render.compose(_flat(size=192), [_block(lines=("ab cd", "efg"), size=36, center=(96.0, 96.0), **warp)])
    assert sample.word_boxes.shape == (3, 4) and sample.word_quads.shape == (3, 4, 2)
    ys, xs = np.nonzero(sample.mask != 0)
    covered = np.zeros(ys.shape, bool)
    for (y1, x1, y2, x2), quad in zip(sample.word_boxes, sample.word_quads.astype(np.float64)):
        in_box = (ys >= y1) & (ys < y2) & (xs >= x1) & (xs < x2)
        # The rectangle holds whole pixel squares: all four corners of every pixel of its word.
        corners_in = np.ones(ys.shape, bool)
        for dx in (0, 1):
            for dy in (0, 1):
                corners_in &= _inside(quad, xs + dx, ys + dy)
        assert np.all(in_box[corners_in])  # the rectangle is inside the axis-aligned box...
        covered |= corners_in
        side = np.hypot(*(quad[1] - quad[0])), np.hypot(*(quad[2] - quad[1]))
        assert min(side) * max(side) <= 1.02 * (y2 - y1) * (x2 - x1)  # ...and not larger
    assert np.all(covered)  # every inked pixel belongs to some word's rectangle
    if warp["angle"] == 0.0 and "curve" not in warp:
        # Upright: the box itself.
        np.testing.assert_allclose(sample.word_quads[:, 0], sample.word_boxes[:, [1, 0]], atol=1e-4)
        np.testing.assert_allclose(sample.word_quads[:, 2], sample.word_boxes[:, [3, 2]], atol=1e-4)
    # Words run left to right, then down a line.
    assert sample.word_boxes[0, 1] < sample.word_boxes[1, 1] and sample.word_boxes[2, 0] > sample.word_boxes[0, 0]


def test_warp_inverse_undoes_forward():
    from tfds_builders.synth_text import raster

    block = _block(curve=-1.2, perspective=(0.3, 0.25), angle=17.0, stretch=1.2, shear=0.2)
    warp = raster._Warp(block, 40.0, 200.0)
    u, v = np.meshgrid(np.linspace(-100, 100, 9), np.linspace(-20, 20, 5))
    x, y = warp.forward(u, v)
    assert not np.allclose(x, u)
    back = warp.inverse(x, y)
    np.testing.assert_allclose(back[0], u, atol=1e-6)
    np.testing.assert_allclose(back[1], v, atol=1e-6)


def test_curved_text_bends_the_way_its_sign_says():
    def ends_minus_middle(curve):  # mean row of the text at the line ends minus the mean row in the middle
        mask = render.compose(_flat(size=160), [_block(lines=("MMMMMM",), size=24, center=(80.0, 80.0),
                                                       curve=curve)]).mask == 1
        ys, xs = np.nonzero(mask)
        ends, mid = np.abs(xs - xs.mean()) > 0.35 * np.ptp(xs), np.abs(xs - xs.mean()) < 0.1 * np.ptp(xs)
        return ys[ends].mean() - ys[mid].mean()

    assert abs(ends_minus_middle(0.0)) < 0.5
    assert ends_minus_middle(1.0) < -3  # ends up
    assert ends_minus_middle(-1.0) > 3  # an arch


def test_degradations_leave_the_mask_alone():
    base = render.RenderConfig(height=96, width=96)
    for i in range(6):
        clean = render.render_sample(render.example_rng(5, "train", i), dataclasses.replace(base, degrade=False))
        dirty = render.render_sample(render.example_rng(5, "train", i), base)
        np.testing.assert_array_equal(clean.mask, dirty.mask)
        np.testing.assert_array_equal(clean.char_boxes, dirty.char_boxes)


def test_every_font_draws_letters():
    for font in [*render.TRAIN_FONTS, *render.HOLDOUT_FONTS]:
        sample = render.compose(_flat(size=64), [_block(lines=("Ag",), font=font, size=30, center=(32.0, 32.0))])
        assert sample.chars == "Ag", font
        assert (sample.mask == 1).sum() > 20, font


def test_render_sample_is_deterministic_and_varied():
    cfg = render.RenderConfig(height=96, width=80)
    a = render.render_sample(render.example_rng(0, "train", 5), cfg)
    b = render.render_sample(render.example_rng(0, "train", 5), cfg)
    c = render.render_sample(render.example_rng(0, "test", 5), cfg)
    assert a.image.shape == (96, 80, 3) and a.mask.shape == (96, 80)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.text == b.text and not np.array_equal(a.image, c.image)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
