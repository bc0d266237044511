"""The command line of texrnet-jax (`python run.py ...` in a clone, `texrnet ...` once installed).

    texrnet --config=configs/synth_quick.py --workdir=/tmp/texrnet_synth
    texrnet --config=configs/synth_quick.py --workdir=/tmp/texrnet_synth --mode=eval
    texrnet --config=configs/synth_quick.py:tiny --workdir=/tmp/t --config.train.num_steps=20

Modes: train (then evaluate), eval, predict (`config.predict`), label (box annotations -> 0/1/255 labels with a
trained BF-Net, `config.label`). Bad flags, unknown config fields and unwritable workdirs fail with one line
before any compute. JAX is imported only after the flags are read (see `host_memory`).
"""

import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and evaluation outputs.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "predict", "label"],
                          "What to run (label: box annotations -> 0/1/255 label PNGs with a trained BF-Net).")
_DISTRIBUTED = flags.DEFINE_bool(
    "jax_distributed", False, "Call jax.distributed.initialize() (multi-host runs); on TPU pods and SLURM the "
    "cluster is detected, elsewhere pass the three flags below.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with --jax_distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (with --jax_distributed).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (with --jax_distributed).")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", -1, "XLA devices to split the host CPU into for a data-parallel CPU run; -1 (auto): one per core "
    "(at most 8) that splits config.train.global_batch_size evenly, in every mode but predict (one device); 1: "
    "XLA's single CPU device. Ignored where XLA_FLAGS or JAX_NUM_CPU_DEVICES sets the count; no effect on GPU/TPU.")


def _prog() -> str:
    return os.path.basename(sys.argv[0]) or "texrnet"


def _fail(message: str) -> None:
    print(f"{_prog()}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
    """absl flag parsing, with config-override errors (e.g. unknown fields) reduced to one line."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:  # a config file that raises puts its traceback after the first line; keep the cause
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        _fail(lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}")
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        key = str(e.args[0] if e.args else e).strip("'\"")
        culprits = [a for a in argv[1:] if a.startswith("--config.") and key in a.split("=")[0]]
        if isinstance(e, (AttributeError, KeyError)) and culprits:
            _fail(f"unknown config field {key!r} in {culprits[0].split('=')[0]} (not in the config file)")
        _fail(" ".join(str(e).split()))
    if _CONFIG.value is None:
        _fail("--config is required, e.g. --config=configs/synth_quick.py")
    try:
        _CONFIG.value.keys()  # ml_collections reports a config file that does not exist only on first access
    except OSError as e:
        _fail(f"cannot load --config: {str(e).strip().splitlines()[-1].strip()}")
    if not _WORKDIR.value:
        _fail("--workdir is required")
    return rest


_START = time.perf_counter()


def _summary(result) -> None:
    """One closing line: the wall time of this command and its headline figures."""
    import jax

    if jax.process_index() != 0 or not result:
        return
    parts = [f"{result.get('split', 'eval')} fgIoU {result['fgiou']:.4f} F {result['fscore']:.4f}"]
    if "check" in result:
        parts.append(f"check set fgIoU {result['check']['fgiou']:.4f} F {result['check']['fscore']:.4f}")
    devices = f"{jax.device_count()} {jax.default_backend().upper()} device{'s' if jax.device_count() > 1 else ''}"
    print(f"{_prog()}: done in {(time.perf_counter() - _START) / 60:.1f} min wall on {devices}: {'; '.join(parts)}",
          flush=True)


def main(argv):
    if len(argv) > 1:
        _fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["verbosity"].present:
        # Warnings and errors only by default (Orbax and TFDS log every save and read at INFO); --verbosity=0
        # restores INFO. (A flag default set before app.run does not survive absl's own logging setup.)
        logging.set_verbosity(logging.WARNING)
    from texrnet_jax.xla_cpu import host_memory

    if host_memory.requested():  # TEXRNET_KEEP_HOST_MEMORY=1; before JAX starts its threads (see the module)
        host_memory.keep_freed_host_memory()
    from texrnet_jax.workdir import check_workdir

    try:
        check_workdir(_WORKDIR.value)
    except ValueError as e:
        _fail(str(e))
    import jax

    from texrnet_jax import parallel

    requested = _CPU_DEVICES.value
    if requested == -1 and _DISTRIBUTED.value:
        requested = None  # one CPU device per process, as jax.distributed sets it up
    elif requested == -1 and _MODE.value == "predict":
        requested = 1  # one image at a time: a second device would only compute padding
    if requested is not None:
        try:
            parallel.configure_cpu_devices(requested, int(_CONFIG.value.train.global_batch_size))
        except ValueError as e:
            _fail(str(e))
    if _DISTRIBUTED.value:
        # Only affects the CPU backend: cross-process collectives for CPU runs (and tests on one machine).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    logging.info("process %d/%d, devices: %s", jax.process_index(), jax.process_count(), jax.devices())
    config = _CONFIG.value
    try:
        if _MODE.value == "train":
            from texrnet_jax import train

            _summary(train.train_and_evaluate(config, _WORKDIR.value))
        elif _MODE.value == "eval":
            from texrnet_jax import evaluate

            _summary(evaluate.evaluate_checkpoint(config, _WORKDIR.value))
        elif _MODE.value == "label":
            from texrnet_jax.weak_labels import label_flow

            label_flow.label_from_config(config, _WORKDIR.value)
        else:
            from texrnet_jax import predict

            sys.exit(predict.predict_from_config(config, _WORKDIR.value))
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        if "\n" in str(e) or len(str(e)) > 500:
            raise
        _fail(str(e))


def _installed_config(argv: list[str]) -> list[str]:
    """`--config=configs/<file>[:arg]` that is not a file here names the installed `configs` package's copy, so the
    installed `texrnet` runs the README's commands from any folder; every other argument is left as it is."""
    out = []
    for a in argv:
        name, eq, value = a.partition("=")
        path, colon, arg = value.partition(":")
        if name == "--config" and eq and path.startswith("configs/") and not os.path.exists(path):
            import configs

            installed = os.path.join(os.path.dirname(configs.__file__), path[len("configs/"):])
            if os.path.isfile(installed):
                a = f"--config={installed}{colon}{arg}"
        out.append(a)
    return out


def run() -> None:
    """Console-script entry point (`texrnet`; `python run.py` calls it too)."""
    sys.argv[1:] = _installed_config(sys.argv[1:])
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
