"""A built-in data set of simple cartoon faces, for attribute-vector and analogy demos.

Every face is drawn with PIL at a few times the target size and downsampled with LANCZOS.
Binary attributes (each drawn independently of the others):

  sunglasses  two dark lenses and a bridge over the eyes
  smiling     an open, upward-curved mouth instead of a straight one
  hat         a saturated brimmed hat on top of the head
  beard       a beard in (slightly darkened) hair colour on the lower face, mouth left clear
  female      long hair falling beside the face and red lipstick (short hair otherwise)

Continuous attributes in [0, 1]: skin_tone (light..dark), hair_colour (black..brown..red..blond),
face_width (narrow..wide) and eye_size (small..large). Nuisance variation that is not recorded:
head position (a few per cent of the side), a slight tilt, background and shirt colour, hat colour.

Labels are the four (female, smiling) combinations: "neutral man", "smiling man",
"neutral woman", "smiling woman".

Face i depends only on the seed and i, so a smaller n gives a prefix of a larger one.
Results are cached as .npz under `$LATENT_EXPLORER_CACHE/datasets/` (or the user cache dir).
"""
from __future__ import annotations

import colorsys
import os

import numpy as np
from PIL import Image, ImageDraw

from engines import atomic
from engines.data.dataset import DataError, ImageDataset, fixed_split

VERSION = 2  # bump when the drawing changes, so old caches are not used (v1: first draft)

BINARY = ("sunglasses", "smiling", "hat", "beard", "female")
# Probability of each binary attribute.
RATES = {"sunglasses": 0.35, "smiling": 0.5, "hat": 0.35, "beard": 0.35, "female": 0.5}
CONTINUOUS = ("skin_tone", "hair_colour", "face_width", "eye_size")
LABEL_NAMES = ["neutral man", "smiling man", "neutral woman", "smiling woman"]
# Where the eyes (and sunglasses) are, as fractions of the side: (top, bottom, left, right).
EYE_REGION = (0.42, 0.60, 0.28, 0.72)

# Columns of the per-face uniform draws; new columns go at the end so old faces keep their looks.
_COLS = BINARY + CONTINUOUS + ("dx", "dy", "tilt", "bg_h", "bg_s", "bg_v", "shirt_h", "shirt_s",
                               "shirt_v", "hat_c", "spare1", "spare2")

_SKIN = np.array([(255, 224, 196), (236, 188, 150), (198, 140, 96), (141, 92, 58), (92, 58, 38)], float)
_HAIR = np.array([(28, 22, 20), (78, 48, 28), (130, 82, 44), (176, 78, 34), (222, 184, 100)], float)
_HATS = [(200, 30, 40), (30, 70, 190), (20, 140, 60), (130, 40, 160), (230, 140, 0), (20, 140, 160)]


def cache_root() -> str:
    """The folder that cached data sets live under: $LATENT_EXPLORER_CACHE or the user cache dir."""
    root = os.environ.get("LATENT_EXPLORER_CACHE")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("latent-explorer")
    return root


def _cache_path(size: int, n: int, seed: int) -> str:
    return os.path.join(cache_root(), "datasets", f"faces-{size}-{n}-{seed}-v{VERSION}.npz")


def make_faces(size: int = 64, n: int = 8000, seed: int = 0, cache: bool = True) -> ImageDataset:
    """`n` RGB cartoon faces of `size`×`size` pixels, the same for the same seed."""
    size, n, seed = int(size), int(n), int(seed)
    if not 4 <= size <= 256:
        raise DataError(f"faces: size must be between 4 and 256 pixels, got {size}")
    if n < 1:
        raise DataError(f"faces: n must be at least 1, got {n}")
    source = f"faces(size={size},n={n},seed={seed})"
    path = _cache_path(size, n, seed) if cache else None
    arrays = _load_cache(path, size, n) if path else None
    if arrays is None:
        arrays = _generate(size, n, seed)
        if path:
            _save_cache(path, arrays)
    images = arrays["images"]
    attributes = {k: arrays[k] for k in BINARY + CONTINUOUS}
    labels = (2 * attributes["female"] + attributes["smiling"]).astype(np.int64)
    train_idx, test_idx = fixed_split(n)
    return ImageDataset(name="faces", images=images, labels=labels, label_names=list(LABEL_NAMES),
                        attributes=attributes, train_idx=train_idx, test_idx=test_idx, source=source)


def _load_cache(path: str, size: int, n: int) -> dict | None:
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception:
        return None  # unreadable or truncated: make it again
    if "images" not in arrays or arrays["images"].shape != (n, size, size, 3) or arrays["images"].dtype != np.uint8:
        return None
    if any(k not in arrays or arrays[k].shape != (n,) for k in BINARY + CONTINUOUS):
        return None
    return arrays


