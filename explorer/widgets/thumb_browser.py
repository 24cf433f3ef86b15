"""A scrolling grid of data thumbnails to pick images from.

The model holds the whole image array and the indices currently shown (a filter's result);
pixmaps are made lazily, only for the thumbnails that are painted, and kept in a small cache, so
a set of 10,000 images opens at once. Clicking (or Enter on) a thumbnail emits `picked(index)`
with the image's index in the data set.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QAbstractListModel, QEvent, QModelIndex, QSize, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QListView

from explorer.widgets.image_grid import thumbnail_pixmap

CACHE = 800  # pixmaps kept


class ThumbModel(QAbstractListModel):
    def __init__(self, parent=None, side: int = 64):
        super().__init__(parent)
        self.side = side
        self.images: np.ndarray | None = None
        self.indices = np.zeros(0, np.int64)
        self.caption = lambda i: f"#{i}"
        self._pixmaps: OrderedDict[int, object] = OrderedDict()

    def set_images(self, images, caption=None) -> None:
        self.beginResetModel()
        self.images = images
        self.indices = np.arange(0 if images is None else len(images))
        self.caption = caption or (lambda i: f"#{i}")
        self._pixmaps.clear()
        self.endResetModel()

    def set_indices(self, indices) -> None:
        self.beginResetModel()
        self.indices = np.asarray(indices, np.int64)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.indices)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.images is None:
            return None
        i = int(self.indices[index.row()])
        if role == Qt.ItemDataRole.DecorationRole:
            pm = self._pixmaps.get(i)
            if pm is None:
                pm = thumbnail_pixmap(self.images[i], self.side)
                self._pixmaps[i] = pm
                if len(self._pixmaps) > CACHE:
                    self._pixmaps.popitem(last=False)
            else:
                self._pixmaps.move_to_end(i)
            return pm
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.caption(i)
        if role == Qt.ItemDataRole.UserRole:
            return i
        return None


class ThumbBrowser(QListView):
    picked = Signal(int)  # index into the data set

    def __init__(self, parent=None, side: int = 64):
        super().__init__(parent)
        self.side = side
        self.thumbs = ThumbModel(self, side)
        self.setModel(self.thumbs)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setIconSize(QSize(side, side))
        self.setGridSize(QSize(side + 6, side + 6))
        self.setUniformItemSizes(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(False)
        self.setSpacing(0)
        # A steady viewport width, so the columns computed on resize stay right after a filter.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.clicked.connect(self._emit)
        self.activated.connect(self._emit)

    def viewportEvent(self, event) -> bool:
        if event.type() == QEvent.Type.Resize:
            # Spread the columns over the whole width instead of leaving a gap on the right.
            w = event.size().width() - 4  # the icon layout wraps a row that fills the width exactly
            cols = max(1, w // (self.side + 6))
            self.setGridSize(QSize(max(self.side + 6, w // cols), self.side + 6))
        return super().viewportEvent(event)

    def set_images(self, images, caption=None) -> None:
        self.thumbs.set_images(images, caption)

    def set_indices(self, indices) -> None:
        self.thumbs.set_indices(indices)

    def shown(self) -> np.ndarray:
        return self.thumbs.indices

    def pick_row(self, row: int) -> None:
        """Select and emit the thumbnail at `row` of the filtered view (tests, keyboard)."""
        idx = self.thumbs.index(row)
        self.setCurrentIndex(idx)
        self._emit(idx)

    def _emit(self, index) -> None:
        if index.isValid():
            self.picked.emit(int(self.thumbs.indices[index.row()]))
