"""Synthetic scene-text segmentation set (`synth_text`), rendered locally with no download.

The TFDS builder lives in `synth_text_dataset_builder.py`. The numpy/PIL renderer is `render.py` (the random
scene and the public entry points), with `assets.py` (fonts, photos), `backgrounds.py` and `raster.py`
(text blocks, compositing, masks and character boxes).
"""
