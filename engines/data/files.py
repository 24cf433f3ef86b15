"""Loaders for the user's own data.

`load_path(path)` accepts
  * a folder of images, searched recursively. When two or more first-level sub-folders
    hold images, their names are the class labels (sorted) and images lying directly in
    the folder are skipped; with one or none, the images are unlabelled. Names starting
    with "." (.git, .DS_Store) are ignored; other non-image files and images that cannot
    be decoded are skipped and counted (see `LoadReport` and `last_report()`).
    Images are resized to the most common size and made RGB if any of them is in colour.
    A folder holding no images but MNIST-style IDX files is loaded as IDX (below).
  * `.npz` (or `.npy`, images only): key `images`, uint8 (N,H,W[,C]) or floats in [0, 1],
    C in {1, 3}, channels-last or channels-first; optional `labels` (class indices),
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
Every problem raises one DataError that names the file and says what is wrong.
"""
from __future__ import annotations

import gzip
import logging
import os
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from engines.spec import ImageSpec
from engines.data.dataset import DataError, ImageDataset, convert_images, pil_to_spec

log = logging.getLogger(__name__)

MAX_SIDE = 256  # ImageSpec's limit; larger images are scaled down on load
MIN_SIDE = 4

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
            parts.append(_count(len(self.skipped_unreadable), "unreadable image") + " skipped")
        if self.skipped_unlabelled:
            parts.append(_count(len(self.skipped_unlabelled), "image") + " outside the class folders skipped")
        return f"{self.path}: " + ", ".join(parts + self.notes)


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
    if os.path.isdir(path):
        ds = _load_folder(path, report)
    elif not os.path.exists(path):
        raise DataError(f"{path}: no such file or folder")
    else:
        lower = path.lower()
        if lower.endswith((".npz", ".npy")):
            ds = _load_npz(path, report)
        elif lower.endswith((".h5", ".hdf5")):
            ds = _load_h5(path, report)
        elif _IDX_IMAGES.search(lower):
            ds = _load_idx_files([path], path, report)
        elif _IDX_ANY.search(lower):
            raise DataError(f"{path}: this IDX file holds labels, not images; open the matching images file")
        else:
            raise DataError(f"{path}: unsupported file type; use a folder of images, .npz, .h5/.hdf5 "
                            "or an MNIST-style *-idx3-ubyte file")
    report.n_images = len(ds)
    if report.n_skipped or report.notes:
        log.warning(report.summary())
    return ds


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
            with Image.open(os.path.join(root, rel)) as im:
                headers[rel] = (_upright_size(im), _is_colour(im))
        except Exception as e:  # PIL raises many types for damaged files; each is a skip
            report.skipped_unreadable.append(f"{rel}: {_reason(e)}")
    if not headers:
        raise DataError(f"{root}: contains no readable images ({report.n_skipped} files skipped)")

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

    arrays, kept = [], []
    for rel in headers:
        try:
            with Image.open(os.path.join(root, rel)) as im:
                arrays.append(pil_to_spec(_eight_bit(ImageOps.exif_transpose(im)), spec))
            kept.append(rel)
        except Exception as e:  # headers can be fine and the pixel data damaged
            report.skipped_unreadable.append(f"{rel}: {_reason(e)}")
    if not arrays:
        raise DataError(f"{root}: contains no readable images ({report.n_skipped} files skipped)")

    labels, label_names = None, []
    if n_classes >= 2:
        label_names = sorted({class_of(rel) for rel in kept})
        index = {name: i for i, name in enumerate(label_names)}
        labels = np.array([index[class_of(rel)] for rel in kept])
    return _build(root, np.stack(arrays), labels, label_names, report=report)


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
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


# ---------------------------------------------------------------- arrays (.npz, .h5, IDX)

def _fit_side(w: int, h: int, where: str) -> tuple[int, int]:
    if min(w, h) < MIN_SIDE:
        raise DataError(f"{where}: images of {w}×{h} pixels are too small (at least {MIN_SIDE} a side)")
    scale = min(1.0, MAX_SIDE / max(w, h))
    return max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale))


