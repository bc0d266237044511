"""`config.init_from`: weights converted from a reference state dict start (or evaluate) a run."""

import importlib

import numpy as np
import pytest
from flax import nnx

from texrnet_jax import convert, weights


@pytest.fixture(scope="module")
def converted(parity_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted")
    convert.main(["--arch=hrnet_w18", f"--input={parity_dir / 'texrnet_hrnet_small.npz'}", f"--output={out}"])
    return out


def _config(converted, backbone="hrnet_w18"):
    config = importlib.import_module("configs.synth_quick").get_config("tiny")
    config.model.backbone = backbone
    config.model.rfn_channels = 64
    config.init_from = str(converted)
    return config


def test_initialize_from_copies_every_converted_array(converted, parity_dir):
    config = _config(converted)
    _, _, params, rest = weights.create_model(config)
    params, rest = weights.initialize_from(config, params, rest)
    flat = {".".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(params)}
    flat.update({".".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(rest)})
    ref = np.load(parity_dir / "texrnet_hrnet_small.npz")
    # Spot checks through the converter's layout rules: a conv kernel (OIHW -> HWIO), BN running stats, bias_sem.
    kernel = ref["state_dict/hrnet.conv1.weight"].transpose(2, 3, 1, 0)
    np.testing.assert_array_equal(flat["hrnet.conv1.kernel"], kernel)
    np.testing.assert_array_equal(flat["hrnet.bn1.var"], ref["state_dict/hrnet.bn1.running_var"])
    np.testing.assert_array_equal(flat["semrfnhead.bias_sem"], ref["state_dict/semrfnhead.bias_sem"])


def test_initialize_from_rejects_another_backbone(converted):
    config = _config(converted, backbone="hrnet_tiny")
    _, _, params, rest = weights.create_model(config)
    with pytest.raises(ValueError, match="backbone"):
        weights.initialize_from(config, params, rest)


def test_predict_with_converted_weights_and_a_paper_config(converted, tmp_path, capsys):
    """The README's pretrained path: a paper config with `init_from`, `--mode=predict`, no dataset, no glyph classifier."""
    from PIL import Image

    from texrnet_jax import predict

    config = importlib.import_module("configs.textseg_hrnet").get_config(f"init_from={converted}")
    config.model.backbone = "hrnet_w18"  # the fixture's backbone (the released weights are HRNet-W48)
    config.eval.update(scales=(1.0,), base_size=64)  # one small pass instead of the paper's eight
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(photos / "a.jpg")
    config.predict.update(input=str(photos / "*.jpg"), output=str(tmp_path / "masks"))
    assert predict.predict_from_config(config, str(tmp_path / "empty_workdir")) == 0
    mask = np.asarray(Image.open(tmp_path / "masks" / "a_mask.png"))
    assert mask.shape == (40, 56) and set(np.unique(mask)) <= {0, 255}
    assert str(converted) in capsys.readouterr().out
