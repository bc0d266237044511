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


def test_fusion_boundary_is_an_exact_identity():
    from texrnet_jax.models.layers import fusion_boundary

    x = jnp.asarray([[np.nan, 1.5, -np.inf], [-0.0, 3e-39, 7.0]], F32)  # passed through bit for bit
    nan_anchor = jnp.full((4,), jnp.nan, F32)  # NaN: the predicate is false, the other branch is x too
    for anchor in (jnp.ones((4,), F32), nan_anchor):
        y = np.asarray(jax.jit(fusion_boundary)(x, anchor))
        np.testing.assert_array_equal(y, np.asarray(x))
        assert np.signbit(y[1, 0])
    c = jnp.arange(6, dtype=F32).reshape(2, 3)
    g = jax.jit(jax.grad(lambda t, a: jnp.sum(fusion_boundary(t, a) * c), argnums=(0, 1)))(jnp.ones((2, 3), F32),
                                                                                           nan_anchor)
    np.testing.assert_array_equal(np.asarray(g[0]), np.asarray(c))
    np.testing.assert_array_equal(np.asarray(g[1]), np.zeros(4, F32))


def _six_blocks_gradient_hlo():
    from texrnet_jax.models.layers import BasicBlock

    blocks = nnx.List([BasicBlock(8, 8, rngs=nnx.Rngs(i)) for i in range(6)])
    blocks.eval()
    graphdef, params, rest = nnx.split(blocks, nnx.Param, ...)

    def loss(p, x):
        for block in nnx.merge(graphdef, p, rest):
            x = block(x)
        return jnp.sum(x)

    return jax.jit(jax.grad(loss)).lower(params, jnp.ones((2, 16, 16, 8), F32)).compile().as_text()


def test_fusion_boundary_stops_xla_cpu_recomputing_residual_chains(monkeypatch):
    """Without the boundaries, XLA:CPU fuses the chain of every earlier block's BN/ReLU/add into backward fusions
    (20 inputs for 6 blocks; 209 in HRNet-W48, where it cost 40% of the training step: docs/cpu_kernels.md)."""
    import re

    from texrnet_jax.models import layers

    def widest_fusion(hlo: str) -> int:
        return max(m.group(1).count("%") for m in re.finditer(r"= \S+ fusion\((.*?)\), kind=", hlo))

    with_boundaries = _six_blocks_gradient_hlo()
    monkeypatch.setattr(layers, "fusion_boundary", lambda x, anchor: x)
    without = _six_blocks_gradient_hlo()
    assert "conditional" in with_boundaries and "conditional" not in without
    assert widest_fusion(with_boundaries) <= 10 < 16 <= widest_fusion(without)


def test_fusion_boundary_is_free_on_accelerators():
    """Off CPU it lowers to a constant branch index (folded by XLA): no data-dependent predicate, no host sync."""
    from texrnet_jax.models.layers import fusion_boundary

    args = (jnp.ones(3, F32), jnp.ones(2, F32))
    lowered = jax.jit(fusion_boundary).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    assert "stablehlo.compare" not in lowered
    assert "stablehlo.compare" in jax.jit(fusion_boundary).trace(*args).lower().as_text()


def test_fusion_boundary_needs_no_collective_on_a_sharded_batch():
    from jax.sharding import NamedSharding, PartitionSpec

    from texrnet_jax import parallel
    from texrnet_jax.models.layers import fusion_boundary

    mesh = parallel.make_mesh()
    assert mesh.devices.size == 4
    x = jax.device_put(jnp.ones((8, 4, 4, 2), F32), NamedSharding(mesh, PartitionSpec("data")))
    anchor = jax.device_put(jnp.ones((2,), F32), NamedSharding(mesh, PartitionSpec()))
    hlo = jax.jit(lambda x, a: fusion_boundary(x * 2, a) + 1).lower(x, anchor).compile().as_text()
    assert "conditional" in hlo
    assert not any(op in hlo for op in ("all-reduce", "all-gather", "collective-permute", "all-to-all"))


def _conv_and_grads(conv, x):
    """Output, parameter gradients and input gradient of `conv` at `x` under a fixed random cotangent."""
    graphdef, params = nnx.split(conv, nnx.Param)
    ct = jax.random.normal(jax.random.key(2), conv(x).shape, F32)

    def loss(p, x):
        return jnp.sum(nnx.merge(graphdef, p)(x) * ct)

    y = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(params, x)
    return y, jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x)


