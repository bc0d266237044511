"""SIGTERM (preemption) during training: `run.py` saves a checkpoint at the step it reached, says so, exits 0, and
the same command run again resumes from that step and finishes.

Runs `run.py` in subprocesses on 1 CPU device, with fast compilation and the session's compilation cache.
"""

import json
import re
import signal
import subprocess
import sys
import time

from tests.conftest import REPO_ROOT


def _cmd(workdir, data_dir, num_steps: int) -> list[str]:
    # No interval checkpoint in reach: the only checkpoint is the one SIGTERM asks for.
    return [sys.executable, "run.py", "--config=configs/synth_quick.py:tiny", f"--workdir={workdir}",
            f"--config.data.data_dir={data_dir}", f"--config.train.num_steps={num_steps}",
            "--config.train.log_every_steps=1", "--config.ckpt.every_steps=100000", "--config.eval.max_images=2"]


def _steps(workdir) -> list[int]:
    return [json.loads(x)["step"] for x in (workdir / "metrics.jsonl").read_text().splitlines() if x]


def test_sigterm_saves_stops_and_resumes(tmp_path, tiny_synth_dir, subprocess_env):
    workdir, env = tmp_path / "work", subprocess_env(1)
    # Far more steps than it could run before the signal: it is still training when SIGTERM arrives.
    proc = subprocess.Popen(_cmd(workdir, tiny_synth_dir, 100000), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.time() + 600
        metrics = workdir / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().strip()):  # the first step has been logged
            assert proc.poll() is None, "run.py ended before training"
            assert time.time() < deadline, "no training step within 600 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-2000:]
    match = re.search(r"SIGTERM: saved a checkpoint and stopped at step (\d+)", out)
    assert match, out[-2000:]
    step = int(match.group(1))
    assert step >= 1 and _steps(workdir) == list(range(1, step + 1))
    # Exactly that step, completely written (Orbax renames a step directory only when the save has finished).
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == [str(step)]
    assert all((workdir / "checkpoints" / str(step) / item).is_dir() for item in ("model", "train", "data"))
    assert not (workdir / "eval").exists(), "a stopped run does not evaluate"

    again = subprocess.run(_cmd(workdir, tiny_synth_dir, step + 2), cwd=REPO_ROOT, env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"Resuming from checkpoint at step {step} " in again.stdout
    assert _steps(workdir) == list(range(1, step + 3))
    assert json.loads((workdir / "eval" / "test_metrics.json").read_text())["step"] == step + 2
