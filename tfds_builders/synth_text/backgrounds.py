"""Random text-free backgrounds of the synthetic renderer: float32 [H, W, 3] in 0..255.

Mostly crops of real photos (at random scales, colour-jittered), and procedural textures: flat colours,
gradients, smooth noise, stripes/checks/dots, foliage-like blobs and height fields through colour ramps;
sometimes blended, with photo patches, non-text clutter (shapes, stars and logo-like marks, line art, grids,
barcode-like bars, cartoon faces), thin man-made structures seen in perspective (railings, spoked wheels, shelves
of boxes, fences, wires, pipes) and pasted sprites on top (`random_background`). Clutter exists so that
"high-contrast edge" does not mean "text", and the structures so that "row of thin parallel strokes" does not.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from tfds_builders.synth_text.assets import height_fields, photos, sprites


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of RGB values [..., 3] in 0..255."""
    rgb = np.asarray(rgb, np.float32)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _ramp(values: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Maps values [H, W] in 0..1 through a piecewise-linear colour ramp [K, 3]."""
    stops = np.linspace(0.0, 1.0, len(colors))
    return np.stack([np.interp(values, stops, colors[:, c]) for c in range(3)], axis=-1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Fractal value noise [h, w] in 0..1: bicubic-upsampled random grids of doubling resolution."""
    total = np.zeros((h, w), np.float32)
    cells, amp = int(rng.integers(2, 6)), 1.0
    for _ in range(int(rng.integers(1, 5))):
        grid = Image.fromarray(rng.random((cells, cells), dtype=np.float32), "F")
        total += amp * np.asarray(grid.resize((w, h), Image.Resampling.BICUBIC))
        cells, amp = cells * 2, amp * float(rng.uniform(0.3, 0.7))
    return (total - total.min()) / max(1e-6, float(np.ptp(total)))


def _coords(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates [h, w] rotated by a random angle (for gradients and patterns)."""
    t = rng.uniform(0, math.pi)
    x, y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return math.cos(t) * x + math.sin(t) * y, -math.sin(t) * x + math.cos(t) * y


def _crop(rng: np.random.Generator, src: np.ndarray, h: int, w: int, min_scale: float = 0.15) -> np.ndarray:
    """A random crop of `src` [H, W, C] with the aspect of (h, w), resized to it, maybe mirrored.

    The crop's side is a uniform fraction in [min_scale, 1] of the largest crop of that aspect."""
    sh, sw = src.shape[:2]
    ch = max(4, min(sh, round(sw * h / w)) * rng.uniform(min_scale, 1.0))
    cw = ch * w / h
    y, x = rng.uniform(0, sh - ch), rng.uniform(0, sw - cw)
    im = Image.fromarray(src).resize((w, h), Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
    out = np.asarray(im, np.float32)
    return out[:, ::-1] if rng.random() < 0.5 else out


def _jitter_photo(rng: np.random.Generator, pic: np.ndarray) -> np.ndarray:
    """Colour jitter of a photo crop: gains, offset, saturation; sometimes grey, rarely permuted or inverted."""
    r = rng.random()
    if r < 0.1:
        pic = np.repeat(luminance(pic)[..., None], 3, axis=-1)
    elif r < 0.2:
        pic = pic[..., rng.permutation(3)]
    if rng.random() < 0.05:
        pic = 255.0 - pic
    grey = luminance(pic)[..., None]
    pic = grey + (pic - grey) * np.float32(rng.uniform(0.5, 1.4))
    pic = pic * rng.uniform(0.8, 1.2, 3).astype(np.float32) * np.float32(rng.uniform(0.6, 1.3))
    return pic + np.float32(rng.uniform(-30, 30))


def _photo(rng: np.random.Generator, h: int, w: int, pool: str, min_scale: float = 0.15) -> np.ndarray:
    pics = photos(pool)
    pic = _crop(rng, pics[int(rng.integers(len(pics)))], h, w, min_scale)
    return _jitter_photo(rng, pic)


def _foliage(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Many small overlapping blobs in related hues over a smooth base: leaves, gravel, crowds from afar."""
    base = _ramp(_smooth_noise(rng, h, w), rng.uniform(0, 255, (3, 3)).astype(np.float32))
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    hue = rng.uniform(0, 255, 3)
    scale = rng.uniform(0.02, 0.12) * min(h, w)
    for _ in range(int(rng.integers(30, 150))):
        cy, cx = rng.uniform(-0.1 * h, 1.1 * h), rng.uniform(-0.1 * w, 1.1 * w)
        ry, rx = scale * rng.uniform(0.3, 1.0), scale * rng.uniform(0.3, 1.0)
        color = tuple(int(c) for c in np.clip(hue + rng.normal(0, 45, 3), 0, 255))
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=color)
    return np.asarray(im, np.float32)


def _base_background(rng: np.random.Generator, h: int, w: int, kind: int, pool: str) -> np.ndarray:
    colors = rng.uniform(0, 255, (int(rng.integers(2, 5)), 3)).astype(np.float32)
    if kind == 0:  # flat colour with a faint smooth variation
        return colors[0] + (_smooth_noise(rng, h, w)[..., None] - 0.5) * rng.uniform(0, 40)
    if kind == 1:  # linear or radial gradient
        u, v = _coords(rng, h, w)
        if rng.random() < 0.3:
            u = np.hypot(u - rng.uniform(u.min(), u.max()), v - rng.uniform(v.min(), v.max()))
        return _ramp((u - u.min()) / max(1e-6, float(np.ptp(u))), colors)
    if kind == 2:  # smooth noise through a colour ramp
        return _ramp(_smooth_noise(rng, h, w), colors)
    if kind == 3:  # stripes, checks or dots, hard or soft
        u, v = _coords(rng, h, w)
        period = rng.uniform(3, max(4.0, min(h, w) / 2))
        pattern = int(rng.integers(3))
        if pattern == 0:
            t = 0.5 + 0.5 * np.sin(2 * math.pi * u / period)
            t = t if rng.random() < 0.5 else (t > rng.uniform(0.2, 0.8)).astype(np.float32)
        elif pattern == 1:
            t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
        else:
            du, dv = u % period - period / 2, v % period - period / 2
            t = (np.hypot(du, dv) < period * rng.uniform(0.15, 0.45)).astype(np.float32)
        return colors[0] * (1 - t[..., None]) + colors[1] * t[..., None]
    if kind == 4:  # a real photo
        return _photo(rng, h, w, pool)
    if kind == 5:  # foliage-like blobs
        return _foliage(rng, h, w)
    fields = height_fields()  # terrain through a colour ramp
    field = _crop(rng, fields[int(rng.integers(len(fields)))], h, w)
    field = (field - field.min()) / max(1e-6, float(np.ptp(field)))
    return _ramp(field, colors)


def _star(cx: float, cy: float, r: float, points: int, inner: float, turn: float) -> list[tuple[float, float]]:
    out = []
    for k in range(2 * points):
        rad = r if k % 2 == 0 else r * inner
        t = turn + math.pi * k / points
        out.append((cx + rad * math.cos(t), cy + rad * math.sin(t)))
    return out


def _smooth_curve(rng: np.random.Generator, h: int, w: int, n: int = 40) -> list[tuple[float, float]]:
    """Points of a random smooth curve (a sum of a few sinusoids) across part of the image."""
    t = np.linspace(0, 1, n)
    x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
    ang = rng.uniform(0, 2 * math.pi)
    length = rng.uniform(0.3, 1.2) * max(h, w)
    bend = rng.uniform(-0.3, 0.3, 3) * length
    freq = rng.uniform(0.5, 3.0, 3)
    off = sum(b * np.sin(2 * math.pi * f * t + p) for b, f, p in zip(bend, freq, rng.uniform(0, 6.3, 3)))
    xs = x0 + math.cos(ang) * length * t - math.sin(ang) * off
    ys = y0 + math.sin(ang) * length * t + math.cos(ang) * off
    return [(float(x), float(y)) for x, y in zip(xs, ys)]


def _distractors(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Draws non-text clutter so that edges alone do not mean text: shapes, stars and polygons (logo-like
    marks), line art, grids, barcode-like bars and cartoon faces."""
    h, w = image.shape[:2]
    im = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(1, 6))):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x = np.sort(rng.uniform(-0.2 * w, 1.2 * w, 2))
        y = np.sort(rng.uniform(-0.2 * h, 1.2 * h, 2))
        box = [float(x[0]), float(y[0]), float(x[1]) + 1, float(y[1]) + 1]
        width = int(rng.integers(1, max(2, min(h, w) // 16)))
        fill = color if rng.random() < 0.5 else None
        shape = int(rng.choice(10, p=[0.12, 0.12, 0.1, 0.08, 0.14, 0.14, 0.1, 0.08, 0.06, 0.06]))
        if shape == 0:
            draw.rectangle(box, fill=fill, outline=color, width=width)
        elif shape == 1:
            draw.ellipse(box, fill=fill, outline=color, width=width)
        elif shape == 2:
            draw.line(box, fill=color, width=width)
        elif shape == 3:
            draw.arc(box, float(rng.uniform(0, 360)), float(rng.uniform(0, 360)), fill=color, width=width)
        elif shape == 4:  # stars, badges and regular polygons: small, high-contrast, text-sized marks
            r = rng.uniform(0.03, 0.25) * min(h, w)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            points = int(rng.integers(3, 9))
            inner = rng.uniform(0.35, 0.6) if rng.random() < 0.6 else 1.0
            poly = _star(cx, cy, r, points, inner, rng.uniform(0, math.pi))
            for _ in range(int(rng.integers(1, 4)) if rng.random() < 0.3 else 1):  # sometimes a row of them
                draw.polygon(poly, fill=color if rng.random() < 0.8 else None, outline=color)
                poly = [(px + 2.4 * r, py) for px, py in poly]
        elif shape == 5:  # line art: smooth curves and polylines
            pts = _smooth_curve(rng, h, w) if rng.random() < 0.6 else [
                (float(a), float(b)) for a, b in zip(rng.uniform(0, w, 6), rng.uniform(0, h, 6))]
            draw.line(pts, fill=color, width=int(rng.integers(1, 4)), joint="curve")
        elif shape == 6:  # grids: windows, tiles, fences
            pitch = rng.uniform(4, max(5.0, min(h, w) / 4))
            lw = int(rng.integers(1, 3))
            for gx in np.arange(box[0], box[2], pitch):
                draw.line([gx, box[1], gx, box[3]], fill=color, width=lw)
            if rng.random() < 0.7:
                for gy in np.arange(box[1], box[3], pitch * rng.uniform(0.5, 2)):
                    draw.line([box[0], gy, box[2], gy], fill=color, width=lw)
        elif shape == 7:  # barcode-like bars of random widths
            bx = box[0]
            top, bottom = box[1], box[1] + (box[3] - box[1]) * rng.uniform(0.2, 0.6)
            while bx < box[2]:
                bw = rng.uniform(1, 4)
                if rng.random() < 0.5:
                    draw.rectangle([bx, top, bx + bw, bottom], fill=color)
                bx += bw
        elif shape == 8:  # a cartoon face
            r = rng.uniform(0.08, 0.3) * min(h, w)
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            ink = tuple(int(c) for c in rng.integers(0, 256, 3))
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color, outline=ink, width=max(1, int(r / 12)))
            for sx in (-1, 1):
                draw.ellipse([cx + sx * r * 0.4 - r * 0.1, cy - r * 0.35, cx + sx * r * 0.4 + r * 0.1, cy - r * 0.15],
                             fill=ink)
            draw.arc([cx - r * 0.5, cy - r * 0.3, cx + r * 0.5, cy + r * 0.55], 20, 160, fill=ink,
                     width=max(1, int(r / 10)))
        else:  # scattered dots and dashes (rivets, speckles, punctuation-like marks)
            for _ in range(int(rng.integers(5, 40))):
                px, py = rng.uniform(0, w), rng.uniform(0, h)
                s = rng.uniform(0.5, 3.0)
                if rng.random() < 0.5:
                    draw.ellipse([px - s, py - s, px + s, py + s], fill=color)
                else:
                    draw.line([px - 2 * s, py, px + 2 * s, py], fill=color, width=max(1, int(s)))
    return np.asarray(im, np.float32)


def _perspective(src: list[tuple[float, float]], dst: list[tuple[float, float]]) -> tuple[float, ...]:
    """PIL's PERSPECTIVE coefficients: the map from output points `dst` to input points `src` (4 each)."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return tuple(float(c) for c in np.linalg.solve(np.asarray(rows, np.float64), np.asarray(rhs, np.float64)))


def _shade(color: np.ndarray, f: float) -> tuple[int, int, int]:
    return tuple(int(c) for c in np.clip(color * f, 0, 255))


def _bar(draw: ImageDraw.ImageDraw, x0: float, y0: float, x1: float, y1: float, color: np.ndarray, lit: float) -> None:
    """A bar with a lit and a shaded long edge (a cylinder or a square post in side light)."""
    draw.rectangle([x0, y0, x1, y1], fill=_shade(color, 1.0) + (255,))
    if x1 - x0 >= 3 and y1 - y0 > x1 - x0:
        draw.line([x0, y0, x0, y1], fill=_shade(color, lit) + (255,))
        draw.line([x1, y0, x1, y1], fill=_shade(color, 1 / lit) + (255,))
    elif y1 - y0 >= 3:
        draw.line([x0, y0, x1, y0], fill=_shade(color, lit) + (255,))
        draw.line([x0, y1, x1, y1], fill=_shade(color, 1 / lit) + (255,))


def _structure_layer(rng: np.random.Generator, side: int) -> Image.Image:
    """One man-made structure drawn flat on a transparent `side` x `side` layer."""
    layer = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    # Half of them in painted colours, half in greys with a tint (metal, concrete, wood in shade).
    color = rng.uniform(0, 255, 3) if rng.random() < 0.5 else rng.uniform(20, 235) * rng.uniform(0.85, 1.15, 3)
    lit = float(rng.uniform(1.2, 1.8))
    kind = int(rng.choice(6, p=[0.25, 0.15, 0.2, 0.15, 0.1, 0.15]))
    if kind == 0:  # railing: rails and evenly spaced balusters
        pitch = rng.uniform(0.03, 0.15) * side
        bw = max(1.0, pitch * rng.uniform(0.15, 0.5))
        top, bottom = rng.uniform(0.0, 0.35) * side, rng.uniform(0.65, 1.0) * side
        for x in np.arange(rng.uniform(0, pitch), side, pitch):
            _bar(draw, x, top, x + bw, bottom, color, lit)
        rail = max(2.0, rng.uniform(0.01, 0.05) * side)
        for y in (top, bottom) if rng.random() < 0.6 else (top,):
            _bar(draw, 0, y - rail, side, y, color * rng.uniform(0.7, 1.3), lit)
    elif kind == 1:  # spoked wheel: tyre, rim, hub and spokes
        c, r = side / 2, side * rng.uniform(0.3, 0.48)
        tyre = r * rng.uniform(0.06, 0.2)
        ink = _shade(rng.uniform(0, 255, 3), 1.0) + (255,)
        draw.ellipse([c - r, c - r, c + r, c + r], outline=_shade(color * 0.3, 1.0) + (255,), width=max(1, int(tyre)))
        rim = r - tyre
        draw.ellipse([c - rim, c - rim, c + rim, c + rim], outline=_shade(color, 1.0) + (255,),
                     width=max(1, int(tyre / 2)))
        n = int(rng.integers(5, 37))
        turn = rng.uniform(0, math.pi)
        for k in range(n):
            t = turn + 2 * math.pi * k / n
            draw.line([c, c, c + rim * math.cos(t), c + rim * math.sin(t)], fill=ink,
                      width=int(rng.integers(1, 3)) if n > 12 else max(1, int(r / 10)))
        hub = r * rng.uniform(0.08, 0.25)
        draw.ellipse([c - hub, c - hub, c + hub, c + hub], fill=_shade(color, lit) + (255,), outline=ink)
    elif kind == 2:  # shelves of boxes and bottles (no labels)
        board = max(2.0, rng.uniform(0.01, 0.04) * side)
        y = 0.0
        while y < side:
            shelf_h = rng.uniform(0.12, 0.35) * side
            x = rng.uniform(-0.05, 0.05) * side
            while x < side:
                bw = rng.uniform(0.02, 0.12) * side
                bh = shelf_h * rng.uniform(0.5, 0.95)
                item = rng.uniform(0, 255, 3)
                _bar(draw, x, y + shelf_h - bh, x + bw, y + shelf_h, item, lit)
                if rng.random() < 0.4:  # a plain band across it (a label without text)
                    band = y + shelf_h - bh * rng.uniform(0.3, 0.7)
                    draw.rectangle([x, band, x + bw, band + bh * 0.15], fill=_shade(rng.uniform(0, 255, 3), 1) + (255,))
                x += bw + rng.uniform(0, 0.02) * side
            _bar(draw, 0, y + shelf_h, side, y + shelf_h + board, color, lit)
            y += shelf_h + board
    elif kind == 3:  # fence or mesh: two families of parallel bars
        pitch = rng.uniform(0.04, 0.2) * side
        lw = max(1, int(pitch * rng.uniform(0.05, 0.3)))
        a = rng.uniform(0, math.pi)
        for ang in (a, a + rng.uniform(0.4, math.pi / 2)):
            dx, dy = math.cos(ang), math.sin(ang)
            for o in np.arange(-side, side, pitch):
                cx, cy = side / 2 - dy * o, side / 2 + dx * o
                draw.line([cx - dx * side, cy - dy * side, cx + dx * side, cy + dy * side],
                          fill=_shade(color, 1.0) + (255,), width=lw)
    elif kind == 4:  # wires: a few thin sagging curves side by side
        n = int(rng.integers(2, 7))
        sag = rng.uniform(0.02, 0.3) * side
        gap = rng.uniform(0.01, 0.08) * side
        xs = np.linspace(0, side, 40)
        y0 = rng.uniform(0.1, 0.6) * side
        for k in range(n):
            ys = y0 + k * gap + sag * (1 - ((xs - side / 2) / (side / 2)) ** 2)
            draw.line(list(zip(xs.tolist(), ys.tolist())), fill=_shade(color, 1.0) + (255,),
                      width=int(rng.integers(1, 4)))
    else:  # pipes and tubes: parallel cylinders shaded across
        y = rng.uniform(0, 0.3) * side
        for _ in range(int(rng.integers(1, 5))):
            d = rng.uniform(0.03, 0.15) * side
            for i in range(max(1, int(d))):
                f = 0.5 + 0.9 * math.sin(math.pi * (i + 0.5) / max(1.0, d))
                draw.line([0, y + i, side, y + i], fill=_shade(color, f) + (255,))
            y += d + rng.uniform(0, 0.2) * side
    return layer


def _structures(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A thin man-made structure (`_structure_layer`) seen under a random perspective, over part of the image."""
    h, w = image.shape[:2]
    side = int(max(h, w) * rng.uniform(0.5, 1.5))
    layer = _structure_layer(rng, side)
    # Where the layer's corners land in the image: a random quadrilateral around a random centre.
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
    half = side / 2 * rng.uniform(0.4, 1.0)
    turn = rng.uniform(-math.pi, math.pi) if rng.random() < 0.3 else rng.uniform(-0.3, 0.3)
    dst = []
    for ux, uy in [(-1, -1), (1, -1), (1, 1), (-1, 1)]:
        px = ux * half * rng.uniform(0.6, 1.0)
        py = uy * half * rng.uniform(0.6, 1.0)
        dst.append((cx + px * math.cos(turn) - py * math.sin(turn), cy + px * math.sin(turn) + py * math.cos(turn)))
    src = [(0.0, 0.0), (float(side), 0.0), (float(side), float(side)), (0.0, float(side))]
    warped = layer.transform((w, h), Image.Transform.PERSPECTIVE, _perspective(src, dst), Image.Resampling.BILINEAR)
    if rng.random() < 0.3:
        warped = warped.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.4, 1.2))))
    rgba = np.asarray(warped, np.float32)
    rgba[..., 3] *= np.float32(rng.uniform(0.7, 1.0))
    return _paste(image, rgba, 0, 0)


