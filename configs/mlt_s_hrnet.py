"""TexRNet + HRNetV2-W48 on mlt_s.

The reference TexRNet training hyperparameters (set in `configs/base.py`); one cell of the paper's results table.

    python -m tfds_builders.build mlt_s --manual_dir=<downloads> --data_dir=~/tensorflow_datasets
    python run.py --config=configs/mlt_s_hrnet.py --workdir=/path/to/run
    python run.py --config=configs/mlt_s_hrnet.py:init_from=/path/to/converted_imagenet --workdir=/path/to/run
    python run.py --config=configs/mlt_s_hrnet.py:tiny --workdir=/tmp/mlt_s_hrnet_tiny   # smoke run
"""

from configs import base


def get_config(arg=None):
    return base.experiment("mlt_s", "hrnet_w48", arg)
