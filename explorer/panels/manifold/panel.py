"""The Manifold panel: the encoded data as a map, a cursor that decodes the latent under it while
dragged, the latent atlas, interpolation paths, and what the current latent looks like next to
the data (nearest neighbours, in-distribution gauges), with history and bookmarks.

Layout: the side form (manifold_controls) on the left, the map (widgets.latent_map) with its
legend and the path strip in the middle, the inspector (manifold_inspect) on the right.

Threads: loading and encoding the data, projections, UMAP, every decode (scrub, path, atlas) and
the neighbour search run in workers (manifold_jobs); the GUI thread only draws. The scrub goes
through a LatestRequestRunner: while the cursor moves, the newest position is decoded next and
older waiting ones are dropped, so the image follows the mouse as fast as the model decodes.
The panel talks to the engine only through `encode`/`decode`/`latent_shape` (and `log_prior`
where there is one), so any engine with those plugs in.
"""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QFileDialog, QFrame, QGridLayout, QHBoxLayout, QLabel, QMenu, QScrollArea,
                               QVBoxLayout, QWidget)

from explorer.widgets.latent_map import LatentMap
from explorer.widgets.map_legend import MapLegend
from explorer.workers import LatestRequestRunner, Worker
from explorer.panels import Panel
from explorer.panels.manifold.atlas import AtlasView
from explorer.panels.manifold.controls import MapControls
from explorer.panels.manifold.inspect import Inspector
from explorer.panels.manifold.jobs import FrameRequest, MapRequest, axis_titles, inspect, load_model_data, render_frame
from explorer.panels.manifold.paths import PathActions, PathStrip, PathTool
from explorer.panels.manifold.places import PlaceActions, Places
from explorer.panels.manifold.seeds import SeedBrowser
from explorer.panels.manifold.session import SessionMixin
from explorer.panels.manifold.state import apply_projection, colouring_for, colour_options, default_atlas, frame_caption
from explorer.panels.manifold.umap import UmapRunner

ATLAS_DEBOUNCE_MS = 150
INSPECT_MS = 120  # neighbours and gauges follow a drag at most ~8 times a second; the image at full rate


