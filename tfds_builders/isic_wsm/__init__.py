"""ISIC_WSM (weakly supervised skin-lesion masks) TFDS builder from manual downloads; see README.md."""
