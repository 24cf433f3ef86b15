"""Downloading a public set's files with pooch (checksums, retries, temp file + rename) into the
user data folder, or using files placed there by hand (verified the same way).

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

    def update(self, k):
        self.n += k
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("download cancelled")
        if self.report is not None:
            self.report(self.done_before + min(self.n, self.size), self.grand_total)

    def reset(self):
        self.n = 0

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
    `progress(done_bytes, total_bytes)` is called while downloading; setting `cancel` stops it."""
    folder = set_dir(s)
    total = s.download_size
    done = 0
    paths = []
    for f in s.files:
        path = os.path.join(folder, f.name)
        if os.path.isfile(path):
            _verify_local(path, f)
        else:
            _download(s, f, folder, _Progress(progress, done, f.size, total, cancel))
        done += f.size
        if progress is not None:
            progress(done, total)
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
    try:
        p.fetch(f.name, downloader=pooch.HTTPDownloader(progressbar=bar, timeout=TIMEOUT))
    except Cancelled:
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
