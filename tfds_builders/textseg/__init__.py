"""TextSeg (CVPR 2021) TFDS builder from the manually downloaded archives; see README.md."""
