"""Stand-in files for the public data sets, in their official formats, under their official names
and at their official image counts (CelebA: fewer, see CELEBA_IMAGES): for machines that cannot
download the real ones (no internet), so that the real pipeline — download through
LATENT_EXPLORER_DATA_MIRROR from a local server, pooch's checksum, conversion, cache — can be run
and timed end to end. The pixels are NOT the real sets: Fashion-MNIST-shaped sets are drawn
clothing (clothes.py), CIFAR-10 coloured blobs, CelebA drawn faces.

`installed(names, data_dir)` generates (once, kept in `<data_dir>/../standin-files`), serves them
on 127.0.0.1, points the registry's checksums at them for the duration of the `with` (this process
only), and downloads + converts through `load_public`; the cache then sits in `data_dir`, which
should be a folder of its own (never the user's real data folder).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import os
import struct
import tarfile
import threading
import zipfile

import numpy as np

from standin import clothes

CELEBA_IMAGES = 4000  # of 202,599: JPEG encoding and decoding dominate; the timing rows say how many
SEEDS = {"mnist": 11, "fashion-mnist": 12, "kmnist": 13, "cifar10": 14, "celeba": 15}


def idx_bytes(a: np.ndarray) -> bytes:
    head = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return gzip.compress(head + np.ascontiguousarray(a, np.uint8).tobytes(), compresslevel=6)


def idx_set(seed: int, n_train: int = 60000, n_test: int = 10000) -> dict[str, bytes]:
    """The four MNIST-format files; images are drawn clothing of balanced, shuffled classes."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1000)):
        labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
        out[f"{prefix}-images-idx3-ubyte.gz"] = idx_bytes(clothes.draw(labels, seed=s))
        out[f"{prefix}-labels-idx1-ubyte.gz"] = idx_bytes(labels)
    return out


def cifar_set(seed: int, per_batch: int = 10000) -> dict[str, bytes]:
    """cifar-10-binary.tar.gz: five training batches and a test batch of 3,073-byte records
    (label, then 32×32 R, G, B planes); smooth random colour fields with a little noise."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            coarse = rng.integers(0, 256, (per_batch, 3, 4, 4)).astype(np.float32)
            img = np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3) + rng.normal(0, 8, (per_batch, 3, 32, 32))
            rows = np.empty((per_batch, 3073), np.uint8)
            rows[:, 0] = rng.integers(0, 10, per_batch)
            rows[:, 1:] = np.clip(img, 0, 255).astype(np.uint8).reshape(per_batch, -1)
            _add(tar, f"cifar-10-batches-bin/{name}", rows.tobytes())
        _add(tar, "cifar-10-batches-bin/batches.meta.txt", b"airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n")
    return {"cifar-10-binary.tar.gz": buf.getvalue()}


def _add(tar, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


def celeba_set(seed: int, n: int = CELEBA_IMAGES) -> dict[str, bytes]:
    """img_align_celeba.zip (178×218 JPEGs named 000001.jpg…), list_attr_celeba.txt (count line,
    the 40 names, ±1 per image) and list_eval_partition.txt (0/1/2), CRLF like the originals."""
    from PIL import Image, ImageDraw

    from engines.data.public.registry import CELEBA_ATTRIBUTES

    rng = np.random.default_rng(seed)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:  # JPEGs do not deflate; the official zip stores them too
        for name in names:
            bg = tuple(int(v) for v in rng.integers(40, 220, 3))
            im = Image.new("RGB", (178, 218), bg)
            d = ImageDraw.Draw(im)
            skin = tuple(int(v) for v in rng.integers(120, 250, 3))
            cx, cy, rx, ry = 89 + rng.integers(-6, 7), 118 + rng.integers(-6, 7), rng.integers(38, 50), rng.integers(50, 64)
            d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
            for ex in (cx - rx // 2.5, cx + rx // 2.5):
                d.ellipse((ex - 5, cy - 14, ex + 5, cy - 6), fill=(30, 30, 30))
            d.arc((cx - 18, cy + 10, cx + 18, cy + 34), 20, 160, fill=(120, 30, 30), width=3)
            b = io.BytesIO()
            im.save(b, "JPEG", quality=90)
            zf.writestr(f"img_align_celeba/{name}", b.getvalue())
    attrs = rng.choice([-1, 1], (n, len(CELEBA_ATTRIBUTES)))
    attr = f"{n}\r\n" + " ".join(CELEBA_ATTRIBUTES) + " \r\n" + "".join(
        f"{name} " + " ".join(f"{v:2d}" for v in row) + "\r\n" for name, row in zip(names, attrs))
    split = np.r_[np.zeros(int(n * 0.8), int), np.ones(int(n * 0.1), int)]
    split = np.r_[split, np.full(n - len(split), 2)]
    part = "".join(f"{name} {s}\r\n" for name, s in zip(names, split))
    return {"img_align_celeba.zip": z.getvalue(), "list_attr_celeba.txt": attr.encode(),
            "list_eval_partition.txt": part.encode()}


def make(name: str) -> dict[str, bytes]:
    seed = SEEDS[name]
    if name in ("mnist", "fashion-mnist", "kmnist"):
        return idx_set(seed)
    if name == "cifar10":
        return cifar_set(seed)
    if name == "celeba":
        return celeba_set(seed)
    raise KeyError(name)


def write(name: str, root: str) -> dict[str, str]:
    """The stand-in files of `name` in `root/name/` (generated once); returns name → md5."""
    folder = os.path.join(root, name)
    done = os.path.join(folder, "md5.txt")
    if not os.path.isfile(done):
        os.makedirs(folder, exist_ok=True)
        for f, blob in make(name).items():
            with open(os.path.join(folder, f), "wb") as fh:
                fh.write(blob)
        with open(done, "w") as fh:
            for f in sorted(os.listdir(folder)):
                if f != "md5.txt":
                    fh.write(f"{f} {_md5(os.path.join(folder, f))}\n")
    with open(done) as fh:
        return dict(line.split() for line in fh if line.strip())


def _md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def serving(root: str):
    """A static HTTP server on 127.0.0.1 for `root`; yields its URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def standin_registry(names, root: str):
    """PUBLIC's entries for `names` point at the stand-in files (their md5s and sizes) meanwhile."""
    from engines.data.public import PUBLIC, RemoteFile

    saved = {n: PUBLIC[n] for n in names}
    try:
        for n in names:
            md5 = write(n, root)
            PUBLIC[n] = dataclasses.replace(PUBLIC[n], files=tuple(
                RemoteFile(f.name, f"md5:{md5[f.name]}", os.path.getsize(os.path.join(root, n, f.name)))
                for f in PUBLIC[n].files))
        yield
    finally:
        PUBLIC.update(saved)


@contextlib.contextmanager
def installed(names, data_dir: str, root: str | None = None):
    """Inside: LATENT_EXPLORER_DATA_DIR=`data_dir`, LATENT_EXPLORER_DATA_MIRROR=a local server of
    the stand-in files, the registry pointing at them. Nothing is downloaded until asked."""
    root = root or os.path.join(os.path.dirname(os.path.abspath(data_dir)), "standin-files")
    saved = {k: os.environ.get(k) for k in ("LATENT_EXPLORER_DATA_DIR", "LATENT_EXPLORER_DATA_MIRROR")}
    with standin_registry(names, root), serving(root) as url:
        os.environ["LATENT_EXPLORER_DATA_DIR"] = os.path.abspath(data_dir)
        os.environ["LATENT_EXPLORER_DATA_MIRROR"] = url + "{name}/"
        try:
            yield url
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
