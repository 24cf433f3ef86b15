"""Checks every loader makes before it reads or allocates anything.

* Only regular files are opened: a FIFO, socket or device given as data is refused after a
  `stat`, so a load never waits on a pipe or reads /dev/zero forever (`open_regular` also opens
  without blocking and checks the opened descriptor, so a file swapped for a FIFO in between is
  refused too).
* Headers are checked against the bytes that are really there (`check_size`) and the memory a
  load needs against a budget (`check_budget`) before any array is allocated.
* The memory budget is half the memory available now (MemAvailable, or the cgroup's limit when
  that is lower), or LATENT_EXPLORER_DATA_BUDGET when that is set and smaller: a number of bytes
  with an optional K/M/G/T suffix (powers of 1024), e.g. `LATENT_EXPLORER_DATA_BUDGET=2G`.
* Compressed data (.npz members, .gz) may hold at most MAX_RATIO times its compressed size:
  deflate cannot compress further than about 1032:1, so a header that declares more is lying.
"""
from __future__ import annotations

import math
import os
import re
import stat

import numpy as np

from engines.data.dataset import DataError

BUDGET_ENV = "LATENT_EXPLORER_DATA_BUDGET"
MAX_RATIO = 1100  # deflate's limit is about 1032:1
CHUNK = 1 << 20  # bytes read at a time into a preallocated array
_UNKNOWN_MEMORY = 4 << 30  # budget when the available memory cannot be found


def fmt_bytes(n: float) -> str:
    if n >= 1 << 60:
        return f"{n:.3g} bytes"
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"  # pragma: no cover


def _parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?\s*", text, re.I)
    if not m:
        raise DataError(f"{BUDGET_ENV}={text!r} is not a size (a number of bytes, or with K, M, G or T)")
    return int(float(m.group(1)) * 1024 ** " kmgtp".index((m.group(2) or " ").lower()))


