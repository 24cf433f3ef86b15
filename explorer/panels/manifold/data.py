"""The Manifold panel's side of the Workspace's data: the data picker, the load's progress bar,
status line and busy state. The data itself (loaded and encoded once, shared by every panel) is
the Workspace's: `DataFeed` asks for it once when the panel is shown (`ws.request_data`), asks
for another source when the user picks one (which replaces it for every panel), and hands the
panel the `ModelData` to map (`take`)."""
from __future__ import annotations

import os

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from explorer.panels.manifold.state import Links


class DataFeed(QObject):
    message = Signal(str)  # a line for the map's overlay while there is no map yet
    arrived = Signal()  # new data is on the Workspace (the panel takes it when shown)

    def __init__(self, controls, ctx, dialog_parent=None):
        super().__init__(dialog_parent)
        self.c, self.ctx, self._dialog_parent = controls, ctx, dialog_parent
        self.ws = None
        self._asked = False  # asked once per Workspace (again when the user picks a source)
        self._links = Links()
        controls.data_choice.connect(self.choose)

    def set_workspace(self, ws) -> None:
        self._links.clear()
        self.ws, self._asked = ws, False
        self._done()
        self.c.data_combo.setCurrentIndex(0)
        if ws is not None:
            for signal, slot in ((ws.data_loading, self._on_loading), (ws.data_progress, self._on_progress),
                                 (ws.data_ready, self._on_ready), (ws.data_failed, self._on_failed)):
                self._links.connect(signal, slot)
            if ws.loading:
                self._on_loading("")

    @property
    def loading(self) -> bool:
        return self.ws is not None and self.ws.loading

    def take(self, shown):
        """The Workspace's data when it is not the `shown` one; asks for it (once) when there is none."""
        ws = self.ws
        if ws is None:
            return None
        if ws.data is not None:
            return ws.data if ws.data is not shown else None
        if not ws.loading and not self._asked:
            self._asked = True
            ws.request_data()
        return None

    def use_dataset(self, dataset) -> None:
        if self.ws is not None:
            self._asked = True
            self.ws.request_data(dataset=dataset)

    def choose(self, choice: str) -> None:
        """The data picker: "" the model's training data, a built-in name, "?" a file dialog."""
        if self.ws is None:
            return
        if choice == "?":
            path, _ = QFileDialog.getOpenFileName(self._dialog_parent, "Data to map", self.ctx.settings.last_data_dir,
                                                  "Image data (*.npz *.h5 *.hdf5 *-ubyte);;All files (*)")
            if not path:
                return
            self.c.data_combo.setItemText(self.c.data_combo.count() - 1, os.path.basename(path))
            choice = path
        if not choice:  # the model's own data, named (None would keep whatever is loaded)
            from engines.data import training_source

            choice = training_source(self.ws.info)
        self._asked = True
        self.ws.request_data(choice)

    def describe(self, md) -> None:
        ls = md.ls
        shown = f", {len(md.shown):,} drawn" if len(md.shown) < len(ls) else ""
        cached = "from the cache" if ls.from_cache else "encoded now, cached"
        self.c.data_status.setText(f"{md.ds.name}: {len(ls):,} images{shown} · latent {ls.dim}-D · {cached}")

    def _on_loading(self, _source: str) -> None:
        self.c.data_bar.setValue(0)
        self.c.data_bar.show()
        self.ctx.session.set_busy("manifold", "encoding the data for the map")

    def _on_progress(self, p) -> None:
        if p.fraction is not None:
            self.c.data_bar.setValue(int(1000 * p.fraction))
        self.c.data_status.setText(p.message)
        self.message.emit(p.message[:1].upper() + p.message[1:] + "…")

    def _done(self) -> None:
        self.c.data_bar.hide()
        self.ctx.session.set_busy("manifold", None)

    def _on_failed(self, e: str) -> None:
        self._done()
        self.c.data_status.setText(str(e))
        self.message.emit(f"{e}\n\nPick another data set under Data.")

    def _on_ready(self, _md) -> None:
        self._done()
        self.arrived.emit()
