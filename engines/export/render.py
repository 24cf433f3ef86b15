"""Latents → finished video frames, batched on the engine's device.

`FrameStyle` says how a frame looks: the scale of each image (nearest-neighbour for crisp pixel
art or smooth bicubic), how many cells per row when a frame is a grid, the gap between cells and
whether captions are drawn. `render` decodes a batch of frames at a time, upscales and tiles them
on the device and hands uint8 (N, H, W, C) arrays to the caller; the same latents on the same
device give the same bytes. Captions are drawn with Pillow's built-in font on the CPU.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

BATCH = 32  # frames decoded per call: bounds memory for 512×512 grids, keeps a Cancel responsive


@dataclass
class FrameStyle:
    scale: float = 4.0  # output pixels per model pixel
    smooth: bool = False  # bicubic instead of nearest-neighbour
    cols: int = 1  # cells per row when a frame shows several images
    gap: int = 2  # pixels between cells (and around them) in a grid
    labels: bool = False  # draw each frame's caption
    background: int = 255

    def __post_init__(self):
        if not (0 < float(self.scale) <= 64):
            raise ValueError(f"scale must be in (0, 64], got {self.scale}")
        self.cols = max(1, int(self.cols))
        self.gap = max(0, int(self.gap))

    def cell(self, spec) -> tuple[int, int]:
        """(height, width) of one scaled image."""
        return max(1, int(round(spec.height * self.scale))), max(1, int(round(spec.width * self.scale)))

    def frame_size(self, spec, cells: int) -> tuple[int, int]:
        """(height, width) of a frame holding `cells` images."""
        ch, cw = self.cell(spec)
        if cells <= 1:
            return ch, cw
        cols = min(self.cols, cells)
        rows = math.ceil(cells / cols)
        return rows * ch + (rows + 1) * self.gap, cols * cw + (cols + 1) * self.gap

    @staticmethod
    def for_width(spec, width: int, cells: int = 1, cols: int | None = None, smooth: bool = False,
                  gap: int = 2, labels: bool = False) -> "FrameStyle":
        """The style whose frames are `width` pixels wide (cells rounded to whole pixels)."""
        cols = min(int(cols or math.ceil(math.sqrt(cells))), cells) if cells > 1 else 1
        room = width - ((cols + 1) * gap if cells > 1 else 0)
        if room < cols:
            raise ValueError(f"{width} px is too narrow for {cols} cells")
        return FrameStyle((room // cols) / spec.width, smooth, cols, gap, labels)  # whole-pixel cells

    def to_dict(self) -> dict:
        return {"scale": self.scale, "smooth": self.smooth, "cols": self.cols, "gap": self.gap,
                "labels": self.labels}

    @classmethod
    def from_dict(cls, d: dict) -> "FrameStyle":
        return cls(float(d.get("scale", 4.0)), bool(d.get("smooth", False)), int(d.get("cols", 1)),
                   int(d.get("gap", 2)), bool(d.get("labels", False)))


@dataclass
class Timing:
    decode_s: float = 0.0  # decoding + scaling + tiling on the device, up to uint8 on the CPU
    caption_s: float = 0.0
    write_s: float = 0.0  # the writer (video encoding, PNG compression)
    frames: int = 0
    extra: dict = field(default_factory=dict)


def _nearest_index(n_in: int, n_out: int, device):
    """Source row/column of each output one under 'nearest-exact' (pixel centres)."""
    import torch

    idx = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)).floor().long()
    return idx.clamp_(0, n_in - 1)


def finish(x, style: FrameStyle, spec, cells: int = 1) -> np.ndarray:
    """Decoded images (F·cells, C, h, w), float in [0, 1] on any device → finished uint8 frames
    (F, H, W, C) on the CPU: scaled to the style's cell size and tiled, all on the device.

    Nearest-neighbour scaling commutes with quantisation, so it runs on uint8 in channels-last
    order (a row gather, then a column gather of whole pixels: ~30× faster on a CPU than
    gathering along the last axis of NCHW); smooth scaling runs on float first."""
    import torch
    import torch.nn.functional as F

    ch, cw = style.cell(spec)
    x = x.float()
    if style.smooth and (ch, cw) != tuple(x.shape[-2:]):
        x = F.interpolate(x, size=(ch, cw), mode="bicubic", align_corners=False, antialias=True)
    u8 = x.clamp(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1)  # (N, h, w, C)
    h, w = u8.shape[1:3]
    if (h, w) != (ch, cw):
        u8 = u8[:, _nearest_index(h, ch, u8.device)][:, :, _nearest_index(w, cw, u8.device)]
    return tile_on_device(u8, style, cells).contiguous().cpu().numpy()


def tile_on_device(x, style: FrameStyle, cells: int):
    """(F·cells, h, w, C) → (F, H, W, C): each frame's cells in rows of `style.cols`."""
    import torch

    if cells <= 1:
        return x
    n, h, w, c = x.shape
    frames = n // cells
    cols = min(style.cols, cells)
    rows = math.ceil(cells / cols)
    g = style.gap
    out = torch.full((frames, rows * h + (rows + 1) * g, cols * w + (cols + 1) * g, c),
                     int(style.background), dtype=x.dtype, device=x.device)
    x = x.reshape(frames, cells, h, w, c)
    for i in range(cells):
        r, q = divmod(i, cols)
        y0, x0 = g + r * (h + g), g + q * (w + g)
        out[:, y0:y0 + h, x0:x0 + w] = x[:, i]
    return out