def _paste(image: np.ndarray, rgba: np.ndarray, y: int, x: int) -> np.ndarray:
    h, w = image.shape[:2]
    sh, sw = rgba.shape[:2]
    ys, xs = slice(max(0, y), min(h, y + sh)), slice(max(0, x), min(w, x + sw))
    if ys.start >= ys.stop or xs.start >= xs.stop:
        return image
    part = rgba[ys.start - y : ys.stop - y, xs.start - x : xs.stop - x]
    alpha = part[..., 3:] / 255.0
    image[ys, xs] = image[ys, xs] * (1 - alpha) + part[..., :3] * alpha
    return image


def _paste_sprite(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    pics = sprites()
    src = pics[int(rng.integers(len(pics)))]
    side = max(8, int(min(h, w) * rng.uniform(0.2, 0.7)))
    rgba = np.asarray(Image.fromarray(src).resize((side, side), Image.Resampling.BILINEAR), np.float32)
    if src is pics[-1]:  # the silhouette, in a random colour
        rgba[..., :3] = rng.uniform(0, 255, 3)
    y, x = int(rng.integers(-side // 3, h - side // 2)), int(rng.integers(-side // 3, w - side // 2))
    return _paste(image, rgba, y, x)


def _paste_photo_patch(rng: np.random.Generator, image: np.ndarray, pool: str) -> np.ndarray:
    """A rectangular or elliptical piece of another photo: objects and signs boards without text."""
    h, w = image.shape[:2]
    ph, pw = int(h * rng.uniform(0.2, 0.7)), int(w * rng.uniform(0.2, 0.7))
    patch = _photo(rng, ph, pw, pool)
    alpha = Image.new("L", (pw, ph), 0)
    if rng.random() < 0.5:
        ImageDraw.Draw(alpha).rectangle([0, 0, pw, ph], fill=255)
    else:
        ImageDraw.Draw(alpha).ellipse([0, 0, pw - 1, ph - 1], fill=255)
    rgba = np.concatenate([np.clip(patch, 0, 255), np.asarray(alpha, np.float32)[..., None]], axis=-1)
    return _paste(image, rgba, int(rng.integers(-ph // 4, h - ph // 2)), int(rng.integers(-pw // 4, w - pw // 2)))


# Base kinds: flat, gradient, noise, pattern, photo, foliage, terrain.
_KIND_P = [0.07, 0.09, 0.1, 0.1, 0.5, 0.08, 0.06]
_SECOND_P = [0.1, 0.2, 0.25, 0.15, 0.1, 0.1, 0.1]


def random_background(rng: np.random.Generator, h: int, w: int, pool: str = "train",
                      photo_only: bool = False) -> np.ndarray:
    """A random background [h, w, 3] float32 in 0..255 (no text in it).

    Args:
      pool: which photos to draw from ('train' or 'holdout', see `assets`).
      photo_only: a plain jittered photo crop of at least 40% of the photo's side (whole scenes, as a camera
        sees them), without textures, clutter or sprites (for check sets).
    """
    if photo_only:
        return np.clip(_photo(rng, h, w, pool, min_scale=0.4), 0, 255).astype(np.float32)
    image = _base_background(rng, h, w, int(rng.choice(len(_KIND_P), p=_KIND_P)), pool)
    if rng.random() < 0.2:  # blend in a second texture for more varied local statistics
        other = _base_background(rng, h, w, int(rng.choice(len(_SECOND_P), p=_SECOND_P)), pool)
        image = image + (other - image) * np.float32(rng.uniform(0.2, 0.6))
    if rng.random() < 0.15:
        image = _paste_photo_patch(rng, image, pool)
    if rng.random() < 0.45:
        image = _distractors(rng, image)
    if rng.random() < 0.3:
        image = _structures(rng, image)
    if rng.random() < 0.1:
        image = _paste_sprite(rng, image)
    return np.clip(image, 0, 255).astype(np.float32)
