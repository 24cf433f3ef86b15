"""Writing frames: MP4 (H.264, yuv420p), GIF (palette, looping) and PNG (one image or a sequence).

Every writer works on a temporary name next to the target and renames it into place only in
`commit()`; `abort()` (called for a Cancel, an error or a writer left open) removes it, so a
cancelled or failed export never leaves a half-written file under the final name. Frames are
uint8 (N, H, W, C), C = 1 or 3.
"""
from __future__ import annotations

import errno
import os
import subprocess
import threading
import zlib

import numpy as np

from engines import atomic

FORMATS = {".mp4": "mp4", ".gif": "gif", ".png": "png"}


class ExportError(ValueError):
    """A user-facing problem with an export (bad options, unwritable target)."""


def format_of(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    try:
        return FORMATS[ext]
    except KeyError:
        raise ExportError(f"{path}: the output must end in .mp4, .gif or .png") from None


def _rgb(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, np.uint8)
    if frames.ndim == 3:
        frames = frames[..., None]
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def _tmp_name(path: str, folder: bool = False) -> str:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise ExportError(f"{d}: folder does not exist")
    return atomic.temp_path(path, folder=folder)


_remove = atomic.remove


class Writer:
    """Base: `append` frames, then `commit()`; used as a context manager it aborts on any exception
    (including GeneratorExit from a cancelled generator). An OSError while writing (a full disk,
    an I/O error, ffmpeg failing) removes the temp and raises one `atomic.WriteError`; the
    previous file of that name is left as it was."""

    def __init__(self, path: str, fps: float):
        self.path = path
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self.tmp: str | None = None
        self.done = False

    @property
    def target(self) -> str:
        return self.path

    def check(self, frames: np.ndarray) -> np.ndarray:
        """`frames` as uint8 (N, H, W, C) if they fit this writer, else ExportError. The first batch
        opens the temporary file (an unwritable target fails here); nothing is written yet."""
        frames = np.asarray(frames, np.uint8)
        if frames.ndim == 3:
            frames = frames[None]
        h, w = frames.shape[1:3]
        try:
            if self.size is None:
                self.size = (w, h)
                self._open(w, h, frames.shape[-1])
            elif self.size != (w, h):
                raise ExportError(f"frame size changed from {self.size} to {(w, h)}")
        except OSError as e:
            raise self._failed(e) from None
        return frames

    def append(self, frames: np.ndarray) -> None:
        frames = self.check(frames)
        try:
            self._write(frames)
        except OSError as e:
            raise self._failed(e) from None
        self.frames += len(frames)

    def commit(self) -> str:
        if self.frames == 0:
            raise ExportError("nothing to write: no frames")
        try:
            self._finish()
            if self.tmp is None or (not os.path.isdir(self.tmp) and os.path.getsize(self.tmp) == 0):
                raise OSError(errno.EIO, "the writer produced an empty file")
            self._verify()
            self._replace()
        except OSError as e:
            raise self._failed(e) from None
        self.done = True
        return self.path

    def _failed(self, e: OSError) -> atomic.WriteError:
        err = atomic.failure(self.target, e)
        self.abort()
        return err

    def abort(self) -> None:
        self._close_quietly()
        if self.tmp is not None:
            _remove(self.tmp)
            self.tmp = None

    def _replace(self) -> None:
        atomic.publish(self.tmp, self.target)  # fsync, rename, fsync the folder
        self.tmp = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or not self.done:
            self.abort()
        return False

    # to implement
    def _open(self, w: int, h: int, channels: int) -> None: ...
    def _write(self, frames: np.ndarray) -> None: ...
    def _finish(self) -> None: ...
    def _verify(self) -> None: ...
    def _close_quietly(self) -> None: ...


def _unreadable(what: str, e: BaseException) -> OSError:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return OSError(errno.EIO, f"the written {what} does not read back: {reason}")


_ERRNO_WORDS = [(errno.ENOSPC, "No space left on device"), (errno.EDQUOT, "Disk quota exceeded"),
                (errno.EROFS, "Read-only file system"), (errno.EIO, "Input/output error"),
                (errno.EACCES, "Permission denied"), (errno.EFBIG, "File too large")]


# x264 settings. "veryfast" at CRF 16 instead of "medium" at CRF 18: on a 192-frame 512×512 latent
# walk (bench/app_tasks.py's) x264 spends 1.1 instead of 2.4 CPU-seconds, for a file 18% larger
# (710 vs 603 KiB) and 0.3 dB less PSNR against the RGB frames (43.2 vs 43.5 dB; 44.7 is the ceiling
# that yuv420p's halved chroma leaves). At CRF 18, "veryfast" alone would lose 1.1 dB.
MP4_CRF = 16
MP4_PRESET = "veryfast"


class Mp4Writer(Writer):
    """H.264 in yuv420p through imageio-ffmpeg's bundled ffmpeg: plays in browsers, slides and
    phones. yuv420p needs even sides, so an odd width/height gets one replicated pixel column/row.

    ffmpeg runs as our own child process (not imageio-ffmpeg's writer, which ignores ffmpeg's exit
    status and lets its messages through to the terminal): its stderr is collected, its exit code
    checked, and the finished file read back by ffmpeg (every packet demuxed and parsed, see
    `_verify`) before it replaces anything."""

    def __init__(self, path: str, fps: float, crf: int = MP4_CRF, preset: str = MP4_PRESET):
        super().__init__(path, fps)
        self.crf = int(crf)
        self.preset = str(preset)
        self._proc = None
        self._err = bytearray()
        self._reader = None
        self._pad = (0, 0)

    def _open(self, w, h, channels):
        from fractions import Fraction

        import imageio_ffmpeg

        self.tmp = _tmp_name(self.path)
        self._pad = (h % 2, w % 2)
        size = (w + self._pad[1], h + self._pad[0])
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-hide_banner",
               "-f", "rawvideo", "-vcodec", "rawvideo", "-s", f"{size[0]}x{size[1]}", "-pix_fmt", "rgb24",
               "-r", str(Fraction(self.fps).limit_denominator()), "-i", "-", "-an",
               "-vcodec", "libx264", "-pix_fmt", "yuv420p", "-crf", str(self.crf), "-preset", self.preset,
               "-movflags", "+faststart", "-f", "mp4", self.tmp]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        self._err = bytearray()
        self._reader = threading.Thread(target=self._drain, args=(self._proc.stderr,), daemon=True)
        self._reader.start()

    def _drain(self, stream) -> None:
        for line in iter(stream.readline, b""):
            self._err += line
            del self._err[:-8192]  # the tail is what says why

    def _ffmpeg_error(self, rc) -> OSError:
        if self._reader is not None:
            self._reader.join(5)
        text = self._err.decode("utf-8", "replace")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        for code, words in _ERRNO_WORDS:
            if words.lower() in text.lower():
                return OSError(code, words)
        return OSError(errno.EIO, f"ffmpeg failed (exit {rc}){': ' + lines[-1] if lines else ''}")

    def _write(self, frames):
        rgb = _rgb(frames)
        if any(self._pad):
            rgb = np.pad(rgb, ((0, 0), (0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:  # the whole batch in one write, from the array's own memory (no copy per frame)
            self._proc.stdin.write(memoryview(np.ascontiguousarray(rgb)).cast("B"))
        except (BrokenPipeError, ValueError):  # ffmpeg is gone (a full disk, a crash): say why
            raise self._ffmpeg_error(self._proc.wait()) from None

    def _finish(self):
        proc, self._proc = self._proc, None
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        rc = proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        if rc != 0:
            raise self._ffmpeg_error(rc)

    def _verify(self):
        """ffmpeg reads the file back: the container's header, then every packet (its data read
        from the file, its NAL units parsed) without decoding the pictures. Any error it reports
        (a cut or zeroed stretch shows up as an invalid NAL unit size, a damaged header as no moov
        atom), a non-zero exit or a packet count other than the frames written, and the file is not
        published. As strict as decoding every frame on truncated and zeroed files
        (tests/test_export_speed.py), at a tenth of the time."""
        import imageio_ffmpeg

        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-hide_banner", "-i", self.tmp,
               "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "pipe:1"]
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=600,
                               creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except (OSError, subprocess.SubprocessError) as e:
            raise _unreadable("video", e) from None
        errors = [ln.strip() for ln in r.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        if r.returncode != 0 or errors:
            reason = errors[0].split("] ", 1)[-1] if errors else f"ffmpeg exit {r.returncode}"
            raise _unreadable("video", RuntimeError(reason))
        n = sum(1 for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith(b"#"))
        if n != self.frames:
            raise OSError(errno.EIO, f"the written video holds {n} of {self.frames} frames")

    def _close_quietly(self):
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for s in (proc.stdin, proc.stderr):
                try:
                    s.close()
                except OSError:
                    pass


def _pool():
    """Two encoder threads (zlib and Pillow release the GIL): two frames encode at once."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)), thread_name_prefix="encode")


class _Tracked:
    """A binary file that keeps the length and CRC-32 of what was written (checked on read-back)."""

    def __init__(self, f):
        self.f = f
        self.length = 0
        self.crc = 0

    def write(self, b: bytes) -> None:
        self.f.write(b)
        self.length += len(b)
        self.crc = zlib.crc32(b, self.crc)


def _read_back(path: str, length: int, crc: int, what: str) -> None:
    """The file holds exactly the bytes written (length and CRC-32), or OSError."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) != length or zlib.crc32(data) != crc:
        raise OSError(errno.EIO, f"the written {what} does not read back as written ({len(data)} of {length} bytes)")


class GifWriter(Writer):
    """An adaptive 256-colour palette per frame (fast octree, no dithering, so flat areas stay flat and the
    same frames give the same file), looping forever. GIF times frames in hundredths of a
    second: the delay is 100/fps rounded (24 fps plays at 25). Frames are quantized and encoded
    two at a time and streamed to the file as they come (encode.GifStream)."""

    def __init__(self, path: str, fps: float, loop: bool = True):
        super().__init__(path, fps)
        self.loop = loop
        self._file = None
        self._out: _Tracked | None = None
        self._stream = None
        self._pool = None

    def _open(self, w, h, channels):
        from engines.export.encode import GifStream

        self.tmp = _tmp_name(self.path)
        self._file = open(self.tmp, "wb")
        self._out = _Tracked(self._file)
        self._stream = GifStream(self._out, w, h, self.delay_ms // 10, self.loop)
        self._pool = _pool()

    def _write(self, frames):
        from engines.export.encode import encode_gif_frame

        for data in self._pool.map(encode_gif_frame, frames):
            self._stream.add(data)

    @property
    def delay_ms(self) -> int:
        return 10 * max(2, int(round(100.0 / self.fps)))

    def _finish(self):
        self._stream.close()
        f, self._file = self._file, None
        f.close()
        self._pool.shutdown()

    def _verify(self):
        from PIL import Image

        _read_back(self.tmp, self._out.length, self._out.crc, "GIF")
        try:
            with Image.open(self.tmp) as im:
                n, size = im.n_frames, im.size
        except Exception as e:  # noqa: BLE001 - truncated or damaged: not published
            raise _unreadable("GIF", e) from None
        if size != self.size or n != self._stream.written:
            raise OSError(errno.EIO, f"the written GIF holds {n} frames of {size}, expected "
                                     f"{self._stream.written} of {self.size}")

    def _close_quietly(self):
        f, self._file = self._file, None
        if f is not None:
            try:
                f.close()  # flushes: on a full disk that fails again, and the temp goes anyway
            except OSError:
                pass
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


class PngWriter(Writer):
    """One frame: `out.png`. More: a folder `out/` (the name without .png) of `frame_00000.png`…,
    built in a temporary folder and renamed into place (replacing an earlier export of that name).
    Frames are encoded (encode.encode_png) and written two at a time."""

    def __init__(self, path: str, fps: float, sequence: bool = False):
        super().__init__(path, fps)
        self.sequence = sequence
        self._single = None
        self._pool = None
        self._written: dict[str, tuple[int, int]] = {}  # file name -> (length, CRC-32)

    @property
    def target(self) -> str:
        return os.path.splitext(self.path)[0] if self.sequence else self.path

    def _open(self, w, h, channels):
        self.tmp = _tmp_name(self.target, folder=True) if self.sequence else _tmp_name(self.path)
        if self.sequence:
            self._pool = _pool()

    def _save(self, job) -> tuple[str, int, int]:
        from engines.export.encode import encode_png

        path, frame = job
        data = encode_png(frame)
        with open(path, "wb") as f:
            f.write(data)
        return path, len(data), zlib.crc32(data)

    def _write(self, frames):
        if not self.sequence:
            if self.frames + len(frames) > 1:
                raise ExportError("a single PNG holds one frame; export several as a sequence")
            self._single = frames[0]
            return
        jobs = [(os.path.join(self.tmp, f"frame_{self.frames + i:05d}.png"), f) for i, f in enumerate(frames)]
        for path, length, crc in self._pool.map(self._save, jobs):
            self._written[os.path.basename(path)] = (length, crc)

    def _finish(self):
        if not self.sequence:
            _, length, crc = self._save((self.tmp, self._single))
            self._written[""] = (length, crc)
        else:
            self._pool.shutdown()

    def _verify(self):
        from PIL import Image

        files = sorted(os.listdir(self.tmp)) if self.sequence else [""]
        if len(files) != (self.frames if self.sequence else 1) or set(files) != set(self._written):
            raise OSError(errno.EIO, f"the written sequence holds {len(files)} of {self.frames} frames")
        for name in files:
            _read_back(os.path.join(self.tmp, name) if name else self.tmp, *self._written[name], "PNG")
        try:  # the bytes are as written; that they decode is the encoder's part, checked on one frame
            with Image.open(os.path.join(self.tmp, files[0]) if self.sequence else self.tmp) as im:
                im.load()
        except Exception as e:  # noqa: BLE001
            raise _unreadable("PNG", e) from None

    def _close_quietly(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def _replace(self):
        target = self.target
        if self.sequence and os.path.lexists(target) and not os.path.isdir(target):
            raise ExportError(f"{target} exists and is not a folder")
        super()._replace()  # a folder replaces the earlier export's folder (atomic.publish)

    def commit(self) -> str:
        super().commit()
        return self.target


def open_writer(path: str, fps: float, n_frames: int, loop: bool = True) -> Writer:
    fmt = format_of(path)
    if fmt == "mp4":
        return Mp4Writer(path, fps)
    if fmt == "gif":
        return GifWriter(path, fps, loop)
    return PngWriter(path, fps, sequence=n_frames > 1)
