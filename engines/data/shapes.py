"""Coloured shapes on a black background, generated from a seed.

Every image is made from six independent factors, all recorded as attributes, so a
latent space can be checked against the truth:

  shape     kind index (also the label): circle, square, triangle, star, diamond, cross
  colour    hue in [0, 1); saturation and brightness follow from the hue alone
  size      the shape's outer diameter as a fraction of the image side
  x, y      its centre as a fraction of the image width/height (y from the top)
  rotation  a fraction of the shape's own symmetry period in [0, 1) (so 0.0 and 0.999
            look the same: it is cyclic); always 0 for the circle, where it means nothing

The factors are drawn without reference to the image size, so the same seed gives the
same scenes at every resolution.
"""
from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image, ImageDraw

from .dataset import ImageDataset

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")

# Rotations after which each shape looks the same; the circle's is irrelevant.
_SYMMETRY = {"circle": 1, "square": 4, "triangle": 3, "star": 5, "diamond": 2, "cross": 4}

_SUPERSAMPLE = 4
_MARGIN = 0.04  # of the side, so antialiased edges never touch the border
_RADIUS = (0.16, 0.40)  # outer radius as a fraction of the side
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
        return np.array([[0, -1], [0.58, 0], [0, 1], [-0.58, 0]], dtype=float)
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
    sat = min(0.9, 0.6 / (1.0 - luma)) if luma < 1 else 0.9
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, sat, 1.0))


def _factors(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Equal numbers of each kind, in random order.
    kind = rng.permutation(np.arange(n) % len(SHAPES))
    hue = rng.random(n)
    radius = rng.uniform(*_RADIUS, n)
    room = 1 - 2 * (radius + _MARGIN)  # where the centre may go without clipping
    x = radius + _MARGIN + rng.random(n) * room
    y = radius + _MARGIN + rng.random(n) * room
    rotation = np.where(kind == SHAPES.index("circle"), 0.0, rng.random(n))
    return {"shape": kind, "colour": hue, "radius": radius, "x": x, "y": y, "rotation": rotation}


def _render(size: int, f: dict[str, np.ndarray]) -> np.ndarray:
    n = len(f["shape"])
    big = size * _SUPERSAMPLE
    out = np.zeros((n, size, size, 3), dtype=np.uint8)  # zeros: the black background
    # Draw a coverage mask and colour it afterwards: resampling one channel instead of three,
    # and only the shape's neighbourhood, is what makes 6000 images at 64 px take ~1 s.
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    for i in range(n):
        draw.rectangle((0, 0, big, big), fill=0)
        kind = SHAPES[f["shape"][i]]
        cx, cy, r = f["x"][i] * big, f["y"][i] * big, f["radius"][i] * big
        if kind == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        else:
            a = 2 * np.pi * f["rotation"][i] / _SYMMETRY[kind]
            c, s = np.cos(a), np.sin(a)
            pts = _OUTLINES[kind] @ np.array([[c, s], [-s, c]]) * r + (cx, cy)
            draw.polygon([tuple(p) for p in pts], fill=255)
        # The bounding circle plus the Lanczos kernel's reach (3 output pixels). With `box`
        # PIL still reads the pixels around it, so this equals resizing the whole canvas.
        x0, y0 = (max(0, int((v - r) / _SUPERSAMPLE) - 3) for v in (cx, cy))
        x1, y1 = (min(size, int(np.ceil((v + r) / _SUPERSAMPLE)) + 3) for v in (cx, cy))
        box = tuple(v * _SUPERSAMPLE for v in (x0, y0, x1, y1))
        cover = np.asarray(mask.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=box), dtype=np.uint16)
        colour = np.array(_hue_to_rgb(float(f["colour"][i])), dtype=np.uint16)
        out[i, y0:y1, x0:x1] = (cover[..., None] * colour + 127) // 255
    return out


def make_shapes(size: int = 32, n: int = 6000, seed: int = 0) -> ImageDataset:
    """`n` RGB images of `size`×`size` (8 to 64), the same for the same arguments."""
    if not 8 <= size <= 64:
        raise ValueError(f"shapes: size must be between 8 and 64 pixels, got {size}")
    if n < 1:
        raise ValueError(f"shapes: n must be at least 1, got {n}")
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
    # Train/test come from fixed_split (the ImageDataset default): they depend on n only.
    return ImageDataset(name="shapes", images=images, labels=f["shape"], label_names=list(SHAPES),
                        attributes=attributes, source=f"shapes(size={size},n={n},seed={seed})")
