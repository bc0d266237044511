"""The XLA:CPU forms (`texrnet_jax.xla_cpu`): each computes what XLA's own operation computes, is picked only for
programs lowered for a CPU, follows the measured crossovers, and turns off with the package's switch."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from texrnet_jax import xla_cpu
from texrnet_jax.models import layers
from texrnet_jax.xla_cpu import conv as xconv
from texrnet_jax.xla_cpu.fusion import fusion_boundary

F32 = jnp.float32
HIGHEST = jax.lax.Precision.HIGHEST


def test_fusion_boundary_is_an_exact_identity():
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
    blocks = nnx.List([layers.BasicBlock(8, 8, rngs=nnx.Rngs(i)) for i in range(6)])
    blocks.eval()
    graphdef, params, rest = nnx.split(blocks, nnx.Param, ...)

    def loss(p, x):
        for block in nnx.merge(graphdef, p, rest):
            x = block(x)
        return jnp.sum(x)

    return jax.jit(jax.grad(loss)).lower(params, jnp.ones((2, 16, 16, 8), F32)).compile().as_text()


def test_fusion_boundary_stops_xla_cpu_recomputing_residual_chains():
    """Without the boundaries, XLA:CPU fuses the chain of every earlier block's BN/ReLU/add into backward fusions
    (20 inputs for 6 blocks; 209 in HRNet-W48, where it cost 40% of the training step: docs/cpu_kernels.md)."""
    def widest_fusion(hlo: str) -> int:
        return max(m.group(1).count("%") for m in re.finditer(r"= \S+ fusion\((.*?)\), kind=", hlo))

    with_boundaries = _six_blocks_gradient_hlo()
    with xla_cpu.disabled():
        without = _six_blocks_gradient_hlo()
    assert "conditional" in with_boundaries and "conditional" not in without
    assert widest_fusion(with_boundaries) <= 10 < 16 <= widest_fusion(without)


def test_fusion_boundary_is_free_on_accelerators():
    """Off CPU it lowers to a constant branch index (folded by XLA): no data-dependent predicate, no host sync."""
    args = (jnp.ones(3, F32), jnp.ones(2, F32))
    lowered = jax.jit(fusion_boundary).trace(*args).lower(lowering_platforms=("cuda",)).as_text()
    assert "stablehlo.compare" not in lowered
    assert "stablehlo.compare" in jax.jit(fusion_boundary).trace(*args).lower().as_text()


def test_fusion_boundary_needs_no_collective_on_a_sharded_batch():
    from jax.sharding import NamedSharding, PartitionSpec

    from texrnet_jax import parallel
    mesh = parallel.make_mesh()
    assert mesh.devices.size == 4
    x = jax.device_put(jnp.ones((8, 4, 4, 2), F32), NamedSharding(mesh, PartitionSpec("data")))
    anchor = jax.device_put(jnp.ones((2,), F32), NamedSharding(mesh, PartitionSpec()))
    hlo = jax.jit(lambda x, a: fusion_boundary(x * 2, a) + 1).lower(x, anchor).compile().as_text()
    assert "conditional" in hlo
    assert not any(op in hlo for op in ("all-reduce", "all-gather", "collective-permute", "all-to-all"))


class _ForcedConv(layers.Conv2d):
    """`Conv2d` with its CPU kernel-gradient form forced (`conv2d(kernel_grad=...)`) instead of the measured choice."""

    def __init__(self, *args, kernel_grad: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel_grad = kernel_grad

    def __call__(self, x):
        y = xconv.conv2d(x, self.kernel[...], stride=self.stride, padding=self.padding, dilation=self.dilation,
                         precision=HIGHEST, kernel_grad=self.kernel_grad)
        return y if self.bias is None else y + self.bias[...]


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
    def f(w, b, x):
        y = xconv.xla_conv(x, w, conv.stride, conv.padding, conv.dilation, HIGHEST)
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
def test_own_kernel_grads_equal_xla_gradient(method, kernel_size, stride, dilation, padding, use_bias):
    """Per-sample, per-tap and shifted kernel gradients (the single-CPU-device paths) must be XLA's gradients."""
    conv = _ForcedConv(4, 5, kernel_size, stride=stride, dilation=dilation, padding=padding, use_bias=use_bias,
                       rngs=nnx.Rngs(0), kernel_grad=method)
    _assert_same_conv(conv, jax.random.normal(jax.random.key(1), (3, 12, 11, 4), F32))


