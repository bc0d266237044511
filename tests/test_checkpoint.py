"""Tests for texrnet_jax.checkpoint: the model, training and iterator items, round trips, max_to_keep, old layouts.

The state mimics the training state (params, BatchNorm-like statistics, an optax momentum state and the step)
on the 4-device `('data',)` mesh; one leaf is sharded over `data` to check that shardings survive the restore.
"""

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from texrnet_jax import checkpoint, parallel


def _state(mesh, seed: int):
    rng = np.random.default_rng(seed)
    params = {
        "conv": {"kernel": rng.normal(size=(3, 3, 2, 4)).astype(np.float32)},
        "bn": {"scale": rng.normal(size=(4,)).astype(np.float32)},
    }
    tx = optax.chain(optax.add_decayed_weights(5e-4), optax.trace(decay=0.9))
    opt_state = tx.init(params)
    opt_state = jax.tree.map(lambda x: x + rng.normal(size=x.shape).astype(np.float32), opt_state)
    state = {
        "params": params,
        "rest": {"mean": rng.normal(size=(4,)).astype(np.float32)},
        "opt_state": opt_state,
        "step": jnp.asarray(seed, jnp.int32),
        "table": rng.normal(size=(8, 3)).astype(np.float32),
    }
    state = jax.device_put(state, parallel.replicated(mesh))
    state["table"] = jax.device_put(state["table"], NamedSharding(mesh, P("data")))
    return state


def _iterator(start: int = 0):
    ds = grain.MapDataset.range(40).seed(7).shuffle().repeat().map(lambda x: np.asarray([x, x * x])).batch(3)
    it = iter(ds.to_iter_dataset())
    for _ in range(start):
        next(it)
    return it


def _assert_trees_identical(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_is_bit_exact_keeps_shardings_and_rewinds_the_iterator(tmp_path):
    mesh = parallel.make_mesh()
    state = _state(mesh, seed=5)
    it = _iterator(start=4)
    ckpt = checkpoint.Checkpointer(tmp_path / "ckpt", every_steps=1, max_to_keep=3)
    assert ckpt.latest_step() is None
    assert ckpt.save(5, state, it, force=True)
    expected_next = [next(it) for _ in range(3)]
    ckpt.close()

    # A new process would start from a fresh state and iterator at their beginning.
    restarted = checkpoint.Checkpointer(tmp_path / "ckpt", every_steps=1, max_to_keep=3)
    assert restarted.latest_step() == 5
    target = _state(mesh, seed=9)
    fresh_it = _iterator(start=0)
    restored = restarted.restore(5, target, fresh_it)
    _assert_trees_identical(restored, state)
    assert type(restored["opt_state"][1]) is type(state["opt_state"][1])  # optax NamedTuple, not a list
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(target), strict=True):
        assert isinstance(got, jax.Array)
        assert got.sharding.is_equivalent_to(want.sharding, got.ndim), (got.sharding, want.sharding)
    assert restored["table"].sharding.is_equivalent_to(NamedSharding(mesh, P("data")), 2)
    for want in expected_next:
        np.testing.assert_array_equal(next(fresh_it), want)
    restarted.close()


def test_restore_without_iterator(tmp_path):
    mesh = parallel.make_mesh()
    state = _state(mesh, seed=1)
    ckpt = checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=1)
    ckpt.save(1, state, None, force=True)
    ckpt.wait()
    _assert_trees_identical(ckpt.restore(1, _state(mesh, seed=2), None), state)
    ckpt.close()


def test_max_to_keep_interval_and_latest_step(tmp_path):
    mesh = parallel.make_mesh()
    state = _state(mesh, seed=0)
    it = _iterator()
    ckpt = checkpoint.Checkpointer(tmp_path, every_steps=2, max_to_keep=2)
    saved = {}
    for step in range(2, 8):
        saved[step] = ckpt.save(step, state, it, force=step == 7)
        ckpt.wait()
    assert saved == {2: True, 3: False, 4: True, 5: False, 6: True, 7: True}
    assert ckpt.latest_step() == 7
    assert ckpt.manager.all_steps() == [6, 7]
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [6, 7]
    ckpt.close()


def test_leaving_the_context_waits_for_asynchronous_saves_even_on_errors(tmp_path):
    state = _state(parallel.make_mesh(), seed=3)
    with pytest.raises(RuntimeError, match="boom"):
        with checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=1) as ckpt:
            assert ckpt.save(1, state, _iterator(), force=True)
            raise RuntimeError("boom")
    # Finished: Orbax writes into a temporary directory and renames it to the step when the save is complete.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]
    reopened = checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=1)
    assert reopened.latest_step() == 1
    _assert_trees_identical(reopened.restore(1, _state(parallel.make_mesh(), seed=4), None), state)
    reopened.close()


def test_the_model_is_an_item_of_its_own_and_restores_alone(tmp_path):
    """Evaluation restores `params` and `rest` only: no optimizer state, no iterator, no step needed in the target."""
    mesh = parallel.make_mesh()
    state = _state(mesh, seed=5)
    with checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=1) as ckpt:
        ckpt.save(2, state, _iterator(), force=True)
    assert {"model", "train", "data"} <= {p.name for p in (tmp_path / "2").iterdir()}
    like = _state(mesh, seed=9)
    with checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=1) as ckpt:
        model = ckpt.restore_model(2, {"params": like["params"], "rest": like["rest"]})
    _assert_trees_identical(model, {"params": state["params"], "rest": state["rest"]})


def test_checkpoints_of_the_single_item_layout_still_restore(tmp_path):
    """Checkpoints written before the separate items (the whole state as one `state` item) resume and evaluate."""
    import orbax.checkpoint as ocp

    mesh = parallel.make_mesh()
    state = _state(mesh, seed=5)
    old = ocp.CheckpointManager(tmp_path, options=ocp.CheckpointManagerOptions(create=True))
    old.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
    old.wait_until_finished()
    old.close()
    like = _state(mesh, seed=9)
    with checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=2) as ckpt:
        _assert_trees_identical(ckpt.restore(3, like, None), state)
        model = ckpt.restore_model(3, {"params": like["params"], "rest": like["rest"]})
        _assert_trees_identical(model, {"params": state["params"], "rest": state["rest"]})
        ckpt.save(4, state, None, force=True)  # the next save is in the new layout
    assert (tmp_path / "4" / "model").is_dir() and not (tmp_path / "4" / "state").exists()


def test_a_state_without_the_model_keys_is_refused(tmp_path):
    with checkpoint.Checkpointer(tmp_path, every_steps=1, max_to_keep=1) as ckpt:
        with pytest.raises(KeyError, match="params"):
            ckpt.save(1, {"step": jnp.zeros((), jnp.int32)}, None, force=True)
