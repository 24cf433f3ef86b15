"""Loaders for the user's own data.

`load_path(path)` accepts
  * a folder of images, searched recursively. When two or more first-level sub-folders
    hold images, their names are the class labels (sorted) and images lying directly in
    the folder are skipped; with one or none, the images are unlabelled. Names starting
    with "." (.git, .DS_Store) are ignored; other non-image files and images that cannot
    be decoded are skipped and counted (see `LoadReport` and `last_report()`); a load that
    skipped anything logs ONE warning naming the first few unreadable files and the count.
    FIFOs, sockets and devices named like images are skipped unopened.
    Images are resized to the most common size and made RGB if any of them is in colour.
    A folder holding no images but MNIST-style IDX files is loaded as IDX (below).
  * `.npz` (or `.npy`, images only; told apart by content): key `images`, uint8 (N,H,W[,C]),
    other integers in 0-255, or floats in [0, 1], C in {1, 3}, channels-last or channels-first; optional `labels` (class indices),
    `label_names` (strings), and attributes: `attr_<name>` keys, or any other numeric 1-D
    key of length N. Loaded with allow_pickle=False: object arrays are refused.
  * HDF5 (`.h5`, `.hdf5`): dataset `images`, optional dataset `labels`, datasets in the
    group `attributes/`, and `label_names` as a string dataset or as an HDF5 attribute of
    the file or of `labels`.
  * IDX (`*-idx3-ubyte`, also `.idx3-ubyte`, optionally `.gz`): labels come from the
    matching `*-labels-idx1-ubyte[.gz]` beside it. For a folder of IDX files, all image
    files are concatenated and the official split is kept when files are named for it
    (`train-*` versus `t10k-*` or `*test*`).

Images larger than 256 pixels on a side (ImageSpec's limit) are scaled down to fit.
Before anything is read or allocated, every header is checked against the bytes really stored
and the whole load against the memory budget (engines/data/guards.py: half the available
memory, or LATENT_EXPLORER_DATA_BUDGET when lower); only regular files are opened. Float images
must be finite and in [0, 1]; integer images outside 0-255 are refused (never clipped). Labels
must be whole numbers ≥ 0 and become classes 0..K-1 named after their values (see
`dataset.normalize_labels`). Every problem raises one DataError that names the file and says
what is wrong in one line; anything else a damaged file makes a library raise is turned into one.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from contextlib import contextmanager
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from engines.spec import ImageSpec
from engines.data.arrays import load_h5, load_numpy, reason
from engines.data.dataset import DataError, ImageDataset, convert_images, normalize_labels, pil_to_spec
from engines.data.guards import (as_images, check_budget, check_regular, image_shape_problem, images_estimate,
                                 numel, open_regular)
from engines.data.idx import idx_header, read_idx, read_idx_data  # noqa: F401  (read_idx: public here)

log = logging.getLogger(__name__)

MAX_SIDE = 256  # ImageSpec's limit; larger images are scaled down on load
MIN_SIDE = 4
SHOW_UNREADABLE = 3  # unreadable images named in the one warning a load gives; the rest are counted

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff",
                              ".webp", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi"})
_IDX_IMAGES = re.compile(r"idx[2-9][-.]ubyte(\.gz)?$")
_IDX_ANY = re.compile(r"idx\d[-.]ubyte(\.gz)?$")


@dataclass
class LoadReport:
    """What a load left out or changed; `last_report()` gives the latest one."""

    path: str
    n_images: int = 0
    skipped_other: list[str] = field(default_factory=list)  # non-image files
    skipped_unreadable: list[str] = field(default_factory=list)  # "file: reason"
    skipped_unlabelled: list[str] = field(default_factory=list)  # images beside the class folders
    notes: list[str] = field(default_factory=list)  # resizing, ignored keys and the like

    @property
    def n_skipped(self) -> int:
        return len(self.skipped_other) + len(self.skipped_unreadable) + len(self.skipped_unlabelled)

    def summary(self) -> str:
        parts = [_count(self.n_images, "image") + " loaded"]
        if self.skipped_other:
            parts.append(_count(len(self.skipped_other), "non-image file") + " skipped")
        if self.skipped_unreadable:
            first = "; ".join(_clip(x) for x in self.skipped_unreadable[:SHOW_UNREADABLE])
            more = "; …" if len(self.skipped_unreadable) > SHOW_UNREADABLE else ""
            parts.append(_count(len(self.skipped_unreadable), "unreadable image") + f" skipped ({first}{more})")
        if self.skipped_unlabelled:
            parts.append(_count(len(self.skipped_unlabelled), "image") + " outside the class folders skipped")
        return " ".join((f"{self.path}: " + ", ".join(parts + self.notes)).split())  # one line, whatever the names hold


def _clip(text: str, n: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


_last_report: LoadReport | None = None


def last_report() -> LoadReport | None:
    """The report of the most recent `load_path` in this process (None before the first).
    It lives here rather than on the data set because `load_dataset` converts the data set
    into a new object, and `source` must stay a path that can be loaded again."""
    return _last_report


def load_path(path: str) -> ImageDataset:
    global _last_report
    path = os.path.abspath(os.fspath(path))
    report = _last_report = LoadReport(path)  # set first, so a failed load leaves no stale report
    try:
        ds = _dispatch(path, report)
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: not enough memory to load it") from None
    except Exception as e:  # a damaged file can make a library fail in ways no list foresees
        log.debug("loading %s failed", path, exc_info=True)
        raise DataError(f"{path}: cannot be read, the file may be damaged ({_reason(e)})") from None
    report.n_images = len(ds)
    if report.n_skipped or report.notes:
        log.warning(report.summary())
    return ds


def _dispatch(path: str, report: LoadReport) -> ImageDataset:
    if os.path.isdir(path):
        return _load_folder(path, report)
    if not os.path.lexists(path):
        raise DataError(f"{path}: no such file or folder")
    check_regular(path)  # a FIFO, socket or device: refused before anything opens it
    lower = path.lower()
    if lower.endswith((".npz", ".npy")):
        return _load_arrays(path, report, load_numpy)
    if lower.endswith((".h5", ".hdf5")):
        return _load_arrays(path, report, load_h5)
    if _IDX_IMAGES.search(lower):
        return _load_idx_files([path], path, report)
    if _IDX_ANY.search(lower):
        raise DataError(f"{path}: this IDX file holds labels, not images; open the matching images file")
    raise DataError(f"{path}: unsupported file type; use a folder of images, .npz, .h5/.hdf5 "
                    "or an MNIST-style *-idx3-ubyte file")


# ---------------------------------------------------------------- folders of images

def _load_folder(root: str, report: LoadReport) -> ImageDataset:
    images, others = [], []  # paths relative to root
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            (images if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS else others).append(rel)
    if not images:
        idx = [os.path.join(root, f) for f in others if _IDX_IMAGES.search(f.lower())]
        if idx:
            return _load_idx_files(idx, root, report)
        if not others:
            raise DataError(f"{root}: the folder is empty")
        raise DataError(f"{root}: contains no images ({len(others)} other files)")
    report.skipped_other = others

    # First pass reads headers only: sizes and colour, without holding pixels in memory.
    headers = {}
    for rel in images:
        try:
            with _open_image(root, rel) as im:
                headers[rel] = (_upright_size(im), _is_colour(im))
        except Exception as e:  # PIL raises many types for damaged files; each is a skip
            report.skipped_unreadable.append(f"{rel}: {_reason(e)}")
    if not headers:
        raise DataError(f"{root}: contains no readable images ({_count(report.n_skipped, 'file')} skipped)")

    def class_of(rel):
        return rel.split(os.sep)[0] if os.sep in rel else None

    n_classes = len({class_of(rel) for rel in headers} - {None})
    if n_classes >= 2:
        report.skipped_unlabelled = [rel for rel in headers if class_of(rel) is None]
        headers = {rel: h for rel, h in headers.items() if class_of(rel) is not None}

    (w, h), _ = Counter(size for size, _ in headers.values()).most_common(1)[0]
    w, h = _fit_side(w, h, root)
    spec = ImageSpec(3 if any(colour for _, colour in headers.values()) else 1, h, w)
    n_resized = sum(size != (w, h) for size, _ in headers.values())
    if n_resized:
        report.notes.append(f"{_count(n_resized, 'image')} resized to {w}×{h}")
    largest = max(sw * sh for (sw, sh), _ in headers.values())
    check_budget(len(headers) * h * w * spec.channels + 8 * largest, root)

    out = np.empty((len(headers), h, w, spec.channels), np.uint8)
    kept = []
    for rel in headers:
        try:
            with _open_image(root, rel) as im:
                out[len(kept)] = pil_to_spec(_eight_bit(ImageOps.exif_transpose(im)), spec)
            kept.append(rel)
        except Exception as e:  # headers can be fine and the pixel data damaged
            report.skipped_unreadable.append(f"{rel}: {_reason(e)}")
    if not kept:
        raise DataError(f"{root}: contains no readable images ({_count(report.n_skipped, 'file')} skipped)")

    labels, label_names = None, []
    if n_classes >= 2:
        label_names = sorted({class_of(rel) for rel in kept})
        index = {name: i for i, name in enumerate(label_names)}
        labels = np.array([index[class_of(rel)] for rel in kept])
    return _build(root, out[:len(kept)], labels, label_names, report=report)


@contextmanager
def _open_image(root: str, rel: str):
    """An image opened from a regular file (a FIFO named x.png is refused unopened), at most
    PIL's decompression-bomb limit in pixels; PIL's warnings are kept off the terminal."""
    with open_regular(os.path.join(root, rel)) as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(fh) as im:
            w, h = im.size
            if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS:
                raise DataError(f"{w}×{h} pixels, more than the {Image.MAX_IMAGE_PIXELS:,} read from one image")
            yield im


def _upright_size(im: Image.Image) -> tuple[int, int]:
    # EXIF orientations 5-8 turn the picture by 90°: phone photos are stored sideways.
    w, h = im.size
    return (h, w) if im.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)


def _is_colour(im: Image.Image) -> bool:
    if im.mode in ("1", "L", "LA", "La", "F") or im.mode.startswith("I"):
        return False
    if im.mode in ("P", "PA"):  # a palette of greys is grey
        pal = np.asarray(im.getpalette() or [], dtype=np.int16).reshape(-1, 3)
        return bool(np.any(pal != pal[:, :1]))
    return True


def _eight_bit(im: Image.Image) -> Image.Image:
    # PIL clips 16-bit and float images when converting them to 8 bits; rescale instead.
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and a.max(initial=0) > 255):
            a = a / 257  # 16-bit range to 8-bit
        elif im.mode == "F" and a.max(initial=0) <= 1:
            a = a * 255
        return Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8))
    return im


def _reason(e: Exception) -> str:
    return reason(e)


# ---------------------------------------------------------------- arrays (.npz, .h5, IDX)

def _fit_side(w: int, h: int, where: str) -> tuple[int, int]:
    if min(w, h) < MIN_SIDE:
        raise DataError(f"{where}: images of {w}×{h} pixels are too small (at least {MIN_SIDE} a side)")
    scale = min(1.0, MAX_SIDE / max(w, h))
    return max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale))


def _as_names(value, where: str) -> list[str]:
    a = np.asarray(value)
    if a.dtype.kind not in "USO":
        raise DataError(f"{where}: label_names must be strings, got dtype {a.dtype}")
    names = []
    for x in a.ravel():
        if not isinstance(x, (bytes, str, np.str_, np.bytes_)):
            raise DataError(f"{where}: label_names must be strings, found {type(x).__name__}")
        names.append(x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x))
    return names


def _as_attribute(a: np.ndarray, name: str, n: int, where: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{where}: attribute '{name}' must be numbers, got dtype {a.dtype}")
    if a.shape != (n,):
        raise DataError(f"{where}: attribute '{name}' has shape {a.shape}, expected one value per image ({n},)")
    if a.dtype.kind == "f" and np.any(np.abs(a[np.isfinite(a)]) > np.finfo(np.float32).max):
        raise DataError(f"{where}: attribute '{name}' has values beyond the float32 range")
    return a


def _build(path: str, images, labels=None, label_names=(), attributes=None, split=None,
           report: LoadReport | None = None) -> ImageDataset:
    images = as_images(images, path)
    n = len(images)
    names = list(label_names or [])
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 1 and len(labels) != n:
            raise DataError(f"{path}: {len(labels)} labels for {n} images")
        labels, names = normalize_labels(labels, names or None, path)
    attributes = {k: _as_attribute(np.asarray(v), k, n, path) for k, v in (attributes or {}).items()}
    name = re.sub(r"\.gz$", "", os.path.basename(path), flags=re.I)
    if not (os.path.isdir(path) or _IDX_ANY.search(name)):  # "train-images.idx3-ubyte" keeps its tail
        name = os.path.splitext(name)[0]
    train_idx, test_idx = split if split is not None else (None, None)
    ds = ImageDataset(name=name, images=images, labels=labels, label_names=names,
                      attributes=attributes, train_idx=train_idx, test_idx=test_idx, source=path)
    _, h, w, c = ds.images.shape
    fw, fh = _fit_side(w, h, path)
    if (fw, fh) != (w, h):
        if report is not None:
            report.notes.append(f"scaled down from {w}×{h} to {fw}×{fh}")
        # Not ds.to_spec: that asks for ds.spec, which ImageSpec refuses at this size.
        ds.images = convert_images(ds.images, ImageSpec(c, fh, fw))
    return ds


def _load_arrays(path: str, report: LoadReport, loader) -> ImageDataset:
    parts = loader(path, report.notes)
    names = _as_names(parts["names"], path) if "names" in parts else []
    return _build(path, parts["images"], parts.get("labels"), names, parts.get("attributes"), report=report)


# ---------------------------------------------------------------- IDX (MNIST's format)

def _labels_file_for(images_path: str) -> str | None:
    folder, name = os.path.split(images_path)
    base = re.sub(r"\.gz$", "", name, flags=re.I)
    base = re.sub(r"idx\d", "idx1", base.replace("images", "labels"))
    for candidate in (base, base + ".gz"):
        if os.path.isfile(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    return None


def _load_idx_files(paths: list[str], where: str, report: LoadReport) -> ImageDataset:
    """Every header is read and checked (shapes, sizes, label counts, memory) before any data."""
    plan, need, total = [], 0, 0
    for p in sorted(paths):
        h = idx_header(p)
        if len(h.shape) not in (3, 4) or image_shape_problem(h.shape):
            raise DataError(f"{p}: expected images (N, H, W), got an IDX array of shape {h.shape}")
        lp = _labels_file_for(p)
        lh = idx_header(lp) if lp is not None else None
        if lh is not None and len(lh.shape) != 1:
            raise DataError(f"{lp}: labels must be one class index per image (1-D), got shape {lh.shape}")
        if lh is not None and lh.shape[0] != h.shape[0]:
            raise DataError(f"{lp}: {lh.shape[0]} labels for the {h.shape[0]} images in {os.path.basename(p)}")
        plan.append((h, lh))
        need += images_estimate(h.shape, h.dtype) + (lh.nbytes + 8 * lh.shape[0] if lh else 0)
        total += h.shape[0]
    if len({h.shape[1:] for h, _ in plan}) > 1:
        raise DataError(f"{where}: the IDX files hold images of different sizes "
                        f"({', '.join(str(h.shape[1:]) for h, _ in plan)})")
    check_budget(need + (numel(plan[0][0].shape[1:]) * total if len(plan) > 1 else 0), where)
    if any(lh is None for _, lh in plan) and any(lh is not None for _, lh in plan):
        report.notes.append("labels ignored: not every IDX images file has a labels file")
    with_labels = all(lh is not None for _, lh in plan)
    images = labels = None
    is_test, pos = [], 0
    for h, lh in plan:
        imgs = as_images(read_idx_data(h), h.path)
        if len(plan) == 1:
            images = imgs
        else:
            if images is None:
                images = np.empty((total,) + imgs.shape[1:], np.uint8)
            images[pos:pos + len(imgs)] = imgs
        if with_labels:
            lab = read_idx_data(lh)
            labels = lab if labels is None else np.concatenate([labels, lab])
        pos += len(imgs)
        name = os.path.basename(h.path).lower()
        is_test.append(np.full(len(imgs), name.startswith("t10k") or "test" in name))
    member = np.concatenate(is_test)
    split = (np.flatnonzero(~member), np.flatnonzero(member)) if member.any() and not member.all() else None
    return _build(where, images, labels, split=split, report=report)