def _save_cache(path: str, arrays: dict) -> None:
    try:
        with atomic.replacing(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError:
        pass  # a cache that cannot be written only costs time


def _params(n: int, seed: int) -> dict[str, np.ndarray]:
    # Drawn row by row, so face i's numbers do not depend on n.
    u = np.random.default_rng(seed).random((n, len(_COLS)))
    p = {c: u[:, i] for i, c in enumerate(_COLS)}
    for k in BINARY:
        p[k] = (p[k] < RATES[k]).astype(np.float32)
    for k in CONTINUOUS:
        p[k] = p[k].astype(np.float32)
    return p


def _generate(size: int, n: int, seed: int) -> dict[str, np.ndarray]:
    p = _params(n, seed)
    # Drawing resolution: 3× at 64 (192 px), at least 128 px for the small sizes.
    r = max(3 * size, 128) if size <= 64 else 2 * size
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        face = {k: float(v[i]) for k, v in p.items()}
        images[i] = np.asarray(_draw_face(face, r, size))
    out = {"images": images}
    out.update({k: p[k].astype(np.float32) for k in BINARY + CONTINUOUS})
    return out


def _lerp_palette(palette: np.ndarray, t: float) -> np.ndarray:
    x = min(max(t, 0.0), 1.0) * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    f = x - i
    return palette[i] * (1 - f) + palette[i + 1] * f


def _luma(c) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _beard_colour(hair: np.ndarray, skin: np.ndarray) -> tuple[int, int, int]:
    """Hair colour, a little darker, and darkened further where it would hardly show on the skin."""
    beard = hair * 0.85 + np.array([90.0, 40.0, 20.0]) * 0.15
    black = np.array([18.0, 12.0, 10.0])
    for _ in range(10):
        if abs(_luma(beard) - _luma(skin)) >= 45 or _luma(beard) < 25:
            break
        beard = beard * 0.75 + black * 0.25
    return _rgb(beard)


def _rgb(c) -> tuple[int, int, int]:
    return tuple(int(round(min(max(v, 0), 255))) for v in c)


def _hsv(h, s, v) -> tuple[int, int, int]:
    return _rgb(np.array(colorsys.hsv_to_rgb(h, s, v)) * 255)


def _draw_face(f: dict, r: int, size: int) -> Image.Image:
    """One face drawn at r×r and downsampled to size×size. Geometry is in units of the side."""
    bg = _hsv(f["bg_h"], 0.12 + 0.25 * f["bg_s"], 0.78 + 0.17 * f["bg_v"])
    img = Image.new("RGB", (r, r), bg)
    d = ImageDraw.Draw(img)

    def box(x0, y0, x1, y1):
        return [x0 * r, y0 * r, x1 * r, y1 * r]

    def ell(cx, cy, rx, ry, **kw):
        d.ellipse(box(cx - rx, cy - ry, cx + rx, cy + ry), **kw)

    lw = max(1, round(0.012 * r))  # outline width
    skin = _lerp_palette(_SKIN, f["skin_tone"])
    hair = _lerp_palette(_HAIR, f["hair_colour"])
    skin_c, skin_dark = _rgb(skin), _rgb(skin * 0.72)
    hair_c, hair_dark = _rgb(hair), _rgb(hair * 0.6)

    cx = 0.5 + 0.06 * (f["dx"] - 0.5)
    cy = 0.49 + 0.06 * (f["dy"] - 0.5)
    hw = 0.25 + 0.07 * f["face_width"]  # half width of the head
    hh = 0.285  # half height
    female, hat = f["female"] > 0.5, f["hat"] > 0.5

    # Shoulders and neck.
    shirt = _hsv(f["shirt_h"], 0.35 + 0.4 * f["shirt_s"], 0.35 + 0.45 * f["shirt_v"])
    ell(cx, cy + hh + 0.36, 0.40, 0.25, fill=shirt, outline=_rgb(np.array(shirt) * 0.7), width=lw)
    # Long hair falls behind the face down to the shoulders.
    if female:
        d.rounded_rectangle(box(cx - hw - 0.055, cy - hh - 0.03, cx + hw + 0.055, cy + hh + 0.08),
                            radius=0.2 * r, fill=hair_c, outline=hair_dark, width=lw)
    nw = 0.42 * hw
    d.rectangle(box(cx - nw, cy + 0.5 * hh, cx + nw, cy + hh + 0.14), fill=skin_c, outline=skin_dark, width=lw)
    # Ears.
    for s in (-1, 1):
        ell(cx + s * hw, cy + 0.02, 0.045, 0.07, fill=skin_c, outline=skin_dark, width=lw)
    # Head.
    ell(cx, cy, hw, hh, fill=skin_c, outline=skin_dark, width=lw)
    # Hair on top of the head.
    hb = box(cx - hw - 0.015, cy - hh - 0.03, cx + hw + 0.015, cy + hh + 0.03)
    if female:
        d.chord(hb, 198, 342, fill=hair_c, outline=hair_dark, width=lw)
    else:
        d.chord(hb, 205, 335, fill=hair_c, outline=hair_dark, width=lw)

    eye_y = cy + 0.01
    ex_off = 0.40 * hw
    # Beard: lower face in darkened hair colour, with the mouth area left clear.
    mouth_y = cy + 0.56 * hh
    if f["beard"] > 0.5:
        d.chord(box(cx - hw, cy - hh - 0.02, cx + hw, cy + hh + 0.04), 22, 158, fill=_beard_colour(hair, skin),
                outline=hair_dark, width=lw)
        ell(cx, mouth_y, 0.13, 0.04, fill=skin_c)
    # Eyes, brows, nose.
    erx = 0.033 + 0.027 * f["eye_size"]
    ery = 0.8 * erx
    for s in (-1, 1):
        x = cx + s * ex_off
        ell(x, eye_y, erx, ery, fill=(250, 250, 250), outline=(40, 30, 30), width=lw)
        ell(x, eye_y + 0.15 * ery, 0.55 * erx, 0.55 * erx * 1.05, fill=(35, 25, 25))
        by = eye_y - ery - 0.035
        d.line([((x - 0.05) * r, by * r), ((x + 0.05) * r, by * r)], fill=hair_dark, width=max(1, round(0.018 * r)))
    d.polygon([(cx * r, (eye_y + 0.03) * r), ((cx - 0.03) * r, (cy + 0.3 * hh) * r),
               ((cx + 0.01) * r, (cy + 0.3 * hh) * r)], fill=skin_dark)
    # Mouth: an open upward curve when smiling, a straight line otherwise; lipstick when female.
    lips = (200, 30, 60) if female else (120, 45, 45)
    if f["smiling"] > 0.5:
        mw, mh, top = 0.12, 0.075, mouth_y - 0.025
        mb = box(cx - mw, top - mh, cx + mw, top + mh)
        d.chord(mb, 0, 180, fill=(110, 20, 30))
        d.rectangle(box(cx - 0.8 * mw, top, cx + 0.8 * mw, top + 0.022), fill=(250, 250, 245))
        d.chord(mb, 0, 180, outline=lips, width=max(1, round((0.022 if female else 0.014) * r)))
    else:
        mw = 0.08
        d.line([((cx - mw) * r, mouth_y * r), ((cx + mw) * r, mouth_y * r)], fill=lips,
               width=max(1, round((0.03 if female else 0.02) * r)))
    # Sunglasses.
    if f["sunglasses"] > 0.5:
        lens = (22, 22, 30)
        lrx, lry = max(0.085, erx + 0.02), max(0.065, ery + 0.02)
        for s in (-1, 1):
            x = cx + s * ex_off
            d.rounded_rectangle(box(x - lrx, eye_y - lry, x + lrx, eye_y + lry), radius=0.03 * r, fill=lens)
            d.line([((cx + s * (ex_off + lrx)) * r, (eye_y - 0.3 * lry) * r),
                    ((cx + s * hw) * r, (eye_y - 0.4 * lry) * r)], fill=lens, width=max(1, round(0.015 * r)))
        d.line([((cx - ex_off + lrx) * r, (eye_y - 0.3 * lry) * r), ((cx + ex_off - lrx) * r, (eye_y - 0.3 * lry) * r)],
               fill=lens, width=max(1, round(0.02 * r)))
    # Hat.
    if hat:
        hc = _HATS[min(int(f["hat_c"] * len(_HATS)), len(_HATS) - 1)]
        hdark = _rgb(np.array(hc) * 0.6)
        top = cy - hh
        d.rounded_rectangle(box(cx - 0.7 * hw, top - 0.11, cx + 0.7 * hw, top + 0.09), radius=0.04 * r,
                            fill=hc, outline=hdark, width=lw)
        d.rectangle(box(cx - 0.7 * hw, top + 0.035, cx + 0.7 * hw, top + 0.065), fill=hdark)
        d.rounded_rectangle(box(cx - hw - 0.06, top + 0.07, cx + hw + 0.06, top + 0.115), radius=0.02 * r,
                            fill=hc, outline=hdark, width=lw)

    tilt = 12.0 * (f["tilt"] - 0.5)  # degrees
    if abs(tilt) > 0.05:
        # Nearest is enough at this resolution: the downsampling below smooths the edges.
        img = img.rotate(tilt, resample=Image.Resampling.NEAREST, center=(cx * r, cy * r), fillcolor=bg)
    return img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
