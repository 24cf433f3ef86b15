"""The keyframe list of the Export panel: key latents with a thumbnail and a label each, in play
order. Keys come from seeds, from the Manifold panel's current latent and bookmarks, or from a
session file; the panel decodes thumbnails in a worker and hands them to `set_thumbnails`."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem

from ..widgets.image_grid import thumbnail_pixmap


class KeyList(QListWidget):
    changed = Signal()  # keys added, removed, reordered or relabelled

    def __init__(self, parent=None):
        super().__init__(parent)
        self.keys: list[np.ndarray] = []
        self.labels: list[str] = []
        self.setViewMode(QListWidget.ViewMode.IconMode)
        self.setFlow(QListWidget.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.setMovement(QListWidget.Movement.Static)
        self.setIconSize(QSize(52, 52))
        self.setGridSize(QSize(72, 80))
        self.setSpacing(2)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setFixedHeight(92)  # one row on show; more keys scroll

    def add(self, z, label: str) -> None:
        self.keys.append(np.asarray(z, np.float32).reshape(-1))
        self.labels.append(label)
        self._rebuild()

    def set_keys(self, keys, labels) -> None:
        self.keys = [np.asarray(k, np.float32).reshape(-1) for k in keys]
        self.labels = list(labels) + [""] * (len(self.keys) - len(labels))
        self._rebuild()

    def clear_keys(self) -> None:
        self.set_keys([], [])

    def remove_selected(self) -> None:
        rows = sorted({self.row(i) for i in self.selectedItems()}, reverse=True)
        for r in rows:
            del self.keys[r], self.labels[r]
        self._rebuild()

    def move_selected(self, step: int) -> None:
        r = self.currentRow()
        t = r + step
        if r < 0 or not 0 <= t < len(self.keys):
            return
        self.keys[r], self.keys[t] = self.keys[t], self.keys[r]
        self.labels[r], self.labels[t] = self.labels[t], self.labels[r]
        self._rebuild()
        self.setCurrentRow(t)

    def set_thumbnails(self, images) -> None:
        """uint8 (N, H, W, C), one per key (ignored if the keys changed meanwhile)."""
        if len(images) != self.count():
            return
        for i, img in enumerate(images):
            self.item(i).setIcon(QIcon(thumbnail_pixmap(img, 52)))

    def _rebuild(self) -> None:
        self.clear()
        for i, lab in enumerate(self.labels):
            item = QListWidgetItem(lab or f"key {i + 1}")
            item.setToolTip(f"key {i + 1}: {lab or 'no label'} — |z| = {float(np.linalg.norm(self.keys[i])):.2f}")
            self.addItem(item)
        self.changed.emit()
