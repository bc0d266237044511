"""The reference optimizer as an optax chain, with per-group learning-rate multipliers by path regex.

PyTorch SGD with weight decay and momentum (dampening 0, no Nesterov) is
`buf = m * buf + (g + wd * p); p -= lr * buf`, which is optax's
`add_decayed_weights(wd) -> trace(m) -> scale(-lr * mult)`. The reference's LR groups (backbone x1,
heads x10) become a constant per-parameter multiplier chosen by the first matching regex.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax


def lr_schedule(base_lr: float, warmup_steps: int, decay_steps: int, power: float) -> optax.Schedule:
    """Linear warm-up from 0, then `base_lr * (1 - j / decay_steps) ** power`; after that the last value.

    Step `i` is the 0-based index of the update, as the reference's iteration counter.
    """

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warm = base_lr * step / max(warmup_steps, 1)
        j = jnp.minimum(step - warmup_steps, decay_steps - 1)
        poly = base_lr * ((decay_steps - j) / decay_steps) ** power  # exact in float32, unlike 1 - j / n
        return jnp.where(step < warmup_steps, warm, poly)

    return schedule


def path_str(path) -> str:
    """'/'-joined names of a pytree key path, e.g. `semrfnhead/conv_ref/conv0/kernel`."""
    parts = []
    for k in path:
        name = getattr(k, "key", getattr(k, "idx", getattr(k, "name", None)))
        if name is not None and name != "value":
            parts.append(str(name))
    return "/".join(parts)


def lr_multipliers(params: Any, rules: Sequence[tuple[str, float]]) -> Any:
    """A pytree like `params` holding each leaf's LR multiplier (first matching regex, else 1)."""
    compiled = [(re.compile(p), float(m)) for p, m in rules]

    def mult(path, _):
        name = path_str(path)
        return next((m for rx, m in compiled if rx.search(name)), 1.0)

    return jax.tree_util.tree_map_with_path(mult, params)


def scale_by_tree(multipliers: Any) -> optax.GradientTransformation:
    """Multiplies each update leaf by a constant."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, m: u * m, updates, multipliers), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def build_optimizer(cfg: Mapping[str, Any], params: Any) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Builds the SGD chain from `config.optim` for `params`; returns (transformation, lr schedule)."""
    schedule = lr_schedule(cfg["base_lr"], cfg["warmup_steps"], cfg["decay_steps"], cfg["power"])
    tx = optax.chain(
        optax.add_decayed_weights(cfg["weight_decay"]),
        optax.trace(decay=cfg["momentum"], nesterov=False),
        optax.scale_by_schedule(lambda step: -schedule(step)),
        scale_by_tree(lr_multipliers(params, cfg["lr_mults"])),
    )
    return tx, schedule
