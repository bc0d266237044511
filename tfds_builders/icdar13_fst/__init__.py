"""ICDAR 2013 Focused Scene Text (text segmentation task) TFDS builder; see README.md."""