@pytest.mark.parametrize("size,dilation", [(12, 2), (10, 6), (9, 12), (7, 24)])
def test_dilated_conv_as_taps_equals_xla_conv(size, dilation):
    """On CPU a dilated conv runs as per-tap products, skipping taps that read only padding; values and
    gradients must be XLA's convolution's, down to a map smaller than the dilation (only the centre tap left)."""
    conv = layers.Conv2d(6, 7, 3, dilation=dilation, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, size, size + 1, 6), F32)
    assert xconv.dilated_as_taps(1, dilation)
    assert _convolutions(conv, x, "cpu") == 0
    _assert_same_conv(conv, x)


def _convolutions(fn, x, platform: str) -> int:
    """How many convolutions the jitted `fn(x)` has when lowered for `platform` (no such device needed).

    A fresh function each time: jit's cache would otherwise return a program traced under another switch setting.
    """
    lowered = jax.jit(lambda x: fn(x)).trace(x).lower(lowering_platforms=(platform,))
    return lowered.as_text().count("stablehlo.convolution")


@pytest.mark.parametrize("method", ["per_sample", "taps", "shifted", "dilated"])
def test_cpu_forms_only_in_programs_lowered_for_cpu(method):
    """The CPU forms are picked per platform at lowering: a step compiled on a CPU host for a TPU or GPU (ahead of
    time, `jax.export`) must get XLA's convolution and its gradients, as it would on that device."""
    if method == "dilated":
        conv = layers.Conv2d(4, 5, 3, dilation=2, rngs=nnx.Rngs(0))
    else:
        conv = _ForcedConv(4, 5, 3, rngs=nnx.Rngs(0), kernel_grad=method)
    x = jax.random.normal(jax.random.key(1), (3, 12, 11, 4), F32)

    def loss_and_grads(x):
        return jax.value_and_grad(lambda c, x: jnp.sum(c(x) ** 2), argnums=(0, 1))(conv, x)

    cpu = {"per_sample": 1 + 1 + 3, "taps": 1 + 1, "shifted": 1 + 1, "dilated": 0}[method]
    assert _convolutions(loss_and_grads, x, "cpu") == cpu  # forward, input gradient, own kernel gradient(s)
    for platform in ("tpu", "cuda"):
        assert _convolutions(loss_and_grads, x, platform) == 3  # forward, input and kernel gradients


