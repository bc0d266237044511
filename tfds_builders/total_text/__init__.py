"""Total-Text (with pixel-level ground truth) TFDS builder from manual downloads; see README.md."""
