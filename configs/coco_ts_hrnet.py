"""TexRNet + HRNetV2-W48 on coco_ts.

The reference TexRNet training hyperparameters (set in `configs/base.py`); one cell of the paper's results table.

    python -m tfds_builders.build coco_ts --manual_dir=<downloads> --data_dir=~/tensorflow_datasets
    python run.py --config=configs/coco_ts_hrnet.py --workdir=/path/to/run
    python run.py --config=configs/coco_ts_hrnet.py:init_from=/path/to/converted_imagenet --workdir=/path/to/run
    python run.py --config=configs/coco_ts_hrnet.py:tiny --workdir=/tmp/coco_ts_hrnet_tiny   # smoke run
"""

from configs import base


def get_config(arg=None):
    return base.experiment("coco_ts", "hrnet_w48", arg)
