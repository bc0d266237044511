"""TFDS builders of texrnet-jax; importing this package registers every builder with TFDS.

Only the builder modules are imported here (each imports `tensorflow_datasets`, never TensorFlow), so that
`tfds.builder('synth_text')` resolves after `import tfds_builders`.
"""

from tfds_builders.synth_text import synth_text_dataset_builder  # noqa: F401  (registers 'synth_text')
