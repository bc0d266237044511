"""A PyTorch port of the reference TexRNet models, used only to time the reference beside the JAX models.

Written from a description of the reference (models, losses, training, state-dict names, CPU timing setup), not
from the original SHI-Labs code, and checked against the reference parity fixtures by
`bench/torch_twin/check_torch_parity.py` (eval outputs, features, logits, training losses, gradients and BatchNorm
running statistics). It needs only torch, numpy and the standard library, and runs in its own virtual
environment: the project's environment stays torch-free.

What it reproduces:

* `build(arch)` for `hrnet_w18`, `hrnet_w32`, `hrnet_w48`, `deeplab_r50`, `deeplab_r101`: an NCHW `TexRNet`
  whose `state_dict()` names and shapes are the reference's (`keys_<arch>.txt`), so a reference state dict
  loads with `strict=True`. Every BN is `nn.BatchNorm2d` (eps 1e-5, momentum 0.1); every conv has explicit
  symmetric padding `dilation * (k - 1) // 2`; every bilinear resize uses align_corners=True.
* `TexRNet.forward(x)` returns what the reference returns in eval mode: softmax probabilities `predsem`,
  `predrfn` and the attention maps `att_key`, `att`, all at stride 4. The reference has no trimap output; the
  trimap exists only as a loss target. `forward(x, label)` returns the reference's training losses `losssem`,
  `lossrfn` and `lossrfntri`: the label is downsampled to stride 4 with the reference's nearest rule,
  the ignore label is 999, and the trimap term keeps only the 4-neighbour label-change band.
* `make_optimizer(model, arch)`: SGD with momentum 0.9 and weight decay 5e-4 on every parameter, with the
  reference LR groups (backbone x1; ASPP, decoder and refinement head x10) at the base LR (the schedule does not
  change a step's cost).
* `train_step(model, opt, x, label)`: zero_grad -> forward -> `1 * sem + 0.5 * rfn + 0.5 * trimap` -> backward
  -> step, the step the reference's CPU timings measure. At batch 1 the DeepLab ASPP image-pooling BN sees one
  value per channel, which raises in training mode (in the reference too); as in the reference's timing, that one
  BN then runs in eval mode (`pool_bn_eval`).

Run as a script it times one case, e.g. (set the thread count to the machine's cores, as the reference's CPU
timings do)::

    /work/torchvenv/bin/python bench/torch_twin/torch_texrnet.py --arch=hrnet_w48 --mode=train --size=512 --threads=2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IGNORE_LABEL = 999
NUM_CLASSES = 2
LOSS_WEIGHTS = {"losssem": 1.0, "lossrfn": 0.5, "lossrfntri": 0.5}
BN_MOMENTUM = 0.1  # PyTorch convention: running = 0.9 * running + 0.1 * batch statistic
_EPS = 1e-12  # the refinement head's epsilon

HRNET_WIDTHS = {"hrnet_w18": (18, 36, 72, 144), "hrnet_w32": (32, 64, 128, 256), "hrnet_w48": (48, 96, 192, 384)}
RESNET_BLOCKS = {"deeplab_r50": (3, 4, 6, 3), "deeplab_r101": (3, 4, 23, 3)}
ARCHS = tuple(HRNET_WIDTHS) + tuple(RESNET_BLOCKS)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------------------


def conv(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, bias: bool = False) -> nn.Conv2d:
    """A k x k conv with the reference's explicit symmetric padding `dilation * (k - 1) // 2`."""
    return nn.Conv2d(cin, cout, k, stride=stride, padding=dilation * (k - 1) // 2, dilation=dilation, bias=bias)


def bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=BN_MOMENTUM)


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, relu: bool = True) -> nn.Sequential:
    """`Sequential(conv, BN[, ReLU])`: state names `.0.*` (conv) and `.1.*` (BN), as in the reference."""
    layers = [conv(cin, cout, k, stride, dilation), bn(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def resize_bilinear(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize with align_corners=True, the reference's convention for every bilinear resize."""
    return F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=True)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU, conv3x3-BN, add the input, ReLU (HRNet branches; never a downsample there)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.bn1 = conv(c, c, 3), bn(c)
        self.conv2, self.bn2 = conv(c, c, 3), bn(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + x)


class Bottleneck(nn.Module):
    """ResNet "v1.5" bottleneck: 1x1, 3x3 (stride, dilation), 1x1 (x4 channels), BN after each, add, ReLU."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1, self.bn1 = conv(cin, planes, 1), bn(planes)
        self.conv2, self.bn2 = conv(planes, planes, 3, stride, dilation), bn(planes)
        self.conv3, self.bn3 = conv(planes, cout, 1), bn(cout)
        # A 1x1 conv + BN projection whenever the shape changes (layer4 block 0 has a stride-1 one at OS16).
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride), bn(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(y + identity)


# ----------------------------------------------------------------------------------------------------------------
# HRNetV2 (the reference's `HRNet_Base`)
# ----------------------------------------------------------------------------------------------------------------


class HighResolutionModule(nn.Module):
    """Parallel branches of 4 BasicBlocks, then all-to-all fusion (every module outputs every branch)."""

    def __init__(self, widths, num_blocks: int = 4):
        super().__init__()
        n = len(widths)
        self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(w) for _ in range(num_blocks)]) for w in widths)
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:  # lower resolution: 1x1 conv + BN, bilinearly upsampled in forward
                    row.append(conv_bn(widths[j], widths[i], 1, relu=False))
                elif j == i:
                    row.append(None)
                else:  # higher resolution: i - j stride-2 3x3 convs; ReLU after all but the last
                    chain = [conv_bn(widths[j], widths[j], 3, stride=2) for _ in range(i - j - 1)]
                    chain.append(conv_bn(widths[j], widths[i], 3, stride=2, relu=False))
                    row.append(nn.Sequential(*chain))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)

    def forward(self, xs):
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            size = xs[i].shape[2:]
            y = None
            for j, layer in enumerate(row):  # summed in ascending j
                if j == i:
                    t = xs[j]
                elif j > i:
                    t = resize_bilinear(layer(xs[j]), size)
                else:
                    t = layer(xs[j])
                y = t if y is None else y + t
            out.append(F.relu(y))
        return out


def _transition(prev, cur) -> nn.ModuleList:
    """Stage transition: existing branches get a conv3x3-BN-ReLU if their width changes (else None); each new
    branch is a chain of stride-2 conv3x3-BN-ReLU from the last previous branch (nested one level deeper)."""
    layers = []
    for i, c in enumerate(cur):
        if i < len(prev):
            layers.append(conv_bn(prev[i], c, 3) if c != prev[i] else None)
        else:
            chain = []
            for k in range(i + 1 - len(prev)):
                out = c if k == i - len(prev) else prev[-1]
                chain.append(conv_bn(prev[-1], out, 3, stride=2))
            layers.append(nn.Sequential(*chain))
    return nn.ModuleList(layers)


class HRNet(nn.Module):
    """HRNetV2 plus the reference's `last_layer` (1x1 conv with bias, BN, ReLU); returns the stride-4 feature."""

    def __init__(self, widths, num_modules=(1, 4, 3), num_blocks: int = 4):
        super().__init__()
        self.conv1, self.bn1 = conv(3, 64, 3, stride=2), bn(64)
        self.conv2, self.bn2 = conv(64, 64, 3, stride=2), bn(64)
        self.layer1 = nn.Sequential(*[Bottleneck(64 if b == 0 else 256, 64) for b in range(4)])
        w = tuple(widths)
        self.transition1 = _transition((256,), w[:2])
        self.stage2 = nn.Sequential(*[HighResolutionModule(w[:2], num_blocks) for _ in range(num_modules[0])])
        self.transition2 = _transition(w[:2], w[:3])
        self.stage3 = nn.Sequential(*[HighResolutionModule(w[:3], num_blocks) for _ in range(num_modules[1])])
        self.transition3 = _transition(w[:3], w)
        self.stage4 = nn.Sequential(*[HighResolutionModule(w, num_blocks) for _ in range(num_modules[2])])
        c = sum(w)
        self.out_channels = c
        self.last_layer = nn.Sequential(conv(c, c, 1, bias=True), bn(c), nn.ReLU(inplace=True))

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for transition, stage in ((self.transition1, self.stage2), (self.transition2, self.stage3),
                                  (self.transition3, self.stage4)):
            # Existing branches pass through (or their own transition); new ones grow from the last branch.
            xs = [xs[i] if t is None else (t(xs[i]) if i < len(xs) else t(xs[-1])) for i, t in enumerate(transition)]
            xs = stage(xs)
        size = xs[0].shape[2:]
        feat = torch.cat([xs[0]] + [resize_bilinear(t, size) for t in xs[1:]], dim=1)
        return self.last_layer(feat)


# ----------------------------------------------------------------------------------------------------------------
# DeepLabV3+ on a dilated ResNet, output stride 16
# ----------------------------------------------------------------------------------------------------------------


class DilatedResNet(nn.Module):
    """Strides (1, 2, 2, 1), dilations (1, 1, 1, 2), multi-grid (1, 2, 4) in layer4 (dilations 2, 4, 8).

    Returns (layer1, layer4): the stride-4 low-level feature (256 ch) and the stride-16 output (2048 ch).
    """

    def __init__(self, blocks):
        super().__init__()
        self.conv1, self.bn1 = conv(3, 64, 7, stride=2), bn(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)  # -inf padding, floor mode
        cin = 64
        for li, (n, planes, stride, dil) in enumerate(
                zip(blocks, (64, 128, 256, 512), (1, 2, 2, 1), (1, 1, 1, 2), strict=True)):
            layer = []
            for b in range(n):
                d = dil * (1, 2, 4)[b % 3] if li == 3 else dil
                layer.append(Bottleneck(cin, planes, stride if b == 0 else 1, d))
                cin = planes * Bottleneck.expansion
            setattr(self, f"layer{li + 1}", nn.Sequential(*layer))

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        c1 = self.layer1(x)
        return c1, self.layer4(self.layer3(self.layer2(c1)))


class ASPP(nn.Module):
    """1x1 branch, 3x3 branches at rates 6/12/18, image pooling; concat -> 1x1 conv-BN-ReLU -> Dropout(0.5)."""

    def __init__(self, cin: int = 2048, c: int = 256, rates=(6, 12, 18)):
        super().__init__()
        self.conv1 = conv_bn(cin, c, 1)
        self.conv2 = conv_bn(cin, c, 3, dilation=rates[0])
        self.conv3 = conv_bn(cin, c, 3, dilation=rates[1])
        self.conv4 = conv_bn(cin, c, 3, dilation=rates[2])
        # Index 0 is the pooling (no state), so the conv and BN are `conv5.1` and `conv5.2` as in the reference.
        self.conv5 = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(cin, c, 1), bn(c), nn.ReLU(inplace=True))
        self.bottleneck = conv_bn(5 * c, c, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x):
        # The nearest resize of the 1x1 pooled map back to h x w is a broadcast.
        pooled = F.interpolate(self.conv5(x), size=x.shape[2:], mode="nearest")
        y = torch.cat([self.conv1(x), self.conv2(x), self.conv3(x), self.conv4(x), pooled], dim=1)
        return self.dropout(self.bottleneck(y))


class Decoder(nn.Module):
    """low = 1x1 conv-BN-ReLU(layer1 -> 48); cat[upsampled ASPP, low] -> 2 x (3x3 conv-BN-ReLU, dropout)."""

    def __init__(self, low_in: int = 256, c: int = 256, low_c: int = 48):
        super().__init__()
        self.conv1, self.bn1 = conv(low_in, low_c, 1), bn(low_c)
        self.conv2, self.bn2 = conv(c + low_c, c, 3), bn(c)
        self.conv3, self.bn3 = conv(c, c, 3), bn(c)
        self.dropout2, self.dropout3 = nn.Dropout(0.5), nn.Dropout(0.1)

    def forward(self, x, low):
        low = F.relu(self.bn1(self.conv1(low)))
        x = resize_bilinear(x, low.shape[2:])
        y = torch.cat([x, low], dim=1)
        y = self.dropout2(F.relu(self.bn2(self.conv2(y))))
        return self.dropout3(F.relu(self.bn3(self.conv3(y))))


class DeepLabV3Plus(nn.Module):
    """Dilated ResNet + ASPP + decoder; returns the 256-channel stride-4 decoder feature."""

    def __init__(self, blocks):
        super().__init__()
        self.resnet = DilatedResNet(blocks)
        self.aspp = ASPP()
        self.decoder = Decoder()
        self.out_channels = 256

    def forward(self, x):
        low, out = self.resnet(x)
        return self.decoder(self.aspp(out), low)


# ----------------------------------------------------------------------------------------------------------------
# Refinement head (`semantic_refinement_head`) and the full model
# ----------------------------------------------------------------------------------------------------------------


class ConvRef(nn.Module):
    """conv5x5 (no bias)-BN-ReLU, conv5x5 (with bias)-BN-ReLU."""

    def __init__(self, cin: int, c: int = 64):
        super().__init__()
        self.conv0, self.bn0 = conv(cin, c, 5), bn(c)
        self.conv1, self.bn1 = conv(c, c, 5, bias=True), bn(c)

    def forward(self, x):
        x = F.relu(self.bn0(self.conv0(x)))
        return F.relu(self.bn1(self.conv1(x)))


class RefinementHead(nn.Module):
    """The reference `semantic_refinement_head` with the 'cossim' bias attention (refinement always on)."""

    def __init__(self, c: int, k: int = NUM_CLASSES, rfn_c: int = 64):
        super().__init__()
        self.bias_sem = nn.Parameter(torch.zeros(k))
        self.conv_sem = conv(c, k, 1)
        self.conv_ref = ConvRef(3 + c + k, rfn_c)
        self.conv_ref_last = conv(rfn_c, k, 1, bias=True)

    def forward(self, x, img) -> dict[str, torch.Tensor]:
        """Head on feature `x` (N, C, h, w) and the normalized input `img` (N, 3, H, W); logits and attention."""
        n, c, h, w = x.shape
        img_s = resize_bilinear(img, (h, w))
        x0 = self.conv_sem(x)  # bias-free semantic logits
        xsem = x0 + self.bias_sem.view(1, -1, 1, 1)
        k = x0.shape[1]
        # Cosine similarity between the class maps of softmax(xsem) (bias included), diagonal zeroed.
        p = torch.softmax(xsem, dim=1).view(n, k, h * w)
        p = p / (p.norm(dim=2, keepdim=True) + _EPS)
        sim = torch.bmm(p, p.transpose(1, 2)) * (1.0 - torch.eye(k, dtype=p.dtype, device=p.device))
        # Key attention A_k = E_k / (sum_j exp(S_kj) E_j + eps) on the bias-free x0 (the max only stabilises).
        e = torch.exp(x0 - x0.max(dim=1, keepdim=True)[0].detach()).view(n, k, h * w)
        att_key = e / (torch.bmm(torch.exp(sim), e) + _EPS)
        # Class keys: attention-weighted mean features (N, K, C).
        f = x.reshape(n, c, h * w)
        keys = torch.bmm(att_key, f.transpose(1, 2)) / (att_key.sum(dim=2, keepdim=True) + _EPS)
        # Query attention: softmax over classes of key . feature.
        att = torch.softmax(torch.bmm(keys, f), dim=1).view(n, k, h, w)
        z = torch.cat([img_s, x, att], dim=1)  # [image, feature, attention]
        xrfn = self.conv_ref_last(self.conv_ref(z))
        return {"logit_sem": xsem, "logit_rfn": xrfn, "att_key": att_key.view(n, k, h, w), "att": att}


class TexRNet(nn.Module):
    """Backbone (attribute `hrnet` or `deeplab`, as in the reference state dict) + `semrfnhead`."""

    def __init__(self, backbone_name: str, backbone: nn.Module):
        super().__init__()
        self.backbone_name = backbone_name
        setattr(self, backbone_name, backbone)
        self.semrfnhead = RefinementHead(backbone.out_channels)

    def run(self, x) -> dict[str, torch.Tensor]:
        """Backbone and head: `feat`, `logit_sem`, `logit_rfn`, `att_key`, `att`, all at stride 4."""
        feat = getattr(self, self.backbone_name)(x)
        out = self.semrfnhead(feat, x)
        out["feat"] = feat
        return out

    def forward(self, x, label=None, return_logits: bool = False) -> dict[str, torch.Tensor]:
        """Without a label: the reference's eval outputs `att_key`, `att`, `predsem`, `predrfn` (probabilities).

        With a label (N, H, W) at input size: the reference's training losses `losssem`, `lossrfn`, `lossrfntri`
        (plus the logits if `return_logits`, for parity checks).
        """
        out = self.run(x)
        if label is None:
            return {"att_key": out["att_key"], "att": out["att"], "predsem": torch.softmax(out["logit_sem"], dim=1),
                    "predrfn": torch.softmax(out["logit_rfn"], dim=1)}
        losses = texrnet_losses(out["logit_sem"], out["logit_rfn"], label)
        if return_logits:
            losses.update(logit_sem=out["logit_sem"], logit_rfn=out["logit_rfn"])
        return losses


def build(arch: str) -> TexRNet:
    """The reference TexRNet for `arch` (one of `ARCHS`) with PyTorch's default initialisation."""
    if arch in HRNET_WIDTHS:
        return TexRNet("hrnet", HRNet(HRNET_WIDTHS[arch]))
    if arch in RESNET_BLOCKS:
        return TexRNet("deeplab", DeepLabV3Plus(RESNET_BLOCKS[arch]))
    raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")


def load_reference_state_dict(model: nn.Module, arrays) -> None:
    """Loads a reference state dict (name -> array) strictly; the fixtures' `state_dict/<name>` keys work too."""
    prefix = "state_dict/"
    if any(k.startswith(prefix) for k in arrays):
        arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    sd = {}
    for name, v in arrays.items():
        t = torch.from_numpy(np.array(v))
        # The fixtures store num_batches_tracked as float32; the buffer is int64.
        sd[name] = t.long() if name.endswith("num_batches_tracked") else t
    model.load_state_dict(sd, strict=True)


def set_dropout(model: nn.Module, enabled: bool) -> None:
    """Switches the Dropout layers (DeepLab only) on or off independently of the model's train/eval mode."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train(enabled)


def pool_bn(model: TexRNet) -> nn.BatchNorm2d | None:
    """The DeepLab ASPP image-pooling BN (`deeplab.aspp.conv5.2`), or None for HRNet."""
    return model.deeplab.aspp.conv5[2] if model.backbone_name == "deeplab" else None


# ----------------------------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------------------------


def nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source indices of the reference's nearest label resize along one axis (align_corners=True grid).

    Positions `linspace(0, in - 1, out)` in float64, nudged by one float64 epsilon towards the centre (up for the
    first `out // 2` outputs, down for the rest) before `rint`, so exact halves round towards the centre.
    """
    p = np.linspace(0.0, in_size - 1, num=out_size, dtype=np.float64)
    eps = np.finfo(np.float64).eps
    half = out_size // 2
    return np.rint(np.concatenate([p[:half] * (1 + eps), p[half:] * (1 - eps)])).astype(np.int64)


def resize_labels(label: torch.Tensor, out_hw) -> torch.Tensor:
    """(N, H, W) integer labels resized to `out_hw` with `nearest_indices` per axis."""
    h, w = label.shape[-2:]
    if h != out_hw[0]:
        label = label.index_select(-2, torch.from_numpy(nearest_indices(h, int(out_hw[0]))).to(label.device))
    if w != out_hw[1]:
        label = label.index_select(-1, torch.from_numpy(nearest_indices(w, int(out_hw[1]))).to(label.device))
    return label


def trimap_target(label_small: torch.Tensor, ignore: int = IGNORE_LABEL) -> torch.Tensor:
    """The 4-neighbour label-change band of (N, h, w) labels; everything else becomes `ignore`.

    A pixel is kept if some 4-neighbour has a different label, unless it or any 4-neighbour is `ignore` or it lies
    on the image border (its missing neighbour counts as ignore).
    """
    lab = label_small
    ign = lab == ignore
    lab_p = F.pad(lab, (1, 1, 1, 1), value=0)
    ign_p = F.pad(ign, (1, 1, 1, 1), value=True)
    h, w = lab.shape[-2:]
    differs = torch.zeros_like(ign)
    near_ignore = ign.clone()
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        differs |= lab_p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] != lab
        near_ignore |= ign_p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return torch.where(differs & ~near_ignore, lab, torch.full_like(lab, ignore))


