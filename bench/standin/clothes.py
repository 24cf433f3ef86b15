"""Procedurally drawn 28×28 greyscale clothing, one silhouette family per Fashion-MNIST class
(T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle boot): bright
items on black like the real set, each with its own size, proportions, position, brightness,
shading and texture. Stand-in data for machines that cannot download Fashion-MNIST — recognisable
shapes rather than noise, but NOT the real photographs.

Shapes are drawn at 2× (56×56) from half-planes, boxes and ellipses over a whole batch at once
(numpy broadcasting) and averaged down, so edges are antialiased.
"""
from __future__ import annotations

import numpy as np

SIDE, UP = 28, 2
S = SIDE * UP


def _grid(n: int):
    y, x = np.mgrid[0:S, 0:S].astype(np.float32) / UP + 0.5 / UP  # pixel units of the 28×28 image
    return y[None], x[None]


def _u(rng, n, lo, hi):
    return rng.uniform(lo, hi, (n, 1, 1)).astype(np.float32)


def _box(y, x, top, bottom, left, right):
    return (y >= top) & (y < bottom) & (x >= left) & (x < right)


def _ellipse(y, x, cy, cx, ry, rx):
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _trapezoid(y, x, top, bottom, cx, half_top, half_bottom):
    t = np.clip((y - top) / np.maximum(bottom - top, 1e-3), 0, 1)
    half = half_top + (half_bottom - half_top) * t
    return (y >= top) & (y < bottom) & (np.abs(x - cx) <= half)


def _band(y, x, y0, x0, y1, x1, width):
    """A straight band (a sleeve, a strap) from (y0, x0) to (y1, x1)."""
    dy, dx = y1 - y0, x1 - x0
    length = np.sqrt(dy * dy + dx * dx) + 1e-6
    t = ((y - y0) * dy + (x - x0) * dx) / (length * length)
    dist = np.abs((y - y0) * dx - (x - x0) * dy) / length
    return (t >= 0) & (t <= 1) & (dist <= width / 2)


def _torso(rng, n, y, x, length, sleeve, collar=False):
    """Tops: a body, two sleeves (`sleeve` 'short' | 'long'), a neckline cut out."""
    cx = 14 + _u(rng, n, -1, 1)
    half = _u(rng, n, 5.0, 7.0)
    top = _u(rng, n, 3.0, 5.0)
    bottom = top + length
    body = _trapezoid(y, x, top, bottom, cx, half, half + _u(rng, n, -0.5, 1.0))
    shoulder = top + 1.2
    if sleeve == "short":
        reach, drop, w = _u(rng, n, 4.5, 6.0), _u(rng, n, 4.0, 6.0), _u(rng, n, 3.5, 5.0)
    else:
        reach, drop, w = _u(rng, n, 3.5, 5.5), length - _u(rng, n, 0.0, 3.0), _u(rng, n, 3.0, 4.2)
    left = _band(y, x, shoulder, cx - half + 1, shoulder + drop, cx - half - reach, w)
    right = _band(y, x, shoulder, cx + half - 1, shoulder + drop, cx + half + reach, w)
    neck = _ellipse(y, x, top, cx, _u(rng, n, 1.2, 2.6), _u(rng, n, 2.0, 3.2))
    mask = (body | left | right) & ~neck
    if collar:
        mask |= _band(y, x, top, cx - 2.5, top + 2.5, cx - 0.3, 1.6)
        mask |= _band(y, x, top, cx + 2.5, top + 2.5, cx + 0.3, 1.6)
    return mask, cx, top, bottom


def tshirt(rng, n, y, x):
    mask, *_ = _torso(rng, n, y, x, _u(rng, n, 17, 21), "short")
    return mask, None


def pullover(rng, n, y, x):
    mask, cx, top, bottom = _torso(rng, n, y, x, _u(rng, n, 18, 21), "long")
    cuff = _box(y, x, bottom - 2.0, bottom, cx - 30, cx + 30) & mask  # ribbed hem: a darker stripe
    return mask, cuff


