"""The Manifold panel: the encoded data as a map, a cursor that decodes the latent under it while
dragged, the latent atlas, interpolation paths, and what the current latent looks like next to
the data (nearest neighbours, in-distribution gauges), with history and bookmarks.

The data, the current latent, its history, the bookmarks and the groups A/B are the Workspace's:
the panel asks for the data when shown (`DataFeed`), makes latents current with `ws.set_current`
and draws whatever `current_changed` says, so a latent set elsewhere (another panel, undo, a
session) shows here too. It holds its view: the map (`MapArea`), the path (`PathEditor`), the
history and bookmark list (`PlaceList`), the form's view state (`ViewState`).

Threads: every projection, decode and search runs in a worker; decodes go through a
LatestRequestRunner (the newest position next, older waiting ones dropped). A map point's latent is
known only once decoded (UMAP's inverse runs in the worker): a drag or a click in empty space makes
it current when its frame arrives; a known latent (data point, bookmark, path frame) at once.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QMenu

from explorer.catalog import no_latent_message
from explorer.workers import LatestRequestRunner
from explorer.panels import Panel
from explorer.panels.manifold.atlas import AtlasView
from explorer.panels.manifold.controls import MapControls
from explorer.panels.manifold.data import DataFeed
from explorer.panels.manifold.inspect import InspectionFeed, Inspector
from explorer.panels.manifold.jobs import FrameRequest, MapRequest, axis_titles, render_frame
from explorer.panels.manifold.paths import PathEditor
from explorer.panels.manifold.places import PlaceList
from explorer.panels.manifold.session import ViewState
from explorer.panels.manifold.state import (Links, apply_projection, colour_options, default_atlas, frame_caption,
                                            selection_summary)
from explorer.panels.manifold.umap import UmapRunner
from explorer.panels.manifold.view import MapArea, side_scroll

ATLAS_DEBOUNCE_MS = 150
INSPECT_MS = 120  # neighbours and gauges follow a drag at most ~8 times a second; the image at full rate
GESTURE = ("drag", "drag-end", "animate")  # origins that coalesce into one history entry per gesture
NO_MODEL = "Load a model from the library to explore its latent space."


class ManifoldPanel(Panel):
    name = "manifold"
    title = "Manifold"
    data_ready = Signal(object)  # the Workspace's ModelData, once mapped here
    map_ready = Signal(object)  # Projection
    frame_shown = Signal(object)  # Frame
    selection_changed = Signal(object)  # data indices

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.ws = None  # the loaded model's Workspace
        self._links = Links()
        self.engine = self.info = None
        self.md = None  # the Workspace's ModelData this map shows
        self.projection = None
        self.frame = None  # the last Frame shown
        self.frames_shown = 0
        self.selection = np.zeros(0, np.int64)
        self._own = False  # set_current from this panel's own decoded frame: already drawn
        self._jump_gen = 0  # generation of the newest latent-given frame request
        self._frames = LatestRequestRunner(render_frame, self)
        self._frames.result.connect(self._on_frame)
        self._frames.failed.connect(lambda g, r, e: self._fail("Could not decode", e))
        self._projector = LatestRequestRunner(apply_projection, self)
        self._projector.result.connect(self._on_projection)
        self._projector.failed.connect(lambda g, r, e: self._map_failed(e))
        self.controls, self.area, self.inspector = MapControls(), MapArea(), Inspector()
        self.map, self.seeds, self.legend, self.strip = self.area.map, self.area.seeds, self.area.legend, self.area.strip
        self.map.set_hover_provider(self._hover)
        lay = QHBoxLayout(self)
        lay.addWidget(side_scroll(self.controls))
        lay.addWidget(self.area, 1)
        lay.addWidget(self.inspector)
        self.feed = DataFeed(self.controls, self.ctx, self)
        self.feed.arrived.connect(self._sync)
        self.feed.message.connect(lambda text: self.md is None and self.area.show_message(text))
        self.inspection = InspectionFeed(self.inspector, self._fail, INSPECT_MS, self)
        self.umap = UmapRunner(self.controls, self.ctx.session, self)
        self.places = PlaceList(self.inspector, self.ctx, self)
        self.paths = PathEditor(self.map, self.strip, self.controls, self)
        self.paths.go.connect(self.go_to)
        self.paths.gesture_ended.connect(self.places.end_gesture)
        self.view_state = ViewState(self.controls)
        self.atlas = AtlasView(self.map, self.controls, self)
        self._atlas_timer = QTimer(self)
        self._atlas_timer.setSingleShot(True)
        self._atlas_timer.setInterval(ATLAS_DEBOUNCE_MS)
        self._atlas_timer.timeout.connect(self._refresh_atlas)
        self._connect()
        self.ctx.session.workspace_changed.connect(self._on_workspace)
        self._on_workspace(self.ctx.session.workspace)

    def _connect(self) -> None:
        c, m, ins = self.controls, self.map, self.inspector
        c.projection_changed.connect(lambda _k: self.request_map())
        c.axes_changed.connect(self.request_map)
        c.plane_from_points.connect(self.request_map)
        c.umap_run.connect(lambda: self.umap.run(self.md))
        c.umap_cancel.connect(self.umap.cancel)
        self.umap.ready.connect(self._show_umap)
        c.colour_changed.connect(self._apply_colours)
        c.view_changed.connect(self._atlas_timer.start)
        c.view_changed.connect(lambda: self.area.set_seed_mode(c.seed_mode))
        self.seeds.frame.connect(self._on_seed_frame)
        self.seeds.failed.connect(lambda e: self._fail("Could not draw the seeds", e))
        c.atlas_fit_view.connect(self.fit_atlas_to_view)
        c.mouse_mode_changed.connect(m.set_mode)
        c.selection_to_mean.connect(self.go_to_selection_mean)
        c.selection_clear.connect(lambda: m.set_selection(np.zeros(0, np.int64)))
        c.path_add_cursor.connect(self.add_cursor_to_path)
        m.cursor_dragged.connect(self._on_drag)
        m.clicked.connect(self._on_click)
        m.selected.connect(self._on_selected)
        m.context_requested.connect(self._context_menu)
        ins.neighbour_clicked.connect(lambda i: self.go_to_data(i, "neighbour"))

    def _on_seed_frame(self, z, image, caption: str, phase: str) -> None:
        if self.projection is not None:  # a map exists: the blend becomes the current latent there
            self.go_to(z, phase, caption)
        elif self.ws is not None:  # only the prior so far (a GAN's data still being inverted): show it
            self._set_current(z, caption, "seeds", record=False)
            self.inspector.show_frame(image, caption)

    # ---- the Workspace and its data ----------------------------------------------------------------------
    def _on_workspace(self, ws) -> None:
        """A new model (or none): its Workspace replaces the old one, and the view starts afresh."""
        self._stop_work()
        self._links.clear()
        self.ws = ws
        self.engine, self.info = (ws.engine, ws.info) if ws is not None else (None, None)
        self.md = self.projection = self.frame = None
        self.selection = np.zeros(0, np.int64)
        self.controls.show_selection(0)
        self.umap.reset()
        self.paths.clear()
        self.paths.set_map(None, None, None)
        self.map.clear_points()
        self.legend.clear_entries()
        self.inspector.clear()
        self.seeds.set_engine(self.engine)
        self.feed.set_workspace(ws)
        self.places.set_workspace(ws)
        self.controls.groups.set_workspace(ws)
        if ws is None:
            self.area.show_message(NO_MODEL)
        elif not ws.can("encode") and not ws.can("decode"):
            self.area.show_message(no_latent_message(ws.engine.name))
        elif not ws.can("encode"):
            self.area.show_message(f"{ws.engine.name.upper()} models cannot encode images yet, and the map is "
                                   "made of encoded data.")
        else:
            self._links.connect(ws.current_changed, self._on_current)
            self.area.show_message("Opening the model's data…")
            self._sync()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._sync()

    def _sync(self) -> None:
        """While shown: ask for the data (once), map new data, draw a latent made current while hidden."""
        ws = self.ws
        if ws is None or not self.isVisible() or not ws.can("encode"):
            return
        md = self.feed.take(self.md)
        if md is not None:
            self._on_data(md)
        elif self.projection is not None and ws.current is not None and (
                self.frame is None or not np.array_equal(self.frame.z, ws.current)):
            self._submit_frame(z=ws.current, origin="replace", label=ws.current_label)

    def use_dataset(self, dataset) -> None:
        """Map this ImageDataset (it becomes the Workspace's data, for every panel)."""
        self.feed.use_dataset(dataset)

    def _on_data(self, md) -> None:
        self.md = md
        self.feed.describe(md)
        self.controls.set_latent_dim(md.ls.dim)
        self.controls.set_colour_options(colour_options(md), "label")
        self.controls.groups.set_selection(np.zeros(0, np.int64))
        self.umap.reset(md)
        if md.ls.dim == 2 and self.controls.projection.currentData() == "pca":
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
        if len(projection.coords) == len(md.ls):  # the map's coordinates are the Workspace's (exports)
            self.ws.set_projection(projection.kind.replace(" ", "-"), projection.coords)
        self.area.show_message("")
        self.map.set_points(coords, md.shown, tree)
        self.map.set_axis_titles(*axis_titles(projection))
        self._apply_colours()
        self.map.fit(np.array([[0, 0], [1, 0], [0, 1]]) if projection.kind == "three points" else None)
        self.atlas.center, extent = default_atlas(projection, coords)
        self.controls.set_atlas_extent(extent)
        if projection.kind == "three points":
            self.controls.plane_hint.setText("Points 1, 2, 3 sit at (0,0), (1,0), (0,1). Exact.")
        self.paths.set_map(self.engine, projection, md)
        self._refresh_atlas()
        if self.ws.current is None:
            first = int(md.ls.train_idx[0]) if len(md.ls.train_idx) else 0
            self.go_to_data(first, "start")
        else:
            self._submit_frame(z=self.ws.current, origin="replace", label=self.ws.current_label)
        self.map_ready.emit(projection)

    def _map_failed(self, e) -> None:
        self.ctx.message(f"Could not draw the map: {e}")
        self.controls.plane_hint.setText(str(e))

    # ---- scrub and jumps ----------------------------------------------------------------------------------
    def _submit_frame(self, point=None, z=None, origin: str = "drag", label: str = "") -> None:
        if self.projection is None or self.engine is None:
            return
        gen = self._frames.submit(FrameRequest(self.engine, self.projection.mapping, point, z, origin, label))
        if z is not None:
            self._jump_gen = gen

    def _set_current(self, z, label: str, origin: str, record: bool = True) -> None:
        """A latent this panel has drawn already becomes the Workspace's current latent."""
        self._own = True
        try:
            self.ws.set_current(z, label, origin, record=record, coalesce=origin in GESTURE)
        finally:
            self._own = False
        if origin == "drag-end":
            self.ws.end_gesture()

    def _on_current(self, z, label: str, origin: str) -> None:
        """The Workspace's current latent changed (here, in another panel, undo, a session): draw it."""
        if not self._own and self.isVisible():  # hidden: drawn when shown (_sync)
            self._submit_frame(z=z, origin=origin, label=label)

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
        """Make z the Workspace's current latent (recorded in its history); drawn on `current_changed`."""
        if self.ws is not None:
            self.ws.set_current(np.asarray(z, np.float32).reshape(-1), label, origin, coalesce=origin in GESTURE)

    def go_to_data(self, index: int, origin: str = "click") -> None:
        if self.md is not None:
            self.go_to(self.md.ls.latents[index], origin, self.md.caption(index))

    def _on_click(self, x: float, y: float, index: int) -> None:
        if self.projection is None:
            return
        if self.map.mode == "pick":
            self.paths.add_point(x, y, index)
        elif index >= 0:
            self.go_to_data(index)
        else:
            self.map.set_cursor((x, y))
            self._submit_frame(point=(x, y), origin="click")

    def _on_frame(self, generation, request, frame) -> None:
        if self.projection is None or self.ws is None:
            return
        if request.z is None:  # a map point: its latent is known now, and becomes the current one
            if generation < self._jump_gen:
                return  # unless a latent was made current after it was asked for
            self._set_current(frame.z, request.label, request.origin)
        if request.mapping is not self.projection.mapping:  # decoded on a map that is gone:
            self._submit_frame(z=frame.z, origin="replace", label=request.label)  # place it on this one
            return
        self.frame = frame
        self.frames_shown += 1
        if request.origin not in ("drag", "drag-end"):
            scale = max(1e-9, float(np.linalg.norm(frame.z)))
            self.map.set_cursor(frame.point, on_map=frame.off_map <= 1e-4 * scale)
        self.inspector.show_frame(frame.image, frame_caption(frame, request.label, self.projection))
        self.inspection.follow(self.md, frame.z)
        self.frame_shown.emit(frame)

    def _apply_colours(self) -> None:
        self.area.apply_colours(self.md, self.controls.colour.currentData() or "none")

    def _hover(self, index: int):
        return self.md.ds.images[index], self.md.caption(index)

    # ---- selection ---------------------------------------------------------------------------------------------
    def _on_selected(self, indices) -> None:
        self.selection = np.asarray(indices, dtype=np.int64)
        self.controls.show_selection(len(self.selection), selection_summary(self.md, self.selection))
        self.controls.groups.set_selection(self.selection)
        self.selection_changed.emit(self.selection)

    def go_to_selection_mean(self) -> None:
        if self.md is not None and len(self.selection):
            self.go_to(self.md.ls.latents[self.selection].mean(0), "selection",
                       f"mean of {len(self.selection)} selected points")

    # ---- atlas ------------------------------------------------------------------------
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
        menu.addAction(f"Add {what} to the path", lambda: self.paths.add_point(x, y, index))
        menu.addAction(f"Use {what} as an export key", lambda: self.use_as_key(x, y, index))
        if self.controls.atlas_mode:
            menu.addAction("Centre the atlas here", lambda: self.atlas.centre_on(x, y, self.engine, self.projection.mapping))
        if self.controls.atlas_mode and self.atlas.canvas is not None:
            from explorer.widgets import png_export

            menu.addAction("Export the atlas as PNG…", lambda: png_export.export_dialog(
                self, png_export.Content([self.atlas.canvas.copy()]), "atlas", self.ctx))
        menu.addSeparator()
        menu.addAction("Frame all points", self.map.fit)
        menu.popup(global_pos.toPoint())

    def use_as_key(self, x: float, y: float, index: int = -1) -> None:
        """A place on the map becomes one of the Workspace's export keys (the Export panel shows it):
        a data point's own latent, or the latent under a free map position (milliseconds: the map's
        mapping is linear, or a Shepard interpolation on UMAP)."""
        if self.ws is None or self.projection is None:
            return
        if index >= 0:
            z, label = self.md.ls.latents[index], self.md.caption(index, short=True)
        else:
            z, label = self.projection.mapping.to_latent(np.asarray([x, y], np.float64)), f"map ({x:.2f}, {y:.2f})"
        self.ws.add_key(np.asarray(z, np.float32).reshape(-1), label)
        self.ctx.message(f"Export key {len(self.ws.keys)}: {label}")

    # ---- history, bookmarks, path, view (held objects; the shortcuts in actions.py call these) -------------
    @property
    def z(self) -> np.ndarray | None:
        """The current latent: the Workspace's."""
        return self.ws.current if self.ws is not None else None

    @property
    def history(self):
        return self.places.history

    def undo(self) -> None:
        self.places.undo()

    def redo(self) -> None:
        self.places.redo()

    def shortcut_undo(self) -> None:
        if self.isVisible():
            self.undo()

    def shortcut_redo(self) -> None:
        if self.isVisible():
            self.redo()

    def shortcut_bookmark(self) -> None:
        if self.isVisible() and self.z is not None:
            self.places.add_bookmark(self.places.next_name())

    def add_path_point(self, x: float, y: float, index: int = -1) -> None:
        self.paths.add_point(x, y, index)

    def add_cursor_to_path(self) -> None:
        self.paths.add_latent(self.z, "cursor")

    def apply_view(self, projection: str | None = None, colour: str | None = None, view: str | None = None) -> None:
        self.view_state.apply(projection, colour, view)

    def session_state(self) -> dict:
        """The panel's own view (the latent, history, bookmarks and groups are the Workspace's)."""
        return self.view_state.state()

    def restore_session_state(self, d: dict) -> None:
        self.view_state.restore(d)

    # ---- screenshots -----------------------------------------------------------------------------------------
    def ready_for_screenshot(self) -> bool:
        """Data mapped, the current latent decoded and inspected, nothing left to draw (a model that
        cannot encode shows its message at once)."""
        if self.ws is not None and not self.ws.can("encode"):
            return True
        if self.controls.seed_mode:
            return self.seeds.complete and self.inspector.image.has_image() and not self.busy
        return (self.projection is not None and self.inspector.image.has_image() and not self.busy
                and (not self.controls.atlas_mode or self.atlas.complete))

    def prepare_screenshot(self, view: str | None = None, projection: str | None = None, colour: str | None = None,
                           path: int = 0, resolution: int | None = None) -> None:
        """`view` scatter|atlas|seeds, a projection, a colouring, a path through `path` data points of
        different labels, the atlas resolution."""
        if path:
            self.paths.add_labels(path)
        if resolution:
            self.controls.atlas_res.setValue(int(resolution))
        self.apply_view(projection, colour, view)
        if view == "seeds":
            self.seeds.move_to(1.5, 1.5, "end")

    # ---- errors, shutdown ------------------------------------------------------------------------------------
    def _fail(self, title: str, e) -> None:
        self.ctx.session.report(e, title)

    def _stop_work(self) -> None:
        for part in (self.umap, self.inspection, self._frames, self._projector, self.atlas, self.seeds):
            part.cancel()
        self.paths.shutdown()

    def shutdown(self) -> None:
        self._atlas_timer.stop()
        self._stop_work()

    @property
    def busy(self) -> bool:
        return (self.feed.loading or self._frames.busy or self.inspection.busy or self._projector.busy
                or self.atlas.busy or self.paths.busy or self.umap.looking or self.seeds.busy)
