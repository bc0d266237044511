"""Every experiment config loads through `ml_collections.config_flags` (as run.py loads it), locks, and builds.

New `configs/*.py` files are picked up by globbing; `base.py` and `__init__.py` hold helpers, not experiments.
Models are built under `nnx.eval_shape`, so no parameters are allocated (the full-size presets included). Tracing
HRNet-W48 still takes several seconds, so each distinct `config.model` section is built once per session.
"""

import pathlib

import jax
import pytest
from absl import flags
from flax import nnx
from ml_collections import config_flags

from texrnet_jax.models import build_model

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[1] / "configs"
CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.py") if p.name not in ("base.py", "__init__.py"))
SECTIONS = ("data", "model", "loss", "optim", "train", "eval", "ckpt")


_PARAM_COUNTS: dict[str, int] = {}


def _param_count(model_cfg) -> int:
    """Parameter count of `build_model(model_cfg)`, built abstractly once per distinct model section."""
    key = model_cfg.to_json(sort_keys=True)
    if key not in _PARAM_COUNTS:
        model = nnx.eval_shape(lambda: build_model(model_cfg, rngs=nnx.Rngs(0)))
        leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
        assert leaves and all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)
        _PARAM_COUNTS[key] = sum(x.size for x in leaves)
    return _PARAM_COUNTS[key]


def _load(path: pathlib.Path, arg: str | None = None):
    """Parses `--config=<path>[:arg]` with a private FlagValues, exactly as `run.py` defines the flag."""
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "config file", flag_values=flag_values, lock_config=True)
    flag_values(["test", f"--config={path}" + (f":{arg}" if arg else "")])
    return flag_values.config


def test_configs_are_found():
    assert "synth_quick.py" in {p.name for p in CONFIGS}


@pytest.mark.parametrize("arg", [None, "tiny"])
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_locks_and_builds(monkeypatch, path, arg):
    monkeypatch.chdir(CONFIG_DIR.parent)  # configs import `configs.base`, resolved from the repository root
    config = _load(path, arg)
    assert config.is_locked
    for section in SECTIONS:
        assert section in config, f"{path.name}: missing config.{section}"
    with pytest.raises(AttributeError):
        config.train.no_such_field = 1  # locked: a typo cannot add a field
    assert _param_count(config.model) > 0
    assert config.train.global_batch_size > 0 and config.train.num_steps > 0
    assert config.data.crop_size <= config.data.scale_range[0] <= config.data.scale_range[1]


def test_tiny_shrinks_the_run():
    for path in CONFIGS:
        full, tiny = _load(path), _load(path, "tiny")
        assert tiny.train.num_steps < full.train.num_steps, path.name
        assert tiny.data.crop_size <= full.data.crop_size, path.name
        assert _param_count(tiny.model) <= _param_count(full.model), path.name


def test_unknown_config_argument_is_rejected():
    with pytest.raises(Exception, match="unknown config argument 'tinyy'"):
        _load(CONFIGS[0], "tinyy")
