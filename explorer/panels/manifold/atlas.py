"""The latent atlas under the map: a grid of decoded images over a square of the current map,
decoded in a worker coarse-to-fine (`engines.latent.atlas`) and composited here.

A coarse image stands in for its whole block (scaled up, nearest neighbour) until the finer
levels replace it, so a usable picture appears after a handful of decodes. The map's image is
refreshed at most every REPAINT_MS however fast tiles arrive. Starting a new atlas (other
extent, resolution or map) quits the old worker at its next tile and ignores what it still sends.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from explorer.workers import Worker
from explorer.panels.manifold.jobs import AtlasRequest, atlas_job

REPAINT_MS = 80
BACKGROUND = 236


class AtlasView(QObject):
    progress = Signal(int, int)  # cells decoded, total
    finished = Signal(bool)  # True when every cell was decoded
    failed = Signal(str)

    def __init__(self, latent_map, controls, parent=None):
        super().__init__(parent)
        self.map = latent_map
        self.c = controls
        self.center = (0.0, 0.0)
        self.worker: Worker | None = None
        self.generation = 0
        self.canvas: np.ndarray | None = None
        self.rect = (0.0, 0.0, 1.0, 1.0)
        self.grid = None
        self.done = 0
        self.total = 0
        self.complete = False
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REPAINT_MS)
        self._timer.timeout.connect(self._repaint)

    @property
    def busy(self) -> bool:
        return self.worker is not None

    # ---- what the form asks for ---------------------------------------------------------------------------
    def refresh(self, engine, mapping, frame: bool = True) -> None:
        """Start (or stop) the atlas for the form's settings; `frame` shows its whole square."""
        c = self.c
        if not c.atlas_mode or mapping is None:
            self.cancel()
            self.map.set_points_style(1.0)
            c.atlas_status.setText("")
            return
        self.map.set_points_style(0.4 if c.atlas_points.isChecked() else 0.0)
        extent = c.atlas_extent.value()
        self.start(engine, mapping, self.center, extent, c.atlas_res.value())
        if frame:
            cx, cy = self.center
            self.map.vb.setRange(xRange=(cx - extent, cx + extent), yRange=(cy - extent, cy + extent), padding=0.02)

    def fit_to_view(self, engine, mapping) -> None:
        x, y, w, h = self.map.view_rect()
        self.center = (x + w / 2, y + h / 2)
        self.c.set_atlas_extent(max(1e-3, min(w, h) / 2))
        self.refresh(engine, mapping, frame=False)

    def centre_on(self, x: float, y: float, engine, mapping) -> None:
        self.center = (x, y)
        self.refresh(engine, mapping)

    # ---- the worker -------------------------------------------------------------------------------------------

    def start(self, engine, mapping, center, extent: float, resolution: int) -> None:
        self.cancel(clear=False)
        self.generation += 1
        gen = self.generation
        self.grid, self.done, self.total, self.complete = None, 0, 0, False
        w = Worker(atlas_job, AtlasRequest(engine, mapping, (float(center[0]), float(center[1])), float(extent),
                                           int(resolution)))
        w.yielded.connect(lambda item, g=gen: self._on_item(g, item))
        w.errored.connect(lambda e, g=gen: g == self.generation and self._fail(str(e)))
        w.finished.connect(lambda g=gen: self._on_finished(g))
        self.worker = w
        w.start()

    def cancel(self, clear: bool = True) -> None:
        self.generation += 1
        if self.worker is not None:
            self.worker.quit()
            self.worker = None
        self._timer.stop()
        if clear:
            self.canvas, self.grid = None, None
            self.map.clear_atlas()

    def _fail(self, message: str) -> None:
        self.c.atlas_status.setText(f"Atlas failed: {message}")
        self.failed.emit(message)

    def _on_item(self, gen: int, item) -> None:
        if gen != self.generation:
            return
        if self.grid is None:  # the first item is the grid itself
            self.grid = item
            self.total = item.rows * item.cols
            return
        g = self.grid
        h, w, c = item.images.shape[1:]
        if self.canvas is None or self.canvas.shape != (g.rows * h, g.cols * w, c):
            self.canvas = np.full((g.rows * h, g.cols * w, c), BACKGROUND, np.uint8)
            (cx, cy), (ex, ey) = g.center, g.extent
            self.rect = (cx - ex, cy - ey, 2 * ex, 2 * ey)
        s = item.stride
        for index, img in zip(item.indices, item.images):
            r, col = g.cell(index)
            rows, cols = min(s, g.rows - r), min(s, g.cols - col)
            y0, x0 = r * h, col * w
            if s > 1:  # scaled up over the block it stands in for until the finer levels arrive…
                bh, bw = rows * h, cols * w
                self.canvas[y0:y0 + bh, x0:x0 + bw] = _resize_nearest(img, s * h, s * w)[:bh, :bw]
            # …and itself in its own cell, which no finer level decodes again.
            self.canvas[y0:y0 + h, x0:x0 + w] = img
        self.done += len(item.indices)
        self.c.atlas_status.setText(f"Decoding the atlas: {self.done}/{self.total} images…")
        self.progress.emit(self.done, self.total)
        self._dirty = True
        if not self._timer.isActive():
            self._timer.start()

    def _repaint(self) -> None:
        if self._dirty and self.canvas is not None:
            self._dirty = False
            self.map.set_atlas(self.canvas, self.rect)

    def _on_finished(self, gen: int) -> None:
        if gen != self.generation:
            return
        self.worker = None
        self._timer.stop()
        self._repaint()
        self.complete = self.total > 0 and self.done >= self.total
        if self.complete:
            self.c.atlas_status.setText(f"{self.grid.rows}×{self.grid.cols} decoded images.")
        self.finished.emit(self.complete)


def _resize_nearest(img: np.ndarray, h: int, w: int) -> np.ndarray:
    ys = np.arange(h) * img.shape[0] // h
    xs = np.arange(w) * img.shape[1] // w
    return img[ys][:, xs]
