"""A diverging run (`--config.optim.base_lr=1e6` on `:tiny`): `run.py` exits non-zero with one error line that
names the step and the last good checkpoint; that checkpoint is restorable and finite, and no checkpoint holds a
non-finite state.

With this learning rate the loss of step 3 is still finite (about 2e12) but its gradients, hence the state after
step 3, are NaN: checking losses alone would checkpoint a NaN state at step 3.
"""

import json
import math
import re
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp

from tests.conftest import REPO_ROOT

STEPS = 8


def test_non_finite_training_stops_at_the_last_good_checkpoint(tmp_path, tiny_synth_dir, subprocess_env):
    workdir = tmp_path / "work"
    cmd = [sys.executable, "run.py", "--config=configs/synth_quick.py:tiny", f"--workdir={workdir}",
           f"--config.data.data_dir={tiny_synth_dir}", f"--config.train.num_steps={STEPS}",
           "--config.optim.base_lr=1e6", "--config.train.log_every_steps=1", "--config.ckpt.every_steps=1",
           f"--config.ckpt.max_to_keep={STEPS}"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=subprocess_env(1), capture_output=True, text=True, timeout=600)

    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("run.py: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    match = re.fullmatch(r"run\.py: error: non-finite .* (?:at|after) step (\d+); "
                         r"the last good checkpoint is step (\d+) in (\S+)", errors[0])
    assert match, errors[0]
    bad, good = int(match.group(1)), int(match.group(2))
    assert 1 <= good < bad <= STEPS
    assert match.group(3) == str(workdir / "checkpoints")

    saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert saved and saved[-1] == good, saved
    for step in saved:  # every checkpoint restores, with finite floats only
        step_dir = workdir / "checkpoints" / str(step)
        tree = [ocp.StandardCheckpointer().restore(step_dir / item) for item in ("model", "train")]
        floats = [np.asarray(x) for x in jax.tree.leaves(tree) if np.issubdtype(np.asarray(x).dtype, np.floating)]
        assert floats and all(np.isfinite(x).all() for x in floats), step
    logged = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines() if x]
    assert all(math.isfinite(d["loss"]) for d in logged)
