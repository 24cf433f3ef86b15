"""Issue #17, writes: every writer on a full disk keeps the good file byte-identical, leaves no
temp, and says so in one line (the CLI: exit 2); kill -9 mid-save/mid-export leaves the previous
file intact and the next write removes the dead process's temp; temps carry the pid.

The disk is a small tmpfs (mounted here: the suite runs as root), filled with a filler file
so that the write fails part-way. Where mounting is not permitted, ENOSPC is injected at the fsync
instead — the test prints which it used.
"""
import errno
import hashlib
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import main_process

import engines
from engines import atomic
from engines import checkpoint as ckpt
from engines.spec import ImageSpec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = 4096


class Disk:
    def __init__(self, root: str, mounted: bool, monkeypatch):
        self.dir, self.mounted, self._mp = root, mounted, monkeypatch
        self.filler = os.path.join(root, "filler.bin")

    @property
    def method(self) -> str:
        return "tmpfs" if self.mounted else "injected ENOSPC"

    def free(self) -> int:
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int) -> None:
        """Leave about `leave` bytes free (tmpfs); inject ENOSPC at the fsync otherwise."""
        if not self.mounted:
            real = atomic.sync

            def full(p):
                if os.path.abspath(p).startswith(self.dir):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real(p)

            self._mp.setattr(atomic, "sync", full)
            return
        n = max(0, self.free() - leave) // PAGE * PAGE
        with open(self.filler, "wb") as f:
            chunk = b"\0" * (1 << 20)
            while n > 0:
                n -= f.write(chunk[:min(n, len(chunk))])
        assert self.free() <= leave + PAGE

    def empty(self) -> None:
        if not self.mounted:
            self._mp.setattr(atomic, "sync", _real_sync)
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def temps(self) -> list[str]:
        return [n for _, ds, fs in os.walk(self.dir) for n in ds + fs if n.startswith(atomic.PREFIX)]


_real_sync = atomic.sync


@pytest.fixture
def disk(tmp_path, monkeypatch):
    root = str(tmp_path / "disk")
    os.makedirs(root)
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", root]
    if os.environ.get("FULL_DISK_NO_MOUNT"):  # to exercise the fallback where mounting is allowed
        mount = ["sh", "-c", "echo FULL_DISK_NO_MOUNT is set >&2; false"]
    r = subprocess.run(mount, capture_output=True, text=True)
    d = Disk(root, r.returncode == 0, monkeypatch)
    print(f"full-disk method: {d.method}" + ("" if d.mounted else f" (mount not permitted: {r.stderr.strip()})"))
    try:
        yield d
    finally:
        if d.mounted:
            subprocess.run(["umount", root], check=True)


