"""Synthetic scene-text segmentation set (`synth_text`), rendered locally with no download.

The TFDS builder lives in `synth_text_dataset_builder.py`; the numpy/PIL renderer in `render.py`.
"""
