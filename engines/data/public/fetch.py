"""Downloading a public set's files with pooch (checksums, retries, temp file + rename) into the
user data folder, or using files placed there by hand (verified the same way).

A partial download is never used, and it resumes: the bytes that arrived are kept in
`<file>.part` beside the file (a transfer cut short, a killed process), and the next attempt asks
for the rest with an HTTP Range request through pooch's own HTTPDownloader. A server that ignores
Range answers with the whole file, which then replaces the partial one (a restart). Only when all
the bytes are there does pooch check the checksum and give the file its name; a mismatch removes it
(so the next attempt restarts from nothing). Cancelling removes the partial file too.

Folder: $LATENT_EXPLORER_DATA_DIR, else platformdirs' user data dir / "datasets"; each set in a
sub-folder named after it, its files under their official names. $LATENT_EXPLORER_DATA_MIRROR
replaces every set's base URL (the file name is appended); since MNIST's, Fashion-MNIST's and
KMNIST's files share their names, a mirror holding several sets may put `{name}` in the URL
(https://mirror.example/datasets/{name}/), which becomes the set's name.
"""
from __future__ import annotations

import os
import threading

from engines.data.dataset import DataError
from engines.data.public.registry import PublicSet, RemoteFile

DOWNLOAD, CONVERT = "download", "convert"  # the stages `progress(done, total, stage)` reports
RETRIES = 2  # pooch's retry_if_failed (tests set 0)
TIMEOUT = 60  # seconds without data before a download is given up


class DownloadError(DataError):
    """A file could not be downloaded (network, missing mirror, cancelled)."""


class ChecksumError(DataError):
    """A file's checksum does not match the registry's; nothing is kept."""


class Cancelled(Exception):
    """The download was cancelled. Not a ValueError: pooch retries ValueErrors (its hash check)."""


def data_dir() -> str:
    d = os.environ.get("LATENT_EXPLORER_DATA_DIR")
    if d:
        return os.path.abspath(os.path.expanduser(d))
    import platformdirs

    return os.path.join(platformdirs.user_data_dir("latent-explorer", appauthor=False), "datasets")


def set_dir(s: PublicSet) -> str:
    return os.path.join(data_dir(), s.name)


def base_url(s: PublicSet) -> str | None:
    mirror = os.environ.get("LATENT_EXPLORER_DATA_MIRROR")
    if mirror:
        return mirror.replace("{name}", s.name).rstrip("/") + "/"
    return s.base_url


def manual_hint(s: PublicSet) -> str:
    names = ", ".join(f.name for f in s.files)
    how = f" ({s.manual})" if s.manual else ""
    return (f"place {names} by hand in {set_dir(s)}{how}, or set LATENT_EXPLORER_DATA_MIRROR to a mirror's URL")


class _Progress:
    """A tqdm-like object for pooch: reports bytes over all of a set's files; raises Cancelled."""

    def __init__(self, report, done_before: int, size: int, total: int, cancel: threading.Event | None):
        self.report, self.done_before, self.grand_total, self.cancel = report, done_before, total, cancel
        self.size = size  # the registry's size of this file: pooch counts whole 1 kB chunks
        self.total = 0  # set by pooch from Content-Length
        self.n = 0
        self.start = 0  # bytes already there when this transfer began (a resumed download)
        self.last_step = -1

    def resume_at(self, start: int) -> None:
        self.start = self.n = start

    def update(self, k):
        self.n += k
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("download cancelled")
        if self.report is not None:
            done = self.done_before + min(self.n, self.size)
            step = done * 1000 // max(self.grand_total, 1)  # at most ~1000 reports a set, not one per kB
            if step != self.last_step:
                self.last_step = step
                self.report(done, self.grand_total, DOWNLOAD)

    def reset(self):
        self.n = self.start

    def close(self):
        pass


def _verify_local(path: str, f: RemoteFile) -> None:
    import pooch

    algo, _, want = f.hash.partition(":")
    got = pooch.file_hash(path, alg=algo)
    if got.lower() != want.lower():
        raise ChecksumError(f"{path}: checksum mismatch ({algo} {got}, expected {want}); the file is refused — "
                            "delete it and place or download the official file again")


def fetch(s: PublicSet, progress=None, cancel: threading.Event | None = None) -> list[str]:
    """The set's files, verified: those already in its folder are checked, missing ones downloaded.
    `progress(done_bytes, total_bytes, "download")` is called while downloading; setting `cancel`
    stops it."""
    folder = set_dir(s)
    total = s.download_size
    done = 0
    paths = []
    for f in s.files:
        path = os.path.join(folder, f.name)
        _remove_empty_pooch_temps(folder)
        if os.path.isfile(path):
            _verify_local(path, f)
        else:
            _download(s, f, folder, _Progress(progress, done, f.size, total, cancel))
        done += f.size
        if progress is not None:
            progress(done, total, DOWNLOAD)
        paths.append(path)
    return paths


