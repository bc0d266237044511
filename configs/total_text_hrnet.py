"""TexRNet + HRNetV2-W48 on total_text.

The reference TexRNet training hyperparameters (set in `configs/base.py`); one cell of the paper's results table.

    python -m tfds_builders.build total_text --manual_dir=<downloads> --data_dir=~/tensorflow_datasets
    python run.py --config=configs/total_text_hrnet.py --workdir=/path/to/run
    python run.py --config=configs/total_text_hrnet.py:init_from=/path/to/converted_imagenet --workdir=/path/to/run
    python run.py --config=configs/total_text_hrnet.py:tiny --workdir=/tmp/total_text_hrnet_tiny   # smoke run
"""

from configs import base


def get_config(arg=None):
    return base.experiment("total_text", "hrnet_w48", arg)
