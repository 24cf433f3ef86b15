"""The latent map: a pyqtgraph scatter of the encoded data with a draggable cursor, a path,
picked points, box/lasso selection, an atlas image underneath and hover previews.

What the mouse does depends on `mode`:

- "scrub": left-drag moves the cursor (`cursor_dragged(x, y, phase)`, phase start/move/end);
  a click emits `clicked(x, y, data_index)` (−1 when no point is under the mouse).
- "pick": a click adds a point (`clicked` too; the panel decides), a drag scrubs.
- "box" / "lasso": left-drag draws a rectangle / free polygon; `selected(indices)` on release.

Shift+left-drag or middle-drag pans, the wheel zooms, right-click emits `context_requested`.
The view never computes latents: it reports map coordinates and the panel does the rest in
workers. `drag_path(points)` drives the cursor through the same code as the mouse (tests,
scripted demos).

Hovering shows the data point's image in a small popup (`set_hover_provider`); the lookup is a
k-d tree over the drawn points, at most every HOVER_MS.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout

from explorer.widgets.image_grid import thumbnail_pixmap

HOVER_MS = 40
HOVER_RADIUS_PX = 7
POINT_PX = 5
MODES = ("scrub", "pick", "box", "lasso")
CURSOR_COLOUR = "#d62728"


class _ViewBox(pg.ViewBox):
    """Left-drag and clicks go to the map's tools; panning/zooming stay pyqtgraph's."""

    def __init__(self, owner):
        super().__init__(lockAspect=True, enableMenu=False)
        self.owner = owner

    def mouseDragEvent(self, ev, axis=None):
        panning = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if ev.button() == Qt.MouseButton.LeftButton and not panning and axis is None:
            ev.accept()
            if ev.isStart():
                p = self.mapSceneToView(ev.buttonDownScenePos(Qt.MouseButton.LeftButton))
                self.owner._drag("start", p.x(), p.y())
            p = self.mapSceneToView(ev.scenePos())
            self.owner._drag("end" if ev.isFinish() else "move", p.x(), p.y())
        elif ev.button() == Qt.MouseButton.RightButton:
            ev.ignore()  # no right-drag zoom: right-click is the context menu
        else:
            super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):
        p = self.mapSceneToView(ev.scenePos())
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.owner._click(p.x(), p.y())
        elif ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            sp = ev.screenPos()
            self.owner.context_requested.emit(p.x(), p.y(), QPointF(sp.x(), sp.y()))
        else:
            super().mouseClickEvent(ev)


class _HoverPopup(QFrame):
    def __init__(self, parent):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setStyleSheet("QFrame { background: rgba(255,255,255,235); border: 1px solid #888; border-radius: 3px; }"
                           "QLabel { border: none; background: transparent; }")
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text = QLabel()
        self.text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.text.setWordWrap(True)
        self.text.setMaximumWidth(180)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(2)
        lay.addWidget(self.image)
        lay.addWidget(self.text)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()


class LatentMap(pg.PlotWidget):
    cursor_dragged = Signal(float, float, str)  # x, y, phase: start | move | end
    clicked = Signal(float, float, int)  # x, y, index of the data point under the mouse (−1: none)
    selected = Signal(object)  # np.ndarray of data indices (empty: cleared)
    context_requested = Signal(float, float, object)  # x, y, global QPointF
    hovered = Signal(int)  # data index under the mouse, −1 when none

    def __init__(self, parent=None):
        self.vb = _ViewBox(self)
        super().__init__(parent, viewBox=self.vb)
        self.mode = "scrub"
        self.dragging = False
        self.coords = np.zeros((0, 2))  # drawn points' map coordinates
        self.index = np.zeros(0, np.int64)  # data index of each drawn point
        self._tree = None
        self._visible = None
        self._hover_provider = None
        self._hover_scene_pos = None
        self._hover_index = -1
        self._sel_start = None
        self._lasso: list[tuple[float, float]] = []
        self.setMinimumSize(220, 220)
        pi = self.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.hideButtons()
        pi.setMenuEnabled(False)
        for name in ("left", "bottom"):
            pi.getAxis(name).setTextPen("#333")
            pi.getAxis(name).enableAutoSIPrefix(False)  # "(x0.001)" beside latent units only confuses

        self.atlas = pg.ImageItem(axisOrder="row-major")
        self.atlas.setZValue(-10)
        self.atlas.hide()
        self.scatter = pg.ScatterPlotItem(pxMode=True, size=POINT_PX, pen=None, symbol="o", hoverable=False)
        self.scatter.setZValue(0)
        # Render the points once per view change, not on every cursor move (8,000 points cost
        # ~4 ms per repaint in the software rasteriser; the cached pixmap is a blit).
        self.scatter.setCacheMode(pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.selection = pg.ScatterPlotItem(pxMode=True, size=POINT_PX + 4, symbol="o", brush=None,
                                            pen=pg.mkPen("#111", width=1.2))
        self.selection.setZValue(2)
        self.trace = pg.PlotCurveItem(pen=pg.mkPen("#222", width=2.5))
        self.trace.setZValue(4)
        self.trace_halo = pg.PlotCurveItem(pen=pg.mkPen((255, 255, 255, 200), width=5.5))
        self.trace_halo.setZValue(3.9)
        self.knots = pg.ScatterPlotItem(pxMode=True, size=13, symbol="s", brush=pg.mkBrush("#ffd84d"),
                                        pen=pg.mkPen("#222", width=1.5))
        self.knots.setZValue(5)
        self._knot_labels: list[pg.TextItem] = []
        self.tool = pg.PlotCurveItem(pen=pg.mkPen("#111", width=1.5, style=Qt.PenStyle.DashLine))
        self.tool.setZValue(6)
        self.hover_ring = pg.ScatterPlotItem(pxMode=True, size=12, symbol="o", brush=None, pen=pg.mkPen("#000", width=2))
        self.hover_ring.setZValue(7)
        self.cursor = pg.ScatterPlotItem(pxMode=True)
        self.cursor.setZValue(10)
        for item in (self.atlas, self.scatter, self.selection, self.trace_halo, self.trace, self.knots, self.tool,
                     self.hover_ring, self.cursor):
            self.addItem(item)
        self.cursor_pos: tuple[float, float] | None = None
        self.cursor_on_map = True
        self._cursor_style = None

        self.popup = _HoverPopup(self)
        self._hover_timer = QTimer(self)
        self._hover_timer.setSingleShot(True)
        self._hover_timer.setInterval(HOVER_MS)
        self._hover_timer.timeout.connect(self._update_hover)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)

    # ---- content ----------------------------------------------------------------------------------------
    def set_points(self, coords: np.ndarray, index: np.ndarray, tree=None) -> None:
        """The drawn points (map coordinates) and their data indices; colours come next."""
        self.coords = np.asarray(coords, dtype=np.float64)
        self.index = np.asarray(index, dtype=np.int64)
        self._visible = None
        if tree is None and len(self.coords):
            from scipy.spatial import cKDTree

            tree = cKDTree(self.coords)
        self._tree = tree
        self.scatter.setData(pos=self.coords, size=POINT_PX, pen=None, brush=pg.mkBrush(NEUTRAL_BRUSH))
        self.set_selection(np.zeros(0, np.int64), emit=False)
        self._hide_hover()

    def set_colours(self, codes: np.ndarray, colours: list, alpha: int = 200) -> None:
        """One palette index per drawn point (see map_colours)."""
        palette = np.empty(len(colours), dtype=object)
        for i, c in enumerate(colours):
            palette[i] = pg.mkBrush(QColor(*c, alpha))
        self.scatter.setBrush(palette[np.asarray(codes, dtype=np.int64)])

    def set_visible_points(self, mask: np.ndarray | None) -> None:
        """Hide points (legend toggles); None shows all."""
        self._visible = None if mask is None else np.asarray(mask, bool)
        self.scatter.setPointsVisible(np.ones(len(self.coords), bool) if mask is None else self._visible)

    def clear_points(self) -> None:
        self.coords = np.zeros((0, 2))
        self.index = np.zeros(0, np.int64)
        self._tree = None
        self.scatter.clear()
        self.selection.clear()
        self.set_path(None)
        self.set_knots(None)
        self.clear_atlas()
        self.set_cursor(None)
        self._hide_hover()

    def fit(self, include=None) -> None:
        """Frame the points (0.5th–99.5th percentile, so outliers do not squeeze the map) and any
        `include` points (M, 2) that must be seen."""
        if not len(self.coords):
            return
        lo = np.percentile(self.coords, 0.5, axis=0)
        hi = np.percentile(self.coords, 99.5, axis=0)
        if include is not None and len(include):
            lo = np.minimum(lo, np.min(include, axis=0))
            hi = np.maximum(hi, np.max(include, axis=0))
        pad = 0.06 * np.maximum(hi - lo, 1e-9)
        self.vb.setRange(xRange=(lo[0] - pad[0], hi[0] + pad[0]), yRange=(lo[1] - pad[1], hi[1] + pad[1]), padding=0)

    def set_axis_titles(self, x: str, y: str) -> None:
        pi = self.getPlotItem()
        pi.setLabel("bottom", x)
        pi.setLabel("left", y)

    def set_cursor(self, pos: tuple[float, float] | None, on_map: bool = True) -> None:
        """The current latent's place on the map; `on_map=False` draws it hollow (the latent lies
        off the map's plane and this is its projection)."""
        self.cursor_pos = None if pos is None else (float(pos[0]), float(pos[1]))
        self.cursor_on_map = on_map
        if pos is None:
            self.cursor.clear()
            self._cursor_style = None
            return
        if self._cursor_style != on_map:  # rebuild the symbol only when its style changes
            self._cursor_style = on_map
            fill = pg.mkBrush(214, 39, 40, 70) if on_map else None
            style = Qt.PenStyle.SolidLine if on_map else Qt.PenStyle.DashLine
            self.cursor.setData([
                {"pos": (0, 0), "size": 24, "symbol": "o", "pen": pg.mkPen("w", width=5), "brush": None},
                {"pos": (0, 0), "size": 24, "symbol": "o", "pen": pg.mkPen(CURSOR_COLOUR, width=2.5, style=style),
                 "brush": fill},
                {"pos": (0, 0), "size": 12, "symbol": "+", "pen": pg.mkPen(CURSOR_COLOUR, width=2), "brush": None},
            ])
        self.cursor.setPos(*self.cursor_pos)  # moving the item is cheaper than new data

    def set_path(self, trace: np.ndarray | None) -> None:
        if trace is None or len(trace) < 2:
            self.trace.setData([], [])
            self.trace_halo.setData([], [])
            return
        t = np.asarray(trace, dtype=np.float64)
        self.trace.setData(t[:, 0], t[:, 1])
        self.trace_halo.setData(t[:, 0], t[:, 1])

    def set_knots(self, points: np.ndarray | None) -> None:
        for item in self._knot_labels:
            self.removeItem(item)
        self._knot_labels = []
        if points is None or not len(points):
            self.knots.clear()
            return
        p = np.asarray(points, dtype=np.float64)
        self.knots.setData(pos=p)
        for i, (x, y) in enumerate(p):
            label = pg.TextItem(str(i + 1), color="#111", anchor=(-0.35, 1.1))
            label.setPos(x, y)
            label.setZValue(6)
            self.addItem(label)
            self._knot_labels.append(label)

    def set_selection(self, indices: np.ndarray, emit: bool = True) -> None:
        """Outline these data points (indices into the data set, not the drawn points)."""
        indices = np.asarray(indices, dtype=np.int64)
        rows = np.flatnonzero(np.isin(self.index, indices)) if len(indices) else np.zeros(0, np.int64)
        if len(rows):
            self.selection.setData(pos=self.coords[rows])
        else:
            self.selection.clear()
        if emit:
            self.selected.emit(indices)

    # ---- atlas -------------------------------------------------------------------------------------------
    def set_atlas(self, image: np.ndarray, rect: tuple[float, float, float, float]) -> None:
        """A uint8 (H, W[, C]) image whose row 0 is the top of `rect` = (x0, y0, w, h)."""
        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        self.atlas.setImage(img[::-1], autoLevels=False, levels=(0, 255))
        self.atlas.setRect(QRectF(*rect))
        self.atlas.show()

    def clear_atlas(self) -> None:
        self.atlas.clear()
        self.atlas.hide()

    def set_points_style(self, opacity: float) -> None:
        self.scatter.setOpacity(opacity)
        self.scatter.setVisible(opacity > 0)

    def view_rect(self) -> tuple[float, float, float, float]:
        r = self.vb.viewRect()
        return r.x(), r.y(), r.width(), r.height()

    # ---- tools -------------------------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown map mode '{mode}'")
        self.mode = mode
        self.tool.setData([], [])
        cursor = Qt.CursorShape.CrossCursor if mode in ("box", "lasso", "pick") else Qt.CursorShape.ArrowCursor
        self.viewport().setCursor(cursor)

    def data_index_at(self, x: float, y: float, radius_px: float = HOVER_RADIUS_PX) -> int:
        """The data index of the drawn point nearest (x, y) within `radius_px` pixels, or −1."""
        if self._tree is None or not len(self.coords):
            return -1
        px, py = self.vb.viewPixelSize()
        scale = max(px, py, 1e-300)
        d, row = self._tree.query([x, y], k=1, distance_upper_bound=radius_px * scale)
        if not np.isfinite(d) or row >= len(self.coords):
            return -1
        if self._visible is not None and not self._visible[row]:
            return -1
        return int(self.index[row])

    def point_of(self, data_index: int) -> tuple[float, float] | None:
        rows = np.flatnonzero(self.index == data_index)
        return None if not len(rows) else tuple(self.coords[rows[0]])

    def drag_path(self, points) -> None:
        """Drive a left-drag through map points, exactly as the mouse would (first = press)."""
        pts = [tuple(map(float, p)) for p in points]
        if not pts:
            return
        self._drag("start", *pts[0])
        for p in pts:
            self._drag("move", *p)
        self._drag("end", *pts[-1])

    def _drag(self, phase: str, x: float, y: float) -> None:
        if phase == "start":
            self.dragging = True
            self._hide_hover()
        if self.mode in ("scrub", "pick"):
            self.cursor_dragged.emit(x, y, phase)
        elif self.mode == "box":
            if phase == "start":
                self._sel_start = (x, y)
            x0, y0 = self._sel_start or (x, y)
            self.tool.setData([x0, x, x, x0, x0], [y0, y0, y, y, y0])
            if phase == "end":
                self._finish_selection([(x0, y0), (x, y0), (x, y), (x0, y)])
        elif self.mode == "lasso":
            if phase == "start":
                self._lasso = []
            px = max(self.vb.viewPixelSize())
            last = self._lasso[-1] if self._lasso else None
            # A vertex every few pixels: a smooth outline, and the selection test stays cheap.
            if last is None or phase == "end" or np.hypot(x - last[0], y - last[1]) >= 3 * px:
                self._lasso.append((x, y))
            xs, ys = zip(*(self._lasso + [self._lasso[0]]))
            self.tool.setData(list(xs), list(ys))
            if phase == "end":
                self._finish_selection(self._lasso)
        if phase == "end":
            self.dragging = False

    def _finish_selection(self, polygon) -> None:
        from engines.latent.projection import select_polygon

        self.tool.setData([], [])
        poly = np.asarray(polygon, dtype=np.float64)
        if len(poly) < 3 or not len(self.coords) or np.ptp(poly[:, 0]) == 0 or np.ptp(poly[:, 1]) == 0:
            self.set_selection(np.zeros(0, np.int64))
            return
        rows = select_polygon(self.coords, poly)
        if self._visible is not None:
            rows = rows[self._visible[rows]]
        self.set_selection(self.index[rows])

    def _click(self, x: float, y: float) -> None:
        self.clicked.emit(x, y, self.data_index_at(x, y))

    # ---- hover --------------------------------------------------------------------------------------------
    def set_hover_provider(self, fn) -> None:
        """fn(data_index) → (uint8 image, caption), called on the GUI thread (must be cheap)."""
        self._hover_provider = fn

    def _on_mouse_moved(self, scene_pos) -> None:
        self._hover_scene_pos = scene_pos
        if not self._hover_timer.isActive():
            self._hover_timer.start()

    def _update_hover(self) -> None:
        if self._hover_scene_pos is None or self.dragging:
            self._hide_hover()
            return
        p = self.vb.mapSceneToView(self._hover_scene_pos)
        idx = self.data_index_at(p.x(), p.y())
        if idx == self._hover_index:
            self._place_popup()
            return
        self._hover_index = idx
        self.hovered.emit(idx)
        if idx < 0:
            self._hide_hover(keep_index=True)
            return
        self.hover_ring.setData(pos=[self.point_of(idx)])
        if self._hover_provider is not None:
            image, caption = self._hover_provider(idx)
            self.popup.image.setPixmap(thumbnail_pixmap(image, 96))
            self.popup.text.setText(caption)
            self.popup.adjustSize()
            self._place_popup()
            self.popup.show()
            self.popup.raise_()

    def mark(self, data_index: int) -> None:
        """Ring the point of `data_index` without a popup (a linked view's hover); −1 clears it."""
        pos = self.point_of(data_index) if data_index >= 0 else None
        if pos is None:
            self.hover_ring.clear()
        else:
            self.hover_ring.setData(pos=[pos])

    def _place_popup(self) -> None:
        if self._hover_scene_pos is None or not self.popup.isVisible() and self._hover_index < 0:
            return
        vp = self.mapFromScene(self._hover_scene_pos)
        w, h = self.popup.width(), self.popup.height()
        x, y = vp.x() + 16, vp.y() + 16
        if x + w > self.width():
            x = vp.x() - w - 16
        if y + h > self.height():
            y = vp.y() - h - 16
        self.popup.move(max(0, x), max(0, y))

    def _hide_hover(self, keep_index: bool = False) -> None:
        if not keep_index:
            self._hover_index = -1
        self.popup.hide()
        self.hover_ring.clear()

    def leaveEvent(self, ev) -> None:
        self._hide_hover()
        super().leaveEvent(ev)


NEUTRAL_BRUSH = (91, 107, 127, 200)
