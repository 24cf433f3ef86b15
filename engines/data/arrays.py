"""Array files: .npy, .npz and HDF5.

Every header is read and checked first: dtypes (no Python objects: nothing is ever unpickled),
shapes, the bytes each array declares against the bytes that are really stored, and the memory
the whole load needs against the budget (engines/data/guards.py). Only then is anything
allocated, each array read once into its final buffer. Each loader returns the pieces
(`images`, `labels`, `names`, `attributes`) for files.py to assemble.
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib

import numpy as np
import numpy.lib.format as npformat

from engines.data.dataset import DataError
from engines.data.guards import (check_budget, check_ratio, check_regular, check_size, dtype_problem, file_size,
                                 fmt_bytes, image_shape_problem, images_estimate, numel, open_regular, read_array)

MAX_NPY_HEADER = 10_000  # numpy's own limit for headers it parses safely
MAX_NAMES = 100_000  # label names: far more than any data set's classes
_MAGIC = {b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"\x89HDF": "an HDF5 file",
          b"\x1f\x8b": "a gzip file", b"GIF8": "a GIF image", b"PK\x03\x04": "a zip file",
          b"\x93NUMPY": "a .npy array"}


def sniff(head: bytes) -> str:
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    return "an unknown format" if head else "empty"


def reason(e: BaseException, limit: int = 160) -> str:
    text = " ".join(f"{type(e).__name__}: {e}".split()) if str(e) else type(e).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


# ---------------------------------------------------------------- .npy / .npz

def npy_header(fh, where: str) -> tuple[tuple, bool, np.dtype]:
    """(shape, fortran_order, dtype) from a .npy header, leaving `fh` at the data. The header's
    length is checked before it is read (numpy's own reader reads whatever length it is told)."""
    try:
        magic = fh.read(8)
        version = npformat.read_magic(io.BytesIO(magic))
        reader = {(1, 0): npformat.read_array_header_1_0, (2, 0): npformat.read_array_header_2_0}.get(version)
        if reader is None:
            raise DataError(f"{where}: .npy format version {version[0]}.{version[1]} is not supported")
        length = fh.read(2 if version == (1, 0) else 4)
        if len(length) < (2 if version == (1, 0) else 4):
            raise DataError(f"{where}: truncated (the .npy header is incomplete)")
        n = struct.unpack("<H" if version == (1, 0) else "<I", length)[0]
        if n > MAX_NPY_HEADER:
            raise DataError(f"{where}: the .npy header claims {fmt_bytes(n)}; at most {MAX_NPY_HEADER} bytes are read")
        header = fh.read(n)
        if len(header) < n:
            raise DataError(f"{where}: truncated (the .npy header is incomplete)")
        shape, fortran, dtype = reader(io.BytesIO(length + header))
    except DataError:
        raise
    except Exception as e:  # ValueError for most damage; literal_eval can raise others
        raise DataError(f"{where}: not a valid .npy header ({reason(e)})") from None
    if any(d < 0 for d in shape):
        raise DataError(f"{where}: the header declares a negative size {shape}")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def load_numpy(path: str, notes: list[str]) -> dict:
    """A .npy (images only) or .npz file, told apart by content rather than by name."""
    with open_regular(path) as fh:
        head = fh.read(8)
        fh.seek(0)
        if head.startswith(b"\x93NUMPY"):
            return {"images": _npy_images(fh, path)}
        if head.startswith(b"PK"):
            return _npz(fh, path, notes)
        raise DataError(f"{path}: not a .npy or .npz file ({sniff(head)})")


def _npy_images(fh, path: str) -> np.ndarray:
    shape, fortran, dtype = npy_header(fh, path)
    problem = dtype_problem(dtype, "images") or image_shape_problem(shape)
    if problem:
        raise DataError(f"{path}: {problem}")
    check_size(file_size(fh) - fh.tell(), numel(shape) * dtype.itemsize, path, shape, dtype)
    check_budget(images_estimate(shape, dtype), path)
    return read_array(fh, shape, dtype, path, fortran)


def _check_member(info: zipfile.ZipInfo, archive: int, where: str) -> None:
    if info.flag_bits & 0x1:
        raise DataError(f"{where}: is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataError(f"{where}: uses zip compression method {info.compress_type}; only stored or deflated arrays are read")
    if info.header_offset + info.compress_size > archive:
        raise DataError(f"{where}: truncated: the archive ends before this array's {fmt_bytes(info.compress_size)}")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise DataError(f"{where}: damaged: the zip directory gives two different sizes for it")
    check_ratio(info.file_size, info.compress_size, where)


def _npz(fh, path: str, notes: list[str]) -> dict:
    archive = file_size(fh)
    try:
        zf = zipfile.ZipFile(fh)
    except Exception as e:  # BadZipFile, and struct/ValueError/OSError from damaged directories
        raise DataError(f"{path}: not a readable .npz file ({reason(e)})") from None
    with zf:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                notes.append(f"'{info.filename}' ignored (not an array)")
            elif info.filename[:-4] in members:
                raise DataError(f"{path}: holds two arrays named '{info.filename[:-4]}'")
            else:
                members[info.filename[:-4]] = info
        if "images" not in members:
            raise DataError(f"{path}: no 'images' array (keys: {', '.join(members) or 'none'})")
        headers = {}
        for key, info in members.items():
            where = f"{path}: '{key}'"
            _check_member(info, archive, where)
            try:
                with zf.open(info) as m:
                    shape, fortran, dtype = npy_header(m, where)
                    offset = m.tell()
            except DataError:
                raise
            except Exception as e:
                raise DataError(f"{where}: cannot be read, the file may be damaged ({reason(e)})") from None
            headers[key] = (info, shape, fortran, dtype, offset)

        wanted = _npz_roles(headers, path, notes)
        need = 0
        for key, role in wanted.items():
            info, shape, fortran, dtype, offset = headers[key]
            nbytes = numel(shape) * dtype.itemsize
            check_size(info.file_size - offset, nbytes, f"{path}: '{key}'", shape, dtype)
            need += images_estimate(shape, dtype) if role == "images" else nbytes
        check_budget(need, path)

        out = {"attributes": {}}
        for key, role in wanted.items():
            info, shape, fortran, dtype, _ = headers[key]
            where = f"{path}: '{key}'"
            try:
                with zf.open(info) as m:
                    npy_header(m, where)
                    a = read_array(m, shape, dtype, where, fortran)
                    m.read(1)  # at the end: lets zipfile check the CRC
            except DataError:
                raise
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
                raise DataError(f"{where}: cannot be read, the file may be damaged ({reason(e)})") from None
            if role == "attribute":
                out["attributes"][key[5:] if key.startswith("attr_") else key] = a
            else:
                out[role] = a
    return out


def _npz_roles(headers: dict, path: str, notes: list[str]) -> dict[str, str]:
    """Which arrays to read and as what, decided from their headers alone."""
    _, shape, _, dtype, _ = headers["images"]
    problem = dtype_problem(dtype, "images") or image_shape_problem(shape)
    if problem:
        raise DataError(f"{path}: 'images' {problem}" if dtype.hasobject else f"{path}: {problem}")
    n = shape[0]
    roles = {"images": "images"}
    for key, (_, shape, _, dtype, _) in headers.items():
        if key == "images":
            continue
        role = {"labels": "labels", "label_names": "names"}.get(key, "attribute" if key.startswith("attr_") else None)
        if role is None:  # any other numeric 1-D key of length N is an attribute too
            if dtype.hasobject:
                notes.append(f"'{key}' ignored (Python objects)")
            elif len(shape) == 1 and shape[0] == n and dtype_problem(dtype, "attribute") is None:
                roles[key] = "attribute"
            else:
                notes.append(f"'{key}' ignored (not one number per image)")
            continue
        problem = dtype_problem(dtype, role)
        if problem:
            raise DataError(f"{path}: '{key}' {problem}")
        if role == "labels" and shape != (n,):
            raise DataError(f"{path}: {numel(shape)} labels for {n} images" if len(shape) == 1 else
                            f"{path}: labels must be one class index per image (1-D), got shape {shape}")
        if role == "attribute" and shape != (n,):
            raise DataError(f"{path}: attribute '{key[5:]}' has shape {shape}, expected one value per image ({n},)")
        if role == "names" and numel(shape) > MAX_NAMES:
            raise DataError(f"{path}: {numel(shape)} label names; at most {MAX_NAMES} are read")
        roles[key] = role
    return roles


# ---------------------------------------------------------------- HDF5

def _h5_bytes(d, where: str, role: str, size: int) -> int:
    """Bytes reading dataset `d` allocates, after checking what it declares against what is
    stored: a dataset whose chunks or storage were never written would be made up of fill
    values of any declared size (a 2 KB file can declare 10⁷ images)."""
    import h5py

    shape = d.shape
    if shape is None:
        raise DataError(f"{where}: is an empty dataset")
    if role == "names" and h5py.check_string_dtype(d.dtype) is not None and d.dtype.kind == "O":
        if numel(shape) > MAX_NAMES:
            raise DataError(f"{where}: {numel(shape)} label names; at most {MAX_NAMES} are read")
        return numel(shape) * 64
    problem = dtype_problem(d.dtype, role)
    if problem:
        raise DataError(f"{where}: {problem}")
    if d.is_virtual or d.external:
        raise DataError(f"{where}: refers to data in other files, which is not read")
    nbytes = numel(shape) * d.dtype.itemsize
    if nbytes == 0:
        return 0
    storage = d.id.get_storage_size()
    declared = f"declares shape {tuple(shape)} of {d.dtype.name} ({fmt_bytes(nbytes)})"
    if storage > size:
        raise DataError(f"{where}: truncated: {declared} stored in {fmt_bytes(storage)}, more than the whole file")
    if d.chunks:
        expected = numel(-(-s // c) for s, c in zip(shape, d.chunks))
        have = d.id.get_num_chunks()
        if have < expected:
            raise DataError(f"{where}: {declared} but only {have} of its {expected} chunks are stored")
    filtered = d.id.get_create_plist().get_nfilters() > 0
    if filtered:
        check_ratio(nbytes, storage, where)
    elif storage < nbytes:
        raise DataError(f"{where}: {declared} but the file holds only {fmt_bytes(storage)} of it")
    if not d.chunks:
        offset = d.id.get_offset()
        if offset is not None and offset + storage > size:
            raise DataError(f"{where}: truncated: {declared} but the file ends before its data")
    return nbytes


def _h5_attr_names(obj, where: str):
    aid = obj.attrs.get_id("label_names")
    if aid.shape is not None and numel(aid.shape) > MAX_NAMES:
        raise DataError(f"{where}: {numel(aid.shape)} label names; at most {MAX_NAMES} are read")
    if aid.dtype.kind == "O":
        check_global_heaps(where)
    return obj.attrs["label_names"]


def check_global_heaps(path: str) -> None:
    """Walk every global heap collection ("GCOL") in an HDF5 file, where variable-length strings
    live, and refuse one whose object sizes do not add up: HDF5 itself loops forever on some
    (a free-space object of size 0). Called only before reading variable-length strings."""
    with open_regular(path) as fh:
        size, pos, tail = file_size(fh), 0, b""
        while True:
            block = fh.read(1 << 20)
            if not block:
                return
            data = tail + block
            start = pos - len(tail)
            i = data.find(b"GCOL")
            while i >= 0:
                at = start + i
                head = _pread(fh, at, 16)
                if head[4:8] == b"\x01\x00\x00\x00" and len(head) == 16:
                    n = struct.unpack("<Q", head[8:])[0]
                    if 4096 <= n <= size - at:
                        _check_collection(_pread(fh, at, n), path)
                i = data.find(b"GCOL", i + 1)
            pos += len(block)
            tail = data[-3:]
            fh.seek(pos)


def _pread(fh, at: int, n: int) -> bytes:
    return os.pread(fh.fileno(), n, at)


def _check_collection(c: bytes, path: str) -> None:
    p, end, seen = 16, len(c), set()
    while p + 16 <= end:
        index, _, _, n = struct.unpack("<HHIQ", c[p:p + 16])
        if index == 0:  # free space: the rest of the collection, header included
            if n != end - p:
                break
            return
        if index in seen or p + 16 + n > end:
            break
        seen.add(index)
        p += 16 + -(-n // 8) * 8
    else:
        return
    raise DataError(f"{path}: damaged: a heap of variable-length strings does not add up")


def _h5_get(group, name: str, where: str):
    """group[name] or None; a link into another file is refused unfollowed (it could name a
    FIFO or a huge file elsewhere)."""
    import h5py

    if name not in group.keys():
        return None
    if isinstance(group.get(name, getlink=True), h5py.ExternalLink):
        raise DataError(f"{where}: '{name}' links to another file, which is not followed")
    return group.get(name)


def load_h5(path: str, notes: list[str]) -> dict:
    import h5py

    size = check_regular(path).st_size
    with open_regular(path) as fh:
        head = fh.read(8)
    if not head.startswith(b"\x89HDF\r\n\x1a\n"):
        raise DataError(f"{path}: not an HDF5 file ({sniff(head)})")
    try:
        f = h5py.File(path, "r")
    except Exception as e:
        raise DataError(f"{path}: not a readable HDF5 file ({reason(e)})") from None
    with f:
        d = _h5_get(f, "images", path)
        if not isinstance(d, h5py.Dataset):
            raise DataError(f"{path}: no 'images' dataset (found: {', '.join(f.keys()) or 'nothing'})")
        problem = "'images' is an empty dataset" if d.shape is None else image_shape_problem(d.shape)
        if problem:
            raise DataError(f"{path}: {problem}")
        n = d.shape[0]
        need = _h5_bytes(d, f"{path}: 'images'", "images", size)
        need += 0 if d.dtype == np.uint8 else numel(d.shape)
        plan = {"images": d}
        lab = _h5_get(f, "labels", path)
        if lab is not None:
            if not isinstance(lab, h5py.Dataset) or lab.shape is None or len(lab.shape) != 1:
                raise DataError(f"{path}: labels must be one class index per image (1-D dataset)")
            if lab.shape != (n,):
                raise DataError(f"{path}: {lab.shape[0]} labels for {n} images")
            need += _h5_bytes(lab, f"{path}: 'labels'", "labels", size)
            plan["labels"] = lab
        names = _h5_get(f, "label_names", path)
        if isinstance(names, h5py.Dataset):
            need += _h5_bytes(names, f"{path}: 'label_names'", "names", size)
            if names.dtype.kind == "O":
                check_global_heaps(path)
            plan["names"] = names
        group = _h5_get(f, "attributes", path)
        if isinstance(group, h5py.Group):
            for key in group.keys():
                a = _h5_get(group, key, f"{path}: attributes")
                if not isinstance(a, h5py.Dataset):
                    continue
                if a.shape != (n,):
                    raise DataError(f"{path}: attribute '{key}' has shape {a.shape}, expected one value per image ({n},)")
                need += _h5_bytes(a, f"{path}: attribute '{key}'", "attribute", size)
                plan["attr/" + key] = a
        check_budget(need, path)

        out = {"attributes": {}}
        for key, ds in plan.items():
            a = np.asarray(ds[()])
            if key.startswith("attr/"):
                out["attributes"][key[5:]] = a
            else:
                out[key] = a
        if "names" not in out:
            if "labels" in plan and "label_names" in plan["labels"].attrs:
                out["names"] = _h5_attr_names(plan["labels"], path)
            if "label_names" in f.attrs:
                out["names"] = _h5_attr_names(f, path)
    return out
