"""Choosing images: a filtered thumbnail browser of the model's data (`DataBrowser`, also used by
the analogies), and the base-image chooser around it (`BaseChooser`): a data image, a sample
from the prior with a seed, or the user's own image file (encoded at the model's size)."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QPushButton, QSpinBox, QTabWidget, QVBoxLayout,
                               QWidget)

from explorer.widgets.thumb_browser import ThumbBrowser
from explorer.panels.arithmetic.filters import ConditionEditor
from explorer.panels.arithmetic.jobs import select

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp *.tif *.tiff);;All files (*)"


class DataBrowser(QWidget):
    """Filter (label, attribute) + thumbnails + a random pick among the filtered images."""

    picked = Signal(int)

    def __init__(self, parent=None, side: int = 64):
        super().__init__(parent)
        self.md = None
        self.filter = ConditionEditor(vertical=True)
        self.browser = ThumbBrowser(side=side)
        self.count = QLabel("")
        self.count.setWordWrap(True)  # "8,000 of 8,000 images" in a narrow column
        self.random_btn = QPushButton("Random")
        self.random_btn.setToolTip("Pick a random image among those shown")
        self._rng = np.random.default_rng(0)
        bottom = QHBoxLayout()
        bottom.addWidget(self.count, 1)
        bottom.addWidget(self.random_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.filter)
        lay.addWidget(self.browser, 1)
        lay.addLayout(bottom)
        self.filter.changed.connect(self.refilter)
        self.browser.picked.connect(self.picked)
        self.random_btn.clicked.connect(self.pick_random)
        self.set_data(None)

    def set_data(self, md) -> None:
        self.md = md
        self.browser.set_images(None if md is None else md.ds.images, None if md is None else md.caption)
        self.filter.set_data(md)  # emits changed → refilter

    def refilter(self) -> None:
        if self.md is None:
            self.browser.set_indices([])
            self.count.setText("")
            self.random_btn.setEnabled(False)
            return
        idx = select(self.md.ls, self.filter.conditions())
        self.browser.set_indices(idx)
        self.count.setText(f"{len(idx):,} of {len(self.md.ls):,} images")
        self.random_btn.setEnabled(len(idx) > 0)

    def pick_random(self) -> int | None:
        shown = self.browser.shown()
        if len(shown) == 0:
            return None
        i = int(self._rng.choice(shown))
        self.picked.emit(i)
        return i


class BaseChooser(QWidget):
    """Where the edited image comes from; the panel does the encoding in a worker."""

    data_picked = Signal(int)
    sample_requested = Signal(int)  # seed
    file_chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.start_dir = ""
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)

        self.data = DataBrowser()
        self.data.picked.connect(self.data_picked)
        self.tabs.addTab(self.data, "Data")

        sample = QWidget()
        sl = QVBoxLayout(sample)
        self.seed = QSpinBox()
        self.seed.setRange(0, 2 ** 31 - 1)
        self.seed.setPrefix("seed ")
        self.sample_btn = QPushButton("Sample")
        self.sample_btn.setToolTip("Draw z from the model's prior with this seed")
        self.next_btn = QPushButton("Next seed")
        row = QHBoxLayout()
        row.addWidget(self.sample_btn)
        row.addWidget(self.next_btn)
        row.addStretch(1)
        sl.addWidget(self.seed)
        sl.addLayout(row)
        note = QLabel("A sample has no original image: the result at s = 0 is the sample itself.")
        note.setWordWrap(True)
        sl.addWidget(note)
        sl.addStretch(1)
        self.sample_btn.clicked.connect(lambda: self.sample_requested.emit(self.seed.value()))
        self.next_btn.clicked.connect(self._next_seed)
        self.tabs.addTab(sample, "Sample")

        own = QWidget()
        ol = QVBoxLayout(own)
        self.file_btn = QPushButton("Choose an image file…")
        self.file_note = QLabel("")
        self.file_note.setWordWrap(True)
        ol.addWidget(self.file_btn)
        ol.addWidget(self.file_note)
        ol.addStretch(1)
        self.file_btn.clicked.connect(self.choose_file)
        self.tabs.addTab(own, "File")

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs)
        self._user_tab: int | None = None  # the source the user chose last, kept across models
        self.tabs.tabBarClicked.connect(self._on_tab_clicked)

    def _on_tab_clicked(self, i: int) -> None:
        if i >= 0 and self.tabs.isTabEnabled(i):
            self._user_tab = i

    def set_model(self, engine, md) -> None:
        can_encode = engine is not None and "encode" in engine.capabilities
        self.data.set_data(md)
        self.tabs.setTabEnabled(0, md is not None)
        self.tabs.setTabEnabled(1, engine is not None)
        self.tabs.setTabEnabled(2, can_encode)
        if engine is not None:
            spec = engine.spec
            colour = "RGB" if spec.channels == 3 else "greyscale"
            self.file_note.setText(f"Your image is resized to {spec.height}×{spec.width} {colour} "
                                   "(the model's input) and encoded.")
        # The data browser unless the user chose another source; samples while there is no data.
        want = self._user_tab if self._user_tab is not None else 0
        if not self.tabs.isTabEnabled(want):
            want = 1
        self.tabs.setCurrentIndex(want)

    def _next_seed(self) -> None:
        self.seed.setValue(self.seed.value() + 1)
        self.sample_requested.emit(self.seed.value())

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Image to edit", self.start_dir, IMAGE_FILTER)
        if path:
            import os

            self.start_dir = os.path.dirname(path)
            self.file_chosen.emit(path)
