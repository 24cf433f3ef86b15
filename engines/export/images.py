"""Still images of what a view shows — a sample grid, the latent atlas, an arithmetic strip, a
codebook grid, a diffusion step grid — at a chosen scale, as PNG.

`compose` lays uint8 images out in a grid (the same `FrameStyle` as video frames: nearest-neighbour
or smooth scaling, gaps, captions drawn under each cell) and `save_png` writes it atomically.
"""
from __future__ import annotations

import numpy as np

from engines.export.render import FrameStyle, draw_caption, finish
from engines.export.writers import PngWriter


def compose(images, captions=None, cols: int | None = None, scale: float = 4.0, smooth: bool = False,
            labels: bool = False, gap: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) or a list of (H, W[, C]) arrays of one size → one uint8 (H', W', C) image."""
    import torch

    from engines.spec import ImageSpec

    arr = np.stack([np.asarray(a, np.uint8) for a in images]) if isinstance(images, (list, tuple)) else \
        np.asarray(images, np.uint8)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or not len(arr):
        raise ValueError(f"expected images (N, H, W, C), got shape {arr.shape}")
    n, h, w, c = arr.shape
    cols = max(1, min(int(cols or int(np.ceil(np.sqrt(n)))), n))
    style = FrameStyle(scale, smooth, cols, gap if n > 1 else 0, False)
    spec = ImageSpec(c, h, w)
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
    if labels and captions:
        cells = finish(x, style, spec, 1)  # each cell with its caption, then tiled
        cells = np.stack([draw_caption(f, str(captions[i]) if i < len(captions) else "") for i, f in enumerate(cells)])
        one = FrameStyle(1.0, False, cols, style.gap, False)
        return finish(torch.from_numpy(cells).permute(0, 3, 1, 2).float().div_(255.0), one,
                      ImageSpec(c, *cells.shape[1:3]), n)[0]
    return finish(x, style, spec, n)[0]


def save_png(path: str, image: np.ndarray) -> str:
    """Write one uint8 image as PNG (temp name, then rename)."""
    with PngWriter(path, fps=1.0) as w:
        w.append(np.asarray(image, np.uint8)[None])
        return w.commit()
