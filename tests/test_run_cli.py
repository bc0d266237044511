"""`run.py` command-line errors: one line on stderr, exit status 2, and no training started.

Each case runs `python run.py` in a subprocess; all of them fail before any model is built, so each takes seconds.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = "--config=configs/synth_quick.py:tiny"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python run.py ARGS`; `env` entries replace the inherited ones (None removes one)."""
    env = {k: v for k, v in {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO_ROOT), **(env or {})}.items()
           if v is not None}
    return subprocess.run(
        [sys.executable, "run.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("run.py: error: ")
    return lines[0]


def test_unknown_config_field(tmp_path):
    workdir = tmp_path / "work"
    proc = _run(TINY, f"--workdir={workdir}", "--config.train.foo=1")
    line = _error_line(proc)
    assert "'foo'" in line and "config.train.foo" in line
    assert not workdir.exists(), "nothing may be written before the config is valid"
    assert proc.stdout == ""


def test_unwritable_workdir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    workdir = blocker / "work"
    proc = _run(TINY, f"--workdir={workdir}")
    line = _error_line(proc)
    assert f"--workdir={workdir}" in line and "not writable" in line
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "override, expected",
    [("--config.train.num_steps=abc", "num_steps"), ("--config.train=3", "config.train")],
)
def test_badly_typed_override(tmp_path, override, expected):
    line = _error_line(_run(TINY, f"--workdir={tmp_path / 'work'}", override))
    assert expected in line


@pytest.mark.parametrize(
    "config, expected",
    [
        ("configs/synth_quick.py:tinyy", "unknown config argument 'tinyy'"),
        ("configs/no_such_experiment.py", "configs/no_such_experiment.py"),
    ],
)
def test_config_file_errors_name_the_cause(tmp_path, config, expected):
    line = _error_line(_run(f"--config={config}", f"--workdir={tmp_path / 'work'}"))
    assert expected in line


def test_errors_after_jax_starts_are_one_line_too(tmp_path):
    """Past flag parsing: INFO logs of jax/Orbax/TFDS stay off by default, so stderr is just the error."""
    proc = _run(TINY, f"--workdir={tmp_path / 'empty'}", "--mode=eval")
    assert "no checkpoint in" in _error_line(proc)
    proc = _run(TINY, f"--workdir={tmp_path / 'empty'}", "--mode=eval", "--verbosity=0")
    assert "process 0/1, devices:" in proc.stderr  # --verbosity=0 brings the INFO lines back


def test_workdir_check_is_safe_when_processes_share_the_workdir(tmp_path):
    """Every process of a multi-process run checks the same workdir at the same moment; none may see another's probe."""
    from concurrent.futures import ThreadPoolExecutor

    from texrnet_jax.workdir import check_workdir

    workdir = tmp_path / "shared"

    def check(_):
        for _ in range(200):
            check_workdir(str(workdir))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(check, range(8)))  # re-raises the first error
    assert list(workdir.iterdir()) == [], "the probe files are removed"


def _devices_of(proc: subprocess.CompletedProcess) -> int:
    """The device count of the INFO line `process 0/1, devices: [...]` (printed with --verbosity=0)."""
    line = next(line for line in proc.stderr.splitlines() if "process 0/1, devices:" in line)
    return line.count("CpuDevice")


def test_cpu_devices_split_the_host_unless_the_environment_sets_them(tmp_path):
    from texrnet_jax import parallel

    common = (TINY, f"--workdir={tmp_path / 'empty'}", "--mode=eval", "--verbosity=0")
    plain = {"XLA_FLAGS": None, "JAX_NUM_CPU_DEVICES": None}  # not the test session's 4 fake devices
    assert _devices_of(_run(*common, "--cpu_devices=3", env=plain)) == 3
    cores = len(os.sched_getaffinity(0))
    auto = parallel.auto_cpu_device_count(4, cores)  # the tiny preset's batch of 4
    assert _devices_of(_run(*common, env=plain)) == auto
    assert _devices_of(_run(*common, "--mode=predict", env=plain)) == 1  # predict: one image at a time
    proc = _run(*common, "--cpu_devices=3", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=1"})
    assert _devices_of(proc) == 1  # the user's XLA_FLAGS win
    assert "--cpu_devices=-2" in _error_line(_run(*common, "--cpu_devices=-2", env=plain))


@pytest.mark.parametrize("batch, cores, expected", [(16, 2, 2), (16, 1, 1), (16, 64, 8), (6, 4, 3), (5, 2, 1),
                                                    (12, 5, 4), (1, 16, 1)])
def test_auto_cpu_devices_divide_the_batch_up_to_one_per_core(batch, cores, expected):
    from texrnet_jax import parallel

    assert parallel.auto_cpu_device_count(batch, cores) == expected
