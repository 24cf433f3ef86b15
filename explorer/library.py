"""The model library: a side list of checkpoints (bundled, the user's runs, opened files), each
with a thumbnail of samples, engine, data set, image size, latent size, training time and its
metrics. Selecting one loads it into the session, i.e. for every panel; Evaluate (context menu)
scores it like `main.py evaluate` in a worker and stores the result in the checkpoint."""
from __future__ import annotations

import os

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QFont, QIcon, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QLabel, QListWidget, QListWidgetItem, QMenu, QVBoxLayout, QWidget

from explorer import catalog
from explorer.widgets.image_grid import thumbnail_pixmap
from explorer.workers import LatestRequestRunner

THUMB = 64
PATH_ROLE = Qt.ItemDataRole.UserRole
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1


def _scan(request):
    runs_dir, opened = request
    return catalog.scan(runs_dir, opened)


EVALUATE_SAMPLES = 1000  # as `main.py evaluate`'s default


def _training_data(info, spec):
    """The data set a checkpoint was trained on (a built-in or public name, or its file if still there)."""
    from engines.data import BUILTIN, PUBLIC, load_dataset

    name, source = info.data.get("name") or "", info.data.get("source") or ""
    if name in BUILTIN or (name in PUBLIC and source in ("", name)):
        return load_dataset(name, spec=spec)
    if source and os.path.exists(source):
        return load_dataset(source, spec=spec)
    raise FileNotFoundError(f"the data set this model was trained on ({source or name or 'unknown'}) is not available")


def _evaluate(path: str, device, n: int, progress) -> dict:
    """In a worker: what `main.py evaluate` does — evaluate on the training data's test split
    and merge `stored_metrics(result)` into the checkpoint's metadata."""
    from engines import checkpoint as ckpt
    from engines.metrics import evaluate, stored_metrics

    before = os.stat(path).st_mtime_ns
    loaded = ckpt.load(path, device=device, with_optimizer=False)
    progress("loading the test data")
    data = _training_data(loaded.info, loaded.engine.spec)
    result = evaluate(loaded.engine, data, n=n, progress=progress)
    if os.stat(path).st_mtime_ns != before:  # e.g. a training run saved over it meanwhile
        raise RuntimeError(f"{os.path.basename(path)} changed while it was being evaluated; the results were not stored")
    ckpt.update(path, metrics=stored_metrics(result))
    return result


