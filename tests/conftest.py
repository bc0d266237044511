"""Test setup: 4 fake CPU devices (set before jax is imported), one compilation cache per session, shared fixtures.

The suite runs in parallel worker processes (pytest-xdist, `-n auto --dist loadfile` in pyproject.toml: each file
stays in one worker, so its module fixtures are built once); `python -m pytest -n 0` runs it in one process.
"""

import os
import pathlib

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PARITY_DIR = REPO_ROOT.parent / "shared" / "parity"


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core, at most 4 (each worker holds a few GB of compiled programs)."""
    return max(1, min(os.cpu_count() or 1, 4))


# The files that take longest (about a minute of CPU each on 2 cores), run first so that the workers finish together.
_LONGEST_FIRST = ("test_parity.py", "test_multiprocess.py", "test_evaluate.py", "test_init_from.py",
                  "test_train_smoke.py", "test_bench.py", "test_convert.py", "test_resume.py", "test_fsdp.py")


def pytest_collection_modifyitems(config, items) -> None:
    """Longest files first (a stable sort: within a file and among the rest the collected order stays)."""
    rank = {name: i for i, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def _session_folder(tmp_path_factory, name: str) -> pathlib.Path:
    """A folder shared by every worker process of this test session (their base temps have a common parent)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / name
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory) -> pathlib.Path:
    """One persistent XLA compilation cache for the session: tests that build the same tiny model and step (each
    run jits its own functions) compile it once, in-process and in `run.py` child processes alike."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    path = _session_folder(tmp_path_factory, "xla_cache")
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    cc.reset_cache()
    return path


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    """The reference fixtures folder `../shared/parity` (relative to the repository root)."""
    if not PARITY_DIR.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return PARITY_DIR


@pytest.fixture(scope="session")
def subprocess_env(compilation_cache):
    """`subprocess_env(num_devices)`: the environment for a `run.py` child process on that many CPU devices, with
    XLA's slow passes off and the session's compilation cache, so that the many short runs of the same tiny model
    compile it once. Every run that is compared with another uses the same settings."""
    cache_dir = str(compilation_cache)

    def make(num_devices: int = 1) -> dict:
        return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}",
                    PYTHONPATH=str(REPO_ROOT), JAX_DISABLE_MOST_OPTIMIZATIONS="true",
                    JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")

    return make


@pytest.fixture(scope="session")
def tiny_synth_dir(tmp_path_factory) -> pathlib.Path:
    """A TFDS data dir holding `synth_text/tiny` (64 + 16 images, built once per test session)."""
    from tfds_builders import build

    path = tmp_path_factory.mktemp("tfds_tiny")
    build.prepare("synth_text/tiny", data_dir=str(path))
    return path


@pytest.fixture(scope="module")
def fast_compile():
    """XLA's slow optimisation passes off for a module whose cost is compilation (about 3x faster); restored after."""
    import jax

    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)
