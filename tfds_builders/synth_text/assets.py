"""Assets of the synthetic renderer, all from pip packages: fonts, photos, height fields and a sprite.

Fonts are Pillow's built-in scalable font and the TTFs in matplotlib's `mpl-data/fonts/ttf/`; photos, terrain
grids and the clip-art sprite come from `mpl-data/sample_data/`. Both are found with
`matplotlib.get_data_path()`, which does not import pyplot. Every loader is cached.
"""

from __future__ import annotations

import functools
import gzip
import pathlib
import string

import numpy as np
from PIL import Image, ImageFont

PILLOW_DEFAULT = "pillow-default"

# OT1-encoded Computer Modern fonts draw other glyphs (inverted marks, dashes) at some ASCII code points.
_CM_PUNCT = "!#%&'()*+,-./:;=?@[]"
_DEJAVU = [f"DejaVu{fam}{sty}.ttf" for fam in ("Sans", "SansMono") for sty in ("", "-Bold", "-Oblique", "-BoldOblique")]
_DEJAVU += [f"DejaVuSerif{sty}.ttf" for sty in ("", "-Bold", "-Italic", "-BoldItalic")]
_STIX = [f"STIXGeneral{sty}.ttf" for sty in ("", "Bol", "Italic", "BolIta")]
# Font name -> punctuation that the font draws as the ASCII character it stands for.
FONTS: dict[str, str] = {
    PILLOW_DEFAULT: string.punctuation,
    **{name: string.punctuation for name in _DEJAVU + _STIX + ["cmtt10.ttf"]},
    **{name: _CM_PUNCT for name in ("cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf")},
    "cmmi10.ttf": "",  # math italic: letters and (old-style) digits only
}


@functools.cache
def _mpl_data() -> pathlib.Path:
    import matplotlib  # lazy: only the data path is needed (importing pyplot would start a backend)

    return pathlib.Path(matplotlib.get_data_path())


@functools.lru_cache(maxsize=2048)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A font of `FONTS` at `size` px; the basic layout engine keeps results independent of libraqm."""
    if name == PILLOW_DEFAULT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(_mpl_data() / "fonts" / "ttf" / name), size, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def photos() -> tuple[np.ndarray, ...]:
    """Natural images shipped with matplotlib: [H, W, 3] uint8 (the MRI slice is grey)."""
    sample = _mpl_data() / "sample_data"
    hopper = np.asarray(Image.open(sample / "grace_hopper.jpg").convert("RGB"))
    mri = np.frombuffer(gzip.decompress((sample / "s1045.ima.gz").read_bytes()), np.uint16).reshape(256, 256)
    mri = (mri.astype(np.float32) * (255.0 / max(1, int(mri.max())))).astype(np.uint8)
    return hopper, np.repeat(mri[..., None], 3, axis=-1)


@functools.cache
def height_fields() -> tuple[np.ndarray, ...]:
    """Terrain grids shipped with matplotlib, scaled to 0..1 float32; coloured by a random ramp later."""
    sample = _mpl_data() / "sample_data"
    fields = [np.load(sample / "jacksboro_fault_dem.npz")["elevation"], np.load(sample / "topobathy.npz")["topo"]]
    out = []
    for f in fields:
        f = np.asarray(f, np.float32)
        out.append((f - f.min()) / max(1e-6, float(f.max() - f.min())))
    return tuple(out)


@functools.cache
def sprite() -> np.ndarray:
    """An RGBA clip-art object without text (a gift box), pasted onto some backgrounds."""
    return np.asarray(Image.open(_mpl_data() / "sample_data" / "Minduka_Present_Blue_Pack.png").convert("RGBA"))
