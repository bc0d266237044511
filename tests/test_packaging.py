"""The installable package: pyproject's dependencies are requirements.txt's, the console scripts resolve, the wheel
holds the packages, configs and builder metadata it needs (and no tests), and the installed `texrnet` finds the
README's `--config=configs/...` from any folder."""

import importlib
import pathlib
import subprocess
import sys
import tomllib
import zipfile

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _requirements(name: str) -> list[str]:
    lines = (REPO_ROOT / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-r"))]


def test_dependencies_are_the_pinned_requirements():
    project = PYPROJECT["project"]
    assert project["dependencies"] == _requirements("requirements.txt")
    extras = project["optional-dependencies"]
    assert extras["test"] == _requirements("requirements-test.txt")
    assert extras["torch"] == _requirements("requirements-torch.txt")
    assert extras["build"] == _requirements("requirements-build.txt")
    jax_pin = next(d for d in project["dependencies"] if d.startswith("jax~="))
    for extra in ("cuda", "tpu"):  # the accelerator builds of the same jax
        assert extras[extra] == [jax_pin.replace("jax", f"jax[{'cuda12' if extra == 'cuda' else 'tpu'}]", 1)]


def test_console_scripts_resolve_without_importing_jax():
    scripts = PYPROJECT["project"]["scripts"]
    assert set(scripts) == {"texrnet", "texrnet-convert", "texrnet-build"}
    targets = [s.split(":") for s in scripts.values()]
    code = "import importlib; " + "; ".join(
        f"assert callable(getattr(importlib.import_module({m!r}), {f!r}))" for m, f in targets)
    # texrnet_jax.cli must not import jax at import time: host_memory has to act before JAX starts its threads.
    cli_only = "import sys, texrnet_jax.cli; assert 'jax' not in sys.modules, 'texrnet_jax.cli imported jax'"
    for snippet in (code, cli_only):
        subprocess.run([sys.executable, "-c", snippet], cwd=REPO_ROOT, check=True, timeout=120)


def test_config_paths_fall_back_to_the_installed_configs(tmp_path, monkeypatch):
    cli = importlib.import_module("texrnet_jax.cli")
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    args = ["--config=configs/synth_quick.py:tiny", "--workdir=w", "--config.train.num_steps=2"]
    out = cli._installed_config(args)
    assert out[0] == f"--config={REPO_ROOT / 'configs' / 'synth_quick.py'}:tiny" and out[1:] == args[1:]
    assert cli._installed_config(["--config=configs/nope.py"]) == ["--config=configs/nope.py"]
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "synth_quick.py").write_text("")
    assert cli._installed_config(args) == args  # a local file wins


def test_wheel_contents(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO_ROOT)],
                   check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("texrnet_jax-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("texrnet_jax/cli.py", "texrnet_jax/models/texrnet.py", "texrnet_jax/weak_labels/compose.py",
                   "configs/base.py", "configs/synth_quick.py", "tfds_builders/build.py",
                   "tfds_builders/synth_text/synth_text_dataset_builder.py", "tfds_builders/textseg/README.md",
                   "tfds_builders/textseg/CITATIONS.bib"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or "/dummy_data/" in n]
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "texrnet = texrnet_jax.cli:run" in text