# ---- the writers ----------------------------------------------------------------------------------
def _noise(n, size=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _latent_set(n=600, seed=0):
    from engines.latent.cache import LatentSet

    rng = np.random.default_rng(seed)
    return LatentSet(latents=rng.normal(size=(n, 8)).astype(np.float32), latent_shape=(8,), model_id="m", data_id="d",
                     labels=rng.integers(0, 3, n), label_names=["a", "b", "c"],
                     attributes={"h": rng.random(n).astype(np.float32)},
                     train_idx=np.arange(n - 100), test_idx=np.arange(n - 100, n))


def _frames_writer(n):
    def write(path, v):
        from engines.export.writers import open_writer

        with open_writer(path, fps=12, n_frames=n) as w:
            w.append(_noise(n, seed=v))
            return w.commit()
    return write


def _w_checkpoint(path, v):
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", seed=v, latent_dim=3, width=8)
    return ckpt.save(path, e)


def _w_png(path, v):
    from engines.export.images import save_png

    return save_png(path, _noise(1, 96, v)[0])


def _w_latents(path, v):
    from engines.export.data import write_latents

    return write_latents(path, _latent_set(seed=v), {"pca": np.zeros((600, 2), np.float32) + v})


def _w_cache(path, v):
    from engines.latent.cache import _write

    if not _write(path, _latent_set(seed=v)):
        raise atomic.WriteError("cache not written (best effort: the caller gets False)")
    return path


def _w_csv(path, v):
    from engines.export.data import write_projection_csv

    return write_projection_csv(path, _latent_set(seed=v), {"pca": np.full((600, 2), v, np.float32)})


def _w_session(path, v):
    from engines.export import session as sess

    keys = [{"label": f"k{i}", "latent": [float(v + i)] * 64} for i in range(40)]
    return sess.save(path, sess.Session(model={"id": "m"}, seed=v, keys=keys))


def _w_settings(path, v):
    from explorer.settings import Settings

    return Settings(train={f"option_{i}": f"value {v} " * 8 for i in range(200)}).save(path)


def _w_bookmarks(path, v):
    from engines.latent.history import Bookmarks
    from explorer.workspace import store

    b = Bookmarks()
    for i in range(60):
        b.add(f"b{i}", np.full(64, v + i, np.float32))
    return store.save_bookmarks("model-x", b)


def _w_vectors(path, v):
    from engines.latent.attributes import AttributeVector, save_vectors

    return save_vectors(path, [AttributeVector(f"v{i}", np.full(500, v + i, np.float32), "binary") for i in range(4)])


def _w_bookmarks_h5(path, v):
    from engines.export.data import write_bookmarks
    from engines.latent.history import Bookmark

    return write_bookmarks(path, [Bookmark(f"b{i}", np.full(256, v + i, np.float32)) for i in range(30)])


WRITERS = {  # kind: (file name, writer)
    "checkpoint": ("m.safetensors", _w_checkpoint),
    "png": ("grid.png", _w_png),
    "png-sequence": ("seq.png", _frames_writer(4)),
    "gif": ("walk.gif", _frames_writer(6)),
    "mp4": ("walk.mp4", _frames_writer(12)),
    "hdf5-latents": ("latents.h5", _w_latents),
    "hdf5-cache": ("cache.h5", _w_cache),
    "hdf5-bookmarks": ("bookmarks.h5", _w_bookmarks_h5),
    "csv": ("proj.csv", _w_csv),
    "json-session": ("s.json", _w_session),
    "json-settings": ("settings.json", _w_settings),
    "json-bookmarks": ("", _w_bookmarks),
    "json-vectors": ("vectors.json", _w_vectors),
}


def _snapshot(path: str) -> dict:
    if os.path.isdir(path):
        return {n: _snapshot(os.path.join(path, n)) for n in sorted(os.listdir(path))}
    with open(path, "rb") as f:
        return {"sha": hashlib.sha256(f.read()).hexdigest()}


def _size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(p, n)) for p, _, fs in os.walk(path) for n in fs) \
        if os.path.isdir(path) else os.path.getsize(path)


