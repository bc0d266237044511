"""`--mode=predict`: image decoding of every Pillow mode, per-file failures, outputs and exit codes.

A tiny model (`configs/synth_quick.py:tiny`) is saved as a training checkpoint once per module; prediction then
runs in-process through `predict.predict_from_config` and once through `python run.py --mode=predict`.
"""

import io
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import synth_quick
from tests.conftest import REPO_ROOT
from texrnet_jax import checkpoint, optim, parallel, predict, weights

# Displayed (EXIF-applied) size of most test images; sharing it keeps the number of compilations low.
H, W = 40, 52


def _config(input_spec="", output=""):
    config = synth_quick.get_config("tiny")
    config.predict.input = str(input_spec)
    config.predict.output = str(output)
    return config


pytestmark = pytest.mark.usefixtures("fast_compile")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> pathlib.Path:
    """A workdir holding a step-3 checkpoint of the tiny model, saved as `train_and_evaluate` saves it."""
    path = tmp_path_factory.mktemp("run")
    config = _config()
    _, _, params, rest = weights.create_model(config)
    tx, _ = optim.build_optimizer(config.optim, params)
    mesh = parallel.make_mesh(config.train.num_devices)
    state = {"params": params, "rest": rest, "opt_state": tx.init(params), "step": jnp.asarray(3, jnp.int32)}
    ckpt = checkpoint.Checkpointer(path / "checkpoints", config.ckpt.every_steps, config.ckpt.max_to_keep)
    ckpt.save(3, jax.device_put(state, parallel.replicated(mesh)), None, force=True)
    ckpt.close()
    return path


def _rng_image(shape, seed=0, dtype=np.uint8, high=256):
    return np.random.default_rng(seed).integers(0, high, shape).astype(dtype)


