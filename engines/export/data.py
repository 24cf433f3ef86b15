"""Data exports: a data set's latents with labels, attributes and projections (HDF5, and CSV for
the projections), attribute vectors and bookmarks (JSON or HDF5), codebook usage (VQ engines).

Latents use the one layout of `engines.latent.h5layout` (shared with `main.py encode` and the
latent cache). Every file carries the model's identity (`cache.model_id`) so that what it holds can be traced
to the weights that made it; writes go to a temporary name renamed into place when complete.
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np

from engines import atomic
from engines.export.writers import ExportError

FORMAT = "latent-explorer-export"
FORMAT_VERSION = 1


def _atomic(path: str, write) -> str:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise ExportError(f"{d}: folder does not exist")
    with atomic.replacing(path) as tmp:
        write(tmp)
    return path


def _atomic_hdf5(path: str, fill) -> str:
    """`fill(h5py.File)` is built in memory, then written like any file (`atomic.write_hdf5`)."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise ExportError(f"{d}: folder does not exist")
    return atomic.write_hdf5(path, fill)


def _stamp(h, kind: str, model_id: str) -> None:
    h.attrs["format"] = FORMAT
    h.attrs["format_version"] = FORMAT_VERSION
    h.attrs["kind"] = kind
    h.attrs["model_id"] = model_id


def write_latents(path: str, ls, projections: dict | None = None, extra_attrs: dict | None = None) -> str:
    """A `cache.LatentSet` to HDF5 in the one latents layout (`engines.latent.h5layout`, gzip):
    `latents`, `labels` + `label_names`, `split`, `attributes/<name>`, `coords/<projection>`."""
    from engines.latent import h5layout

    n = len(ls)
    for name, c in (projections or {}).items():
        if np.asarray(c).shape != (n, 2):
            raise ExportError(f"projection '{name}' has shape {np.asarray(c).shape}, expected ({n}, 2)")
    return _atomic_hdf5(path, lambda h: h5layout.fill(h, ls, projections, extra_attrs, compress=True))


def write_projection_csv(path: str, ls, projections: dict) -> str:
    """One row per data point: index, split, label (name), attributes, then x/y per projection."""
    names = list(projections)
    if not names:
        raise ExportError("no projection to write: compute PCA or UMAP first")
    attrs = list(ls.attributes)
    train = ls.is_train()

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["index", "split", "label"] + attrs + [f"{p}_{a}" for p in names for a in ("x", "y")])
            for i in range(len(ls)):
                lab = ""
                if ls.labels is not None:
                    k = int(ls.labels[i])
                    lab = ls.label_names[k] if 0 <= k < len(ls.label_names) else str(k)
                row = [i, "train" if train[i] else "test", lab]
                row += [f"{float(ls.attributes[a][i]):.6g}" for a in attrs]
                row += [f"{float(projections[p][i, j]):.6g}" for p in names for j in (0, 1)]
                w.writerow(row)

    return _atomic(path, write)


def read_latents(path: str) -> dict:
    """A latents file (any writer's) as plain arrays (tests, notebooks): `h5layout.read`'s fields,
    with the root attributes alongside."""
    from dataclasses import asdict

    from engines.latent import h5layout

    lf = h5layout.read(path)
    out = dict(lf.attrs)
    out.update(asdict(lf))
    return out


def write_vectors(path: str, vectors) -> str:
    """Attribute vectors: `.json` (the format the Arithmetic panel loads) or `.h5` (one dataset
    per vector with its metadata as attributes)."""
    from engines.latent import attributes

    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        return attributes.save_vectors(path, list(vectors))
    if ext not in (".h5", ".hdf5"):
        raise ExportError(f"{path}: vectors export to .json or .h5")
    def write(h):
        _stamp(h, "vectors", vectors[0].model_id if vectors else "")
        for i, v in enumerate(vectors):
            d = h.create_dataset(f"vectors/{i:03d}", data=v.vector)
            meta = v.to_dict()
            meta.pop("vector")
            for k, val in meta.items():
                d.attrs[k] = val if isinstance(val, (str, int, float)) else json.dumps(val)

    return _atomic_hdf5(path, write)


def write_bookmarks(path: str, bookmarks, model_id: str = "") -> str:
    """Bookmarks (`history.Bookmark`s): `.json` or `.h5` (`latents` (N, D) + `names`)."""
    bookmarks = list(bookmarks)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": "bookmarks", "model_id": model_id,
               "bookmarks": [b.to_dict() for b in bookmarks]}
        def write_doc(tmp):
            with open(tmp, "w", encoding="utf-8") as f:  # closed here: a failed flush is an error, not lost
                f.write(json.dumps(doc, indent=1))

        return _atomic(path, write_doc)
    if ext not in (".h5", ".hdf5"):
        raise ExportError(f"{path}: bookmarks export to .json or .h5")
    import h5py

    def write(h):
        _stamp(h, "bookmarks", model_id)
        if bookmarks:
            h.create_dataset("latents", data=np.stack([b.latent for b in bookmarks]).astype(np.float32))
        h.create_dataset("names", data=[b.name for b in bookmarks], dtype=h5py.string_dtype())
        h.create_dataset("notes", data=[b.note for b in bookmarks], dtype=h5py.string_dtype())

    return _atomic_hdf5(path, write)


def codebook_usage(engine, images, batch: int = 256, progress=None) -> dict:
    """How often each code of a VQ engine (`code_usage(images)` → counts, `codebook_size`) is used
    on `images`: counts, frequencies, perplexity exp(H) (K when every code is used equally),
    dead codes, and the code vectors themselves when the engine exposes them."""
    usage_fn = getattr(engine, "code_usage", None)
    size = getattr(engine, "codebook_size", None)
    if usage_fn is None or size is None:
        raise ExportError(f"{getattr(engine, 'name', 'this model')} models have no codebook")
    counts = np.zeros(int(size), np.int64)
    for s in range(0, len(images), batch):
        counts += np.asarray(usage_fn(images[s:s + batch]).detach().cpu(), np.int64)
        if progress is not None:
            progress(min(len(images), s + batch), len(images))
    p = counts / max(1, counts.sum())
    nz = p[p > 0]
    out = {"counts": counts, "frequency": p.astype(np.float64),
           "perplexity": float(np.exp(-(nz * np.log(nz)).sum())) if len(nz) else 0.0,
           "dead": int((counts == 0).sum()), "codebook_size": int(size)}
    vectors = getattr(engine, "code_vectors", None)
    if callable(vectors):
        out["code_vectors"] = np.asarray(vectors().detach().cpu(), np.float32)
    return out


def write_codebook_usage(path: str, usage: dict, model_id: str = "") -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        def write(tmp):
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                w = csv.writer(f)
                w.writerow(["code", "count", "frequency"])
                for i, (c, q) in enumerate(zip(usage["counts"], usage["frequency"])):
                    w.writerow([i, int(c), f"{q:.6g}"])
        return _atomic(path, write)
    def write(h):
        _stamp(h, "codebook_usage", model_id)
        h.create_dataset("counts", data=usage["counts"])
        h.create_dataset("frequency", data=usage["frequency"])
        if "code_vectors" in usage:
            h.create_dataset("code_vectors", data=usage["code_vectors"])
        for k in ("perplexity", "dead", "codebook_size"):
            h.attrs[k] = usage[k]

    return _atomic_hdf5(path, write)
