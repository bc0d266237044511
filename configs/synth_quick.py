"""TexRNet on the embedded synthetic text set, sized for a CPU: the README's main job.

    python run.py --config=configs/synth_quick.py --workdir=/tmp/texrnet_synth

Builds `synth_text/quick` (no download) on first use, trains a small HRNetV2 TexRNet, evaluates on the
test split and writes `eval/test_metrics.json` and sample PNGs. `:tiny` shrinks it to a seconds-long smoke run:

    python run.py --config=configs/synth_quick.py:tiny --workdir=/tmp/texrnet_tiny
"""

from configs import base


def get_config(arg=None):
    args = base.parse_arg(arg, tiny=False)
    c = base.get_base_config()
    c.data.name = "synth_text/quick"
    c.data.scale_range = (129, 193)
    c.data.crop_size = 129
    c.model.backbone = "hrnet_small"
    c.optim.base_lr = 0.05
    c.optim.warmup_steps = 50
    c.optim.decay_steps = 1150
    c.train.num_steps = 1200
    c.train.global_batch_size = 16
    c.train.log_every_steps = 50
    c.ckpt.every_steps = 200
    c.eval.scales = (1.0, 1.5)
    c.eval.base_size = 128
    c.eval.batch_size = 20
    if args.tiny:
        c.data.name = "synth_text/tiny"
        c.model.backbone = "hrnet_tiny"
        c.data.scale_range = (65, 97)
        c.data.crop_size = 65
        c.optim.warmup_steps = 2
        c.optim.decay_steps = 8
        c.train.num_steps = 10
        c.train.global_batch_size = 4
        c.train.log_every_steps = 1
        c.ckpt.every_steps = 5
        c.eval.scales = (1.0,)
        c.eval.base_size = 64
        c.eval.max_images = 8
        c.eval.batch_size = 4
        c.eval.num_samples = 2
    return c
