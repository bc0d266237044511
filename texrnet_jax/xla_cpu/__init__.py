"""XLA:CPU forms of the models' operations, and the one switch that turns them all off.

XLA's CPU backend runs some operations far slower than their arithmetic warrants: dilated convolutions over
their whole zero padding, kernel gradients of wide or batched convolutions, elementwise chains it recomputes
inside every consumer. This package holds the equivalent forms that run faster there (`conv`: convolutions and
their kernel gradients; `fusion`: a materialisation barrier; `host_memory`: glibc settings for XLA:CPU's per-call
buffers). Each form is chosen per platform when a program is lowered, so GPUs and TPUs get XLA's own operations;
the models call `conv.conv2d` and `fusion.fusion_boundary` and know nothing of platforms. The design and the
measurements behind every threshold are in docs/cpu_kernels.md.

The switch: `TEXRNET_XLA_CPU_FORMS=0` in the environment, or `with xla_cpu.disabled():` around the tracing of a
function, gives every platform XLA's plain operations (a convolution is `lax.conv_general_dilated`, the barrier an
identity). It acts when a function is traced: a function jitted and called before keeps the program it has.

This module imports nothing heavy: `host_memory` must act before JAX starts its threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator

ENV = "TEXRNET_XLA_CPU_FORMS"

_override: contextvars.ContextVar[bool | None] = contextvars.ContextVar("texrnet_xla_cpu_forms", default=None)


def enabled() -> bool:
    """Whether the XLA:CPU forms are used in programs traced now (the context manager wins over the environment)."""
    override = _override.get()
    if override is not None:
        return override
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Within the block, functions traced get XLA's plain operations on every platform."""
    token = _override.set(False)
    try:
        yield
    finally:
        _override.reset(token)
