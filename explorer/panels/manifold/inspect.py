"""The right column of the Manifold panel: the current latent decoded large, how typical it is
(in-distribution gauges), its nearest data neighbours, the history (back/forward) and bookmarks.

The Inspector only shows what it is handed and reports what the user asks for; `InspectionFeed`
runs the neighbour search for it in a worker."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout,
                               QWidget)

from explorer.widgets.gauge import PercentileGauge
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.thumb_grid import ThumbGrid

VERDICT_COLOURS = {"typical": "#2e7d32", "unusual": "#b26a00", "far from the data": "#c62828"}
IMAGE_MIN = 220
WIDTH = 272  # the column's width (fixed, so per-frame text changes never relayout the panel)


class Inspector(QWidget):
    neighbour_clicked = Signal(int)  # data index
    back = Signal()
    forward = Signal()
    bookmark_add = Signal(str)
    bookmark_go = Signal(str)
    bookmark_delete = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image = ImageGrid(placeholder="Drag on the map: the latent under the cursor is decoded here.")
        self.image.setMinimumSize(IMAGE_MIN, IMAGE_MIN)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        # Fixed sizes: a label whose text changes every frame must not relayout the column.
        line = self.caption.fontMetrics().height()
        self.caption.setFixedSize(WIDTH, 4 * line + 4)

        self.verdict = QLabel("")
        self.verdict.setTextFormat(Qt.TextFormat.RichText)
        self.verdict.setFixedSize(WIDTH, line + 4)
        self.verdict.setToolTip("How far the current latent is from the training data (and, for models with a "
                                "prior, how probable it is under it)")
        self.nn_gauge = PercentileGauge("Distance to the training data")
        self.prior_gauge = PercentileGauge("Rarity under the prior")
        self.prior_gauge.hide()

        self.neighbours = ThumbGrid(placeholder="Nearest data images appear here.", min_cell=56, max_cell=72, max_rows=2)
        self.neighbours.setToolTip("The encoded data images nearest to the current latent; click one to go there")
        nb_title = QLabel("<b>Nearest data</b> <span style='color:#777'>(click to go there)</span>")

        self.back_btn = self._tool("◀", "Back to the previous latent (Ctrl+Z)", self.back)
        self.fwd_btn = self._tool("▶", "Forward again (Ctrl+Shift+Z)", self.forward)
        self.position = QLabel("")
        self.position.setFixedWidth(52)
        self.position.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.bookmarks = QComboBox()
        self.bookmarks.setEditable(True)
        self.bookmarks.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.bookmarks.lineEdit().setPlaceholderText("bookmark name")
        self.bookmarks.setToolTip("Type a name and press ☆ to bookmark the current latent; pick one to go there")
        self.bookmarks.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.bookmarks.setMinimumContentsLength(6)
        self.bookmarks.activated.connect(lambda i: self.bookmark_go.emit(self.bookmarks.itemText(i)))
        self.bookmarks.lineEdit().returnPressed.connect(self._add)
        self.add_btn = self._tool("☆", "Bookmark the current latent under this name (Ctrl+D)", None)
        self.add_btn.clicked.connect(self._add)
        self.del_btn = self._tool("✕", "Delete this bookmark", None)
        self.del_btn.clicked.connect(lambda: self.bookmark_delete.emit(self.bookmarks.currentText().strip()))
        row = QHBoxLayout()
        row.setSpacing(3)
        row.addWidget(self.back_btn)
        row.addWidget(self.fwd_btn)
        row.addWidget(self.position)
        row.addWidget(self.bookmarks, 1)
        row.addWidget(self.add_btn)
        row.addWidget(self.del_btn)

        self.setFixedWidth(WIDTH)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.image, 1)
        lay.addSpacing(2)
        lay.addWidget(self.caption)
        lay.addWidget(self.verdict)
        lay.addWidget(self.nn_gauge)
        lay.addWidget(self.prior_gauge)
        lay.addSpacing(4)
        lay.addWidget(nb_title)
        lay.addWidget(self.neighbours)
        lay.addSpacing(2)
        lay.addLayout(row)
        self.neighbours.clicked.connect(self._on_neighbour)
        self._neighbour_indices = np.zeros(0, np.int64)
        self.set_history(0, 0, False, False)

    def _tool(self, text: str, tip: str, signal) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAutoRaise(False)
        b.setMinimumWidth(26)
        if signal is not None:
            b.clicked.connect(signal)
        return b

    # ---- showing ----------------------------------------------------------------------------------------
    def clear(self, message: str = "") -> None:
        self.image.set_image(None)
        if message:
            self.image.set_placeholder(message)
        self.caption.setText("")
        self.verdict.setText("")
        self.nn_gauge.set_value(None)
        self.prior_gauge.set_value(None)
        self.neighbours.set_images(None)
        self._neighbour_indices = np.zeros(0, np.int64)

    def show_frame(self, image: np.ndarray, caption: str) -> None:
        self.image.set_image(image)
        self.caption.setText(caption)

    def show_inspection(self, md, ins) -> None:
        ind = ins.indicator
        colour = VERDICT_COLOURS.get(ind.verdict, "#222")
        if ind.nn_ratio < 0.01:
            how = "a training latent"
        else:
            how = f"gap {ind.nn_ratio:.1f}× usual"  # fixed-width label: the tooltip says more
        self.verdict.setText(f"<b>How typical?</b> <b style='color:{colour}'>{ind.verdict.capitalize()}</b>: {how}")
        self.nn_gauge.set_value(ind.nn_percentile,
                                f"Distance to the nearest training latent: {ind.nn_distance:.3g} "
                                f"({ind.nn_ratio:.2f}× the median nearest-neighbour distance among training latents); "
                                f"farther than {ind.nn_percentile:.0f} % of training latents are from their own nearest neighbour.")
        if ind.prior_percentile is not None:
            self.prior_gauge.show()
            self.prior_gauge.set_value(ind.prior_percentile,
                                       f"log p(z) = {ind.log_prior:.1f} under the model's prior; "
                                       f"{ind.prior_percentile:.0f} % of training latents are denser. "
                                       "In many dimensions the density peaks where no data lie, so read it with the distance.")
        else:
            self.prior_gauge.hide()
        idx = np.asarray(ins.neighbours, dtype=np.int64)
        self._neighbour_indices = idx
        self.neighbours.set_images(md.ds.images[idx], [f"d {d:.2g}" for d in ins.distances],
                                   [f"{md.caption(int(i))}\ndistance {d:.3g}" for i, d in zip(idx, ins.distances)])

    def set_history(self, position: int, length: int, can_back: bool, can_forward: bool) -> None:
        self.back_btn.setEnabled(can_back)
        self.fwd_btn.setEnabled(can_forward)
        self.position.setText(f"{position}/{length}" if length else "")
        self.position.setToolTip("Where you are in the history of visited latents")

    def set_bookmarks(self, names: list[str], current: str = "") -> None:
        self.bookmarks.blockSignals(True)
        self.bookmarks.clear()
        self.bookmarks.addItems(names)
        self.bookmarks.setEditText(current)
        self.bookmarks.blockSignals(False)
        self.del_btn.setEnabled(bool(names))

    def _add(self) -> None:
        name = self.bookmarks.currentText().strip() or f"bookmark {self.bookmarks.count() + 1}"
        self.bookmark_add.emit(name)

    def _on_neighbour(self, i: int) -> None:
        if 0 <= i < len(self._neighbour_indices):
            self.neighbour_clicked.emit(int(self._neighbour_indices[i]))


class InspectionFeed(QObject):
    """Neighbours and gauges of the newest latent, computed in a worker (`jobs.inspect`) and
    handed to the Inspector: at once for the first, then at most every `interval_ms` while the
    latent keeps moving (a drag), so the image follows at full rate and the search does not."""

    def __init__(self, inspector: Inspector, fail, interval_ms: int = 120, parent=None):
        super().__init__(parent)
        from explorer.panels.manifold.jobs import inspect
        from explorer.workers import LatestRequestRunner

        self.inspector = inspector
        self.md = None
        self._runner = LatestRequestRunner(inspect, self)
        self._runner.result.connect(self._on_result)
        self._runner.failed.connect(lambda g, r, e: fail("Could not inspect the latent", e))
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._latest)
        self._waiting = None

    @property
    def busy(self) -> bool:
        return self._runner.busy or self._waiting is not None

    def follow(self, md, z) -> None:
        self.md, self._waiting = md, z
        if not self._timer.isActive():
            self._latest()

    def _latest(self) -> None:
        z, self._waiting = self._waiting, None
        if z is not None and self.md is not None:
            self._runner.submit((self.md, z))
            self._timer.start()

    def _on_result(self, generation, request, ins) -> None:
        md, _z = request
        if md is self.md:
            self.inspector.show_inspection(md, ins)

    def cancel(self) -> None:
        self._timer.stop()
        self._waiting = None
        self._runner.cancel()
