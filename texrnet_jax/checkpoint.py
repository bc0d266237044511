"""Orbax checkpoints of the whole training state plus the grain iterator, in one composite per step.

Startup order (house style rule 16): resume from the workdir's latest step, else `config.init_from`, else
scratch. Every process calls `save`; restores always go into an abstract target that carries shardings.
"""

from __future__ import annotations

import pathlib
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp


def abstract_like(state: Any) -> Any:
    """ShapeDtypeStructs with the shardings of `state`, the restore target Orbax needs."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


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

    def save(self, step: int, state: Any, data_iter: Any, force: bool = False) -> bool:
        """Saves (if the interval says so, or `force`); returns whether a save started."""
        args = {"state": ocp.args.StandardSave(state)}
        if data_iter is not None:
            args["data"] = grain.checkpoint.CheckpointSave(data_iter)
        return self.manager.save(step, args=ocp.args.Composite(**args), force=force)

    def restore(self, step: int, state_like: Any, data_iter: Any) -> Any:
        """Restores `step` into the structure/shardings of `state_like`; also rewinds `data_iter` in place."""
        args = {"state": ocp.args.StandardRestore(abstract_like(state_like))}
        if data_iter is not None:
            args["data"] = grain.checkpoint.CheckpointRestore(data_iter)
        return self.manager.restore(step, args=ocp.args.Composite(**args))["state"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending asynchronous saves, then releases the manager (safe to call again)."""
        self.manager.wait_until_finished()
        self.manager.close()
