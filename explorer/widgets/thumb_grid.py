"""Small images in wrapping rows, each with an optional caption: the nearest neighbours of the
current latent, the decoded frames of a path.

Cells are as large as the width allows between `min_cell` and `max_cell`, at an integer scale of
the image when they fit at least once (crisp pixels). One cell can be highlighted (the frame an
animation shows); clicking a cell emits `clicked(index)`. The height follows the width, so a
long strip wraps into more rows instead of shrinking its images to nothing.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from explorer.widgets.image_grid import to_qimage


class ThumbGrid(QWidget):
    clicked = Signal(int)

    def __init__(self, parent=None, placeholder: str = "", min_cell: int = 40, max_cell: int = 96, gap: int = 4,
                 max_rows: int | None = None):
        super().__init__(parent)
        self._images: list = []
        self._captions: list[str] = []
        self._tips: list[str] = []
        self._highlight: int | None = None
        self._placeholder = placeholder
        self.min_cell, self.max_cell, self.gap, self.max_rows = min_cell, max_cell, gap, max_rows
        sp = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        sp.setHeightForWidth(True)
        self.setSizePolicy(sp)
        self.setMouseTracking(True)

    # ---- content ------------------------------------------------------------------------------
    def set_images(self, images, captions=None, tips=None) -> None:
        """uint8 (N, H, W, C) or a list of (H, W[, C]) arrays; one caption / tooltip each."""
        before = (len(self._images), self._images[0].size() if self._images else None, bool(any(self._captions)))
        self._images = [] if images is None else [to_qimage(np.asarray(im)) for im in images]
        n = len(self._images)
        self._captions = (list(captions) if captions is not None else [])[:n]
        self._tips = (list(tips) if tips is not None else [])[:n]
        if self._highlight is not None and self._highlight >= n:
            self._highlight = None
        if before != (n, self._images[0].size() if n else None, bool(any(self._captions))):
            self.updateGeometry()  # only when the layout can change: relayouts cost frames while scrubbing
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def set_highlight(self, index: int | None) -> None:
        if index != self._highlight:
            self._highlight = index
            self.update()

    @property
    def highlight(self) -> int | None:
        return self._highlight

    def count(self) -> int:
        return len(self._images)

    def captions(self) -> list[str]:
        return list(self._captions)

    # ---- geometry -------------------------------------------------------------------------------
    def _caption_h(self) -> int:
        return QFontMetrics(self.font()).height() + 2 if any(self._captions) else 0

    def _layout(self, width: int) -> tuple[int, int, int]:
        """(columns, rows, cell side) for this width."""
        n = max(1, len(self._images))
        cols = max(1, min(n, (width + self.gap) // (self.min_cell + self.gap)))
        rows = math.ceil(n / cols)
        if self.max_rows is not None and rows > self.max_rows:
            rows = self.max_rows
        cols = math.ceil(n / rows)  # balanced rows: 9 frames in 2 rows are 5 + 4, not 8 + 1
        side = max(8, min(self.max_cell, (width - self.gap * (cols - 1)) // cols))
        if self._images:
            native = max(self._images[0].width(), self._images[0].height())
            if side >= 2 * native or side < 1.3 * native:
                side = max(side if side < native else native * (side // native), 8)
            # else: between 1.3× and 2× an integer scale would waste a third of the cell; draw
            # it nearest-neighbour at the cell's size (slightly uneven pixels, still sharp)
        return cols, rows, side

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        if not self._images:
            return QFontMetrics(self.font()).height() * 2 + 8
        _, rows, side = self._layout(width)
        return rows * (side + self._caption_h()) + (rows - 1) * self.gap

    def sizeHint(self) -> QSize:
        w = max(self.width(), 4 * (self.min_cell + self.gap))
        return QSize(w, self.heightForWidth(w))

    def minimumSizeHint(self) -> QSize:
        return QSize(self.min_cell, QFontMetrics(self.font()).height() * 2)

    def cell_rect(self, i: int) -> QRect:
        cols, rows, side = self._layout(self.width())
        ch = self._caption_h()
        used = cols * side + (cols - 1) * self.gap
        x0 = max(0, (self.width() - used) // 2)
        r, c = divmod(i, cols)
        return QRect(x0 + c * (side + self.gap), r * (side + ch + self.gap), side, side)

    def index_at(self, pos) -> int:
        for i in range(len(self._images)):
            if self.cell_rect(i).adjusted(0, 0, 0, self._caption_h()).contains(pos):
                return i
        return -1

    # ---- painting and mouse ------------------------------------------------------------------
    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        pal = self.palette()
        if not self._images:
            if self._placeholder:
                p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        ch = self._caption_h()
        fm = QFontMetrics(self.font())
        for i, img in enumerate(self._images):
            rect = self.cell_rect(i)
            if rect.top() > self.height():
                break
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, rect.width() < img.width())
            p.drawImage(rect, img)
            p.setPen(QColor(0, 0, 0, 60))
            p.drawRect(rect.adjusted(0, 0, -1, -1))
            if i == self._highlight:
                p.setPen(QPen(QColor("#d62728"), 3))
                p.drawRect(rect.adjusted(1, 1, -2, -2))
            if ch and i < len(self._captions):
                p.setPen(pal.color(QPalette.ColorRole.Text))
                text = fm.elidedText(self._captions[i], Qt.TextElideMode.ElideRight, rect.width() + self.gap)
                p.drawText(QRect(rect.left() - self.gap // 2, rect.bottom() + 1, rect.width() + self.gap, ch),
                           Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop, text)

    def mouseMoveEvent(self, ev) -> None:
        i = self.index_at(ev.position().toPoint())
        self.setToolTip(self._tips[i] if 0 <= i < len(self._tips) else "")
        self.setCursor(Qt.CursorShape.PointingHandCursor if i >= 0 else Qt.CursorShape.ArrowCursor)

    def mousePressEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            i = self.index_at(ev.position().toPoint())
            if i >= 0:
                self.clicked.emit(i)
