"""TexRNet + DeepLabV3+ (ResNet-101, output stride 16) on coco_ts.

The reference TexRNet training hyperparameters (set in `configs/base.py`); one cell of the paper's results table.

    python -m tfds_builders.build coco_ts --manual_dir=<downloads> --data_dir=~/tensorflow_datasets
    python run.py --config=configs/coco_ts_deeplab.py --workdir=/path/to/run
    python run.py --config=configs/coco_ts_deeplab.py:init_from=/path/to/converted_imagenet --workdir=/path/to/run
    python run.py --config=configs/coco_ts_deeplab.py:tiny --workdir=/tmp/coco_ts_deeplab_tiny   # smoke run
"""

from configs import base


def get_config(arg=None):
    return base.experiment("coco_ts", "deeplab_r101", arg)