def draw_caption(frame: np.ndarray, text: str) -> np.ndarray:
    """A caption in the lower-left corner on a translucent dark band (legible on any image)."""
    if not text:
        return frame
    from PIL import Image, ImageDraw, ImageFont

    grey = frame.shape[-1] == 1
    img = Image.fromarray(frame[..., 0] if grey else frame).convert("RGB")
    h = img.height
    size = max(8, min(24, h // 12))
    try:
        font = ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    draw = ImageDraw.Draw(img, "RGBA")
    box = draw.textbbox((0, 0), text, font=font)
    pad = max(2, size // 4)
    tw, th = box[2] - box[0], box[3] - box[1]
    y0 = h - th - 3 * pad
    draw.rectangle((0, y0, min(img.width, tw + 2 * pad + pad), h), fill=(0, 0, 0, 150))
    draw.text((pad - box[0], y0 + pad - box[1]), text, fill=(255, 255, 255, 255), font=font)
    out = np.asarray(img)
    return np.asarray(img.convert("L"))[..., None] if grey else out


def render(engine, latents: np.ndarray, style: FrameStyle, cells: int = 1, captions: list[str] | None = None,
           batch: int = BATCH, timing: Timing | None = None, decoder=None):
    """Generator of uint8 frame batches (N, H, W, C). `latents`: (frames·cells, D), frame-major
    (the cells of frame 0 first). `decoder(z)` replaces `engine.decode` (e.g. another checkpoint)."""
    import torch

    latents = np.asarray(latents, np.float32)
    cells = max(1, int(cells))
    if len(latents) % cells:
        raise ValueError(f"{len(latents)} latents do not split into frames of {cells} cells")
    n_frames = len(latents) // cells
    timing = timing if timing is not None else Timing()
    decode = decoder or engine.decode
    per = max(1, int(batch) // cells) if cells < batch else 1
    for start in range(0, n_frames, per):
        stop = min(n_frames, start + per)
        t0 = time.perf_counter()
        z = torch.from_numpy(latents[start * cells:stop * cells])
        x = decode(z)
        with torch.inference_mode():
            frames = finish(x, style, engine.spec, cells)
        t1 = time.perf_counter()
        if style.labels and captions:
            frames = np.stack([draw_caption(f, captions[start + i] if start + i < len(captions) else "")
                               for i, f in enumerate(frames)])
        timing.decode_s += t1 - t0
        timing.caption_s += time.perf_counter() - t1
        timing.frames += len(frames)
        yield frames
