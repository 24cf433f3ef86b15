"""Planes in latent space: the exact maps between 2-D map coordinates and latents.

A `Plane` is an origin o and two basis vectors u, v in latent space (D = prod(latent_shape));
the map point (x, y) *is* the latent o + x·u + y·v. Going back, `to_map(z)` is the orthogonal
(least-squares) projection of z onto the plane expressed in (u, v) coordinates, so
to_map(to_latent(p)) = p exactly (up to float rounding) even when u and v are not orthogonal —
the plane through three picked latents is not. Dragging on a linear map therefore never
approximates: the latent under the cursor is the one decoded.

Built from two latent axes (for 2-D latents: the latent space itself), the top two principal
axes of the encoded data (scaled so one map unit is one standard deviation), or exactly through
three picked latents a, b, c with map coordinates (0,0), (1,0), (0,1).

`LatentMap` is the interface the Scrub and Atlas panels use; `inverse.ScatterMap` (for UMAP
maps) implements it too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class LatentMap(Protocol):
    """Map coordinates (M, 2) ↔ flattened latents (M, D)."""

    exact: bool  # True when to_latent is exact everywhere (linear planes)

    def to_latent(self, points) -> np.ndarray: ...

    def to_map(self, z) -> np.ndarray: ...


def _vec(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or Inf")
    return arr


def _points(points) -> tuple[np.ndarray, bool]:
    p = np.asarray(points, dtype=np.float64)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    if p.shape[-1] != 2:
        raise ValueError(f"map points must have shape (M, 2), got {np.shape(points)}")
    return p, single


@dataclass(frozen=True, eq=False)
class Plane:
    """The affine plane {origin + x·u + y·v}. `kind` and `meta` say how it was made (for titles,
    axis labels and saving a session)."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    kind: str = "custom"
    meta: dict = field(default_factory=dict)
    exact: bool = True

    def __post_init__(self):
        o, u, v = _vec(self.origin, "origin"), _vec(self.u, "u"), _vec(self.v, "v")
        if not (len(o) == len(u) == len(v)):
            raise ValueError(f"origin, u and v must have the same length, got {len(o)}, {len(u)}, {len(v)}")
        gram = np.array([[u @ u, u @ v], [u @ v, v @ v]])
        # The basis must span a plane: a (near-)singular Gram matrix means u ∥ v or a zero vector.
        scale = max(gram[0, 0], gram[1, 1], 1e-300)
        if abs(np.linalg.det(gram)) <= 1e-12 * scale * scale:
            raise ValueError("the two directions do not span a plane (parallel or zero)")
        object.__setattr__(self, "origin", o)
        object.__setattr__(self, "u", u)
        object.__setattr__(self, "v", v)
        object.__setattr__(self, "_basis", np.stack([u, v], 1))  # (D, 2)
        # Solving the 2×2 normal equations gives (x, y) = G⁻¹ Bᵀ(z − o): the projection's coordinates.
        object.__setattr__(self, "_pinv", np.linalg.solve(gram, np.stack([u, v])))  # (2, D)

    @property
    def dim(self) -> int:
        return len(self.origin)

    def to_latent(self, points) -> np.ndarray:
        """Map points (M, 2) (or one (2,)) → latents (M, D) (or (D,)), float64."""
        p, single = _points(points)
        z = self.origin + p @ self._basis.T
        return z[0] if single else z

    def to_map(self, z) -> np.ndarray:
        """Latents (M, D) (or one (D,)) → map coordinates of their orthogonal projection onto the plane."""
        z = np.asarray(z, dtype=np.float64)
        single = z.ndim == 1
        z = z.reshape(1, -1) if single else z.reshape(len(z), -1)
        p = (z - self.origin) @ self._pinv.T
        return p[0] if single else p

    def distance(self, z) -> np.ndarray:
        """How far each latent lies off the plane (0 for latents on it)."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        z = z.reshape(len(z), -1)
        return np.linalg.norm(z - self.to_latent(self.to_map(z)), axis=1)

    def with_origin(self, origin) -> "Plane":
        """The parallel plane through `origin` (e.g. re-centred on the current latent)."""
        return Plane(_vec(origin, "origin"), self.u, self.v, self.kind, dict(self.meta))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "meta": self.meta, "origin": self.origin.tolist(),
                "u": self.u.tolist(), "v": self.v.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Plane":
        return cls(np.asarray(d["origin"]), np.asarray(d["u"]), np.asarray(d["v"]),
                   d.get("kind", "custom"), dict(d.get("meta", {})))


# ---- constructors ----------------------------------------------------------------------------------------
def axes_plane(dim: int, i: int = 0, j: int = 1, origin=None, scale=(1.0, 1.0)) -> Plane:
    """Latent axes i and j through `origin` (default 0; the data mean is a good choice), with map
    unit `scale` along each (e.g. the data's standard deviations). For 2-D latents with the
    defaults this is the latent space itself: map point = latent."""
    if not (0 <= i < dim and 0 <= j < dim) or i == j:
        raise ValueError(f"axes must be two different indices in [0, {dim}), got {i} and {j}")
    o = np.zeros(dim) if origin is None else _vec(origin, "origin")
    u = np.zeros(dim)
    v = np.zeros(dim)
    u[i] = float(scale[0])
    v[j] = float(scale[1])
    return Plane(o, u, v, "axes", {"i": int(i), "j": int(j)})


def latent_axes_plane(latents, i: int = 0, j: int = 1) -> Plane:
    """Latent axes i, j in their own units (map point = (z_i, z_j)), the other coordinates held at
    the data mean: for 2-D latents this is the latent space itself."""
    z = np.asarray(latents, dtype=np.float64).reshape(len(latents), -1)
    d = z.shape[1]
    if not (0 <= i < d and 0 <= j < d) or i == j:
        raise ValueError(f"choose two different latent axes between 0 and {d - 1}")
    origin = z.mean(0)
    origin[[i, j]] = 0.0
    return axes_plane(d, i, j, origin=origin)


def data_axes_plane(latents, i: int = 0, j: int = 1) -> Plane:
    """Latent axes i, j through the data mean, one map unit = one standard deviation of the data."""
    z = np.asarray(latents, dtype=np.float64).reshape(len(latents), -1)
    std = z.std(0)
    p = axes_plane(z.shape[1], i, j, origin=z.mean(0), scale=(max(std[i], 1e-12), max(std[j], 1e-12)))
    return Plane(p.origin, p.u, p.v, "axes", {"i": int(i), "j": int(j), "units": "std"})


def principal_axes(x, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """PCA of the rows of x (N, D): their mean, the variances along the top `k` principal axes
    (all when None), descending, those axes as unit columns (D, k), and the total variance.
    Signs are fixed (largest-magnitude coordinate positive) so the same data gives the same axes.
    An eigen-decomposition (float64) of the D×D covariance (`covariance`): all of it (LAPACK) for
    small D or most axes, else only the top k eigenpairs (ARPACK's Lanczos from a fixed start:
    0.4 s instead of 4 s for the top 8 of 2048 features)."""
    mean, cov = covariance(x)
    d = len(mean)
    k = d if k is None else int(k)
    if d > 256 and k < d // 2:
        from scipy.sparse.linalg import eigsh

        var, vecs = eigsh(cov, k=k, which="LA", v0=np.ones(d))
    else:
        var, vecs = np.linalg.eigh(cov)
    order = np.argsort(var)[::-1][:k]
    var, vecs = np.maximum(var[order], 0.0), vecs[:, order]
    vecs = vecs * np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    return mean, var, vecs, float(np.trace(cov))


# Bytes per block of rows in the covariance and map passes: the centred data is never
# materialised whole. A fresh 2.5 MB temporary per call (10,000 × 64 float32) cost 0.2-0.9 ms of
# page faults depending on the allocator's state, which made the same PCA projection 1.3 ms in one
# process and 2.4 ms in another. At least 256 rows and at least D rows a block, so that adding each
# block's D×D Gram matrix into the sum stays small beside computing it (wide data, 4,096 × 2,048
# GANSpace activations, top 8 axes: 477 ms in 256-row blocks, 268 ms in 2,048-row ones; the
# float64 path before: 312 ms).
PCA_BLOCK_BYTES = 1 << 18
PCA_BLOCK_MIN_ROWS = 256


def _row_blocks(z: np.ndarray):
    d = z.shape[1]
    rows = max(PCA_BLOCK_MIN_ROWS, d, PCA_BLOCK_BYTES // (4 * d))
    buf = np.empty((min(rows, len(z)), d), np.float32)
    for a in range(0, len(z), rows):
        blk = z[a:a + rows]
        yield a, blk, buf[:len(blk)]


# The direct (uncentred) float32 Gram ZᵀZ: one BLAS syrk over the data with no centring pass
# (10,000 × 64: 0.7 ms against 1.1 ms centred in blocks), for at most DIRECT_GRAM_MAX_N rows of at
# most DIRECT_GRAM_MAX_D coordinates, kept only where every coordinate's mean is within
# DIRECT_GRAM_MEAN_SDS standard deviations of zero. Its float32 rounding (the mean's above all, which
# enters the covariance as 2·m·δ) grows with the mean and with N: per entry, relative to
# √(varᵢ·varⱼ), measured 2e-7 / 7e-7 / 2e-6 at 0 / 0.5 / 0.95 sd on 10,000 rows and 4e-7 / 2e-6 /
# 5.5e-6 on 65,536 (the mean within 3e-6 sd), against 0.6-1.5e-7 for the centred pass. A strided
# sample of rows screens the mean first, so data further out (a plain AE's latents, post-ReLU
# features) rarely pays for a Gram it discards; wide data (GANSpace activations) goes straight to
# the centred pass. The map's direct product (`map_coordinates`) rounds far less
# (≤ 1.3× the centred product's error at 2 sd) and keeps DIRECT_MAP_SDS.
DIRECT_GRAM_MAX_D = 256
DIRECT_GRAM_MAX_N = 1 << 16
DIRECT_GRAM_MEAN_SDS = 1.0
DIRECT_MAP_SDS = 2.0


def _direct_covariance(z: np.ndarray, m32: np.ndarray):
    """(mean, covariance) from the uncentred Gram, or None where the data is too far out for it."""
    n, d = z.shape
    if n < 2 or n > DIRECT_GRAM_MAX_N or d > DIRECT_GRAM_MAX_D:
        return None
    # Screen on ~1,000 rows (~20 µs): a mean clearly too far out takes no Gram; the check below decides.
    sample = z[::max(1, n // 1024)]
    var_est = np.einsum("ij,ij->j", sample, sample) / np.float32(len(sample)) - m32 * m32
    if np.any(m32 * m32 > (1.5 * DIRECT_GRAM_MEAN_SDS) ** 2 * var_est):
        return None
    zc = np.ascontiguousarray(z)
    gram = (zc.T @ zc).astype(np.float64)  # one syrk (numpy spots Aᵀ·A)
    mean = m32.astype(np.float64)
    cov = (gram - n * np.outer(mean, mean)) / (n - 1)
    var = np.diag(cov)
    if not np.all(var > 0) or np.any(mean * mean > DIRECT_GRAM_MEAN_SDS ** 2 * var):
        return None
    return mean, cov


def covariance(x) -> tuple[np.ndarray, np.ndarray]:
    """(mean (D,) float64, covariance (D, D) float64) of the rows of x (N, D), taken as float32.

    Near the origin (N ≤ DIRECT_GRAM_MAX_N, D ≤ DIRECT_GRAM_MAX_D, each mean within
    DIRECT_GRAM_MEAN_SDS standard deviations of zero, checked on the result) the covariance is the
    uncentred float32 Gram less n·m·mᵀ in float64, as scikit-learn's covariance solver does; the
    mean is then the float32 BLAS sum (see DIRECT_GRAM_MEAN_SDS for the rounding). Otherwise one
    pass over the data in blocks of rows (a reused buffer): each block is centred on a float32 mean
    taken by one BLAS product (a float64 `mean` costs 9× more) and its Gram matrix added in float64. The float32 mean's rounding error r is measured on the
    centred blocks and taken out: the mean is exact to float64 rounding of r and the covariance is
    ZcᵀZc/(n−1) − n/(n−1)·r rᵀ; where r is more than 1e-3 of a standard deviation (a mean 1e4
    spreads and more from the origin), the data is centred again on the corrected mean. float64
    input is rounded to float32 first (latents and activations are float32 to begin with)."""
    z = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    n, d = z.shape
    ones = np.ones(n, np.float32)
    m32 = (ones @ z) / np.float32(max(n, 1))
    direct = _direct_covariance(z, m32)
    if direct is not None:
        return direct
    for _ in range(2):
        gram, s = np.zeros((d, d)), np.zeros(d)
        for _, blk, buf in _row_blocks(z):
            zc = np.subtract(blk, m32, out=buf)
            s += ones[:len(zc)] @ zc  # a BLAS product per block (a float64 `sum` took 0.4 ms of 1.3)
            gram += zc.T @ zc
        r = s / max(n, 1)  # what the float32 mean missed
        mean, cov = m32.astype(np.float64) + r, (gram - n * np.outer(r, r)) / max(n - 1, 1)
        # Far from the origin (offset/spread ~1e4 and more) the BLAS mean can miss by a sizeable
        # part of the spread, and the rank-1 fix then cancels badly: centre again on the corrected
        # mean (a second pass, only then).
        if not np.any(np.abs(r) > 1e-3 * np.sqrt(np.maximum(np.diag(cov), np.finfo(np.float32).tiny))):
            break
        m32 = mean.astype(np.float32)
    return mean, cov


def pca_fit(latents) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean (D,) float64, variances (D,) descending, directions (D, D) as columns) of the latents
    (`principal_axes`, all of them): what scikit-learn's covariance solver does, ~1 ms for
    10,000 × 64."""
    z = np.asarray(latents, dtype=np.float32).reshape(len(latents), -1)
    if len(z) < 2 or z.shape[1] < 2:
        raise ValueError(f"a PCA plane needs at least 2 latents of at least 2 dimensions, got {z.shape}")
    mean, var, vecs, _ = principal_axes(z)
    return mean, var, vecs


def map_coordinates(plane: "Plane", latents) -> np.ndarray:
    """`plane.to_map` of many latents (M, D) as float32 (M, 2).

    First directly, Z·Pᵀ − o·Pᵀ (one BLAS product, no centred copy: 10,000 × 64 in 0.1 ms against
    0.35 ms centred). Its float32 rounding beyond the centred product's grows with Σⱼ|oⱼ·Pₖⱼ|, the
    origin's share of the dot products; it is kept where that is at most DIRECT_MAP_SDS times
    the spread (standard deviation) of the map coordinates it produced — a PCA map of data near
    the origin. Otherwise the data is centred on the origin rounded to float32 in blocks of rows
    (no float64 or full-size centred copy) and that rounding is taken out of the coordinates
    exactly (it is one fixed offset on the map)."""
    z = np.asarray(latents, dtype=np.float32).reshape(len(latents), -1)
    pinv_t = plane._pinv.T.astype(np.float32)
    if len(z) >= 2:
        out = z @ pinv_t
        out -= (plane.origin @ plane._pinv.T).astype(np.float32)
        share = np.abs(plane.origin) @ np.abs(plane._pinv.T)
        n = np.float32(len(out))
        mean = (np.ones(len(out), np.float32) @ out) / n  # BLAS products: ndarray.std took 0.25 ms
        var = np.diag(out.T @ out) / n - mean * mean
        if np.all(share ** 2 <= DIRECT_MAP_SDS ** 2 * var):
            return out
    o32 = plane.origin.astype(np.float32)
    out = np.empty((len(z), 2), np.float32)
    for a, blk, buf in _row_blocks(z):
        np.matmul(np.subtract(blk, o32, out=buf), pinv_t, out=out[a:a + len(blk)])
    out -= ((plane.origin - o32.astype(np.float64)) @ plane._pinv.T).astype(np.float32)
    return out


def pca_plane(latents, components: tuple[int, int] = (0, 1)) -> Plane:
    """The plane of two principal axes of the latents (default the top two) through their mean.
    u, v are the principal directions scaled by the standard deviation along them, so map
    units are standard deviations and the map of the data is its usual PCA scatter, whitened.
    Signs are fixed (`principal_axes`: largest-magnitude coordinate positive) so the same data
    gives the same map."""
    mean, var, vecs = pca_fit(latents)
    a, b = components
    u, v = (vecs[:, k] * np.sqrt(max(var[k], 1e-24)) for k in (a, b))
    total = float(var.sum())
    explained = [float(var[a] / total), float(var[b] / total)] if total > 0 else [0.0, 0.0]
    return Plane(mean, u, v, "pca", {"components": [int(a), int(b)], "explained": explained})


def plane_through(a, b, c) -> Plane:
    """The plane exactly through three latents: origin a, u = b − a, v = c − a, so the map
    coordinates of a, b, c are (0,0), (1,0), (0,1) and every blend αa + βb + γc with
    α + β + γ = 1 lies on it. Raises ValueError for collinear points."""
    a, b, c = _vec(a, "a"), _vec(b, "b"), _vec(c, "c")
    try:
        return Plane(a, b - a, c - a, "three points", {})
    except ValueError:
        raise ValueError("the three latents are collinear (or coincide): they do not define a plane") from None


def plane_for(latents, kind: str = "pca", **kw) -> Plane:
    """Dispatch by name: "pca", "axes" (i, j) or "points" (a, b, c)."""
    if kind == "pca":
        return pca_plane(latents, **kw)
    if kind == "axes":
        return data_axes_plane(latents, **kw)
    if kind == "points":
        return plane_through(kw["a"], kw["b"], kw["c"])
    raise ValueError(f"unknown plane kind '{kind}' (pca, axes, points)")
