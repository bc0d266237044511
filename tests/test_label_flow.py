"""`--mode=label`: annotation files + a BF-Net -> label PNGs, resumable, with a summary and quality.json."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from configs import bfnet_synth
from texrnet_jax.weak_labels import compose, label_flow
from texrnet_jax.weak_labels.records import Record


def _bright(crops: np.ndarray) -> np.ndarray:
    """An oracle BF-Net: text is where a crop is bright (the fake images draw white text on dark ground)."""
    return (np.asarray(crops, np.float32).mean(-1) > 127).astype(np.float32)


def _scene(h: int, w: int, text: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A dark image with one white bar (x1, y1, x2, y2) and its true mask."""
    image = np.full((h, w, 3), 30, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x1, y1, x2, y2 = text
    image[y1:y2, x1:x2] = 230
    mask[y1:y2, x1:x2] = 1
    return image, mask


@pytest.fixture
def folder(tmp_path):
    """images/ (two scenes and a corrupt file), truth/, and a boxes_json file with a few bad entries."""
    (tmp_path / "images").mkdir()
    (tmp_path / "truth").mkdir()
    bars = {"a": (10, 20, 50, 30), "b": (30, 5, 70, 18)}
    for name, bar in bars.items():
        image, mask = _scene(48, 96, bar)
        Image.fromarray(image).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(mask).save(tmp_path / "truth" / f"{name}.png")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg")
    entries = [
        {"image": "a.png", "boxes": [[6, 16, 54, 34], [200, 200, 240, 230]]},  # the second is outside the image
        {"image": "b.png", "boxes": [[26, 1, 74, 22], [5, 5, 5, 9]], "ignore": [[0, 40, 8, 48]]},  # degenerate box
        {"image": "broken.jpg", "boxes": [[1, 1, 10, 10]]},
    ]
    (tmp_path / "boxes.json").write_text(json.dumps(entries))
    return tmp_path


def _items(folder: pathlib.Path) -> list[label_flow.Item]:
    cfg = bfnet_synth.get_config("tiny").label
    with cfg.unlocked():
        cfg.format, cfg.annotations, cfg.images = "boxes_json", str(folder / "boxes.json"), str(folder / "images")
        cfg.truth = str(folder / "truth")
    problems: list[str] = []
    items = label_flow.file_items(cfg, problems)
    assert len(problems) == 1 and "degenerate box" in problems[0] and "boxes.json" in problems[0]
    return items


def test_labels_summary_and_quality_from_annotation_files(folder):
    logged: list[str] = []
    rules = compose.Rules(margin=0.5, size=65, hi=0.5, lo=0.2)
    report = label_flow.label_items(_items(folder), _bright, rules, folder / "out", "flat", batch=3, progress=False,
                                    log=logged.append)
    assert (report.written, report.existing) == (2, 0)
    assert report.skipped == {"boxes outside the image": 1, "unreadable images": 1}
    assert any("broken.jpg" in m and "cannot read" in m for m in logged)
    assert any("box 1" in m and "outside the 96x48 image" in m for m in logged)
    assert "2 written, 0 already there, 2 skipped" in report.summary()
    for name in ("a", "b"):
        label = np.asarray(Image.open(folder / "out" / f"{name}.png"))
        truth = np.asarray(Image.open(folder / "truth" / f"{name}.png"))
        assert label.dtype == np.uint8 and label.shape == truth.shape == (48, 96)
        known = label != 255
        # The bar is labelled text, the rest of the box and everything outside it background; a thin band along
        # the bar's edges may stay uncertain (bilinear resampling of the crop).
        assert np.mean(label[known] == truth[known]) > 0.99 and known.mean() > 0.9
    assert np.all(np.asarray(Image.open(folder / "out" / "b.png"))[40:48, 0:8] == 255)  # the ignore box
    assert not list((folder / "out").glob(".*tmp"))
    q = report.quality
    assert q["num_images"] == 2 and q["bfnet"]["fgiou"] > 0.9 and q["bfnet"]["fgiou"] > q["whole_box"]["fgiou"]
    assert q["whole_box"]["box_uncertain_fraction"] == 0 and q["whole_box"]["recall"] == 1.0


def test_a_killed_run_resumes_without_rewriting_finished_images(folder):
    items = _items(folder)
    items += [label_flow.Item(Record(f"extra{i}.png", [np.array([[4.0, 4], [40, 4], [40, 20], [4, 20]])]),
                              lambda: _scene(32, 48, (8, 8, 30, 16))[0]) for i in range(4)]
    rules = compose.Rules(margin=0.5, size=65)
    calls = []

    def dies_on_third_call(crops):
        calls.append(len(crops))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill between model calls
        return _bright(crops)

    with pytest.raises(KeyboardInterrupt):
        label_flow.label_items(items, dies_on_third_call, rules, folder / "out", "flat", batch=2, progress=False,
                               log=lambda m: None)
    done = sorted(p.name for p in (folder / "out").glob("*.png"))
    assert 0 < len(done) < 6
    mtimes = {p: p.stat().st_mtime_ns for p in (folder / "out").glob("*.png")}
    for p in mtimes:  # every finished file is a whole PNG
        assert set(np.unique(np.asarray(Image.open(p)))) <= {0, 1, 255}
    report = label_flow.label_items(items, _bright, rules, folder / "out", "flat", batch=2, progress=False,
                                    log=lambda m: None)
    assert report.existing == len(done) and report.written == 6 - len(done)
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())
    assert len(list((folder / "out").glob("*.png"))) == 6 and not list((folder / "out").glob(".*tmp"))
    assert report.quality["num_images"] == 2  # the finished images are scored too (the extras have no truth)


