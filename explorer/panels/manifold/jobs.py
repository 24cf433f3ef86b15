"""What the Manifold panel computes, as plain functions that run in workers (no Qt here).

- `project`: PCA / latent axes / plane through three latents (milliseconds); `umap_job` wraps the
  cancellable, cached UMAP run.
- `render_frame`: map point or latent → latent → decoded image (the scrub, one frame).
- `inspect`: nearest data latents and the in-distribution indicator of one latent.
- `render_path`: the interpolation path through picked latents, its map trace and decoded strip.
- `atlas_job`: the coarse-to-fine atlas of the current map.

Every function takes the engine as a plain object with `encode`/`decode`/`latent_shape` (and an
optional `log_prior`), so a GAN with inversion or a diffusion model's deterministic latent plugs in
without changes here. The math lives in `engines.latent`; this module only adapts it. The model's
data (loaded and encoded once, shared by every panel) is the Workspace's (`explorer.workspace`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_NEIGHBOURS = 8


# ---- projections --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MapRequest:
    kind: str  # "pca" | "axes" | "points"
    i: int = 0
    j: int = 1
    points: tuple = ()  # three latents for "points"


def project(latents, req: MapRequest):
    """A `Projection` for a linear map (exact both ways)."""
    from engines.latent import projection as proj
    from engines.latent.planes import latent_axes_plane, plane_through

    if req.kind == "pca":
        return proj.pca_projection(latents)
    if req.kind == "axes":
        return proj.plane_projection(latents, latent_axes_plane(latents, req.i, req.j))
    if req.kind == "points":
        a, b, c = req.points
        return proj.plane_projection(latents, plane_through(a, b, c))
    raise ValueError(f"unknown map '{req.kind}'")


def umap_job(latents, params):
    """Generator for a worker: the cached or freshly computed UMAP `Projection`."""
    from engines.latent.projection import run_umap

    return (yield from run_umap(latents, params))


def axis_titles(projection) -> tuple[str, str]:
    m = projection.mapping
    meta = getattr(m, "meta", {}) or {}
    if projection.kind == "pca":
        ex = meta.get("explained", [0, 0])
        return f"PC 1 ({100 * ex[0]:.0f} % of variance, in std)", f"PC 2 ({100 * ex[1]:.0f} %, in std)"
    if projection.kind == "axes":
        return f"latent z{meta.get('i', 0)}", f"latent z{meta.get('j', 1)}"
    if projection.kind == "umap":
        return "UMAP 1", "UMAP 2"
    return "towards point 2 (b − a)", "towards point 3 (c − a)"


# ---- one frame: scrub, jump, animation ----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class FrameRequest:
    engine: object
    mapping: object  # the map's LatentMap (to place a latent on the map, or read one off it)
    point: tuple | None = None  # a map point: the latent is read off the map
    z: np.ndarray | None = None  # or a latent given directly
    origin: str = "drag"  # what asked: drag | click | jump | animate | undo…
    label: str = ""  # what the latent is ("#12 · smiling woman", "bookmark: home"), travels with it


@dataclass(frozen=True, eq=False)
class Frame:
    z: np.ndarray  # float32 (D,)
    point: tuple[float, float]  # where it sits on the map
    image: np.ndarray  # uint8 (H, W, C)
    off_map: float  # distance of z from the map's plane (0 on linear maps for map points)
    support: float | None  # UMAP maps: distance to the nearest data point in typical spacings


def render_frame(req: FrameRequest) -> Frame:
    from engines.data.dataset import to_uint8

    m = req.mapping
    if req.z is None:
        p = np.asarray(req.point, dtype=np.float64)
        z = np.asarray(m.to_latent(p), dtype=np.float32)
        point, off = (float(p[0]), float(p[1])), 0.0
    else:
        z = np.asarray(req.z, dtype=np.float32).reshape(-1)
        q = m.to_map(z)
        point = (float(q[0]), float(q[1]))
        off = float(m.distance(z)[0]) if hasattr(m, "distance") else 0.0
    support = float(m.support(point)[0]) if hasattr(m, "support") else None
    image = to_uint8(req.engine.decode(z[None]))[0]
    return Frame(z, point, image, off, support)


# ---- inspect --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Inspection:
    z: np.ndarray
    neighbours: np.ndarray  # data indices, nearest first
    distances: np.ndarray
    indicator: object  # engines.latent.neighbours.Indicator


def inspect(request) -> Inspection:
    from engines.latent.neighbours import nearest

    md, z = request
    z = np.asarray(z, dtype=np.float32).reshape(1, -1)
    nn = nearest(md.ls.latents, z, k=N_NEIGHBOURS)
    return Inspection(z[0], nn.indices[0], nn.distances[0], md.indicator(z))


# ---- paths ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Knot:
    """A picked point: a latent, or a map point still to be read off the map it was picked on."""

    z: np.ndarray | None = None
    point: tuple | None = None
    mapping: object = None

    def latent(self) -> np.ndarray:
        if self.z is not None:
            return np.asarray(self.z, dtype=np.float64).reshape(-1)
        return np.asarray(self.mapping.to_latent(np.asarray(self.point, dtype=np.float64)), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class PathRequest:
    engine: object
    mapping: object  # the map now shown (to draw the path on)
    knots: tuple  # Knot, …
    method: str = "slerp"
    steps: int = 8  # frames per segment in the decoded strip
    trace_steps: int = 40  # points per segment of the line drawn on the map (and the animation)


@dataclass(frozen=True, eq=False)
class PathResult:
    knots: np.ndarray  # (P, D) the picked latents, resolved
    knots_on_map: np.ndarray  # (P, 2)
    latents: np.ndarray  # (steps·(P−1)+1, D): the strip's latents (empty for P < 2)
    images: np.ndarray  # uint8 (T, H, W, C)
    fine: np.ndarray  # (trace_steps·(P−1)+1, D): the path finely sampled (the animation's frames)
    trace: np.ndarray  # (M, 2): `fine` on the map
    steps: int
    method: str


def render_path(req: PathRequest) -> PathResult:
    from engines.data.dataset import to_uint8
    from engines.latent.interpolate import path

    knots = np.stack([k.latent() for k in req.knots]) if req.knots else np.zeros((0, 0))
    on_map = np.asarray(req.mapping.to_map(knots), dtype=np.float64).reshape(-1, 2) if len(knots) else np.zeros((0, 2))
    if len(knots) < 2:
        empty = np.zeros((0, knots.shape[1] if knots.ndim == 2 else 0), np.float32)
        return PathResult(knots, on_map, empty, np.zeros((0, 1, 1, 1), np.uint8), empty, np.zeros((0, 2)),
                          req.steps, req.method)
    z = path(knots, req.steps, req.method)
    fine = path(knots, req.trace_steps, req.method)
    trace = np.asarray(req.mapping.to_map(fine), dtype=np.float64)
    images = to_uint8(req.engine.decode(z.astype(np.float32)))
    return PathResult(knots, on_map, z.astype(np.float32), images, fine.astype(np.float32), trace, req.steps, req.method)


# ---- atlas ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AtlasRequest:
    engine: object
    mapping: object
    center: tuple[float, float]
    extent: float  # half-side of the square, in map units
    resolution: int  # cells per side


def atlas_job(req: AtlasRequest):
    """Generator: first the `AtlasGrid` (where the cells are), then `Tile`s coarse to fine."""
    from engines.latent.atlas import decode_atlas, grid_latents

    grid = grid_latents(req.mapping, req.center, req.extent, req.resolution)
    yield grid
    batch = 16 if len(grid.latents) > 64 else 8
    yield from decode_atlas(req.engine, grid, batch=batch)
