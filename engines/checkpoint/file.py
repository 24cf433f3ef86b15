"""The checkpoint file itself: a safetensors file checked before anything is allocated.

`open_checked(path)` refuses anything that is not a regular file (a folder, a FIFO, a device)
before opening it, then validates the header against the file's size: header length, JSON,
every tensor's dtype × shape equal to its byte span, spans in order from the start of the data,
not overlapping, leaving no gap and ending exactly at the end of the file. The safetensors
library (`safe_open`) must agree with the result. Only then are tensors read, one chunk at a
time straight into their destination (`CheckedFile.read`), so a 2 GiB tensor costs its own
2 GiB and not a copy of the file besides; the same pass computes the content hash and finds
NaN/Inf values.

The content hash (`content_sha256` in the metadata) is SHA-256 over, in this order: every
metadata entry but the hash itself, sorted by key (key NUL value NUL), one 0x01 byte, then
every tensor sorted by name (name NUL dtype NUL shape as JSON NUL, then its raw bytes).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
from dataclasses import dataclass

MAX_HEADER = 100 * 1024 * 1024  # as safetensors' own limit
MAX_DIMS = 8
CHUNK = 4 * 1024 * 1024
HASH_KEY = "content_sha256"

# safetensors dtype name -> (torch dtype's name, bytes per element). torch itself is imported only
# once tensors are read, so a file refused by its header costs no torch import (the CLI's errors
# come at once).
DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U8": ("uint8", 1), "BOOL": ("bool", 1),
}


def torch_dtype(name: str):
    import torch

    return getattr(torch, DTYPES[name][0])


class CheckpointError(ValueError):
    """The file is not a checkpoint we can open; the message (one line) says why."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple
    start: int  # absolute offsets in the file
    end: int

    @property
    def torch_dtype(self):
        return torch_dtype(self.dtype)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _reject_constant(name):
    raise ValueError(f"{name} is not allowed in a checkpoint header")


