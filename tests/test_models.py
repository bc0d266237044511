"""Model structure tests: output shapes and strides of every registered backbone (under `eval_shape`),
dilation and ASPP settings, the baseline, and tiny forward passes in training and eval mode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from texrnet_jax.models import BACKBONES, MODELS, build_backbone, build_model
from texrnet_jax.models.deeplab import DeepLabV3Plus
from texrnet_jax.models.resnet import RESNET_PRESETS, ResNet, max_pool_3x3_s2

F32 = jnp.float32


def _abstract_forward(module, shape):
    return nnx.eval_shape(lambda m, x: m(x), module, jax.ShapeDtypeStruct(shape, F32))


@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_output_stride_4(name):
    net = nnx.eval_shape(lambda: build_backbone(name, dtype=F32, rngs=nnx.Rngs(0))[0])
    net.eval()
    channels = net.out_channels
    assert channels == {"hrnet_w18": 270, "hrnet_w32": 480, "hrnet_w48": 720}.get(name, channels)
    # 32k+1 inputs (the reference's eval sizes) land on ceil(H/4) = 8k+1; even inputs on H/4. Tracing a
    # full-size forward costs seconds, so the even case runs on the small presets only.
    cases = [((1, 129, 129, 3), (1, 33, 33, channels))]
    if name.endswith(("tiny", "small")):
        cases.append(((2, 128, 160, 3), (2, 32, 40, channels)))
    for shape, out in cases:
        feats = _abstract_forward(net, shape)
        assert set(feats) == {"s4"}
        assert feats["s4"].shape == out and feats["s4"].dtype == F32


@pytest.mark.parametrize("output_stride, strides", [(16, (33, 17, 9, 9)), (8, (33, 17, 17, 17))])
def test_resnet_feature_dict(output_stride, strides):
    net = nnx.eval_shape(lambda: ResNet(RESNET_PRESETS["resnet_tiny"], output_stride=output_stride, rngs=nnx.Rngs(0)))
    feats = _abstract_forward(net, (1, 129, 129, 3))
    keys = ("s4", "s8", "s16", "out")
    assert set(feats) == set(keys)
    assert tuple(feats[k].shape[1] for k in keys) == strides
    assert tuple(feats[k].shape[-1] for k in keys) == (32, 64, 64, 128)


def test_resnet101_dilations_and_aspp_rates():
    os16 = nnx.eval_shape(lambda: DeepLabV3Plus(RESNET_PRESETS["resnet101"], rngs=nnx.Rngs(0)))
    r = os16.resnet
    assert r.dilations == ((1,) * 3, (1,) * 4, (1,) * 23, (2, 4, 8))
    assert [(b.conv2.dilation, b.conv2.padding, b.conv2.stride) for b in r.layer4] == [(2, 2, 1), (4, 4, 1), (8, 8, 1)]
    assert (r.layer3[0].conv2.stride, r.layer3[0].downsample[0].stride, r.layer4[0].downsample[0].stride) == (2, 2, 1)
    assert [os16.aspp.conv2[0].dilation, os16.aspp.conv3[0].dilation, os16.aspp.conv4[0].dilation] == [6, 12, 18]
    assert (r.conv1.kernel_size, r.conv1.stride, r.conv1.padding) == (7, 2, 3)
    os8 = nnx.eval_shape(lambda: DeepLabV3Plus(RESNET_PRESETS["resnet50"], output_stride=8, rngs=nnx.Rngs(0)))
    assert os8.resnet.dilations == ((1,) * 3, (1,) * 4, (2,) * 6, (4, 8, 16))
    assert [os8.aspp.conv2[0].dilation, os8.aspp.conv3[0].dilation, os8.aspp.conv4[0].dilation] == [12, 24, 36]
    assert os8.resnet.layer3[0].conv2.stride == 1


def test_max_pool_pads_with_minus_infinity():
    x = -1.0 - jnp.arange(16, dtype=F32).reshape(1, 4, 4, 1)  # all negative: zero padding would win
    y = max_pool_3x3_s2(x)
    np.testing.assert_array_equal(np.asarray(y[0, :, :, 0]), [[-1.0, -2.0], [-5.0, -6.0]])


SEGMENTATION_MODELS = sorted(set(MODELS) - {"glyph_classifier"})  # the classifier has its own presets


def test_every_registered_model_is_tested():
    assert SEGMENTATION_MODELS == ["baseline", "texrnet"]


@pytest.mark.parametrize("model_name", SEGMENTATION_MODELS)
@pytest.mark.parametrize("backbone", ["hrnet_tiny", "deeplab_tiny"])
def test_registered_models_build(model_name, backbone):
    model = nnx.eval_shape(lambda: build_model({"name": model_name, "backbone": backbone}, rngs=nnx.Rngs(0)))
    out = _abstract_forward(model, (2, 65, 97, 3))
    channels = getattr(model, model.backbone_name).out_channels
    expect = {"logit_sem": 2, "predsem": 2, "feat": channels}
    if model_name == "texrnet":
        expect.update(logit_rfn=2, predrfn=2, att_key=2, att=2)
    else:
        assert model.classifier.bias is not None
    assert {k: v.shape for k, v in out.items()} == {k: (2, 17, 25, c) for k, c in expect.items()}


@pytest.mark.parametrize("preset", ["glyph_tiny", "glyph_resnet50"])
def test_glyph_classifier_presets_build(preset):
    model = nnx.eval_shape(lambda: build_model({"name": "glyph_classifier", "backbone": preset}, rngs=nnx.Rngs(0)))
    logits = nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((3, 32, 32, 1), F32))
    assert logits.shape == (3, 37) and logits.dtype == F32
    with pytest.raises(ValueError, match="unknown glyph classifier 'hrnet_tiny'"):
        build_model({"name": "glyph_classifier", "backbone": "hrnet_tiny"}, rngs=nnx.Rngs(0))


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown backbone"):
        build_model({"name": "texrnet", "backbone": "resnet18"}, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="not a model"):
        build_model({"name": "unet", "backbone": "hrnet_tiny"}, rngs=nnx.Rngs(0))


def test_deeplab_train_mode_needs_batch_2():
    """Like the reference, the ASPP image-pooling BN cannot train on one value per channel."""
    model = nnx.eval_shape(lambda: build_model({"name": "texrnet", "backbone": "deeplab_tiny"}, rngs=nnx.Rngs(0)))
    model.train()
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _abstract_forward(model, (1, 65, 65, 3))
    model.deeplab.aspp.conv5[2].use_running_average = True  # what the reference timing did
    assert _abstract_forward(model, (1, 65, 65, 3))["predrfn"].shape == (1, 17, 17, 2)


@nnx.jit
def _forward(model, x):
    return model(x)


def _stats(model):
    return [np.asarray(v[...]) for _, v in nnx.to_flat_state(nnx.state(model, nnx.BatchStat))]


@pytest.mark.parametrize("backbone", ["hrnet_tiny", "deeplab_tiny"])
def test_tiny_forward_train_and_eval(backbone, fast_compile):
    # 'rbg' keys: the eager random init compiles one sampler per parameter shape, several times faster than threefry.
    # fast_compile (conftest): compilation dominates these tiny passes.
    model = build_model({"name": "texrnet", "backbone": backbone},
                        rngs=nnx.Rngs(params=jax.random.key(0, impl="rbg"), dropout=jax.random.key(1, impl="rbg")))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 65, 65, 3)), F32)

    model.eval()
    before = _stats(model)
    a, b = _forward(model, x), _forward(model, x)
    for k in a:
        assert a[k].shape[:3] == (2, 17, 17)
        assert np.all(np.isfinite(np.asarray(a[k]))), k
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=f"eval not deterministic: {k}")
    for s0, s1 in zip(before, _stats(model), strict=True):
        np.testing.assert_array_equal(s0, s1)
    np.testing.assert_allclose(np.asarray(a["predrfn"]).sum(-1), 1.0, rtol=1e-5)

    model.train()
    t1 = _forward(model, x)
    after = _stats(model)
    changed = sum(not np.array_equal(s0, s1) for s0, s1 in zip(before, after, strict=True))
    assert changed == len(before), "every BN running statistic updates in training mode"
    assert not np.allclose(np.asarray(t1["logit_sem"]), np.asarray(a["logit_sem"]))  # batch statistics differ
    if backbone.startswith("deeplab"):
        # Dropout is active in training mode and draws a fresh mask each call.
        t2 = _forward(model, x)
        assert not np.array_equal(np.asarray(t1["feat"]), np.asarray(t2["feat"]))


def test_bfloat16_conv_bias_gradient_is_accumulated_in_float32():
    """A bias gradient sums the cotangent over every output pixel: in bfloat16 that sum stalls (1,024 for 10,000)."""
    from texrnet_jax.models.layers import Conv2d

    conv = Conv2d(3, 2, 1, use_bias=True, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(conv, nnx.Param)
    x = jnp.ones((4, 50, 50, 3), jnp.bfloat16)
    grads = jax.grad(lambda p: jnp.sum(nnx.merge(graphdef, p)(x).astype(F32)))(params)
    assert grads["bias"].value.dtype == F32
    np.testing.assert_array_equal(np.asarray(grads["bias"].value), [10000.0, 10000.0])
