"""Raster-order generation as pictures: what a PixelCNN has drawn so far, step by step.

`picture` turns a `RasterLoop`'s state into uint8 RGB images with the pixels not drawn yet tinted
(so a black background drawn is told apart from nothing drawn); `recorded` iterates a loop and
keeps about `frames` evenly spaced pictures (the first and the last always), which the panel's
viewer scrubs and `video` writes as a grid animation (MP4, GIF or PNG frames). The CLI's
`sample --video` and `sample --complete` use these.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from engines.data.dataset import tile, to_uint8

UNDRAWN = np.array([70, 80, 150], np.uint8)  # tint of the pixels not drawn yet


def picture(loop, images_of, upto: int | None) -> np.ndarray:
    """uint8 (N, H, W, 3): the loop's values with the pixels after raster position `upto`
    (row·W + col; None: before the first step) that are still to be drawn tinted."""
    v = loop.values
    n, _, h, w = v.shape
    imgs = to_uint8(images_of(v))
    if imgs.shape[-1] == 1:
        imgs = np.repeat(imgs, 3, -1)
    index = torch.arange(h * w).view(h, w)
    later = index > (-1 if upto is None else upto)
    pending = (loop.todo.cpu() & later).numpy()
    imgs[pending] = (imgs[pending].astype(np.int32) // 4 + UNDRAWN.astype(np.int32) * 3 // 4).astype(np.uint8)
    return imgs


def recording(loop, images_of, frames: int = 120):
    """Generator: run `loop`, yielding (done, total) after every step (where a caller may stop it),
    and return about `frames` pictures (N, H, W, 3) evenly spaced over its steps, the state before
    the first step and after the last included."""
    total = len(loop)
    every = max(1, math.ceil(total / max(1, frames - 1)))
    out = [picture(loop, images_of, None)]
    w = loop.values.shape[-1]
    for step in loop:
        if (step.index + 1) % every == 0 or step.index + 1 == total:
            out.append(picture(loop, images_of, step.row * w + step.col))
        yield step.index + 1, total
    return out


def recorded(loop, images_of, frames: int = 120, progress=None) -> list[np.ndarray]:
    """`recording` run to its end; `progress(done, total)` after every step."""
    gen = recording(loop, images_of, frames)
    while True:
        try:
            done, total = next(gen)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(done, total)


def grid(pictures: np.ndarray, cols: int, scale: int = 1) -> np.ndarray:
    """(N, H, W, 3) → one uint8 grid, nearest-neighbour upscaled by `scale`."""
    g = tile(pictures, cols)
    return g.repeat(scale, 0).repeat(scale, 1) if scale > 1 else g


def video(path: str, pictures: list[np.ndarray], cols: int, scale: int = 4, fps: float = 24.0, hold_s: float = 1.5) -> str:
    """Write the recorded pictures as an animation of grids (the last one held `hold_s`)."""
    from engines.export.writers import open_writer

    frames = [grid(p, cols, scale) for p in pictures]
    frames += [frames[-1]] * int(round(hold_s * fps))
    with open_writer(path, fps, len(frames)) as wr:
        for i in range(0, len(frames), 32):
            wr.append(np.stack(frames[i:i + 32]))
        return wr.commit()