def _xla_conv_and_grads(conv, x):
    """The same through XLA's own convolution and its autodiff gradients."""
    from texrnet_jax.models import layers

    def f(w, b, x):
        y = layers._conv(x, w, conv.stride, conv.padding, conv.dilation, jax.lax.Precision.HIGHEST)
        return y if b is None else y + b

    b = None if conv.bias is None else conv.bias[...]
    y = f(conv.kernel[...], b, x)
    ct = jax.random.normal(jax.random.key(2), y.shape, F32)
    return y, jax.grad(lambda w, b, x: jnp.sum(f(w, b, x) * ct), argnums=(0, 1, 2))(conv.kernel[...], b, x)


def _assert_same_conv(conv, x, atol=2e-5):
    y, (g_params, g_x) = _conv_and_grads(conv, x)
    y_ref, (g_w, g_b, g_x_ref) = _xla_conv_and_grads(conv, x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_ref), rtol=1e-5, atol=atol)
    np.testing.assert_allclose(np.asarray(g_params["kernel"][...]), np.asarray(g_w), rtol=1e-5, atol=atol)
    np.testing.assert_allclose(np.asarray(g_x), np.asarray(g_x_ref), rtol=1e-5, atol=atol)
    if g_b is not None:
        np.testing.assert_allclose(np.asarray(g_params["bias"][...]), np.asarray(g_b), rtol=1e-5, atol=atol)


@pytest.mark.parametrize("method,kernel_size,stride,dilation,padding,use_bias", [
    ("per_sample", 3, 1, 1, None, False), ("per_sample", 3, 2, 1, None, True), ("per_sample", 5, 1, 1, None, False),
    ("taps", 3, 1, 1, None, True), ("taps", 5, 1, 1, None, False), ("taps", 3, 1, 1, 0, False),
    ("taps", 3, 1, 1, 2, False), ("shifted", 3, 1, 1, None, True), ("shifted", 5, 1, 1, None, False),
    ("shifted", 3, 1, 1, 0, False), ("shifted", 3, 1, 1, 2, False)])
def test_own_kernel_grads_equal_xla_gradient(monkeypatch, method, kernel_size, stride, dilation, padding, use_bias):
    """Per-sample, per-tap and shifted kernel gradients (the single-CPU-device paths) must be XLA's gradients."""
    from texrnet_jax.models import layers

    conv = layers.Conv2d(4, 5, kernel_size, stride=stride, dilation=dilation, padding=padding, use_bias=use_bias,
                         rngs=nnx.Rngs(0))
    monkeypatch.setattr(layers, "kernel_grad_method", lambda *a, **k: method)
    _assert_same_conv(conv, jax.random.normal(jax.random.key(1), (3, 12, 11, 4), F32))


@pytest.mark.parametrize("size,dilation", [(12, 2), (10, 6), (9, 12), (7, 24)])
def test_dilated_conv_as_taps_equals_xla_conv(size, dilation):
    """On CPU a dilated conv runs as per-tap products, skipping taps that read only padding; values and
    gradients must be XLA's convolution's, down to a map smaller than the dilation (only the centre tap left)."""
    from texrnet_jax.models import layers

    conv = layers.Conv2d(6, 7, 3, dilation=dilation, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, size, size + 1, 6), F32)
    assert layers.dilated_as_taps(1, dilation)
    assert _convolutions(conv, x, "cpu") == 0
    _assert_same_conv(conv, x)


def _convolutions(fn, x, platform: str) -> int:
    """How many convolutions the jitted `fn(x)` has when lowered for `platform` (no such device needed)."""
    return jax.jit(fn).trace(x).lower(lowering_platforms=(platform,)).as_text().count("stablehlo.convolution")


