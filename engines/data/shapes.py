"""Coloured shapes on a black background, generated from a seed.

Every image is made from six independent factors, all recorded as attributes, so a
latent space can be checked against the truth:

  shape     kind index (also the label): circle, square, triangle, star, diamond, cross
  colour    hue in [0, 1); saturation and brightness follow from the hue alone
  size      the shape's outer diameter as a fraction of the image side
  x, y      its centre as a fraction of the image width/height (y from the top)
  rotation  a fraction of the shape's own symmetry period in [0, 1) (so 0.0 and 0.999
            look the same: it is cyclic); always 0 for the circle, where it means nothing

The factors do not depend on the image size, so a seed gives the same scenes at every
resolution, and fewer images are a prefix of more. Rendering 6000 images at 64 px takes
about 3 s, so nothing is cached.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from engines.data.dataset import DataError, ImageDataset, fixed_split

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")

# Rotations after which each shape looks the same; the circle's is irrelevant.
_SYMMETRY = {"circle": 1, "square": 4, "triangle": 3, "star": 5, "diamond": 2, "cross": 4}

_SUPERSAMPLE = 4
_MARGIN = 0.06  # of the side: a pixel at 16 px, so edges stay off the border pixels
_RADIUS = (0.2, 0.38)  # outer radius as a fraction of the side
_BACKGROUND = (0, 0, 0)


def _outline(kind: str) -> np.ndarray:
    """Polygon vertices (k, 2) in units of the outer radius, unrotated."""
    if kind == "square":
        a = np.deg2rad(45 + 90 * np.arange(4))
        return np.stack([np.cos(a), np.sin(a)], 1)
    if kind == "triangle":
        a = np.deg2rad(-90 + 120 * np.arange(3))  # apex up; centroid at the centre
        return np.stack([np.cos(a), np.sin(a)], 1)
    if kind == "star":
        a = np.deg2rad(-90 + 36 * np.arange(10))
        # A fat inner radius keeps the points readable at 16 px.
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.47)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if kind == "diamond":
        # Elongated, so that it is not just a square turned by 45°.
        return np.array([[0, -1], [0.62, 0], [0, 1], [-0.62, 0]], dtype=float)
    if kind == "cross":
        w, l = 0.3, 0.95  # arm half-width and length; the corners stay inside radius 1
        return np.array([[w, -l], [w, -w], [l, -w], [l, w], [w, w], [w, l],
                         [-w, l], [-w, w], [-l, w], [-l, -w], [-w, -w], [-w, -l]], dtype=float)
    raise ValueError(kind)


_OUTLINES = {k: _outline(k) for k in SHAPES if k != "circle"}


def _hue_to_rgb(hue: float) -> tuple[int, int, int]:
    # Full brightness with the saturation capped so that the luma stays >= 0.4: blue and
    # purple shapes would otherwise all but vanish once converted to grey.
    pure = colorsys.hsv_to_rgb(hue, 1.0, 1.0)
    luma = 0.299 * pure[0] + 0.587 * pure[1] + 0.114 * pure[2]
    sat = min(0.9, 0.6 / (1.0 - luma))
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, sat, 1.0))


def _factors(n: int, seed: int) -> dict[str, np.ndarray]:
    # One row of uniforms per image, so a smaller n gives a prefix of a larger one.
    u = np.random.default_rng(seed).random((n, 6))
    kind = np.minimum((u[:, 0] * len(SHAPES)).astype(np.int64), len(SHAPES) - 1)
    radius = _RADIUS[0] + u[:, 2] * (_RADIUS[1] - _RADIUS[0])
    room = 1 - 2 * (radius + _MARGIN)  # where the centre may go without clipping
    x = radius + _MARGIN + u[:, 3] * room
    y = radius + _MARGIN + u[:, 4] * room
    rotation = np.where(kind == SHAPES.index("circle"), 0.0, u[:, 5])
    return {"shape": kind, "colour": u[:, 1], "radius": radius, "x": x, "y": y, "rotation": rotation}


def _render(size: int, f: dict[str, np.ndarray]) -> np.ndarray:
    big = size * _SUPERSAMPLE
    out = np.zeros((len(f["shape"]), size, size, 3), dtype=np.uint8)  # zeros: the black background
    ramp = np.arange(256, dtype=np.uint16)[:, None]
    # Draw a white-on-black coverage mask at 4x, shrink only the shape's neighbourhood, then
    # colour it: over twice as fast as drawing in colour and resizing whole RGB images.
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    # Plain Python floats: numpy scalar arithmetic would dominate the loop.
    rows = zip(f["shape"].tolist(), f["x"].tolist(), f["y"].tolist(), f["radius"].tolist(),
               f["rotation"].tolist(), f["colour"].tolist())
    for i, (kind, x, y, radius, rotation, hue) in enumerate(rows):
        draw.rectangle((0, 0, big, big), fill=0)
        cx, cy, r = x * big, y * big, radius * big
        name = SHAPES[kind]
        if name == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        else:
            a = 2 * math.pi * rotation / _SYMMETRY[name]
            c, s = math.cos(a), math.sin(a)
            pts = _OUTLINES[name] @ np.array([[c, s], [-s, c]]) * r + (cx, cy)
            draw.polygon(pts.ravel().tolist(), fill=255)
        # The bounding circle plus the Lanczos kernel's reach (3 output pixels). With `box`
        # PIL still reads the pixels around it, so this equals resizing the whole canvas.
        x0, y0 = max(0, int((cx - r) / _SUPERSAMPLE) - 3), max(0, int((cy - r) / _SUPERSAMPLE) - 3)
        x1 = min(size, math.ceil((cx + r) / _SUPERSAMPLE) + 3)
        y1 = min(size, math.ceil((cy + r) / _SUPERSAMPLE) + 3)
        box = (x0 * _SUPERSAMPLE, y0 * _SUPERSAMPLE, x1 * _SUPERSAMPLE, y1 * _SUPERSAMPLE)
        cover = np.asarray(mask.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=box))
        # Coverage 0..255 -> black..colour through a lookup table: cheaper than arithmetic.
        lut = ((ramp * _hue_to_rgb(hue) + 127) // 255).astype(np.uint8)
        out[i, y0:y1, x0:x1] = np.take(lut, cover, axis=0)
    return out


def make_shapes(size: int = 32, n: int = 6000, seed: int = 0) -> ImageDataset:
    """`n` RGB images of `size`×`size` (8 to 64), the same for the same arguments."""
    if not 8 <= size <= 64:
        # DataError (a ValueError) so that callers showing data problems show this one too.
        raise DataError(f"shapes: size must be between 8 and 64 pixels, got {size}")
    if n < 1:
        raise DataError(f"shapes: n must be at least 1, got {n}")
    f = _factors(n, seed)
    images = _render(size, f)
    attributes = {
        "shape": f["shape"].astype(np.float32),
        "colour": f["colour"],
        "size": 2 * f["radius"],
        "x": f["x"],
        "y": f["y"],
        "rotation": f["rotation"],
    }
    train_idx, test_idx = fixed_split(n)  # depends on n only, like every data set's split
    return ImageDataset(name="shapes", images=images, labels=f["shape"], label_names=list(SHAPES),
                        attributes=attributes, train_idx=train_idx, test_idx=test_idx,
                        source=f"shapes(size={size},n={n},seed={seed})")
