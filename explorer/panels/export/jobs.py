"""The Export panel's work, run in workers: key thumbnails, the preview, the export itself."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PREVIEW_WIDTH = 256  # preview frames at most this wide: fast to render, still shows the motion
PREVIEW_MAX_FRAMES = 480


@dataclass
class PreviewRequest:
    engine: object
    spec: object  # ExportSpec (a copy: the panel may change its own meanwhile)


@dataclass
class Preview:
    frames: np.ndarray  # uint8 (F, H, W, C)
    fps: float
    loop: bool
    full_size: tuple[int, int]  # (width, height) of the exported frames


def thumbnails(engine, latents: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) decodes of the keys, for the key list."""
    from engines.data.dataset import to_uint8

    if not len(latents):
        return np.zeros((0, *engine.spec.shape[1:], engine.spec.channels), np.uint8)
    return to_uint8(engine.decode(np.asarray(latents, np.float32)))


def preview(request: PreviewRequest) -> Preview:
    """Every frame of the export at a small scale (a diffusion trajectory samples once)."""
    from engines.export.job import frame_batches
    from engines.export.render import FrameStyle

    spec, engine = request.spec, request.engine
    full = _frame_size(engine, spec)
    shrink = min(1.0, PREVIEW_WIDTH / max(1, full[0]))
    st = spec.style
    spec.style = FrameStyle(max(st.scale * shrink, 1e-3), st.smooth, st.cols, max(1, round(st.gap * shrink)) if st.gap else 0,
                            st.labels)
    batches, n, fps, loop = frame_batches(engine, spec, batch=64)
    if n > PREVIEW_MAX_FRAMES:
        raise ValueError(f"{n} frames is too long to preview (at most {PREVIEW_MAX_FRAMES}); export it instead")
    frames = np.concatenate(list(batches))
    return Preview(frames, fps, loop, full)


def _frame_size(engine, spec) -> tuple[int, int]:
    st = spec.style
    cells = 1
    if spec.kind == "grid" and spec.grid is not None:
        cells = spec.grid.n
    elif spec.kind == "progress" and spec.progress is not None:
        cells = spec.progress.n
    elif spec.kind == "diffusion" and spec.diffusion is not None:
        cells = spec.diffusion.n * (2 if spec.diffusion.show == "both" else 1)
    h, w = st.frame_size(engine.spec, cells)
    return w, h


def export(engine, spec, path: str):
    """A generator for a Worker: yields Progress, returns ExportResult; quit() removes the file."""
    from engines.export import run_export

    return (yield from run_export(engine, spec, path))