class ManifoldPanel(PathActions, PlaceActions, SessionMixin, Panel):
    name = "manifold"
    title = "Manifold"
    data_ready = Signal(object)  # ModelData
    map_ready = Signal(object)  # Projection
    frame_shown = Signal(object)  # Frame
    selection_changed = Signal(object)  # data indices
    # (data source, indices A, indices B, name): the user asked for the vector A − B (window → Arithmetic)
    vector_requested = Signal(str, object, object, str)

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.engine = self.info = None
        self.md = None  # ModelData
        self.projection = None
        self.z: np.ndarray | None = None  # the current latent
        self.frame = None  # the last Frame shown
        self.frames_shown = 0
        self.selection = np.zeros(0, np.int64)
        self._pending = False
        self._loader: Worker | None = None
        self._load_gen = 0
        self._colouring = None
        self._frames = LatestRequestRunner(render_frame, self)
        self._frames.result.connect(self._on_frame)
        self._frames.failed.connect(lambda g, r, e: self._fail("Could not decode", e))
        self._inspect = LatestRequestRunner(inspect, self)
        self._inspect.result.connect(self._on_inspection)
        self._inspect.failed.connect(lambda g, r, e: self._fail("Could not inspect the latent", e))
        self._projector = LatestRequestRunner(apply_projection, self)
        self._projector.result.connect(self._on_projection)
        self._projector.failed.connect(lambda g, r, e: self._map_failed(e))
        self._inspect_timer = QTimer(self)
        self._inspect_timer.setSingleShot(True)
        self._inspect_timer.setInterval(INSPECT_MS)
        self._inspect_timer.timeout.connect(self._inspect_latest)
        self._to_inspect = None
        self._build()
        self.umap = UmapRunner(self.controls, self.ctx.session, self)
        self.places = Places(self.inspector, self.ctx, self)
        self.paths = PathTool(self)
        self.paths.changed.connect(self._on_path)
        self.paths.frame_requested.connect(self._on_path_frame)
        self.paths.playing_changed.connect(self.controls.set_playing)
        self.paths.failed.connect(lambda m: self.controls.path_status.setText(f"Could not draw the path: {m}"))
        self.atlas = AtlasView(self.map, self.controls, self)
        self._atlas_timer = QTimer(self)
        self._atlas_timer.setSingleShot(True)
        self._atlas_timer.setInterval(ATLAS_DEBOUNCE_MS)
        self._atlas_timer.timeout.connect(self._refresh_atlas)
        self._connect()
        self.ctx.session.model_changed.connect(self._on_model)
        if self.ctx.session.engine is not None:
            self._on_model(self.ctx.session.engine, self.ctx.session.info)
        else:
            self._show_message("Load a model from the library to explore its latent space.")

    # ---- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.controls = MapControls()
        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(250)
        scroll.setMaximumWidth(290)

        self.map = LatentMap()
        self.map.set_hover_provider(self._hover)
        self.message = QLabel("")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.message.setStyleSheet("QLabel { color: #444; background: rgba(255,255,255,215); padding: 16px;"
                                   " border: 1px solid #ccc; border-radius: 4px; }")
        stack = QWidget()
        sl = QGridLayout(stack)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.map, 0, 0)
        self.seeds = SeedBrowser()
        self.seeds.hide()
        sl.addWidget(self.seeds, 0, 0)
        sl.addWidget(self.message, 0, 0, Qt.AlignmentFlag.AlignCenter)
        self.message.setMaximumWidth(420)
        self.legend = MapLegend()
        self.strip = PathStrip()
        center = QVBoxLayout()
        center.setSpacing(4)
        center.addWidget(stack, 1)
        center.addWidget(self.legend)
        center.addWidget(self.strip)

        self.inspector = Inspector()
        lay = QHBoxLayout(self)
        lay.addWidget(scroll)
        lay.addLayout(center, 1)
        lay.addWidget(self.inspector)

    def _connect(self) -> None:
        c, m, ins = self.controls, self.map, self.inspector
        c.projection_changed.connect(lambda _k: self.request_map())
        c.axes_changed.connect(self.request_map)
        c.plane_from_points.connect(self.request_map)
        c.umap_run.connect(lambda: self.umap.run(self.md))
        c.umap_cancel.connect(self.umap.cancel)
        self.umap.ready.connect(self._show_umap)
        self.places.go.connect(lambda z, label: self.go_to(z, "history", label))
        c.colour_changed.connect(self._apply_colours)
        c.view_changed.connect(self._atlas_timer.start)
        c.view_changed.connect(self._on_seed_view)
        self.seeds.frame.connect(self._on_seed_frame)
        self.seeds.failed.connect(lambda e: self._fail("Could not draw the seeds", e))
        c.atlas_fit_view.connect(self.fit_atlas_to_view)
        c.mouse_mode_changed.connect(m.set_mode)
        c.selection_to_mean.connect(self.go_to_selection_mean)
        c.selection_clear.connect(lambda: m.set_selection(np.zeros(0, np.int64)))
        c.path_add_cursor.connect(self.add_cursor_to_path)
        c.path_clear.connect(self.paths.clear)
        c.path_changed.connect(lambda: self.paths.set_options(c.path_method.currentData(), c.path_steps.value()))
        c.path_play.connect(self._on_play)
        c.loop.toggled.connect(lambda on: setattr(self.paths, "loop", on))
        c.data_choice.connect(self._choose_data)
        m.cursor_dragged.connect(self._on_drag)
        m.clicked.connect(self._on_click)
        m.selected.connect(self._on_selected)
        c.groups.vector_requested.connect(
            lambda a, b, name: self.md is not None and self.vector_requested.emit(self.md.source, a, b, name))
        m.context_requested.connect(self._context_menu)
        self.legend.toggled.connect(lambda *_: self._apply_visibility())
        self.strip.clicked.connect(self._on_strip_clicked)
        ins.neighbour_clicked.connect(lambda i: self.go_to_data(i, "neighbour"))
        ins.bookmark_add.connect(self.add_bookmark)

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text) and not self.controls.seed_mode)

    # ---- the seed plane (manifold_seeds) ----------------------------------------------------------------
    def _on_seed_view(self) -> None:
        on = self.controls.seed_mode
        self.seeds.setVisible(on)
        self.map.setVisible(not on)
        self.message.setVisible(bool(self.message.text()) and not on)

    def _on_seed_frame(self, z, image, caption: str, phase: str) -> None:
        if self.projection is not None:  # a map exists: the blend becomes the current latent there
            self._submit_frame(z=z, origin=phase, label=caption)
        else:  # only the prior so far (a GAN's data still being inverted): show it
            self.z = z
            self.inspector.show_frame(image, caption)

    # ---- the model and its data --------------------------------------------------------------------------
    def _on_model(self, engine, info) -> None:
        self._stop_work()
        self._pending = False
        self.engine, self.info = engine, info
        self.md = self.projection = self.z = self.frame = None
        self.selection = np.zeros(0, np.int64)
        self.controls.show_selection(0)
        self.controls.groups.set_data(None)
        self.umap.reset()
        self.places.set_data(None)
        self.paths.clear()
        self.map.clear_points()
        self.legend.clear_entries()
        self.inspector.clear()
        self.controls.data_combo.setCurrentIndex(0)
        self.seeds.set_engine(engine)
        if engine is None:
            self._show_message("Load a model from the library to explore its latent space.")
            return
        if "encode" not in engine.capabilities:
            self._show_message(f"{engine.name.upper()} models cannot encode images yet, and the map is made of "
                               "encoded data.")
            return
        self._pending = True
        self._show_message("Opening the model's data…")
        if self.isVisible():
            self.load_data()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._pending:
            self.load_data()

    def load_data(self, source: str | None = None, dataset=None) -> None:
        """Load and encode the data (the checkpoint's training data unless told otherwise)."""
        if self.engine is None:
            return
        self._pending = False
        if self._loader is not None:
            self._loader.quit()
        self._load_gen += 1
        gen = self._load_gen
        self.controls.data_bar.setValue(0)
        self.controls.data_bar.show()
        self.ctx.session.set_busy("manifold", "encoding the data for the map")
        w = Worker(load_model_data, self.engine, self.info, source, dataset)
        w.yielded.connect(lambda p, g=gen: g == self._load_gen and self._on_load_progress(p))
        w.returned.connect(lambda md, g=gen: g == self._load_gen and self._on_data(md))
        w.errored.connect(lambda e, g=gen: g == self._load_gen and self._on_load_failed(e))
        w.finished.connect(lambda g=gen: g == self._load_gen and self._on_load_finished())
        self._loader = w
        w.start()

    def use_dataset(self, dataset) -> None:
        """Map this ImageDataset instead of the checkpoint's data (tests, other panels)."""
        self.load_data(dataset=dataset)

    def _choose_data(self, choice: str) -> None:
        if choice == "?":
            path, _ = QFileDialog.getOpenFileName(self, "Data to map", self.ctx.settings.last_data_dir,
                                                  "Image data (*.npz *.h5 *.hdf5 *-ubyte);;All files (*)")
            if not path:
                return
            self.controls.data_combo.setItemText(self.controls.data_combo.count() - 1, os.path.basename(path))
            choice = path
        self.load_data(source=choice or None)

    def _on_load_progress(self, p) -> None:
        if p.fraction is not None:
            self.controls.data_bar.setValue(int(1000 * p.fraction))
        self.controls.data_status.setText(p.message)
        self._show_message(p.message[:1].upper() + p.message[1:] + "…")

    def _on_load_failed(self, e) -> None:
        self.controls.data_status.setText(str(e))
        self._show_message(f"{e}\n\nPick another data set under Data.")

    def _on_load_finished(self) -> None:
        self._loader = None
        self.controls.data_bar.hide()
        self.ctx.session.set_busy("manifold", None)

    def _on_data(self, md) -> None:
        self.md = md
        ls = md.ls
        n_shown = len(md.shown)
        cached = "from the cache" if ls.from_cache else "encoded now, cached"
        shown = f", {n_shown:,} drawn" if n_shown < len(ls) else ""
        self.controls.data_status.setText(f"{md.ds.name}: {len(ls):,} images{shown} · latent {ls.dim}-D · {cached}")
        self.controls.set_latent_dim(ls.dim)
        self.controls.set_colour_options(colour_options(md), "label")
        self.places.set_data(md)
        self.controls.groups.set_data(md)
        self.umap.reset(md)
        if ls.dim == 2 and self.controls.projection.currentData() == "pca":
            self.controls.set_projection("axes")  # emits → request_map
        else:
            self.request_map()
        self.data_ready.emit(md)

    # ---- the map -------------------------------------------------------------------------------------
    def request_map(self) -> None:
        """Lay out the data with the projection the form asks for (in a worker)."""
        md = self.md
        if md is None:
            return
        c = self.controls
        kind = c.projection.currentData()
        if kind == "umap":
            self.umap.show(md)  # → _show_umap when there is one for these parameters
            return
        if kind == "points":
            z = self.paths.latents()
            if z is None or len(z) < 3:
                c.plane_hint.setText("Pick three points first (mouse: Pick, or Add cursor), then press the button.")
                return
            req = MapRequest("points", points=tuple(z[:3]))
        elif kind == "axes":
            req = MapRequest("axes", c.axis_i.value(), c.axis_j.value())
        else:
            req = MapRequest("pca")
        self._projector.submit((md, req))

    def _show_umap(self, md, projection) -> None:
        if md is self.md and self.controls.projection.currentData() == "umap":
            self._projector.submit((md, projection))

    def _on_projection(self, generation, request, value) -> None:
        md, _spec = request
        if md is not self.md or not self._projector.is_current(generation):
            return
        projection, coords, tree = value
        self.projection = projection
        self._show_message("")
        self.map.set_points(coords, md.shown, tree)
        self.map.set_axis_titles(*axis_titles(projection))
        self._apply_colours()
        self.map.fit(np.array([[0, 0], [1, 0], [0, 1]]) if projection.kind == "three points" else None)
        self.atlas.center, extent = default_atlas(projection, coords)
        self.controls.set_atlas_extent(extent)
        if projection.kind == "three points":
            self.controls.plane_hint.setText("Points 1, 2, 3 sit at (0,0), (1,0), (0,1). Exact.")
        self.paths.set_context(self.engine, projection.mapping)
        self._refresh_atlas()
        if self.z is None:
            first = int(md.ls.train_idx[0]) if len(md.ls.train_idx) else 0
            self.go_to_data(first, "start")
        else:
            self._submit_frame(z=self.z, origin="replace")
        self.map_ready.emit(projection)

    def _map_failed(self, e) -> None:
        self.ctx.message(f"Could not draw the map: {e}")
        self.controls.plane_hint.setText(str(e))

    def _apply_colours(self) -> None:
        if self.md is None or not len(self.map.coords):
            return
        col = colouring_for(self.md, self.controls.colour.currentData() or "none")
        self._colouring = col
        self.map.set_colours(col.codes, col.colours)
        self.map.set_visible_points(None)
        n, total = len(self.md.shown), len(self.md.ls)
        note = f"{n:,} of {total:,} points drawn" if n < total else ""
        self.legend.set_entries(col.title, col.colours, col.entries, note)

    def _apply_visibility(self) -> None:
        col = self._colouring
        if col is None:
            return
        hidden = np.asarray(sorted(self.legend.hidden), dtype=np.int64)
        self.map.set_visible_points(None if not len(hidden) else ~np.isin(col.codes, hidden))

    # ---- scrub and jumps ----------------------------------------------------------------------------------
    def _submit_frame(self, point=None, z=None, origin: str = "drag", label: str = "") -> None:
        """Decode a map point or a latent; `label` travels with the request to its frame."""
        if self.projection is None or self.engine is None:
            return
        self._frames.submit(FrameRequest(self.engine, self.projection.mapping, point, z, origin, label))

    def _on_drag(self, x: float, y: float, phase: str) -> None:
        if self.projection is None:
            return
        if phase == "start":
            self.paths.stop()
            self.places.end_gesture()
        self.map.set_cursor((x, y))
        self._submit_frame(point=(x, y), origin="drag-end" if phase == "end" else "drag")

    def scrub_to(self, x: float, y: float) -> None:
        """Move the cursor to map point (x, y) and decode there (one drag step)."""
        self._on_drag(x, y, "move")

    def go_to(self, z, origin: str = "jump", label: str = "") -> None:
        """Make z the current latent: decoded, placed on the map, recorded in the history."""
        self._submit_frame(z=np.asarray(z, dtype=np.float32).reshape(-1), origin=origin, label=label)

    def go_to_data(self, index: int, origin: str = "click") -> None:
        if self.md is not None:
            self.go_to(self.md.ls.latents[index], origin, self.md.caption(index))

    def _on_click(self, x: float, y: float, index: int) -> None:
        if self.projection is None:
            return
        if self.map.mode == "pick":
            self.add_path_point(x, y, index)
        elif index >= 0:
            self.go_to_data(index)
        else:
            self.map.set_cursor((x, y))
            self._submit_frame(point=(x, y), origin="click")

    def _on_frame(self, generation, request, frame) -> None:
        if self.projection is None:
            return
        if request.mapping is not self.projection.mapping:  # decoded on a map that is gone:
            keep = request.origin if request.origin not in ("drag", "drag-end", "animate") else "replace"
            self._submit_frame(z=frame.z, origin=keep, label=request.label)  # keep the latent, place it on this one
            return
        self.z, self.frame = frame.z, frame
        self.frames_shown += 1
        origin = request.origin
        if origin not in ("drag", "drag-end"):
            scale = max(1e-9, float(np.linalg.norm(frame.z)))
            self.map.set_cursor(frame.point, on_map=frame.off_map <= 1e-4 * scale)
        label = request.label if origin not in ("drag", "drag-end") else ""
        self.inspector.show_frame(frame.image, frame_caption(frame, label, self.projection))
        self.places.record(frame.z, origin, label)
        self._to_inspect = frame.z
        if not self._inspect_timer.isActive():
            self._inspect_latest()
        self.frame_shown.emit(frame)

    def _inspect_latest(self) -> None:
        """Neighbours and gauges of the newest latent, then at most every INSPECT_MS."""
        z, self._to_inspect = self._to_inspect, None
        if z is not None and self.md is not None:
            self._inspect.submit((self.md, z))
            self._inspect_timer.start()

    def _on_inspection(self, generation, request, ins) -> None:
        md, _z = request
        if md is self.md:
            self.inspector.show_inspection(md, ins)

    def _hover(self, index: int):
        return self.md.ds.images[index], self.md.caption(index)

    # ---- selection ---------------------------------------------------------------------------------------------
    def _on_selected(self, indices) -> None:
        self.selection = np.asarray(indices, dtype=np.int64)
        summary = ""
        md = self.md
        if md is not None and len(self.selection) and md.ls.labels is not None:
            counts = np.bincount(md.ls.labels[self.selection])
            top = np.argsort(counts)[::-1][:2]
            summary = ", ".join(f"{counts[t]} {md.ls.label_names[t] if t < len(md.ls.label_names) else t}"
                                for t in top if counts[t])
        self.controls.show_selection(len(self.selection), summary)
        self.controls.groups.set_selection(self.selection)
        self.selection_changed.emit(self.selection)

    def go_to_selection_mean(self) -> None:
        if self.md is not None and len(self.selection):
            self.go_to(self.md.ls.latents[self.selection].mean(0), "selection",
                       f"mean of {len(self.selection)} selected points")

    # ---- atlas (manifold_atlas) ------------------------------------------------------------------------
    def _refresh_atlas(self, frame: bool = True) -> None:
        self.atlas.refresh(self.engine, self.projection.mapping if self.projection is not None else None, frame)

    def fit_atlas_to_view(self) -> None:
        if self.projection is not None:
            self.atlas.fit_to_view(self.engine, self.projection.mapping)

    # ---- context menu ---------------------------------------------------------------------------------------
    def _context_menu(self, x: float, y: float, global_pos) -> None:
        if self.projection is None:
            return
        index = self.map.data_index_at(x, y)
        menu = QMenu(self)
        what = self.md.caption(index) if index >= 0 else "here"
        menu.addAction(f"Go to {what}", lambda: self._on_click(x, y, index) if self.map.mode != "pick"
                       else self.go_to_data(index) if index >= 0 else self.scrub_to(x, y))
        menu.addAction(f"Add {what} to the path", lambda: self.add_path_point(x, y, index))
        if self.controls.atlas_mode:
            menu.addAction("Centre the atlas here", lambda: self.atlas.centre_on(x, y, self.engine, self.projection.mapping))
        if self.controls.atlas_mode and self.atlas.canvas is not None:
            from explorer.widgets import png_export

            menu.addAction("Export the atlas as PNG…", lambda: png_export.export_dialog(
                self, png_export.Content([self.atlas.canvas.copy()]), "atlas", self.ctx))
        menu.addSeparator()
        menu.addAction("Frame all points", self.map.fit)
        menu.popup(global_pos.toPoint())

    # ---- errors, state, shutdown ------------------------------------------------------------------------
    def _fail(self, title: str, e) -> None:
        self.ctx.session.report(e, title)

    def _stop_work(self) -> None:
        if self._loader is not None:
            self._loader.quit()
            self._loader = None
            self._load_gen += 1
            self.ctx.session.set_busy("manifold", None)
        self.umap.cancel()
        for r in (self._frames, self._inspect, self._projector):
            r.cancel()
        self.atlas.cancel()
        self.seeds.cancel()
        self.paths.shutdown()

    def shutdown(self) -> None:
        self._atlas_timer.stop()
        self._inspect_timer.stop()
        self._stop_work()

    @property
    def busy(self) -> bool:
        return (self._loader is not None or self._frames.busy or self._inspect.busy or self._projector.busy
                or self.atlas.busy or self.paths.busy or self._to_inspect is not None or self.umap.looking
                or self.seeds.busy)