def _open_regular(path: str) -> tuple[int, os.stat_result]:
    """A read-only descriptor of a regular file; folders, FIFOs and devices are refused before
    `open` (and O_NONBLOCK covers a file swapped for a FIFO in between: it never hangs)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: not a regular file (a FIFO, device or socket), not a checkpoint")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CheckpointError(f"{path}: not a regular file, not a checkpoint")
    return fd, st


def _pread_exact(fd: int, n: int, offset: int, path: str) -> bytes:
    try:
        data = os.pread(fd, n, offset)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) != n:
        raise CheckpointError(f"{path}: checkpoint is truncated (the file changed while being read)")
    return data


def _parse_entries(path: str, header: dict, data_start: int, size: int) -> tuple[dict, dict]:
    bad = f"{path}: not a checkpoint, or damaged (header"
    meta = header.pop("__metadata__", None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{bad}: metadata is not text)")
    entries = []
    for name, v in header.items():
        if not name:
            raise CheckpointError(f"{bad}: a tensor without a name)")
        if not isinstance(v, dict) or set(v) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointError(f"{bad}: tensor '{name}' is not described by dtype, shape and offsets)")
        dtype, shape, offs = v["dtype"], v["shape"], v["data_offsets"]
        if dtype not in DTYPES:
            raise CheckpointError(f"{bad}: tensor '{name}' has unsupported dtype {str(dtype)[:20]!r})")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_int(d) and d >= 0 for d in shape)):
            raise CheckpointError(f"{bad}: tensor '{name}' has an invalid shape)")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_int(o) for o in offs) and 0 <= offs[0] <= offs[1]):
            raise CheckpointError(f"{bad}: tensor '{name}' has invalid offsets)")
        numel = 1
        for d in shape:
            numel *= d
        if numel * DTYPES[dtype][1] != offs[1] - offs[0]:
            raise CheckpointError(f"{bad}: tensor '{name}' is {dtype} {shape} but spans {offs[1] - offs[0]} bytes)")
        entries.append(TensorEntry(name, dtype, tuple(shape), data_start + offs[0], data_start + offs[1]))
    entries.sort(key=lambda e: (e.start, e.end))
    for e in entries:
        if e.end > size:
            raise CheckpointError(f"{path}: checkpoint is truncated, or damaged (tensor '{e.name}' ends at byte {e.end} of {size})")
    pos = data_start
    for e in entries:
        if e.start != pos:
            what = "overlaps the previous one" if e.start < pos else "leaves a gap before it"
            raise CheckpointError(f"{bad}: tensor '{e.name}' {what})")
        pos = e.end
    if pos != size:
        if pos > size:
            raise CheckpointError(f"{path}: checkpoint is truncated ({size} bytes, needs {pos})")
        raise CheckpointError(f"{path}: not a checkpoint, or damaged ({size - pos} bytes after the last tensor)")
    return meta, {e.name: e for e in entries}


class CheckedFile:
    """An open, validated checkpoint file: `meta` (str -> str), `tensors` (name -> TensorEntry)."""

    def __init__(self, path: str):
        self.path = path
        self.fd, st = _open_regular(path)
        try:
            self._validate(st.st_size)
        except BaseException:
            self.close()
            raise

    def _validate(self, size: int) -> None:
        path = self.path
        if size < 8:
            raise CheckpointError(f"{path}: not a checkpoint (file too short)")
        (n,) = struct.unpack("<Q", _pread_exact(self.fd, 8, 0, path))
        if n < 2 or n > MAX_HEADER or 8 + n > size:
            raise CheckpointError(f"{path}: not a checkpoint, or truncated (header length {n}, file size {size})")
        raw = _pread_exact(self.fd, n, 8, path)
        try:
            header = json.loads(raw.decode("utf-8").rstrip(" "), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise CheckpointError(f"{path}: not a checkpoint (unreadable header)") from None
        if not isinstance(header, dict):
            raise CheckpointError(f"{path}: not a checkpoint (unreadable header)")
        self.meta, self.tensors = _parse_entries(path, header, 8 + n, size)
        self.size = size
        self._library_agrees()

    def _library_agrees(self) -> None:
        """The safetensors library's own reading of the header must match ours."""
        from safetensors import safe_open

        try:
            with safe_open(self.path, framework="numpy") as f:  # header only: no torch needed
                keys, meta = set(f.keys()), f.metadata() or {}
        except Exception as e:  # noqa: BLE001 - whatever the library raises, it is a damaged file
            reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            raise CheckpointError(f"{self.path}: not a checkpoint, or damaged ({reason})") from None
        if keys != set(self.tensors) or meta != self.meta:
            raise CheckpointError(f"{self.path}: not a checkpoint, or damaged (header read two ways differs)")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- tensors ------------------------------------------------------------------------------
    def read(self, targets: dict, on_read=None) -> tuple[str, str | None]:
        """Read every tensor, sorted by name, hashing all of them. `targets[name]`: a CPU
        tensor of the entry's dtype and shape to fill (contiguous), or None / absent to hash
        only. `on_read(name, tensor)` follows each filled tensor. Returns (the content hash,
        the first floating tensor holding NaN/Inf or None)."""
        import torch

        h = content_hasher(self.meta)
        scratch = None
        nonfinite = None
        for name in sorted(self.tensors):
            e = self.tensors[name]
            dst = targets.get(name)
            _hash_entry_head(h, name, e.dtype, e.shape)
            floating = e.torch_dtype.is_floating_point
            itemsize = DTYPES[e.dtype][1]
            if dst is not None:
                flat = dst.reshape(-1)
                view = memoryview(flat.view(torch.uint8).numpy()) if flat.numel() else memoryview(b"")
            pos = 0
            total = e.end - e.start
            while pos < total:
                k = min(CHUNK, total - pos)
                if dst is not None:
                    buf = view[pos:pos + k]
                else:
                    if scratch is None:
                        scratch = bytearray(CHUNK)
                    buf = memoryview(scratch)[:k]
                self._read_into(buf, e.start + pos)
                h.update(buf)
                if floating and nonfinite is None:
                    # min and max are finite only when every value is (NaN propagates): no
                    # chunk-sized temporary, unlike isfinite().all().
                    lo, hi = torch.aminmax(torch.frombuffer(buf, dtype=e.torch_dtype, count=k // itemsize))
                    if not (bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))):
                        nonfinite = name
                pos += k
            if dst is not None and on_read is not None:
                on_read(name, dst)
        return h.hexdigest(), nonfinite

    def _read_into(self, buf: memoryview, offset: int) -> None:
        got = 0
        while got < len(buf):
            try:
                n = os.preadv(self.fd, [buf[got:]], offset + got)
            except OSError as e:
                raise CheckpointError(f"{self.path}: cannot read ({e.strerror or e})") from None
            if n <= 0:
                raise CheckpointError(f"{self.path}: checkpoint is truncated (the file changed while being read)")
            got += n


def _hash_entry_head(h, name: str, dtype: str, shape) -> None:
    h.update(f"{name}\0{dtype}\0{json.dumps(list(shape))}\0".encode())


def content_hasher(meta: dict):
    h = hashlib.sha256()
    for k in sorted(meta):
        if k != HASH_KEY:
            h.update(f"{k}\0{meta[k]}\0".encode())
    h.update(b"\x01")
    return h


def content_hash(meta: dict, tensors: dict) -> str:
    """The hash `CheckedFile.read` computes, for tensors in memory (before saving them)."""
    import torch

    names = {torch_dtype(name): name for name in DTYPES}
    h = content_hasher(meta)
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        _hash_entry_head(h, name, names[t.dtype], t.shape)
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()