def test_label_mode_with_a_model_writes_pngs_and_quality_json(folder):
    from texrnet_jax import weights

    config = bfnet_synth.get_config("tiny")
    with config.unlocked():
        config.label.format, config.label.annotations = "boxes_json", str(folder / "boxes.json")
        config.label.images, config.label.truth = str(folder / "images"), str(folder / "truth")
        config.label.output = str(folder / "out")
    _, eval_def, params, rest = weights.create_model(config)  # untrained: the flow, not the quality, is checked
    report = label_flow.label_from_config(config, str(folder / "work"), model=(eval_def, (params, rest)), quiet=True)
    assert report.written == 2 and report.skipped["annotation problems"] == 1
    for name in ("a", "b"):
        label = np.asarray(Image.open(folder / "out" / f"{name}.png"))
        assert label.shape == (48, 96) and set(np.unique(label)) <= {0, 1, 255}
        assert label[:, 80:].max() == 0  # outside every box
    quality = json.loads((folder / "out" / "quality.json").read_text())
    assert quality["num_images"] == 2 and quality["rules"]["size"] == config.data.crop_size
    assert set(quality["bfnet"]) >= {"fgiou", "fscore", "box_uncertain_fraction"}


def test_label_config_errors_name_the_field(folder):
    config = bfnet_synth.get_config("tiny")
    with config.unlocked():
        config.label.format = "yolo"
    with pytest.raises(ValueError, match="config.label.format"):
        label_flow.label_from_config(config, str(folder), model=(None, None), quiet=True)
    with config.unlocked():
        config.label.format, config.label.annotations = "tfds", "synth_text/tiny"
    with pytest.raises(ValueError, match="'<dataset>:<split>'"):
        label_flow.label_from_config(config, str(folder), model=(None, None), quiet=True)


def test_training_reads_weak_labels_from_a_folder(tmp_path):
    from texrnet_jax import input_pipeline

    config = bfnet_synth.get_config("tiny")
    with config.unlocked():
        config.data.sampler = "images"
    data = config.data
    source = input_pipeline.data_source(data, data.train_split)
    for i in range(len(source)):  # weak labels that call every pixel background
        ex = source[i]
        blank = np.zeros(np.asarray(ex["image"]).shape[:2], np.uint8)
        Image.fromarray(blank).save(tmp_path / f"{ex['id'].decode()}.png")
    def masks():
        it = input_pipeline.train_iterator(data, 4, seed=0)
        return np.concatenate([next(it)["mask"] for _ in range(4)])

    truth = masks()
    with data.unlocked():
        data.train_labels = str(tmp_path)
    weak = masks()
    assert (truth == 1).any() and not (weak == 1).any()
    assert (weak[truth != 255] == 0).all()  # the same crops: only the labels differ
    next(tmp_path.glob("*.png")).unlink()
    with pytest.raises(FileNotFoundError, match="config.data.train_labels: no label"):
        it = input_pipeline.train_iterator(data, 4, seed=0)
        for _ in range(len(source)):
            next(it)
