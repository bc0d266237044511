"""COCO_TS (Bonechi et al.) TFDS builder from manual downloads; see README.md."""
