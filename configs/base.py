"""Shared config sections and the `:tiny` / `key=value` argument parser used by every experiment config.

Section vocabulary (the same names in every config): `data`, `model`, `loss`, `optim`, `train`, `eval`, `ckpt`,
`predict`. Durations are in steps. Defaults are the reference TexRNet training hyperparameters (SGD, LR
schedule, 20,500 steps, batch); experiment files override what differs.
"""

from __future__ import annotations

import ml_collections

from texrnet_jax.constants import EVAL_BASE_SIZE, IGNORE_LABEL, IMAGENET_MEAN, IMAGENET_STD, REFERENCE_SCALES


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """Parses `get_config`'s argument, e.g. `'tiny'` or `'tiny,steps=5'`, over `defaults`.

    A bare word sets a boolean flag to True; `key=value` pairs are converted to the default's type.
    """
    out = ml_collections.ConfigDict(defaults)
    for part in filter(None, (arg or "").split(",")):
        key, sep, value = part.partition("=")
        if key not in out:
            raise ValueError(f"unknown config argument {key!r}; known: {sorted(out.keys())}")
        if not sep:
            out[key] = True
        else:
            kind = type(out[key])
            out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def data_config(name: str) -> ml_collections.ConfigDict:
    """The `data` section for TFDS dataset `name` (optionally `name/builder_config`)."""
    return ml_collections.ConfigDict(dict(
        name=name,
        data_dir="",  # '' = TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR)
        # Build the dataset on first use when it needs no manual download (synth_text does not).
        auto_prepare=True,
        train_split="train",
        eval_split="test",
        ignore_label=IGNORE_LABEL,  # canonical mask encoding of every builder: 0 bg, 1 text, 255 ignore
        # Reference augmentation: short side to a random integer in [lo, hi], then a square random crop.
        scale_range=(513, 1025),
        crop_size=513,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        # Photometric augmentation before the reference one (colour, grey, inversion, blur, JPEG); not in the paper.
        photometric=False,
        # Grain worker processes: -1 sizes it to the host (0 when the model runs on the CPU and needs the cores,
        # else one per CPU core less one, at most 32); 0 decodes and augments in the main process's threads.
        num_workers=-1,
        # 'opencv': decode and resize with OpenCV (values within 0.51 of 255 levels of the exact path, labels
        # identical); 'numpy': Pillow decode and the exact align-corners taps in numpy (the earlier, slower path).
        augment_backend="opencv",
        # Batches of uint8 crops (with each crop's extent) and uint8 masks, normalised in the jitted train step: the
        # host path's values (crops rounded to uint8 first), a quarter of the bytes between processes and to the device.
        uint8_batches=True,
        max_char_boxes=64,  # character boxes per training crop for the glyph loss (extra ones are dropped)
        # Box supervision (config.loss.box_supervision): word boxes per training crop (the overflow becomes one
        # don't-care box over its union) and the margin in image pixels added to every side, as annotators draw.
        max_word_boxes=32,
        word_box_pad=2.0,
        # 'images': the reference augmentation above; 'box_crops': one crop around a word box per example (BF-Net,
        # texrnet_jax/weak_labels/crops.py), crop_size square, the box's edges jittered by up to box_jitter x its
        # shorter side, box_margin x that side of context on every side, text_free_fraction random windows; a box
        # longer than box_tile_aspect x its short side is cut into half-overlapping square tiles (0: never).
        # box_margin and box_tile_aspect also set how --mode=label cuts boxes (weak_labels/geometry.py).
        sampler="images",
        # A folder of 0/1/255 label PNGs named <example id>.png (`--mode=label` with format 'tfds') that replace
        # the training split's masks: training on weak labels. '' = the dataset's own masks.
        train_labels="",
        box_margin=0.5,
        box_jitter=0.15,
        text_free_fraction=0.1,
        box_tile_aspect=2.0,
        prefetch=2,
    ))


def model_config(backbone: str, name: str = "texrnet") -> ml_collections.ConfigDict:
    """The `model` section: registry name, backbone preset, compute dtype."""
    return ml_collections.ConfigDict(dict(name=name, backbone=backbone, num_classes=2, rfn_channels=64,
                                          dtype="float32"))


def optim_config() -> ml_collections.ConfigDict:
    """Reference SGD: momentum 0.9, wd 5e-4 on every parameter, LR 0.01, warm-up 500 then poly 0.9 over 20k."""
    return ml_collections.ConfigDict(dict(
        base_lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        warmup_steps=500,
        decay_steps=20000,
        power=0.9,
        # (regex over '/'-joined parameter paths, LR multiplier); first match wins, default 1.
        lr_mults=(("^semrfnhead/", 10.0), ("^classifier/", 10.0), ("^deeplab/(aspp|decoder)/", 10.0)),
    ))


