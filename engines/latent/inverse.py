"""Map ↔ latent for non-linear maps (UMAP), by modified Shepard interpolation.

A UMAP map is only known at the data points: point i sits at map coordinates p_i and has latent
z_i. Scrubbing needs a latent for *every* map point, instantly, on a map reopened from the disk
cache. `ScatterMap.to_latent(p)` blends the latents of the k nearest map points with the modified
Shepard weights of Franke & Nielson (1980):

    w_i = ((R − d_i)₊ / (R·d_i))²,   R = distance to the (k+1)-th nearest map point,

    z(p) = Σ w_i z_i / Σ w_i.

Why this and not `umap.UMAP.inverse_transform`:

- Exact at the data: w_i → ∞ as d_i → 0, so z(p_i) = z_i; clicking a data point decodes its
  own latent (umap's inverse is an optimisation from a random start and does not reproduce z_i).
- Continuous: a neighbour's weight falls to zero exactly when it is swapped out of the k nearest
  (d_k reaches R), so the latent changes smoothly while dragging — no jumps when the neighbour set
  changes, unlike a plain k-NN average; and deterministic, so there is no jitter either.
- Fast: a k-d tree query and a weighted sum, ~0.1–0.3 ms per point (a 200-point batch in < 1 ms),
  so it never limits the frame rate and a whole atlas grid is mapped at once. umap's
  inverse_transform took ~14 s per call (1 or 3 points alike: the cost is per call) on the 8,000
  encoded faces in bench/scrub.py — five orders of magnitude too slow to follow a drag.
- Needs only the 2-D coordinates and the latents, both cached without pickle; umap's inverse needs
  the fitted UMAP object, which can only be persisted by pickling (which the project refuses) —
  a reopened map would have to refit.

Limits, shown honestly in the GUI by `support`: between clusters the result is a blend of the
latents on either side (what "between" means on a UMAP map, but not a point UMAP would place
there), and far from all points it tends to the mean of the k nearest. The derivative vanishes
at data points (a Shepard property), so a drag slows down slightly as it crosses one.

`to_map(z)` goes the other way with the same weights over the k nearest *latents* — the same
weighted-average placement umap uses to initialise `transform` — so the current latent can be
marked on the map.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

DEFAULT_K = 8


def shepard_weights(d: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Modified Shepard weights for distances d (M, k) and radii (M, 1); rows sum to 1.
    Rows whose nearest distance is 0 put all weight on the coincident points (exactness);
    rows whose weights all vanish (ties at the radius) fall back to equal weights."""
    d = np.asarray(d, dtype=np.float64)
    radius = np.asarray(radius, dtype=np.float64)
    scale = np.maximum(radius, 1e-300)
    hit = d <= 1e-12 * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (np.clip(radius - d, 0.0, None) / (radius * d)) ** 2
    exact_rows = hit.any(1)
    w[exact_rows] = hit[exact_rows].astype(np.float64)
    w = np.where(np.isfinite(w), w, 0.0)
    total = w.sum(1, keepdims=True)
    empty = total[:, 0] <= 0
    w[empty] = 1.0
    total[empty] = w.shape[1]
    return w / total


class ScatterMap:
    """A `planes.LatentMap` known only at scattered points: coords (N, 2) ↔ latents (N, D)."""

    exact = False  # exact at the data points only

    def __init__(self, coords, latents, k: int = DEFAULT_K):
        self.coords = np.asarray(coords, dtype=np.float64)
        self.latents = np.asarray(latents, dtype=np.float64).reshape(len(latents), -1)
        if self.coords.ndim != 2 or self.coords.shape[1] != 2 or len(self.coords) != len(self.latents):
            raise ValueError(f"coords must be (N, 2) with one row per latent, got {self.coords.shape} and {self.latents.shape}")
        if len(self.coords) < 2:
            raise ValueError("a scatter map needs at least two points")
        self.k = int(max(1, min(k, len(self.coords) - 1)))
        self.tree = cKDTree(self.coords)
        # Typical spacing of the map points: the median distance to the nearest other point.
        d, _ = self.tree.query(self.coords[: min(len(self.coords), 5000)], k=2)
        self.spacing = float(np.median(d[:, 1])) or 1.0
        self._latent_nn = None  # the k-NN index over the latents, built when first needed

    @property
    def dim(self) -> int:
        return self.latents.shape[1]

    def _blend(self, d, idx, values):
        w = shepard_weights(d[:, :-1], d[:, -1:])
        return np.einsum("mk,mkd->md", w, values[idx[:, :-1]])

    def to_latent(self, points) -> np.ndarray:
        """Map points (M, 2) (or one (2,)) → latents (M, D) (or (D,)), float64."""
        p = np.asarray(points, dtype=np.float64)
        single = p.ndim == 1
        p = np.atleast_2d(p)
        d, idx = self.tree.query(p, k=self.k + 1)
        z = self._blend(d, idx, self.latents)
        return z[0] if single else z

    def knn_latent(self, z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest data latents of each row of z (M, D): distances and indices, ascending
        (scikit-learn's `NearestNeighbors`, fitted on first use)."""
        if self._latent_nn is None:
            from sklearn.neighbors import NearestNeighbors

            self._latent_nn = NearestNeighbors().fit(self.latents)
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        k = min(k, len(self.latents))
        _, idx = self._latent_nn.kneighbors(z, n_neighbors=min(k + 4, len(self.latents)))
        # Spare candidates re-ranked by distances recomputed directly (a brute-force ranking by the
        # |z|² − 2z·x + |x|² expansion loses precision near 0).
        d = np.linalg.norm(self.latents[idx] - z[:, None, :], axis=2)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(d, order, 1), np.take_along_axis(idx, order, 1)

    def to_map(self, z) -> np.ndarray:
        """Latents (M, D) (or one (D,)) → map coordinates, blended from the k nearest data latents."""
        z = np.asarray(z, dtype=np.float64)
        single = z.ndim == 1
        z = z.reshape(1, -1) if single else z.reshape(len(z), -1)
        d, idx = self.knn_latent(z, self.k + 1)
        p = self._blend(d, idx, self.coords)
        return p[0] if single else p

    def support(self, points) -> np.ndarray:
        """Distance from each map point to the nearest data point, in units of the typical spacing
        between data points: ≲ 1 means the latent is a blend of close neighbours, ≫ 1 means the
        cursor is in empty map space and the latent is only an average of distant points."""
        p = np.atleast_2d(np.asarray(points, dtype=np.float64))
        d, _ = self.tree.query(p, k=1)
        return d / self.spacing
