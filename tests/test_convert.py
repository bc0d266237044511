"""The PyTorch -> NNX weight converter: key coverage, parameter counts, error reporting, partial loads, CLI.

Full-size models (HRNet-W48, DeepLab-R101) are only ever built under `nnx.eval_shape`; the key listings
`../shared/parity/keys_<model>.txt` (`name (shape) dtype` per line) are the names a converter must accept.
"""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from flax import nnx

from texrnet_jax import convert
from texrnet_jax.models import build_model
from texrnet_jax.models.discriminator import GlyphClassifier

KEY_FILES = ("hrnet_w18", "hrnet_w48", "deeplab_r50", "deeplab_r101")
_LINE = re.compile(r"^(\S+) \(([\d, ]*)\) (\w+)$")


def read_keys(path) -> dict[str, tuple[int, ...]]:
    """Parses a `keys_<model>.txt` listing into name -> shape."""
    keys = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        assert m, f"unparsed line {line!r}"
        keys[m.group(1)] = tuple(int(s) for s in m.group(2).replace(" ", "").split(",") if s)
    return keys


def abstract_model(cfg):
    return nnx.eval_shape(lambda: build_model(cfg, rngs=nnx.Rngs(0)))


def param_count(model) -> int:
    return sum(int(np.prod(v.shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


@pytest.fixture(scope="module")
def abstract_models():
    """Lazily built abstract TexRNet per key-file architecture, shared by the tests of this module."""
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = abstract_model(convert.model_config(arch))
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", KEY_FILES)
def test_key_table_covers_reference_keys(arch, parity_dir, abstract_models):
    keys = read_keys(parity_dir / f"keys_{arch}.txt")
    model = abstract_models(arch)
    match = convert.match_keys(model, keys)
    assert match.problems(strict=True) == []
    assert sorted(match.dropped) == sorted(k for k in keys if k.endswith("num_batches_tracked"))
    # Every param and batch stat of the model is covered exactly once.
    assert len(set(match.assign.values())) == len(match.assign) == len(keys) - len(match.dropped)
    assert len(match.assign) == len(list(nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat)))))
    # Param count = the file's non-buffer entries.
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert param_count(model) == sum(int(np.prod(s)) for k, s in keys.items() if not k.endswith(buffers))


@pytest.mark.parametrize("arch, millions, entries", [("hrnet_w48", 67.11, 1854), ("deeplab_r101", 59.86, 695)])
def test_parameter_counts_match_spec(arch, millions, entries, parity_dir, abstract_models):
    assert round(param_count(abstract_models(arch)) / 1e6, 2) == millions
    assert len(read_keys(parity_dir / f"keys_{arch}.txt")) == entries


def test_one_error_names_every_problem(parity_dir, abstract_models):
    keys = read_keys(parity_dir / "keys_hrnet_w18.txt")
    # Broadcast zeros: full-size arrays without the memory. The load fails before any value is touched,
    # so an abstract model is enough.
    sd = {k: np.broadcast_to(np.float32(0), s) for k, s in keys.items()}
    sd["hrnet.stage3.1.branches.2.0.conv2.weightx"] = sd.pop("hrnet.stage3.1.branches.2.0.conv2.weight")
    sd["semrfnhead.conv_ref.conv0.weight"] = np.zeros((64, 274, 5, 5), np.float32)
    with pytest.raises(ValueError) as err:
        convert.torch_to_nnx(abstract_models("hrnet_w18"), sd)
    msg = str(err.value)
    assert "3 problem(s)" in msg
    assert "unexpected in the file (not in the model): hrnet.stage3.1.branches.2.0.conv2.weightx" in msg
    assert "missing in the file: hrnet.stage3.1.branches.2.0.conv2.weight" in msg
    assert "shape mismatch: semrfnhead.conv_ref.conv0.weight: file (64, 274, 5, 5) vs model (64, 275, 5, 5)" in msg


def _rngs(seed: int) -> nnx.Rngs:
    # 'rbg' keys: the eager random init compiles one sampler per parameter shape, several times faster than threefry.
    return nnx.Rngs(jax.random.key(seed, impl="rbg"))


@pytest.fixture(scope="module")
def tiny_deeplab():
    model = build_model({"name": "texrnet", "backbone": "deeplab_tiny"}, rngs=_rngs(0))
    # Non-trivial batch stats, so that a wrong mapping of mean/var would show.
    stats = nnx.state(model, nnx.BatchStat)
    nnx.update(model, jax.tree.map(lambda v: v + 0.5, stats))
    return model


def test_export_import_round_trip_is_exact(tiny_deeplab):
    sd = convert.export_state_dict(tiny_deeplab)
    assert "deeplab.aspp.conv5.1.weight" in sd and "deeplab.aspp.conv5.2.running_var" in sd
    assert sd["deeplab.resnet.conv1.weight"].shape == (8, 3, 7, 7)  # OIHW
    other = build_model({"name": "texrnet", "backbone": "deeplab_tiny"}, rngs=_rngs(1))
    convert.torch_to_nnx(other, {"module." + k: v for k, v in sd.items()})  # DataParallel prefix is stripped
    for (pa, a), (pb, b) in zip(nnx.to_flat_state(nnx.state(tiny_deeplab, (nnx.Param, nnx.BatchStat))),
                                nnx.to_flat_state(nnx.state(other, (nnx.Param, nnx.BatchStat))), strict=True):
        assert pa == pb
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]), err_msg=str(pa))


