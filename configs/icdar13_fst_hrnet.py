"""TexRNet + HRNetV2-W48 on icdar13_fst.

The reference TexRNet training hyperparameters (set in `configs/base.py`); one cell of the paper's results table.

    python -m tfds_builders.build icdar13_fst --manual_dir=<downloads> --data_dir=~/tensorflow_datasets
    python run.py --config=configs/icdar13_fst_hrnet.py --workdir=/path/to/run
    python run.py --config=configs/icdar13_fst_hrnet.py:init_from=/path/to/converted_imagenet --workdir=/path/to/run
    python run.py --config=configs/icdar13_fst_hrnet.py:tiny --workdir=/tmp/icdar13_fst_hrnet_tiny   # smoke run
"""

from configs import base


def get_config(arg=None):
    return base.experiment("icdar13_fst", "hrnet_w48", arg)