def texrnet_losses(logit_sem, logit_rfn, label, ignore: int = IGNORE_LABEL) -> dict[str, torch.Tensor]:
    """`losssem`, `lossrfn`, `lossrfntri`: CE means over the non-ignored stride-4 pixels (NaN if none, as in
    the reference); the label (N, H, W) is downsampled to the logits, which are never upsampled."""
    small = resize_labels(label.long(), logit_sem.shape[2:])
    return {
        "losssem": F.cross_entropy(logit_sem, small, ignore_index=ignore),
        "lossrfn": F.cross_entropy(logit_rfn, small, ignore_index=ignore),
        "lossrfntri": F.cross_entropy(logit_rfn, trimap_target(small, ignore), ignore_index=ignore),
    }


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """`1 * losssem + 0.5 * lossrfn + 0.5 * lossrfntri`."""
    return sum(LOSS_WEIGHTS[k] * losses[k] for k in LOSS_WEIGHTS)


# ----------------------------------------------------------------------------------------------------------------
# Optimizer and training step
# ----------------------------------------------------------------------------------------------------------------

BASE_LR = 0.01


def lr_groups(arch: str) -> tuple[tuple[str, float], ...]:
    """(state-dict name prefix, LR multiplier) of the reference's LR groups."""
    if arch.startswith("hrnet"):
        return (("hrnet.", 1.0), ("semrfnhead.", 10.0))
    return (("deeplab.resnet.", 1.0), ("deeplab.aspp.", 10.0), ("deeplab.decoder.", 10.0), ("semrfnhead.", 10.0))


