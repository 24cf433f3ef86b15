"""Encoded data sets, cached on disk so reopening a model's map is instant.

`encode_dataset(engine, data)` is a generator (progress per chunk, Cancel between chunks) that
returns a `LatentSet`: the flattened latents of every image plus the labels, attributes and
train/test split they are coloured and grouped by. The result is stored as HDF5 (the one latents layout, `h5layout`) under
`<cache>/latents/<model_id>-<data_id>.h5` (`<cache>` = $LATENT_EXPLORER_CACHE or the user cache
dir) and read back on the next call in milliseconds.

The file name *is* the validity check: `model_id` hashes the engine's name, config and every
weight tensor, `data_id` the data set's description, images, labels, attributes and split, so a
model trained one more step or a data set with one image changed gets a new file rather than
stale latents. A file that is unreadable, truncated, from another format version or whose
contents do not match its name is rebuilt. Writes go to a temporary file that replaces the
target only when complete. Nothing is pickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import weakref
from dataclasses import dataclass, field
from typing import Generator

import numpy as np

from engines.latent import h5layout
from engines.latent.progress import Progress, run

FORMAT = h5layout.FORMAT  # also salts model_id and data_id
FORMAT_VERSION = h5layout.FORMAT_VERSION
CHUNK = 256  # images per encode call: a Cancel lands within one chunk (≈ 0.1–0.5 s on a CPU)


def cache_root() -> str:
    from engines.data.faces import cache_root as root

    return root()


def latents_dir() -> str:
    return os.path.join(cache_root(), "latents")


# ---- identities -------------------------------------------------------------------------------------
def _update_tensor(h, name: str, t) -> None:
    import torch

    t = t.detach().to("cpu").contiguous()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))


def model_id(engine) -> str:
    """`<engine name>-<16 hex>`: a content hash of the engine's name, config, image spec, latent
    shape and weights (sha256; ~10 ms for a few MB). Engines without `state_tensors` (a future
    wrapper, a toy model) may define their own `model_id` attribute or method, which wins."""
    own = getattr(engine, "model_id", None)
    if own is not None:
        return own() if callable(own) else str(own)
    from engines import config as cfgmod

    h = hashlib.sha256()
    name = getattr(engine, "name", type(engine).__name__)
    h.update(f"{FORMAT}|{name}|".encode())
    cfg = getattr(engine, "config", None)
    if cfg is not None:
        try:
            h.update(cfgmod.to_json(cfg).encode())
        except TypeError:
            h.update(repr(cfg).encode())
    spec = getattr(engine, "spec", None)
    if spec is not None:
        h.update(json.dumps(spec.to_dict(), sort_keys=True).encode())
    h.update(repr(tuple(engine.latent_shape)).encode())
    if not hasattr(engine, "state_tensors"):
        raise TypeError(f"{name}: cannot identify this model (no state_tensors() and no model_id)")
    with engine.lock:
        tensors = engine.state_tensors()
        for k in sorted(tensors):
            _update_tensor(h, k, tensors[k])
    return f"{name}-{h.hexdigest()[:16]}"


# The images are the expensive part of a data id (~0.1 s per 100 MB); remember their digest per
# array object. Arrays are weak-referenced, so a digest never outlives (or is reused for) its array.
# This assumes image arrays are not modified in place, which no loader or panel does.
_IMAGE_DIGESTS: dict[int, tuple[weakref.ref, str]] = {}


def _images_digest(images: np.ndarray) -> str:
    key = id(images)
    hit = _IMAGE_DIGESTS.get(key)
    if hit is not None and hit[0]() is images:
        return hit[1]
    arr = np.ascontiguousarray(images)
    h = hashlib.sha256(f"{arr.dtype}|{arr.shape}|".encode())
    h.update(memoryview(arr).cast("B"))
    digest = h.hexdigest()
    try:
        _IMAGE_DIGESTS[key] = (weakref.ref(images, lambda _r, k=key: _IMAGE_DIGESTS.pop(k, None)), digest)
    except TypeError:  # not weak-referenceable: just don't remember
        pass
    return digest


def data_id(data) -> str:
    """`<16 hex>`: a hash of the data set's description, images, labels, attributes and split."""
    h = hashlib.sha256(f"{FORMAT}|".encode())
    h.update(json.dumps(data.describe(), sort_keys=True, default=str).encode())
    h.update(_images_digest(data.images).encode())
    arrays = [("labels", data.labels), ("train_idx", data.train_idx), ("test_idx", data.test_idx)]
    arrays += [(f"attr:{k}", data.attributes[k]) for k in sorted(data.attributes)]
    for name, a in arrays:
        if a is None:
            h.update(f"{name}|none|".encode())
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{name}|{a.dtype}|{a.shape}|".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