class Library(QWidget):
    model_selected = Signal(str)  # path: the window loads it into the session
    resume_requested = Signal(str)  # path: continue training it in the Train panel
    compare_requested = Signal(str)  # path: open the Compare window with it ticked
    refreshed = Signal(list)  # catalog entries
    evaluated = Signal(str, object)  # path, evaluation result (dict) (already stored in the checkpoint)
    evaluation_failed = Signal(str, str)  # path, message
    _evaluation_progress = Signal(str, str)  # path, message: emitted from the worker thread

    def __init__(self, settings, parent=None, session=None):
        super().__init__(parent)
        self.settings = settings
        self._session = session  # None: the window's, found when needed
        self._evaluating: dict[str, object] = {}  # path -> Worker
        self._evaluation_progress.connect(self._on_evaluation_progress)
        self.entries: list[catalog.Entry] = []
        self._select_after: str | None = None
        self._current: str | None = None
        self._scanner = LatestRequestRunner(_scan, self)
        self._scanner.result.connect(self._on_scanned)
        self._scanner.failed.connect(lambda g, r, e: self.empty.setText(f"Cannot list models: {e}"))

        self.list = QListWidget()
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setSpacing(2)
        self.list.setWordWrap(True)
        self.list.setUniformItemSizes(False)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemActivated.connect(self._clicked)
        # Arrow keys browse too; the session's loader coalesces, so only where you stop is loaded.
        self.list.currentItemChanged.connect(self._browsed)
        self.empty = QLabel("No models yet. Train one in the Train panel, or open a checkpoint with File → Open.")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.empty.setMargin(8)
        self.empty.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.empty)
        self._blank = QPixmap(THUMB, THUMB)
        self._blank.fill(Qt.GlobalColor.lightGray)

    # ---- contents --------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        """Rescan in a worker; `refreshed` follows. `select`: highlight this path afterwards."""
        if select:
            self._select_after = select
        self._scanner.submit((self.settings.runs_folder, list(self.settings.opened_files)))

    @property
    def scanning(self) -> bool:
        return self._scanner.busy

    def add_opened(self, path: str) -> None:
        """A checkpoint opened by hand: listed under 'Opened files' (unless already listed)."""
        path = os.path.abspath(path)
        self.settings.remember("opened_files", path)
        self.refresh(select=path)

    def _on_scanned(self, generation, request, entries) -> None:
        self.entries = entries
        self.list.clear()
        by_source = {}
        for e in entries:
            by_source.setdefault(e.source, []).append(e)
        for source, title in catalog.SOURCES:
            items = by_source.get(source)
            if not items:
                continue
            head = QListWidgetItem(title)
            f = QFont(head.font())
            f.setBold(True)
            head.setFont(f)
            head.setFlags(Qt.ItemFlag.NoItemFlags)
            self.list.addItem(head)
            for e in items:
                self.list.addItem(self._item(e))
        self.empty.setVisible(not entries)
        self.list.setVisible(bool(entries))
        target = self._select_after or self._current
        self._select_after = None
        if target:
            self.highlight(target)
        self.refreshed.emit(entries)

    def _item(self, e: catalog.Entry) -> QListWidgetItem:
        item = QListWidgetItem(f"{e.name}\n{e.summary()}")
        pix = thumbnail_pixmap(e.thumbnail, THUMB) if e.thumbnail is not None else self._blank
        item.setIcon(QIcon(pix))
        item.setToolTip(e.tooltip())
        item.setData(PATH_ROLE, e.path)
        item.setData(ENTRY_ROLE, e)
        if not e.ok:
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
            item.setForeground(Qt.GlobalColor.darkRed)
        return item

    def paths(self) -> list[str]:
        return [e.path for e in self.entries]

    def entry(self, path: str) -> catalog.Entry | None:
        for e in self.entries:
            if _same(e.path, path):
                return e
        return None

    # ---- selection -----------------------------------------------------------------------------
    def highlight(self, path: str | None) -> None:
        """Mark `path` as the current model without emitting model_selected."""
        self._current = path
        self.list.blockSignals(True)
        try:
            self.list.clearSelection()
            for i in range(self.list.count()):
                item = self.list.item(i)
                if path and _same(item.data(PATH_ROLE) or "", path):
                    item.setSelected(True)
                    self.list.setCurrentItem(item)
                    self.list.scrollToItem(item)
                    break
        finally:
            self.list.blockSignals(False)

    def select(self, path: str) -> None:
        """Select the entry and load it (as a click would)."""
        self.highlight(path)
        self.model_selected.emit(path)

    def _browsed(self, current, _previous) -> None:
        if current is not None and self.list.hasFocus():  # the user, not a refresh, moved it
            self._clicked(current)

    def _clicked(self, item: QListWidgetItem) -> None:
        path = item.data(PATH_ROLE)
        e = item.data(ENTRY_ROLE)
        if path and e is not None and e.ok and not (self._current and _same(path, self._current)):
            self._current = path
            self.model_selected.emit(path)

    def _menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None or not item.data(PATH_ROLE):
            return
        self.context_menu(item).exec(self.list.viewport().mapToGlobal(pos))

    def context_menu(self, item: QListWidgetItem) -> QMenu:
        path, e = item.data(PATH_ROLE), item.data(ENTRY_ROLE)
        menu = QMenu(self)
        load = QAction("Load", menu, enabled=e.ok)
        load.triggered.connect(lambda: self.select(path))
        resume = QAction("Continue training…", menu, enabled=e.ok and e.info.engine is not None)
        resume.triggered.connect(lambda: self.resume_requested.emit(path))
        evaluate = QAction("Evaluating…" if self.evaluating(path) else "Evaluate", menu,
                           enabled=e.ok and not self.evaluating(path))
        evaluate.setToolTip("Score the model on its data set's test split (sample quality, likelihood, "
                            "reconstruction) and keep the result in the checkpoint, like `main.py evaluate`")
        evaluate.triggered.connect(lambda: self.evaluate(path))
        compare = QAction("Compare with…", menu, enabled=e.ok)
        compare.setToolTip("Side by side with other models of the same data set: samples, metrics, maps")
        compare.triggered.connect(lambda: self.compare_requested.emit(path))
        menu.addAction(load)
        menu.addAction(resume)
        menu.addAction(evaluate)
        menu.addAction(compare)
        if e.source == "opened":
            forget = QAction("Remove from list", menu)
            forget.triggered.connect(lambda: (self.settings.forget("opened_files", path), self.refresh()))
            menu.addAction(forget)
        return menu

    # ---- evaluation --------------------------------------------------------------------------------
    def session(self):
        return self._session if self._session is not None else getattr(self.window(), "session", None)

    def evaluating(self, path: str) -> bool:
        return any(_same(p, path) for p in self._evaluating)

    def evaluate(self, path: str, n: int = EVALUATE_SAMPLES) -> bool:
        """Evaluate the checkpoint in a worker; `evaluated` (and a refresh) or `evaluation_failed`
        follow. False when it is being evaluated already."""
        from explorer.workers import Worker

        if self.evaluating(path):
            return False
        session = self.session()
        device = session.device if session is not None else "cpu"
        name = os.path.splitext(os.path.basename(path))[0]
        self._set_busy(path, f"evaluating {name}")
        w = Worker(_evaluate, path, device, n, lambda msg: self._evaluation_progress.emit(path, msg))
        w.returned.connect(lambda result: self._on_evaluated(path, result))
        w.errored.connect(lambda exc: self._on_evaluation_failed(path, exc))
        self._evaluating[path] = w
        w.start("long")
        return True

    def _set_busy(self, path: str, text: str | None) -> None:
        session = self.session()
        if session is not None:
            session.set_busy(f"evaluate:{path}", text)

    def _on_evaluation_progress(self, path: str, msg: str) -> None:
        if path in self._evaluating:
            self._set_busy(path, f"evaluating {os.path.splitext(os.path.basename(path))[0]}: {msg}")

    def _on_evaluated(self, path: str, result: dict) -> None:
        self._evaluating.pop(path, None)
        self._set_busy(path, None)
        session = self.session()
        if session is not None:
            name = os.path.splitext(os.path.basename(path))[0]
            # `evaluated_at` marks the unprefixed keys as an evaluation (as stored_metrics does).
            line = catalog.metrics_line({**result, "evaluated_at": 0}).replace("\n", " · ")
            session.status_message.emit(f"Evaluated {name}: {line}" if line else f"Evaluated {name}", 10_000)
        self.refresh()
        self.evaluated.emit(path, result)

    def _on_evaluation_failed(self, path: str, exc) -> None:
        self._evaluating.pop(path, None)
        self._set_busy(path, None)
        session = self.session()
        if session is not None:
            session.report(exc, "Could not evaluate the model")
        self.evaluation_failed.emit(path, str(exc) or type(exc).__name__)


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
