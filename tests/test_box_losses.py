"""Tests for texrnet_jax.box_losses (box supervision), the word-box crop of preprocessing and its training wiring.

The loss tests use tiny hand-made arrays whose answers are worked out by hand; one `configs/synth_quick.py:tiny,boxes`
run of 3 steps checks the wiring end to end (in process, 4 CPU devices, as tests/test_train_smoke.py does).
"""

import functools
import importlib
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import base
from texrnet_jax import box_losses as bl
from texrnet_jax import input_pipeline, preprocessing, train
from texrnet_jax.resample import resize_labels_nearest

# XLA's slow optimisation passes off for this module (conftest): compilation is most of its cost.
pytestmark = pytest.mark.usefixtures("fast_compile")
S = 16  # side of the toy crops; the logits are at the same resolution unless a test says otherwise
MEAN, STD = base.data_config("x").mean, base.data_config("x").std


def _logits_from_prob(prob):
    """2-class logits whose text softmax is `prob` (clipped away from 0 and 1)."""
    p = jnp.clip(jnp.asarray(prob, jnp.float32), 1e-6, 1 - 1e-6)
    return jnp.stack([jnp.zeros_like(p), jnp.log(p) - jnp.log1p(-p)], axis=-1)


def _boxes(*rows, k=None):
    """[1, K, 4] boxes, [1, K] valid and [1, K] ignore from `(y1, x1, y2, x2[, 'ignore'])` rows, padded to k."""
    k = k or len(rows)
    boxes, valid, ignore = np.zeros((1, k, 4), np.float32), np.zeros((1, k), bool), np.zeros((1, k), bool)
    for i, row in enumerate(rows):
        boxes[0, i], valid[0, i], ignore[0, i] = row[:4], True, len(row) > 4
    return jnp.asarray(boxes), jnp.asarray(valid), jnp.asarray(ignore)


def _flat_rgb(value=(120.0, 80.0, 40.0), size=S):
    return jnp.broadcast_to(jnp.asarray(value, jnp.float32), (1, size, size, 3))


_box_losses = jax.jit(functools.partial(bl.texrnet_box_losses, logit_rfn=None, weights=(1.0, 0.5)))


def _losses(prob_or_logits, boxes, valid, ignore, rgb=None, logits=False):
    lg = jnp.asarray(prob_or_logits) if logits else _logits_from_prob(prob_or_logits)
    return _box_losses(lg, rgb=_flat_rgb() if rgb is None else rgb, boxes=boxes, box_valid=valid, box_ignore=ignore)


def test_lab_matches_skimage():
    skimage_color = pytest.importorskip("skimage.color")
    rgb = np.random.default_rng(0).integers(0, 256, (64, 3)).astype(np.uint8)
    rgb[:3] = [[0, 0, 0], [255, 255, 255], [2, 3, 4]]  # both branches of the gamma and of f(t)
    np.testing.assert_allclose(np.asarray(bl.rgb_to_lab(jnp.asarray(rgb, jnp.float32))),
                               skimage_color.rgb2lab(rgb[None])[0], atol=2e-4)


