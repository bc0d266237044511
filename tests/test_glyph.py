"""The glyph-discriminator loss as configured: which experiments use it, its classifier and the convert CLI."""

import importlib

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from configs import base
from texrnet_jax import convert, weights
from texrnet_jax.models import build_model


@pytest.mark.parametrize("dataset", sorted(base.DATASETS))
def test_glyph_loss_is_on_for_textseg_and_icdar13_only(dataset):
    config = base.experiment(dataset, "hrnet_w48", None)
    assert config.loss.glyph == (0.1 if dataset in ("textseg", "icdar13_fst") else 0.0)
    tiny = base.experiment(dataset, "deeplab_r101", "tiny")
    if config.loss.glyph:
        # A smoke run needs no weights file: an untrained tiny classifier stands in.
        assert (tiny.loss.glyph_classifier, tiny.loss.glyph_arch) == ("random", "glyph_tiny")
        given = base.experiment(dataset, "hrnet_w48", "glyph_classifier=/ckpt/glyph")
        assert given.loss.glyph_classifier == "/ckpt/glyph"
    else:
        assert weights.load_glyph_classifier(tiny.loss, 0) is None


def test_missing_classifier_is_one_clear_error(tmp_path):
    config = importlib.import_module("configs.textseg_hrnet").get_config()
    with pytest.raises(ValueError, match=r"config.loss.glyph=0.1 needs config.loss.glyph_classifier: .*--model="
                                         r"glyph_classifier"):
        weights.load_glyph_classifier(config.loss, 0)
    config.loss.glyph_classifier = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="config.loss.glyph_classifier=.*nowhere is not a converted"):
        weights.load_glyph_classifier(config.loss, 0)


def test_converted_classifier_gives_the_same_logits(tmp_path):
    """State dict (torch names and layouts) -> convert CLI -> `config.loss.glyph_classifier` -> same logits."""
    model = build_model({"name": "glyph_classifier", "backbone": "glyph_tiny"},
                        rngs=nnx.Rngs(jax.random.key(3, impl="rbg")))
    nnx.update(model, jax.tree.map(lambda v: v * 1.5 + 0.25, nnx.state(model, nnx.BatchStat)))
    model.eval()
    sd = convert.export_state_dict(model)
    assert sd["conv1.weight"].shape == (8, 1, 7, 7) and "cls_head.fc.weight" in sd
    np.savez(tmp_path / "textcls.npz", **sd)
    out = convert.main(["--model=glyph_classifier", "--arch=glyph_tiny", f"--input={tmp_path / 'textcls.npz'}",
                        f"--output={tmp_path / 'glyph'}"])
    loss_cfg = ml_collections.ConfigDict(dict(glyph=0.1, glyph_classifier=str(out), glyph_arch="glyph_resnet50"))
    graphdef, state = weights.load_glyph_classifier(loss_cfg, 0)
    crops = np.random.default_rng(0).uniform(size=(3, 32, 32, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(nnx.merge(graphdef, state)(crops)), np.asarray(model(crops)))
    with pytest.raises(SystemExit):  # argparse: a classifier has no ImageNet backbone-only form
        convert.main(["--model=glyph_classifier", "--arch=glyph_tiny", "--backbone_only",
                      f"--input={tmp_path / 'textcls.npz'}", f"--output={tmp_path / 'x'}"])