def available_memory() -> int | None:
    """Bytes of memory this process can still use, or None when it cannot be found."""
    found = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's limit (cgroup v2)
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                found.append(max(0, int(limit) - int(fh.read().strip())))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def budget() -> tuple[int, str]:
    """(bytes a data load may use, where that limit comes from)."""
    avail = available_memory()
    limit, why = ((avail // 2, "half the available memory") if avail is not None
                  else (_UNKNOWN_MEMORY, "the default, as the available memory is unknown"))
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        mine = _parse_size(env)
        if mine < limit:
            limit, why = mine, f"{BUDGET_ENV}={env}"
    return limit, why


def check_budget(nbytes: int, where: str, what: str = "loading it") -> None:
    limit, why = budget()
    if nbytes > limit:
        raise DataError(f"{where}: {what} needs about {fmt_bytes(nbytes)}, more than the data memory budget "
                        f"of {fmt_bytes(limit)} ({why}; set {BUDGET_ENV} to lower it)")


# ---------------------------------------------------------------- files

def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str) -> os.stat_result:
    """`stat` (following links) and refuse anything but a regular file; never opens it."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: is {_kind(st.st_mode)}, not a data file")
    return st


def open_regular(path: str):
    """A binary file object for a regular file; FIFOs, sockets and devices are refused unopened."""
    check_regular(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped after the stat above
            raise DataError(f"{path}: is {_kind(st.st_mode)}, not a data file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_size(fh) -> int:
    return os.fstat(fh.fileno()).st_size


# ---------------------------------------------------------------- sizes and reads

def numel(shape) -> int:
    return math.prod(int(d) for d in shape)  # Python ints: a lying shape cannot overflow


def check_size(have: int, need: int, where: str, shape, dtype) -> None:
    """The data bytes present (`have`) must be exactly what the header declares (`need`)."""
    if have != need:
        what = "truncated" if have < need else "longer than its header says"
        raise DataError(f"{where}: {what}: {fmt_bytes(have)} of data, but the header declares shape "
                        f"{tuple(shape)} of {np.dtype(dtype).name} ({fmt_bytes(need)})")


def read_array(fh, shape, dtype, where: str, fortran: bool = False) -> np.ndarray:
    """Exactly numel(shape) items of `dtype` from `fh` into one preallocated native-endian array,
    read in chunks (no second copy of the data, whatever kind of stream `fh` is)."""
    dtype = np.dtype(dtype)
    nbytes = numel(shape) * dtype.itemsize
    buf = np.empty(nbytes, np.uint8)
    view, pos = memoryview(buf), 0
    while pos < nbytes:
        n = fh.readinto(view[pos:pos + min(CHUNK, nbytes - pos)])
        if not n:
            raise DataError(f"{where}: truncated: {fmt_bytes(pos)} of data, expected {fmt_bytes(nbytes)}")
        pos += n
    a = buf.view(dtype).reshape(tuple(shape), order="F" if fortran else "C")
    return a if dtype.isnative else a.byteswap(inplace=True).view(dtype.newbyteorder("="))


def check_ratio(declared: int, compressed: int, where: str) -> None:
    if declared > compressed * MAX_RATIO + 4096:
        raise DataError(f"{where}: the header declares {fmt_bytes(declared)}, more than its "
                        f"{fmt_bytes(compressed)} of compressed data can hold")


# ---------------------------------------------------------------- what arrays may hold

def dtype_problem(dtype: np.dtype, role: str) -> str | None:
    """Why an array of this dtype cannot be `role` ("images", "labels", "names", "attribute"),
    or None. Python objects are never acceptable: loading them means unpickling."""
    if dtype.hasobject:
        return "holds Python objects, which are never loaded (unpickling can run code); save numbers or strings instead"
    allowed = {"images": "biuf", "labels": "biuf", "attribute": "biuf", "names": "US"}[role]
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in allowed:
        want = "strings" if role == "names" else "numbers"
        return f"has dtype {dtype}; {role} must be {want}"
    return None


def image_shape_problem(shape) -> str | None:
    """Why `shape` cannot hold images, or None: (N, H, W), (N, H, W, C) or (N, C, H, W), C in {1, 3}."""
    shape = tuple(shape)
    if len(shape) not in (3, 4):
        return f"images must be (N, H, W) or (N, H, W, C), got shape {shape}"
    if len(shape) == 4 and shape[-1] not in (1, 3) and shape[1] not in (1, 3):
        return f"images must have 1 or 3 channels, got shape {shape}"
    if shape[0] == 0:
        return "contains no images"
    return None


def images_estimate(shape, dtype) -> int:
    """Bytes to load images of this shape and dtype: the stored array plus its uint8 copy."""
    n = numel(shape)
    return n * np.dtype(dtype).itemsize + (0 if np.dtype(dtype) == np.uint8 else n)


def as_images(a: np.ndarray, where: str) -> np.ndarray:
    """uint8 (N, H, W[, C]) images from an array as stored. Floats must be finite and in [0, 1];
    integers must lie in 0-255 (refused otherwise, not clipped: clipping would hide a wrong
    scale such as 16-bit data). Converted a block at a time, so no full-size temporary."""
    problem = dtype_problem(a.dtype, "images") or image_shape_problem(a.shape)
    if problem:
        raise DataError(f"{where}: {problem}")
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)  # (N, C, H, W), as PyTorch stores them
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "b":
        raise DataError(f"{where}: images have dtype bool; expected uint8 (0-255) or floats in [0, 1]")
    lo, hi = (a.min(), a.max()) if a.size else (0, 0)
    if a.dtype.kind == "f":
        lo, hi = float(lo), float(hi)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DataError(f"{where}: images contain NaN or infinite values")
        if lo < 0 or hi > 1:
            raise DataError(f"{where}: float images must lie in [0, 1], found values from {lo:g} to {hi:g}")
    elif lo < 0 or hi > 255:
        raise DataError(f"{where}: integer images must lie in 0-255, found values from {int(lo)} to {int(hi)} "
                        "(scale them to 8 bits first)")
    out = np.empty(a.shape, np.uint8)
    step = max(1, CHUNK // max(1, numel(a.shape[1:])))
    for i in range(0, len(a), step):
        block = a[i:i + step]
        out[i:i + step] = np.round(block * 255.0) if a.dtype.kind == "f" else block
    return out
