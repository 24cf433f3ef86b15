"""Public data sets by name, against a local HTTP server on 127.0.0.1 that serves small generated
files under the official names; the registry's checksums are replaced by the generated files'.
No test touches the internet."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import io
import json
import os
import struct
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from engines.data import load_dataset, training_source
from engines.data.public import PUBLIC, ChecksumError, DownloadError, fetch as fetchmod, is_cached, load_public
from engines.data.public.registry import CELEBA_ATTRIBUTES, RemoteFile


# ---- generated files under the official names ------------------------------------------------------
def _idx(a: np.ndarray) -> bytes:
    head = struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return gzip.compress(head + a.astype(np.uint8).tobytes())


def mnist_files(n_train=64, n_test=16, seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        out[f"{prefix}-images-idx3-ubyte.gz"] = _idx(rng.integers(0, 256, (n, 28, 28)))
        out[f"{prefix}-labels-idx1-ubyte.gz"] = _idx(np.arange(n) % 10)
    return out


def cifar_files(per_batch=4) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for name in names + ["batches.meta.txt"]:
            if name.endswith(".bin"):
                rows = rng.integers(0, 256, (per_batch, 3073)).astype(np.uint8)
                rows[:, 0] = np.arange(per_batch) % 10
                blob = rows.tobytes()
            else:
                blob = b"airplane\nautomobile\n"
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return {"cifar-10-binary.tar.gz": buf.getvalue()}


def celeba_files(n=6) -> dict[str, bytes]:
    rng = np.random.default_rng(2)
    z = io.BytesIO()
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    with zipfile.ZipFile(z, "w") as zf:
        for name in names:
            im = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (218, 178, 3)).astype(np.uint8)).save(im, "JPEG")
            zf.writestr(f"img_align_celeba/{name}", im.getvalue())
    attrs = rng.choice([-1, 1], (n, 40))
    attr_txt = f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n" + "".join(
        f"{name} " + " ".join(f"{v:2d}" for v in row) + "\n" for name, row in zip(names, attrs))
    part_txt = "".join(f"{name} {i % 3}\n" for i, name in enumerate(names))
    return {"img_align_celeba.zip": z.getvalue(), "list_attr_celeba.txt": attr_txt.encode(),
            "list_eval_partition.txt": part_txt.encode()}


GENERATED = {"mnist": mnist_files, "fashion-mnist": lambda: mnist_files(seed=3), "kmnist": lambda: mnist_files(seed=4),
             "cifar10": cifar_files, "celeba": celeba_files}


# ---- the local server ------------------------------------------------------------------------------------
class Server:
    """http.server in a thread on 127.0.0.1; `files` name → bytes; `truncate` names are sent with
    their full Content-Length but only half their bytes, then the connection closes; `requests`
    counts the GETs and `ranges` their Range headers (None without); with `range_support` a Range
    request is answered 206 with the bytes from that offset (else 200 and the whole file)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.truncate_once: set[str] = set()  # cut short the first time only
        self.slow = 0.0  # seconds between 1 kB chunks
        self.requests: list[str] = []
        self.ranges: list[str | None] = []
        self.sent: list[int] = []  # body bytes written per GET
        self.range_support = True
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                name = self.path.lstrip("/")
                outer.requests.append(name)
                asked = self.headers.get("Range")
                outer.ranges.append(asked)
                blob = outer.files.get(name)
                if blob is None:
                    self.send_error(404)
                    return
                start = int(asked.split("=")[1].split("-")[0]) if asked and outer.range_support else 0
                if start >= len(blob) > 0:
                    self.send_error(416)
                    return
                if asked and outer.range_support:
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
                else:
                    self.send_response(200)
                blob = blob[start:]
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                cut = name in outer.truncate or name in outer.truncate_once
                outer.truncate_once.discard(name)
                blob = blob[:len(blob) // 2] if cut else blob
                outer.sent.append(0)
                if not outer.slow:
                    self.wfile.write(blob)
                    outer.sent[-1] = len(blob)
                    return
                for i in range(0, len(blob), 1024):
                    try:
                        self.wfile.write(blob[i:i + 1024])
                        self.wfile.flush()
                    except OSError:  # the client went away (cancelled)
                        return
                    outer.sent[-1] = i + len(blob[i:i + 1024])
                    time.sleep(outer.slow)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch, tmp_path):
    s = Server()
    monkeypatch.setenv("LATENT_EXPLORER_DATA_MIRROR", s.url)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENT_EXPLORER_DATA_DIR", str(tmp_path / "datasets"))
    monkeypatch.setattr(fetchmod, "RETRIES", 0)
    monkeypatch.setattr(fetchmod, "TIMEOUT", 10)


