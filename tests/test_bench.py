"""The model benchmark (`bench/bench_models.py`) runs end to end on a tiny preset and writes sane records.

No timing is asserted: only that every field is there and consistent (FLOPs and times positive, images/s equal
to batch / median time, train FLOPs above eval FLOPs).
"""

import json
import os

import jax
import pytest

from bench import bench_models

FIELDS = ("model", "case", "mode", "size", "batch", "dtype", "lower_s", "compile_s", "median_s", "times_s",
          "images_per_s", "flops_per_step", "gflops_per_image", "achieved_tflops", "peak_tflops", "mfu",
          "mem_xla_bytes", "mem_device_peak_bytes_in_use", "mem_process_max_rss_bytes", "reference_torch_s",
          "ratio_to_reference", "params_M", "machine")


def test_bench_models_tiny(tmp_path, capsys, fast_compile):
    out = tmp_path / "bench.jsonl"
    records = bench_models.main(["--models=deeplab_tiny", "--cases=eval:65:1,train:65:2", "--repeats=1",
                                 f"--json_out={out}"])
    assert [json.loads(line) for line in out.read_text().splitlines()] == records
    assert [(r["mode"], r["size"], r["batch"]) for r in records] == [("eval", 65, 1), ("train", 65, 2)]
    for r in records:
        assert set(FIELDS) <= set(r), set(FIELDS) - set(r)
        assert r["model"] == "texrnet_deeplab_tiny" and r["dtype"] == "float32"
        assert r["compile_s"] > 0 and r["median_s"] > 0 and len(r["times_s"]) == 1
        assert r["images_per_s"] == pytest.approx(r["batch"] / r["median_s"], rel=1e-2)
        assert r["flops_per_step"] > 0
        assert r["achieved_tflops"] == pytest.approx(r["flops_per_step"] / r["median_s"] / 1e12, rel=1e-2, abs=1e-4)
        assert r["mem_xla_bytes"] > 0 and r["mem_process_max_rss_bytes"] > 0
        assert r["reference_torch_s"] is None and r["ratio_to_reference"] is None  # no reference at 65 px
        m = r["machine"]
        assert m["platform"] == "cpu" and m["device_count"] >= 1 and m["cpu_count"] >= 1 and m["jax"]
        assert r["mfu"] is None and r["peak_tflops"] is None  # no CPU peak in the table
    # The training step (both passes and the update, 2 images) costs more than 2 eval forwards.
    assert records[1]["flops_per_step"] > 2 * records[0]["flops_per_step"]
    assert "texrnet_deeplab_tiny" in capsys.readouterr().out  # the table


def test_bench_models_devices(tmp_path, fast_compile):
    # conftest's 4 fake CPU devices are there already; the case runs over the first 2, as training would.
    one, two = (bench_models.main(["--models=deeplab_tiny", "--cases=train:65:2", "--repeats=1", f"--cpu_devices={n}",
                                   f"--json_out={tmp_path / f'{n}.jsonl'}"])[0] for n in (1, 2))
    assert (one["devices"], two["devices"]) == (1, 2)
    assert two["median_s"] > 0 and two["images_per_s"] == pytest.approx(2 / two["median_s"], rel=1e-2)
    # The same work, counted over both device programs (each does half the batch).
    assert two["flops_per_step"] == pytest.approx(one["flops_per_step"], rel=0.1)
    with pytest.raises(ValueError, match=r"'train:65:3'.*--cpu_devices=2"):
        bench_models.main(["--models=deeplab_tiny", "--cases=train:65:3", "--repeats=1", "--cpu_devices=2"])


def test_peak_flops_table():
    assert bench_models.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16")[0] == 989e12
    assert bench_models.peak_flops("NVIDIA H100 PCIe", "bfloat16")[0] == 756e12
    # float32 convs and matmuls are pinned to Precision.HIGHEST: the true float32 peak, not TF32.
    assert bench_models.peak_flops("NVIDIA H100 80GB HBM3", "float32")[0] == 67e12
    assert bench_models.peak_flops("TPU v5 lite", "bfloat16")[0] == 197e12
    assert bench_models.peak_flops("TPU v4", "float32")[0] is None  # no float32 entry
    assert bench_models.peak_flops("TPU v5", "bfloat16")[0] == 459e12
    assert bench_models.peak_flops("cpu", "float32")[0] is None


def test_parse_cases():
    assert bench_models.parse_cases("eval_512,train_513", "hrnet_w48") == [
        ("eval_512", "eval", 512, 1), ("train_513", "train", 513, 5)]
    assert bench_models.parse_cases("train_513,train:512:2", "deeplab_r101") == [
        ("train_513", "train", 513, 8), ("train:512:2", "train", 512, 2)]
    with pytest.raises(ValueError, match="MODE:SIZE:BATCH"):
        bench_models.parse_cases("train_1024", "hrnet_w48")


