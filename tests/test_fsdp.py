"""`config.train.fsdp`: a `:tiny` run with parameters and optimizer state sharded over 4 devices trains like the
replicated run (same losses, rtol 1e-5), checkpoints and resumes its sharded state, and evaluates afterwards.

In process on the 4 fake CPU devices of conftest, with fast compilation and a shared compilation cache.
"""

import importlib
import json
import re

import numpy as np
import pytest

from texrnet_jax import train

STEPS = 5


def _config(data_dir, num_steps: int, fsdp: bool):
    config = importlib.import_module("configs.synth_quick").get_config("tiny")
    config.data.data_dir = str(data_dir)
    config.train.num_steps = num_steps
    config.train.global_batch_size = 4
    config.train.log_every_steps = 1
    config.train.fsdp = fsdp
    config.eval.max_images = 2
    config.lock()
    return config


def _logged(workdir) -> list[dict]:
    return [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines() if x]


@pytest.mark.usefixtures("fast_compile")
def test_fsdp_matches_replicated_training_through_a_resume(tmp_path, tiny_synth_dir, capsys):
    replicated = train.train_and_evaluate(_config(tiny_synth_dir, STEPS, fsdp=False), str(tmp_path / "dp"))

    # FSDP: 3 steps (checkpointed at the end), then a second run restores the sharded state and goes on to 5.
    capsys.readouterr()
    train.train_and_evaluate(_config(tiny_synth_dir, 3, fsdp=True), str(tmp_path / "fsdp"))
    out = capsys.readouterr().out
    full, per_device = map(float, re.search(r"FSDP over 4 devices: .* ([\d.]+) MiB -> ([\d.]+) MiB per device",
                                            out).groups())
    assert per_device < 0.5 * full, out  # most of the tiny model's bytes are in arrays big enough to shard
    sharded = train.train_and_evaluate(_config(tiny_synth_dir, STEPS, fsdp=True), str(tmp_path / "fsdp"))
    assert "Resuming from checkpoint at step 3" in capsys.readouterr().out

    dp, fsdp = _logged(tmp_path / "dp"), _logged(tmp_path / "fsdp")
    assert [d["step"] for d in fsdp] == [d["step"] for d in dp] == list(range(1, STEPS + 1))
    for key in ("loss", "losssem", "lossrfn", "lossrfntri"):
        np.testing.assert_allclose([d[key] for d in fsdp], [d[key] for d in dp], rtol=1e-5, err_msg=key)
    # Evaluation after FSDP training gathers the parameters: same images, same metrics up to rounding.
    assert sharded["step"] == replicated["step"] == STEPS
    assert sharded["num_images"] == replicated["num_images"] == 2
    for key in ("fgiou", "fscore"):
        assert sharded[key] == pytest.approx(replicated[key], rel=1e-3, abs=1e-4)
