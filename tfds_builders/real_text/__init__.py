"""Photographs of real text with checked truth (`real_text`), a check set; see `real_text_dataset_builder.py`."""
