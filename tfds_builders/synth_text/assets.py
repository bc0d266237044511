"""Assets of the synthetic renderer, all from pip packages: fonts, photos, height fields and a sprite.

Every asset comes in two disjoint pools, so that a check set can be drawn from photos and fonts that training
never sees:

- `TRAIN_FONTS`: Pillow's built-in scalable font, the TTFs in matplotlib's `mpl-data/fonts/ttf/` (DejaVu, STIX,
  Computer Modern) and the families of the `font-*` packages Caladea, Red Hat Display, Manrope, Hanken Grotesk,
  Source Sans Pro, Amatic SC, Fredoka One and Intuitive.
  `HOLDOUT_FONTS`: Lato, Source Serif Pro and Fjalla One.
- `photos('train')`: scikit-image's natural photos without text (astronaut, cat, cameraman, moon, coins, brick,
  grass, gravel, cells, retina, IHC stain, Hubble field) and matplotlib's Grace Hopper portrait and MRI slice.
  Since 3.0.0 also PyWavelets' `ascent` (stairs and railings: thin structures) and `aero` (an aerial view), and
  mahotas' portrait in front of a glass facade.
  `photos('holdout')`: scikit-image's coffee cup, rocket and the two motorcycle views (a stereo pair, so both
  are held out) and scikit-learn's two sample photos (a temple, a flower).
  scikit-image's `text.png`, `page.png`, `logo.png` and `clock_motion.png` contain text or digits and are never
  used as backgrounds.

Package files are located with `importlib.util.find_spec`, which does not import the packages (nor does
`matplotlib.get_data_path` import pyplot). Every loader is cached.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
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
_MPL_FONTS: dict[str, str] = {
    **{name: string.punctuation for name in _DEJAVU + _STIX + ["cmtt10.ttf"]},
    **{name: _CM_PUNCT for name in ("cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf")},
    "cmmi10.ttf": "",  # math italic: letters and (old-style) digits only
}
# pip package -> font files (in its `files/` folder). Every one maps all of printable ASCII (checked with
# fontTools when they were added).
_TRAIN_PACKAGES = {
    "font_caladea": [f"Caladea-{s}.ttf" for s in ("Regular", "Bold", "Italic", "BoldItalic")],
    "font_rhd": [f"RedHatDisplay-{w}{i}.ttf" for w in ("Light", "Regular", "Medium", "Bold", "Black")
                 for i in ("", "Italic") if f"{w}{i}" != "RegularItalic"] + ["RedHatDisplay-Italic.ttf"],
    "font_manrope": [f"Manrope-{w}.ttf" for w in ("ExtraLight", "Regular", "SemiBold", "ExtraBold")],
    "font_hanken_grotesk": [f"HankenGrotesk-{w}.otf" for w in ("Light", "Regular", "Italic", "SemiBold", "Bold")],
    "font_source_sans_pro": [f"SourceSansPro-{w}.ttf" for w in ("ExtraLight", "Regular", "It", "Semibold", "Bold",
                                                                 "BoldIt", "Black")],
    "font_amatic_sc": ["AmaticSC-Regular.ttf", "AmaticSC-Bold.ttf"],
    "font_fredoka_one": ["FredokaOne-Regular.ttf"],
    "font_intuitive": ["Intuitive.ttf"],
}
_HOLDOUT_PACKAGES = {
    "font_lato": [f"Lato-{w}.ttf" for w in ("Light", "Regular", "Italic", "Bold", "BoldItalic", "Black")],
    "font_source_serif_pro": [f"SourceSerifPro-{w}.ttf" for w in ("Light", "Regular", "It", "Semibold", "Bold")],
    "font_fjallaone": ["FjallaOne-Regular.ttf"],
}
_PACKAGE_OF = {name: pkg for table in (_TRAIN_PACKAGES, _HOLDOUT_PACKAGES) for pkg, names in table.items()
               for name in names}
# Font name -> punctuation that the font draws as the ASCII character it stands for.
TRAIN_FONTS: dict[str, str] = {
    PILLOW_DEFAULT: string.punctuation,
    **_MPL_FONTS,
    **{name: string.punctuation for names in _TRAIN_PACKAGES.values() for name in names},
}
HOLDOUT_FONTS: dict[str, str] = {name: string.punctuation for names in _HOLDOUT_PACKAGES.values() for name in names}
FONTS = TRAIN_FONTS  # the fonts of the training renders (kept under this name for callers of the first version)

_TRAIN_PHOTOS = {
    "skimage": ["astronaut.png", "chelsea.png", "camera.png", "moon.png", "coins.png", "brick.png", "grass.png",
                "gravel.png", "cell.png", "retina.jpg", "ihc.png", "hubble_deep_field.jpg"],
}
_HOLDOUT_PHOTOS = {
    "skimage": ["coffee.png", "rocket.jpg", "motorcycle_left.png", "motorcycle_right.png"],
    "sklearn": ["china.jpg", "flower.jpg"],
}
_PHOTO_DIRS = {"skimage": "data", "sklearn": "datasets/images", "pywt": "data", "mahotas": "demos/data"}
# Grey photos stored as arrays: package -> .npz files with one uint8 [H, W] array under the key 'data'.
_TRAIN_ARRAYS = {"pywt": ["ascent.npz", "aero.npz"]}
_TRAIN_PHOTOS_3 = {"mahotas": ["luispedro.jpg"]}


def package_dir(package: str) -> pathlib.Path:
    """The installed folder of `package`, found without importing it; a clear error when it is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip_names = {"skimage": "scikit-image", "sklearn": "scikit-learn", "pywt": "PyWavelets"}
        pip_name = pip_names.get(package, package.replace("_", "-"))
        raise FileNotFoundError(f"synth_text needs the pip package {pip_name!r} for its assets (pip install {pip_name})")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _mpl_data() -> pathlib.Path:
    import matplotlib  # lazy: only the data path is needed (importing pyplot would start a backend)

    return pathlib.Path(matplotlib.get_data_path())