@pytest.mark.parametrize("method", ["per_sample", "taps", "shifted", "dilated"])
def test_cpu_forms_only_in_programs_lowered_for_cpu(monkeypatch, method):
    """The CPU forms are picked per platform at lowering: a step compiled on a CPU host for a TPU or GPU (ahead of
    time, `jax.export`) must get XLA's convolution and its gradients, as it would on that device."""
    from texrnet_jax.models import layers

    conv = layers.Conv2d(4, 5, 3, dilation=2 if method == "dilated" else 1, rngs=nnx.Rngs(0))
    if method != "dilated":
        monkeypatch.setattr(layers, "kernel_grad_method", lambda *a, **k: method)
    x = jax.random.normal(jax.random.key(1), (3, 12, 11, 4), F32)

    def loss_and_grads(x):
        return jax.value_and_grad(lambda c, x: jnp.sum(c(x) ** 2), argnums=(0, 1))(conv, x)

    cpu = {"per_sample": 1 + 1 + 3, "taps": 1 + 1, "shifted": 1 + 1, "dilated": 0}[method]
    assert _convolutions(loss_and_grads, x, "cpu") == cpu  # forward, input gradient, own kernel gradient(s)
    for platform in ("tpu", "cuda"):
        assert _convolutions(loss_and_grads, x, platform) == 3  # forward, input and kernel gradients


@pytest.mark.parametrize("size", [8, 9])
def test_strided_1x1_conv_is_a_subsample_and_product(size):
    from texrnet_jax.models import layers

    conv = layers.Conv2d(6, 5, 1, stride=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, size, size, 6), F32)
    assert conv(x).shape == (2, (size + 1) // 2, (size + 1) // 2, 5)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(conv)(x))
    _assert_same_conv(conv, x)


def test_kernel_grad_method_follows_the_measured_crossovers(monkeypatch):
    from texrnet_jax.models.layers import kernel_grad_method

    # The tests' 4 devices: a batch may be sharded, so XLA's own gradient.
    assert kernel_grad_method((5, 128, 128, 48), (3, 3, 48, 48)) == "xla"
    monkeypatch.setattr(jax, "device_count", lambda backend=None: 1)
    assert kernel_grad_method((1, 128, 128, 304), (3, 3, 304, 256)) == "taps"  # the DeepLab decoder
    assert kernel_grad_method((8, 129, 129, 304), (3, 3, 304, 256)) == "taps"
    assert kernel_grad_method((1, 32, 32, 256), (3, 3, 256, 256)) == "xla"  # small maps: a tie at best
    assert kernel_grad_method((1, 128, 128, 48), (3, 3, 48, 48)) == "xla"  # HRNet: slower in the full step
    assert kernel_grad_method((5, 128, 128, 48), (3, 3, 48, 48)) == "per_sample"
    assert kernel_grad_method((5, 128, 128, 64), (3, 3, 64, 64)) == "per_sample"
    assert kernel_grad_method((5, 129, 129, 725), (5, 5, 725, 64)) == "shifted"  # the refinement head
    assert kernel_grad_method((1, 128, 128, 725), (5, 5, 725, 64)) == "shifted"
    assert kernel_grad_method((8, 129, 129, 261), (5, 5, 261, 64)) == "shifted"
    assert kernel_grad_method((1, 128, 128, 256), (3, 3, 256, 48)) == "shifted"  # HRNet's first transition
    assert kernel_grad_method((1, 32, 32, 725), (5, 5, 725, 64)) == "xla"
    assert kernel_grad_method((5, 128, 128, 256), (3, 3, 256, 48), stride=2) == "per_sample"
    assert kernel_grad_method((5, 128, 128, 48), (3, 3, 48, 96), stride=2) == "per_sample"


def test_per_sample_kernel_grad_only_for_large_maps_on_one_cpu_device(monkeypatch):
    from texrnet_jax.models.layers import per_sample_kernel_grad

    assert not per_sample_kernel_grad((5, 128, 128, 48))  # the tests' 4 devices: a batch may be sharded
    monkeypatch.setattr(jax, "device_count", lambda backend=None: 1)
    assert per_sample_kernel_grad((5, 128, 128, 48)) and per_sample_kernel_grad((8, 65, 65, 256), 2)
    assert not per_sample_kernel_grad((1, 128, 128, 48))  # one sample: nothing to split
    assert not per_sample_kernel_grad((5, 16, 16, 384))  # small maps are faster in XLA's batched form
    # A mesh set for tracing (a compile target such as a TPU slice, bench/bench_aot.py) decides, not this host.
    with jax.set_mesh(jax.sharding.Mesh(np.asarray(jax.devices("cpu")), ("data",))):
        assert not per_sample_kernel_grad((5, 128, 128, 48))
    with jax.set_mesh(jax.sharding.Mesh(np.asarray(jax.devices("cpu")[:1]), ("data",))):
        assert per_sample_kernel_grad((5, 128, 128, 48))
