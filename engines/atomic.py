"""Files that appear whole or not at all.

Every file the project writes for the user (checkpoints, caches, settings, vectors, exports) goes
through a temporary file in the destination folder that is renamed over the target only once it
is complete, checked and on disk, so a crash, a Cancel or a full disk never leaves a half-written
file under the final name, and an existing file stays byte-identical until its replacement is ready.

The recipe, for every writer: a temp named `.tmp-<pid>-<tag>-<name>` next to the target; write it;
check the writer's own status (its exceptions, ffmpeg's exit code, a `verify` of the result);
flush and fsync it; rename it over the target; fsync the folder. Any OSError on the way (ENOSPC,
EIO, EROFS, EACCES…) removes the temp and becomes one `WriteError` with a one-line message
("disk full writing out.mp4 (No space left on device); the previous file is unchanged").

Temps of processes that died mid-write (kill -9, power loss) are removed by the next write into
that folder (`sweep`): the pid in the name says whose it is, and a live process's temp is kept.
"""
from __future__ import annotations

import errno
import io
import json
import os
import re
import secrets
import shutil
import sys
from contextlib import contextmanager

PREFIX = ".tmp-"  # temp files are hidden and recognisable (tests look for leftovers)
_OLD = "old"  # tag of a folder moved aside while its replacement is renamed in (PNG sequences)
_NAME = re.compile(r"^\.tmp-(\d+)-(old)?[0-9a-f]{8}-(.+)$")


class WriteError(OSError):
    """A write failed and was rolled back: the previous file (if any) is unchanged and no temp
    file is left. `str()` is one line for the user; `errno` is the cause's."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.errno = code

    def __str__(self) -> str:
        return self.message


_WHAT = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EIO: "I/O error",
         errno.EROFS: "read-only file system", errno.EACCES: "permission denied", errno.EPERM: "not permitted",
         errno.EFBIG: "file too large"}


def failure(path: str, e: BaseException, what: str = "") -> WriteError:
    """The one-line `WriteError` for a failed write of `path` (the target's state is read now: a
    failed write never touches it, so it is what it was before)."""
    if isinstance(e, WriteError):
        return e
    code = getattr(e, "errno", None)
    reason = (getattr(e, "strerror", None) or str(e) or type(e).__name__).strip().splitlines()
    reason = reason[0] if reason else type(e).__name__
    kind = _WHAT.get(code, "could not write")
    name = os.path.basename(os.path.normpath(path)) or path
    head = f"{kind} writing {what + ' ' if what else ''}{name}"
    if reason.lower() != kind.lower():
        head += f" ({reason})"
    tail = "the previous file is unchanged" if os.path.lexists(path) else "nothing was written"
    return WriteError(f"{head}; {tail}", code)


# ---- temp names and stale temps ----------------------------------------------------------------
def temp_path(path: str, folder: bool = False, tag: str = "") -> str:
    """Create (and return) an empty temp file — or folder — for `path`, in its folder, named
    `.tmp-<pid>-<tag><hex>-<name>`; stale temps of dead processes there are removed first."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    sweep(directory)
    base = os.path.basename(os.path.normpath(path))
    for _ in range(100):
        tmp = os.path.join(directory, f"{PREFIX}{os.getpid()}-{tag}{secrets.token_hex(4)}-{base}")
        try:
            if folder:
                os.mkdir(tmp, 0o700)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", directory)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform.startswith("win"):
        return True  # os.kill(pid, 0) would terminate it there: never guess, keep the temp
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process, or we cannot tell: keep
    return True


def sweep(directory: str) -> list[str]:
    """Remove the temps that dead processes left in `directory` (their pid is in the name); a
    folder moved aside by a dead process whose replacement never arrived is put back. Returns
    what was removed. Best effort: never raises."""
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = _NAME.match(name)
        if not m or _alive(int(m.group(1))):
            continue
        p = os.path.join(directory, name)
        target = os.path.join(directory, m.group(3))
        try:
            if m.group(2) and not os.path.lexists(target):
                os.rename(p, target)  # the swap was cut between its two renames: undo it
                continue
            shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
            removed.append(p)
        except OSError:
            pass
    return removed


def remove(p: str | None) -> None:
    if not p:
        return
    try:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
    except OSError:
        pass


_unlink = remove  # older name


