"""Paths on the map: the picked points, the interpolation between them (computed in a worker:
latents, the line on the map, the decoded strip) and the animation along it. `PathEditor` is the
object the Manifold panel holds: picking points, playing, the strip's clicks.

The animation steps through the finely sampled path latents the worker returned (no math on the
GUI thread) and asks the panel to show each one (`PathEditor.go`), which goes through the same
latest-request-wins decoder as a drag — so a slow decoder drops frames instead of lagging.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from explorer.widgets.thumb_grid import ThumbGrid
from explorer.workers import LatestRequestRunner
from explorer.panels.manifold.jobs import Knot, PathRequest, render_path

FRAME_MS = 33  # ~30 frames/s
SECONDS_PER_SEGMENT = 2.0


class PathTool(QObject):
    changed = Signal(object)  # PathResult (or None when cleared)
    frame_requested = Signal(object, int)  # latent (D,), index of the nearest strip frame
    playing_changed = Signal(bool)
    failed = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.knots: list[Knot] = []
        self.labels: list[str] = []
        self.data_indices: list[int | None] = []
        self.result = None
        self.method = "slerp"
        self.steps = 8
        self.loop = True
        self._engine = None
        self._mapping = None
        self._runner = LatestRequestRunner(render_path, self)
        self._runner.result.connect(self._on_result)
        self._runner.failed.connect(lambda g, r, e: self.failed.emit(str(e)))
        self._timer = QTimer(self)
        self._timer.setInterval(FRAME_MS)
        self._timer.timeout.connect(self._tick)
        self._frame = 0  # index into result.fine
        self._pos = 0.0  # fractional position along result.fine

    # ---- state ------------------------------------------------------------------------------------------
    def set_context(self, engine, mapping) -> None:
        """The engine and the map now shown; the path is recomputed (its trace moves with the map)."""
        self._engine, self._mapping = engine, mapping
        if engine is None or mapping is None:
            self.stop()
            self._runner.cancel()
            return
        self.refresh()

    def add(self, knot: Knot, label: str, data_index: int | None = None) -> None:
        self.knots.append(knot)
        self.labels.append(label)
        self.data_indices.append(data_index)
        self.refresh()

    def clear(self) -> None:
        self.stop()
        self.knots, self.labels, self.data_indices = [], [], []
        self.result = None
        self._runner.cancel()
        self.changed.emit(None)

    def set_options(self, method: str, steps: int) -> None:
        if (method, int(steps)) != (self.method, self.steps):
            self.method, self.steps = method, int(steps)
            self.refresh()

    @property
    def busy(self) -> bool:
        return self._runner.busy

    def latents(self) -> np.ndarray | None:
        """The picked latents once resolved (None while a free point is still being read off the map)."""
        if self.knots and all(k.z is not None for k in self.knots):
            return np.stack([np.asarray(k.z, dtype=np.float64).reshape(-1) for k in self.knots])
        if self.result is None or len(self.result.knots) != len(self.knots):
            return None
        return self.result.knots

    def refresh(self) -> None:
        if not self.knots or self._engine is None or self._mapping is None:
            return
        self._runner.submit(PathRequest(self._engine, self._mapping, tuple(self.knots), self.method, self.steps))

    def _on_result(self, generation, request, result) -> None:
        if not self._runner.is_current(generation):
            return
        # Free points are now latents: they stay where they are when the map changes.
        self.knots = [Knot(z=z) for z in result.knots]
        self.result = result
        self.changed.emit(result)
        if self.playing and len(result.fine) < 2:
            self.stop()

    # ---- animation ----------------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def play(self) -> bool:
        if self.result is None or len(self.result.fine) < 2:
            return False
        if self._pos >= len(self.result.fine) - 1:
            self._pos = 0.0
        self._timer.start()
        self.playing_changed.emit(True)
        return True

    def stop(self) -> None:
        if self._timer.isActive():
            self._timer.stop()
            self.playing_changed.emit(False)

    def _tick(self) -> None:
        r = self.result
        if r is None or len(r.fine) < 2:
            self.stop()
            return
        n_seg = max(1, len(r.knots) - 1)
        last = len(r.fine) - 1
        self._pos += last / (n_seg * SECONDS_PER_SEGMENT * 1000 / FRAME_MS)
        if self._pos > last:
            if not self.loop:
                self._emit_frame(r, last)
                self._pos = 0.0
                self.stop()
                return
            self._pos = 0.0
        self._frame = int(round(self._pos))
        self._emit_frame(r, self._frame)

    def _emit_frame(self, r, k: int) -> None:
        t = k / max(1, len(r.fine) - 1)
        strip = int(round(t * (len(r.latents) - 1)))
        self.frame_requested.emit(r.fine[k], strip)

    def shutdown(self) -> None:
        self.stop()
        self._runner.cancel()


class PathStrip(QWidget):
    """The decoded path under the map: a title and the frames, picked points numbered; hidden
    until a path has two points. Clicking a frame emits `clicked(index)`."""

    clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = QLabel("")
        self.grid = ThumbGrid(min_cell=40, max_cell=64, max_rows=2)
        self.grid.setToolTip("The decoded path; click a frame to go there")
        self.grid.clicked.connect(self.clicked)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 2, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.title)
        lay.addWidget(self.grid)
        self.hide()

    def show_result(self, result) -> None:
        if result is None or len(result.knots) < 2:
            self.grid.set_images(None)
            self.hide()
            return
        steps, n = result.steps, len(result.knots)
        captions = [str(i // steps + 1) if i % steps == 0 else "" for i in range(len(result.images))]
        self.grid.set_images(result.images, captions)
        method = "spherical" if result.method == "slerp" else "linear"
        self.title.setText(f"<b>Path</b> through {n} points, {method}: {len(result.images)} frames")
        self.show()

    def set_highlight(self, index: int | None) -> None:
        self.grid.set_highlight(index)

    def count(self) -> int:
        return self.grid.count()

    @property
    def highlight(self) -> int | None:
        return self.grid.highlight


class PathEditor(QObject):
    """The path as the Manifold panel edits it: points picked on the map (data points, free map
    positions or the current latent), the line and numbered points on the map, the decoded strip
    under it, the form's path controls, and playing along it. It never sets the current latent
    itself: a frame to show (a strip click, an animation step) goes out as `go(latent, origin,
    label)` and the panel makes it the Workspace's current latent; `gesture_ended` when playing
    stops (one history entry per play)."""

    go = Signal(object, str, str)  # latent, origin ("path" | "animate"), label
    gesture_ended = Signal()

    def __init__(self, latent_map, strip: PathStrip, controls, parent=None):
        super().__init__(parent)
        self.map, self.strip, self.controls = latent_map, strip, controls
        self.projection = None
        self.md = None  # the Workspace's ModelData the map shows
        self.tool = PathTool(self)
        t, c = self.tool, controls
        t.changed.connect(self._on_path)
        t.frame_requested.connect(self._on_frame)
        t.playing_changed.connect(c.set_playing)
        t.failed.connect(lambda m: c.path_status.setText(f"Could not draw the path: {m}"))
        c.path_clear.connect(t.clear)
        c.path_changed.connect(lambda: t.set_options(c.path_method.currentData(), c.path_steps.value()))
        c.path_play.connect(self._on_play)
        c.loop.toggled.connect(lambda on: setattr(t, "loop", on))
        strip.clicked.connect(self._on_strip_clicked)

    def set_map(self, engine, projection, md) -> None:
        """The map now shown (None: none): the path is redrawn on it."""
        self.projection, self.md = projection, md
        self.tool.set_context(engine, None if projection is None else projection.mapping)

    # ---- what the panel reads --------------------------------------------------------------------------
    @property
    def result(self):
        return self.tool.result

    @property
    def playing(self) -> bool:
        return self.tool.playing

    @property
    def busy(self) -> bool:
        return self.tool.busy

    def latents(self):
        return self.tool.latents()

    def clear(self) -> None:
        self.tool.clear()

    def stop(self) -> None:
        self.tool.stop()

    def shutdown(self) -> None:
        self.tool.shutdown()

    # ---- picking ------------------------------------------------------------------------------------------
    def add_point(self, x: float, y: float, index: int = -1) -> None:
        """A data point (index ≥ 0: its own latent) or the free map position (x, y)."""
        if self.projection is None:
            return
        if index >= 0 and self.md is not None:
            self.tool.add(Knot(z=self.md.ls.latents[index]), self.md.caption(index), index)
        else:
            self.tool.add(Knot(point=(x, y), mapping=self.projection.mapping), f"({x:.2f}, {y:.2f})")

    def add_labels(self, n: int) -> None:
        """A path through the first training image of each of the first `n` labels (screenshots)."""
        if self.md is None:
            return
        ls = self.md.ls
        labels = ls.labels[ls.train_idx] if ls.labels is not None else np.zeros(len(ls.train_idx), np.int64)
        for lab in np.unique(labels)[:n]:
            self.add_point(0.0, 0.0, int(ls.train_idx[np.flatnonzero(labels == lab)[0]]))

    def add_latent(self, z, label: str = "cursor") -> None:
        if z is not None:
            self.tool.add(Knot(z=np.asarray(z, np.float32).reshape(-1)), label)

    # ---- drawing and playing ---------------------------------------------------------------------------------
    def _on_path(self, result) -> None:
        self.map.set_knots(None if result is None else result.knots_on_map)
        self.map.set_path(None if result is None or not len(result.trace) else result.trace)
        self.strip.show_result(result)
        n = 0 if result is None else len(result.knots)
        self.controls.plane_btn.setEnabled(n >= 3)
        self.controls.path_status.setText("Pick two or more points." if n == 0 else
                                          "1 point picked; pick another." if n == 1 else
                                          f"{n} points · {len(result.images)} frames.")

    def _on_play(self, on: bool) -> None:
        if on and not self.tool.play():
            self.controls.set_playing(False)
            self.controls.path_status.setText("Pick two or more points to play a path.")
        elif not on:
            self.tool.stop()
            self.gesture_ended.emit()

    def _on_frame(self, z, strip_index: int) -> None:
        self.strip.set_highlight(strip_index)
        self.go.emit(z, "animate", "on the path")

    def _on_strip_clicked(self, i: int) -> None:
        r = self.tool.result
        if r is not None and i < len(r.latents):
            self.strip.set_highlight(i)
            self.go.emit(r.latents[i], "path", f"path frame {i + 1}/{len(r.latents)}")