def tiny(c: ml_collections.ConfigDict, backbone: str) -> None:
    """Shrinks config `c` in place to a seconds-long smoke run with the `backbone` preset (the `:tiny` variants)."""
    c.model.backbone = backbone
    c.data.scale_range = (65, 97)
    c.data.crop_size = 65
    # A small LR keeps the first steps smooth: runs on 1 and 4 devices then log the same losses within reduction-order
    # rounding (rtol 1e-5 over 5 steps at global batch 4 on synth_text 1.0.0; up to 6e-5 at step 5 on 2.0.0's
    # harder images). Faster dynamics amplify that rounding within a few steps.
    c.optim.base_lr = 0.001
    c.optim.warmup_steps = 2
    c.optim.decay_steps = 8
    c.train.num_steps = 10
    c.train.global_batch_size = 4
    c.train.log_every_steps = 1
    c.ckpt.every_steps = 5
    c.eval.scales = (1.0,)
    c.eval.flip = False
    c.eval.base_size = 64
    c.eval.num_samples = 2


def get_base_config() -> ml_collections.ConfigDict:
    """A complete config with the reference defaults; experiments override parts of it."""
    c = ml_collections.ConfigDict()
    c.seed = 2  # the reference's RND_SEED
    c.data = data_config("synth_text")
    c.model = model_config("hrnet_w48")
    c.loss = ml_collections.ConfigDict(dict(
        sem=1.0, rfn=0.5, rfntri=0.5,
        # Glyph-discriminator loss `losscls` (reference `--trainwithcls`): weight 0.1 on textseg and icdar13_fst,
        # 0 = off. It needs the frozen classifier (`python -m texrnet_jax.convert --model=glyph_classifier`
        # output directory, or `random` for an untrained `glyph_arch`, smoke runs only) and char boxes in the data.
        glyph=0.0,
        glyph_classifier="",
        glyph_arch="glyph_resnet50",
        # Box supervision (texrnet_jax/box_losses.py, BoxInst-style): train from word boxes, never the pixel mask.
        # Both heads get box_projection x projection dice + box_background x CE outside every box + box_pairwise x
        # colour-affinity term, weighted by sem and rfn; rfntri is off (it needs pixel labels).
        box_supervision=False,
        box_projection=1.0,  # weight of the projection (max along x / y inside each box) dice term; BoxInst: 1
        box_background=1.0,  # weight of the background CE on pixels outside every box
        box_pairwise=1.0,  # weight of the pairwise colour-affinity term; BoxInst: 1
        box_pairwise_warmup_steps=10000,  # linear ramp of the pairwise weight from 0; BoxInst: 10k iterations
        box_pairwise_dilation=2,  # neighbour spacing (logit cells) of the 8 neighbours; BoxInst: 2
        box_pairwise_theta=2.0,  # colour similarity exp(-||lab_i - lab_j|| / theta); BoxInst: 2
        box_pairwise_tau=0.3,  # pairs with similarity >= tau are supervised; BoxInst: 0.3
    ))
    c.optim = optim_config()
    c.train = ml_collections.ConfigDict(dict(
        num_steps=20500,
        global_batch_size=20,
        num_devices=0,  # 0 = every device; otherwise the first N (for comparisons and debugging)
        # Shard parameters and optimizer state over the `data` axis (FSDP; parallel.state_shardings): about 1/N of
        # their memory per device, for all-gathers of the parameters and reduce-scatters of gradients every step.
        fsdp=False,
        log_every_steps=20,
    ))
    c.eval = ml_collections.ConfigDict(dict(
        scales=REFERENCE_SCALES,
        # Scale s feeds an image of area about (int(base_size * s) + 1)^2, sides 32k+1; 0 = each image's own size.
        base_size=EVAL_BASE_SIZE,
        flip=False,
        batch_size=0,  # images per eval batch (0 = one per device); images of equal size are batched
        max_images=0,  # 0 = the whole split
        num_samples=8,  # side-by-side PNGs written to eval/<split>_samples/
        save_masks=False,  # write every predicted mask as a PNG to eval/<split>_masks/
        # A second set evaluated after the main one (same protocol, its own base size), e.g. a check of transfer
        # to real photos: results in eval/<check_set with '/' -> '_'>/<check_split>_metrics.json. '' = none.
        check_set="",
        check_split="test",
        check_base_size=-1,  # the check set's base_size; -1 = base_size
    ))
    c.ckpt = ml_collections.ConfigDict(dict(every_steps=1000, max_to_keep=3))
    c.init_from = ""  # converted checkpoint (python -m texrnet_jax.convert) to start from when not resuming
    c.predict = ml_collections.ConfigDict(dict(input="", output=""))
    c.label = label_config()
    return c


