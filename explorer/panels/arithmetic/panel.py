"""The Arithmetic panel (issue #5): attribute vectors, z + s·Δ with live sliders, the strip
s = −4 … 4, and analogies a − b + c.

Left: the current model's vectors (`arithmetic_vectors.VectorList`). Right, two tabs: Edit (base
image, decoded result with one slider per active vector, strip of the selected vector) and
Analogies. On a model change the panel computes the model's identity and encodes its training
data (from the checkpoint's `info.data`) through the HDF5 latent cache in a worker; every vector,
decode and encode is computed off the GUI thread. Vectors are kept per model identity while the
app runs and saved/loaded as JSON carrying that identity, so a vector is never applied to another
model without the user saying so.

Other panels add vectors with `add_vector_from_groups(idx_a, idx_b, name)` (indices into the
model's training data set, e.g. two selections on the Manifold map).
"""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QFileDialog, QFrame, QHBoxLayout, QLabel, QMenu, QPushButton,
                               QScrollArea, QTabWidget, QVBoxLayout)

from engines.data import DataUnavailable, training_source

from explorer.workers import LatestRequestRunner, Worker, run_in_thread
from explorer.panels import Panel
from explorer.panels.arithmetic.analogy import AnalogyView
from explorer.panels.arithmetic.edit import EditView
from explorer.panels.arithmetic.files import VectorFilesMixin
from explorer.panels.arithmetic.jobs import Base, Recipe, load_model_data, make_base, make_vector
from explorer.panels.arithmetic.session import SessionMixin
from explorer.panels.arithmetic.vectors import VectorList

DATA_FILTER = "Image data (*.npz *.h5 *.hdf5 *-ubyte *.idx *-ubyte.gz);;All files (*)"