def make_optimizer(model: nn.Module, arch: str, base_lr: float = BASE_LR) -> torch.optim.SGD:
    """SGD (momentum 0.9, dampening 0, no Nesterov, weight decay 5e-4 on all parameters incl. BN and biases)
    with one parameter group per LR group; each group's `lr` is `base_lr * mult`."""
    groups = []
    named = dict(model.named_parameters())
    taken = set()
    for prefix, mult in lr_groups(arch):
        params = [p for n, p in named.items() if n.startswith(prefix)]
        taken.update(n for n in named if n.startswith(prefix))
        groups.append({"params": params, "lr": base_lr * mult, "name": prefix.rstrip(".")})
    missing = sorted(set(named) - taken)
    if missing:
        raise ValueError(f"parameters outside every LR group: {missing[:5]}")
    return torch.optim.SGD(groups, lr=base_lr, momentum=0.9, weight_decay=5e-4, dampening=0, nesterov=False)


def train_step(model: TexRNet, opt: torch.optim.Optimizer, x: torch.Tensor, label: torch.Tensor,
               pool_bn_eval: bool | None = None) -> dict[str, float]:
    """One reference training step: zero_grad -> forward(x, label) -> weighted loss -> backward -> SGD step.

    The model is put in training mode (dropout on). `pool_bn_eval` keeps the DeepLab ASPP image-pooling BN in
    eval mode, which a batch of 1 needs (the reference raises otherwise); None means "DeepLab at batch 1", as in
    the reference's batch-1 timing.
    """
    model.train()
    bn_pool = pool_bn(model)
    if pool_bn_eval is None:
        pool_bn_eval = bn_pool is not None and x.shape[0] == 1
    if pool_bn_eval and bn_pool is not None:
        bn_pool.eval()
    opt.zero_grad()
    losses = model(x, label)
    total = total_loss(losses)
    total.backward()
    opt.step()
    return {"total": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}}


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------------------------------------------
# Timing CLI
# ----------------------------------------------------------------------------------------------------------------


