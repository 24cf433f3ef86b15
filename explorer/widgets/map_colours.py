"""Colouring the points of a map: by label, by a binary attribute, or by a continuous attribute
in a few quantile bins along a perceptual ramp — each with legend entries (colour, text, count).

A colouring is a small palette plus one code per point, so the scatter gets a handful of distinct
brushes (pyqtgraph renders each distinct brush once into its symbol atlas; 10,000 points with 10
brushes draw as fast as with one)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Categorical: Tableau 10 (distinct in colour and lightness, readable on white).
CATEGORICAL = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
               "#9c755f", "#bab0ac"]
# Continuous: viridis stops (perceptually uniform, colour-blind safe).
VIRIDIS = [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
           (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)]
NEUTRAL = "#5b6b7f"


def ramp(t: np.ndarray) -> list[tuple[int, int, int]]:
    """Colours along viridis for t in [0, 1]."""
    stops = np.asarray(VIRIDIS, dtype=np.float64)
    x = np.clip(np.asarray(t, dtype=np.float64), 0, 1) * (len(stops) - 1)
    lo = np.floor(x).astype(int)
    hi = np.minimum(lo + 1, len(stops) - 1)
    f = (x - lo)[:, None]
    rgb = stops[lo] * (1 - f) + stops[hi] * f
    return [tuple(int(round(c)) for c in row) for row in rgb]


def hex_rgb(h: str) -> tuple[int, int, int]:
    h = h.lstrip("#")
    return tuple(int(h[k:k + 2], 16) for k in (0, 2, 4))


@dataclass(frozen=True, eq=False)
class Colouring:
    title: str
    codes: np.ndarray  # int (N,): index into colours
    colours: list  # [(r, g, b)]
    entries: list  # [(text, count)] one per colour
    continuous: bool = False


def _fmt(x: float, span: float) -> str:
    """Enough decimals to tell bins of a range `span` apart: 0.00–0.20, 12–35, 0.0012–0.0030."""
    digits = int(np.clip(1 - np.floor(np.log10(span)), 0, 6)) if span > 0 else 2
    return f"{x:.{digits}f}"


def uniform(n: int, title: str = "all points") -> Colouring:
    return Colouring(title, np.zeros(n, np.int64), [hex_rgb(NEUTRAL)], [(title, n)])


def by_categories(codes, names, title: str) -> Colouring:
    codes = np.asarray(codes, dtype=np.int64)
    k = int(max(len(names), codes.max() + 1 if len(codes) else 0))
    names = list(names) + [str(i) for i in range(len(names), k)]
    if k <= len(CATEGORICAL):
        colours = [hex_rgb(CATEGORICAL[i]) for i in range(k)]
    else:  # many classes: spread them along the ramp
        colours = ramp(np.linspace(0, 1, k))
    counts = np.bincount(codes, minlength=k)
    return Colouring(title, codes, colours, [(names[i], int(counts[i])) for i in range(k)])


def by_values(values, title: str, bins: int = 5) -> Colouring:
    """A binary attribute as two categories; a continuous one in `bins` quantile bins."""
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    if finite.all() and np.all(np.isin(v, (0.0, 1.0))):
        return by_categories(v.astype(np.int64), [f"not {title}", title], title)
    good = v[finite] if finite.any() else np.zeros(1)
    edges = np.unique(np.quantile(good, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([good.min(), good.min() + 1e-9])
    inner = edges[1:-1]
    codes = np.searchsorted(inner, np.where(finite, v, good.min()), side="right")
    k = len(edges) - 1
    colours = ramp(np.linspace(0, 1, k) if k > 1 else np.array([0.5]))
    counts = np.bincount(codes, minlength=k)
    span = float(edges[-1] - edges[0])
    entries = [(f"{_fmt(edges[i], span)} – {_fmt(edges[i + 1], span)}", int(counts[i])) for i in range(k)]
    return Colouring(title, codes, colours, entries, continuous=True)


def by_split(is_train, title: str = "split") -> Colouring:
    return by_categories(np.where(is_train, 0, 1), ["train", "test"], title)
