"""The keyframe list of the Export panel: key latents with a thumbnail and a label each, in play
order. Keys come from seeds, from the Manifold panel's current latent and bookmarks, or from a
session file; the panel decodes thumbnails in a worker and hands them to `set_thumbnails`."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QFileDialog, QListWidget, QListWidgetItem

from explorer.widgets.image_grid import thumbnail_pixmap
from explorer.workers import run_in_thread


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


class KeySources:
    """Where the Export panel's keys come from (mixed into the panel: uses `engine`, `keys`,
    `seed`, `ctx` and the window's other panels)."""

    def _other(self, name: str):
        win = self.window()
        return getattr(win, "panels", {}).get(name)

    def add_seed_key(self) -> None:
        from engines.export.timeline import prior_latents

        if self.engine is None:
            return
        s = self.seed.value()
        self.keys.add(prior_latents(self.engine, 1, s)[0], f"seed {s}")
        self.seed.setValue(s + 1)

    def add_map_key(self) -> None:
        m = self._other("manifold")
        z = getattr(m, "z", None)
        if z is None:
            self.ctx.message("Pick a latent on the Manifold panel's map first.")
            return
        self.keys.add(np.asarray(z).reshape(-1), "map")

    def add_bookmark_keys(self) -> None:
        m = self._other("manifold")
        md = getattr(m, "md", None)
        marks = list(md.bookmarks) if md is not None else []
        if not marks:
            self.ctx.message("The Manifold panel has no bookmarks for this model.")
            return
        for b in marks:
            self.keys.add(b.latent, b.name)

    def add_image_dialog(self) -> None:
        from explorer.panels.arithmetic.base import IMAGE_FILTER

        paths, _ = QFileDialog.getOpenFileNames(self, "Images to encode as keys", self.ctx.settings.last_open_dir,
                                                IMAGE_FILTER)
        for p in paths:
            self.add_image_key(p)

    def add_image_key(self, path: str):
        """Encode an image file in a worker; its latent joins the keys when done."""
        from explorer.panels.arithmetic.jobs import base_from_file

        engine = self.engine
        if engine is None or "encode" not in engine.capabilities:
            return None

        def done(base):
            if engine is self.engine:
                self.keys.add(base.z, os.path.basename(path))

        return run_in_thread(base_from_file, engine, path, on_result=done,
                             on_error=lambda e: self.ctx.session.report(e, "Cannot use this image"))