def serve(server, monkeypatch, name, files=None):
    """Serve the generated files of `name` and point the registry's checksums at them."""
    files = files or GENERATED[name]()
    server.files.update(files)
    s = PUBLIC[name]
    monkeypatch.setitem(PUBLIC, name, dataclasses.replace(s, files=tuple(
        RemoteFile(f.name, "sha256:" + hashlib.sha256(files[f.name]).hexdigest(), len(files[f.name])) for f in s.files)))
    return files


def folder(name):
    return os.path.join(os.environ["LATENT_EXPLORER_DATA_DIR"], name)


# ---- tests ---------------------------------------------------------------------------------------------------
def test_first_use_downloads_and_caches_then_opens_from_the_cache_without_the_server(server, monkeypatch):
    files = serve(server, monkeypatch, "mnist")
    seen = []
    ds = load_public("mnist", progress=lambda done, total, stage: seen.append((done, total, stage)))
    assert len(ds) == 80 and ds.spec.height == 28 and ds.spec.channels == 1
    assert len(ds.train_idx) == 64 and len(ds.test_idx) == 16
    assert ds.label_names == [str(i) for i in range(10)] and ds.labels[:3].tolist() == [0, 1, 2]
    total = sum(len(b) for b in files.values())
    down = [(d, t) for d, t, stage in seen if stage == "download"]
    assert down and down[-1] == (total, total) and all(0 <= d <= t for d, t in down)
    stages = [stage for *_, stage in seen]
    assert stages == sorted(stages, key=["download", "convert"].index)  # every download report before converting
    assert [(d, t) for d, t, stage in seen if stage == "convert"] == [(0, 2), (1, 2), (2, 2)]  # train, test files
    assert sorted(server.requests) == sorted(files)
    assert is_cached("mnist")
    server.stop()
    server.stop = lambda: None
    t0 = time.perf_counter()
    again = load_dataset("mnist")
    assert time.perf_counter() - t0 < 1.0
    assert np.array_equal(np.asarray(again.images), np.asarray(ds.images))
    assert np.array_equal(again.test_idx, ds.test_idx)
    assert training_source(type("Info", (), {"data": again.describe()})()) == "mnist"


@pytest.mark.parametrize("name", ["cifar10", "celeba"])
def test_cifar_and_celeba_convert_without_pickle(server, monkeypatch, name):
    serve(server, monkeypatch, name)
    ds = load_dataset(name)
    if name == "cifar10":
        assert len(ds) == 24 and ds.spec.height == 32 and ds.spec.channels == 3
        assert len(ds.test_idx) == 4 and len(ds.train_idx) == 20 and len(ds.label_names) == 10
    else:
        assert len(ds) == 6 and ds.spec.height == 64 and ds.spec.channels == 3 and ds.labels is None
        assert sorted(ds.attributes) == sorted(CELEBA_ATTRIBUTES)
        assert set(np.unique(ds.attributes["Smiling"])) <= {0.0, 1.0}
        assert ds.train_idx.tolist() == [0, 3] and ds.test_idx.tolist() == [2, 5]  # partition 1 (valid) in neither
    assert load_dataset(name, size=16).spec.height == 16


def test_a_mismatched_file_is_refused_and_nothing_is_kept(server, monkeypatch):
    serve(server, monkeypatch, "mnist")
    server.files["train-labels-idx1-ubyte.gz"] = _idx(np.arange(64) % 7)  # not what the checksum says
    with pytest.raises(ChecksumError, match="checksum mismatch") as e:
        load_public("mnist")
    assert "\n" not in str(e.value) and "train-labels-idx1-ubyte.gz" in str(e.value)
    assert not os.path.exists(os.path.join(folder("mnist"), "train-labels-idx1-ubyte.gz"))
    assert not is_cached("mnist")
    assert not [f for f in os.listdir(folder("mnist")) if f != "train-images-idx3-ubyte.gz"]


