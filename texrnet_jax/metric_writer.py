"""Host-side logging: tensorboardX scalars and images, `metrics.jsonl` (one JSON object per log step), `config.json`.

Only process 0 writes. On resume, `metrics.jsonl` lines beyond the restored step are dropped so the file
reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

import numpy as np


class MetricWriter:
    """Writes scalars to tensorboard (`<workdir>/tb`) and `<workdir>/metrics.jsonl`.

    Attributes:
        workdir: the run directory.
        enabled: False on processes other than 0 (every call is then a no-op).
    """

    def __init__(self, workdir: str | pathlib.Path, enabled: bool = True):
        self.workdir = pathlib.Path(workdir)
        self.enabled = enabled
        self.jsonl = self.workdir / "metrics.jsonl"
        self._tb = None
        if enabled:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.workdir / "tb"))

    def write_config(self, config_json: str) -> None:
        if self.enabled:
            (self.workdir / "config.json").write_text(config_json)

    def truncate_after(self, step: int) -> None:
        """Drops logged lines with `step` > `step` (they belong to work lost before a restart)."""
        if not self.enabled or not self.jsonl.exists():
            return
        keep = [line for line in self.jsonl.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        self.jsonl.write_text("".join(line + "\n" for line in keep))

    def write_scalars(self, step: int, scalars: Mapping[str, float], jsonl: bool = True) -> None:
        """Logs `scalars` at `step` to tensorboard and, unless `jsonl` is False, as one line of metrics.jsonl."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        for k, v in clean.items():
            self._tb.add_scalar(k, v, step)
        if not jsonl:
            return
        with self.jsonl.open("a") as f:
            f.write(json.dumps({"step": int(step), **clean}) + "\n")

    def write_image(self, step: int, name: str, image: np.ndarray) -> None:
        """Logs an `[H, W, 3]` uint8 image."""
        if self.enabled:
            self._tb.add_image(name, image, step, dataformats="HWC")

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
