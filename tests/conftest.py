"""Test setup: 4 fake CPU devices (set before jax is imported) and shared fixtures."""

import os
import pathlib

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PARITY_DIR = REPO_ROOT.parent / "shared" / "parity"


@pytest.fixture(scope="session")
def parity_dir() -> pathlib.Path:
    """The reference fixtures folder `../shared/parity` (relative to the repository root)."""
    if not PARITY_DIR.is_dir():
        pytest.skip(f"parity fixtures not found at {PARITY_DIR}")
    return PARITY_DIR


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


@pytest.fixture(scope="module")
def fast_compile_cached(tmp_path_factory):
    """`fast_compile` plus a persistent compilation cache, so several in-process runs of a module share programs."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    options = {"jax_disable_most_optimizations": True, "jax_compilation_cache_dir": str(tmp_path_factory.mktemp("xla")),
               "jax_persistent_cache_min_compile_time_secs": 0.0, "jax_persistent_cache_min_entry_size_bytes": -1}
    previous = {name: jax.config.values[name] for name in options}
    for name, value in options.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
    yield
    for name, value in previous.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()
