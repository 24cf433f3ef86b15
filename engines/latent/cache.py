"""Encoded data sets, cached on disk so reopening a model's map is instant.

`encode_dataset(engine, data)` is a generator (progress per chunk, Cancel between chunks) that
returns a `LatentSet`: the flattened latents of every image plus the labels, attributes and
train/test split they are coloured and grouped by. The result is stored as HDF5 under
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

from engines import atomic
from engines.latent.progress import Progress, run

FORMAT = "latent-explorer-latents"
FORMAT_VERSION = 1
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
    """The cached set, or None when the file is missing, unreadable or does not match."""
    if not os.path.isfile(path):
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            a = f.attrs
            if a.get("format") != FORMAT or int(a.get("format_version", -1)) != FORMAT_VERSION:
                return None
            if a.get("model_id") != mid or a.get("data_id") != did:
                return None
            z = f["latents"][()]
            if z.ndim != 2 or len(z) != n or not np.all(np.isfinite(z)):
                return None
            labels = f["labels"][()] if "labels" in f else None
            names = json.loads(a.get("attribute_names", "[]"))
            attrs = f["attributes"][()] if names else np.zeros((n, 0), np.float32)
            return LatentSet(
                latents=z.astype(np.float32, copy=False),
                latent_shape=tuple(json.loads(a["latent_shape"])),
                model_id=mid, data_id=did,
                labels=None if labels is None else labels.astype(np.int64),
                label_names=json.loads(a.get("label_names", "[]")),
                attributes={k: attrs[:, i].astype(np.float32) for i, k in enumerate(names)},
                train_idx=f["train_idx"][()].astype(np.int64),
                test_idx=f["test_idx"][()].astype(np.int64),
                engine=str(a.get("engine", "")), data_name=str(a.get("data_name", "")),
                path=path, from_cache=True,
            )
    except (OSError, KeyError, ValueError, TypeError):
        return None  # corrupt, truncated or foreign: rebuilt by the caller


def _write(path: str, ls: LatentSet) -> bool:
    import h5py

    try:
        with atomic.replacing(path) as tmp, h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["model_id"] = ls.model_id
            f.attrs["data_id"] = ls.data_id
            f.attrs["engine"] = ls.engine
            f.attrs["data_name"] = ls.data_name
            f.attrs["latent_shape"] = json.dumps(list(ls.latent_shape))
            f.attrs["label_names"] = json.dumps(list(ls.label_names))
            names = list(ls.attributes)
            f.attrs["attribute_names"] = json.dumps(names)
            f.create_dataset("latents", data=ls.latents)
            if ls.labels is not None:
                f.create_dataset("labels", data=ls.labels)
            if names:
                f.create_dataset("attributes", data=np.stack([ls.attributes[k] for k in names], 1))
            f.create_dataset("train_idx", data=ls.train_idx)
            f.create_dataset("test_idx", data=ls.test_idx)
        return True
    except OSError:
        return False


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
        yield Progress("encode", done / n, f"encoded {done}/{n} images")
    ls = LatentSet(
        latents=np.ascontiguousarray(np.concatenate(parts).astype(np.float32)),
        latent_shape=tuple(int(s) for s in engine.latent_shape),
        model_id=mid, data_id=did,
        labels=None if data.labels is None else np.asarray(data.labels, np.int64),
        label_names=list(data.label_names),
        attributes={k: np.asarray(v, np.float32) for k, v in data.attributes.items()},
        train_idx=np.asarray(data.train_idx, np.int64), test_idx=np.asarray(data.test_idx, np.int64),
        engine=str(getattr(engine, "name", "")), data_name=str(data.name),
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