# ---- the encoded data set ------------------------------------------------------------------------------
@dataclass(eq=False)
class LatentSet:
    """A data set's latents with everything the map colours and groups by."""

    latents: np.ndarray  # float32 (N, D), D = prod(latent_shape)
    latent_shape: tuple[int, ...]
    model_id: str
    data_id: str
    labels: np.ndarray | None = None  # int64 (N,)
    label_names: list[str] = field(default_factory=list)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # name → float32 (N,)
    train_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    test_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    engine: str = ""
    data_name: str = ""
    data_description: dict = field(default_factory=dict)  # ImageDataset.describe(): name, source, spec, …
    path: str | None = None  # the cache file, None when not cached
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def dim(self) -> int:
        return int(self.latents.shape[1])

    @property
    def train(self) -> np.ndarray:
        """Latents of the training split (what 'in distribution' is measured against)."""
        return self.latents[self.train_idx]

    def is_train(self) -> np.ndarray:
        mask = np.zeros(len(self), bool)
        mask[self.train_idx] = True
        return mask


def cache_path(mid: str, did: str) -> str:
    return os.path.join(latents_dir(), f"{mid}-{did}.h5")


def _read(path: str, mid: str, did: str, n: int) -> LatentSet | None:
    """The cached set, or None when the file is missing, unreadable, from another layout version
    (older cache files simply miss and are rebuilt) or does not match."""
    if not os.path.isfile(path):
        return None
    try:
        lf = h5layout.read(path)
    except h5layout.LayoutError:
        return None  # corrupt, truncated, foreign or old: rebuilt by the caller
    if lf.model_id != mid or lf.data_id != did or len(lf.latents) != n or not np.all(np.isfinite(lf.latents)):
        return None
    ls = from_file(lf)
    ls.from_cache = True
    return ls


def from_file(lf: h5layout.LatentFile) -> LatentSet:
    """A `LatentSet` from a checked latents file (any of the three writers')."""
    return LatentSet(
        latents=lf.latents, latent_shape=lf.latent_shape, model_id=lf.model_id, data_id=lf.data_id,
        labels=lf.labels, label_names=list(lf.label_names), attributes=dict(lf.attributes),
        train_idx=lf.train_idx, test_idx=lf.test_idx, engine=lf.engine,
        data_name=str(lf.data.get("name") or lf.attrs.get("data_name", "")), data_description=dict(lf.data),
        path=lf.path,
    )


def _write(path: str, ls: LatentSet) -> bool:
    try:
        # Built in memory and written as bytes through engines.atomic: HDF5 writing to a full
        # disk itself crashes the process when the file is closed (see atomic.write_hdf5).
        h5layout.write(path, ls)
        return True
    except (OSError, ValueError):  # atomic.WriteError included; ValueError: a name HDF5 cannot hold.
        return False  # the cache is best effort, the old file stays


def encode_dataset(engine, data, chunk: int = CHUNK, cache: bool = True,
                   rebuild: bool = False) -> Generator[Progress, None, LatentSet]:
    """Encode every image of `data` (an ImageDataset at the engine's spec) with `engine`,
    or read the cached result. Yields `Progress`; returns the `LatentSet`.

    The cache is best-effort: if it cannot be written (read-only disk) the latents are returned
    anyway with `path=None`."""
    if "encode" not in engine.capabilities:
        raise ValueError(f"{getattr(engine, 'name', 'this model')} cannot encode images")
    spec = getattr(engine, "spec", None)
    if spec is not None and data.spec != spec:
        raise ValueError(f"{data.name}: images are {data.spec} but the model takes {spec}; "
                         "convert with data.to_spec(engine.spec)")
    mid, did = model_id(engine), data_id(data)
    path = cache_path(mid, did)
    n = len(data)
    if cache and not rebuild:
        hit = _read(path, mid, did, n)
        if hit is not None:
            yield Progress("cached", 1.0, f"latents of {n} images from the cache")
            return hit
    parts = []
    for start in range(0, n, max(1, int(chunk))):
        z = engine.encode(data.images[start:start + chunk])
        parts.append(z.detach().to("cpu").float().reshape(len(z), -1).numpy())
        done = min(n, start + chunk)
        yield Progress("encode", done / n, f"encoding {done:,}/{n:,} images")
    ls = LatentSet(
        latents=np.ascontiguousarray(np.concatenate(parts).astype(np.float32)),
        latent_shape=tuple(int(s) for s in engine.latent_shape),
        model_id=mid, data_id=did,
        labels=None if data.labels is None else np.asarray(data.labels, np.int64),
        label_names=list(data.label_names),
        attributes={k: np.asarray(v, np.float32) for k, v in data.attributes.items()},
        train_idx=np.asarray(data.train_idx, np.int64), test_idx=np.asarray(data.test_idx, np.int64),
        engine=str(getattr(engine, "name", "")), data_name=str(data.name), data_description=data.describe(),
    )
    if model_id(engine) != mid:
        # The weights changed while encoding (a training thread stepped the model): the latents
        # mix several models, so they are returned for display but never cached under either id.
        yield Progress("encode", 1.0, "the model changed while encoding; latents not cached")
        return ls
    if cache and _write(path, ls):
        ls.path = path
    return ls


def open_latents(engine, data, **kw) -> LatentSet:
    """`encode_dataset` run to the end (for scripts, tests and the CLI)."""
    return run(encode_dataset(engine, data, **kw))
