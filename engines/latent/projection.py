"""2-D maps of the encoded data: PCA and latent axes at once, UMAP in the background.

Every projection returns a `Projection`: the map coordinates of the data points and the
`mapping` between map and latent space that Scrub and Atlas use — an exact `planes.Plane` for
PCA and latent axes, an `inverse.ScatterMap` for UMAP (see inverse.py for why that, and not
umap's own inverse_transform).

PCA is an eigen-decomposition of the D×D latent covariance (planes.pca_fit): ~1 ms for 10,000 × 64.

UMAP (`run_umap`) is a generator for a worker thread: it yields `Progress` and returns the
`Projection`; closing it (the worker's Cancel) stops the computation. What the progress and the
Cancel can honestly resolve, stage by stage:

1. "neighbours": the k-nearest-neighbour graph (pynndescent for ≥ 4096 points; for fewer,
   UMAP's exact all-pairs path, folded into stage 2). No progress inside; a Cancel is honoured
   when the stage ends. On first use in a process numba compiles here (tens of seconds).
2. "graph": fuzzy simplicial set and spectral initialisation. No progress inside; Cancel at its end.
3. "layout": the SGD epochs, reported one by one (via the `tqdm_kwds` hook of UMAP's public
   API); a Cancel stops it within one epoch (milliseconds).

The computation runs in a helper thread so the generator can report and honour a Cancel at
these points while the numba code runs; after a Cancel inside stages 1–2 the helper finishes the
stage in the background, then stops and discards it — the generator itself returns at once.

Results are cached under `<cache>/umap/<key>.npz` (just the (N, 2) float32 coordinates and the
parameters as JSON; no pickle), the key hashing the latents themselves and the parameters, so the
same model + data + parameters reopen instantly and anything else recomputes.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Generator

import numpy as np

from engines import atomic
from engines.latent.inverse import DEFAULT_K, ScatterMap
from engines.latent.planes import Plane, data_axes_plane, latent_axes_plane, map_coordinates, pca_plane
from engines.latent.progress import Progress

CACHE_VERSION = 1
METRICS = ("euclidean", "cosine", "manhattan", "correlation", "chebyshev")
SMALL_DATA = 4096  # below this UMAP computes exact neighbours itself


def _spans(n: int) -> dict:
    """Share of the progress bar per stage (a rough guess; the GUI shows the stage name too)."""
    if n >= SMALL_DATA:
        return {"neighbours": (0.0, 0.3), "graph": (0.3, 0.4), "layout": (0.4, 1.0)}
    return {"graph": (0.0, 0.2), "layout": (0.2, 1.0)}


@dataclass(frozen=True, eq=False)
class Projection:
    kind: str  # "pca" | "axes" | "umap"
    coords: np.ndarray  # float32 (N, 2): where each data point sits on the map
    mapping: object  # planes.Plane (exact) or inverse.ScatterMap: map ↔ latent
    params: dict = field(default_factory=dict)
    from_cache: bool = False
    seconds: float = 0.0  # compute time (0 when read from the cache)


def _flat(latents) -> np.ndarray:
    z = np.asarray(latents, dtype=np.float32)
    return np.ascontiguousarray(z.reshape(len(z), -1))


def pca_projection(latents) -> Projection:
    """The data on its top two principal axes, in standard deviations; the mapping is exact."""
    t0 = time.perf_counter()
    z = _flat(latents)
    plane = pca_plane(z)
    coords = map_coordinates(plane, z)
    return Projection("pca", coords, plane, dict(plane.meta), seconds=time.perf_counter() - t0)


def axes_projection(latents, i: int = 0, j: int = 1, standardise: bool = False) -> Projection:
    """The data on latent axes i, j (for 2-D latents: the latent space itself), the other
    coordinates held at the data mean. With `standardise`, map units are the data's standard
    deviations around its mean."""
    t0 = time.perf_counter()
    z = _flat(latents)
    plane = data_axes_plane(z, i, j) if standardise else latent_axes_plane(z, i, j)
    coords = plane.to_map(z).astype(np.float32)
    return Projection("axes", coords, plane, dict(plane.meta), seconds=time.perf_counter() - t0)


def plane_projection(latents, plane: Plane) -> Projection:
    """The data projected orthogonally onto any plane (e.g. the one through three picked latents)."""
    t0 = time.perf_counter()
    coords = plane.to_map(_flat(latents)).astype(np.float32)
    return Projection(plane.kind, coords, plane, dict(plane.meta), seconds=time.perf_counter() - t0)


def select_polygon(coords, polygon) -> np.ndarray:
    """Indices of the map points inside a closed polygon (V, 2) — a lasso selection on the map, e.g.
    for the two groups of an attribute vector. Even-odd rule, vectorised over points."""
    pts = np.asarray(coords, dtype=np.float64)
    poly = np.asarray(polygon, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        raise ValueError("a selection polygon needs at least three (x, y) vertices")
    x, y = pts[:, 0:1], pts[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    inside = (crosses & (x < xi)).sum(1) % 2 == 1
    return np.flatnonzero(inside)


# ---- UMAP ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UmapParams:
    """Set before a run (they change the map, so they are part of the cache key)."""

    n_neighbors: int = 15  # local (small) vs global (large) structure
    min_dist: float = 0.1  # how tightly points may pack on the map
    metric: str = "euclidean"  # in latent space
    n_epochs: int | None = None  # None: UMAP's default (500 below 10,000 points, 200 above)
    seed: int | None = 0  # a fixed seed makes the map reproducible (and single-threaded)

    def __post_init__(self):
        if int(self.n_neighbors) < 2:
            raise ValueError("n_neighbors must be at least 2")
        if not 0.0 <= float(self.min_dist) <= 1.0:
            raise ValueError("min_dist must be between 0 and 1")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric '{self.metric}' (known: {', '.join(METRICS)})")
        if self.n_epochs is not None and int(self.n_epochs) < 1:
            raise ValueError("n_epochs must be at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


def umap_dir() -> str:
    from engines.latent.cache import cache_root

    return os.path.join(cache_root(), "umap")


def umap_key(latents, params: UmapParams) -> str:
    z = _flat(latents)
    h = hashlib.sha256(f"umap-v{CACHE_VERSION}|{json.dumps(params.to_dict(), sort_keys=True)}|{z.shape}|".encode())
    h.update(memoryview(z).cast("B"))
    return h.hexdigest()[:24]


def _cache_file(key: str) -> str:
    return os.path.join(umap_dir(), f"{key}.npz")


def load_cached_umap(latents, params: UmapParams = UmapParams(), k_inverse: int = DEFAULT_K) -> Projection | None:
    """The cached UMAP map of these latents with these parameters, or None (never computes)."""
    z = _flat(latents)
    key = umap_key(z, params)
    path = _cache_file(key)
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            coords = f["coords"].astype(np.float32)
            if str(f["key"]) != key or coords.shape != (len(z), 2) or not np.all(np.isfinite(coords)):
                return None
            meta = json.loads(str(f["params"]))
    except (OSError, KeyError, ValueError, EOFError):
        return None
    return Projection("umap", coords, ScatterMap(coords, z, k_inverse), meta, from_cache=True)


def _save_cached(key: str, coords: np.ndarray, meta: dict) -> None:
    try:
        with atomic.replacing(_cache_file(key)) as tmp, open(tmp, "wb") as f:
            np.savez(f, coords=coords.astype(np.float32), key=np.array(key), params=np.array(json.dumps(meta)))
    except OSError:
        pass  # the cache is best-effort


class _Stop(Exception):
    """Raised inside the helper thread to abandon a cancelled run (not an OSError/ValueError,
    which tqdm would swallow)."""


class _EpochHook:
    """A file for UMAP's epoch progress bar (bar_format "{n}/{total}"): turns each write into a
    report and raises `_Stop` once a Cancel has been requested."""

    _NUM = re.compile(r"(\d+)/(\d+)")

    def __init__(self, report: Callable, stopped: Callable[[], bool]):
        self.report = report
        self.stopped = stopped
        self.raised = False

    def write(self, s: str) -> int:
        m = None
        for m in self._NUM.finditer(s):
            pass
        if m is not None:
            self.report("layout", int(m.group(1)), int(m.group(2)))
        if self.stopped() and not self.raised:
            self.raised = True  # once: tqdm's own close() writes again while unwinding
            raise _Stop()
        return len(s)

    def flush(self) -> None:
        pass


def _fit_umap(z: np.ndarray, params: UmapParams, report: Callable, stopped: Callable[[], bool]) -> np.ndarray:
    """Run UMAP in stages (see the module docstring); `report(stage, done, total)`."""
    import umap
    from sklearn.utils import check_random_state

    n = len(z)
    k = min(int(params.n_neighbors), n - 1)
    n_jobs = 1 if params.seed is not None else -1
    kw = dict(n_neighbors=k, min_dist=float(params.min_dist), metric=params.metric, n_epochs=params.n_epochs,
              random_state=params.seed, n_jobs=n_jobs, verbose=False,
              tqdm_kwds={"disable": False, "file": _EpochHook(report, stopped), "bar_format": "{n}/{total}",
                         "mininterval": 0.0, "miniters": 1, "leave": False, "ncols": 80, "ascii": True})
    if n >= SMALL_DATA:
        report("neighbours", 0, 1)
        idx, dist, index = umap.umap_.nearest_neighbors(
            z, k, params.metric, {}, params.metric in ("cosine", "correlation"),
            check_random_state(params.seed), low_memory=True, use_pynndescent=True, n_jobs=n_jobs, verbose=False)
        if stopped():
            raise _Stop()
        kw["precomputed_knn"] = (idx, dist, index)
    report("graph", 0, 1)
    coords = umap.UMAP(**kw).fit_transform(z)
    if stopped():
        raise _Stop()
    return np.asarray(coords, dtype=np.float32)


def run_umap(latents, params: UmapParams = UmapParams(), cache: bool = True, k_inverse: int = DEFAULT_K,
             heartbeat_s: float = 0.25, _fit: Callable | None = None) -> Generator[Progress, None, Projection]:
    """The UMAP map of `latents` (N, D): from the cache, or computed with progress and Cancel.
    Yields `Progress` at every stage change and epoch (at least every `heartbeat_s`); returns the
    `Projection`. `_fit` replaces the UMAP computation (tests)."""
    z = _flat(latents)
    if len(z) < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {len(z)}")
    key = umap_key(z, params)
    if cache:
        hit = load_cached_umap(z, params, k_inverse)
        if hit is not None:
            yield Progress("cached", 1.0, f"UMAP of {len(z)} points from the cache")
            return hit
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    out: dict = {}

    def report(stage, done, total):
        events.put(("progress", stage, done, total))

    def work():
        try:
            out["coords"] = (_fit or _fit_umap)(z, params, report, stop.is_set)
        except _Stop:
            out["cancelled"] = True
        except BaseException as e:  # noqa: BLE001 - handed to the generator, which re-raises
            out["error"] = e
        finally:
            events.put(("done",))

    t0 = time.perf_counter()
    thread = threading.Thread(target=work, name="umap", daemon=True)
    thread.start()
    stage, last = "neighbours" if len(z) >= SMALL_DATA else "graph", None
    spans = _spans(len(z))
    try:
        yield Progress(stage, 0.0, "starting UMAP")
        while True:
            try:
                ev = events.get(timeout=heartbeat_s)
            except queue.Empty:
                ev = None
            if ev is not None and ev[0] == "done":
                break
            if ev is not None:
                _, stage, done, total = ev
                last = (done, total)
            lo, hi = spans.get(stage, (0.0, 1.0))
            frac = lo + (hi - lo) * (last[0] / max(last[1], 1) if last and stage == "layout" else 0.0)
            elapsed = time.perf_counter() - t0
            epoch = f"{last[0]}/{last[1]}" if last and stage == "layout" else "0/?"
            msg = {"neighbours": "building the neighbour graph", "graph": "building the fuzzy graph and initial layout",
                   "layout": f"optimising the layout, epoch {epoch}"}.get(stage, stage)
            yield Progress(stage, frac, f"{msg} ({elapsed:.0f} s)")
    finally:
        stop.set()  # a Cancel (generator closed) or an error: the helper stops at its next check
    if "error" in out:
        raise out["error"]
    if "coords" not in out:
        raise RuntimeError("UMAP stopped without a result")
    coords = out["coords"]
    seconds = time.perf_counter() - t0
    meta = {**params.to_dict(), "n": len(z), "seconds": seconds}
    if cache:
        _save_cached(key, coords, meta)
    return Projection("umap", coords, ScatterMap(coords, z, k_inverse), meta, seconds=seconds)
