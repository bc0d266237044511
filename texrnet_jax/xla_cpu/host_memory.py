"""Keep freed host memory in the process, so XLA:CPU's per-call buffers stop page-faulting.

On the CPU backend every call of a compiled function allocates its temporary buffer afresh (gigabytes for a large
model's training step) and frees it on return. glibc serves such blocks with ``mmap`` and hands them back with
``munmap``: threads other than the main one allocate from secondary arenas, which ``mmap`` any block above 64 MiB
whatever ``M_MMAP_MAX`` says, and the main arena trims a large free top of its heap. The next call then touches
every page anew, which costs a large share of a step in kernel time (docs/cpu_kernels.md has the figures).

:func:`keep_freed_host_memory` sets three glibc options with ``mallopt``: one arena for all threads
(``M_ARENA_MAX``), no ``mmap`` for large blocks (``M_MMAP_MAX``) and no trimming (``M_TRIM_THRESHOLD``), so a
freed buffer stays mapped and the next call reuses it. The price is that the process keeps its peak heap, which
XLA's accelerator allocators do anyway. It must run before JAX's backend starts its threads: a thread keeps the
arena it got at its first allocation.

It is not always a gain (probably because one arena makes threads that allocate a lot beside XLA contend for
its lock): the small quickstart job runs slower with it. ``bench/bench_models.py`` calls it first thing; ``run.py``
calls it when ``TEXRNET_KEEP_HOST_MEMORY=1`` (:func:`requested`), the setting for large models trained on CPUs.

It does nothing, and returns False, off glibc, when ``TEXRNET_KEEP_HOST_MEMORY=0``, or when the environment
already sets glibc's malloc options (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_`` or
``glibc.malloc`` tunables), which then win.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt parameter numbers from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8

ENV = "TEXRNET_KEEP_HOST_MEMORY"
_USER_MALLOC_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_applied = False


def _env_setting() -> str:
    return os.environ.get(ENV, "").strip().lower()


def requested() -> bool:
    """Whether the environment asks for :func:`keep_freed_host_memory` (``TEXRNET_KEEP_HOST_MEMORY=1``)."""
    return _env_setting() in ("1", "true", "yes", "on")


def keep_freed_host_memory() -> bool:
    """Configures glibc malloc to reuse freed memory instead of unmapping it; True if it did (or had)."""
    global _applied
    if _applied:
        return True
    if _env_setting() in ("0", "false", "no", "off"):
        return False
    if any(name in os.environ for name in _USER_MALLOC_ENV) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # -1 as the trim threshold becomes SIZE_MAX inside glibc (the parameter is converted to size_t): never trim.
    ok = mallopt(_M_ARENA_MAX, 1) == 1 and mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1
    _applied = ok
    return ok


def active() -> bool:
    """Whether :func:`keep_freed_host_memory` has configured this process."""
    return _applied
