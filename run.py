"""texrnet-jax entry point in a clone: train, evaluate, predict or label with one config file.

    python run.py --config=configs/synth_quick.py --workdir=/tmp/texrnet_synth
    python run.py --config=configs/synth_quick.py --workdir=/tmp/texrnet_synth --mode=eval

The same as the `texrnet` command of the installed package (`pip install .`); flags: `texrnet_jax/cli.py`.
"""

from texrnet_jax import cli

if __name__ == "__main__":
    cli.run()
