"""Widgets of the Codebook panel: the tile grid of all codes and the token-map canvas."""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from explorer.widgets.image_grid import to_qimage

DEAD = QColor(220, 40, 40)
SELECTED = QColor(255, 200, 0)
BRUSH = QColor(0, 200, 255)


class CodeTiles(QWidget):
    """Every code as a small tile, in `order`; dead codes are dimmed and crossed out in red.
    Left click selects a code (`clicked`); the selected code has a yellow frame, the brush code
    of the token editor a blue one."""

    clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._tiles: list[QImage] = []
        self._order: list[int] = []
        self._dead = np.zeros(0, bool)
        self._tips: list[str] = []
        self.selected: int | None = None
        self.brush: int | None = None
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(200, 200)

    def set_tiles(self, tiles: np.ndarray, dead: np.ndarray, tips: list[str]) -> None:
        self._tiles = [to_qimage(t) for t in tiles]
        self._dead = np.asarray(dead, bool)
        self._tips = list(tips)
        if len(self._order) != len(self._tiles):
            self._order = list(range(len(self._tiles)))
        self.update()

    def set_order(self, order) -> None:
        self._order = [int(c) for c in order]
        self.update()

    def order(self) -> list[int]:
        return list(self._order)

    def set_marks(self, selected: int | None, brush: int | None) -> None:
        self.selected, self.brush = selected, brush
        self.update()

    def clear(self) -> None:
        self._tiles, self._order, self._tips = [], [], []
        self.update()

    def _geometry(self) -> tuple[int, int, int, int]:
        """(columns, side, x0, y0) of the square tiles that fill the widget."""
        n = max(1, len(self._order))
        w, h = self.width(), self.height()
        best = (1, 1)
        for cols in range(1, n + 1):
            rows = math.ceil(n / cols)
            side = min(w // cols, h // rows)
            if side > best[1] or (side == best[1] and cols < best[0]):
                best = (cols, side)
        cols, side = best
        rows = math.ceil(n / cols)
        return cols, side, (w - cols * side) // 2, (h - rows * side) // 2

    def tile_rect(self, pos_in_order: int) -> QRect:
        cols, side, x0, y0 = self._geometry()
        r, c = divmod(pos_in_order, cols)
        return QRect(x0 + c * side, y0 + r * side, side, side)

    def code_at(self, pt: QPoint) -> int:
        cols, side, x0, y0 = self._geometry()
        if side <= 0 or pt.x() < x0 or pt.y() < y0:
            return -1
        c, r = (pt.x() - x0) // side, (pt.y() - y0) // side
        i = r * cols + c
        return self._order[i] if c < cols and 0 <= i < len(self._order) else -1

    def rect_of_code(self, code: int) -> QRect | None:
        return self.tile_rect(self._order.index(code)) if code in self._order else None

    def paintEvent(self, _e) -> None:
        p = QPainter(self)
        if not self._tiles:
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       "Open a VQ-VAE model to see its codebook.")
            return
        gap = 1 if self._geometry()[1] >= 10 else 0
        for pos, code in enumerate(self._order):
            r = self.tile_rect(pos).adjusted(0, 0, -gap, -gap)
            p.drawImage(r, self._tiles[code])
            if code < len(self._dead) and self._dead[code]:
                p.fillRect(r, QColor(0, 0, 0, 110))
                p.setPen(QPen(DEAD, max(1, r.width() // 12)))
                p.drawLine(r.topLeft(), r.bottomRight())
                p.drawLine(r.topRight(), r.bottomLeft())
        for code, colour in ((self.brush, BRUSH), (self.selected, SELECTED)):
            rect = self.rect_of_code(code) if code is not None else None
            if rect is not None:
                p.setPen(QPen(colour, 2))
                p.drawRect(rect.adjusted(1, 1, -2, -2))

    def mousePressEvent(self, e) -> None:
        code = self.code_at(e.position().toPoint())
        if code >= 0 and e.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit(code)

    def mouseMoveEvent(self, e) -> None:
        code = self.code_at(e.position().toPoint())
        if 0 <= code < len(self._tips):
            QToolTip.showText(e.globalPosition().toPoint(), self._tips[code], self)

    def sizeHint(self) -> QSize:
        return QSize(480, 480)


class TokenCanvas(QWidget):
    """An image with its code grid as a coloured overlay. Left-drag paints the brush code into
    cells (`painted(i, j)`), right click picks the code under the cursor (`picked(code)`)."""

    painted = Signal(int, int)
    picked = Signal(int)
    stroke_finished = Signal()

    def __init__(self, parent=None, interactive: bool = True):
        super().__init__(parent)
        self._image: QImage | None = None
        self.grid: np.ndarray | None = None
        self.mask: np.ndarray | None = None  # cells painted since the last reset
        self.colours: np.ndarray | None = None
        self.opacity = 0.45
        self.interactive = interactive
        self._last_cell = None
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(160, 160)

    def set_content(self, image: np.ndarray | None, grid: np.ndarray | None, mask: np.ndarray | None = None) -> None:
        self._image = None if image is None else to_qimage(image)
        self.grid = None if grid is None else np.asarray(grid)
        self.mask = mask
        self.update()

    def set_colours(self, colours: np.ndarray | None) -> None:
        self.colours = colours
        self.update()

    def set_opacity(self, value: float) -> None:
        self.opacity = float(value)
        self.update()

    def _rect(self) -> QRect:
        if self._image is None:
            return QRect()
        iw, ih = self._image.width(), self._image.height()
        # Fractional scales too (nearest neighbour): the grid is what matters here, and the
        # canvas then matches the decoded image beside it in size.
        s = min(self.width() / iw, self.height() / ih)
        w, h = int(iw * s), int(ih * s)
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def cell_at(self, pt: QPoint):
        r = self._rect()
        if self.grid is None or r.isEmpty() or not r.contains(pt):
            return None
        gh, gw = self.grid.shape
        i = min(gh - 1, (pt.y() - r.top()) * gh // r.height())
        j = min(gw - 1, (pt.x() - r.left()) * gw // r.width())
        return int(i), int(j)

    def paintEvent(self, _e) -> None:
        p = QPainter(self)
        if self._image is None:
            p.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, "No image yet.")
            return
        r = self._rect()
        p.drawImage(r, self._image)
        if self.grid is None:
            return
        gh, gw = self.grid.shape
        xs = [r.left() + r.width() * j // gw for j in range(gw + 1)]
        ys = [r.top() + r.height() * i // gh for i in range(gh + 1)]
        if self.colours is not None and self.opacity > 0:
            for i in range(gh):
                for j in range(gw):
                    c = self.colours[int(self.grid[i, j]) % len(self.colours)]
                    p.fillRect(QRect(xs[j], ys[i], xs[j + 1] - xs[j], ys[i + 1] - ys[i]),
                               QColor(int(c[0]), int(c[1]), int(c[2]), int(255 * self.opacity)))
        p.setPen(QPen(QColor(255, 255, 255, 70), 1))
        for x in xs:
            p.drawLine(x, r.top(), x, r.bottom())
        for y in ys:
            p.drawLine(r.left(), y, r.right(), y)
        if self.mask is not None and self.mask.any():
            p.setPen(QPen(BRUSH, 2))
            for i, j in np.argwhere(self.mask):
                p.drawRect(QRect(xs[j] + 1, ys[i] + 1, xs[j + 1] - xs[j] - 2, ys[i + 1] - ys[i] - 2))

    def mousePressEvent(self, e) -> None:
        cell = self.cell_at(e.position().toPoint())
        if cell is None or not self.interactive:
            return
        if e.button() == Qt.MouseButton.RightButton:
            self.picked.emit(int(self.grid[cell]))
        elif e.button() == Qt.MouseButton.LeftButton:
            self._last_cell = cell
            self.painted.emit(*cell)

    def mouseMoveEvent(self, e) -> None:
        cell = self.cell_at(e.position().toPoint())
        if cell is not None and self.grid is not None:
            self.setToolTip(f"cell {cell}: code {int(self.grid[cell])}")
        if self.interactive and e.buttons() & Qt.MouseButton.LeftButton and cell is not None and cell != self._last_cell:
            self._last_cell = cell
            self.painted.emit(*cell)

    def mouseReleaseEvent(self, e) -> None:
        if self._last_cell is not None:
            self._last_cell = None
            self.stroke_finished.emit()
