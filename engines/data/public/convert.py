"""Converting a public set's downloaded files, once, into a compact cache that opens in
milliseconds: a folder `cache-v1/` beside the files holding `images.npy` (uint8 N×H×W×C, opened
memory-mapped), `labels.npy`, `split.npy` (0 train, 1 valid, 2 test), `attributes.npy` (int8 0/1,
N×K) and `meta.json`. Written into a temp folder and renamed into place (engines/atomic.py), so a
cache is either complete or absent. No pickle anywhere: IDX, CIFAR-10's binary version, CelebA's
JPEGs and text files are parsed directly.

Converting reports `progress(done, total, "convert")` (files for the small sets, images for
CelebA, whose 202,599 JPEGs take minutes) and stops at `cancel` (a threading.Event) with
`Cancelled`; the temp folder is then removed, so a cancelled (or killed: engines/atomic.py removes
dead processes' temps) conversion leaves no half-written cache.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile

import numpy as np

from engines.data.dataset import DataError, ImageDataset
from engines.data.public.fetch import CONVERT, Cancelled
from engines.data.public.registry import CELEBA_ATTRIBUTES, PublicSet

CACHE = "cache-v1"
FORMAT = "latent-explorer-public-set"
TRAIN, VALID, TEST = 0, 1, 2


def cache_path(folder: str) -> str:
    return os.path.join(folder, CACHE)


def is_cached(folder: str) -> bool:
    return os.path.isfile(os.path.join(cache_path(folder), "meta.json"))


def open_cache(s: PublicSet, folder: str) -> ImageDataset:
    c = cache_path(folder)
    try:
        with open(os.path.join(c, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("format") != FORMAT or meta.get("name") != s.name:
            raise DataError(f"{c}: not a cache of {s.name}")
        images = np.load(os.path.join(c, "images.npy"), mmap_mode="r", allow_pickle=False)
        split = np.load(os.path.join(c, "split.npy"), allow_pickle=False)
        labels = np.load(os.path.join(c, "labels.npy"), allow_pickle=False) if meta.get("labels") else None
        attributes = {}
        if meta.get("attributes"):
            table = np.load(os.path.join(c, "attributes.npy"), allow_pickle=False)
            attributes = {n: table[:, i] for i, n in enumerate(meta["attributes"])}
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"{c}: the cached {s.name} cannot be read ({type(e).__name__}: {e}); delete the folder "
                        "to convert it again") from None
    return ImageDataset(s.name, images, labels, list(meta.get("label_names") or []), attributes,
                        train_idx=np.flatnonzero(split == TRAIN), test_idx=np.flatnonzero(split == TEST),
                        source=s.name)


class Step:
    """`step(done, total)`: reports converting progress and raises Cancelled once `cancel` is set."""

    def __init__(self, progress=None, cancel=None):
        self.progress, self.cancel = progress, cancel

    def __call__(self, done: int, total: int) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("converting cancelled")
        if self.progress is not None:
            self.progress(done, total, CONVERT)


def convert(s: PublicSet, folder: str, progress=None, cancel=None) -> None:
    """Build the cache from the verified files in `folder` (atomically)."""
    from engines import atomic

    with atomic.replacing(cache_path(folder), folder=True, what=f"the {s.name} cache") as tmp:
        meta = CONVERTERS[s.kind](s, folder, tmp, Step(progress, cancel))
        meta.update(format=FORMAT, version=1, name=s.name, title=s.title)
        with open(os.path.join(tmp, "meta.json"), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)


def _save(tmp: str, name: str, a: np.ndarray) -> None:
    np.save(os.path.join(tmp, name), a, allow_pickle=False)


# ---- MNIST family ---------------------------------------------------------------------------------
def _idx(s: PublicSet, folder: str, tmp: str, step: Step) -> dict:
    from engines.data.idx import read_idx

    parts = []
    for i, (prefix, which) in enumerate((("train", TRAIN), ("t10k", TEST))):
        step(i, 2)
        x = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
        y = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
        if x.dtype != np.uint8 or x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{folder}: {prefix} files are not uint8 images with one label each "
                            f"(images {x.dtype} {x.shape}, labels {y.shape})")
        parts.append((x, y.astype(np.int64), np.full(len(x), which, np.uint8)))
    _save(tmp, "images.npy", np.concatenate([p[0] for p in parts])[..., None])
    _save(tmp, "labels.npy", np.concatenate([p[1] for p in parts]))
    _save(tmp, "split.npy", np.concatenate([p[2] for p in parts]))
    step(2, 2)
    return {"labels": True, "label_names": list(s.label_names), "attributes": []}


# ---- CIFAR-10, binary version ---------------------------------------------------------------------
CIFAR_RECORD = 1 + 3 * 32 * 32


def _cifar(s: PublicSet, folder: str, tmp: str, step: Step) -> dict:
    path = os.path.join(folder, s.files[0].name)
    batches = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    found = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            for m in tar:
                base = os.path.basename(m.name)
                if m.isfile() and base in batches:
                    step(len(found), len(batches))
                    if m.size % CIFAR_RECORD:
                        raise DataError(f"{path}: {m.name} is {m.size} bytes, not whole {CIFAR_RECORD}-byte records")
                    found[base] = np.frombuffer(tar.extractfile(m).read(), np.uint8).reshape(-1, CIFAR_RECORD)
    except (OSError, EOFError, tarfile.TarError) as e:
        raise DataError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    missing = [b for b in batches if b not in found]
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)}")
    rows = np.concatenate([found[b] for b in batches])
    labels = rows[:, 0].astype(np.int64)
    if labels.max() >= len(s.label_names):
        raise DataError(f"{path}: label {labels.max()} out of range")
    _save(tmp, "images.npy", rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    _save(tmp, "labels.npy", labels)
    n_test = len(found["test_batch.bin"])
    _save(tmp, "split.npy", np.r_[np.full(len(rows) - n_test, TRAIN, np.uint8), np.full(n_test, TEST, np.uint8)])
    step(len(batches), len(batches))
    return {"labels": True, "label_names": list(s.label_names), "attributes": []}


# ---- CelebA -------------------------------------------------------------------------------------------
def _celeba_table(path: str, skip: int) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8") as f:
        lines = [ln.split() for ln in f.read().splitlines()]
    head, body = lines[:skip], [ln for ln in lines[skip:] if ln]
    return (head[-1] if head else []), body


REPORT_EVERY = 256  # CelebA images between two progress reports


def _celeba(s: PublicSet, folder: str, tmp: str, step: Step) -> dict:
    from PIL import Image

    side = s.shape[0]
    attr_path = os.path.join(folder, "list_attr_celeba.txt")
    names, rows = _celeba_table(attr_path, 2)
    if tuple(names) != CELEBA_ATTRIBUTES or any(len(r) != len(names) + 1 for r in rows):
        raise DataError(f"{attr_path}: not CelebA's attribute list (40 named columns per image)")
    _, parts = _celeba_table(os.path.join(folder, "list_eval_partition.txt"), 0)
    partition = {r[0]: int(r[1]) for r in parts}
    files = [r[0] for r in rows]
    if set(files) != set(partition):
        raise DataError(f"{folder}: the attribute and partition lists name different images")
    attrs = (np.array([r[1:] for r in rows], dtype=np.int8) > 0).astype(np.int8)
    split = np.array([partition[f] for f in files], dtype=np.uint8)
    out = np.lib.format.open_memmap(os.path.join(tmp, "images.npy"), "w+", np.uint8, (len(files), side, side, 3))
    zpath = os.path.join(folder, "img_align_celeba.zip")
    try:
        with zipfile.ZipFile(zpath) as z:
            members = {os.path.basename(n): n for n in z.namelist() if n.lower().endswith(".jpg")}
            n = len(files)
            for i, f in enumerate(files):
                if i % REPORT_EVERY == 0:
                    step(i, n)
                elif step.cancel is not None and step.cancel.is_set():
                    step(i, n)  # raises Cancelled
                if f not in members:
                    raise DataError(f"{zpath}: {f} is missing")
                with Image.open(io.BytesIO(z.read(members[f]))) as im:
                    out[i] = _crop(im.convert("RGB"), side)
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{zpath}: cannot be read ({type(e).__name__}: {e})") from None
    out.flush()
    del out
    _save(tmp, "split.npy", split)
    _save(tmp, "attributes.npy", attrs)
    step(len(files), len(files))
    return {"labels": False, "label_names": [], "attributes": list(names)}


def _crop(im, side: int) -> np.ndarray:
    """The centred square (178×178 of the 178×218 aligned crop), resized to side×side."""
    from PIL import Image

    w, h = im.size
    a = min(w, h)
    left, top = (w - a) // 2, (h - a) // 2
    im = im.crop((left, top, left + a, top + a)).resize((side, side), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


CONVERTERS = {"idx": _idx, "cifar-bin": _cifar, "celeba": _celeba}