def _fake_interpreter(path, body: str):
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_torch_side_by_side(tmp_path, capsys, monkeypatch, fast_compile):
    # A stand-in for a torch interpreter: records its arguments and answers like bench/torch_twin/torch_texrnet.py does.
    args_file = tmp_path / "args"
    fake = _fake_interpreter(tmp_path / "python", f'echo "$@" > {args_file}\necho "some log line"\n'
                             'echo \'{"impl": "torch", "median_s": 0.5, "times_s": [0.5], "device": "cpu", '
                             '"threads": 3, "torch": "2.13.0+cpu"}\'\n')
    monkeypatch.setattr(bench_models, "TORCH_ARCHS", ("deeplab_tiny",))
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)  # restored after the test
    records = bench_models.main(["--models=deeplab_tiny,hrnet_tiny", "--cases=eval:65:1", "--repeats=1",
                                 f"--torch_python={fake}", "--torch_threads=3"])
    script, *flags = args_file.read_text().split()
    assert script == bench_models.TORCH_SCRIPT
    assert flags == ["--arch=deeplab_tiny", "--mode=eval", "--size=65", "--batch=1", "--repeats=1", "--threads=3"]
    ported, unported = records
    assert ported["torch_median_s"] == 0.5 and ported["torch_threads"] == 3 and ported["torch_device"] == "cpu"
    assert ported["ratio_to_torch"] == pytest.approx(ported["median_s"] / 0.5, abs=1e-3)  # rounded to 3 places
    assert unported["torch_median_s"] is None and unported["ratio_to_torch"] is None  # no PyTorch port of it
    table = capsys.readouterr().out
    assert "/torch" in table and "0.500" in table
    # PyTorch's process shares the accelerator with this one: JAX must not have reserved most of its memory.
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_torch_case_errors_name_the_interpreter_and_case(tmp_path):
    broken = _fake_interpreter(tmp_path / "python",
                               "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    with pytest.raises(RuntimeError, match=r"--torch_python=.*python: the PyTorch case hrnet_w48 train 512x512 "
                                           r"batch 1 failed \(exit 1\): ModuleNotFoundError: No module named 'torch'"):
        bench_models.torch_case(broken, "hrnet_w48", "train", 512, 1, 1, 2)
    with pytest.raises(RuntimeError, match="could not start"):
        bench_models.torch_case(str(tmp_path / "missing"), "hrnet_w48", "eval", 512, 1, 1, None)


def test_bench_aot_compiles_the_sharded_step_without_running_it(tmp_path, capsys, fast_compile):
    """`bench/bench_aot.py` on this host's 4 devices: per-device memory and FLOPs of the real data-parallel step;
    with --fsdp each device holds a share of the parameters and optimizer state, so its arguments shrink."""
    from bench import bench_aot

    out = tmp_path / "aot.jsonl"
    common = ["--topology=cpu", "--models=hrnet_tiny", "--per_device_batch=1", "--crop=65", "--dtype=float32",
              f"--json_out={out}"]
    plain, = bench_aot.main(common)
    sharded, = bench_aot.main(common + ["--fsdp"])
    assert [json.loads(line) for line in out.read_text().splitlines()] == [plain, sharded]
    for r in (plain, sharded):
        assert r["model"] == "texrnet_hrnet_tiny" and r["platform"] == "cpu" and r["num_devices"] == 4
        assert r["global_batch"] == 4 and r["flops_per_device"] > 0 and r["compile_s"] > 0
        assert r["mem_total_bytes"] == (r["mem_argument_bytes"] + r["mem_output_bytes"] + r["mem_temp_bytes"]
                                        - r["mem_alias_bytes"])
        assert r["mem_alias_bytes"] > 0  # the state is donated
        assert r["hbm_bytes"] is None and r["fits_hbm"] is None  # no HBM figure for CPUs
    assert sharded["mem_argument_bytes"] < 0.6 * plain["mem_argument_bytes"]
    assert "texrnet_hrnet_tiny" in capsys.readouterr().out  # the table


def test_bench_aot_names_a_topology_it_cannot_describe():
    from bench import bench_aot

    with pytest.raises(ValueError, match="--topology=v99:1x1"):
        bench_aot.topology_devices("v99:1x1")
    assert bench_aot.hbm_bytes("TPU v5 lite") == 16 << 30 and bench_aot.hbm_bytes("TPU v5") == 95 << 30
    assert bench_aot.hbm_bytes("cpu") is None

    class Core:  # libtpu's v4 topologies: two devices per chip
        def __init__(self, coords):
            self.coords = coords

    assert bench_aot.cores_per_chip([Core([0, 0, 0]), Core([0, 0, 0]), Core([1, 0, 0]), Core([1, 0, 0])]) == 2
    assert bench_aot.cores_per_chip([Core([0, 0, 0]), Core([1, 0, 0])]) == 1
    assert bench_aot.cores_per_chip(jax.devices("cpu")) == 1


def test_bench_label_quality_page_boxes_cover_every_text_pixel():
    """The real page's word boxes (`bench/bench_label_quality.py`) hold every text pixel of its truth, each box
    inside the photo's frame plus the 2 px margin, and the page keeps its don't-care boxes."""
    import numpy as np

    from bench import bench_label_quality
    from texrnet_jax.weak_labels import geometry

    (record, image, truth), = bench_label_quality._page_set(paragraphs=False)
    h, w = truth.shape
    covered = np.zeros((h, w), bool)
    for polygon in record.boxes:
        covered |= geometry.polygon_mask(polygon, h, w)
        assert polygon[:, 0].min() >= -2 and polygon[:, 0].max() <= w + 2, polygon
    assert image.shape[:2] == truth.shape and len(record.ignore) > 0
    assert 10 <= len(record.boxes) <= 60  # words and phrases, not one blob nor single strokes
    assert covered[truth == 1].all()
    assert covered.mean() < 0.8  # boxes, not the whole page
