"""Picking a training data set: a built-in one, a public one (MNIST, CIFAR-10, CelebA…: downloaded
on first use, with a progress bar and Cancel) or the user's folder/.npz/HDF5/IDX, resized and
converted on request, with a preview grid of real images and what the set contains.
Loading and downloading run in workers (generating a built-in set takes seconds)."""
from __future__ import annotations

import os
import queue
import threading

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QVBoxLayout)

from explorer.widgets.image_grid import ImageGrid
from explorer.workers import LatestRequestRunner, Worker
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


def download(name: str, cancel: threading.Event):
    """In a worker: download and convert the public set `name`, yielding (done, total, stage):
    bytes while downloading, then files or images while converting; returns True when it is
    cached. The download itself runs in a thread of its own so that this generator yields
    regularly: the worker's quit() lands at a yield, and the generator's `finally` then cancels
    the download or conversion (its partial file or temp folder is removed)."""
    from engines.data.public import load_public

    q: queue.Queue = queue.Queue()
    outcome: dict = {}

    def run():
        try:
            load_public(name, progress=lambda done, total, stage: q.put((done, total, stage)), cancel=cancel)
        except BaseException as e:  # noqa: BLE001 - handed to the generator, raised there
            outcome["error"] = e
        finally:
            q.put(None)

    t = threading.Thread(target=run, name=f"download-{name}", daemon=True)
    t.start()
    try:
        while True:
            try:
                item = q.get(timeout=0.1)
            except queue.Empty:
                yield None
                continue
            if item is None:
                break
            yield item
        if "error" in outcome:
            raise outcome["error"]
        return True
    finally:
        cancel.set()  # no-op once it is done
        t.join()


def public_label(name: str) -> str:
    from engines.data.public import choice_label

    return choice_label(name)


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

    def __init__(self, builtin=None, user_paths=(), parent=None, public=None):
        super().__init__("Data set", parent)
        from engines.data.public import PUBLIC

        self.public = tuple(PUBLIC) if public is None else tuple(public)
        self._download = None  # (name, Worker, cancel Event) while a public set downloads
        self.dataset = None
        self.request = None
        self.last_error = ""
        self._runner = LatestRequestRunner(_load, self)
        self._runner.result.connect(self._on_loaded)
        self._runner.failed.connect(self._on_failed)

        self.source = QComboBox()
        self.source.setToolTip("A built-in data set, or one of your own (Add… picks a folder or file)")
        if builtin is None:
            from engines.data import BUILTIN as builtin
        for name in builtin:
            self.source.addItem(name, name)
        for name in self.public:
            self.source.addItem(public_label(name), name)
            s = PUBLIC[name]
            self.source.setItemData(self.source.count() - 1, f"{s.title} — {s.licence}; {s.homepage}",
                                    Qt.ItemDataRole.ToolTipRole)
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
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setToolTip("Downloading and converting the public data set "
                                 "(once; then it opens from the cache)")
        self.cancel_download = QPushButton("Cancel")
        self.cancel_download.setToolTip("Stop the download or conversion (nothing partial is kept)")
        self.cancel_download.clicked.connect(self.stop_download)
        self.progress.hide()
        self.cancel_download.hide()

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
        down = QHBoxLayout()
        down.addWidget(self.progress, 1)
        down.addWidget(self.cancel_download)
        lay.addLayout(down)
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
        self.dataset_changed.emit(None)
        name = request[0]
        if self._download is not None and self._download[0] != name:
            self.stop_download()
        if name in self.public and not self._public_cached(name):
            self._start_download(name)
            return
        self.summary.setText(f"Loading {self.source.currentText()}…")
        self._runner.submit(request)

    # ---- downloading a public set -------------------------------------------------------------
    @staticmethod
    def _public_cached(name: str) -> bool:
        from engines.data.public import is_cached

        return is_cached(name)

    @property
    def downloading(self) -> bool:
        return self._download is not None

    def _start_download(self, name: str) -> None:
        if self._download is not None:  # already on its way
            return
        self._runner.cancel()
        cancel = threading.Event()
        worker = Worker(download, name, cancel)
        self._download = (name, worker, cancel)
        worker.yielded.connect(self._on_download_progress)
        worker.returned.connect(lambda ok, w=worker: self._on_downloaded(w, ok))
        worker.errored.connect(lambda e, w=worker: self._on_download_failed(w, e))
        self.progress.setValue(0)
        self.progress.setFormat(f"{name}: %p%")
        self.progress.show()
        self.cancel_download.show()
        self.preview.set_image(None)
        self.preview.set_placeholder("Downloading…")
        self.summary.setText(f"Downloading {name} (once; later it opens from the cache)…")
        worker.start("long")

    def stop_download(self) -> None:
        """Cancel the running download (the Cancel button)."""
        if self._download is None:
            return
        name, worker, cancel = self._download
        cancel.set()
        worker.quit()
        self._end_download()
        self.summary.setText(f"Download of {name} cancelled; nothing partial is kept.")
        self.preview.set_placeholder("No data set")

    def _end_download(self) -> None:
        self._download = None
        self.progress.hide()
        self.cancel_download.hide()

    def _on_download_progress(self, value) -> None:
        if self._download is None or value is None:
            return
        from engines.data.public import CONVERT, progress_line

        done, total, stage = value
        name = self._download[0]
        if stage == CONVERT and not self.summary.text().startswith("Converting"):
            self.summary.setText(f"Converting {name} into the cache (once)…")
        self.progress.setFormat(progress_line(name, done, total, stage))
        self.progress.setValue(int(1000 * done / total) if total else 0)

    def _on_downloaded(self, worker, ok) -> None:
        if self._download is None or self._download[1] is not worker:
            return
        name = self._download[0]
        self._end_download()
        if not ok:
            return
        i = self.source.findData(name)
        if i >= 0:
            self.source.setItemText(i, public_label(name))
        if self.source.currentData() == name:
            self.reload()

    def _on_download_failed(self, worker, exc) -> None:
        if self._download is None or self._download[1] is not worker:
            return
        self._end_download()
        self._on_failed(self._runner.generation, self.request, exc)

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
