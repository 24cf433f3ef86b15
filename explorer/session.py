"""The current model, shared by every panel, and its Workspace (explorer.workspace).

Panels subscribe to `model_changed(engine, info)` (both None when no model is loaded) and read
`session.engine` / `session.info`; they never load checkpoints themselves. Loading runs in a
worker behind a LatestRequestRunner, so clicking through the library quickly only loads the last
click. The session also owns the compute device and the app's busy state for the status bar.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QObject, Signal

from explorer.workers import LatestRequestRunner, run_in_thread


def _load_checkpoint(request):
    """In a worker: the checkpoint, and the model's content hash (which keys what the Workspace
    keeps per model: hashing the weights is not work for the GUI thread)."""
    from engines import checkpoint as ckpt
    from engines.latent.cache import model_id

    path, device = request
    loaded = ckpt.load(path, device=device, with_optimizer=False)
    return loaded, model_id(loaded.engine)


class ModelSession(QObject):
    model_changed = Signal(object, object)  # engine, CheckpointInfo — (None, None) when cleared
    workspace_changed = Signal(object)  # the new Workspace (None when cleared), just before model_changed
    load_started = Signal(str)  # path
    load_failed = Signal(str, str)  # path, message
    device_changed = Signal(str)
    busy_changed = Signal(str)  # what is running, '' when idle
    error = Signal(str, str)  # title, message: shown to the user by the window
    status_message = Signal(str, int)  # text, timeout in ms: a transient status-bar line
    show_requested = Signal(str)  # a panel name: the Workspace asks for it on show (the window obeys)

    def __init__(self, device: str = "auto", parent: QObject | None = None):
        super().__init__(parent)
        from engines.device import DeviceError, pick_device

        try:
            self._device = pick_device(device)
        except DeviceError:
            self._device = pick_device("auto")
        self.engine = None
        self.info = None
        self.workspace = None  # explorer.workspace.Workspace of the loaded model
        self.path: str | None = None
        self._busy: dict[str, str] = {}
        self._loader = LatestRequestRunner(_load_checkpoint, self)
        self._loader.result.connect(self._on_loaded)
        self._loader.failed.connect(self._on_load_failed)
        self._loading_path: str | None = None

    # ---- the model ----------------------------------------------------------------------------------
    @property
    def device(self):
        return self._device

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0] if self.path else ""

    @property
    def loading(self) -> bool:
        return self._loader.busy

    def load(self, path: str) -> int:
        """Load a checkpoint in a worker; `model_changed` follows (or `load_failed`)."""
        self._loading_path = path
        self.set_busy("load", f"loading {os.path.basename(path)}")
        self.load_started.emit(path)
        return self._loader.submit((path, self._device))

    def set_model(self, engine, info, path: str | None = None, model_id: str | None = None) -> None:
        """Make `engine` the loaded model: a fresh Workspace for it replaces the old one (whose
        late results are dropped), then `workspace_changed` and `model_changed` follow."""
        from explorer.workspace import Workspace

        self.engine, self.info = engine, info
        self.path = path or (info.path if info is not None else None)
        if self.workspace is not None:
            self.workspace.close()
            self.workspace.deleteLater()
        self.workspace = Workspace(engine, info, self.path, self, model_id=model_id) if engine is not None else None
        if self.workspace is not None:
            self.workspace.show_requested.connect(self.show_requested)
        self.workspace_changed.emit(self.workspace)
        self.model_changed.emit(engine, info)

    def clear(self) -> None:
        self._loader.cancel()
        self.set_busy("load", None)
        self.set_model(None, None)

    def _on_loaded(self, generation, request, loaded) -> None:
        if not self._loader.is_current(generation):
            return  # a newer click is being loaded; do not flash this one
        self.set_busy("load", None)
        loaded, mid = loaded
        self.set_model(loaded.engine, loaded.info, request[0], model_id=mid)

    def _on_load_failed(self, generation, request, exc) -> None:
        if self._loader.is_current(generation):
            self.set_busy("load", None)
        self.load_failed.emit(request[0], str(exc))
        self.error.emit("Could not open model", str(exc))

    # ---- device -----------------------------------------------------------------------------------
    def set_device(self, name: str) -> None:
        """Switch the compute device; the current model moves there in a worker."""
        from engines.device import pick_device

        try:
            dev = pick_device(name)
        except ValueError as e:
            self.error.emit("Device not available", str(e))
            return
        if dev == self._device:
            return
        self._device = dev
        self.device_changed.emit(str(dev))
        engine = self.engine
        if engine is not None and engine.device != dev:
            self.set_busy("device", f"moving model to {dev}")
            run_in_thread(engine.to, dev,
                          on_result=lambda _e: self.set_busy("device", None),
                          on_error=lambda e: (self.set_busy("device", None), self.report(e, "Could not move the model")))

    # ---- busy state and errors ------------------------------------------------------------------
    def set_busy(self, key: str, text: str | None) -> None:
        if text:
            self._busy[key] = text
        else:
            self._busy.pop(key, None)
        self.busy_changed.emit(self.busy_text)

    @property
    def busy_text(self) -> str:
        return " · ".join(self._busy.values())

    def report(self, exc, title: str = "Error") -> None:
        """Send an exception (or message) from a worker to the user."""
        msg = str(exc) or type(exc).__name__
        self.error.emit(title, msg)