def label_config() -> ml_collections.ConfigDict:
    """The `label` section: `--mode=label`, box annotations -> 0/1/255 label PNGs with a trained BF-Net.

    The method's unknowns (Bonechi et al. do not publish them) are fields: thresholds, context margin (that one is
    `config.data.box_margin`, shared with training), overlap rules (fixed: 255 over 1 over 0).
    """
    return ml_collections.ConfigDict(dict(
        # 'coco_text' (cocotext.v2.json), 'icdar' (folder of gt_*.txt), 'boxes_json' (a JSON list), or 'tfds': the
        # word boxes of a TFDS dataset with word_boxes/word_quads features, e.g. annotations='synth_text/quick:test'
        # (its masks are then the truth of quality.json, so no `truth` folder is needed).
        format="",
        annotations="",
        images="",  # folder the annotations' image names are relative to (not used by 'tfds')
        output="",  # '' = <workdir>/labels
        # 'flat' (<output>/<image stem>.png) or the layout of a released archive: coco_ts, mlt_s, ist_s, isic_wsm.
        layout="flat",
        truth="",  # folder of true masks (same stems, 0/1/255 PNG) -> <output>/quality.json
        hi=0.5,  # BF-Net text probability >= hi inside a box -> 1
        lo=0.2,  # <= lo -> 0; between -> 255 (uncertain)
        # Colour step (texrnet_jax/weak_labels/compose.py): an uncertain pixel whose colour is clearly that of the
        # confident text, or background, within colour_radius px takes that side. 0 = off (the papers' rule).
        colour_radius=0,
        colour_margin=0.2,  # resolved where the colour projects within this of either end of the text/bg segment
        colour_min_contrast=20.0,  # RGB distance the local text and background colours need
        colour_min_pixels=12,  # confident pixels each local colour needs
        batch_size=32,  # crops per model call (rounded up to a multiple of the device count)
        # 'tfds' only: 'boxes' (axis-aligned word boxes grown by box_pad px, as COCO-Text annotators draw them) or
        # 'quads' (rectangles along the baseline, ICDAR style).
        tfds_boxes="boxes",
        box_pad=2.0,
        max_images=0,  # 0 = all
    ))


# Per-dataset settings of the paper's experiments (the reference's train/eval splits): TFDS name, splits, and
# whether the glyph loss is on (textseg and icdar13 only; they are the sets with character boxes).
DATASETS = {
    "textseg": dict(name="textseg", train_split="train+val", eval_split="test", glyph=True),
    "icdar13_fst": dict(name="icdar13_fst", train_split="train", eval_split="test", glyph=True),
    "coco_ts": dict(name="coco_ts", train_split="train", eval_split="val", glyph=False),
    "mlt_s": dict(name="mlt_s", train_split="train", eval_split="validation", glyph=False),
    "total_text": dict(name="total_text", train_split="train", eval_split="test", glyph=False),
}

# Reference global batches: 4 GPUs x 5 images (HRNet) or x 8 images (DeepLab).
BACKBONE_BATCH = {"hrnet_w48": 20, "deeplab_r101": 32}


def experiment(dataset: str, backbone: str, arg: str | None) -> ml_collections.ConfigDict:
    """A paper experiment: TexRNet on `backbone` trained on `dataset` with the reference hyperparameters.

    `arg` may be `tiny` (a seconds-long smoke variant with a tiny backbone; with the glyph loss, an untrained tiny
    classifier unless one is given), `init_from=<path>` (converted ImageNet backbone weights,
    `python -m texrnet_jax.convert --backbone_only ...`) and `glyph_classifier=<path>` (the converted
    resnet50_textcls classifier; required by the textseg and icdar13_fst experiments, which use the glyph loss).
    """
    args = parse_arg(arg, tiny=False, init_from="", glyph_classifier="")
    c = get_base_config()
    c.data = data_config(DATASETS[dataset]["name"])
    c.data.train_split = DATASETS[dataset]["train_split"]
    c.data.eval_split = DATASETS[dataset]["eval_split"]
    c.data.auto_prepare = False  # real datasets come from manual downloads: python -m tfds_builders.build
    c.model = model_config(backbone)
    c.train.global_batch_size = BACKBONE_BATCH[backbone]
    c.train.log_every_steps = 20
    c.init_from = args.init_from
    if DATASETS[dataset]["glyph"]:
        c.loss.glyph = 0.1
        c.loss.glyph_classifier = args.glyph_classifier
    if args.tiny:
        tiny(c, "hrnet_tiny" if backbone.startswith("hrnet") else "deeplab_tiny")
        c.eval.max_images = 4
        if c.loss.glyph:
            c.loss.glyph_arch = "glyph_tiny"
            c.loss.glyph_classifier = args.glyph_classifier or "random"
    return c