def main(argv=None) -> dict:
    """Times one case (median of --repeats after one warm-up) and prints a JSON line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="hrnet_w48", choices=ARCHS)
    p.add_argument("--mode", default="eval", choices=("eval", "train"))
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3, help="timed calls after one warm-up call (0: warm-up only)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="'cpu', 'cuda' or 'auto' (cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json_out", default=None, help="append the JSON line to this file as well")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    model = build(args.arch).to(device)
    rng = np.random.default_rng(args.seed)
    x = torch.from_numpy(rng.normal(size=(args.batch, 3, args.size, args.size)).astype(np.float32)).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    if args.mode == "eval":
        model.eval()

        def fn():
            with torch.no_grad():
                model(x)
            sync()
    else:
        label = torch.from_numpy(rng.integers(0, 2, size=(args.batch, args.size, args.size))).to(device)
        opt = make_optimizer(model, args.arch)

        def fn():
            train_step(model, opt, x, label)  # reads the losses back, which waits for the step
            sync()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t = time.perf_counter()
    fn()  # warm-up (with --repeats=0 the only, indicative, measurement)
    warmup = time.perf_counter() - t
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    record = {"impl": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              # PyTorch's defaults, as the reference ran: cuDNN convolutions may use TF32 on Ampere and later.
              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if device.type == "cuda" else None,
              "arch": args.arch,
              "mode": args.mode, "size": args.size, "batch": args.batch, "params_M": round(num_params(model) / 1e6, 2),
              "median_s": round(statistics.median(times), 4) if times else None,
              "times_s": [round(t, 4) for t in times], "warmup_s": round(warmup, 4),
              "loadavg_1m_before": round(load, 2) if load is not None else None}
    line = json.dumps(record)
    print(line, flush=True)
    if args.json_out:
        with open(args.json_out, "a") as f:
            f.write(line + "\n")
    return record


if __name__ == "__main__":
    main()
