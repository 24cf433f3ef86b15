"""'Export as PNG…' for any view that shows images: a small dialog (scale, nearest or smooth,
captions) and a context-menu entry a panel adds with one call.

    png_export.install(widget, content, "arithmetic-strip")

`content()` returns `Content(images, captions, cols)` for what the view shows now, or None when
it shows nothing. Composing and writing happen in a worker (a 16× atlas is tens of MB).
"""
from __future__ import annotations

import os
from typing import Callable, NamedTuple

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel,
                               QMenu, QSpinBox, QWidget)

from explorer.workers import run_in_thread


class Content(NamedTuple):
    images: object  # uint8 (N, H, W, C) or a list of (H, W[, C])
    captions: list | None = None
    cols: int | None = None


class PngOptions(QDialog):
    def __init__(self, content: Content, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export as PNG")
        first = content.images[0]
        h, w = first.shape[:2]
        n = len(content.images)
        self.scale = QSpinBox()
        self.scale.setRange(1, 32)
        self.scale.setValue(max(1, min(16, 512 // max(h, w))) if n == 1 else max(1, min(8, 128 // max(h, w))))
        self.scale.setSuffix("×")
        self.mode = QComboBox()
        self.mode.addItem("Nearest neighbour (crisp pixels)", False)
        self.mode.addItem("Smooth (bicubic)", True)
        self.labels = QCheckBox("Captions under each image")
        self.labels.setEnabled(bool(content.captions and any(content.captions)))
        self.size = QLabel("")
        form = QFormLayout(self)
        form.addRow(QLabel(f"{n} image{'s' * (n != 1)} of {w}×{h} px"))
        form.addRow("Scale", self.scale)
        form.addRow("Upscaling", self.mode)
        form.addRow("", self.labels)
        form.addRow("Size", self.size)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._content = content
        self.scale.valueChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        c = self._content
        n = len(c.images)
        h, w = c.images[0].shape[:2]
        cols = max(1, min(int(c.cols or int(n ** 0.5 + 0.999)), n))
        rows = -(-n // cols)
        s = self.scale.value()
        gap = 2 if n > 1 else 0
        self.size.setText(f"{cols * w * s + (cols + 1) * gap if n > 1 else w * s} × "
                          f"{rows * h * s + (rows + 1) * gap if n > 1 else h * s} px")

    def options(self) -> dict:
        return {"scale": self.scale.value(), "smooth": bool(self.mode.currentData()),
                "labels": self.labels.isEnabled() and self.labels.isChecked()}


def write(path: str, content: Content, scale: int, smooth: bool, labels: bool) -> str:
    """In a worker: compose and save."""
    from engines.export.images import compose, save_png

    return save_png(path, compose(content.images, content.captions, content.cols, scale, smooth, labels))


def export_dialog(parent: QWidget, content: Content | None, name: str, ctx=None, path: str | None = None,
                  options: dict | None = None):
    """Ask for options and a file (unless given), then write in a worker. Returns the worker."""
    if content is None or content.images is None or len(content.images) == 0:
        if ctx is not None:
            ctx.message("Nothing to export yet.")
        return None
    if options is None:
        dlg = PngOptions(content, parent)
        if dlg.exec() != QDialog.DialogCode.Accepted:
            return None
        options = dlg.options()
    if path is None:
        start = getattr(getattr(ctx, "settings", None), "last_export_dir", "") or os.path.expanduser("~")
        path, _ = QFileDialog.getSaveFileName(parent, "Export as PNG", os.path.join(start, f"{name}.png"),
                                              "PNG images (*.png)")
        if not path:
            return None
    if not path.lower().endswith(".png"):
        path += ".png"

    def done(p):
        if ctx is not None:
            ctx.message(f"Saved {p}", 5000)

    def failed(e):
        if ctx is not None:
            ctx.session.report(e, "Could not export the PNG")

    return run_in_thread(write, path, content, on_result=done, on_error=failed, **options)


def install(widget: QWidget, content: Callable[[], Content | None], name: str, ctx=None) -> None:
    """Give `widget` a context menu with 'Export as PNG…' (keeping any actions it has)."""
    widget.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def menu(pos):
        m = QMenu(widget)
        act = m.addAction("Export as PNG…", lambda: export_dialog(widget, content(), name, ctx))
        act.setEnabled(content() is not None)
        m.popup(widget.mapToGlobal(pos))

    widget.customContextMenuRequested.connect(menu)