def _write_good_images(folder: pathlib.Path) -> dict[str, tuple[int, int]]:
    """One file per decoding path; returns file name -> expected (H, W) of the mask."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_rng_image((H, W), 1)).save(folder / "gray.png")
    rgba = _rng_image((H, W, 4), 2)
    rgba[:, : W // 2, 3] = 0  # left half fully transparent
    Image.fromarray(rgba).save(folder / "rgba.png")
    Image.fromarray(_rng_image((H, W), 3, np.uint16, 65536)).save(folder / "deep.png")  # opens as I;16
    Image.fromarray(_rng_image((H, W, 3), 4)).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "pal.png")
    # Stored W x H swapped; orientation 6 (rotate 90 degrees clockwise) makes it H x W when displayed.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rng_image((W, H, 3), 5)).save(folder / "rotated.JPG", exif=exif)
    Image.fromarray(_rng_image((5, 7, 3), 6)).save(folder / "tiny.bmp")
    return {
        "gray.png": (H, W),
        "rgba.png": (H, W),
        "deep.png": (H, W),
        "pal.png": (H, W),
        "rotated.JPG": (H, W),
        "tiny.bmp": (5, 7),
    }


def _check_outputs(out: pathlib.Path, expected: dict[str, tuple[int, int]]):
    for name, size in expected.items():
        stem = pathlib.Path(name).stem
        mask = np.asarray(Image.open(out / f"{stem}_mask.png"))
        over = np.asarray(Image.open(out / f"{stem}_overlay.png"))
        assert mask.shape == size and mask.dtype == np.uint8, name
        assert set(np.unique(mask)) <= {0, 255}, name
        assert over.shape == size + (3,) and over.dtype == np.uint8, name


def test_to_rgb_modes():
    """Every mode becomes uint8 RGB of the displayed size, with the documented conventions."""
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = 10
    rgba[0, :, 3] = 255
    out = predict.to_rgb(Image.fromarray(rgba))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0], 10)  # opaque: unchanged
    np.testing.assert_array_equal(out[1], 255)  # transparent: white page
    np.testing.assert_array_equal(predict.to_rgb(np.full((2, 2), 65535, np.uint16)), 255)
    np.testing.assert_array_equal(predict.to_rgb(np.full((2, 2), 257 * 7, np.uint16)), 7)
    np.testing.assert_array_equal(predict.to_rgb(np.full((2, 2), 0.5, np.float64)), 128)
    np.testing.assert_array_equal(predict.to_rgb(np.full((2, 2, 1), 9, np.uint8)), 9)
    cmyk = Image.new("CMYK", (3, 2), (0, 0, 0, 0))  # no ink: white
    np.testing.assert_array_equal(predict.to_rgb(cmyk), 255)
    pal = Image.new("P", (3, 2), 0)
    pal.putpalette([200, 100, 50] + [0] * 765)
    np.testing.assert_array_equal(predict.to_rgb(pal)[0, 0], [200, 100, 50])
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise
    buf = io.BytesIO()
    Image.new("RGB", (4, 2)).save(buf, format="JPEG", exif=exif)
    assert predict.to_rgb(Image.open(buf)).shape == (4, 2, 3)


def test_protocol_size_limits():
    """Tiny images are upsampled to >= 321 px; only absurd aspect ratios are refused."""
    cfg = {"scales": (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5), "base_size": 512, "flip": False}
    predict.check_protocol_size(5, 7, cfg)
    predict.check_protocol_size(3000, 4000, cfg)
    predict.check_protocol_size(1, 1, cfg)
    with pytest.raises(ValueError, match="aspect ratio"):
        predict.check_protocol_size(2, 1000, cfg)


def test_find_inputs_and_names(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a.JPEG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an image")
    files = predict.find_inputs(str(tmp_path))
    assert [f.name for f in files] == ["a.JPEG", "a.png"]
    assert predict.output_names(files) == ["a_jpeg", "a_png"]
    assert predict.output_names([pathlib.Path("x/a.png"), pathlib.Path("y/a.png")]) == ["a_png_0", "a_png_1"]
    assert [f.name for f in predict.find_inputs(str(tmp_path / "*.txt"))] == ["notes.txt"]
    with pytest.raises(FileNotFoundError, match=r"nothing\*\.png"):
        predict.find_inputs(str(tmp_path / "nothing*.png"))
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        predict.find_inputs(str(empty))


def test_predict_from_config(tmp_path, workdir, capsys):
    """Mixed folder: every good image gets mask + overlay; the corrupt file fails by name; exit code 1."""
    images = tmp_path / "in"
    expected = _write_good_images(images)
    (images / "broken.png").write_bytes(np.random.default_rng(0).bytes(300))
    (images / "readme.txt").write_text("skipped: not an image extension")
    out = tmp_path / "out"
    assert predict.predict_from_config(_config(images, out), str(workdir)) == 1
    err = capsys.readouterr()
    assert "broken.png" in err.err and "readme.txt" not in err.err
    assert "6/7 images" in err.out and "checkpoint step 3" in err.out
    _check_outputs(out, expected)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{pathlib.Path(n).stem}_{kind}.png" for n in expected for kind in ("mask", "overlay")
    )
    # Overlay pixels outside the mask are the (white-composited) image itself.
    mask = np.asarray(Image.open(out / "rgba_mask.png"))
    over = np.asarray(Image.open(out / "rgba_overlay.png"))
    keep = mask[:, : W // 2] == 0
    np.testing.assert_array_equal(over[:, : W // 2][keep], 255)

    # Only good files: exit code 0.
    good = tmp_path / "good"
    good.mkdir()
    (images / "gray.png").rename(good / "gray.png")
    assert predict.predict_from_config(_config(good / "*.png", tmp_path / "out2"), str(workdir)) == 0
    _check_outputs(tmp_path / "out2", {"gray.png": (H, W)})


def test_predict_errors(tmp_path, workdir):
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        predict.predict_from_config(_config(tmp_path / "missing_dir" / "*.png", tmp_path / "o"), str(workdir))
    with pytest.raises(ValueError, match="config.predict.input"):
        predict.predict_from_config(_config("", tmp_path / "o"), str(workdir))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
        predict.predict_from_config(_config(tmp_path / "x.png", tmp_path / "o"), str(tmp_path / "empty_workdir"))


def test_predict_image_api(workdir):
    """The library call gives the same mask as the files written by the CLI path, as {0, 1}."""
    config = _config()
    eval_def, variables, step = weights.load_for_inference(config, workdir)
    assert step == 3
    from texrnet_jax import evaluate

    predictor = evaluate.Predictor(eval_def, variables, config.eval)
    image = _rng_image((H, W, 3), 7)
    mask = predict.predict_image(predictor, Image.fromarray(image), config.eval)
    assert mask.shape == (H, W) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    np.testing.assert_array_equal(mask, predict.predict_image(predictor, image, config.eval))


def test_run_py_predict(tmp_path, workdir, subprocess_env):
    """The real command line in a fresh process (one CPU device): exit code 1 with a corrupt file, stderr names it."""
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(_rng_image((H, W, 3), 8)).save(images / "photo.png")
    (images / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    out = tmp_path / "out"
    env = subprocess_env(1)
    cmd = [
        sys.executable,
        "run.py",
        "--mode=predict",
        "--config=configs/synth_quick.py:tiny",
        f"--workdir={workdir}",
        f"--config.predict.input={images}",
        f"--config.predict.output={out}",
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "corrupt.jpg" in proc.stderr
    assert "1/2 images" in proc.stdout
    _check_outputs(out, {"photo.png": (H, W)})

    proc = subprocess.run(
        cmd[:-2] + [f"--config.predict.input={images}/nothing_*.png", f"--config.predict.output={out}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "nothing_*.png" in proc.stderr
