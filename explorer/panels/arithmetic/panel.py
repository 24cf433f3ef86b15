"""The Arithmetic panel (issue #5): attribute vectors, z + s·Δ with live sliders, the strip
s = −4 … 4, analogies a − b + c, and unsupervised edit directions (GANSpace, SeFa; issue #20).

Left: the model's vectors (`vectors.VectorList`). Right, three tabs: Edit (base image, decoded
result with one slider per active vector, strip of the selected vector), Analogies, and
Directions (`directions.DirectionsView`: found without labels, kept as vectors).

Everything the panel works on is the loaded model's Workspace (`ctx.workspace`): its data
(`ws.request_data`, asked for when the panel is first shown, so a model opened for another panel
costs nothing here; the data picker asks for another source, which every panel then uses), its
identity, and its attribute vectors (`ws.vectors`, saved per model by the Workspace, so they
come back after a restart; a vector made elsewhere, e.g. from two groups on the map, simply
appears). Every vector, decode and encode is computed off the GUI thread. Vector files carry
the model's identity, so a vector is never applied to another model without the user saying so.
"""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QMenu, QPushButton,
                               QScrollArea, QTabWidget, QVBoxLayout)

from engines.data import DataUnavailable, training_source

from explorer.catalog import no_latent_message
from explorer.workers import LatestRequestRunner, run_in_thread
from explorer.panels import Panel
from explorer.panels.arithmetic.analogy import AnalogyView
from explorer.panels.arithmetic.directions import DirectionsView
from explorer.panels.arithmetic.edit import EditView
from explorer.panels.arithmetic.files import VectorFiles, ask_apply_anyway_dialog
from explorer.panels.arithmetic.jobs import Base, Recipe, make_base, make_vector
from explorer.panels.arithmetic.session import ScreenshotDemo, ViewState
from explorer.panels.arithmetic.vectors import VectorList

DATA_FILTER = "Image data (*.npz *.h5 *.hdf5 *-ubyte *.idx *-ubyte.gz);;All files (*)"
WS_SIGNALS = ("data_loading", "data_progress", "data_ready", "data_failed", "vectors_changed")