@pytest.mark.parametrize("kind", list(WRITERS))
def test_a_full_disk_keeps_the_good_file(disk, kind, tmp_path, monkeypatch):
    name, write = WRITERS[kind]
    if kind == "json-bookmarks":
        monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "measure"))
    os.makedirs(tmp_path / "measure", exist_ok=True)
    size = _size(write(str(tmp_path / "measure" / name), 1))  # what the failing write needs
    if kind == "json-bookmarks":
        monkeypatch.setenv("LATENT_EXPLORER_HOME", disk.dir)
    good = write(os.path.join(disk.dir, name), 0)
    before = _snapshot(good)
    disk.fill(leave=size // 2 // PAGE * PAGE)  # room for about half of it: it fails part-way
    with pytest.raises((atomic.WriteError, ckpt.CheckpointError)) as e:
        write(os.path.join(disk.dir, name), 1)
    msg = str(e.value)
    print(f"{kind}: {size} bytes into {disk.method}: {msg}")
    assert "\n" not in msg
    if kind != "hdf5-cache":
        assert "disk full" in msg and os.path.basename(good) in msg and "the previous file is unchanged" in msg
    assert _snapshot(good) == before
    assert disk.temps() == []
    disk.empty()
    again = write(os.path.join(disk.dir, name), 1)  # room again: the write goes through
    assert _snapshot(again) != before and disk.temps() == []


# ---- the command line -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import sys as _sys

    _sys.path.insert(0, os.path.dirname(__file__))
    from conftest import make_blobs

    d = tmp_path_factory.mktemp("fd-model")
    ds = make_blobs(n=400, size=16, channels=1)
    npz = str(d / "blobs.npz")
    np.savez(npz, images=ds.images[..., 0], labels=ds.labels, height=ds.attributes["height"])
    e = engines.create("vae", ImageSpec(1, 16, 16), device="cpu", seed=2, latent_dim=3, width=8)
    return ckpt.save(str(d / "m.safetensors"), e, data={"name": "blobs", "source": npz}), npz


_INJECT = ("import errno, os, sys, runpy; import engines.atomic as a; d = os.environ['FULL_DISK_DIR']; real = a.sync\n"
           "def full(p):\n"
           "    if os.path.abspath(p).startswith(d): raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
           "    return real(p)\n"
           "a.sync = full; sys.argv = ['main.py'] + sys.argv[1:]; runpy.run_path('main.py', run_name='__main__')")

CLI = {  # kind: (output name, arguments)
    "mp4": ("walk.mp4", ["export", "--seconds", "1", "--fps", "24"]),
    "gif": ("walk.gif", ["export", "--seconds", "0.5", "--fps", "12"]),
    "png": ("seq.png", ["export", "--seconds", "0.25", "--fps", "12"]),
    "h5": ("lat.h5", ["export", "--data", "{npz}"]),
    "csv": ("proj.csv", ["export", "--data", "{npz}"]),
    "encode": ("enc.h5", ["encode", "--data", "{npz}"]),
    "session": ("s.json", ["export", "--keys", "60", "--seconds", "0.1", "--fps", "10", "--out", "{dir}/k.gif",
                           "--save-session"]),
}


SUBPROCESS = ("mp4", "encode")  # the two that went worst before (exit 0, SIGSEGV): a sample as real `python main.py` processes; the rest in process


def test_cli_on_a_full_disk_exits_2_with_one_line(disk, model, capsys):
    """Every kind onto the full disk: exit 2, one `error:` line (the last; videos print progress
    before it), no traceback, the good file untouched, no temp left."""
    from engines.cli.main import main

    path, npz = model
    goods, argvs = {}, {}
    for kind, (name, args) in CLI.items():
        out = os.path.join(disk.dir, name)
        target = os.path.splitext(out)[0] if kind == "png" else out
        if kind == "png":
            os.makedirs(target)
            open(os.path.join(target, "frame_00000.png"), "wb").write(b"good frame")
        else:
            open(out, "wb").write(f"good {kind}".encode())
        goods[kind] = (target, _snapshot(target))
        args = [x.format(npz=npz, dir=disk.dir) for x in args]
        argvs[kind] = args[:1] + ["--checkpoint", path] + args[1:] + ([out] if kind == "session" else ["--out", out])
    disk.fill(leave=PAGE)
    env = {**os.environ, "PYTHONPATH": ROOT, "FULL_DISK_DIR": disk.dir}
    pre = [sys.executable, "main.py"] if disk.mounted else [sys.executable, "-c", _INJECT]
    procs = {k: main_process.start(argvs[k], env=env, prefix=pre) for k in SUBPROCESS}
    results = {}
    for kind in CLI:
        if kind not in procs:
            capsys.readouterr()
            rc = main(argvs[kind])
            results[kind] = (rc, capsys.readouterr().err, "in process")
    peaks = {}
    for kind, p in procs.items():
        r = p.finish(120)
        peaks[kind] = r.peak_mb
        results[kind] = (r.rc, r.stderr, "python main.py")
    for kind, (rc, err, how) in results.items():
        lines = [ln for ln in err.splitlines() if ln.strip()]
        print(f"{kind} ({how}, {disk.method}): rc {rc}: {lines[-1] if lines else ''}")
        assert rc == 2, (kind, err)
        assert "Traceback" not in err and "Error" not in err.replace("error:", ""), (kind, err)
        errors = [ln for ln in lines if ln.startswith("error:")]
        assert len(errors) == 1 and lines[-1] == errors[0] and "disk full" in errors[0], (kind, err)
        if kind not in ("mp4", "gif", "png"):
            assert len(lines) == 1, (kind, err)
        target, snap = goods[kind]
        assert _snapshot(target) == snap, kind
    assert disk.temps() == []
    print("peak RSS (MB):", {k: round(v) for k, v in peaks.items()})
    assert max(peaks.values()) < 500, peaks


# ---- kill -9 mid-write ------------------------------------------------------------------------------
def _kill_when_writing(argv, folder, env=None, timeout=60.0):
    """Start argv, wait until its pid-named temp in `folder` holds data, kill -9 it there."""
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mine = f"{atomic.PREFIX}{p.pid}-"
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            hits = [n for n in os.listdir(folder) if n.startswith(mine)]
            if hits and os.path.getsize(os.path.join(folder, hits[0])) > 0:
                p.kill()
                p.wait()
                return hits[0]
            assert p.poll() is None, "the writer finished before it could be killed"
            time.sleep(0.002)
        raise AssertionError("no temp file appeared")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


_SAVE_LOOP = ("import sys, engines; from engines import checkpoint as c; from engines.spec import ImageSpec\n"
              "e = engines.create('vae', ImageSpec(3, 32, 32), device='cpu', seed=1, latent_dim=16, width=64)\n"
              "while True: c.save(sys.argv[1], e)")


def test_kill_9_during_a_save_then_the_next_write_cleans_up(tmp_path):
    good = _w_checkpoint(str(tmp_path / "m.safetensors"), 0)
    before = _snapshot(good)
    env = {**os.environ, "PYTHONPATH": ROOT}
    tmp = _kill_when_writing([sys.executable, "-c", _SAVE_LOOP, good], str(tmp_path), env)
    assert os.path.exists(tmp_path / tmp)  # killed mid-write: its temp is left
    assert _snapshot(good) == before and ckpt.load(good, with_optimizer=False).engine.name == "vae"
    _w_png(str(tmp_path / "other.png"), 0)  # the next write into that folder
    assert [n for n in os.listdir(tmp_path) if n.startswith(atomic.PREFIX)] == []


def test_kill_9_during_an_export_then_the_next_write_cleans_up(tmp_path, model):
    import imageio.v3 as iio

    path, _ = model
    out = str(tmp_path / "walk.mp4")
    _frames_writer(12)(out, 0)
    before = _snapshot(out)
    env = {**os.environ, "PYTHONPATH": ROOT}
    argv = [sys.executable, "main.py", "export", "--checkpoint", path, "--seconds", "60", "--fps", "24", "--out", out]
    tmp = _kill_when_writing(argv, str(tmp_path), env)
    assert tmp.endswith("-walk.mp4")
    assert _snapshot(out) == before and len(iio.imread(out)) == 12
    from engines.export import data as dx

    dx.write_projection_csv(str(tmp_path / "p.csv"), _latent_set(50), {"pca": np.zeros((50, 2))})  # next write
    assert [n for n in os.listdir(tmp_path) if n.startswith(atomic.PREFIX)] == []
    assert len(iio.imread(out)) == 12


# ---- temp names ---------------------------------------------------------------------------------------
def test_temp_names_carry_the_pid_and_only_dead_processes_temps_are_swept(tmp_path):
    seen = []
    with atomic.replacing(str(tmp_path / "a.json")) as tmp:
        seen.append(os.path.basename(tmp))
        open(tmp, "w").write("{}")
    assert seen[0].startswith(f".tmp-{os.getpid()}-") and seen[0].endswith("-a.json")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen(["sleep", "30"])
    try:
        stale = [f".tmp-{dead.pid}-0123abcd-x.mp4", f".tmp-{dead.pid}-89abcdef-seq"]
        kept = [f".tmp-{live.pid}-0123abcd-x.mp4", f".tmp-{os.getpid()}-0123abcd-y.h5", ".tmp-not-ours", "x.mp4"]
        for n in stale + kept:
            (os.makedirs if n.endswith("seq") else lambda p: open(p, "w").write("partial"))(str(tmp_path / n))
        # a folder moved aside by a dead process whose replacement never arrived goes back
        os.makedirs(tmp_path / f".tmp-{dead.pid}-old0123abcd-frames")
        atomic.write_json(str(tmp_path / "b.json"), {"v": 1})  # the next write into the folder
        left = set(os.listdir(tmp_path))
        assert not left & set(stale)
        assert set(kept) <= left and "frames" in left
    finally:
        live.kill()
        live.wait()