def coat(rng, n, y, x):
    mask, cx, top, bottom = _torso(rng, n, y, x, _u(rng, n, 20, 23), "long", collar=True)
    opening = _box(y, x, top + 2, bottom, cx - 0.45, cx + 0.45)
    buttons = (np.abs(x - cx - 1.6) < 0.6) & ((np.abs(((y - top) % 4.0) - 2.0)) < 0.6) & mask
    return mask & ~opening, buttons


def shirt(rng, n, y, x):
    mask, cx, top, bottom = _torso(rng, n, y, x, _u(rng, n, 18, 21), rng.choice(["short", "long"]), collar=True)
    placket = _box(y, x, top + 2, bottom, cx - 0.3, cx + 0.3)
    check = (((np.floor(y / 2.0) + np.floor(x / 2.0)) % 2) == 0) & mask & (rng.random((n, 1, 1)) < 0.5)
    return mask & ~placket, check


def trouser(rng, n, y, x):
    cx = 14 + _u(rng, n, -1, 1)
    top, bottom = _u(rng, n, 1.5, 3.0), _u(rng, n, 25.5, 27.5)
    waist = _u(rng, n, 4.0, 5.5)
    flare = _u(rng, n, -0.5, 1.5)
    crotch = top + _u(rng, n, 6, 9)
    leg_w = _u(rng, n, 3.0, 4.2)
    band = _box(y, x, top, top + 2.0, cx - waist, cx + waist)
    hips = _trapezoid(y, x, top, crotch, cx, waist, waist + 0.5)
    left = _band(y, x, crotch - 1, cx - waist + leg_w / 2, bottom, cx - waist + leg_w / 2 - flare, leg_w)
    right = _band(y, x, crotch - 1, cx + waist - leg_w / 2, bottom, cx + waist - leg_w / 2 + flare, leg_w)
    return band | hips | left | right, band


def dress(rng, n, y, x):
    cx = 14 + _u(rng, n, -1, 1)
    top, waist_y, bottom = _u(rng, n, 1.5, 3.5), _u(rng, n, 9, 12), _u(rng, n, 24, 27.5)
    bodice = _trapezoid(y, x, top, waist_y, cx, _u(rng, n, 3.0, 4.5), _u(rng, n, 2.5, 3.5))
    skirt = _trapezoid(y, x, waist_y, bottom, cx, _u(rng, n, 2.5, 3.5), _u(rng, n, 6.0, 10.0))
    straps = _band(y, x, top - 1.5, cx - 2.5, top + 1, cx - 2.5, 1.4) | _band(y, x, top - 1.5, cx + 2.5, top + 1, cx + 2.5, 1.4)
    sleeves = (rng.random((n, 1, 1)) < 0.4) & (_band(y, x, top + 0.5, cx - 3.5, top + 5, cx - 7, 2.5)
                                                 | _band(y, x, top + 0.5, cx + 3.5, top + 5, cx + 7, 2.5))
    belt = _box(y, x, waist_y - 0.6, waist_y + 0.6, cx - 10, cx + 10) & (bodice | skirt)
    return bodice | skirt | straps | sleeves, belt


def _shoe_base(rng, n, y, x, upper_top):
    """A shoe in profile, toe to the right: a sole, an upper over the foot, a rounded toe."""
    left, right = _u(rng, n, 1.5, 4.0), _u(rng, n, 24.0, 26.5)
    sole_y = _u(rng, n, 19.0, 22.0)
    sole = _box(y, x, sole_y, sole_y + _u(rng, n, 1.5, 2.5), left, right)
    toe = _ellipse(y, x, sole_y - 1.5, right - 3.0, 3.0, 3.5)
    # the upper rises from the toe towards the heel along a slanted line
    slope = (y >= upper_top + (x - left) / (right - left) * (sole_y - 3 - upper_top)) & (y < sole_y) & (x >= left) & (x < right - 2)
    return sole, toe, slope, left, right, sole_y


def sneaker(rng, n, y, x):
    sole, toe, slope, left, right, sole_y = _shoe_base(rng, n, y, x, _u(rng, n, 10.0, 13.0))
    laces = slope & (np.abs(((x - left) % 2.5) - 1.25) < 0.45) & (y < sole_y - 3) & (x > left + 6) & (x < right - 6)
    return sole | toe | slope, laces | sole