class ArithmeticPanel(Panel):
    name = "arithmetic"
    title = "Arithmetic"
    data_ready = Signal(object)  # explorer.workspace.ModelData, or None when the data cannot be had
    vector_added = Signal(object)  # AttributeVector

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.ws = None  # the loaded model's Workspace
        self.data_error = ""
        self._deferred = False  # the data is asked for when the panel is first shown
        self._computing: list[list] = []  # [workspace, vector or None] per vector asked for, in order
        self._queued: list = []  # recipes asked for before the data was ready
        self._base_runner = LatestRequestRunner(make_base, self)
        self._base_runner.result.connect(self._on_base)
        self._base_runner.failed.connect(lambda g, r, e: self.ctx.session.report(e, "Could not use this image"))
        self._build()
        self.files = VectorFiles(ctx, self, lambda text: self.ask_apply_anyway(text))
        self.view_state = ViewState(self.edit, self.vectors, self.tabs)
        self.demo = ScreenshotDemo(self.edit, self.vectors, self.analogy, self.tabs, self.add_vector,
                                   self.use_data_image)
        ctx.session.workspace_changed.connect(self._on_workspace)
        self._on_workspace(ctx.workspace)

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.vectors = VectorList()
        self.vectors.recipe_requested.connect(self.add_vector)
        self.vectors.current_changed.connect(lambda _v: self._sync_vectors())
        self.vectors.save_requested.connect(self.save_dialog)
        self.vectors.load_requested.connect(self.load_dialog)
        left = QScrollArea()
        left.setWidget(self.vectors)
        left.setWidgetResizable(True)
        left.setFrameShape(QFrame.Shape.NoFrame)
        left.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.setMinimumWidth(230)
        left.setMaximumWidth(380)

        self.data_label = QLabel("")
        self.data_label.setWordWrap(True)
        self.data_btn = QPushButton("Use other data…")
        self.data_btn.setToolTip("Encode another data set with this model (same kind of images)")
        menu = QMenu(self.data_btn)
        from engines.data import BUILTIN

        for name in BUILTIN:
            menu.addAction(f"Built-in: {name}", lambda n=name: self.use_data(n))
        from engines.data.public import PUBLIC, choice_label

        for name in PUBLIC:  # a set not downloaded yet is downloaded when chosen (status bar: Cancel)
            menu.addAction(f"Public: {choice_label(name)}", lambda n=name: self.use_data(n))
        menu.addSeparator()
        menu.addAction("Folder of images…", lambda: self._pick_data(folder=True))
        menu.addAction("Data file (.npz, .h5, IDX)…", lambda: self._pick_data(folder=False))
        self.data_btn.setMenu(menu)
        top = QHBoxLayout()
        top.addWidget(self.data_label, 1)
        top.addWidget(self.data_btn)

        self.edit = EditView(self.ctx)
        self.edit.chooser.data_picked.connect(self.use_data_image)
        self.edit.chooser.sample_requested.connect(lambda seed: self._request_base("sample", seed))
        self.edit.chooser.file_chosen.connect(lambda path: self._request_base("file", path))
        self.edit.activate_requested.connect(lambda v: self.vectors.set_active(v, True))
        self.analogy = AnalogyView(self.ctx)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.edit, "Edit: z + s·Δ")
        self.tabs.addTab(self.analogy, "Analogies: a − b + c")
        self.directions = DirectionsView(self.ctx, self.edit)
        self.tabs.addTab(self.directions, "Directions: GANSpace, SeFa")

        right = QVBoxLayout()
        right.addLayout(top)
        right.addWidget(self.tabs, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(left)
        lay.addLayout(right, 1)

    # ---- the model (its Workspace) and its data ---------------------------------------------------------
    @property
    def engine(self):
        return None if self.ws is None else self.ws.engine

    @property
    def md(self):
        """The Workspace's data (explorer.workspace.ModelData), None until it is loaded."""
        return None if self.ws is None else self.ws.data

    @property
    def model_id(self) -> str:
        if self.ws is None:
            return ""
        try:
            return self.ws.model_id
        except TypeError:  # an engine that cannot be identified
            return ""

    def _connect(self, ws, on: bool) -> None:
        slots = (self._on_data_loading, self._on_data_progress, self._on_data, self._on_data_failed,
                 self.view_state.apply_pending)
        for name, slot in zip(WS_SIGNALS, slots):
            if on:
                getattr(ws, name).connect(slot)
            else:
                try:
                    getattr(ws, name).disconnect(slot)
                except (RuntimeError, TypeError):
                    pass

    def _on_workspace(self, ws) -> None:
        if self.ws is not None:
            self._connect(self.ws, False)
        self.ws = ws
        self.ctx.session.set_busy("data", None)
        self.data_error, self._deferred, self._queued = "", False, []
        self.view_state.clear()
        self._base_runner.cancel()
        engine = self.engine
        self.edit.set_engine(engine)
        self.edit.chooser.set_model(engine, None)
        self.analogy.set_model(engine, None)
        self.vectors.set_data(None)
        self.vectors.set_workspace(ws)
        self.directions.set_workspace(ws)
        self.vectors.setEnabled(ws is not None)
        self.data_btn.setEnabled(ws is not None and ws.can("encode"))
        no_latent = ws is not None and not ws.can("encode") and not ws.can("decode")
        self.edit.setEnabled(not no_latent)
        self.analogy.setEnabled(not no_latent)
        if ws is None:
            self.data_label.setText("Open a model in the library to do arithmetic in its latent space.")
            return
        self._connect(ws, True)
        if not ws.can("encode") and not ws.can("decode"):
            self.data_label.setText(no_latent_message(engine.name))
            self.vectors.setEnabled(False)
            return
        if not ws.can("encode"):
            self.data_label.setText(f"{engine.name} cannot encode images: vectors can be loaded from files and "
                                    "applied to samples.")
            return
        if ws.data is not None:
            self._on_data(ws.data)
            return
        if ws.loading:
            self.data_label.setText("Encoding the model's data…")
            return
        try:
            training_source(ws.info)
        except DataUnavailable as e:
            self.data_error = str(e)
            self.data_label.setText(self.data_error)
            return
        self._deferred = True
        self.data_label.setText("The model's data is encoded when this panel is shown.")
        if self.isVisible():
            self.ensure_data()

    def ensure_data(self) -> None:
        """Ask the Workspace for the model's data now if it waits for the panel to be shown."""
        if self._deferred and self.ws is not None:
            self._deferred = False
            self.ws.request_data()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.ensure_data()

    @property
    def loading(self) -> bool:
        return self.ws is not None and (self.ws.loading or self._deferred)

    def use_data(self, source: str) -> None:
        """Use another data set (a built-in name or a path) with the current model: the
        Workspace encodes it, and every panel gets it."""
        if self.ws is not None:
            self._deferred = False
            self.ws.request_data(source)

    def _pick_data(self, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Image folder", self.ctx.settings.last_data_dir)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Data file", self.ctx.settings.last_data_dir, DATA_FILTER)
        if path:
            self.use_data(path)

    def _on_data_loading(self, source: str) -> None:
        self.data_error = ""
        self.data_label.setText(f"Encoding {os.path.basename(source.rstrip('/')) or source or 'the data'} "
                                "with this model…")
        self.ctx.session.set_busy("data", "encoding the model's data")

    def _on_data_progress(self, item) -> None:
        msg = getattr(item, "message", "")
        frac = getattr(item, "fraction", None)
        self.data_label.setText(f"Preparing the model's data: {msg}")
        pct = f" {100 * frac:.0f}%" if frac is not None else ""
        self.ctx.session.set_busy("data", f"encoding the model's data{pct}")

    def _on_data(self, md) -> None:
        self.ctx.session.set_busy("data", None)
        ds, ls = md.ds, md.ls
        where = "from the cache" if getattr(ls, "from_cache", False) else "encoded now"
        self.data_label.setText(f"Data: {ds.name}, {len(ds):,} images at {ds.spec.height}×{ds.spec.width} "
                                f"({where}); {len(md.binary_attributes) + len(md.continuous_attributes)} attributes, "
                                f"{len(ls.label_names) if ls.labels is not None else 0} labels.")
        self.vectors.set_data(md)
        self.edit.chooser.set_model(self.engine, md)
        self.analogy.set_model(self.engine, md)
        self.directions.set_data(md)
        self.data_ready.emit(md)
        if self.edit.base is None:
            self.use_data_image(int(ls.test_idx[0]) if len(ls.test_idx) else 0)
        queued, self._queued = self._queued, []
        for recipe in queued:
            self.add_vector(recipe)
        if self.demo.pending:
            self.demo.run(self.ws)

    def _on_data_failed(self, message: str) -> None:
        self.ctx.session.set_busy("data", None)
        self.data_error = message
        self.data_label.setText(f"Cannot use the model's data: {message}")
        self.data_ready.emit(None)
        if self._queued:
            self._queued = []
            self.ctx.session.error.emit("Could not make the vector", message)

    # ---- base image ---------------------------------------------------------------------------------
    def use_data_image(self, index: int) -> None:
        md = self.md
        if md is None:
            return
        z = md.ls.latents[index].copy()
        self.edit.set_base(Base(z, md.ds.images[index], "data", md.caption(index), int(index)))

    def _request_base(self, kind: str, arg) -> None:
        if self.engine is not None:
            self.edit.state.setText("encoding your image…" if kind == "file" else "sampling…")
            self._base_runner.submit((kind, self.engine, arg))

    def use_file(self, path: str) -> None:
        """Encode the user's image file (in a worker) and edit it."""
        self._request_base("file", path)

    def use_sample(self, seed: int) -> None:
        self._request_base("sample", seed)

    def _on_base(self, generation, request, base) -> None:
        if request[1] is self.engine and self._base_runner.is_current(generation):
            self.edit.set_base(base)

    # ---- vectors (the Workspace's) ----------------------------------------------------------------------------
    def add_vector(self, recipe: Recipe) -> bool:
        """Compute a vector from a recipe in a worker; it joins the Workspace's vectors (active)
        when done. While the model's data is still being encoded the recipe waits for it."""
        md, ws = self.md, self.ws
        if md is None:
            if self.loading:
                self._queued.append(recipe)
                self.ensure_data()
                return True
            self.ctx.message("This model's data is not available, so vectors cannot be made from it.")
            return False
        job = [ws, None]  # vectors join in the order they were asked for, whichever is done first
        self._computing.append(job)
        self.ctx.session.set_busy("arithmetic-vector", "computing an attribute vector")
        run_in_thread(make_vector, md, recipe,
                      on_result=lambda v, job=job: self._on_vector(job, v),
                      on_error=lambda e, job=job: self._on_vector_failed(job, e))
        return True

    def add_vector_from_groups(self, idx_a, idx_b, name: str = "A − B", source: str = "map selection") -> bool:
        """Δ = mean(z[idx_a]) − mean(z[idx_b]) for two groups of the model's data (indices into
        the Workspace's data set); added when computed."""
        return self.add_vector(Recipe("indices", name, idx_a=tuple(int(i) for i in np.asarray(idx_a).ravel()),
                                      idx_b=tuple(int(i) for i in np.asarray(idx_b).ravel()), source=source))

    def add_vector_from_map(self, source: str, idx_a, idx_b, name: str) -> bool:
        """Groups picked on a map of data set `source` (older callers; the Workspace's
        `vector_from_groups` is the way now): that data is asked for first when the Workspace
        holds another, so the indices mean the same images."""
        ws = self.ws
        if ws is not None and ws.data_source != source:
            self._deferred = False
            ws.request_data(source)
        return self.add_vector_from_groups(idx_a, idx_b, name)

    @property
    def _pending_vectors(self) -> int:
        return len(self._computing)

    def _on_vector(self, job, v) -> None:
        job[1] = v
        self._flush_vectors()

    def _on_vector_failed(self, job, exc) -> None:
        self._computing = [j for j in self._computing if j is not job]
        self._flush_vectors()
        self.ctx.session.report(exc, "Could not make the vector")

    def _flush_vectors(self) -> None:
        """Add the computed vectors at the head of the queue to their Workspace."""
        while self._computing and self._computing[0][1] is not None:
            ws, v = self._computing.pop(0)
            if ws is self.ws and not ws.closed:  # else the model changed meanwhile
                v.name = ws.unique_vector_name(v.name)
                ws.add_vector(v, active=True)
                self.vector_added.emit(v)
        if not self._computing:
            self.ctx.session.set_busy("arithmetic-vector", None)

    def _sync_vectors(self) -> None:
        active = self.ws.active_vectors if self.ws is not None else []
        self.edit.set_vectors(active, self.vectors.current())

    # ---- vector files (VectorFiles) -------------------------------------------------------------------------
    def save_dialog(self) -> None:
        self.files.save_dialog()

    def save_vectors_to(self, path: str) -> bool:
        return self.files.save_to(path)

    def load_dialog(self) -> None:
        self.files.load_dialog()

    def load_vectors_from(self, path: str) -> int:
        return self.files.load_from(path)

    def ask_apply_anyway(self, text: str) -> bool:
        """The explicit 'apply anyway' question for vectors of another model (tests replace this)."""
        return ask_apply_anyway_dialog(self, text)

    # ---- the view state (sessions) and the screenshot ---------------------------------------------------------
    def session_state(self) -> dict:
        """The panel's own view: tab, slider strengths, selected vector, base latent, ψ (the
        vectors and which are on are the Workspace's)."""
        return self.view_state.state()

    def restore_session_state(self, d: dict) -> None:
        self.view_state.restore(d, self.engine, self.ws)

    def prepare_screenshot(self, tab: str = "edit", attribute: str | None = None, s: float = 1.5,
                           method: str = "ganspace", k: int = 5) -> None:
        """Real content for `screenshot --panel arithmetic` (see ScreenshotDemo); `tab`
        edit|analogies|directions (`method`'s top k, the first at s)."""
        if tab == "directions":
            self.tabs.setCurrentWidget(self.directions)
            self.directions.demo(method, k, s)
            return
        self.demo.prepare(tab, attribute, s)
        if self.md is not None:
            self.demo.run(self.ws)

    def ready_for_screenshot(self) -> bool:
        """Nothing loading, computing or drawing (and the demo content, if asked for, in place)."""
        if self.ws is None:
            return True
        if self.loading or self._pending_vectors:
            return False
        if self.md is None:
            return True  # the data could not be had: nothing more will come
        if self.demo.pending is not None or not self.demo.settle(self.ws.active_vectors):
            return False
        return not (self.edit.busy or self.analogy.busy or self.directions.busy or self._base_runner.busy)

    # ---- lifecycle ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self._base_runner.cancel()
        self.edit.shutdown()
        self.analogy.shutdown()
        self.directions.shutdown()
