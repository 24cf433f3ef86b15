"""Public data sets by name (`mnist`, `fashion-mnist`, `kmnist`, `cifar10`, `celeba`).

`load_public("mnist")` downloads the official files on first use (pooch: checksums, retries, a temp
file renamed into place only once verified), converts them once into a cache, and from then on
opens the cache (memory-mapped, milliseconds). See registry.py for the files, fetch.py for where
they go and convert.py for the cache.
"""
from __future__ import annotations

import threading

from engines.data.dataset import DataError, ImageDataset
from engines.data.public.convert import is_cached as _is_cached, open_cache, convert
from engines.data.public.fetch import (CONVERT, DOWNLOAD, Cancelled, ChecksumError, DownloadError, data_dir,
                                       manual_hint, set_dir)
from engines.data.public.fetch import fetch as fetch_files  # (the name `fetch` stays the module)
from engines.data.public.registry import PUBLIC, PublicSet, RemoteFile

__all__ = ["CONVERT", "DOWNLOAD", "PUBLIC", "PublicSet", "RemoteFile", "Cancelled", "ChecksumError", "DownloadError",
           "choice_label", "data_dir", "describe", "is_cached", "load_public", "manual_hint", "progress_line", "set_dir"]


def _get(name: str) -> PublicSet:
    try:
        return PUBLIC[name]
    except KeyError:
        raise DataError(f"{name}: no such public data set ({', '.join(PUBLIC)})") from None


def is_cached(name: str) -> bool:
    return _is_cached(set_dir(_get(name)))


def load_public(name: str, progress=None, cancel: threading.Event | None = None) -> ImageDataset:
    """The set, from its cache; downloading and converting first when it is not cached yet, with
    `progress(done, total, stage)`: stage "download" counts bytes, then "convert" counts files or
    images. Setting `cancel` stops either with `Cancelled`, leaving no partial file or cache."""
    s = _get(name)
    folder = set_dir(s)
    if not _is_cached(folder):
        fetch_files(s, progress=progress, cancel=cancel)
        convert(s, folder, progress=progress, cancel=cancel)
    return open_cache(s, folder)


def progress_line(name: str, done: int, total: int, stage: str) -> str:
    """'mnist: 3.2 of 11.6 MB' while downloading, 'celeba: converting 1,024 of 202,599' after."""
    if stage == DOWNLOAD:
        return f"{name}: {done / 1e6:,.1f} of {total / 1e6:,.1f} MB"
    return f"{name}: converting {done:,} of {total:,}"


def choice_label(name: str) -> str:
    """'mnist (12 MB download)' or 'mnist (downloaded)': how a data picker lists the set."""
    size = _get(name).download_size
    return f"{name} ({'downloaded' if is_cached(name) else f'{size / 1e6:,.0f} MB download'})"


def describe(name: str) -> dict:
    """One row of `main.py datasets`."""
    s = _get(name)
    h, w, c = s.shape
    return {"name": s.name, "kind": "public", "title": s.title, "images": s.n_images,
            "shape": [h, w, c], "classes": len(s.label_names), "attributes": s.n_attributes,
            "download_bytes": s.download_size, "licence": s.licence, "citation": s.citation,
            "homepage": s.homepage, "cached": is_cached(name), "folder": set_dir(s),
            "files": [{"name": f.name, "hash": f.hash, "bytes": f.size} for f in s.files]}
