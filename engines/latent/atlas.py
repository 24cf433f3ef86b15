"""The latent atlas: a grid of decoded images tiled over the current map, refined coarse-to-fine.

The grid has `rows × cols` cells over the map rectangle centre ± extent; each cell shows the
decoding of the latent at the cell's centre (`grid_latents`, through any `planes.LatentMap`, so
linear planes and UMAP maps tile the same way). Row 0 is the top (largest y), column 0 the left.

Refinement order (`refinement_levels`) is interlaced like Adam7: the first level decodes every
s-th cell (s the largest power of two ≤ half the grid side) and each image stands in for the whole
s×s block below and right of it; each next level halves s and decodes only the cells not yet
decoded. Every cell is decoded exactly once, so the full grid costs no more than a plain pass, yet
a usable picture appears after 4 decodes. (A coarse tile shows its top-left cell's latent, so
until refined it sits half a block off its true place; the finest level is exact.)

`decode_atlas` is the background job: a generator yielding decoded tiles level by level, batch by
batch, so a view paints progressively and a Cancel (closing the generator) lands between batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np



@dataclass(frozen=True, eq=False)
class AtlasGrid:
    center: tuple[float, float]
    extent: tuple[float, float]  # half-width, half-height in map units
    rows: int
    cols: int
    coords: np.ndarray  # (rows, cols, 2) map coordinates of the cell centres
    latents: np.ndarray  # (rows·cols, D), row-major: cell (r, c) is index r·cols + c

    def cell(self, index: int) -> tuple[int, int]:
        return divmod(int(index), self.cols)


@dataclass(frozen=True)
class Level:
    stride: int  # each decoded image covers a stride × stride block of cells until refined
    indices: np.ndarray  # flat cell indices decoded at this level


@dataclass(frozen=True, eq=False)
class Tile:
    level: int
    stride: int
    indices: np.ndarray  # flat cell indices
    images: np.ndarray  # uint8 (len(indices), H, W, C)


def _pair(x) -> tuple[float, float]:
    if np.ndim(x) == 0:
        return float(x), float(x)
    a, b = x
    return float(a), float(b)


def grid_points(center, extent, resolution) -> np.ndarray:
    """Cell centres (rows, cols, 2) tiling centre ± extent; `resolution` is n or (rows, cols)."""
    cx, cy = _pair(center)
    ex, ey = _pair(extent)
    if ex <= 0 or ey <= 0:
        raise ValueError("the atlas extent must be positive")
    rows, cols = (int(resolution), int(resolution)) if np.ndim(resolution) == 0 else map(int, resolution)
    if rows < 1 or cols < 1:
        raise ValueError("the atlas needs at least one row and one column")
    xs = cx - ex + (np.arange(cols) + 0.5) * (2 * ex / cols)
    ys = cy + ey - (np.arange(rows) + 0.5) * (2 * ey / rows)  # row 0 at the top
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx, gy], -1)


def grid_latents(mapping, center=(0.0, 0.0), extent=3.0, resolution=16) -> AtlasGrid:
    """Latents at the cell centres of the grid over centre ± extent (map units), through `mapping`
    (a `planes.Plane`, an `inverse.ScatterMap` — anything with `to_latent`)."""
    pts = grid_points(center, extent, resolution)
    rows, cols = pts.shape[:2]
    z = np.asarray(mapping.to_latent(pts.reshape(-1, 2)), dtype=np.float64)
    return AtlasGrid(_pair(center), _pair(extent), rows, cols, pts, z)


def refinement_levels(rows: int, cols: int | None = None) -> list[Level]:
    """Coarse-to-fine decoding order: every cell appears in exactly one level."""
    cols = rows if cols is None else cols
    side = max(rows, cols)
    stride = 1
    while stride * 2 <= max(side // 2, 1):
        stride *= 2
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    done = np.zeros((rows, cols), bool)
    levels = []
    while stride >= 1:
        sel = (r % stride == 0) & (c % stride == 0) & ~done
        if sel.any():
            levels.append(Level(stride, np.flatnonzero(sel.ravel())))
            done |= sel
        stride //= 2
    return levels


def decode_atlas(engine, grid: AtlasGrid, batch: int = 32) -> Iterator[Tile]:
    """Decode the grid coarse-to-fine, yielding `Tile`s to paint as they come; each yield is a
    Cancel point (the worker closes the generator). `batch` bounds the latency between yields (at 64×64 on a CPU,
    32 images ≈ 0.1–0.3 s)."""
    from engines.data.dataset import to_uint8

    z = grid.latents.astype(np.float32)
    for li, level in enumerate(refinement_levels(grid.rows, grid.cols)):
        for start in range(0, len(level.indices), batch):
            idx = level.indices[start:start + batch]
            images = to_uint8(engine.decode(z[idx]))
            yield Tile(li, level.stride, idx, images)
