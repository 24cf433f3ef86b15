"""Nearest data latents and the in-distribution indicator (the Inspect panel).

Nearest neighbours are brute force: for ≤ 50,000 latents a chunked distance matrix is a few
milliseconds per query and exact, with no index to build or invalidate.

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

from dataclasses import dataclass

import numpy as np
import torch

CHUNK = 2048  # query rows per distance block: bounds memory at CHUNK × N floats

# Verdict thresholds on the nearest-neighbour percentile.
TYPICAL, UNUSUAL = 90.0, 99.0


@dataclass(frozen=True, eq=False)
class Neighbours:
    indices: np.ndarray  # int64 (M, k), nearest first, into the searched latents
    distances: np.ndarray  # float32 (M, k), Euclidean


def _t(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu", torch.float32)
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float32)))
    return t.reshape(len(t), -1) if t.dim() > 1 else t.reshape(1, -1)


def nearest(latents, queries, k: int = 8, exclude: np.ndarray | None = None) -> Neighbours:
    """The k nearest of `latents` (N, D) to each query (M, D) (or one (D,)), by Euclidean distance.
    `exclude` (M,) optionally names one index per query to skip (the query's own data point)."""
    db = _t(latents)
    q = _t(queries)
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions, the latents {db.shape[1]}")
    n = len(db)
    k_eff = min(int(k), n - (1 if exclude is not None else 0))
    if k_eff < 1:
        raise ValueError("not enough latents to search")
    idx_out, d_out = [], []
    db_sq = (db * db).sum(1)
    with torch.inference_mode():
        for s in range(0, len(q), CHUNK):
            qc = q[s:s + CHUNK]
            d2 = (qc * qc).sum(1, keepdim=True) - 2.0 * qc @ db.T + db_sq
            if exclude is not None:
                ex = torch.as_tensor(np.asarray(exclude)[s:s + CHUNK], dtype=torch.long)
                d2[torch.arange(len(qc)), ex] = float("inf")
            # Take a few spare candidates by the fast expansion, then rank them by exact distances
            # (the expansion loses precision for near-identical vectors).
            cand = torch.topk(d2, min(n, k_eff + 4), dim=1, largest=False).indices
            exact = (db[cand] - qc[:, None, :]).norm(dim=2)
            if exclude is not None:
                exact[cand == ex[:, None]] = float("inf")
            order = exact.argsort(dim=1)[:, :k_eff]
            idx_out.append(torch.gather(cand, 1, order))
            d_out.append(torch.gather(exact, 1, order))
    return Neighbours(torch.cat(idx_out).numpy().astype(np.int64), torch.cat(d_out).numpy().astype(np.float32))


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
        self.indices = np.arange(len(self.db)) if indices is None else np.asarray(indices)
        if len(self.db) < 2:
            raise ValueError("the in-distribution indicator needs at least two training latents")
        rng = np.random.default_rng(seed)
        ref = rng.choice(len(self.db), size=min(reference, len(self.db)), replace=False)
        # Leave-one-out nearest-neighbour distances of a sample of training latents.
        nn = nearest(self.db, self.db[ref], k=1, exclude=ref)
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
        nn = nearest(self.db, q, k=1)
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
