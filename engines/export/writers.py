"""Writing frames: MP4 (H.264, yuv420p), GIF (palette, looping) and PNG (one image or a sequence).

Every writer works on a temporary name next to the target and renames it into place only in
`commit()`; `abort()` (called for a Cancel, an error or a writer left open) removes it, so a
cancelled or failed export never leaves a half-written file under the final name. Frames are
uint8 (N, H, W, C), C = 1 or 3.
"""
from __future__ import annotations

import os
import shutil
import tempfile

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
    stem, ext = os.path.splitext(os.path.basename(path))
    if folder:
        return tempfile.mkdtemp(prefix=f".tmp-{stem}-", dir=d)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{stem}-", suffix=ext, dir=d)
    os.close(fd)
    return tmp


def _remove(p: str) -> None:
    try:
        if os.path.isdir(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)
    except OSError:
        pass


class Writer:
    """Base: `append` frames, then `commit()`; used as a context manager it aborts on any exception
    (including GeneratorExit from a cancelled generator)."""

    def __init__(self, path: str, fps: float):
        self.path = path
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self.tmp: str | None = None
        self.done = False

    def append(self, frames: np.ndarray) -> None:
        frames = np.asarray(frames, np.uint8)
        if frames.ndim == 3:
            frames = frames[None]
        h, w = frames.shape[1:3]
        if self.size is None:
            self.size = (w, h)
            self._open(w, h, frames.shape[-1])
        elif self.size != (w, h):
            raise ExportError(f"frame size changed from {self.size} to {(w, h)}")
        self._write(frames)
        self.frames += len(frames)

    def commit(self) -> str:
        if self.frames == 0:
            raise ExportError("nothing to write: no frames")
        self._finish()
        self._replace()
        self.done = True
        return self.path

    def abort(self) -> None:
        self._close_quietly()
        if self.tmp is not None:
            _remove(self.tmp)
            self.tmp = None

    def _replace(self) -> None:
        atomic.publish(self.tmp, self.path)
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
    def _close_quietly(self) -> None: ...


class Mp4Writer(Writer):
    """H.264 in yuv420p through imageio-ffmpeg's bundled ffmpeg: plays in browsers, slides and
    phones. yuv420p needs even sides, so an odd width/height gets one replicated pixel column/row."""

    def __init__(self, path: str, fps: float, crf: int = 18):
        super().__init__(path, fps)
        self.crf = int(crf)
        self._gen = None
        self._pad = (0, 0)

    def _open(self, w, h, channels):
        import imageio_ffmpeg

        self.tmp = _tmp_name(self.path)
        self._pad = (h % 2, w % 2)
        size = (w + self._pad[1], h + self._pad[0])
        self._gen = imageio_ffmpeg.write_frames(
            self.tmp, size, fps=self.fps, codec="libx264", pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            macro_block_size=1, ffmpeg_log_level="error", quality=None,
            output_params=["-crf", str(self.crf), "-preset", "medium", "-movflags", "+faststart"])
        self._gen.send(None)

    def _write(self, frames):
        rgb = _rgb(frames)
        if any(self._pad):
            rgb = np.pad(rgb, ((0, 0), (0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        for f in rgb:
            self._gen.send(np.ascontiguousarray(f))

    def _finish(self):
        gen, self._gen = self._gen, None
        try:
            gen.close()
        except (OSError, RuntimeError) as e:
            raise ExportError(f"{self.path}: ffmpeg failed ({e})") from None

    def _close_quietly(self):
        if self._gen is not None:
            gen, self._gen = self._gen, None
            try:
                gen.close()
            except Exception:  # noqa: BLE001 - aborting anyway; the temp file goes next
                pass


class GifWriter(Writer):
    """An adaptive 256-colour palette per frame (fast octree, no dithering, so flat areas stay flat and the
    same frames give the same file), looping forever. GIF times frames in hundredths of a
    second: the delay is 100/fps rounded (24 fps plays at 25)."""

    def __init__(self, path: str, fps: float, loop: bool = True):
        super().__init__(path, fps)
        self.loop = loop
        self._frames: list = []

    def _open(self, w, h, channels):
        self.tmp = _tmp_name(self.path)

    def _write(self, frames):
        from PIL import Image

        for f in frames:
            if f.shape[-1] == 1:
                self._frames.append(Image.fromarray(f[..., 0], "L"))
            else:
                # Fast octree: 20× faster than median cut on a 512×512 frame (8 vs 166 ms), mean
                # error 2.8 vs 2.1 levels of 255 — median cut made the GIF writer the bottleneck.
                self._frames.append(Image.fromarray(f, "RGB").quantize(
                    256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))

    @property
    def delay_ms(self) -> int:
        return 10 * max(2, int(round(100.0 / self.fps)))

    def _finish(self):
        first, rest = self._frames[0], self._frames[1:]
        kw = {"loop": 0} if self.loop else {}
        # Pillow merges identical consecutive frames into one (adding their durations): a held
        # frame in a training-progress GIF is stored once and still shown for its whole time.
        first.save(self.tmp, format="GIF", save_all=True, append_images=rest, duration=self.delay_ms,
                   disposal=1, optimize=False, **kw)
        self._frames = []

    def _close_quietly(self):
        self._frames = []


class PngWriter(Writer):
    """One frame: `out.png`. More: a folder `out/` (the name without .png) of `frame_00000.png`…,
    built in a temporary folder and renamed into place (replacing an earlier export of that name)."""

    def __init__(self, path: str, fps: float, sequence: bool = False):
        super().__init__(path, fps)
        self.sequence = sequence
        self._single = None

    @property
    def target(self) -> str:
        return os.path.splitext(self.path)[0] if self.sequence else self.path

    def _open(self, w, h, channels):
        self.tmp = _tmp_name(self.target, folder=True) if self.sequence else _tmp_name(self.path)

    def _write(self, frames):
        from PIL import Image

        if not self.sequence:
            if self.frames + len(frames) > 1:
                raise ExportError("a single PNG holds one frame; export several as a sequence")
            self._single = frames[0]
            return
        for i, f in enumerate(frames):
            img = Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f)
            img.save(os.path.join(self.tmp, f"frame_{self.frames + i:05d}.png"), format="PNG")

    def _finish(self):
        from PIL import Image

        if not self.sequence:
            f = self._single
            Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f).save(self.tmp, format="PNG")

    def _replace(self):
        if not self.sequence:
            return super()._replace()
        target = self.target
        old = None
        if os.path.exists(target):
            if not os.path.isdir(target):
                raise ExportError(f"{target} exists and is not a folder")
            old = target + f".old-{os.getpid()}"
            os.rename(target, old)
        atomic.publish(self.tmp, target)
        self.tmp = None
        if old:
            _remove(old)

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