class ArithmeticPanel(VectorFilesMixin, SessionMixin, Panel):
    name = "arithmetic"
    title = "Arithmetic"
    data_ready = Signal(object)  # arithmetic_jobs.ModelData, or None when the data cannot be had
    vector_added = Signal(object)  # AttributeVector

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.engine = None
        self.info = None
        self.md = None  # arithmetic_jobs.ModelData once encoded
        self._loading_source: str | None = None
        self.model_id = ""
        self.data_error = ""
        self._loader: Worker | None = None
        self._by_model: dict[str, list] = {}  # model id → [(vector, active)], while the app runs
        self._pending_vectors = 0
        self._deferred: tuple | None = None  # (source,) to encode when the panel is first shown
        self._queued: list = []  # recipes asked for before the data was ready
        self._demo: dict | None = None  # screenshot content asked for before the data was ready
        self._demo_strength = None
        self._closing = False
        self.vectors_dir = ""
        self._base_runner = LatestRequestRunner(make_base, self)
        self._base_runner.result.connect(self._on_base)
        self._base_runner.failed.connect(lambda g, r, e: self.ctx.session.report(e, "Could not use this image"))
        self._build()
        ctx.session.model_changed.connect(self._on_model)
        self._on_model(ctx.session.engine, ctx.session.info)

    # ---- layout -----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.vectors = VectorList()
        self.vectors.recipe_requested.connect(self.add_vector)
        self.vectors.active_changed.connect(self._sync_vectors)
        self.vectors.current_changed.connect(lambda _v: self._sync_vectors())
        self.vectors.save_requested.connect(self.save_dialog)
        self.vectors.load_requested.connect(self.load_dialog)
        left = QScrollArea()
        left.setWidget(self.vectors)
        left.setWidgetResizable(True)
        left.setFrameShape(QFrame.Shape.NoFrame)
        left.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.setMinimumWidth(280)
        left.setMaximumWidth(380)

        self.data_label = QLabel("")
        self.data_label.setWordWrap(True)
        self.data_btn = QPushButton("Use other data…")
        self.data_btn.setToolTip("Encode another data set with this model (same kind of images)")
        menu = QMenu(self.data_btn)
        from engines.data import BUILTIN

        for name in BUILTIN:
            menu.addAction(f"Built-in: {name}", lambda n=name: self.use_data(n))
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

        right = QVBoxLayout()
        right.addLayout(top)
        right.addWidget(self.tabs, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(left)
        lay.addLayout(right, 1)

    # ---- the model and its data ------------------------------------------------------------------------
    def _on_model(self, engine, info) -> None:
        self._remember_vectors()
        if self._loader is not None:
            self._loader.quit()
            self._loader = None
        self.ctx.session.set_busy("arithmetic", None)
        self.engine, self.info, self.md, self.model_id = engine, info, None, ""
        self.data_error, self._deferred, self._queued = "", None, []
        self._base_runner.cancel()
        self.edit.set_engine(engine)
        self.edit.chooser.set_model(engine, None)
        self.analogy.set_model(engine, None)
        self.vectors.set_data(None)
        self.vectors.set_model("", ())
        self.vectors.setEnabled(False)
        self.data_btn.setEnabled(engine is not None)
        if engine is None:
            self.data_label.setText("Open a model in the library to do arithmetic in its latent space.")
            return
        if "encode" not in engine.capabilities:
            self.data_label.setText(f"{engine.name} cannot encode images: vectors can be loaded from files and "
                                    "applied to samples.")
            self._start_loading(None)
            return
        try:
            source = training_source(info)
        except DataUnavailable as e:
            self.data_error = str(e)
            self.data_label.setText(self.data_error)
            self._start_loading(None)
            return
        self._start_loading(source)

    def use_data(self, source: str) -> None:
        """Encode another data set (a built-in name or a path) with the current model."""
        if self.engine is not None:
            self._remember_vectors()
            self.md = None
            self._start_loading(source)

    def _pick_data(self, folder: bool) -> None:
        if folder:
            path = QFileDialog.getExistingDirectory(self, "Image folder", self.ctx.settings.last_data_dir)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Data file", self.ctx.settings.last_data_dir, DATA_FILTER)
        if path:
            self.use_data(path)

    def _start_loading(self, source: str | None, now: bool = False) -> None:
        """Encode `source` (None: only identify the model) — at once when the panel is on screen,
        else when it is first shown, so a model opened for another panel costs nothing here."""
        if not (now or self.isVisible()):
            self._deferred = (source,)
            if source is not None:
                self.data_label.setText("The model's data is encoded when this panel is shown.")
            return
        self._deferred = None
        if self._loader is not None:
            self._loader.quit()
        w = Worker(load_model_data, self.engine, source)
        w.yielded.connect(lambda item, w=w: self._on_load_progress(w, item))
        w.returned.connect(lambda md, w=w: self._on_loaded(w, md))
        w.errored.connect(lambda e, w=w: self._on_load_failed(w, e))
        w.finished.connect(lambda w=w: self._on_load_finished(w))
        self._loader = w
        self._loading_source = source
        if source is not None:
            self.data_error = ""
            self.data_label.setText(f"Encoding {os.path.basename(source) or source} with this model…")
            self.ctx.session.set_busy("arithmetic", "encoding data for arithmetic")
        w.start()

    def _on_load_progress(self, w, item) -> None:
        if w is not self._loader:
            return
        if isinstance(item, tuple) and item[0] == "id":
            self._set_model_id(item[1])
            return
        msg = getattr(item, "message", "")
        frac = getattr(item, "fraction", None)
        self.data_label.setText(f"Preparing the model's data: {msg}")
        pct = f" {100 * frac:.0f}%" if frac is not None else ""
        self.ctx.session.set_busy("arithmetic", f"encoding data for arithmetic{pct}")

    def _set_model_id(self, mid: str) -> None:
        # Vectors added before the model was identified (a session opened while this panel had
        # not been shown yet) belong to it too: keep them after the ones remembered for it.
        early = self.vectors.entries() if not self.model_id else []
        kept = list(self._by_model.get(mid, ()))
        names = {v.name for v, _on in kept}
        kept += [(v, on) for v, on in early if v.name not in names]
        self.model_id = mid
        self.vectors.set_model(mid, kept)
        self.vectors.setEnabled(True)

    def _on_loaded(self, w, md) -> None:
        if w is not self._loader or md is None:
            return
        self.md = md
        ds, ls = md.ds, md.ls
        where = "from the cache" if ls.from_cache else "encoded now"
        self.data_label.setText(f"Data: {ds.name}, {len(ds):,} images at {ds.spec.height}×{ds.spec.width} "
                                f"({where}); {len(md.binary_attributes) + len(md.continuous_attributes)} attributes, "
                                f"{len(ls.label_names) if ls.labels is not None else 0} labels.")
        self.vectors.set_data(md)
        self.edit.chooser.set_model(self.engine, md)
        self.analogy.set_model(self.engine, md)
        self.data_ready.emit(md)
        if self.edit.base is None:
            self.use_data_image(int(ls.test_idx[0]) if len(ls.test_idx) else 0)
        queued, self._queued = self._queued, []
        for recipe in queued:
            self.add_vector(recipe)
        if self._demo:
            self._run_demo()

    def _on_load_failed(self, w, exc) -> None:
        if w is not self._loader:
            return
        self.data_error = str(exc) or type(exc).__name__
        self.data_label.setText(f"Cannot use the model's data: {self.data_error}")
        self.data_ready.emit(None)

    def _on_load_finished(self, w) -> None:
        if w is self._loader:
            self._loader = None
            self.ctx.session.set_busy("arithmetic", None)
            if self.md is None and self._queued:
                self._queued = []
                self.ctx.session.error.emit("Could not make the vector",
                                            self.data_error or "This model's data is not available.")

    @property
    def loading(self) -> bool:
        return self._loader is not None or self._deferred is not None

    def ensure_data(self) -> None:
        """Start encoding the model's data now if it is waiting for the panel to be shown."""
        if self._deferred is not None:
            self._start_loading(self._deferred[0], now=True)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.ensure_data()

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

    # ---- vectors -------------------------------------------------------------------------------------
    def add_vector(self, recipe: Recipe) -> bool:
        """Compute a vector from a recipe in a worker; it joins the list (active) when done. While
        the model's data is still being encoded the recipe waits for it."""
        md = self.md
        if md is None:
            if self.engine is not None and self.loading:
                self._queued.append(recipe)
                self.ensure_data()
                return True
            self.ctx.message("This model's data is not available, so vectors cannot be made from it.")
            return False
        self._pending_vectors += 1
        self.ctx.session.set_busy("arithmetic-vector", "computing an attribute vector")
        run_in_thread(make_vector, md, recipe,
                      on_result=lambda v, md=md: self._on_vector(md, v),
                      on_error=lambda e: self._on_vector_failed(e))
        return True

    def add_vector_from_groups(self, idx_a, idx_b, name: str = "A − B", source: str = "map selection") -> bool:
        """Δ = mean(z[idx_a]) − mean(z[idx_b]) for two groups of the model's training data (indices
        into that data set, e.g. two selections on the Manifold map); added when computed."""
        return self.add_vector(Recipe("indices", name, idx_a=tuple(int(i) for i in np.asarray(idx_a).ravel()),
                                      idx_b=tuple(int(i) for i in np.asarray(idx_b).ravel()), source=source))

    def add_vector_from_map(self, source: str, idx_a, idx_b, name: str) -> bool:
        """Groups picked on another panel's map of data set `source`: this panel switches to that
        data first when it shows another, so the indices always mean the same images."""
        current = self.md.source if self.md is not None else (self._deferred[0] if self._deferred else
                                                                  self._loading_source)
        if current != source:
            self.use_data(source)
        return self.add_vector_from_groups(idx_a, idx_b, name)

    def _vector_done(self) -> None:
        self._pending_vectors = max(0, self._pending_vectors - 1)
        if not self._pending_vectors:
            self.ctx.session.set_busy("arithmetic-vector", None)

    def _on_vector(self, md, v) -> None:
        self._vector_done()
        if md is not self.md:
            return  # the model changed meanwhile
        self.vectors.add(v, active=True)
        self.vector_added.emit(v)

    def _on_vector_failed(self, exc) -> None:
        self._vector_done()
        self.ctx.session.report(exc, "Could not make the vector")

    def _sync_vectors(self) -> None:
        self.edit.set_vectors(self.vectors.active(), self.vectors.current())

    def _remember_vectors(self) -> None:
        if self.model_id:
            self._by_model[self.model_id] = self.vectors.entries()

    # ---- lifecycle ---------------------------------------------------------------------------------
    def shutdown(self) -> None:
        self._closing = True
        if self._loader is not None:
            self._loader.quit()
        self._base_runner.cancel()
        self.edit.shutdown()
        self.analogy.shutdown()
