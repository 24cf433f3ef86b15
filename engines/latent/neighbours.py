"""Nearest data latents and the in-distribution indicator (the Inspect panel).

Nearest neighbours are exact, through scikit-learn's `NearestNeighbors` ('auto': a k-d tree for
few dimensions, brute force for many): `Index` is built once and queried many times; `nearest`
keeps the index of the last few latent arrays it was asked about.

"Is this latent like the data?" is answered two ways:

- distance to the nearest *training* latent, read against the same statistic for the training
  latents themselves (each one's distance to its nearest other training latent). The percentile
  makes it model-independent: 50 is as close to the data as a typical training point is to its
  neighbours, 99 is farther than all but 1 % of them. This works for every engine.
- where the engine has a prior (`log_prior(z)`: VAE, PCA), the prior log-density, with the share
  of training latents that have a *higher* density (so again larger = more unusual). Read it
  together with the first: in many dimensions the prior's density peaks at the origin, where
  almost no data lie (the typical set is a shell), so a latent can be "0 % — densest" by the
  prior and still far from every training latent; conversely a VAE's encoded data leave holes
  in the prior, so a prior sample can be dense by the prior and far from the data.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import torch

# Verdict thresholds on the nearest-neighbour percentile.
TYPICAL, UNUSUAL = 90.0, 99.0


@dataclass(frozen=True, eq=False)
class Neighbours:
    indices: np.ndarray  # int64 (M, k), nearest first, into the searched latents
    distances: np.ndarray  # float32 (M, k), Euclidean


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    return a.reshape(len(a), -1) if a.ndim > 1 else a.reshape(1, -1)


def _t(x) -> torch.Tensor:
    return torch.from_numpy(_np(x))


class Index:
    """Exact Euclidean k-nearest-neighbour search over fixed latents (N, D), by scikit-learn's
    `NearestNeighbors` ('auto': a k-d or ball tree where that pays, brute force otherwise; exact
    either way). Build once, query many times; `nearest` is the one-shot form."""

    def __init__(self, latents, algorithm: str = "auto"):
        from sklearn.neighbors import NearestNeighbors

        self.db = _np(latents)
        self.nn = NearestNeighbors(algorithm=algorithm).fit(self.db) if len(self.db) else None

    def __len__(self) -> int:
        return len(self.db)

    def query(self, queries, k: int = 8, exclude: np.ndarray | None = None) -> Neighbours:
        """The k nearest latents to each query (M, D) (or one (D,)); `exclude` (M,) optionally
        names one index per query to skip (the query's own data point)."""
        q = _np(queries)
        if q.shape[1] != self.db.shape[1]:
            raise ValueError(f"queries have {q.shape[1]} dimensions, the latents {self.db.shape[1]}")
        n = len(self.db)
        k_eff = min(int(k), n - (1 if exclude is not None else 0))
        if k_eff < 1:
            raise ValueError("not enough latents to search")
        if len(q) == 0:
            return Neighbours(np.zeros((0, k_eff), np.int64), np.zeros((0, k_eff), np.float32))
        # A few spare candidates, re-ranked by distances recomputed directly: brute force ranks by
        # |q|² − 2q·x + |x|², which loses precision for near-identical vectors (a point's distance
        # to itself comes out 1e-7, not 0).
        _, idx = self.nn.kneighbors(q, n_neighbors=min(n, k_eff + 5))
        d = np.linalg.norm(self.db[idx] - q[:, None, :], axis=2)
        if exclude is not None:
            d[idx == np.asarray(exclude, np.int64).reshape(-1, 1)] = np.inf
        order = np.argsort(d, axis=1, kind="stable")[:, :k_eff]
        idx, d = np.take_along_axis(idx, order, 1), np.take_along_axis(d, order, 1)
        return Neighbours(idx.astype(np.int64), d.astype(np.float32))


# Indexes of the latents `nearest` was last asked about, by array object (weak-referenced, so an
# index never outlives or is reused for its array; like cache's image digests this assumes latent
# arrays are not modified in place, which nothing does). The Inspect panel asks about the same
# data latents on every scrub: a k-d tree built once answers in about a millisecond.
_INDEXES: dict[int, tuple[weakref.ref, Index]] = {}
_KEEP = 4


def index_of(latents) -> Index:
    """An `Index` over `latents`, built once per numpy array (anything else: built each call)."""
    if not isinstance(latents, np.ndarray):
        return Index(latents)
    key = id(latents)
    hit = _INDEXES.get(key)
    if hit is not None and hit[0]() is latents:
        return hit[1]
    ix = Index(latents)
    while len(_INDEXES) >= _KEEP:
        _INDEXES.pop(next(iter(_INDEXES)), None)
    _INDEXES[key] = (weakref.ref(latents, lambda _r, k=key: _INDEXES.pop(k, None)), ix)
    return ix


def nearest(latents, queries, k: int = 8, exclude: np.ndarray | None = None) -> Neighbours:
    """The k nearest of `latents` (N, D) to each query (M, D) (or one (D,)), by Euclidean distance.
    `exclude` (M,) optionally names one index per query to skip (the query's own data point)."""
    return index_of(latents).query(queries, k=k, exclude=exclude)


@dataclass(frozen=True)
class Indicator:
    nn_distance: float  # to the nearest training latent
    nn_index: int  # which one (an index into the data set when built with `indices`)
    nn_ratio: float  # nn_distance / the median nearest-neighbour distance among training latents
    nn_percentile: float  # 0–100: share of training latents whose own NN distance is smaller
    log_prior: float | None  # log p(z) under the engine's prior, when it has one
    prior_percentile: float | None  # 0–100: share of training latents with a higher log p(z)
    verdict: str  # "typical" | "unusual" | "far from the data"


class InDistribution:
    """Built once per LatentSet from its training latents; called per scrubbed latent (~1 ms)."""

    def __init__(self, train_latents, engine=None, indices: np.ndarray | None = None,
                 reference: int = 2000, seed: int = 0):
        self.db = _t(train_latents)
        self.index = Index(self.db)
        self.indices = np.arange(len(self.db)) if indices is None else np.asarray(indices)
        if len(self.db) < 2:
            raise ValueError("the in-distribution indicator needs at least two training latents")
        rng = np.random.default_rng(seed)
        ref = rng.choice(len(self.db), size=min(reference, len(self.db)), replace=False)
        # Leave-one-out nearest-neighbour distances of a sample of training latents.
        nn = self.index.query(self.db[ref], k=1, exclude=ref)
        self.reference_nn = np.sort(nn.distances[:, 0].astype(np.float64))
        self.median_nn = float(np.median(self.reference_nn)) or 1e-12
        self.engine = engine if engine is not None and "log_prior" in engine.capabilities else None
        self.reference_prior = None
        if self.engine is not None:
            self.reference_prior = np.sort(self._log_prior(self.db[ref]))

    def _log_prior(self, z: torch.Tensor) -> np.ndarray:
        e = self.engine
        with e.lock, torch.inference_mode():
            dev = getattr(e, "device", "cpu")
            shape = tuple(getattr(e, "latent_shape", (z.shape[1],)))
            zz = z.to(dev)
            if len(shape) > 1:
                zz = zz.reshape(len(zz), *shape)
            lp = e.log_prior(zz)
            return lp.reshape(len(zz), -1).sum(1).to("cpu", torch.float64).numpy()

    def __call__(self, z) -> Indicator:
        return self.batch(z)[0]

    def batch(self, z) -> list[Indicator]:
        q = _t(z)
        nn = self.index.query(q, k=1)
        d = nn.distances[:, 0].astype(np.float64)
        pct = 100.0 * np.searchsorted(self.reference_nn, d, side="left") / len(self.reference_nn)
        lp = self._log_prior(q) if self.engine is not None else None
        out = []
        for m in range(len(q)):
            prior_pct = None
            if lp is not None:
                higher = len(self.reference_prior) - np.searchsorted(self.reference_prior, lp[m], side="right")
                prior_pct = float(100.0 * higher / len(self.reference_prior))
            p = float(pct[m])
            verdict = "typical" if p <= TYPICAL else ("unusual" if p <= UNUSUAL else "far from the data")
            out.append(Indicator(float(d[m]), int(self.indices[nn.indices[m, 0]]), float(d[m] / self.median_nn), p,
                                 None if lp is None else float(lp[m]), prior_pct, verdict))
        return out
