"""The keyframe list of the Export panel and where its keys come from.

The keys are the Workspace's (`ws.keys`): `KeyList` shows them (following `keys_changed`) and
edits them only through `ws.remove_key / move_key / set_keys`, so keys added anywhere (the
Manifold map, a session) appear here. `KeySources` adds keys from a seed, the current latent, the
bookmarks or an image file (encoded in a worker) — through the Workspace too. The panel decodes
thumbnails in a worker and hands them to `KeyList.set_thumbnails`."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QAbstractItemView, QFileDialog, QListWidget, QListWidgetItem

from explorer.widgets.image_grid import thumbnail_pixmap
from explorer.workers import run_in_thread

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff);;All files (*)"


class KeyList(QListWidget):
    changed = Signal()  # the Workspace's keys were added, removed, reordered or relabelled

    def __init__(self, parent=None):
        super().__init__(parent)
        self.ws = None
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

    def set_workspace(self, ws) -> None:
        """Show `ws.keys` (None: no model, no keys)."""
        if self.ws is not None:
            try:
                self.ws.keys_changed.disconnect(self._rebuild)
            except (RuntimeError, TypeError):
                pass
        self.ws = ws
        if ws is not None:
            ws.keys_changed.connect(self._rebuild)
        self._rebuild()

    # ---- what is shown (read from the Workspace) -------------------------------------------------------
    @property
    def keys(self) -> list[np.ndarray]:
        return [k.latent for k in self.ws.keys] if self.ws is not None else []

    @property
    def labels(self) -> list[str]:
        return [k.label for k in self.ws.keys] if self.ws is not None else []

    # ---- edits (through the Workspace) -----------------------------------------------------------------
    def clear_keys(self) -> None:
        if self.ws is not None:
            self.ws.set_keys([], [])

    def remove_selected(self) -> None:
        if self.ws is None:
            return
        rows = {self.row(i) for i in self.selectedItems()}
        if rows:
            keep = [k for i, k in enumerate(self.ws.keys) if i not in rows]
            self.ws.set_keys([k.latent for k in keep], [k.label for k in keep])

    def move_selected(self, step: int) -> None:
        r = self.currentRow()
        t = r + step
        if self.ws is None or r < 0 or not 0 <= t < len(self.ws.keys):
            return
        self.ws.move_key(r, t)
        self.setCurrentRow(t)

    def set_thumbnails(self, images) -> None:
        """uint8 (N, H, W, C), one per key (ignored if the keys changed meanwhile)."""
        if len(images) != self.count():
            return
        for i, img in enumerate(images):
            self.item(i).setIcon(QIcon(thumbnail_pixmap(img, 52)))

    def _rebuild(self) -> None:
        self.clear()
        for i, (z, lab) in enumerate(zip(self.keys, self.labels)):
            item = QListWidgetItem(lab or f"key {i + 1}")
            item.setToolTip(f"key {i + 1}: {lab or 'no label'} — |z| = {float(np.linalg.norm(z)):.2f}")
            self.addItem(item)
        self.changed.emit()


class KeySources:
    """Where new keys come from, all added through the Workspace of the loaded model: the prior
    latent of a seed (`seed`, a QSpinBox, moves on), the current latent, the bookmarks, or image
    files encoded in a worker. `parent` is the widget dialogs open over."""

    def __init__(self, ctx, seed, parent):
        self.ctx, self.seed, self.parent = ctx, seed, parent

    @property
    def ws(self):
        return self.ctx.workspace

    def add_seed_key(self) -> None:
        from engines.export.timeline import prior_latents

        ws = self.ws
        if ws is None:
            return
        s = self.seed.value()
        ws.add_key(prior_latents(ws.engine, 1, s)[0], f"seed {s}")
        self.seed.setValue(s + 1)

    def add_map_key(self) -> None:
        ws = self.ws
        if ws is None or ws.current is None:
            self.ctx.message("Pick a latent first (on the Manifold panel's map, or in Arithmetic).")
            return
        ws.add_key(ws.current, ws.current_label or "map")

    def add_bookmark_keys(self) -> None:
        ws = self.ws
        if ws is None:
            return
        ws.ensure_bookmarks()
        marks = list(ws.bookmarks)
        if not marks:
            self.ctx.message("There are no bookmarks for this model yet (Ctrl+D bookmarks the current latent).")
            return
        for b in marks:
            ws.add_key(b.latent, b.name)

    def add_image_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self.parent, "Images to encode as keys",
                                                self.ctx.settings.last_open_dir, IMAGE_FILTER)
        for p in paths:
            self.add_image_key(p)

    def add_image_key(self, path: str):
        """Encode an image file in a worker; its latent joins the keys when done (if the model is
        still the same)."""
        from engines.latent.image_file import encode_image_file

        ws = self.ws
        if ws is None or not ws.can("encode"):
            return None

        def done(result):
            if ws is self.ws:
                ws.add_key(result[0], os.path.basename(path))

        return run_in_thread(encode_image_file, ws.engine, path, on_result=done,
                             on_error=lambda e: self.ctx.session.report(e, "Cannot use this image"))