@pytest.mark.parametrize("size", [8, 9])
def test_strided_1x1_conv_is_a_subsample_and_product(size):
    conv = layers.Conv2d(6, 5, 1, stride=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, size, size, 6), F32)
    assert conv(x).shape == (2, (size + 1) // 2, (size + 1) // 2, 5)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(conv)(x))
    _assert_same_conv(conv, x)


def test_kernel_grad_method_follows_the_measured_crossovers(monkeypatch):
    # The tests' 4 devices: a batch may be sharded, so XLA's own gradient.
    assert xconv.kernel_grad_method((5, 128, 128, 48), (3, 3, 48, 48)) == "xla"
    monkeypatch.setattr(jax, "device_count", lambda backend=None: 1)
    assert xconv.kernel_grad_method((1, 128, 128, 304), (3, 3, 304, 256)) == "taps"  # the DeepLab decoder
    assert xconv.kernel_grad_method((8, 129, 129, 304), (3, 3, 304, 256)) == "taps"
    assert xconv.kernel_grad_method((1, 32, 32, 256), (3, 3, 256, 256)) == "xla"  # small maps: a tie at best
    assert xconv.kernel_grad_method((1, 128, 128, 48), (3, 3, 48, 48)) == "xla"  # HRNet: slower in the full step
    assert xconv.kernel_grad_method((5, 128, 128, 48), (3, 3, 48, 48)) == "per_sample"
    assert xconv.kernel_grad_method((5, 128, 128, 64), (3, 3, 64, 64)) == "per_sample"
    assert xconv.kernel_grad_method((5, 129, 129, 725), (5, 5, 725, 64)) == "shifted"  # the refinement head
    assert xconv.kernel_grad_method((1, 128, 128, 725), (5, 5, 725, 64)) == "shifted"
    assert xconv.kernel_grad_method((8, 129, 129, 261), (5, 5, 261, 64)) == "shifted"
    assert xconv.kernel_grad_method((1, 128, 128, 256), (3, 3, 256, 48)) == "shifted"  # HRNet's first transition
    assert xconv.kernel_grad_method((1, 32, 32, 725), (5, 5, 725, 64)) == "xla"
    assert xconv.kernel_grad_method((5, 128, 128, 256), (3, 3, 256, 48), stride=2) == "per_sample"
    assert xconv.kernel_grad_method((5, 128, 128, 48), (3, 3, 48, 96), stride=2) == "per_sample"


def test_per_sample_kernel_grad_only_for_large_maps_on_one_cpu_device(monkeypatch):
    assert not xconv.per_sample_kernel_grad((5, 128, 128, 48))  # the tests' 4 devices: a batch may be sharded
    monkeypatch.setattr(jax, "device_count", lambda backend=None: 1)
    assert xconv.per_sample_kernel_grad((5, 128, 128, 48)) and xconv.per_sample_kernel_grad((8, 65, 65, 256), 2)
    assert not xconv.per_sample_kernel_grad((1, 128, 128, 48))  # one sample: nothing to split
    assert not xconv.per_sample_kernel_grad((5, 16, 16, 384))  # small maps are faster in XLA's batched form
    # A mesh set for tracing (a compile target such as a TPU slice, bench/bench_aot.py) decides, not this host.
    with jax.set_mesh(jax.sharding.Mesh(np.asarray(jax.devices("cpu")), ("data",))):
        assert not xconv.per_sample_kernel_grad((5, 128, 128, 48))
    with jax.set_mesh(jax.sharding.Mesh(np.asarray(jax.devices("cpu")[:1]), ("data",))):
        assert xconv.per_sample_kernel_grad((5, 128, 128, 48))


def test_switched_off_every_platform_gets_xla_operations():
    """`xla_cpu.disabled()`: convolutions (1x1 and dilated too) are XLA's, the fusion boundary is a bare identity."""
    x = jax.random.normal(jax.random.key(1), (2, 12, 11, 4), F32)
    dilated = layers.Conv2d(4, 5, 3, dilation=2, rngs=nnx.Rngs(0))
    pointwise = layers.Conv2d(4, 5, 1, stride=2, rngs=nnx.Rngs(0))
    anchor = jnp.ones((2,), F32)
    assert xla_cpu.enabled()
    assert _convolutions(dilated, x, "cpu") == 0 and _convolutions(pointwise, x, "cpu") == 0
    with xla_cpu.disabled():
        assert not xla_cpu.enabled()
        assert _convolutions(dilated, x, "cpu") == 1 and _convolutions(pointwise, x, "cpu") == 1
        assert "conditional" not in jax.jit(lambda *a: fusion_boundary(*a)).lower(x, anchor).compile().as_text()
        # Same values as the CPU forms give.
        y = jax.jit(lambda x: dilated(x))(x)
        np.testing.assert_allclose(np.asarray(y), np.asarray(_xla_conv_and_grads(dilated, x)[0]), rtol=1e-5, atol=2e-5)
    assert xla_cpu.enabled()
    assert "conditional" in jax.jit(lambda *a: fusion_boundary(*a)).lower(x, anchor).compile().as_text()


@pytest.mark.parametrize("value,expected", [("0", False), ("off", False), ("1", True), ("", True)])
def test_environment_variable_switches_the_forms(value, expected):
    code = ("from texrnet_jax import xla_cpu; import sys; assert 'jax' not in sys.modules; "
            "print(xla_cpu.enabled())")
    env = {"PATH": "/usr/bin:/bin", xla_cpu.ENV: value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=str(pathlib.Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == str(expected)


def test_an_unknown_kernel_grad_form_is_refused():
    with pytest.raises(ValueError, match="kernel_grad must be one of"):
        xconv.conv2d(jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2)), stride=1, padding=1, dilation=1,
                     precision=HIGHEST, kernel_grad="fast")