def test_backbone_only_partial_load(tiny_deeplab):
    full = convert.export_state_dict(tiny_deeplab)
    prefix = "deeplab.resnet."
    # A torchvision-style ImageNet file: no prefix, plus a classification head the model lacks.
    imagenet = {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}
    imagenet["fc.weight"], imagenet["fc.bias"] = np.zeros((1000, 128), np.float32), np.zeros((1000,), np.float32)
    model = build_model({"name": "texrnet", "backbone": "deeplab_tiny"}, rngs=_rngs(7))
    head_before = np.asarray(model.semrfnhead.conv_sem.kernel[...])
    with pytest.raises(ValueError, match="unexpected in the file .*: conv1.weight") as err:
        convert.torch_to_nnx(model, imagenet)  # strict, no prefix: nothing matches
    assert "missing in the file: deeplab.aspp.conv1.0.weight" in str(err.value)
    with pytest.raises(ValueError, match="unexpected in the file .*: fc.weight"):
        convert.torch_to_nnx(model, imagenet, strict=False, prefix_map={"": prefix})
    # With a prefix map, "missing" only looks inside the mapped scope, so a complete backbone passes strict.
    convert.torch_to_nnx(model, imagenet, strict=True, prefix_map={"": prefix}, skip=convert.IMAGENET_HEAD_KEYS)
    np.testing.assert_array_equal(np.asarray(model.deeplab.resnet.layer4[0].conv2.kernel[...]),
                                  np.asarray(tiny_deeplab.deeplab.resnet.layer4[0].conv2.kernel[...]))
    np.testing.assert_array_equal(np.asarray(model.semrfnhead.conv_sem.kernel[...]), head_before)  # untouched
    # Mis-shaped keys are still reported in partial mode.
    imagenet["layer1.0.conv1.weight"] = np.zeros((8, 9, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"shape mismatch: layer1.0.conv1.weight: file \(8, 9, 1, 1\)"):
        convert.torch_to_nnx(model, imagenet, strict=False, prefix_map={"": prefix}, skip=convert.IMAGENET_HEAD_KEYS)


def test_glyph_classifier_keys(parity_dir):
    """The classifier takes the reference's unprefixed torchvision names: 320 entries, 23.58M parameters."""
    prefix = "deeplab.resnet."
    r50 = read_keys(parity_dir / "keys_deeplab_r50.txt")
    keys = {k[len(prefix):]: s for k, s in r50.items() if k.startswith(prefix)}
    keys["conv1.weight"] = (64, 1, 7, 7)
    keys["cls_head.fc.weight"], keys["cls_head.fc.bias"] = (37, 2048), (37,)
    model = nnx.eval_shape(lambda: GlyphClassifier(rngs=nnx.Rngs(0)))
    assert convert.match_keys(model, keys).problems() == []
    assert len(keys) == 320
    assert round(param_count(model) / 1e6, 2) == 23.58
    logits = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((5, 32, 32, 1), np.float32))
    assert logits.shape == (5, 37)


def test_cli_round_trip_fixture(parity_dir, tmp_path):
    """npz (fixture layout) -> CLI -> Orbax checkpoint -> load_converted: every array comes back bit-exact."""
    src = parity_dir / "texrnet_hrnet_small.npz"
    out = convert.main(["--arch=hrnet_w18", f"--input={src}", f"--output={tmp_path / 'w18'}"])
    cfg, state = convert.load_converted(out)
    assert cfg["name"] == "texrnet" and cfg["backbone"] == "hrnet_w18"
    got = convert.export_state_dict(state)
    want = convert.read_state_dict(src)
    assert set(got) == set(want)
    for k, v in want.items():
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_cli_round_trip_outputs(tmp_path):
    """A tiny model exported to npz, converted by the CLI and restored gives the same outputs."""
    cfg = {"name": "texrnet", "backbone": "hrnet_tiny"}
    model = build_model(cfg, rngs=_rngs(3))
    nnx.update(model, jax.tree.map(lambda v: v * 1.5 + 0.25, nnx.state(model, nnx.BatchStat)))
    np.savez(tmp_path / "tiny.npz", **convert.export_state_dict(model))
    out = convert.main(["--arch=hrnet_tiny", f"--input={tmp_path / 'tiny.npz'}", f"--output={tmp_path / 'ckpt'}"])
    cfg2, state = convert.load_converted(out)
    assert cfg2 == {"name": "texrnet", "backbone": "hrnet_tiny", "dtype": "float32", "num_classes": 2}
    model.eval()
    graphdef, params_stats, rest = nnx.split(model, (nnx.Param, nnx.BatchStat), ...)
    # One compiled forward, applied to the original and to the restored weights.
    forward = jax.jit(lambda st, x: nnx.merge(graphdef, st, rest)(x))
    x = np.random.default_rng(0).normal(size=(1, 33, 41, 3)).astype(np.float32)
    a, b = forward(params_stats, x), forward(state, x)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)
