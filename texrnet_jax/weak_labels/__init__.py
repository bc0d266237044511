"""Weak supervision: box annotations -> 0/1/255 pixel labels with a box-level foreground network (BF-Net).

The method of COCO_TS, MLT_S, IST_S and ISIC_WSM (Bonechi et al.): a network trained on crops around the word
boxes of a set with pixel masks (`crops`, `configs/bfnet_synth.py`) segments the inside of every box of a set
that has only boxes (`compose`), and the result becomes training labels. Modules:

  records     the `Record` every annotation format is read into.
  formats     readers of COCO-Text v2, ICDAR15/MLT gt_*.txt and a plain boxes JSON.
  geometry    polygons to pixels, box crops and their inverse (shared by training and labelling).
  crops       BF-Net training examples: jittered word-box crops.
  compose     the 0/1/255 rules: `labels_from_boxes`.
  layouts     where label PNGs go so that the coco_ts / mlt_s / ist_s / isic_wsm builders read them.
  label_flow  `run.py --mode=label`: batching over images and devices, resumable writes, quality.json.
"""

from texrnet_jax.weak_labels.compose import Rules, labels_from_boxes, whole_box_labels

__all__ = ["Rules", "labels_from_boxes", "whole_box_labels"]
