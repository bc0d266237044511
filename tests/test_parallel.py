"""Tests for the sharding rules of texrnet_jax.parallel: the FSDP rule, train-state shardings and gathering."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from texrnet_jax import checkpoint, parallel


def test_fsdp_spec_picks_the_largest_divisible_dimension():
    spec = parallel.fsdp_spec
    assert spec((3, 3, 32, 64), 4) == P(None, None, None, "data")
    assert spec((3, 3, 64, 8), 4) == P(None, None, "data")  # in-channels beat the smaller out-channels
    assert spec((5, 5, 125, 32), 4) == P(None, None, None, "data")  # 125 is not divisible by 4
    assert spec((1, 1, 120, 120), 4) == P(None, None, None, "data")  # ties go to the last dimension
    assert spec((4096, 3), 4) == P("data")
    # Replicated: no divisible dimension, too small, scalars, a 1-device axis.
    assert spec((3, 3, 30, 30), 4) == P()
    assert spec((4095,), 4) == P() and spec((4096,), 4) == P("data")
    assert spec((64,), 4) == P()
    assert spec((), 4) == P()
    assert spec((3, 3, 32, 64), 1) == P()
    assert spec((64,), 4, min_size=1) == P("data")


def _abstract_state():
    params = {"conv": {"kernel": jax.ShapeDtypeStruct((3, 3, 16, 64), jnp.float32),
                       "bias": jax.ShapeDtypeStruct((64,), jnp.float32)},
              "odd": {"kernel": jax.ShapeDtypeStruct((3, 3, 45, 45), jnp.float32)}}
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.trace(decay=0.9))
    return {"params": params, "rest": {"mean": jax.ShapeDtypeStruct((8192,), jnp.float32)},
            "opt_state": jax.eval_shape(tx.init, params), "step": jax.ShapeDtypeStruct((), jnp.int32)}


def test_state_shardings_shard_params_and_optimizer_state_only():
    mesh = parallel.make_mesh()
    abstract = _abstract_state()
    sharded = parallel.state_shardings(abstract, mesh, fsdp=True)
    kernel = NamedSharding(mesh, P(None, None, None, "data"))
    assert sharded["params"]["conv"]["kernel"] == kernel
    assert sharded["opt_state"][1].trace["conv"]["kernel"] == kernel  # the momentum is split like its parameter
    assert sharded["params"]["conv"]["bias"].spec == P()
    assert sharded["params"]["odd"]["kernel"].spec == P()
    assert sharded["rest"]["mean"].spec == P()  # BatchNorm statistics stay replicated, however large
    assert sharded["step"].spec == P()
    replicated = parallel.state_shardings(abstract, mesh, fsdp=False)
    assert {s.spec for s in jax.tree.leaves(replicated)} == {P()}
    assert jax.tree.structure(replicated) == jax.tree.structure(abstract)


def test_sharded_state_saves_restores_into_a_sharded_target_and_gathers(tmp_path):
    mesh = parallel.make_mesh()
    abstract = _abstract_state()
    shardings = parallel.state_shardings(abstract, mesh, fsdp=True)
    rng = np.random.default_rng(0)
    host = jax.tree.map(lambda x: rng.normal(size=x.shape).astype(x.dtype), abstract)
    state = jax.device_put(host, shardings)
    assert parallel.per_device_nbytes(state["params"]["conv"]) == (3 * 3 * 16 * 16 + 64) * 4

    with checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=1) as ckpt:
        ckpt.save(1, state, None, force=True)
        ckpt.wait()
        target = jax.device_put(jax.tree.map(np.zeros_like, host), shardings)
        restored = ckpt.restore(1, target, None)
    for got, want, sharding in zip(jax.tree.leaves(restored), jax.tree.leaves(host), jax.tree.leaves(shardings),
                                   strict=True):
        assert got.sharding.is_equivalent_to(sharding, got.ndim)
        np.testing.assert_array_equal(np.asarray(got), want)

    # Evaluation copies the state onto this process's devices, all-gathering the sharded arrays.
    local = parallel.to_local_replicated(restored, parallel.local_mesh())
    for got, want in zip(jax.tree.leaves(local), jax.tree.leaves(host), strict=True):
        assert got.is_fully_replicated and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got.addressable_data(0)), want)
