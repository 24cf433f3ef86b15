"""The Compare window: tick two to four models of the library, Compare, and see them side by side
(explorer/compare/view.py). Opened from the main window (View → Compare Models…, or a library
entry's context menu), it spans models, so it lives beside the panels, not in one.

The comparison (loading, sampling, scoring, encoding, projecting) runs in one worker through
`engines.compare.run` with progress and Cancel; models of different data sets, or too few or too
many, are refused before anything runs, with one line. The table exports as CSV and the view as
PNG, both written atomically in a worker.
"""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QMessageBox,
                               QProgressBar, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from engines import compare
from explorer.compare.view import CompareView
from explorer.workers import Worker, run_in_thread

PATH_ROLE = Qt.ItemDataRole.UserRole


def _write_png(path: str, rgb: np.ndarray) -> str:
    """In a worker: the grabbed view as a PNG, atomically."""
    import io

    from PIL import Image

    from engines import atomic

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return atomic.write_bytes(path, buf.getvalue(), what="picture")


def grab_rgb(widget) -> np.ndarray:
    """The widget as it looks, uint8 (H, W, 3) (copied off the GUI's image)."""
    from PySide6.QtGui import QImage

    img = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    arr = np.frombuffer(img.constBits(), np.uint8, count=stride * h).reshape(h, stride)
    return np.ascontiguousarray(arr[:, :3 * w].reshape(h, w, 3))


