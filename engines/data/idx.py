"""IDX files (MNIST's format), plain or gzipped.

The header (magic, type code, dimension counts) is read first and checked: a plain file must
hold exactly the bytes it declares; a .gz is decompressed only as far as the header declares
(plus one byte to find out whether the stream runs on, which is refused), and may not declare
more than its compressed size can hold. Nothing is allocated before these checks and the memory
budget pass.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from engines.data.dataset import DataError
from engines.data.guards import check_budget, check_ratio, check_size, file_size, numel, open_regular, read_array

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class IdxHeader:
    path: str
    dtype: np.dtype
    shape: tuple
    header_len: int

    @property
    def nbytes(self) -> int:
        return numel(self.shape) * self.dtype.itemsize


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


class _Opened:
    """The decompressed stream of an IDX file and the size of the file on disk."""

    def __init__(self, path: str):
        self.path = path
        self.raw = open_regular(path)
        self.size = file_size(self.raw)
        self.gz = path.lower().endswith(".gz")
        self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.gz else self.raw

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.gz:
            self.stream.close()
        self.raw.close()

    def read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut gzip an EOFError
            raise DataError(f"{self.path}: cannot be read, the file may be damaged ({_reason(e)})") from None


def _header(f: _Opened) -> IdxHeader:
    magic = f.read(4)
    if len(magic) < 4 or magic[0] or magic[1] or magic[2] not in IDX_TYPES:
        raise DataError(f"{f.path}: not an IDX file (bad magic number)")
    ndim = magic[3]
    if ndim == 0:
        raise DataError(f"{f.path}: the IDX header declares no dimensions")
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{f.path}: truncated (the header is incomplete)")
    return IdxHeader(f.path, np.dtype(IDX_TYPES[magic[2]]), struct.unpack(f">{ndim}I", dims), 4 + 4 * ndim)


def idx_header(path: str) -> IdxHeader:
    """The header of an IDX file, checked against the file's size; no data is read."""
    with _Opened(path) as f:
        h = _header(f)
        if f.gz:
            check_ratio(h.header_len + h.nbytes, f.size, path)
        else:
            check_size(f.size - h.header_len, h.nbytes, path, h.shape, h.dtype)
    return h


def read_idx_data(h: IdxHeader) -> np.ndarray:
    """The array `h` describes, native-endian; call after `idx_header` and the budget check."""
    with _Opened(h.path) as f:
        _header(f)
        try:
            a = read_array(f.stream, h.shape, h.dtype, h.path)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{h.path}: cannot be read, the file may be damaged ({_reason(e)})") from None
        if f.gz and f.read(1):  # also makes gzip check the CRC at the end of the stream
            raise DataError(f"{h.path}: longer than its header says: the stream runs past the "
                            f"{h.nbytes} bytes of data declared for shape {h.shape}")
    return a


def read_idx(path: str) -> np.ndarray:
    """One IDX file (gzipped if it ends in .gz) as a native-endian array."""
    h = idx_header(path)
    check_budget(h.nbytes, path)
    return read_idx_data(h)
