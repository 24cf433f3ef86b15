"""The main window: the model library docked on the left, the panels as tabs, the status bar
(device, model, busy state), menus from actions.py, and geometry/paths remembered in settings."""
from __future__ import annotations

import os

from PySide6.QtCore import QByteArray, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QSplitter, QTabWidget)

from explorer import actions, catalog, panels, workers
from explorer.context import Context
from explorer.library import Library
from explorer.session import ModelSession
from explorer.sessions import SessionFiles
from explorer.settings import Settings

DEFAULT_SIZE = (1280, 800)


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None, session: ModelSession | None = None,
                 auto_load: bool = True):
        super().__init__()
        self.settings = settings if settings is not None else Settings.load()
        self.session = session or ModelSession(self.settings.device)
        self.ctx = Context(self.session, self.settings)
        self.auto_load = auto_load
        self._first_scan = True
        self.errors: list[tuple[str, str]] = []  # every error shown (tests read it)
        self._dialog: QMessageBox | None = None
        self._splitters_restored = False
        self.setWindowTitle("Latent Explorer")
        self.setAcceptDrops(True)

        self.library = Library(self.settings)
        dock = QDockWidget("Models", self)
        dock.setObjectName("library")
        dock.setWidget(self.library)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        dock.setMinimumWidth(250)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.library_dock = dock

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.panels: dict[str, panels.Panel] = {}
        for spec in panels.PANELS:
            panel = spec.load()(self.ctx)
            self.panels[spec.name] = panel
            self.tabs.addTab(panel, spec.title)
        from explorer.widgets.first_run_tip import FirstRunTip

        self.tip = FirstRunTip()  # in the tab bar's corner: no room taken from the panels
        self.tip.show_panel.connect(self.show_panel)
        self.tip.dismissed.connect(lambda: setattr(self.settings, "tip_dismissed", True))
        self.tabs.setCornerWidget(self.tip, Qt.Corner.TopRightCorner)
        self.tip.setVisible(not self.settings.tip_dismissed)
        self.setCentralWidget(self.tabs)
        # After the panels: a session opened while its model loads is applied after their own
        # model handlers have run.
        self.sessions = SessionFiles(self.ctx, self.panels, self)

        self._build_status_bar()
        self.actions_by_id = actions.build(self, self.settings.shortcuts)
        self.actions_by_id["view.library"].setChecked(True)
        dock.visibilityChanged.connect(self._sync_library_action)

        s = self.session
        s.model_changed.connect(self._on_model_changed)
        s.load_started.connect(lambda p: self.model_label.setText(f"Model: loading {os.path.basename(p)}…"))
        s.load_failed.connect(lambda p, m: self._on_model_changed(s.engine, s.info))
        s.busy_changed.connect(self._on_busy)
        s.device_changed.connect(lambda d: self.device_label.setText(f"Device: {d}"))
        s.error.connect(self.show_error)
        s.status_message.connect(lambda text, ms: self.statusBar().showMessage(text, ms))
        s.show_requested.connect(self.show_panel)
        self.library.model_selected.connect(s.load)
        self.library.resume_requested.connect(self.resume_training)
        self.library.compare_requested.connect(lambda path: self.open_compare([path]))
        self.library.refreshed.connect(self._on_library_refreshed)
        train = self.panels.get("train")
        if train is not None:
            train.checkpoint_saved.connect(self._on_checkpoint_saved)

        self._restore_geometry()
        self.library.refresh()

    # ---- status bar ------------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.device_label = QLabel(f"Device: {self.session.device}")
        self.model_label = QLabel("Model: none")
        self.busy_label = QLabel("Ready")
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)  # indeterminate
        self.busy_bar.setMaximumWidth(80)
        self.busy_bar.setMaximumHeight(14)
        self.busy_bar.hide()
        for w in (self.model_label, self.device_label, self.busy_label):
            w.setContentsMargins(6, 0, 6, 0)
        from explorer.widgets.task_progress import TaskProgress

        self.task_progress = TaskProgress()
        self.session.workspace_changed.connect(self.task_progress.set_workspace)
        sb.addPermanentWidget(self.task_progress)
        sb.addPermanentWidget(self.model_label)
        sb.addPermanentWidget(self.device_label)
        sb.addPermanentWidget(self.busy_bar)
        sb.addPermanentWidget(self.busy_label)

    def _on_busy(self, text: str) -> None:
        self.busy_label.setText(text.capitalize() if text else "Ready")
        self.busy_bar.setVisible(bool(text))

    def _on_model_changed(self, engine, info) -> None:
        if engine is None or info is None:
            self.model_label.setText("Model: none")
            self.library.highlight(None)
            return
        name = self.session.name
        latent = "×".join(str(d) for d in engine.latent_shape)
        self.model_label.setText(f"Model: {name} ({engine.name}, {info.spec}, {f'z {latent}' if latent else 'no latent'})")
        self.library.highlight(self.session.path)
        self.settings.last_model = self.session.path or ""

    # ---- library -------------------------------------------------------------------------------
    def _on_library_refreshed(self, entries) -> None:
        if self._first_scan:
            self._first_scan = False
            if self.auto_load and self.session.engine is None and not self.session.loading:
                first = catalog.default_entry(entries, self.settings.last_model)
                if first is not None:
                    self.library.select(first.path)

    def _on_checkpoint_saved(self, path: str) -> None:
        self.library.refresh(select=self.session.path)
        if self.session.engine is None and not self.session.loading:
            self.session.load(path)

    def open_path(self, path: str) -> None:
        from engines import checkpoint as ckpt

        try:
            ckpt.read_info(path)
        except ckpt.CheckpointError as e:
            self.show_error("Cannot open checkpoint", str(e))
            return
        self.settings.last_open_dir = os.path.dirname(os.path.abspath(path))
        self.library.add_opened(path)
        self.session.load(os.path.abspath(path))

    def open_file(self, path: str) -> None:
        """A file given on the command line or double-clicked: a checkpoint, or a session."""
        if path.lower().endswith(".safetensors"):
            self.open_path(path)
        else:
            self.open_session(path)

    def open_session(self, path: str) -> None:
        """Open a session file (given on the command line or double-clicked)."""
        self.sessions.open_path(path)

    # ---- actions (names referenced by actions.ACTIONS) ------------------------------------------------
    def open_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", self.settings.last_open_dir,
                                              "Checkpoints (*.safetensors);;All files (*)")
        if path:
            self.open_path(path)

    def choose_runs_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Runs folder", self.settings.runs_folder)
        if path:
            self.settings.runs_dir = path
            self.library.refresh()

    def show_runs_folder(self) -> None:
        os.makedirs(self.settings.runs_folder, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.settings.runs_folder))

    def save_session_dialog(self) -> None:
        self.sessions.save_dialog()

    def open_session_dialog(self) -> None:
        self.sessions.open_dialog()

    def save_panel_png(self) -> None:
        """File → Save Panel as PNG: the panel on show, as it looks."""
        panel = self.tabs.currentWidget()
        if panel is None:
            return
        start = os.path.join(self.settings.last_open_dir or os.path.expanduser("~"), f"{panel.name or 'panel'}.png")
        path, _ = QFileDialog.getSaveFileName(self, "Save panel as PNG", start, "PNG images (*.png)")
        if path:
            ok = panel.grab().save(path if path.lower().endswith(".png") else path + ".png")
            self.statusBar().showMessage(f"Saved {path}" if ok else f"Could not write {path}", 5000)

    def open_compare(self, paths=()) -> None:
        """View → Compare Models…: the Compare window over the library's models (`paths` ticked)."""
        from explorer.compare.window import CompareWindow

        cw = getattr(self, "compare_window", None)
        if cw is None:
            cw = self.compare_window = CompareWindow(self.library.entries, self.session.device, parent=self)
            self.library.refreshed.connect(lambda entries: cw.set_entries(entries, cw.checked_paths()))
        if paths:
            cw.set_checked(list(paths) + [p for p in cw.checked_paths() if p not in paths])
        cw.show()
        cw.raise_()

    def show_panel(self, name: str) -> None:
        panel = self.panels.get(name)
        if panel is None:
            raise KeyError(f"unknown panel '{name}' (available: {', '.join(self.panels)})")
        self.tabs.setCurrentWidget(panel)

    def show_train_panel(self) -> None:
        self.show_panel("train")

    def toggle_library(self, on: bool) -> None:
        self.library_dock.setVisible(on)

    def _sync_library_action(self, visible: bool) -> None:
        qa = self.actions_by_id["view.library"]
        qa.blockSignals(True)
        qa.setChecked(visible)
        qa.blockSignals(False)

    def refresh_library(self) -> None:
        self.library.refresh(select=self.session.path)

    def train_start(self) -> None:
        self.show_train_panel()
        self.panels["train"].start()

    def train_pause(self) -> None:
        self.panels["train"].toggle_pause()

    def train_cancel(self) -> None:
        self.panels["train"].cancel()

    def train_resume_current(self) -> None:
        if self.session.path:
            self.resume_training(self.session.path)
        else:
            self.statusBar().showMessage("No model is loaded.", 4000)

    def resume_training(self, path: str) -> None:
        self.show_train_panel()
        self.panels["train"].resume_from(path)

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td>{t}</td><td>&nbsp;&nbsp;<b>{k}</b></td></tr>"
                       for t, k in actions.shortcut_table(self.settings.shortcuts))
        self._info("Keyboard shortcuts", f"<table>{rows}</table>")

    def show_about(self) -> None:
        self._info("About Latent Explorer",
                   "<b>Latent Explorer</b><br>Train small generative models (PCA, autoencoders: AE and "
                   "denoising AE, VAE, VQ-VAE, GAN, diffusion, latent diffusion, normalizing flow, PixelCNN) on "
                   "small image sets and explore their latent spaces.")

    # ---- errors and dialogs ------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """Non-blocking: a dialog plus a status-bar line; the app carries on."""
        self.errors.append((title, message))
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        self._info(title, message, QMessageBox.Icon.Warning)

    def _info(self, title: str, text: str, icon=QMessageBox.Icon.Information) -> None:
        if self._dialog is not None:
            self._dialog.close()
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setModal(False)
        box.open()
        self._dialog = box

    # ---- drag and drop --------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if any(u.toLocalFile().endswith(".safetensors") for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for u in event.mimeData().urls():
            path = u.toLocalFile()
            if path.endswith(".safetensors"):
                self.open_path(path)
        event.acceptProposedAction()

    # ---- geometry and shutdown ----------------------------------------------------------------------
    def _restore_geometry(self) -> None:
        st = self.settings
        restored = False
        if st.window_geometry:
            restored = self.restoreGeometry(QByteArray.fromBase64(st.window_geometry.encode()))
        if not restored:
            self.resize(*DEFAULT_SIZE)
        if st.window_state:
            self.restoreState(QByteArray.fromBase64(st.window_state.encode()))
        if st.last_panel in self.panels:
            self.show_panel(st.last_panel)

    def _restore_splitters(self) -> None:
        """Once the window is shown and laid out (a splitter restored before its first resize
        redistributes its sizes on that resize)."""
        for key, splitter in self._splitters():
            if isinstance(self.settings.splitters.get(key), str):
                splitter.restoreState(QByteArray.fromBase64(self.settings.splitters[key].encode()))

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._splitters_restored:
            self._splitters_restored = True
            QTimer.singleShot(0, self._restore_splitters)

    def _splitters(self):
        """("panel/name", splitter) for every splitter in the panels (name: its objectName, else
        its place among the panel's splitters), whose positions are remembered in settings."""
        for name, panel in self.panels.items():
            for i, sp in enumerate(panel.findChildren(QSplitter)):
                yield f"{name}/{sp.objectName() or i}", sp

    def save_settings(self) -> None:
        st = self.settings
        st.window_geometry = bytes(self.saveGeometry().toBase64()).decode()
        st.window_state = bytes(self.saveState().toBase64()).decode()
        st.splitters = {**st.splitters, **{key: bytes(sp.saveState().toBase64()).decode()
                                           for key, sp in self._splitters()}}
        current = self.tabs.currentWidget()
        st.last_panel = getattr(current, "name", st.last_panel)
        from engines.device import pick_device

        st.device = "auto" if self.session.device == pick_device("auto") else str(self.session.device)
        for p in self.panels.values():
            p.save_state()
        try:
            st.save()
        except OSError as e:
            self.statusBar().showMessage(f"Could not save settings: {e}", 5000)

    def shutdown(self, timeout_ms: int = 60_000) -> None:
        """Stop all work: a running training is cancelled (which saves its checkpoint), then
        every worker is waited for and their last signals are delivered while we still exist."""
        for p in self.panels.values():
            p.shutdown()
        cw = getattr(self, "compare_window", None)
        if cw is not None:
            cw.cancel()
        # Delivering the workers' last signals can start a last short job (a final preview):
        # repeat until nothing is left.
        for _ in range(10):
            workers.wait_all(timeout_ms)
            QApplication.processEvents()
            if workers.live_count() == 0:
                break

    def closeEvent(self, event) -> None:
        self.save_settings()
        self.shutdown()
        super().closeEvent(event)
