"""texrnet-jax: TexRNet ("Rethinking Text Segmentation", CVPR 2021) in JAX and Flax NNX."""

__version__ = "0.1.0"
