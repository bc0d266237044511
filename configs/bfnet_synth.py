"""BF-Net: a box-level text/background network trained on word-box crops of the embedded synthetic set.

    python run.py --config=configs/bfnet_synth.py --workdir=/tmp/bfnet
    python run.py --config=configs/bfnet_synth.py --workdir=/tmp/bfnet --mode=label --config.label.format=icdar \
        --config.label.annotations=<gt folder> --config.label.images=<image folder> --config.label.output=<out>

The main job's model and schedule (`configs/synth_quick.py`) cut to 1500 steps, and each example is one crop: a
word box of `synth_text/quick` with jittered edges and half its shorter side of context on every side, resized to
129x129 (`texrnet_jax/weak_labels/crops.py`). Labelling evaluates every crop at 1x, 1.5x and 2x, mirrored and not. After
training, the test split is labelled as a box-only set (its word boxes grown by 2 px, as COCO-Text annotators draw
them) and the labels are scored against its masks, and so is `synth_text/photo_check` (held-out photos and fonts):
fgIoU, F and the fraction of box pixels left uncertain (255), beside the whole-box baseline, in
`eval/labels_*/quality.json`. `:tiny` is a seconds-long smoke run.
"""

from configs import base, synth_quick


def get_config(arg=None):
    args = base.parse_arg(arg, tiny=False)
    c = synth_quick.get_config("tiny" if args.tiny else None)
    c.data.sampler = "box_crops"
    c.eval.base_size = 0  # crops are evaluated at their own size times each scale
    c.label.batch_size = 32
    if args.tiny:
        c.eval.max_images = 6
        c.label.batch_size = 8
    else:
        c.data.crop_size = 129  # 32k + 1, the network's natural input size
        # 1500 steps, not the main job's 2000: 6.9-8.1 min of training on the slower 2-core box with run.py's default
        # 2 CPU devices (--cpu_devices, 12-07 and 12-08; 9.3-11.1 min on one device), and the labels meet the issue's
        # bar (3.0.0 test 0.858-0.878 at 17.9-19.1% of box pixels 255, four runs, seeds 2 and 3). 1250 steps missed it
        # (0.849).
        c.train.num_steps = 1500
        c.optim.decay_steps = 1450
        # The 2x pass sharpens the strokes of large words (a 129 px crop has 33x33 logit cells): on 500 training
        # images fgIoU 0.856 -> 0.873 at the same thresholds (255 share 21.0% -> 20.0%); labelling takes 2x longer.
        c.eval.scales = (1.0, 1.5, 2.0)
        c.eval.flip = True
    # Colour step on: uncertain pixels that clearly have the colour of the confident text or background within
    # 3 px take that side (docs/weak_supervision.md has the figures).
    c.label.colour_radius = 3
    return c
