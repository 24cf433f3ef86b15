"""A row of small images with a caption under each (the s = −4…4 strip, nearest neighbours).

Images are drawn as large as the row allows, at an integer scale when they fit at least once
(pixels stay square and sharp). One cell can be highlighted (the slider's current s); clicking a
cell emits `clicked(index)`. The previous images stay until `set_images` brings new ones.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from explorer.widgets.image_grid import to_qimage


class ImageStrip(QWidget):
    clicked = Signal(int)

    def __init__(self, parent=None, placeholder: str = "", min_cell: int = 40, max_cell: int = 160, gap: int = 6,
                 expected: int = 9):
        super().__init__(parent)
        self.expected = expected  # cells to size for before the first images arrive
        self._images: list = []
        self._captions: list[str] = []
        self._highlight: int | None = None
        self._dim: set[int] = set()
        self._placeholder = placeholder
        self.min_cell, self.max_cell, self.gap = min_cell, max_cell, gap
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMouseTracking(True)

    # ---- content -----------------------------------------------------------------------------
    def set_images(self, images, captions=None) -> None:
        """uint8 (N, H, W, C) or a list of (H, W[, C]) arrays; captions: one string each."""
        self._images = [] if images is None else [to_qimage(np.asarray(im)) for im in images]
        self._captions = list(captions) if captions is not None else [""] * len(self._images)
        self._captions += [""] * (len(self._images) - len(self._captions))
        self.updateGeometry()
        self.update()

    def set_captions(self, captions) -> None:
        self._captions = list(captions)
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        if placeholder is not None:
            self._placeholder = placeholder
        self.set_images(None)

    def set_highlight(self, index: int | None) -> None:
        self._highlight = index
        self.update()

    def set_dimmed(self, indices) -> None:
        self._dim = set(indices)
        self.update()

    def count(self) -> int:
        return len(self._images)

    def captions(self) -> list[str]:
        return list(self._captions)

    def has_images(self) -> bool:
        return bool(self._images)

    # ---- geometry ------------------------------------------------------------------------------
    def _caption_h(self) -> int:
        lines = max([1] + [c.count("\n") + 1 for c in self._captions])
        return QFontMetrics(self.font()).height() * lines + 4

    def _cell(self) -> int:
        n = max(1, len(self._images))
        fit_w = (self.width() - self.gap * (n - 1)) // n
        fit_h = self.height() - self._caption_h()
        side = max(8, min(fit_w, fit_h, self.max_cell))
        if self._images:
            native = max(self._images[0].width(), self._images[0].height())
            if side >= 2 * native:
                side = native * (side // native)  # an integer scale: crisp pixels
        return side

    def cell_rect(self, i: int) -> QRect:
        n = max(1, len(self._images))
        side = self._cell()
        total = n * side + (n - 1) * self.gap
        x0 = max(0, (self.width() - total) // 2)
        return QRect(x0 + i * (side + self.gap), 0, side, side)

    def sizeHint(self) -> QSize:
        n = max(1, len(self._images) or self.expected)
        return QSize(n * (72 + self.gap), 72 + self._caption_h())

    def minimumSizeHint(self) -> QSize:
        n = max(1, len(self._images) or self.expected)
        return QSize(n * (self.min_cell + self.gap), self.min_cell + self._caption_h())

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, w: int) -> int:
        n = max(1, len(self._images) or self.expected)
        side = max(self.min_cell, min((w - self.gap * (n - 1)) // n, self.max_cell))
        return side + self._caption_h()

    # ---- painting and clicks --------------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        pal = self.palette()
        if not self._images:
            if self._placeholder:
                p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
                p.drawText(self.rect().adjusted(8, 4, -8, -4), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                           self._placeholder)
            return
        ch = self._caption_h()
        for i, img in enumerate(self._images):
            r = self.cell_rect(i)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, r.width() < img.width())
            p.drawImage(r, img)
            if i in self._dim:
                p.fillRect(r, QColor(255, 255, 255, 120))
            if i == self._highlight:
                p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 3))
                p.drawRect(r.adjusted(1, 1, -2, -2))
            else:
                p.setPen(QColor(0, 0, 0, 60))
                p.drawRect(r.adjusted(0, 0, -1, -1))
            text = self._captions[i] if i < len(self._captions) else ""
            if text:
                # Centred text may use half of the gap on each side: neighbouring captions never overlap.
                cap = QRect(r.left() - self.gap // 2, r.bottom() + 2, r.width() + 2 * (self.gap // 2), ch)
                font = self.font()
                font.setPointSizeF(font.pointSizeF() * 0.92)
                font.setBold(i == self._highlight)
                p.setFont(font)
                p.setPen(pal.color(QPalette.ColorRole.Text))
                fm = QFontMetrics(font)
                elided = "\n".join(fm.elidedText(line, Qt.TextElideMode.ElideRight, cap.width())
                                   for line in text.split("\n"))
                p.drawText(cap, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, elided)

    def index_at(self, x: int, y: int) -> int | None:
        for i in range(len(self._images)):
            if self.cell_rect(i).adjusted(0, 0, 0, self._caption_h()).contains(x, y):
                return i
        return None

    def mousePressEvent(self, event) -> None:
        i = self.index_at(int(event.position().x()), int(event.position().y()))
        if i is not None and event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(i)

    def mouseMoveEvent(self, event) -> None:
        i = self.index_at(int(event.position().x()), int(event.position().y()))
        self.setCursor(Qt.CursorShape.PointingHandCursor if i is not None else Qt.CursorShape.ArrowCursor)
