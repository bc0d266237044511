"""Prepares one TFDS dataset of this project as array_record files, without TensorFlow.

    python -m tfds_builders.build synth_text --config=quick --data_dir=~/tensorflow_datasets
    python -m tfds_builders.build synth_text/standard
    python -m tfds_builders.build textseg --manual_dir=~/downloads/textseg --data_dir=/data/tfds

The `tfds build` CLI needs TensorFlow, apache-beam and mlcroissant (the optional `build` extra); this
script only calls `builder.download_and_prepare(file_format='array_record')`, which needs none of them.
Training code calls `prepare()` directly. Flags are defined only when this file runs as a script, so that
importing `prepare` never adds flags (run.py defines its own `--config`).
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds
from absl import app, flags, logging


def prepare(name: str, data_dir: str | None = None, manual_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """Prepares `name` into array_record files unless it is already prepared.

    Args:
      name: TFDS name, optionally with config and version, e.g. 'synth_text' or 'synth_text/quick:1.0.0'.
      data_dir: TFDS data directory; None uses the TFDS default (`~/tensorflow_datasets`).
      manual_dir: folder with the manually downloaded archives; None uses TFDS's default
        (`<data_dir>/downloads/manual`). Not needed for datasets without downloads such as synth_text.

    Returns:
      The prepared builder; read it with `builder.as_data_source(split)` or `tfds.data_source(...)`.
    """
    import tfds_builders  # noqa: F401  (registers the project's builders; imported here, not at module import)

    if data_dir is not None:
        data_dir = os.path.expanduser(data_dir)
    if manual_dir is not None:
        manual_dir = os.path.expanduser(manual_dir)
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare(
        file_format="array_record",
        # Never look for pre-built copies on GCS: the builders are local and runs may have no network.
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False),
    )
    return builder


def _define_flags() -> dict[str, flags.FlagHolder]:
    return {
        "config": flags.DEFINE_string("config", None, "Builder config, e.g. 'quick'; same as '<name>/<config>'."),
        "data_dir": flags.DEFINE_string("data_dir", None, "TFDS data dir (default: ~/tensorflow_datasets)."),
        "manual_dir": flags.DEFINE_string("manual_dir", None, "Folder with the manually downloaded archives."),
    }


def _main(argv: list[str], flag_values: dict[str, flags.FlagHolder]) -> None:
    if len(argv) != 2:
        raise app.UsageError(f"expected exactly one dataset name, got {argv[1:]}")
    name = argv[1]
    if flag_values["config"].value:
        if "/" in name:
            raise app.UsageError(f"give the config either in the name ({name!r}) or with --config, not both")
        base, _, version = name.partition(":")
        name = f"{base}/{flag_values['config'].value}" + (f":{version}" if version else "")
    logging.info("Preparing %s", name)
    builder = prepare(name, data_dir=flag_values["data_dir"].value, manual_dir=flag_values["manual_dir"].value)
    print(f"{builder.info.full_name} prepared in {builder.data_dir}")
    for split, info in sorted(builder.info.splits.items()):
        print(f"  {split}: {info.num_examples} examples")


def run() -> None:
    """Console-script entry point (`texrnet-build`, the same as `python -m tfds_builders.build`)."""
    flag_values = _define_flags()
    app.run(lambda argv: _main(argv, flag_values))


if __name__ == "__main__":
    run()