@functools.cache
def font_path(name: str) -> pathlib.Path:
    """The file of font `name` (a key of `TRAIN_FONTS` or `HOLDOUT_FONTS`, not the Pillow default)."""
    if name in _MPL_FONTS:
        return _mpl_data() / "fonts" / "ttf" / name
    if name in _PACKAGE_OF:
        return package_dir(_PACKAGE_OF[name]) / "files" / name
    raise KeyError(f"unknown synth_text font {name!r}")


@functools.lru_cache(maxsize=4096)
def load_font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A font at `size` px; the basic layout engine keeps results independent of libraqm."""
    if name == PILLOW_DEFAULT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(str(font_path(name)), size, layout_engine=ImageFont.Layout.BASIC)


def fonts(pool: str) -> dict[str, str]:
    """Font name -> drawable punctuation of pool 'train' or 'holdout'."""
    return {"train": TRAIN_FONTS, "holdout": HOLDOUT_FONTS}[pool]


def _rgb(path: pathlib.Path, max_side: int = 640) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    if max(im.size) > max_side:  # the 1411 px retina and 1000 px Hubble field: smaller copies decode once
        f = max_side / max(im.size)
        im = im.resize((round(im.size[0] * f), round(im.size[1] * f)), Image.Resampling.LANCZOS)
    return np.asarray(im)


@functools.cache
def photos(pool: str = "train") -> tuple[np.ndarray, ...]:
    """Natural photos of pool 'train' or 'holdout': [H, W, 3] uint8 (grey ones repeated to three channels)."""
    table = {"train": _TRAIN_PHOTOS, "holdout": _HOLDOUT_PHOTOS}[pool]
    out = [_rgb(package_dir(pkg) / _PHOTO_DIRS[pkg] / name) for pkg, names in table.items() for name in names]
    if pool == "train":
        sample = _mpl_data() / "sample_data"
        out.append(_rgb(sample / "grace_hopper.jpg"))
        mri = np.frombuffer(gzip.decompress((sample / "s1045.ima.gz").read_bytes()), np.uint16).reshape(256, 256)
        mri = (mri.astype(np.float32) * (255.0 / max(1, int(mri.max())))).astype(np.uint8)
        out.append(np.repeat(mri[..., None], 3, axis=-1))
        for pkg, names in _TRAIN_ARRAYS.items():
            for name in names:
                grey = np.load(package_dir(pkg) / _PHOTO_DIRS[pkg] / name)["data"].astype(np.uint8)
                out.append(np.repeat(grey[..., None], 3, axis=-1))
        out += [_rgb(package_dir(pkg) / _PHOTO_DIRS[pkg] / name) for pkg, names in _TRAIN_PHOTOS_3.items()
                for name in names]
    return tuple(out)


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
def sprites() -> tuple[np.ndarray, ...]:
    """RGBA text-free objects pasted onto backgrounds: matplotlib's gift box and scikit-image's horse silhouette."""
    box = np.asarray(Image.open(_mpl_data() / "sample_data" / "Minduka_Present_Blue_Pack.png").convert("RGBA"))
    horse = np.asarray(Image.open(package_dir("skimage") / "data" / "horse.png").convert("L"))
    alpha = np.where(horse < 128, 255, 0).astype(np.uint8)  # the horse is black on white
    horse_rgba = np.stack([np.zeros_like(alpha)] * 3 + [alpha], axis=-1)
    return box, horse_rgba
