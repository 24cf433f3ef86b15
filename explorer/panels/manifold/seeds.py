"""Seed-plane browsing for the Manifold panel (the StyleGAN visualizer's latent widget): a K×K
grid of random seeds drawn as thumbnails; dragging the cursor between them decodes the bilinear
blend of the four neighbouring seeds' latents (engines.latent.seeds), so a discrete grid of
seeds scrubs smoothly. Works on the prior alone — no data, no encoding — so it is the first
thing to explore on a GAN while its data are still being inverted.

Thumbnails and blends are computed in workers; the blend goes through a LatestRequestRunner so
only the newest cursor position is decoded while dragging.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from explorer.workers import LatestRequestRunner

K = 5  # seeds per side shown at once


def _thumbs(request):
    """(engine, ox, oy) → {seed: uint8 image} for the K×K seeds from (ox, oy)."""
    from engines.data.dataset import to_uint8
    from engines.latent.seeds import seed_at, seed_latents

    engine, ox, oy = request
    seeds = [seed_at(ox + i, oy + j) for j in range(K) for i in range(K)]
    imgs = to_uint8(engine.decode(seed_latents(engine, seeds)))
    return dict(zip(seeds, imgs))


def _blend(request):
    """(engine, x, y, cache) → (z, uint8 image)."""
    from engines.data.dataset import to_uint8
    from engines.latent.seeds import blend

    engine, x, y, cache = request
    z = blend(engine, x, y, cache)
    return z, to_uint8(engine.decode(z[None]))[0]


def _qimage(a: np.ndarray) -> QImage:
    a = np.ascontiguousarray(a if a.shape[-1] == 3 else np.repeat(a, 3, -1))
    h, w, _ = a.shape
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class SeedCanvas(QWidget):
    """The grid of seed thumbnails and the cursor. Plane coordinates: seed (i, j) sits at (i, j);
    the cell of (ox + c, oy + r) is column c, row r."""

    moved = Signal(float, float, str)  # x, y, phase: start | move | end

    def __init__(self, parent=None):
        super().__init__(parent)
        self.origin = (0, 0)
        self.cursor = (1.5, 1.5)
        self.images: dict[int, QImage] = {}
        self._dragging = False
        self.setMinimumSize(240, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)

    def _geometry(self):
        side = min(self.width(), self.height())
        cell = side / K
        return (self.width() - side) / 2, (self.height() - side) / 2, cell

    def to_plane(self, px: float, py: float) -> tuple[float, float]:
        x0, y0, cell = self._geometry()
        x = self.origin[0] + (px - x0) / cell - 0.5
        y = self.origin[1] + (py - y0) / cell - 0.5
        ox, oy = self.origin
        return min(max(x, ox), ox + K - 1), min(max(y, oy), oy + K - 1)

    def to_widget(self, x: float, y: float) -> QPointF:
        x0, y0, cell = self._geometry()
        return QPointF(x0 + (x - self.origin[0] + 0.5) * cell, y0 + (y - self.origin[1] + 0.5) * cell)

    def paintEvent(self, _event) -> None:
        from engines.latent.seeds import seed_at

        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#f4f4f4"))
        x0, y0, cell = self._geometry()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        for r in range(K):
            for c in range(K):
                seed = seed_at(self.origin[0] + c, self.origin[1] + r)
                rect = QRectF(x0 + c * cell + 1, y0 + r * cell + 1, cell - 2, cell - 2)
                img = self.images.get(seed)
                if img is not None:
                    p.drawImage(rect, img)
                else:
                    p.fillRect(rect, QColor("#ddd"))
                # The seed number on a dark tab: readable on light and dark images alike.
                label = QRectF(rect.left(), rect.top(), p.fontMetrics().horizontalAdvance(str(seed)) + 6,
                               p.fontMetrics().height() + 2)
                p.fillRect(label, QColor(0, 0, 0, 150))
                p.setPen(QColor(255, 255, 255))
                p.drawText(label, Qt.AlignmentFlag.AlignCenter, str(seed))
        # The cursor: the blend point, with lines to the four seeds it mixes.
        cx, cy = self.cursor
        at = self.to_widget(cx, cy)
        i0, j0 = math.floor(cx), math.floor(cy)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(QColor(255, 255, 255, 200), 1.5))
        for i, j in ((i0, j0), (i0 + 1, j0), (i0, j0 + 1), (i0 + 1, j0 + 1)):
            p.drawLine(at, self.to_widget(i, j))
        p.setPen(QPen(QColor("#d62728"), 3))
        p.drawEllipse(at, 7, 7)
        p.end()

    def mousePressEvent(self, e) -> None:
        if e.button() == Qt.MouseButton.LeftButton:
            self._dragging = True
            self._emit(e, "start")

    def mouseMoveEvent(self, e) -> None:
        if self._dragging:
            self._emit(e, "move")

    def mouseReleaseEvent(self, e) -> None:
        if self._dragging:
            self._dragging = False
            self._emit(e, "end")

    def _emit(self, e, phase: str) -> None:
        pos = e.position()
        self.cursor = self.to_plane(pos.x(), pos.y())
        self.update()
        self.moved.emit(self.cursor[0], self.cursor[1], phase)


class SeedBrowser(QWidget):
    """Canvas + panning buttons + caption. Emits `frame(z, image, caption, phase)` per decoded blend."""

    frame = Signal(object, object, str, str)
    failed = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.engine = None
        self._cache: dict[int, np.ndarray] = {}
        self.canvas = SeedCanvas()
        self.caption = QLabel("Drag between the seeds: the image blends the four nearest seeds' latents.")
        self.caption.setWordWrap(True)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        for text, dx, dy, tip in (("◀", -1, 0, "Seeds to the left"), ("▶", 1, 0, "Seeds to the right"),
                                  ("▲", 0, -1, "Seeds above"), ("▼", 0, 1, "Seeds below")):
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.clicked.connect(lambda _c=False, dx=dx, dy=dy: self.pan(dx, dy))
            bar.addWidget(b)
        self.where = QLabel("")
        bar.addWidget(self.where, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.canvas, 1)
        lay.addWidget(self.caption)
        self._thumbs = LatestRequestRunner(_thumbs, self)
        self._thumbs.result.connect(self._on_thumbs)
        self._thumbs.failed.connect(lambda g, r, e: self.failed.emit(e))
        self._blends = LatestRequestRunner(_blend, self)
        self._blends.result.connect(self._on_blend)
        self._blends.failed.connect(lambda g, r, e: self.failed.emit(e))
        self.canvas.moved.connect(self.move_to)
        self._phase = "move"

    @property
    def busy(self) -> bool:
        return self._thumbs.busy or self._blends.busy

    @property
    def complete(self) -> bool:
        """Every thumbnail in view drawn (screenshots wait for it)."""
        from engines.latent.seeds import seed_at

        ox, oy = self.canvas.origin
        return all(seed_at(ox + c, oy + r) in self.canvas.images for r in range(K) for c in range(K))

    def set_engine(self, engine) -> None:
        self.engine = engine
        self._cache = {}
        self.canvas.images = {}
        self.canvas.update()
        if engine is not None and "sample" in engine.capabilities and self.isVisible():
            self.refresh()

    def refresh(self) -> None:
        if self.engine is not None and "sample" in self.engine.capabilities:
            ox, oy = self.canvas.origin
            self.where.setText(f"seeds from ({ox}, {oy})")
            self._thumbs.submit((self.engine, ox, oy))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.engine is not None and not self.complete:
            self.refresh()

    def pan(self, dx: int, dy: int) -> None:
        ox, oy = self.canvas.origin
        self.canvas.origin = (max(0, ox + dx), max(0, oy + dy))
        cx, cy = self.canvas.cursor
        self.canvas.cursor = (cx + self.canvas.origin[0] - ox, cy + self.canvas.origin[1] - oy)
        self.canvas.update()
        self.refresh()

    def move_to(self, x: float, y: float, phase: str = "move") -> None:
        if self.engine is None:
            return
        self.canvas.cursor = (x, y)
        self.canvas.update()
        self._phase = phase
        self._blends.submit((self.engine, float(x), float(y), self._cache))

    def _on_thumbs(self, generation, request, images) -> None:
        if request[0] is not self.engine:
            return
        for seed, img in images.items():
            self.canvas.images[seed] = _qimage(img)
        self.canvas.update()

    def _on_blend(self, generation, request, value) -> None:
        if request[0] is not self.engine:
            return
        z, img = value
        x, y = request[1], request[2]
        caption = f"seed plane ({x:.2f}, {y:.2f})"
        self.caption.setText(f"Blend at ({x:.2f}, {y:.2f}) of seeds {self._corner_seeds(x, y)}")
        # A press or release is a visit of its own (history entry, cursor on the map); moves coalesce.
        self.frame.emit(z, img, caption, "seed" if self._phase in ("end", "start") else "drag")

    @staticmethod
    def _corner_seeds(x: float, y: float) -> str:
        from engines.latent.seeds import seed_at

        i, j = math.floor(x), math.floor(y)
        return ", ".join(str(seed_at(a, b)) for a, b in ((i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1)))

    def cancel(self) -> None:
        self._thumbs.cancel()
        self._blends.cancel()
