"""TexRNet: a backbone plus the key-feature-pooling / attention refinement head of the reference.

The head (`semrfnhead`) computes, at the backbone's stride 4:

1. semantic logits `x0 = conv_sem(feat)` (1x1, no bias) and `xsem = x0 + bias_sem`;
2. key attention `A` from `x0` biased by the cosine similarity of the class maps `softmax(xsem)`;
3. class keys `K_k` = A_k-weighted mean features, and query attention `Q = softmax_k(K_k . feat)`;
4. refined logits from conv5x5-BN-ReLU x2 + 1x1 over `[image resized to stride 4, feat, Q]`.

Every output stays at stride 4; callers resize probabilities back (bilinear, align_corners=True).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from texrnet_jax.resample import resize_bilinear
from texrnet_jax.models.layers import BatchNorm, Conv2d

_EPS = 1e-12


class ConvRef(nnx.Module):
    """The refinement convs: conv5x5 (no bias)-BN-ReLU, conv5x5 (with bias)-BN-ReLU."""

    def __init__(self, in_channels: int, channels: int, *, dtype, rngs: nnx.Rngs):
        self.conv0 = Conv2d(in_channels, channels, 5, dtype=dtype, rngs=rngs)
        self.bn0 = BatchNorm(channels, dtype=dtype)
        self.conv1 = Conv2d(channels, channels, 5, use_bias=True, dtype=dtype, rngs=rngs)
        self.bn1 = BatchNorm(channels, dtype=dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.bn0(self.conv0(x)))
        return jax.nn.relu(self.bn1(self.conv1(x)))


class RefinementHead(nnx.Module):
    """The reference `semantic_refinement_head` with the 'cossim' bias attention.

    Attributes:
        bias_sem: `[num_classes]` bias added to the semantic logits (a bare parameter, zero-initialised).
        conv_sem: 1x1 semantic classifier, no bias.
        conv_ref: the two 5x5 refinement convs over `[image, feat, attention]`.
        conv_ref_last: 1x1 classifier of the refined logits, with bias.
    """

    def __init__(self, feat_channels: int, *, num_classes: int = 2, channels: int = 64, dtype=jnp.float32,
                 rngs: nnx.Rngs):
        self.dtype = dtype
        self.bias_sem = nnx.Param(jnp.zeros((num_classes,), jnp.float32))
        self.conv_sem = Conv2d(feat_channels, num_classes, 1, dtype=dtype, rngs=rngs)
        self.conv_ref = ConvRef(3 + feat_channels + num_classes, channels, dtype=dtype, rngs=rngs)
        self.conv_ref_last = Conv2d(channels, num_classes, 1, use_bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, feat: jax.Array, image: jax.Array) -> dict[str, jax.Array]:
        """Runs the head.

        Args:
            feat: backbone feature `[N, h, w, C]`.
            image: the normalized network input `[N, H, W, 3]`.

        Returns:
            `logit_sem`, `logit_rfn`, `predsem`, `predrfn`, `att_key`, `att`, each `[N, h, w, K]` float32.
        """
        n, h, w, c = feat.shape
        img_s = resize_bilinear(image.astype(feat.dtype), (h, w), align_corners=True)
        x0 = self.conv_sem(feat).astype(jnp.float32)
        xsem = x0 + self.bias_sem.value
        att_key = self._key_attention(x0, xsem)
        # Class keys: attention-weighted mean features, [N, K, C].
        a = att_key.reshape(n, h * w, -1)
        f = feat.astype(jnp.float32).reshape(n, h * w, c)
        keys = jnp.einsum("npk,npc->nkc", a, f, precision=jax.lax.Precision.HIGHEST)
        keys = keys / (jnp.sum(a, axis=1)[..., None] + _EPS)
        # Query attention: softmax over classes (not pixels) of key . feature.
        att = jax.nn.softmax(jnp.einsum("nkc,npc->npk", keys, f, precision=jax.lax.Precision.HIGHEST), axis=-1)
        att = att.reshape(n, h, w, -1)
        z = jnp.concatenate([img_s, feat, att.astype(feat.dtype)], axis=-1)
        xrfn = self.conv_ref_last(self.conv_ref(z)).astype(jnp.float32)
        return {
            "logit_sem": xsem,
            "logit_rfn": xrfn,
            "predsem": jax.nn.softmax(xsem, axis=-1),
            "predrfn": jax.nn.softmax(xrfn, axis=-1),
            "att_key": att_key,
            "att": att,
        }

    @staticmethod
    def _key_attention(x0: jax.Array, xsem: jax.Array) -> jax.Array:
        """`A_k = E_k / (sum_j B_kj E_j + eps)` with `B = exp(cossim of softmax(xsem) class maps, zero diagonal)`."""
        n, h, w, k = x0.shape
        p = jax.nn.softmax(xsem, axis=-1).reshape(n, h * w, k)
        p = p / (jnp.sqrt(jnp.sum(p * p, axis=1, keepdims=True)) + _EPS)
        sim = jnp.einsum("npk,npj->nkj", p, p, precision=jax.lax.Precision.HIGHEST)
        sim = sim * (1.0 - jnp.eye(k, dtype=sim.dtype))
        b = jnp.exp(sim)
        # The max only stabilises exp; the reference detaches it.
        e = jnp.exp(x0 - jax.lax.stop_gradient(jnp.max(x0, axis=-1, keepdims=True)))
        denom = jnp.einsum("nkj,nhwj->nhwk", b, e, precision=jax.lax.Precision.HIGHEST)
        return e / (denom + _EPS)


class TexRNet(nnx.Module):
    """Backbone + refinement head. The backbone attribute is named like the reference (`hrnet`, `deeplab`).

    Attributes:
        backbone_name: attribute name of the backbone.
        semrfnhead: the `RefinementHead`.
    """

    def __init__(self, backbone: nnx.Module, backbone_name: str, feat_channels: int, *, num_classes: int = 2,
                 rfn_channels: int = 64, dtype=jnp.float32, rngs: nnx.Rngs):
        self.backbone_name = backbone_name
        setattr(self, backbone_name, backbone)
        self.semrfnhead = RefinementHead(feat_channels, num_classes=num_classes, channels=rfn_channels,
                                         dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        """Runs the model on normalized images `x` `[N, H, W, 3]`; returns the head outputs plus `feat`."""
        feat = getattr(self, self.backbone_name)(x)["s4"]
        out = self.semrfnhead(feat, x)
        out["feat"] = feat.astype(jnp.float32)
        return out


class Baseline(nnx.Module):
    """The paper's baseline without refinement: backbone + 1x1 classifier conv (with bias) at stride 4.

    Attributes:
        backbone_name: attribute name of the backbone (`hrnet` or `deeplab`, as in `TexRNet`).
        classifier: 1x1 conv `C -> num_classes` with bias.
    """

    def __init__(self, backbone: nnx.Module, backbone_name: str, feat_channels: int, *, num_classes: int = 2,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        self.backbone_name = backbone_name
        setattr(self, backbone_name, backbone)
        self.classifier = Conv2d(feat_channels, num_classes, 1, use_bias=True, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        """Runs the model on normalized images `x` `[N, H, W, 3]`.

        Returns:
            `logit_sem` and `predsem` `[N, h, w, K]` and `feat` `[N, h, w, C]`, float32, at stride 4.
        """
        feat = getattr(self, self.backbone_name)(x)["s4"]
        logit = self.classifier(feat).astype(jnp.float32)
        return {"logit_sem": logit, "predsem": jax.nn.softmax(logit, axis=-1), "feat": feat.astype(jnp.float32)}