def _download(s: PublicSet, f: RemoteFile, folder: str, bar: _Progress) -> None:
    import pooch
    import requests

    base = base_url(s)
    if not base:
        raise DownloadError(f"{s.name}: {f.name} has no reliable download address; {manual_hint(s)}")
    url = base + f.name
    p = pooch.create(path=folder, base_url=base, registry={f.name: f.hash}, retry_if_failed=RETRIES)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # its retry notes and download banner: the caller reports progress and the one error
    part = os.path.join(folder, f.name + PART)
    try:
        p.fetch(f.name, downloader=_Resuming(part, bar))
    except Cancelled:
        _remove(part)
        raise
    except ValueError as e:
        if "hash" in str(e).lower():
            raise ChecksumError(f"{url}: checksum mismatch, the download is refused and not kept "
                                f"(expected {f.hash})") from None
        raise DownloadError(f"{url}: could not download ({_reason(e)}); {manual_hint(s)}") from None
    except (requests.RequestException, OSError) as e:
        raise DownloadError(f"{url}: could not download ({_reason(e)}); {manual_hint(s)}") from None
    finally:
        logger.setLevel(level)


PART = ".part"  # the bytes of an unfinished download, kept for the next attempt to resume


class _Resuming:
    """A pooch downloader: pooch.HTTPDownloader appending to `part`, asking for the bytes after
    those already there (HTTP Range). A requests response hook sees the status before any byte is
    written: 206 from where we asked appends; 200 (a server without Range) starts `part` again;
    416 (nothing after that offset: a stale or foreign partial file) starts again from nothing.
    When the transfer completes, `part` becomes pooch's temp file, which pooch verifies and renames."""

    def __init__(self, part: str, bar: _Progress):
        self.part, self.bar = part, bar

    def __call__(self, url, output_file, pooch_obj, check_only=False):
        import pooch
        import requests

        for _ in range(2):
            have = os.path.getsize(self.part) if os.path.isfile(self.part) else 0
            with open(self.part, "ab") as out:
                def on_response(r, *args, **kwargs):
                    if r.status_code == 206 and _range_start(r) == have:
                        self.bar.resume_at(have)
                    elif r.status_code in (200, 206, 416):  # the whole file (or an unusable range): restart
                        out.truncate(0)
                        self.bar.resume_at(0)
                    return r

                headers = {"Range": f"bytes={have}-"} if have else {}
                try:
                    pooch.HTTPDownloader(progressbar=self.bar, timeout=TIMEOUT, headers=headers,
                                         hooks={"response": on_response})(url, out, pooch_obj)
                except requests.HTTPError as e:
                    if have and e.response is not None and e.response.status_code == 416:
                        continue  # `part` was emptied: ask for the whole file
                    raise
            os.replace(self.part, output_file)
            return None
        raise requests.HTTPError(f"{url}: the server refuses every byte range")


def _range_start(r) -> int | None:
    """Where a 206 response's Content-Range ("bytes 100-199/200") starts."""
    value = r.headers.get("Content-Range", "")
    unit, _, rest = value.partition(" ")
    try:
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _remove_empty_pooch_temps(folder: str) -> None:
    """pooch's empty temp files ("tmp…") left by a killed process (the bytes are in `.part`)."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for n in names:
        p = os.path.join(folder, n)
        if n.startswith("tmp") and os.path.isfile(p) and os.path.getsize(p) == 0:
            _remove(p)


def _reason(e: BaseException) -> str:
    import requests

    if isinstance(e, requests.HTTPError) and e.response is not None:
        return f"HTTP {e.response.status_code} {e.response.reason or ''}".strip()
    if isinstance(e, requests.exceptions.ChunkedEncodingError):
        return "the transfer was cut short"
    if isinstance(e, requests.Timeout):
        return "timed out"
    if isinstance(e, requests.ConnectionError):
        text = str(e)
        for what in ("Connection refused", "Name or service not known", "No route to host",
                     "Temporary failure in name resolution", "Connection reset", "IncompleteRead"):
            if what in text:
                return f"{type(e).__name__}: {what}"
        return f"{type(e).__name__}: cannot connect"
    text = " ".join(str(e).split())
    if len(text) > 160:
        text = text[:157] + "…"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
