"""What the export speed-ups of issue #22 rely on: the MP4 read-back check (packets, not pictures)
rejects every damaged file the old decode-every-frame check rejected; the benchmark's peer encodes
with the writer's own x264 settings (the same pictures come out); the writer thread writes the
first batch too, in order, and a bad target still fails at the first append; the digest is the
frames' bytes; the in-place block-size test equals its definition; a folder's files are fsynced
together and a failing fsync still fails the publish."""
import errno
import hashlib
import os

import imageio_ffmpeg
import numpy as np
import pytest

import engines
from engines import atomic
from engines.export import ExportSpec, FrameStyle, Timeline, prior_latents, run_export
from engines.export import encode, writers
from engines.export.job import frame_batches
from engines.export.pipeline import BackgroundWriter
from engines.latent.progress import run
from engines.spec import ImageSpec


def _walk(n=24, size=64, seed=0) -> np.ndarray:
    """Smooth moving frames, 4× pixel-repeated like an exported walk."""
    rng = np.random.default_rng(seed)
    small = np.cumsum(rng.normal(size=(n, size // 4, size // 4, 3)), 0) * 6 + 128
    small += np.cumsum(rng.normal(size=(1, size // 4, size // 4, 3)), 1) * 10
    return np.repeat(np.repeat(np.clip(small, 0, 255).astype(np.uint8), 4, 1), 4, 2)


def _old_check_rejects(path: str, n: int) -> bool:
    """The check before issue #22: every frame decoded and counted."""
    try:
        return imageio_ffmpeg.count_frames_and_secs(path)[0] != n
    except Exception:  # noqa: BLE001 - ffmpeg could not read it: rejected
        return True


def _cut(k):
    return lambda data: data[:-k]


DAMAGE = {
    "last byte cut": _cut(1),
    "last 100 bytes cut": _cut(100),
    "second half cut": lambda d: d[:len(d) // 2],
    "header only": lambda d: d[:2048],
    "zeroed start": lambda d: bytes(64) + d[64:],
    "zeroed middle": lambda d: d[:len(d) // 2] + bytes(3000) + d[len(d) // 2 + 3000:],
    "index renamed": lambda d: d.replace(b"moov", b"free", 1),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_mp4_is_not_published_and_the_old_check_caught_no_more(tmp_path, monkeypatch, damage):
    frames = _walk()
    out = tmp_path / "walk.mp4"
    out.write_bytes(b"the previous export")
    real_finish = writers.Mp4Writer._finish
    seen = {}

    def finish_then_damage(self):
        real_finish(self)  # ffmpeg exited 0 with a good file; now it is damaged on the disk
        with open(self.tmp, "rb") as f:
            data = f.read()
        bad = DAMAGE[damage](data)
        assert bad != data
        with open(self.tmp, "wb") as f:
            f.write(bad)
        copy = str(tmp_path / "copy.mp4")
        with open(copy, "wb") as f:
            f.write(bad)
        seen["old"] = _old_check_rejects(copy, len(frames))

    monkeypatch.setattr(writers.Mp4Writer, "_finish", finish_then_damage)
    with pytest.raises(atomic.WriteError) as e:
        with writers.Mp4Writer(str(out), 24) as w:
            w.append(frames)
            w.commit()
    msg = str(e.value)
    assert "\n" not in msg and ("does not read back" in msg or "holds" in msg), msg
    assert out.read_bytes() == b"the previous export"
    assert [n for n in os.listdir(tmp_path) if n.startswith(atomic.PREFIX)] == []
    print(f"{damage}: {msg} (old check rejected it: {seen['old']})")
    # Whatever the old check said (printed: it passed some of these), the new one rejects each.


def test_an_intact_mp4_passes_the_check_and_decodes_to_the_frames(tmp_path):
    frames = _walk(n=13, size=68)[:, :67, :65]  # odd sides: padded to even by the writer
    out = str(tmp_path / "ok.mp4")
    with writers.Mp4Writer(out, 24) as w:
        w.append(frames[:5])
        w.append(frames[5:])
        w.commit()
    assert imageio_ffmpeg.count_frames_and_secs(out)[0] == 13
    got = _decoded(out, 66, 68)[:, :67, :65]
    assert got.shape == frames.shape
    err = np.abs(got.astype(int) - frames.astype(int)).mean()
    assert err < 5, err  # lossy (and noisy test frames), but close


def _psnr(path: str, frames: np.ndarray) -> float:
    got = _decoded(path, frames.shape[2], frames.shape[1]).astype(np.float64)
    return float(10 * np.log10(255 ** 2 / ((got - frames) ** 2).mean()))


def test_the_faster_x264_settings_keep_the_old_quality(tmp_path):
    """"veryfast" at CRF 16 (now) against "medium" at CRF 18 (before issue #22): no more than
    0.5 dB worse on these frames. "veryfast" at the old CRF would not keep that."""
    frames = _walk(n=24)
    psnr = {}
    for crf, preset in [(writers.MP4_CRF, writers.MP4_PRESET), (18, "medium"), (18, "veryfast")]:
        p = str(tmp_path / f"{crf}-{preset}.mp4")
        with writers.Mp4Writer(p, 24, crf=crf, preset=preset) as w:
            w.append(frames)
            w.commit()
        psnr[crf, preset] = _psnr(p, frames)
    print(psnr)
    assert psnr[writers.MP4_CRF, writers.MP4_PRESET] >= psnr[18, "medium"] - 0.5
    assert psnr[18, "veryfast"] < psnr[18, "medium"] - 0.5


def _decoded(path: str, w: int, h: int) -> np.ndarray:
    gen = imageio_ffmpeg.read_frames(path)
    next(gen)
    return np.stack([np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen])


def test_the_peer_encodes_with_the_writers_settings_to_the_same_pictures(tmp_path):
    """bench/app_tasks.py's MP4 peer passes MP4_CRF and MP4_PRESET to imageio-ffmpeg: the same
    x264 work, so the frames/s comparison is at equal work — and the same pictures come out."""
    frames = _walk(n=20)
    ours = str(tmp_path / "ours.mp4")
    with writers.Mp4Writer(ours, 24) as w:
        w.append(frames[:7])
        w.append(frames[7:])
        w.commit()
    peer = str(tmp_path / "peer.mp4")
    gen = imageio_ffmpeg.write_frames(peer, (64, 64), fps=24, codec="libx264", quality=None, macro_block_size=1,
                                      output_params=["-crf", str(writers.MP4_CRF), "-preset", writers.MP4_PRESET],
                                      pix_fmt_out="yuv420p")
    gen.send(None)
    for f in frames:
        gen.send(np.ascontiguousarray(f))
    gen.close()
    a, b = _decoded(ours, 64, 64), _decoded(peer, 64, 64)
    assert a.shape == b.shape == frames.shape and np.array_equal(a, b)
    # …and the settings matter: "medium" encodes other pictures (so the test can fail).
    other = str(tmp_path / "medium.mp4")
    with writers.Mp4Writer(other, 24, crf=18, preset="medium") as w:
        w.append(frames)
        w.commit()
    assert not np.array_equal(_decoded(other, 64, 64), a)


def test_the_writer_thread_writes_every_batch_in_order_and_a_bad_target_fails_at_once(tmp_path):
    frames = _walk(n=9, size=32)
    bw = BackgroundWriter(writers.PngWriter(str(tmp_path / "seq.png"), 24, sequence=True), depth=1)
    with bw:
        for i in range(0, 9, 4):
            bw.append(frames[i:i + 4])
        folder = bw.commit()
    from PIL import Image

    names = sorted(os.listdir(folder))
    assert len(names) == 9
    for name, f in zip(names, frames):
        with Image.open(os.path.join(folder, name)) as im:
            assert np.array_equal(np.asarray(im), f)
    # The target's folder does not exist: the first append says so, before the thread writes anything.
    bw = BackgroundWriter(writers.GifWriter(str(tmp_path / "missing" / "x.gif"), 24))
    with pytest.raises(writers.ExportError, match="folder does not exist"):
        with bw:
            bw.append(frames[:2])
    assert bw.writer.frames == 0
    bw = BackgroundWriter(writers.GifWriter(str(tmp_path / "x.gif"), 24))
    with pytest.raises(writers.ExportError, match="frame size changed"):
        with bw:
            bw.append(frames[:2])
            bw.append(frames[:2, :16])  # refused in the caller's thread, not later
    assert not os.path.exists(tmp_path / "x.gif")


def test_the_digest_is_the_sha256_of_the_frames(tmp_path):
    e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=3, latent_dim=4, width=8)
    tl = Timeline(list(prior_latents(e, 3, seed=5)), seconds=0.5, fps=8)
    spec = ExportSpec("interpolate", FrameStyle(scale=2), timeline=tl)
    r = run(run_export(e, spec, str(tmp_path / "w.gif"), batch=5))
    batches, n, _, _ = frame_batches(e, spec, batch=5)
    assert r.digest == hashlib.sha256(b"".join(b.tobytes() for b in batches)).hexdigest() and r.frames == n == 12


def _block_size_by_definition(frame: np.ndarray) -> int:
    """The largest s (from the first rows) for which the frame is its [::s, ::s] image repeated s×."""
    h, w = frame.shape[:2]
    s = 1
    while s < h and np.array_equal(frame[s], frame[0]):
        s += 1
    if s == 1 or h % s or w % s:
        return 1
    small = frame[::s, ::s]
    return s if np.array_equal(frame, small.repeat(s, 0).repeat(s, 1)) else 1


def test_block_size_equals_its_definition():
    rng = np.random.default_rng(1)
    cases = []
    for s, (h, w) in [(4, (8, 12)), (8, (64, 64)), (3, (9, 6)), (5, (10, 10))]:
        base = rng.integers(0, 256, (h, w, 3), np.uint8).repeat(s, 0).repeat(s, 1)
        cases.append(base)
        for _ in range(12):  # one changed pixel anywhere: no longer repeated
            f = base.copy()
            y, x, c = rng.integers(f.shape[0]), rng.integers(f.shape[1]), rng.integers(3)
            f[y, x, c] ^= 1
            cases.append(f)
        cases.append(base[:, :-1])
        cases.append(base[..., :1])  # grey
    cases.append(np.zeros((6, 6, 3), np.uint8))  # flat: s = the height
    for f in cases:
        assert encode.block_size(f) == _block_size_by_definition(f)
    assert {encode.block_size(f) for f in cases} >= {1, 3, 4, 5, 8}


def test_a_folder_is_fsynced_file_by_file_and_one_failure_fails_it(tmp_path, monkeypatch):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in range(40):
        (folder / f"f{i:02d}").write_bytes(b"x" * i)
    real = atomic._fsync_path
    synced = []

    def fsync(p, directory=False):
        synced.append((os.path.basename(p), directory))
        if os.path.basename(p) == "f17":
            raise OSError(errno.EIO, "Input/output error")
        return real(p, directory)

    monkeypatch.setattr(atomic, "_fsync_path", fsync)
    with pytest.raises(OSError, match="Input/output"):
        atomic.sync(str(folder))
    assert {n for n, d in synced if not d} == {f"f{i:02d}" for i in range(40)}  # every file was synced
    synced.clear()
    monkeypatch.setattr(atomic, "_fsync_path", lambda p, directory=False: synced.append((p, directory)))
    atomic.sync(str(folder))
    assert len(synced) == 41 and synced[-1] == (str(folder), True)  # the folder after its files


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_an_mp4_export_decodes_on_one_thread_fewer_and_restores_them(tmp_path, monkeypatch, threads):
    """ffmpeg encodes the MP4 on its own threads, so a CPU decode gives up one of torch's (never
    the last); GIF and PNG keep them all; the count is restored after the export, a failed one
    included, and the frames (the digest) are those the full thread count decodes."""
    import torch

    e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=3, latent_dim=4, width=8)
    tl = Timeline(list(prior_latents(e, 3, seed=5)), seconds=0.5, fps=8)
    spec = ExportSpec("interpolate", FrameStyle(scale=2), timeline=tl)
    seen = []
    real = e.decode

    def decode(z, *a, **k):
        seen.append(torch.get_num_threads())
        return real(z, *a, **k)

    monkeypatch.setattr(e, "decode", decode)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        r_png = run(run_export(e, spec, str(tmp_path / "w.png"), batch=5))
        assert set(seen) == {threads}
        seen.clear()
        r_mp4 = run(run_export(e, spec, str(tmp_path / "w.mp4"), batch=5))
        assert set(seen) == {max(1, threads - 1)} and torch.get_num_threads() == threads
        assert r_mp4.timing.extra["decode_threads"] == max(1, threads - 1)
        assert r_mp4.digest == r_png.digest
        (tmp_path / "full").mkdir()
        monkeypatch.setattr(writers.Mp4Writer, "_verify", lambda self: (_ for _ in ()).throw(OSError(errno.EIO, "x")))
        with pytest.raises(OSError):
            run(run_export(e, spec, str(tmp_path / "full" / "w.mp4"), batch=5))
        assert torch.get_num_threads() == threads and not os.listdir(tmp_path / "full")
    finally:
        torch.set_num_threads(before)
