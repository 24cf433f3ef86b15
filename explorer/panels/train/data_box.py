"""Picking a training data set: a built-in one or the user's folder/.npz/HDF5/IDX, resized
and converted on request, with a preview grid of real images and what the set contains.
Loading runs in a worker (generating a built-in set takes seconds)."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QPushButton, QVBoxLayout)

from explorer.widgets.image_grid import ImageGrid
from explorer.workers import LatestRequestRunner
from explorer.panels.train.jobs import data_preview

SIZES = (("native size", None), ("8×8", 8), ("16×16", 16), ("28×28", 28), ("32×32", 32), ("64×64", 64))
CHANNELS = (("native colour", None), ("greyscale", 1), ("RGB", 3))
DATA_FILTER = "Image data (*.npz *.h5 *.hdf5 *-ubyte *.idx *-ubyte.gz);;All files (*)"


def _load(request):
    """In a worker: the data set and a preview grid of some of its training images."""
    from engines.data import load_dataset

    source, size, channels = request
    ds = load_dataset(source, size=size, channels=channels)
    return ds, data_preview(ds)


def describe(ds) -> str:
    colour = "RGB" if ds.spec.channels == 3 else "greyscale"
    lines = [f"{len(ds):,} images ({len(ds.train_idx):,} train / {len(ds.test_idx):,} test), "
             f"{ds.spec.height}×{ds.spec.width} {colour}"]
    if ds.label_names:
        lines.append(f"{len(ds.label_names)} labels: {', '.join(ds.label_names[:6])}{'…' if len(ds.label_names) > 6 else ''}")
    if ds.attributes:
        names = sorted(ds.attributes)
        lines.append(f"attribute table {len(ds):,} × {len(names)}: {', '.join(names[:5])}{'…' if len(names) > 5 else ''}")
    else:
        lines.append("no attribute table")
    return "\n".join(lines)


class DataBox(QGroupBox):
    dataset_changed = Signal(object)  # ImageDataset, or None while loading / after an error
    user_data_added = Signal(str)  # a path the user picked (the window remembers it)

    def __init__(self, builtin=("shapes", "faces", "digits"), user_paths=(), parent=None):
        super().__init__("Data set", parent)
        self.dataset = None
        self.request = None
        self.last_error = ""
        self._runner = LatestRequestRunner(_load, self)
        self._runner.result.connect(self._on_loaded)
        self._runner.failed.connect(self._on_failed)

        self.source = QComboBox()
        self.source.setToolTip("A built-in data set, or one of your own (Add… picks a folder or file)")
        for name in builtin:
            self.source.addItem(name, name)
        for p in user_paths:
            self._add_user_item(p)
        self.size = QComboBox()
        for text, v in SIZES:
            self.size.addItem(text, v)
        self.size.setToolTip("Resize every image to this size (antialiased)")
        self.channels = QComboBox()
        for text, v in CHANNELS:
            self.channels.addItem(text, v)
        self.channels.setToolTip("Convert the images to greyscale or RGB")
        self.add_folder = QPushButton("Folder…")
        self.add_folder.setToolTip("Use a folder of images (labels from sub-folder names)")
        self.add_file = QPushButton("File…")
        self.add_file.setToolTip("Use an .npz, HDF5 or MNIST-style IDX file")
        self.preview = ImageGrid(placeholder="Loading…")
        self.preview.setMinimumSize(120, 100)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Source", self.source)
        conv = QHBoxLayout()
        conv.addWidget(self.size, 1)
        conv.addWidget(self.channels, 1)
        form.addRow("Convert", conv)
        add = QHBoxLayout()
        add.addWidget(QLabel("Add your own:"))
        add.addWidget(self.add_folder)
        add.addWidget(self.add_file)
        add.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(add)
        lay.addWidget(self.preview, 1)
        lay.addWidget(self.summary)

        self.source.currentIndexChanged.connect(self.reload)
        self.size.currentIndexChanged.connect(self.reload)
        self.channels.currentIndexChanged.connect(self.reload)
        self.add_folder.clicked.connect(lambda: self._pick(folder=True))
        self.add_file.clicked.connect(lambda: self._pick(folder=False))
        self.start_dir = ""

    # ---- choosing --------------------------------------------------------------------------
    def _add_user_item(self, path: str) -> int:
        i = self.source.findData(path)
        if i < 0:
            self.source.addItem(os.path.basename(path.rstrip("/\\")) or path, path)
            i = self.source.count() - 1
            self.source.setItemData(i, path, Qt.ItemDataRole.ToolTipRole)
        return i

    def _pick(self, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Image folder", self.start_dir)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Data file", self.start_dir, DATA_FILTER)
        if path:
            self.use_path(path)

    def use_path(self, path: str) -> None:
        self.start_dir = os.path.dirname(path.rstrip("/\\"))
        self.user_data_added.emit(path)
        self.source.setCurrentIndex(self._add_user_item(path))
        self.reload()

    def select(self, source: str, size: int | None = None, channels: int | None = None) -> None:
        """Choose a data set programmatically (resume, remembered settings); loads it."""
        blockers = [self.source, self.size, self.channels]
        for w in blockers:
            w.blockSignals(True)
        try:
            i = self.source.findData(source)
            self.source.setCurrentIndex(i if i >= 0 else self._add_user_item(source))
            self.size.setCurrentIndex(max(0, self.size.findData(size)))
            self.channels.setCurrentIndex(max(0, self.channels.findData(channels)))
        finally:
            for w in blockers:
                w.blockSignals(False)
        self.reload()

    def current_request(self):
        return (self.source.currentData(), self.size.currentData(), self.channels.currentData())

    def reload(self) -> None:
        request = self.current_request()
        if request[0] is None:
            return
        self.request = request
        self.dataset = None
        self.last_error = ""
        self.summary.setText(f"Loading {self.source.currentText()}…")
        self.dataset_changed.emit(None)
        self._runner.submit(request)

    def set_dataset(self, ds, label: str | None = None) -> None:
        """Use a data set already in memory (scripts and tests)."""
        self._runner.cancel()
        self.request = (label or ds.name, None, None)
        self._show(ds, data_preview(ds))

    @property
    def loading(self) -> bool:
        return self._runner.busy

    # ---- results ----------------------------------------------------------------------------
    def _on_loaded(self, generation, request, value) -> None:
        if not self._runner.is_current(generation):
            return
        ds, preview = value
        self._show(ds, preview)

    def _show(self, ds, preview) -> None:
        self.dataset = ds
        self.preview.set_image(preview)
        self.summary.setText(describe(ds))
        self.dataset_changed.emit(ds)

    def _on_failed(self, generation, request, exc) -> None:
        if not self._runner.is_current(generation):
            return
        self.last_error = str(exc) or type(exc).__name__
        self.preview.set_image(None)
        self.preview.set_placeholder("No data set")
        self.summary.setText(f"Cannot use this data set:\n{self.last_error}")
        self.dataset_changed.emit(None)
