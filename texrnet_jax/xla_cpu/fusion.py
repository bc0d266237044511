"""`fusion_boundary`: a value XLA:CPU materialises once instead of recomputing it inside every consumer.

XLA:CPU fuses cheap elementwise producers into each consumer. Through residual connections a block's output is
an elementwise chain (BatchNorm, ReLU, addition) reaching back through every earlier block of the stage, and the
backward pass's layout transposes for kernel gradients each recomputed that whole chain (up to 209 inputs per
transpose in HRNet-W48). An optimisation barrier does not stop it (XLA:CPU expands barriers before fusion); a
conditional on data does. On other platforms, in the gradient, and with the forms switched off, it is a plain
identity (on a GPU a conditional would cost a device-to-host copy of its predicate). See docs/cpu_kernels.md.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from texrnet_jax import xla_cpu


def fusion_boundary(x: jax.Array, anchor: jax.Array) -> jax.Array:
    """Identity on `x`, materialised on CPU.

    Args:
        x: the value to materialise.
        anchor: a small replicated array (the models pass a BatchNorm scale) the predicate is read from. Read from
            `x`, a predicate of a batch-sharded activation would need a collective per call to replicate it.
    """
    if not xla_cpu.enabled():
        return x
    return _boundary(x, anchor)


def _cut(x: jax.Array, anchor: jax.Array) -> jax.Array:
    # A conditional XLA cannot fold away: the predicate is data (always true, NaN included: both branches are x).
    a = anchor.reshape(-1)[0]
    return jax.lax.cond(a == a, lambda t: t, lambda t: t * 1, x)


def _boundary_cpu(x: jax.Array, anchor: jax.Array) -> jax.Array:
    return jax.lax.platform_dependent(x, anchor, cpu=_cut, default=lambda t, _: t)


@jax.custom_vjp
def _boundary(x: jax.Array, anchor: jax.Array) -> jax.Array:
    return _boundary_cpu(x, anchor)


def _boundary_fwd(x, anchor):
    return _boundary_cpu(x, anchor), anchor


_boundary.defvjp(_boundary_fwd, lambda anchor, g: (g, jnp.zeros_like(anchor)))
