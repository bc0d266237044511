"""Tests for texrnet_jax.optim: the reference LR schedule, PyTorch SGD equivalence and regex LR groups.

The expected values are computed independently in float64 numpy from the reference's optimizer settings:
warm-up `base * i / warmup`, then `base * (1 - j / decay) ** power` with `j = i - warmup`, then the last value;
PyTorch SGD (momentum 0.9, dampening 0, weight decay on every parameter) is `buf = m * buf + (g + wd * p)`,
`p -= lr_group * buf` with the momentum buffer starting at `g + wd * p`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import base
from texrnet_jax import optim
from texrnet_jax.models import build_model


def _reference_lr(i: int, base_lr=0.01, warmup=500, decay=20000, power=0.9) -> float:
    if i < warmup:
        return base_lr * i / warmup
    j = min(i - warmup, decay - 1)
    return base_lr * (1.0 - j / decay) ** power


def test_schedule_matches_reference_formula():
    schedule = optim.lr_schedule(0.01, 500, 20000, 0.9)
    steps = [0, 1, 2, 250, 499, 500, 501, 10000, 20499, 20500, 20501, 40000]
    got = np.array([float(schedule(i)) for i in steps])
    want = np.array([_reference_lr(i) for i in steps])
    # float32 evaluation: 1 - 19999/20000 loses ~1e-4 relative at the very end, i.e. ~1e-10 absolute.
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    assert got[0] == 0.0 and got[5] == pytest.approx(0.01, rel=1e-7)
    assert got[-1] == got[-3] == got[-4] > 0.0, "after the decay the last value is kept"


def test_schedule_is_traceable_and_monotone_after_warmup():
    schedule = optim.lr_schedule(0.05, 50, 1150, 0.9)
    values = np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(0, 1300)))
    np.testing.assert_allclose(values[:51], 0.05 * np.arange(51) / 50, rtol=1e-6, atol=1e-9)
    assert np.all(np.diff(values[50:1200]) < 0) and np.all(values[1199:] == values[1199])


def _tree(rng):
    return {
        "hrnet": {"conv1": {"kernel": rng.normal(size=(3, 2))}, "bn1": {"bias": rng.normal(size=(2,))}},
        "semrfnhead": {"conv_sem": {"kernel": rng.normal(size=(2, 2))}},
    }


def _torch_sgd(params, grads_per_step, lrs, mults, momentum=0.9, wd=5e-4):
    """PyTorch SGD in float64 numpy: per-group lr, momentum buffer created at the first step."""
    params = jax.tree.map(np.array, params)
    bufs = None
    for grads, lr in zip(grads_per_step, lrs, strict=True):
        d_p = jax.tree.map(lambda g, p: g + wd * p, grads, params)
        bufs = d_p if bufs is None else jax.tree.map(lambda b, d: momentum * b + d, bufs, d_p)
        params = jax.tree.map(lambda p, b, m, lr=lr: p - lr * m * b, params, bufs, mults)
    return params


def test_chain_reproduces_pytorch_sgd_with_lr_groups():
    rng = np.random.default_rng(0)
    params64 = _tree(rng)
    grads = [_tree(rng) for _ in range(3)]
    cfg = dict(
        base_lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        warmup_steps=1,
        decay_steps=5,
        power=0.9,
        lr_mults=(("^semrfnhead/", 10.0),),
    )
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params64)
    tx, schedule = optim.build_optimizer(cfg, params)
    lrs = [_reference_lr(i, 0.1, 1, 5) for i in range(3)]
    np.testing.assert_allclose([float(schedule(i)) for i in range(3)], lrs, rtol=1e-6)
    assert lrs[0] == 0.0 and lrs[1] > 0.0  # the first step only fills the momentum buffer
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g), state, params)
        params = optax.apply_updates(params, updates)
    mults = {"hrnet": {"conv1": {"kernel": 1.0}, "bn1": {"bias": 1.0}}, "semrfnhead": {"conv_sem": {"kernel": 10.0}}}
    expected = _torch_sgd(params64, grads, lrs, mults)
    jax.tree.map(lambda got, want: np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7), params, expected)
    # Without the head multiplier the result differs, so the group LR really is applied.
    flat = _torch_sgd(params64, grads, lrs, jax.tree.map(lambda _: 1.0, mults))
    assert not np.allclose(
        params["semrfnhead"]["conv_sem"]["kernel"], flat["semrfnhead"]["conv_sem"]["kernel"], rtol=1e-3
    )
    np.testing.assert_allclose(params["hrnet"]["conv1"]["kernel"], flat["hrnet"]["conv1"]["kernel"], rtol=1e-5)


@pytest.fixture(scope="module")
def texrnet_params():
    """The Param state of a hrnet_tiny TexRNet, abstract (no arrays are allocated)."""
    model = nnx.eval_shape(lambda: build_model(base.model_config("hrnet_tiny"), rngs=nnx.Rngs(0)))
    return nnx.state(model, nnx.Param)


def _mults_by_path(params, rules):
    leaves = jax.tree_util.tree_flatten_with_path(optim.lr_multipliers(params, rules))[0]
    return {optim.path_str(path): m for path, m in leaves}


def test_lr_multipliers_on_real_texrnet_paths(texrnet_params):
    by_path = _mults_by_path(texrnet_params, base.optim_config().lr_mults)
    assert len(by_path) == len(jax.tree.leaves(texrnet_params))
    assert by_path["semrfnhead/conv_sem/kernel"] == 10.0
    assert by_path["semrfnhead/conv_ref/conv0/kernel"] == 10.0
    assert by_path["hrnet/conv1/kernel"] == 1.0
    assert by_path["hrnet/last_layer/0/kernel"] == 1.0
    head = {p for p in by_path if p.startswith("semrfnhead/")}
    assert head and all(by_path[p] == 10.0 for p in head)
    assert all(m == 1.0 for p, m in by_path.items() if p not in head)


def test_lr_multipliers_first_matching_rule_wins(texrnet_params):
    rules = (("^semrfnhead/conv_ref/", 3.0), ("^semrfnhead/", 10.0), ("kernel$", 0.5))
    by_path = _mults_by_path(texrnet_params, rules)
    assert by_path["semrfnhead/conv_ref/conv0/kernel"] == 3.0
    assert by_path["semrfnhead/conv_sem/kernel"] == 10.0
    assert by_path["hrnet/conv1/kernel"] == 0.5
    assert by_path["hrnet/bn1/scale"] == 1.0