def test_a_wrong_file_placed_by_hand_is_refused(server, monkeypatch):
    files = serve(server, monkeypatch, "kmnist")
    os.makedirs(folder("kmnist"))
    for n, b in files.items():
        with open(os.path.join(folder("kmnist"), n), "wb") as f:
            f.write(b if n != "t10k-labels-idx1-ubyte.gz" else b[:-1] + b"x")
    server.stop()
    server.stop = lambda: None
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        load_dataset("kmnist")
    assert not is_cached("kmnist")


def test_files_placed_by_hand_are_used_without_a_server(monkeypatch):
    files = celeba_files()
    PUBLIC_C = PUBLIC["celeba"]
    monkeypatch.setitem(PUBLIC, "celeba", dataclasses.replace(PUBLIC_C, files=tuple(
        RemoteFile(f.name, "md5:" + hashlib.md5(files[f.name]).hexdigest(), f.size) for f in PUBLIC_C.files)))
    with pytest.raises(DownloadError, match="by hand in .*celeba") as e:  # no mirror, no reliable host
        load_dataset("celeba")
    assert "\n" not in str(e.value)
    os.makedirs(folder("celeba"), exist_ok=True)
    for n, b in files.items():
        with open(os.path.join(folder("celeba"), n), "wb") as f:
            f.write(b)
    assert len(load_dataset("celeba")) == 6


def test_a_truncated_transfer_is_not_used_and_resumes_next_time(server, monkeypatch):
    """The server announces the whole Content-Length, sends half and closes: the half is kept as
    `.part` (never under the official name, never converted); the next call asks for the rest with
    a Range request and gets only the missing bytes."""
    files = serve(server, monkeypatch, "fashion-mnist")
    name = "train-images-idx3-ubyte.gz"
    server.truncate.add(name)
    with pytest.raises(DownloadError) as e:
        load_public("fashion-mnist")
    assert name in str(e.value) and "\n" not in str(e.value) and "cut short" in str(e.value)
    half = len(files[name]) // 2
    assert os.listdir(folder("fashion-mnist")) == [name + ".part"]  # no file under its name, no temp file
    have = os.path.getsize(os.path.join(folder("fashion-mnist"), name + ".part"))
    assert 0 < have <= half  # what arrived, less what requests still held when the connection broke
    assert not is_cached("fashion-mnist")
    server.truncate.clear()
    n = len(server.requests)
    ds = load_public("fashion-mnist")
    assert len(ds) == 80 and np.asarray(ds.images)[:64, ..., 0].tobytes() == gzip.decompress(files[name])[16:]
    assert server.requests[n] == name and server.ranges[n] == f"bytes={have}-"
    assert server.sent[n] == len(files[name]) - have  # only the missing bytes travelled
    assert sorted(os.listdir(folder("fashion-mnist"))) == sorted(list(files) + ["cache-v1"])


def test_pooch_retry_resumes_a_cut_transfer_within_one_call(server, monkeypatch):
    files = serve(server, monkeypatch, "mnist")
    monkeypatch.setattr(fetchmod, "RETRIES", 1)  # pooch tries again (after a 1 s pause) with our downloader
    name = "train-images-idx3-ubyte.gz"
    server.truncate_once.add(name)
    assert len(load_public("mnist")) == 80
    first, second = [i for i, r in enumerate(server.requests) if r == name]
    assert server.ranges[first] is None and server.ranges[second].startswith("bytes=")
    start = int(server.ranges[second][6:-1])
    assert 0 < start <= server.sent[first] and server.sent[second] == len(files[name]) - start  # only the rest


def test_a_server_without_ranges_restarts_the_file(server, monkeypatch):
    files = serve(server, monkeypatch, "mnist")
    name = "train-images-idx3-ubyte.gz"
    server.truncate.add(name)
    with pytest.raises(DownloadError):
        load_public("mnist")
    server.truncate.clear()
    server.range_support = False  # answers 200 with the whole file to a Range request
    n = len(server.requests)
    assert len(load_public("mnist")) == 80
    assert server.ranges[n] is not None and server.sent[n] == len(files[name])
    assert not [f for f in os.listdir(folder("mnist")) if f.endswith(".part") or f.startswith("tmp")]


