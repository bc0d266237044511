"""The workdir check every mode runs first, before JAX starts: a clear one-line error instead of a late failure."""

from __future__ import annotations

import pathlib
import tempfile


def check_workdir(workdir: str) -> pathlib.Path:
    """Creates the workdir and proves it is writable, failing with one line before any compute."""
    path = pathlib.Path(workdir).expanduser().absolute()
    try:
        path.mkdir(parents=True, exist_ok=True)
        # A uniquely named probe: every process of a multi-process run checks the same directory at once.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test."):
            pass
    except OSError as e:
        raise ValueError(f"--workdir={workdir} is not writable: {e.strerror or e}") from None
    return path