# ---- making it durable and visible -------------------------------------------------------------
def _fsync_path(p: str, directory: bool = False) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if directory else os.O_RDONLY
    try:
        fd = os.open(p, flags)
    except OSError:
        if directory:
            return  # Windows cannot open folders: nothing to sync there
        raise
    try:
        os.fsync(fd)
    except OSError as e:
        if not directory or e.errno not in (errno.EINVAL, errno.EBADF, errno.ENOTSUP, errno.EPERM):
            raise  # a file's data must reach the disk; a folder's sync is best effort
    finally:
        os.close(fd)


def sync(p: str) -> None:
    """fsync a file, or every file of a folder (one level) and the folder itself."""
    if os.path.isdir(p):
        files = [q for q in (os.path.join(p, n) for n in os.listdir(p)) if os.path.isfile(q)]
        if len(files) > 1:
            # Together: one after the other, each fsync waits for a device flush of its own (192 PNG
            # frames, ext4 on a virtual disk: 0.65 s); issued at once they share them (0.05 s).
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(16, len(files)), thread_name_prefix="fsync") as pool:
                for _ in pool.map(_fsync_path, files):  # the first OSError is raised, after all ran
                    pass
        else:
            for q in files:
                _fsync_path(q)
        _fsync_path(p, directory=True)
    else:
        _fsync_path(p)


def _chmod_like_open(tmp: str) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, (0o777 if os.path.isdir(tmp) else 0o666) & ~umask)


def publish(tmp: str, path: str) -> None:
    """fsync a finished temp file (or folder), give it the permissions a plain open()/mkdir()
    would have, rename it onto `path` and fsync the folder. A folder replaces an earlier folder
    of that name (moved aside under a temp name first, then removed). Raises OSError."""
    sync(tmp)
    _chmod_like_open(tmp)
    directory = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(tmp) and os.path.isdir(path) and not os.path.islink(path):
        old = temp_path(path, folder=True, tag=_OLD)
        os.rmdir(old)
        os.rename(path, old)
        try:
            os.rename(tmp, path)
        except OSError:
            os.rename(old, path)
            raise
        remove(old)
    else:
        os.replace(tmp, path)
    _fsync_path(directory, directory=True)


@contextmanager
def replacing(path: str, suffix: str | None = None, durable: bool = True, verify=None, folder: bool = False,
              what: str = ""):
    """`with replacing("out.h5") as tmp: write(tmp)` — the temp path to write (its name ends like
    `path`, or with `suffix`); on success it is checked (`verify(tmp)` may raise), fsynced and
    renamed onto `path`; on any error it is removed. OSErrors become one `WriteError`; other
    errors propagate unchanged. `durable` is kept for old callers: every write is fsynced."""
    del durable
    name = path if suffix is None else os.path.splitext(path)[0] + suffix
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        tmp = temp_path(name, folder=folder)
    except OSError as e:
        raise failure(path, e, what) from None
    try:
        yield tmp
        if not folder and os.path.getsize(tmp) == 0:
            raise OSError(errno.EIO, "the writer produced an empty file")
        if verify is not None:
            verify(tmp)
        publish(tmp, path)
    except OSError as e:
        remove(tmp)
        raise failure(path, e, what) from None
    except BaseException:
        remove(tmp)
        raise


def write_bytes(path: str, blob, durable: bool = True, what: str = "") -> str:
    with replacing(path, what=what) as tmp, open(tmp, "wb") as f:
        f.write(blob)
    return path


def write_text(path: str, text: str, what: str = "") -> str:
    with replacing(path, what=what) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def write_json(path: str, doc, **dump_options) -> str:
    # Serialised first: a value json cannot write (NaN with allow_nan=False, an object) fails
    # before any file exists.
    return write_text(path, json.dumps(doc, **({"indent": 1} | dump_options)))


def write_hdf5(path: str, fill, what: str = "") -> str:
    """`fill(h5py.File)` builds the file in memory; its bytes are then written like any other.
    HDF5 itself never touches the disk: after a failed write (ENOSPC) the HDF5 library crashes
    the process when the file is closed (h5py 3.16 / HDF5 2.0: SIGSEGV), so it never gets one."""
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as h:
        fill(h)
    return write_bytes(path, buf.getbuffer(), what=what)