def test_a_stale_partial_file_longer_than_the_file_restarts(server, monkeypatch):
    files = serve(server, monkeypatch, "mnist")
    name = "t10k-labels-idx1-ubyte.gz"
    os.makedirs(folder("mnist"))
    with open(os.path.join(folder("mnist"), name + ".part"), "wb") as f:
        f.write(b"x" * (len(files[name]) + 10))  # the server answers 416; the partial file is dropped
    assert len(load_public("mnist")) == 80
    i = server.requests.index(name)
    assert server.ranges[i] == f"bytes={len(files[name]) + 10}-" and server.ranges[i + 1] is None


KILLED = """
import dataclasses, json, os, sys
from engines.data.public import PUBLIC, RemoteFile, load_public
files = json.loads(os.environ["TEST_FILES"])
PUBLIC["mnist"] = dataclasses.replace(PUBLIC["mnist"], files=tuple(RemoteFile(n, h, s) for n, h, s in files))
load_public("mnist")
"""


def test_a_killed_download_resumes_in_the_next_process(server, monkeypatch):
    """A process killed mid-transfer (SIGKILL: no cleanup at all) leaves `.part` and pooch's empty
    temp file; the next process resumes from the partial bytes and tidies the temp file away."""
    import signal
    import subprocess
    import sys

    files = serve(server, monkeypatch, "mnist", mnist_files(n_train=128))
    name = "train-images-idx3-ubyte.gz"
    server.slow = 0.02  # ~2 s for the 100 kB image file
    env = dict(os.environ, TEST_FILES=json.dumps([[f.name, f.hash, f.size] for f in PUBLIC["mnist"].files]),
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", KILLED], env=env)
    part = os.path.join(folder("mnist"), name + ".part")
    try:
        deadline = time.monotonic() + 30
        while not (os.path.isfile(part) and os.path.getsize(part) > 20_000):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    have = os.path.getsize(part)
    assert 0 < have < len(files[name]) and not is_cached("mnist")
    server.slow = 0.0
    n = len(server.requests)
    ds = load_public("mnist")
    assert len(ds) == 144 and server.ranges[n] == f"bytes={have}-"
    assert sorted(os.listdir(folder("mnist"))) == sorted(list(files) + ["cache-v1"])  # no .part, no tmp…


def test_cancelling_leaves_nothing_and_is_not_retried(server, monkeypatch):
    serve(server, monkeypatch, "mnist")
    monkeypatch.setattr(fetchmod, "RETRIES", 2)  # pooch retries ValueErrors after a pause; a cancel is none
    cancel = threading.Event()
    cancel.set()
    t0 = time.perf_counter()
    with pytest.raises(fetchmod.Cancelled):
        load_public("mnist", cancel=cancel)
    assert time.perf_counter() - t0 < 0.9 and server.requests == ["train-images-idx3-ubyte.gz"]
    assert os.listdir(folder("mnist")) == []


def test_the_server_being_down_is_one_line_naming_the_url_and_the_manual_way(server, monkeypatch, capsys):
    from engines.cli.main import main

    serve(server, monkeypatch, "mnist")
    url = server.url
    server.stop()
    server.stop = lambda: None
    assert main(["train", "--engine", "pca", "--data", "mnist", "--out", os.devnull + ".safetensors"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and url + "train-images-idx3-ubyte.gz" in err and "by hand" in err
    monkeypatch.setenv("LATENT_EXPLORER_DATA_MIRROR", url + "missing/")  # a mirror without the files
    server2 = Server()
    try:
        monkeypatch.setenv("LATENT_EXPLORER_DATA_MIRROR", server2.url + "missing/")
        with pytest.raises(DownloadError, match="HTTP 404"):
            load_public("mnist")
    finally:
        server2.stop()


def test_main_datasets_lists_every_set(server, monkeypatch, capsys):
    from engines.cli.main import main

    serve(server, monkeypatch, "mnist")
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("shapes", "faces", "digits", "mnist-5k", "mnist", "fashion-mnist", "kmnist", "cifar10", "celeba"):
        assert f"\n{name} " in "\n" + out
    assert main(["datasets", "--fetch", "mnist"]) == 0
    capsys.readouterr()
    assert main(["datasets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert rows["mnist"]["cached"] and not rows["cifar10"]["cached"]
    assert rows["celeba"]["attributes"] == 40 and rows["celeba"]["shape"] == [64, 64, 3]
    assert all(r["licence"] for r in rows.values())
    assert rows["mnist-5k"]["images"] == 5000 and "CC BY-SA" in rows["mnist-5k"]["licence"]


def test_train_with_data_mnist_through_the_cli(server, monkeypatch, tmp_path):
    from engines.cli.main import main
    from engines.checkpoint import read_info

    serve(server, monkeypatch, "mnist")
    out = str(tmp_path / "m.safetensors")
    assert main(["train", "--engine", "vae", "--data", "mnist", "--size", "16", "--epochs", "1",
                 "--set", "batch_size=32", "--out", out]) == 0
    info = read_info(out)
    assert info.data["name"] == "mnist"


def test_the_registry_is_complete():
    for s in PUBLIC.values():
        assert s.files and s.licence and s.citation and s.homepage.startswith("http")
        for f in s.files:
            algo, _, h = f.hash.partition(":")
            assert (algo, len(h)) in (("md5", 32), ("sha256", 64)) and f.size > 0
    assert PUBLIC["celeba"].n_attributes == 40 and PUBLIC["celeba"].base_url is None


def test_a_mirror_url_with_the_set_name_serves_sets_whose_files_share_names(server, monkeypatch):
    mnist, fashion = mnist_files(seed=5), mnist_files(seed=6)
    serve(server, monkeypatch, "mnist", mnist)
    server.files.clear()
    serve(server, monkeypatch, "fashion-mnist", fashion)
    server.files.clear()
    server.files.update({f"mnist/{k}": v for k, v in mnist.items()} | {f"fashion-mnist/{k}": v for k, v in fashion.items()})
    monkeypatch.setenv("LATENT_EXPLORER_DATA_MIRROR", server.url + "{name}")
    a, b = load_dataset("mnist"), load_dataset("fashion-mnist")
    assert not np.array_equal(np.asarray(a.images), np.asarray(b.images))
    assert b.label_names[0] == "T-shirt/top"


def test_celeba_conversion_reports_progress_and_a_cancel_leaves_no_cache(server, monkeypatch):
    """Converting CelebA's JPEGs (minutes for the real 202,599) goes through the same progress
    channel as the download, stage "convert", counting images; cancelling it midway leaves no
    cache and no temp folder, keeps the verified downloads, and the next call converts them
    without the server."""
    import sys

    convmod = sys.modules["engines.data.public.convert"]  # (the package exports a function of that name)
    from engines.data.public import Cancelled

    files = serve(server, monkeypatch, "celeba", celeba_files(n=9))
    monkeypatch.setattr(convmod, "REPORT_EVERY", 2)
    seen, cancel = [], threading.Event()

    def progress(done, total, stage):
        seen.append((done, total, stage))
        if stage == "convert" and done >= 4:
            cancel.set()

    with pytest.raises(Cancelled):
        load_public("celeba", progress=progress, cancel=cancel)
    assert [(d, t) for d, t, s in seen if s == "convert"] == [(0, 9), (2, 9), (4, 9)]
    assert seen[0][2] == "download" and seen.index((0, 9, "convert")) > max(
        i for i, r in enumerate(seen) if r[2] == "download")
    assert sorted(os.listdir(folder("celeba"))) == sorted(files)  # no cache-v1, no .tmp-… folder
    assert not is_cached("celeba")
    server.stop()
    server.stop = lambda: None
    seen.clear()
    ds = load_public("celeba", progress=lambda d, t, s: seen.append((d, t, s)))
    assert len(ds) == 9 and [r for r in seen if r[2] == "download"][-1][0] == sum(len(b) for b in files.values())
    assert [(d, t) for d, t, s in seen if s == "convert"] == [(0, 9), (2, 9), (4, 9), (6, 9), (8, 9), (9, 9)]


def test_main_datasets_fetch_shows_download_then_converting(server, monkeypatch, capsys):
    from engines.cli.main import main

    serve(server, monkeypatch, "celeba", celeba_files(n=4))
    assert main(["datasets", "--fetch", "celeba"]) == 0
    captured = capsys.readouterr()
    assert "celeba: 4 images cached" in captured.out
    lines = captured.err.replace("\n", "\r").split("\r")
    assert any(" of " in ln and ln.strip().endswith("MB") for ln in lines)
    assert "celeba: converting 0 of 4" in lines and "celeba: converting 4 of 4" in [ln.strip() for ln in lines]