def test_area_matrix_averages_each_stride_cell():
    m = bl.area_matrix(9, 3)  # cells of width 4 centred on pixels 0, 4, 8
    np.testing.assert_allclose(m[1], [0, 0, 0.125, 0.25, 0.25, 0.25, 0.125, 0, 0])
    np.testing.assert_allclose(m[0], [0.4, 0.4, 0.2, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(bl.area_matrix(5, 5), np.eye(5, dtype=np.float32))


def test_projection_is_zero_for_a_cross_and_positive_with_an_empty_row():
    boxes, valid, ignore = _boxes((2, 3, 10, 12))
    prob = np.zeros((1, S, S), np.float32)
    prob[0, 5, 3:12] = 1.0  # one full row of the box: every column has ink
    prob[0, 2:10, 7] = 1.0  # one full column: every row has ink
    out = _losses(prob, boxes, valid, ignore)
    assert float(out["box_prj_sem"]) == pytest.approx(0.0, abs=1e-5)
    assert out["num_box_profiles"] == 2
    prob[0, 8, 7] = 0.0  # row 8 of the box's 8 rows is now empty: row dice 1 - 2*7 / (7 + 8)
    out = _losses(prob, boxes, valid, ignore)
    assert float(out["box_prj_sem"]) == pytest.approx(1 - 14 / (15 + bl.DICE_EPS), abs=1e-5)


def test_projection_keeps_only_the_uncut_profile_of_a_cut_box():
    boxes, valid, ignore = _boxes((2, 10, 8, S + 5))  # passes the right edge: its row profile is unreliable
    prob = np.zeros((1, S, S), np.float32)
    prob[0, 2:8, 10:] = 0.5
    out = _losses(prob, boxes, valid, ignore)
    assert out["num_box_profiles"] == 1
    assert float(out["box_prj_sem"]) == pytest.approx(1 - 2 * 6 * 0.5 / (6 * 0.25 + 6 + bl.DICE_EPS), abs=1e-5)


def test_background_term_is_the_ce_outside_every_box():
    boxes, valid, ignore = _boxes((2, 3, 10, 12), (12, 0, 16, 4, "ignore"))
    prob = np.full((1, S, S), 0.2, np.float32)
    out = _losses(prob, boxes, valid, ignore)
    n_out = S * S - 8 * 9 - 4 * 4
    assert out["num_valid"] == n_out
    assert float(out["box_bg_sem"]) == pytest.approx(-math.log(0.8), rel=1e-5)
    prob[0, 2:10, 3:12] = 0.9  # inside the box: no background loss
    assert float(_losses(prob, boxes, valid, ignore)["box_bg_sem"]) == pytest.approx(-math.log(0.8), rel=1e-5)


def test_ignore_boxes_get_no_loss_at_all():
    """Logits inside a don't-care box (also where it overlaps a counted box) change nothing and get no gradient."""
    boxes, valid, ignore = _boxes((2, 3, 10, 12), (6, 8, 14, 15, "ignore"))
    rng = np.random.default_rng(1)
    lg = jnp.asarray(rng.normal(size=(1, S, S, 2)), jnp.float32)
    ign = np.zeros((1, S, S, 1), bool)
    ign[0, 6:14, 8:15] = True

    def total(x):
        return _losses(x, boxes, valid, ignore, logits=True, rgb=_flat_rgb())["total"]

    other = jnp.where(ign, jnp.asarray(rng.normal(size=(1, S, S, 2)) * 5, jnp.float32), lg)
    assert float(total(lg)) == pytest.approx(float(total(other)), rel=1e-6)
    grad = np.asarray(jax.jit(jax.grad(total))(lg))
    assert np.all(grad[np.broadcast_to(ign, grad.shape)] == 0) and np.any(grad != 0)


def test_padding_boxes_contribute_nothing():
    lg = jnp.asarray(np.random.default_rng(2).normal(size=(1, S, S, 2)), jnp.float32)
    want = _losses(lg, *_boxes((2, 3, 10, 12)), logits=True)
    boxes, valid, ignore = _boxes((2, 3, 10, 12), k=5)
    boxes = boxes.at[0, 1:].set(jnp.asarray([[0, 0, 16, 16], [-5, 3, 30, 4], [1, 1, 2, 2], [4, 4, 9, 9]]))
    ignore = ignore.at[0, 3].set(True)  # an invalid row stays inert even when flagged don't-care
    got = _losses(lg, boxes, valid, ignore, logits=True)
    for key, value in want.items():
        assert float(got[key]) == pytest.approx(float(value), rel=1e-6), key


def test_pairwise_is_zero_for_constant_labels_and_large_for_a_checkerboard():
    boxes, valid, ignore = _boxes((0, 0, S, S))
    const = _losses(np.full((1, S, S), 0.999), boxes, valid, ignore)
    assert float(const["box_pair_sem"]) < 1e-2
    assert const["num_pairs"] == 2 * S * (S - 2) + 2 * (S - 2) ** 2  # 4 offsets at dilation 2, flat colour
    yy, xx = np.mgrid[:S, :S]
    checker = np.where(((yy // 2) + (xx // 2)) % 2 == 0, 0.999, 0.001)[None]  # cells 2 apart differ along y and x
    assert float(_losses(checker, boxes, valid, ignore)["box_pair_sem"]) > 2.0


def test_pairwise_skips_pairs_across_a_colour_edge_and_outside_boxes():
    rgb = np.tile(np.asarray([200.0, 200.0, 200.0], np.float32), (1, S, S, 1))
    rgb[:, :, 8:] = [10.0, 10.0, 10.0]
    prob = np.where(np.arange(S)[None, None] < 8, 0.999, 0.001) * np.ones((1, S, S))
    boxes, valid, ignore = _boxes((0, 0, S, S))
    out = _losses(prob, boxes, valid, ignore, rgb=jnp.asarray(rgb))
    assert float(out["box_pair_sem"]) < 1e-2  # the label change sits on the colour edge, whose pairs are skipped
    # Flat colour: the 88 of 840 pairs that cross the label change cost -log(2 * 0.999 * 0.001), the rest ~0.
    flat = _losses(prob, boxes, valid, ignore)
    cross, same = -math.log(2 * 0.999 * 0.001), -math.log(0.999**2 + 0.001**2)
    assert float(flat["box_pair_sem"]) == pytest.approx((88 * cross + 752 * same) / 840, rel=1e-4)
    assert _losses(prob, *_boxes((0, 0, 1, 1)))["num_pairs"] == 0  # a 1-cell box has no pair inside boxes


def test_gradients_are_finite_also_without_boxes_and_for_extreme_logits():
    rng = np.random.default_rng(3)
    lg = jnp.asarray(rng.normal(size=(2, 9, 9, 2)) * 1e4, jnp.float32)
    rgb = jnp.asarray(rng.uniform(0, 255, (2, 33, 33, 3)), jnp.float32)  # stride-4 logits: 33 -> 9
    boxes = jnp.asarray([[[4, 4, 20, 28], [0, 0, 0, 0]], [[-3, 10, 40, 20], [8, 8, 16, 16]]], jnp.float32)
    for valid in (jnp.asarray([[True, False], [True, True]]), jnp.zeros((2, 2), bool)):
        def total(x, valid=valid):
            return bl.texrnet_box_losses(x, 2 * x, rgb, boxes, valid, jnp.asarray([[False, False], [False, True]]),
                                         weights=(1.0, 0.5))["total"]

        value, grad = jax.jit(jax.value_and_grad(total))(lg)
        assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))


def test_crop_word_boxes_match_the_cropped_mask():
    """With no margin a word box covers exactly the crop pixels the mask's nearest resize labels as its text."""
    src = np.zeros((64, 64), np.uint8)
    src[10:22, 7:40] = 1  # a "word" whose ink fills its box
    src[40:50, 50:64] = 1  # one leaving the image on the right
    word_boxes = np.asarray([[10, 7, 22, 40], [40, 50, 50, 64]], np.float32)
    for geometry in ((100, 100, 0, 0), (100, 100, 30, 20), (64, 64, 5, 5), (150, 150, 60, 71)):
        _, crop_mask = preprocessing.random_scale_crop(np.zeros((64, 64, 3), np.uint8), src, None, (0, 0), 65, 255,
                                                       geometry, normalize_fn=lambda x: x)
        out = preprocessing.crop_word_boxes(word_boxes, (64, 64), geometry, 65, max_boxes=4)
        masks = bl.box_masks(jnp.asarray(out["word_boxes"][None]), jnp.asarray(out["word_valid"][None]),
                             jnp.asarray(out["word_ignore"][None]), (65, 65), (65, 65))
        np.testing.assert_array_equal(np.asarray(masks["inside"][0]), crop_mask == 1, err_msg=str(geometry))
    # A margin grows each side by pad x scale; the crop does not clip, so a word past its edge reads as cut.
    grown = preprocessing.crop_word_boxes(word_boxes[:1], (64, 64), (127, 127, 0, 40), 65, max_boxes=2, pad=2.0)
    np.testing.assert_allclose(grown["word_boxes"][0], [15.5, -30.5, 47.5, 43.5])  # 2x: (e - 0.5) * 2 + 0.5
    assert grown["word_valid"].tolist() == [True, False]


def test_crop_word_boxes_overflow_becomes_one_dont_care_box():
    boxes = np.asarray([[0, 0, 4, 4], [10, 10, 14, 14], [20, 30, 24, 34], [5, 50, 9, 60]], np.float32)
    out = preprocessing.crop_word_boxes(boxes, (64, 64), (64, 64, 0, 0), 64, max_boxes=2)
    assert out["word_valid"].tolist() == [True, True] and out["word_ignore"].tolist() == [False, True]
    np.testing.assert_allclose(out["word_boxes"][1], [5, 10, 24, 60])  # the union of the three that do not fit


def test_pipeline_batches_carry_word_boxes_and_no_mask(tiny_synth_dir):
    """On synth_text/tiny: no mask in box mode; with it, every text pixel of a crop lies inside some word box."""
    data_cfg = base.data_config("synth_text/tiny")
    data_cfg.update(data_dir=str(tiny_synth_dir), scale_range=(65, 97), crop_size=65, word_box_pad=0.0)
    batch = next(input_pipeline.train_iterator(data_cfg, 4, seed=0, max_word_boxes=8, with_mask=False))
    assert set(batch) == {"image", "image_hw", "word_boxes", "word_valid", "word_ignore"}  # uint8 crops + extents
    assert batch["word_boxes"].shape == (4, 8, 4) and batch["word_valid"].any()
    batch = next(input_pipeline.train_iterator(data_cfg, 4, seed=0, max_word_boxes=8))
    for out_hw in ((65, 65), (17, 17)):
        masks = bl.box_masks(jnp.asarray(batch["word_boxes"]), jnp.asarray(batch["word_valid"]),
                             jnp.asarray(batch["word_ignore"]), (65, 65), out_hw)
        text = np.asarray(resize_labels_nearest(batch["mask"], out_hw)) == 1
        assert text.any() and not np.any(text & np.asarray(masks["outside"])), out_hw


class _StrideFour(nnx.Module):
    """A stand-in for TexRNet: one stride-4 conv gives `logit_sem`, twice it `logit_rfn` (cheap to compile)."""

    def __init__(self, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, 2, (4, 4), strides=4, padding="SAME", rngs=rngs)

    def __call__(self, x):
        y = self.conv(x)
        return {"logit_sem": y, "logit_rfn": 2.0 * y}


def test_train_step_never_reads_the_mask():
    """With box supervision an all-255, a random and a missing mask give the same losses and gradients."""
    model = _StrideFour(nnx.Rngs(0))
    train_def, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(0.1)
    loss_cfg = base.get_base_config().loss
    loss_cfg.box_supervision = True
    loss_cfg.box_pairwise_warmup_steps = 0
    step = jax.jit(train.make_train_step(train_def, tx, lambda s: 0.1, loss_cfg, 255, image_mean_std=(MEAN, STD)))
    rng = np.random.default_rng(4)
    batch = {"image": (0.3 + 1e-3 * rng.normal(size=(2, 33, 33, 3))).astype(np.float32),  # near-flat colour
             "word_boxes": np.asarray([[[4, 4, 20, 28], [0, 0, 0, 0]], [[2, 10, 30, 20], [8, 8, 16, 16]]], np.float32),
             "word_valid": np.asarray([[True, False], [True, True]]),
             "word_ignore": np.asarray([[False, False], [False, True]])}
    results = []
    for mask in (None, np.full((2, 33, 33), 255, np.int32), rng.integers(0, 2, (2, 33, 33)).astype(np.int32)):
        b = dict(batch) if mask is None else {**batch, "mask": mask}
        _, metrics = step(train.init_state(params, rest, tx), b)
        results.append(jax.device_get(metrics))
    for other in results[1:]:
        assert other.keys() == results[0].keys()
        for key in results[0]:
            assert other[key] == results[0][key], key
    assert results[0]["lossrfntri"] == 0 and results[0]["grad_norm"] > 0 and results[0]["box_pair_sem"] > 0


def test_dataset_without_word_boxes_is_a_one_line_error(tmp_path):
    from tfds_builders import common
    from tfds_builders.total_text import make_dummy_data as dummy
    from tfds_builders.total_text import total_text_dataset_builder as ttb

    common.prepare_for_test(ttb.Builder(data_dir=str(tmp_path)), dummy.OUT)
    data_cfg = base.data_config("total_text")
    data_cfg.update(data_dir=str(tmp_path), auto_prepare=False)
    with pytest.raises(ValueError, match=r"^box supervision needs word boxes, but dataset 'total_text' has no "
                                         r"word_boxes feature \(set --config.loss.box_supervision=False\)$"):
        input_pipeline.train_iterator(data_cfg, 2, seed=0, max_word_boxes=8, with_mask=False)


@pytest.mark.usefixtures("fast_compile")
def test_tiny_boxes_run_trains_from_boxes(tiny_synth_dir, tmp_path):
    """`configs/synth_quick.py:tiny,boxes`: 3 steps through `train_and_evaluate`, then the usual evaluation."""
    config = importlib.import_module("configs.synth_quick").get_config("tiny,boxes")
    config.data.data_dir = str(tiny_synth_dir)
    config.train.num_steps = 3
    config.eval.max_images = 2
    config.lock()
    result = train.train_and_evaluate(config, str(tmp_path / "work"))
    lines = [json.loads(x) for x in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
    lines = [d for d in lines if "loss" in d]
    print("box-supervised tiny run:", [{k: round(d[k], 5) for k in ("total", "losssem", "lossrfn", "box_prj_sem",
                                                                    "box_bg_sem", "box_pair_sem")} for d in lines])
    assert [d["step"] for d in lines] == [1, 2, 3]
    for d in lines:
        assert math.isfinite(d["total"]) and d["total"] > 0 and d["lossrfntri"] == 0
        assert d["total"] == pytest.approx(d["losssem"] + 0.5 * d["lossrfn"], rel=1e-6)
        assert d["num_box_profiles"] > 0 and d["num_pairs"] > 0 and d["valid_empty"] == 0
    # Pairwise warm-up over 2 steps: weight 0, 0.5, 1.
    for d, w in zip(lines, (0.0, 0.5, 1.0), strict=True):
        want = d["box_prj_sem"] + d["box_bg_sem"] + w * d["box_pair_sem"]
        assert d["losssem"] == pytest.approx(want, rel=1e-5)
    assert 0.0 <= result["fgiou"] <= 1.0
