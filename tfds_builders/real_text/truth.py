"""The truth of `real_text`: photographed print, labelled by a local-contrast rule inside hand-placed boxes.

The one image is scikit-image's `page.png`, a photograph of a printed page (dark print, uneven lighting,
slight blur). Its labels come from one deterministic rule, checked by eye on an overlay:

- the background level of each pixel is the local maximum of the grey image over 7x7 pixels, smoothed by a
  Gaussian of 6 px (the paper's brightness under the ink);
- inside the hand-placed text boxes (`TEXT_BOXES`, one per title, paragraph and code line), a pixel is text (1)
  when it is more than 45 grey levels darker than that level, ignore (255) when 20-45 darker (anti-aliased
  and blurred edges), and background otherwise;
- outside the boxes everything is background (the rules under the title and above the code line are not
  text); `IGNORE_BOXES` (text cut off by the page's border) are ignore.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from tfds_builders.synth_text.assets import package_dir

# (x0, y0, x1, y1), inclusive-exclusive pixels of the 384x191 photo.
TEXT_BOXES = ((4, 8, 296, 39), (2, 46, 382, 134), (14, 168, 246, 190))
IGNORE_BOXES = ((0, 176, 16, 191), (16, 184, 64, 191))
TEXT_DARKER, EDGE_DARKER = 45.0, 20.0


def page() -> tuple[np.ndarray, np.ndarray]:
    """(image [191, 384, 3] uint8, mask [191, 384] uint8 in {0, 1, 255})."""
    grey_im = Image.open(package_dir("skimage") / "data" / "page.png").convert("L")
    grey = np.asarray(grey_im, np.float32)
    level = np.asarray(grey_im.filter(ImageFilter.MaxFilter(7)).filter(ImageFilter.GaussianBlur(6)), np.float32)
    darker = level - grey
    inside = np.zeros(grey.shape, bool)
    for x0, y0, x1, y1 in TEXT_BOXES:
        inside[y0:y1, x0:x1] = True
    mask = np.zeros(grey.shape, np.uint8)
    mask[inside & (darker > EDGE_DARKER)] = 255
    mask[inside & (darker > TEXT_DARKER)] = 1
    for x0, y0, x1, y1 in IGNORE_BOXES:
        mask[y0:y1, x0:x1] = 255
    return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=-1), mask
