"""Token-map editor of the Codebook panel: an image's code grid as a coloured overlay that can be
painted with a code, codes swapped, cells re-drawn by the prior; the edited grid decodes live.

Every decode goes through a LatestRequestRunner (a paint stroke produces many requests; only the
newest is computed); encodes, prior samples and inpainting run in workers.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox,
                               QVBoxLayout, QWidget)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff);;All files (*)"

from explorer.widgets.image_grid import ImageGrid
from explorer.workers import LatestRequestRunner, run_in_thread
from explorer.panels.codebook import jobs
from explorer.panels.codebook.views import TokenCanvas


class TokenEditor(QWidget):
    brush_changed = Signal(int)
    failed = Signal(str, str)  # title, message

    def __init__(self, parent=None):
        super().__init__(parent)
        self.engine = None
        self.cd: jobs.CodebookData | None = None
        self.image: np.ndarray | None = None  # the source image (None for a prior sample)
        self.grid: np.ndarray | None = None
        self.original: np.ndarray | None = None
        self.mask: np.ndarray | None = None  # cells the user painted (the region the prior may redraw)
        self.undo: list[tuple[np.ndarray, np.ndarray]] = []
        self.brush = 0
        self.pending = 0  # encodes/samples/inpaints in flight
        self._stroke_saved = False  # the current paint stroke already has its undo step
        self._decoded = None  # the latest decoded image
        self._decoder = LatestRequestRunner(jobs.decode_grid, self)
        self._decoder.result.connect(self._on_decoded)
        self._decoder.failed.connect(lambda _g, _r, e: self.failed.emit("Could not decode", str(e)))
        self._build()

    def _build(self) -> None:
        self.index = QSpinBox()
        self.index.setPrefix("image ")
        self.index.setKeyboardTracking(False)
        self.index.valueChanged.connect(self.use_image)
        self.random_btn = QPushButton("Random")
        self.random_btn.clicked.connect(lambda: self.use_image(int(np.random.default_rng().integers(0, max(1, self.index.maximum() + 1)))))
        self.file_btn = QPushButton("File…")
        self.file_btn.setToolTip("Encode an image file of your own (resized to the model's image size)")
        self.file_btn.clicked.connect(self._pick_file)
        self.sample_btn = QPushButton("Prior sample")
        self.sample_btn.clicked.connect(self.sample)
        self.seed = 0
        self.temp = QSlider(Qt.Orientation.Horizontal)
        self.temp.setRange(0, 200)
        self.temp.setValue(100)
        self.temp.setFixedWidth(90)
        self.temp.setToolTip("Sampling temperature of the prior (0 = most likely code, 1 = the model's own distribution)")
        self.temp_label = QLabel()
        self.temp.valueChanged.connect(self._show_temp)
        self._show_temp()
        self.random_btn.setToolTip("Encode a random image of the data set")
        self.sample_btn.setToolTip("Draw a new code grid from the prior at this temperature")
        # Two rows, so that the tab stays narrow enough for a 1024-pixel-wide window.
        top = QVBoxLayout()
        for ws in ((self.index, self.random_btn, self.file_btn), (self.sample_btn, QLabel("T"), self.temp,
                                                                  self.temp_label)):
            r = QHBoxLayout()
            for w in ws:
                r.addWidget(w)
            r.addStretch(1)
            top.addLayout(r)

        self.canvas = TokenCanvas()
        self.canvas.painted.connect(self.paint)
        self.canvas.picked.connect(self.set_brush)
        self.canvas.stroke_finished.connect(self._end_stroke)
        self.result = ImageGrid(placeholder="The decoded grid appears here.")
        self.result.setMinimumSize(160, 160)
        pics = QGridLayout()
        hint = QLabel("<b>Code grid</b> (drag: paint, right-click: pick)")
        hint.setWordWrap(True)
        pics.addWidget(hint, 0, 0)
        pics.addWidget(QLabel("<b>Decoded</b>"), 0, 1)
        pics.addWidget(self.canvas, 1, 0)
        pics.addWidget(self.result, 1, 1)
        pics.setColumnStretch(0, 1)
        pics.setColumnStretch(1, 1)

        self.brush_label = QLabel()
        self.swap_from = QSpinBox()
        self.swap_from.setPrefix("swap code ")
        self.swap_btn = QPushButton("→ brush everywhere")
        self.swap_btn.clicked.connect(lambda: self.swap(self.swap_from.value(), self.brush))
        self.inpaint_btn = QPushButton("Resample painted")
        self.inpaint_btn.clicked.connect(self.inpaint)
        self.undo_btn = QPushButton("Undo")
        self.undo_btn.clicked.connect(self.undo_last)
        self.reset_btn = QPushButton("Reset")
        self.reset_btn.clicked.connect(self.reset)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.opacity.setFixedWidth(90)
        self.opacity.valueChanged.connect(lambda v: self.canvas.set_opacity(v / 100))
        rows = QVBoxLayout()  # short rows: the tab stays narrow enough for a 1024-pixel-wide window
        for ws in ((self.brush_label, None, QLabel("overlay"), self.opacity), (self.swap_from, self.swap_btn, None),
                   (self.inpaint_btn, self.undo_btn, self.reset_btn, None)):
            r = QHBoxLayout()
            for w in ws:
                r.addStretch(1) if w is None else r.addWidget(w)
            rows.addLayout(r)
        self.note = QLabel()
        self.note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(pics, 1)
        lay.addLayout(rows)
        lay.addWidget(self.note)
        self._update_buttons()

    # ---- model and data -----------------------------------------------------------------------
    def set_model(self, engine, cd: jobs.CodebookData | None) -> None:
        self.engine, self.cd = engine, cd
        self._decoder.cancel()
        self.grid = self.original = self.mask = self.image = self._decoded = None
        self.undo = []
        self.canvas.set_content(None, None)
        self.result.set_image(None)
        if cd is not None:
            self.canvas.set_colours(jobs.code_colours(cd.coords))
            self.index.blockSignals(True)
            self.index.setRange(0, len(cd.images) - 1)
            self.index.blockSignals(False)
            self.swap_from.setRange(0, cd.k - 1)
            self.set_brush(int(np.argmax(cd.counts)))
            self.note.setText("" if cd.prior_trained else
                              "This model's prior is not trained yet: samples draw each cell independently from "
                              "the usage histogram and resampling is off (python main.py train-prior --checkpoint F).")
            self.use_image(self.index.value())
        self._update_buttons()

    @property
    def busy(self) -> bool:
        return self._decoder.busy or self.pending > 0

    def _show_temp(self) -> None:
        self.temp_label.setText(f"{self.temperature:.2f}")

    @property
    def temperature(self) -> float:
        return self.temp.value() / 100

    def use_image(self, index: int) -> None:
        if self.cd is None:
            return
        index = int(np.clip(index, 0, len(self.cd.images) - 1))
        if self.index.value() != index:
            self.index.blockSignals(True)
            self.index.setValue(index)
            self.index.blockSignals(False)
        # The grid is already known from the analysis: no encode needed.
        self._set_grid(self.cd.grids[index].astype(np.int64), self.cd.images[index])

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Image to encode", "", IMAGE_FILTER)
        if path:
            self.use_file(path)

    def use_file(self, path: str) -> None:
        """Encode an image file in a worker and edit its code grid."""
        if self.engine is not None:
            self._run(jobs.encode_file, self.engine, path, then=lambda r: self._set_grid(r[1], r[0]))

    def sample(self) -> None:
        if self.engine is None:
            return
        self.seed += 1
        self._run(jobs.sample_grid, self.engine, self.seed, self.temperature, then=lambda g: self._set_grid(g, None))

    def inpaint(self) -> None:
        if self.engine is None or self.grid is None or self.mask is None or not self.mask.any():
            return
        self.seed += 1
        self._push_undo()
        mask = self.mask.copy()
        self._run(jobs.inpaint_grid, self.engine, self.grid.copy(), mask, self.seed, self.temperature,
                  then=self._apply_inpaint)

    def _apply_inpaint(self, grid) -> None:
        self.grid = grid
        self._refresh()

    def _run(self, fn, *args, then) -> None:
        self.pending += 1
        engine = self.engine

        def done(value):
            self.pending -= 1
            if engine is self.engine:
                then(value)

        def error(e):
            self.pending -= 1
            self.failed.emit("Token editor", str(e))

        run_in_thread(fn, *args, on_result=done, on_error=error)

    def _set_grid(self, grid: np.ndarray, image: np.ndarray | None) -> None:
        self.grid, self.original, self.image = grid.copy(), grid.copy(), image
        self.mask = np.zeros(grid.shape, bool)
        self.undo = []
        self._refresh()

    # ---- editing ------------------------------------------------------------------------------
    def set_brush(self, code: int) -> None:
        self.brush = int(code)
        count = int(self.cd.counts[code]) if self.cd is not None else 0
        self.brush_label.setText(f"brush: code <b>{self.brush}</b> ({count:,} uses)")
        self.swap_from.setToolTip(f"replace every cell holding this code by code {self.brush}")
        self.brush_changed.emit(self.brush)

    def _push_undo(self) -> None:
        if self.grid is not None:
            self.undo.append((self.grid.copy(), self.mask.copy()))
            del self.undo[:-50]

    def _end_stroke(self) -> None:
        self._stroke_saved = False

    def paint(self, i: int, j: int) -> None:
        if self.grid is None:
            return
        if not self._stroke_saved:
            self._push_undo()  # one undo step per stroke
            self._stroke_saved = True
        self.grid[i, j] = self.brush
        self.mask[i, j] = True
        self._refresh()

    def paint_cells(self, cells) -> None:
        """Paint several cells as one stroke (tests and scripted demos)."""
        self._stroke_saved = False
        for i, j in cells:
            self.paint(int(i), int(j))
        self._stroke_saved = False

    def swap(self, old: int, new: int) -> int:
        """Replace every occurrence of code `old` by `new`; returns how many cells changed."""
        if self.grid is None:
            return 0
        hit = self.grid == old
        if hit.any():
            self._push_undo()
            self.grid[hit] = new
            self.mask |= hit
            self._refresh()
        return int(hit.sum())

    def undo_last(self) -> None:
        if self.undo:
            self.grid, self.mask = self.undo.pop()
            self._refresh()

    def reset(self) -> None:
        if self.original is not None:
            self._push_undo()
            self.grid = self.original.copy()
            self.mask = np.zeros(self.grid.shape, bool)
            self._refresh()

    def _refresh(self) -> None:
        # A prior sample has no source image: the canvas shows its latest decoding instead.
        background = self.image if self.image is not None else self._decoded
        self.canvas.set_content(background, self.grid, self.mask)
        if self.engine is not None and self.grid is not None:
            self._decoder.submit((self.engine, self.grid.copy()))
        self._update_buttons()

    def _on_decoded(self, _gen, request, image) -> None:
        self._decoded = image
        self.result.set_image(image)
        if self.image is None:  # a prior sample: its decoding is the canvas background too
            self.canvas.set_content(image, self.grid, self.mask)

    def _update_buttons(self) -> None:
        has = self.grid is not None
        prior = self.cd is not None and self.cd.prior_trained
        self.inpaint_btn.setEnabled(has and prior and self.mask is not None and bool(self.mask.any()))
        self.inpaint_btn.setToolTip("Re-draw the painted cells from the prior, each given the cells before it "
                                    "in raster order" if prior else "Needs a trained prior (python main.py train-prior)")
        for w in (self.swap_btn, self.reset_btn):
            w.setEnabled(has)
        self.undo_btn.setEnabled(bool(self.undo))
        for w in (self.sample_btn, self.file_btn):
            w.setEnabled(self.engine is not None and self.cd is not None)

    def shutdown(self) -> None:
        self._decoder.cancel()
