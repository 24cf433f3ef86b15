"""Files that appear whole or not at all.

Every file the project writes for the user (checkpoints, caches, settings, vectors, exports) goes
through a temporary file in the destination folder that is renamed over the target only once it
is complete, so a crash, a Cancel or a full disk never leaves a half-written file under the
final name, and an existing file stays intact until its replacement is ready.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager

PREFIX = ".tmp-"  # temp files are hidden and recognisable (tests look for leftovers)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextmanager
def replacing(path: str, suffix: str | None = None, durable: bool = False):
    """`with replacing("out.h5") as tmp: write(tmp)` — the temp path to write; on success it
    becomes `path` (with the user's usual permissions: mkstemp makes 0600 files), on any error
    it is removed and the error propagates. `durable` fsyncs before the rename (checkpoints)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=PREFIX, suffix=suffix if suffix is not None else os.path.splitext(path)[1],
                               dir=directory)
    os.close(fd)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        publish(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise


def publish(tmp: str, path: str) -> None:
    """Rename a finished temp file (or folder) onto `path`, with the permissions a plain
    open()/mkdir() would have given it (mkstemp/mkdtemp make 0600/0700)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (0o777 if os.path.isdir(tmp) else 0o666) & ~umask)
    os.replace(tmp, path)


def write_bytes(path: str, blob: bytes, durable: bool = False) -> str:
    with replacing(path, durable=durable) as tmp, open(tmp, "wb") as f:
        f.write(blob)
    return path


def write_json(path: str, doc, **dump_options) -> str:
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, **({"indent": 1} | dump_options))
    return path
