"""Orbax checkpoints of the training state and the grain iterator, as separate items of one step.

Each step directory holds three items: `model` (the weights and BatchNorm statistics, `params` and `rest`: all that
evaluation and prediction restore), `train` (the optimizer state, the step and anything else of the state) and
`data` (the input iterator's position). Startup order: resume from the workdir's latest step, else
`config.init_from`, else scratch. Every process calls `save`; restores always go into an abstract target that
carries shardings.

Checkpoints written before this layout hold the whole state as one `state` item; they still restore, for
training and for inference alike.
"""

from __future__ import annotations

import pathlib
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

MODEL_KEYS = ("params", "rest")


def abstract_like(state: Any) -> Any:
    """ShapeDtypeStructs with the shardings of `state`, the restore target Orbax needs."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def split_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`(model, train)`: the `MODEL_KEYS` of the state, and the rest of it."""
    missing = [k for k in MODEL_KEYS if k not in state]
    if missing:
        raise KeyError(f"the training state has no {missing}: a checkpointed state holds {list(MODEL_KEYS)}")
    return ({k: state[k] for k in MODEL_KEYS}, {k: v for k, v in state.items() if k not in MODEL_KEYS})


class Checkpointer:
    """`ocp.CheckpointManager` over `<workdir>/checkpoints`: saves every `every_steps`, keeps `max_to_keep`.

    Use it as a context manager (or call `close()`) so pending asynchronous saves finish before the process exits.

    Attributes:
        directory: the absolute checkpoint directory.
        manager: the Orbax manager (async saves; `wait()` before exiting).
    """

    def __init__(self, directory: str | pathlib.Path, every_steps: int, max_to_keep: int):
        # Every `every_steps` and at preemption sync points; unlike the default policy, not also at the first step.
        policy = ocp.checkpoint_managers.AnySavePolicy([
            ocp.checkpoint_managers.FixedIntervalPolicy(max(1, every_steps)),
            ocp.checkpoint_managers.PreemptionCheckpointingPolicy(),
        ])
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, save_decision_policy=policy, create=True,
                                               enable_async_checkpointing=True)
        self.directory = pathlib.Path(directory).absolute()
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def should_save(self, step: int) -> bool:
        """Whether `save(step, ...)` without `force` would save (interval or preemption sync point)."""
        return self.manager.should_save(step)

    def save(self, step: int, state: dict[str, Any], data_iter: Any, force: bool = False) -> bool:
        """Saves (if the interval says so, or `force`); returns whether a save started."""
        model, train = split_state(state)
        args = {"model": ocp.args.StandardSave(model), "train": ocp.args.StandardSave(train)}
        if data_iter is not None:
            args["data"] = grain.checkpoint.CheckpointSave(data_iter)
        return self.manager.save(step, args=ocp.args.Composite(**args), force=force)

    def _single_item(self, step: int) -> bool:
        # The layout before separate items: the whole state as one `state` item.
        return (self.directory / str(step) / "state").is_dir() and not (self.directory / str(step) / "model").is_dir()

    def restore(self, step: int, state_like: dict[str, Any], data_iter: Any) -> dict[str, Any]:
        """Restores `step` into the structure/shardings of `state_like`; also rewinds `data_iter` in place."""
        args = {}
        if self._single_item(step):
            args["state"] = ocp.args.StandardRestore(abstract_like(state_like))
        else:
            model, train = split_state(state_like)
            args["model"] = ocp.args.StandardRestore(abstract_like(model))
            args["train"] = ocp.args.StandardRestore(abstract_like(train))
        if data_iter is not None:
            args["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        restored = self.manager.restore(step, args=ocp.args.Composite(**args))
        if "state" in args:
            return restored["state"]
        return {**restored["model"], **restored["train"]}

    def restore_model(self, step: int, model_like: dict[str, Any]) -> dict[str, Any]:
        """Restores only the model item (`params`, `rest`) of `step`: no optimizer, no input pipeline needed."""
        if self._single_item(step):
            # The old single item holds the optimizer state too; a partial restore reads the model's arrays only.
            target = abstract_like(model_like)
            args = ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                          restore_args=ocp.checkpoint_utils.construct_restore_args(target))
            with ocp.PyTreeCheckpointer() as reader:
                return reader.restore(self.directory / str(step) / "state", args=args)
        args = {"model": ocp.args.StandardRestore(abstract_like(model_like))}
        return self.manager.restore(step, args=ocp.args.Composite(**args))["model"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending asynchronous saves, then releases the manager (safe to call again)."""
        self.manager.wait_until_finished()
        self.manager.close()
