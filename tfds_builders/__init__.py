"""TFDS builders of texrnet-jax; importing this package registers every builder with TFDS.

Only the builder modules are imported here (each imports `tensorflow_datasets`, never TensorFlow), so that
`tfds.builder('synth_text')`, `tfds.builder('textseg')` etc. resolve after `import tfds_builders`.
"""

from tfds_builders.coco_ts import coco_ts_dataset_builder  # noqa: F401  (registers 'coco_ts')
from tfds_builders.icdar13_fst import icdar13_fst_dataset_builder  # noqa: F401  (registers 'icdar13_fst')
from tfds_builders.isic_wsm import isic_wsm_dataset_builder  # noqa: F401  (registers 'isic_wsm')
from tfds_builders.ist_s import ist_s_dataset_builder  # noqa: F401  (registers 'ist_s')
from tfds_builders.mlt_s import mlt_s_dataset_builder  # noqa: F401  (registers 'mlt_s')
from tfds_builders.real_text import real_text_dataset_builder  # noqa: F401  (registers 'real_text')
from tfds_builders.synth_text import synth_text_dataset_builder  # noqa: F401  (registers 'synth_text')
from tfds_builders.textseg import textseg_dataset_builder  # noqa: F401  (registers 'textseg')
from tfds_builders.total_text import total_text_dataset_builder  # noqa: F401  (registers 'total_text')