class CompareWindow(QWidget):
    finished = Signal(object)  # the Comparison
    failed = Signal(str)  # one line
    exported = Signal(str)  # a written path

    def __init__(self, entries=(), device="cpu", checked=(), parent=None):
        super().__init__(parent, Qt.WindowType.Window)
        self.setWindowTitle("Compare models")
        self.device = device
        self.errors: list[str] = []  # every refusal or failure shown (tests read it)
        self.worker: Worker | None = None
        self._dialog: QMessageBox | None = None

        self.models = QListWidget()
        self.models.setToolTip("Tick 2 to 4 models trained on the same data set")
        self.models.itemChanged.connect(lambda _i: self._sync())
        self.count_label = QLabel()
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(QLabel("<b>Models</b> (tick 2 to 4)"))
        ll.addWidget(self.models, 1)
        ll.addWidget(self.count_label)

        self.n_samples = QSpinBox()
        self.n_samples.setRange(50, 10_000)
        self.n_samples.setSingleStep(250)
        self.n_samples.setValue(compare.Options.n_metrics)
        self.n_samples.setToolTip("Samples the FD, precision and recall are computed over; an evaluation stored in a "
                                  "checkpoint with this count (the library's Evaluate) is reused")
        self.projection = QComboBox()
        self.projection.addItem("PCA", "pca")
        self.projection.addItem("UMAP", "umap")
        self.projection.setToolTip("How every model's latents of the same data points become its 2-D map")
        self.run_btn = QPushButton("Compare")
        self.run_btn.clicked.connect(self.start)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumWidth(160)
        self.status = QLabel()
        self.status.setMinimumWidth(120)
        self.csv_btn = QPushButton("Export CSV…")
        self.csv_btn.clicked.connect(self._csv_dialog)
        self.png_btn = QPushButton("Export PNG…")
        self.png_btn.clicked.connect(self._png_dialog)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Samples scored"))
        bar.addWidget(self.n_samples)
        bar.addWidget(QLabel("Map"))
        bar.addWidget(self.projection)
        bar.addWidget(self.run_btn)
        bar.addWidget(self.cancel_btn)
        bar.addWidget(self.progress)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.csv_btn)
        bar.addWidget(self.png_btn)

        self.view = CompareView()
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(bar)
        rl.addWidget(self.view, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([230, 1000])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addWidget(split)
        self.resize(1280, 800)
        self.set_entries(entries, checked)

    # ---- the models -------------------------------------------------------------------------------------------
    def set_entries(self, entries, checked=()) -> None:
        """The library's entries (explorer.catalog.Entry); `checked`: paths ticked at first."""
        want = {os.path.realpath(p) for p in checked}
        self.entries = {e.path: e for e in entries}
        self.models.blockSignals(True)
        self.models.clear()
        for e in entries:
            item = QListWidgetItem(f"{e.name}\n{e.summary().splitlines()[0]}" if e.ok else f"{e.name}\n{e.error}")
            item.setData(PATH_ROLE, e.path)
            flags = Qt.ItemFlag.ItemIsUserCheckable | (Qt.ItemFlag.ItemIsEnabled if e.ok else Qt.ItemFlag.NoItemFlags)
            item.setFlags(flags)
            on = e.ok and os.path.realpath(e.path) in want
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.models.addItem(item)
        self.models.blockSignals(False)
        self._sync()

    def checked_paths(self) -> list[str]:
        return [self.models.item(i).data(PATH_ROLE) for i in range(self.models.count())
                if self.models.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, paths) -> None:
        want = {os.path.realpath(p) for p in paths}
        for i in range(self.models.count()):
            item = self.models.item(i)
            on = os.path.realpath(item.data(PATH_ROLE)) in want
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _sync(self) -> None:
        running = self.running
        n = len(self.checked_paths())
        self.count_label.setText(f"{n} ticked")
        self.run_btn.setEnabled(not running)
        self.cancel_btn.setEnabled(running)
        has = self.view.comparison is not None and not running
        self.csv_btn.setEnabled(has)
        self.png_btn.setEnabled(has)
        self.progress.setVisible(running)

    @property
    def running(self) -> bool:
        return self.worker is not None

    # ---- running ------------------------------------------------------------------------------------------------
    def options(self) -> compare.Options:
        return compare.Options(n_metrics=self.n_samples.value(), projection=self.projection.currentData(),
                               device=str(self.device))

    def start(self) -> bool:
        """Check the ticked models (refused with one line when they cannot be compared), then run
        the comparison in a worker. False when refused or already running."""
        if self.running:
            return False
        paths = self.checked_paths()
        try:
            compare.check_comparable([self.entries[p].info for p in paths])
        except compare.CompareError as e:
            self.show_error("Cannot compare", str(e))
            return False
        self.status.setText("starting…")
        self.progress.setValue(0)
        w = Worker(compare.run, paths, self.options())
        w.yielded.connect(self._on_progress)
        w.returned.connect(self._on_done)
        w.errored.connect(self._on_error)
        w.finished.connect(self._on_finished)
        self.worker = w
        self._sync()
        w.start("long")
        return True

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.status.setText("cancelling…")

    def _on_progress(self, p) -> None:
        if p.fraction is not None:
            self.progress.setValue(int(1000 * p.fraction))
        self.status.setText(p.message)

    def _on_done(self, comp) -> None:
        if comp is None:  # cancelled: the generator was closed
            self.status.setText("cancelled")
            return
        self.view.set_comparison(comp)
        self.status.setText(f"compared {len(comp.models)} models")
        self.finished.emit(comp)

    def _on_error(self, exc) -> None:
        self.show_error("Could not compare", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        self.status.setText("failed")

    def _on_finished(self) -> None:
        self.worker = None
        self._sync()

    def show_error(self, title: str, message: str) -> None:
        """One line in the status and a non-blocking dialog."""
        self.errors.append(message)
        self.failed.emit(message)
        self.status.setText(message)
        if self._dialog is not None:
            self._dialog.close()
        self._dialog = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        self._dialog.setModal(False)
        self._dialog.open()

    # ---- export -------------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> Worker | None:
        comp = self.view.comparison
        if comp is None:
            return None
        return self._write(compare.write_csv, path, comp.table())

    def export_png(self, path: str) -> Worker | None:
        """The results as they look now (models' samples, maps, legend and table)."""
        if self.view.comparison is None:
            return None
        return self._write(_write_png, path, grab_rgb(self.view))

    def _write(self, fn, path, payload) -> Worker:
        return run_in_thread(fn, path, payload, on_result=self._on_written,
                             on_error=lambda e: self.show_error("Could not export", str(e)))

    def _on_written(self, path: str) -> None:
        self.status.setText(f"wrote {path}")
        self.exported.emit(path)

    def _save_dialog(self, title: str, name: str, pattern: str, ext: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self, title, os.path.join(os.path.expanduser("~"), name), pattern)
        return path if not path or path.lower().endswith(ext) else path + ext

    def _csv_dialog(self) -> None:
        path = self._save_dialog("Export the table as CSV", "comparison.csv", "CSV (*.csv)", ".csv")
        if path:
            self.export_csv(path)

    def _png_dialog(self) -> None:
        path = self._save_dialog("Export the view as PNG", "comparison.png", "PNG images (*.png)", ".png")
        if path:
            self.export_png(path)

    def closeEvent(self, event) -> None:
        self.cancel()
        super().closeEvent(event)