def sandal(rng, n, y, x):
    sole, toe, slope, left, right, sole_y = _shoe_base(rng, n, y, x, _u(rng, n, 12.0, 15.0))
    k = rng.integers(2, 5, (n, 1, 1))
    straps = slope & (np.abs(((x - left) % (18 / k)) - 9 / k) < 0.9)
    heel = _box(y, x, sole_y - 1, sole_y + 3, left, left + _u(rng, n, 3, 5)) & (rng.random((n, 1, 1)) < 0.5)
    return sole | straps | (toe & (y > sole_y - 1.5)) | heel, None


def ankle_boot(rng, n, y, x):
    sole, toe, slope, left, right, sole_y = _shoe_base(rng, n, y, x, _u(rng, n, 12.0, 14.5))
    shaft_top = _u(rng, n, 2.0, 6.0)
    shaft = _box(y, x, shaft_top, sole_y, left, left + _u(rng, n, 9.0, 12.0))
    heel = _box(y, x, sole_y, sole_y + _u(rng, n, 2.5, 4.0), left, left + _u(rng, n, 3.5, 5.5))
    return shaft | slope | toe | sole | heel, sole | heel


def bag(rng, n, y, x):
    cx = 14 + _u(rng, n, -1, 1)
    top, bottom = _u(rng, n, 10.0, 14.0), _u(rng, n, 24.0, 27.0)
    half = _u(rng, n, 8.0, 11.5)
    body = _trapezoid(y, x, top, bottom, cx, half - _u(rng, n, 0, 2), half)
    hr, hw = _u(rng, n, 3.5, 6.5), _u(rng, n, 4.0, 7.0)
    ring = _ellipse(y, x, top, cx, hr, hw) & ~_ellipse(y, x, top, cx, hr - 1.3, hw - 1.3) & (y < top)
    flap = _box(y, x, top, top + _u(rng, n, 2, 6), cx - half, cx + half) & body & (rng.random((n, 1, 1)) < 0.5)
    return body | ring, flap


CLASSES = (tshirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, ankle_boot)
NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def draw(labels: np.ndarray, seed: int = 0, chunk: int = 400) -> np.ndarray:
    """uint8 images (N, 28, 28) of the given classes (0–9), each drawn with its own parameters."""
    labels = np.asarray(labels)
    out = np.zeros((len(labels), SIDE, SIDE), np.uint8)
    rng = np.random.default_rng(seed)
    y, x = _grid(1)
    for c, fn in enumerate(CLASSES):
        idx = np.flatnonzero(labels == c)
        for i in range(0, len(idx), chunk):
            part = idx[i:i + chunk]
            out[part] = _render(rng, fn, len(part), y, x)
    return out


def _render(rng, fn, n, y, x) -> np.ndarray:
    mask, detail = fn(rng, n, y, x)
    base = _u(rng, n, 90, 235)
    shade = 1.0 - _u(rng, n, 0.0, 0.35) * (y / SIDE) + _u(rng, n, -0.15, 0.15) * (x / SIDE - 0.5)
    value = base * shade
    if detail is not None:
        value = np.where(detail, value * _u(rng, n, 0.45, 0.8), value)
    stripes = (rng.random((n, 1, 1)) < 0.25) & (np.sin(y * _u(rng, n, 1.5, 3.0)) > 0.3)
    value = np.where(stripes, value * 0.7, value)
    img = np.where(mask, value, 0.0).reshape(n, SIDE, UP, SIDE, UP).mean(axis=(2, 4))
    img += rng.normal(0, 6, img.shape) * (img > 8)  # fabric texture on the item only
    # a little jitter of position (whole pixels) keeps the classes from being pixel-aligned
    shifts = rng.integers(-1, 2, (n, 2))
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1)))  # shifted in, not wrapped round
    for k, (dy, dx) in enumerate(shifts):
        img[k] = padded[k, 1 - dy:1 - dy + SIDE, 1 - dx:1 - dx + SIDE]
    return np.clip(img, 0, 255).astype(np.uint8)
