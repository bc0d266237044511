"""`real_text`: photographs of real text with truth checked by eye, from pip packages; no download.

A check set, not a training set: it holds only a `test` split. Version 1.0.0 has one image, scikit-image's
`page.png` (a photographed printed page: uneven lighting, slight blur), labelled by the rule in `truth.py`.
Masks use the project's canonical encoding (0 background, 1 text, 255 ignore).

    python -m tfds_builders.build real_text --data_dir=~/tensorflow_datasets
    python run.py --config=configs/synth_quick.py --workdir=W --mode=eval --config.data.name=real_text \\
        --config.eval.base_size=0 --config.eval.check_set=
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from tfds_builders import common
from tfds_builders.real_text import truth


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for `real_text`: photographed real text with checked truth."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "scikit-image's page.png with truth from a local-contrast rule inside hand-placed boxes."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(common.image_features("png")),
            supervised_keys=("image", "mask"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # the photo ships in scikit-image
        return {"test": self._generate_examples()}

    def _generate_examples(self):
        image, mask = truth.page()
        yield "skimage_page", {"image": common.png_bytes(image), "mask": common.png_bytes(mask), "id": "skimage_page"}