def _as_images(a: np.ndarray, where: str) -> np.ndarray:
    """uint8 images from an array as stored; other value types refused with the reason."""
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)  # (N, C, H, W), as PyTorch stores them
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DataError(f"{where}: images contain NaN or infinite values")
        if lo < 0 or hi > 1:
            raise DataError(f"{where}: float images must lie in [0, 1], found values from {lo:g} to {hi:g}")
        return np.round(a * 255).astype(np.uint8)
    raise DataError(f"{where}: images have dtype {a.dtype}; expected uint8 (0-255) or floats in [0, 1]")


def _as_labels(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim != 1:
        raise DataError(f"{where}: labels must be one class index per image (1-D), got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == bool):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise DataError(f"{where}: labels must be whole numbers, got dtype {a.dtype}")
    if len(a) and a.min() < 0:
        raise DataError(f"{where}: labels must not be negative (found {a.min()})")
    return a.astype(np.int64)


def _as_names(value, where: str) -> list[str]:
    a = np.asarray(value)
    if a.dtype.kind not in "USO":
        raise DataError(f"{where}: label_names must be strings, got dtype {a.dtype}")
    return [x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in a.ravel()]


def _as_attribute(a: np.ndarray, name: str, n: int, where: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{where}: attribute '{name}' must be numbers, got dtype {a.dtype}")
    if a.shape != (n,):
        raise DataError(f"{where}: attribute '{name}' has shape {a.shape}, expected one value per image ({n},)")
    return a


def _build(path: str, images, labels=None, label_names=(), attributes=None, split=None,
           report: LoadReport | None = None) -> ImageDataset:
    if labels is not None and label_names and len(label_names) <= labels.max(initial=0):
        raise DataError(f"{path}: {len(label_names)} label names for labels up to {labels.max()}")
    name = re.sub(r"\.gz$", "", os.path.basename(path), flags=re.I)
    if not (os.path.isdir(path) or _IDX_ANY.search(name)):  # "train-images.idx3-ubyte" keeps its tail
        name = os.path.splitext(name)[0]
    train_idx, test_idx = split if split is not None else (None, None)
    ds = ImageDataset(name=name, images=images, labels=labels, label_names=list(label_names),
                      attributes=dict(attributes or {}), train_idx=train_idx, test_idx=test_idx, source=path)
    _, h, w, c = ds.images.shape
    fw, fh = _fit_side(w, h, path)
    if (fw, fh) != (w, h):
        if report is not None:
            report.notes.append(f"scaled down from {w}×{h} to {fw}×{fh}")
        # Not ds.to_spec: that asks for ds.spec, which ImageSpec refuses at this size.
        ds.images = convert_images(ds.images, ImageSpec(c, fh, fw))
    return ds


def _load_npz(path: str, report: LoadReport) -> ImageDataset:
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(_npz_problem(path, "the array", e)) from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz/.npy file ({_reason(e)})") from None
    if isinstance(data, np.ndarray):  # .npy: a bare image array
        return _build(path, _as_images(data, path), report=report)

    wanted = {"images", "labels", "label_names"}
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError as e:
                if key in wanted or key.startswith("attr_") or "allow_pickle" not in str(e):
                    raise DataError(_npz_problem(path, f"'{key}'", e)) from None
                report.notes.append(f"'{key}' ignored (Python objects)")
            except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
                raise DataError(f"{path}: '{key}' cannot be read, the file may be truncated ({_reason(e)})") from None
    if "images" not in arrays:
        raise DataError(f"{path}: no 'images' array (keys: {', '.join(arrays) or 'none'})")
    images = _as_images(arrays.pop("images"), path)
    n = len(images)
    labels = _as_labels(arrays.pop("labels"), path) if "labels" in arrays else None
    names = _as_names(arrays.pop("label_names"), path) if "label_names" in arrays else []
    attributes = {}
    for key, a in arrays.items():
        if key.startswith("attr_"):
            attributes[key[5:]] = _as_attribute(a, key[5:], n, path)
        elif a.ndim == 1 and len(a) == n and a.dtype.kind in "biuf":
            attributes[key] = a
        else:
            report.notes.append(f"'{key}' ignored (not one number per image)")
    return _build(path, images, labels, names, attributes, report=report)


def _npz_problem(path: str, what: str, e: ValueError) -> str:
    if "allow_pickle" in str(e):
        return (f"{path}: {what} holds Python objects, which are never loaded (unpickling can run code); "
                "save numbers or strings instead")
    return f"{path}: {what} cannot be read, the file may be damaged ({_reason(e)})"


def _load_h5(path: str, report: LoadReport) -> ImageDataset:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path}: not a readable HDF5 file ({e})") from None
    try:
        with f:
            if not isinstance(f.get("images"), h5py.Dataset):
                raise DataError(f"{path}: no 'images' dataset (found: {', '.join(f.keys()) or 'nothing'})")
            images = _as_images(f["images"][()], path)
            n = len(images)
            labels = names = None
            if "labels" in f:
                labels = _as_labels(np.asarray(f["labels"][()]), path)
                if "label_names" in f["labels"].attrs:
                    names = _as_names(f["labels"].attrs["label_names"], path)
            if "label_names" in f:
                names = _as_names(f["label_names"][()], path)
            elif "label_names" in f.attrs:
                names = _as_names(f.attrs["label_names"], path)
            attributes = {}
            group = f.get("attributes")
            if isinstance(group, h5py.Group):
                for key, d in group.items():
                    if isinstance(d, h5py.Dataset):
                        attributes[key] = _as_attribute(np.asarray(d[()]), key, n, path)
    except (OSError, KeyError, TypeError) as e:  # h5py's errors for damaged files
        raise DataError(f"{path}: cannot be read, the file may be damaged ({_reason(e)})") from None
    return _build(path, images, labels, names or [], attributes, report=report)


# ---------------------------------------------------------------- IDX (MNIST's format)

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """One IDX file (gzipped if it ends in .gz) as a native-endian array."""
    try:
        with (gzip.open if path.lower().endswith(".gz") else open)(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut gzip an EOFError
        raise DataError(f"{path}: cannot be read ({_reason(e)})") from None
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise DataError(f"{path}: truncated (the header is incomplete)")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        what = "truncated" if len(raw) - header < expected else "longer than its header says"
        raise DataError(f"{path}: {what}: {len(raw) - header} bytes of data, expected {expected} for shape {dims}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _labels_file_for(images_path: str) -> str | None:
    folder, name = os.path.split(images_path)
    base = re.sub(r"\.gz$", "", name, flags=re.I)
    base = re.sub(r"idx\d", "idx1", base.replace("images", "labels"))
    for candidate in (base, base + ".gz"):
        if os.path.isfile(os.path.join(folder, candidate)):
            return os.path.join(folder, candidate)
    return None


def _load_idx_files(paths: list[str], where: str, report: LoadReport) -> ImageDataset:
    paths = sorted(paths)
    images, labels, is_test = [], [], []
    for p in paths:
        imgs = _as_images(read_idx(p), p)
        if imgs.ndim not in (3, 4):
            raise DataError(f"{p}: expected images (N, H, W), got an IDX array of shape {imgs.shape}")
        lp = _labels_file_for(p)
        lab = None
        if lp is not None:
            lab = _as_labels(read_idx(lp), lp)
            if len(lab) != len(imgs):
                raise DataError(f"{lp}: {len(lab)} labels for the {len(imgs)} images in {os.path.basename(p)}")
        images.append(imgs)
        labels.append(lab)
        name = os.path.basename(p).lower()
        is_test.append(name.startswith("t10k") or "test" in name)
    if len({a.shape[1:] for a in images}) > 1:
        raise DataError(f"{where}: the IDX files hold images of different sizes "
                        f"({', '.join(str(a.shape[1:]) for a in images)})")
    if any(lab is None for lab in labels) and any(lab is not None for lab in labels):
        report.notes.append("labels ignored: not every IDX images file has a labels file")
    all_labels = np.concatenate(labels) if all(lab is not None for lab in labels) else None
    split = None
    if any(is_test) and not all(is_test):  # keep the official train/test split
        member = np.concatenate([np.full(len(a), t) for a, t in zip(images, is_test)])
        split = (np.flatnonzero(~member), np.flatnonzero(member))
    return _build(where, np.concatenate(images), all_labels, split=split, report=report)
