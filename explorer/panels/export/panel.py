"""Export panel: build a video (a walk through key latents, an attribute sweep, a grid of seeds,
a diffusion trajectory), preview it, and write MP4/GIF/PNG in the background with progress and
Cancel; a session (File → Save Session, explorer/sessions.py) keeps its export and settings.

The keys and the attribute vectors are the Workspace's (`ws.keys`, `ws.vectors`): keys come from
seeds, the current latent, the bookmarks, image files or a session, and whatever another panel
adds to `ws.keys` shows up here. The panel never reaches into another panel.
The preview renders every frame small in a worker (latest request wins) and plays it at the
chosen rate; the export runs `engines.export.run_export` in a worker — Cancel closes the
generator, and the writer removes its temporary file, so nothing appears under the final name.
"""
from __future__ import annotations

import copy
import os

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QFileDialog, QFrame, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from explorer.widgets.image_grid import ImageGrid
from explorer.workers import LatestRequestRunner, Worker
from explorer.panels import Panel
from explorer.panels.export.jobs import PreviewRequest, export, preview, thumbnails
from explorer.panels.export.keys import KeyList, KeySources
from explorer.panels.export.options import ExportOptions, output_name


class ExportPanel(Panel):
    name = "export"
    title = "Export"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.engine = self.info = None
        self.preview_data = None
        self.worker: Worker | None = None
        self.last_result = None
        self._frame = 0
        self._stale = True
        self._build()
        self._preview = LatestRequestRunner(preview, self)
        self._preview.result.connect(self._on_preview)
        self._preview.failed.connect(lambda g, r, e: self._set_preview_text(f"No preview: {e}"))
        self._thumbs = LatestRequestRunner(lambda req: thumbnails(*req), self)
        self._thumbs.result.connect(lambda g, r, imgs: self.keys.set_thumbnails(imgs))
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(250)
        self._debounce.timeout.connect(self.refresh_preview)
        ctx.session.model_changed.connect(self._on_model)
        ctx.session.load_started.connect(lambda _path: self._show_waiting(True))
        ctx.session.load_failed.connect(lambda _path, _msg: self._show_waiting(False))
        self._on_model(ctx.session.engine, ctx.session.info)

    # ---- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.keys = KeyList()
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setPrefix("seed ")
        self.sources = KeySources(self.ctx, self.seed, self)
        self.add_seed_btn = QPushButton("Add")
        self.add_seed_btn.setToolTip("Add the prior latent drawn with this seed (then the seed moves on)")
        self.add_map_btn = QPushButton("From map")
        self.add_map_btn.setToolTip("Add the current latent (picked on the Manifold panel's map)")
        self.add_marks_btn = QPushButton("Bookmarks")
        self.add_marks_btn.setToolTip("Add every bookmark of this model")
        self.add_image_btn = QPushButton("Image…")
        self.add_image_btn.setToolTip("Encode an image file (or several) and add its latent")
        self.remove_btn = QPushButton("Remove")
        self.left_btn, self.right_btn = QPushButton("◀"), QPushButton("▶")
        for b in (self.left_btn, self.right_btn):
            b.setMaximumWidth(32)
        row1 = QHBoxLayout()
        for w in (self.seed, self.add_seed_btn, self.add_map_btn, self.add_marks_btn):
            row1.addWidget(w)
        row2 = QHBoxLayout()
        row2.addWidget(self.add_image_btn)
        row2.addWidget(self.remove_btn)
        row2.addStretch(1)
        row2.addWidget(QLabel("move"))
        row2.addWidget(self.left_btn)
        row2.addWidget(self.right_btn)
        keys_box = QGroupBox("Keys")
        kl = QVBoxLayout(keys_box)
        kl.addWidget(self.keys, 1)
        kl.addLayout(row1)
        kl.addLayout(row2)

        self.options = ExportOptions()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.export_btn = QPushButton("Export…")
        self.export_btn.setDefault(True)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.data_btn = QPushButton("Data…")
        self.data_btn.setToolTip("Latents, map coordinates, vectors, bookmarks, codebook usage")
        from explorer.panels.export.data import build_menu

        self.data_btn.setMenu(build_menu(self))
        go = QHBoxLayout()
        go.addWidget(self.export_btn, 1)
        go.addWidget(self.cancel_btn)
        go.addWidget(self.data_btn)
        left = QVBoxLayout()
        left.addWidget(keys_box)
        left.addWidget(self.options)
        left.addWidget(self.summary)
        left.addLayout(go)
        left.addWidget(self.progress)
        left.addWidget(self.status)
        left.addStretch(1)
        lw = QWidget()
        lw.setLayout(left)
        scroll = QScrollArea()  # the form scrolls on short screens instead of growing the window
        scroll.setWidget(lw)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        lw.setFixedWidth(360)
        scroll.setFixedWidth(360 + scroll.verticalScrollBar().sizeHint().width())

        self.view = ImageGrid(placeholder="Add two or more keys (or pick a grid of seeds) to see a preview.")
        self.frame_label = QLabel("")
        self.play_btn = QPushButton("Pause")
        self.play_btn.setCheckable(True)
        bar = QHBoxLayout()
        bar.addWidget(self.frame_label, 1)
        bar.addWidget(self.play_btn)
        right = QVBoxLayout()
        head = QLabel("<b>Preview</b> <span style='color:#666'>(small; the export renders at full size)</span>")
        right.addWidget(head)
        right.addWidget(self.view, 1)
        right.addLayout(bar)
        lay = QHBoxLayout(self)
        lay.addWidget(scroll)
        lay.addLayout(right, 1)

        self.add_seed_btn.clicked.connect(self.sources.add_seed_key)
        self.add_map_btn.clicked.connect(self.sources.add_map_key)
        self.add_marks_btn.clicked.connect(self.sources.add_bookmark_keys)
        self.add_image_btn.clicked.connect(self.sources.add_image_dialog)
        self.remove_btn.clicked.connect(self.keys.remove_selected)
        self.left_btn.clicked.connect(lambda: self.keys.move_selected(-1))
        self.right_btn.clicked.connect(lambda: self.keys.move_selected(1))
        self.keys.changed.connect(self._keys_changed)
        self.options.changed.connect(self._schedule_preview)
        self.export_btn.clicked.connect(self.export_dialog)
        self.cancel_btn.clicked.connect(self.cancel)
        self.play_btn.toggled.connect(lambda on: self.play_btn.setText("Play" if on else "Pause"))

    # ---- model and keys ------------------------------------------------------------------------------
    def _on_model(self, engine, info) -> None:
        if self.worker is not None and engine is not self.engine:
            self.cancel()
        ws = self.ctx.workspace
        self.engine, self.info = engine, info
        self.preview_data = None
        self._timer.stop()
        self.view.set_image(None)
        self.frame_label.setText("")
        self.summary.setText("")
        ok = engine is not None and ws is not None and "decode" in engine.capabilities
        for w in (self.add_seed_btn, self.add_map_btn, self.add_marks_btn, self.export_btn):
            w.setEnabled(ok)
        self.add_image_btn.setEnabled(ok and "encode" in engine.capabilities)
        if not ok:
            self.keys.set_workspace(None)
            self.options.set_vectors([])
            if engine is not None and ws is not None:  # a model with no latent (PixelCNN): no keys to walk
                self.view.set_placeholder(f"A {engine.name} model has no latent to walk through. Its pixel-by-pixel "
                                          "generation exports with `sample --video`; right-click the Pixels "
                                          "tab's picture to save it as a PNG.")
                return
            self._show_waiting(self.ctx.session.loading)
            return
        # The model is here: never leave "Load a model" on show while the preview renders.
        self.view.set_placeholder("Rendering the preview…")
        self.options.set_kinds("trajectory" in engine.capabilities, True)
        ws.vectors_changed.connect(lambda ws=ws: ws is self.ctx.workspace and self._vectors_changed())
        self.options.set_vectors(self.vectors())
        if not ws.keys and "sample" in engine.capabilities:
            from engines.export.timeline import prior_latents

            zs = prior_latents(engine, 4, 0)
            ws.set_keys(zs, [f"seed 0·{i}" for i in range(len(zs))])
            self.seed.setValue(1)
        self.keys.set_workspace(ws)

    def _show_waiting(self, loading: bool) -> None:
        """The placeholder while there is no model: loading one, or none chosen yet."""
        if self.engine is not None:
            return
        if loading:
            self.view.set_placeholder("Loading the model…")
        else:
            self.view.set_placeholder("Load a model in the library to export from it.")

    def _vectors_changed(self) -> None:
        self.options.set_vectors(self.vectors())
        self._schedule_preview()

    def _keys_changed(self) -> None:
        if self.engine is not None:
            self._thumbs.submit((self.engine, np.stack(self.keys.keys) if self.keys.keys else np.zeros((0, 1))))
        self._schedule_preview()

    def vectors(self) -> list:
        """(name, AttributeVector) of the Workspace's vectors, the switched-on ones first."""
        ws = self.ctx.workspace
        if ws is None:
            return []
        active = ws.active_vectors
        rest = [v for v in ws.vectors if not ws.is_active(v.name)]
        return [(v.name, v) for v in active + rest]

    def add_image_key(self, path: str):
        """Encode an image file in a worker and add it to the keys (see KeySources)."""
        return self.sources.add_image_key(path)

    # ---- spec and preview ---------------------------------------------------------------------------------
    def current_spec(self):
        """The ExportSpec the panel describes now (ValueError when something is missing)."""
        self.options.set_vectors(self.vectors())
        ws = self.ctx.workspace
        base = None if ws is None else ws.current  # a sweep without keys starts at the current latent
        return self.options.spec(self.engine, self.keys.keys, self.keys.labels, base)

    def _schedule_preview(self) -> None:
        """Render the preview soon — only while the panel is on show (loading a model elsewhere
        should not spend seconds decoding a walk nobody looks at); showing it catches up."""
        self._stale = True
        if self.isVisible():
            self._debounce.start()

    def refresh_preview(self) -> None:
        if self.engine is None:
            return
        try:
            spec = self.current_spec()
        except ValueError as e:
            self._set_preview_text(str(e))
            self.summary.setText("")
            return
        self.status.setText("")
        self._stale = False
        self._preview.submit(PreviewRequest(self.engine, copy.deepcopy(spec)))

    def _set_preview_text(self, text: str) -> None:
        self.preview_data = None
        self._timer.stop()
        self.view.set_image(None)
        self.view.set_placeholder(text)
        self.frame_label.setText("")

    def _on_preview(self, generation, request, p) -> None:
        if request.engine is not self.engine:
            return
        self.preview_data = p
        n = len(p.frames)
        w, h = p.full_size
        secs = n / p.fps
        self.summary.setText(f"{n} frame{'s' * (n != 1)}, {secs:.1f} s at {p.fps:g} fps, {w}×{h} px"
                             + (", loops" if p.loop and n > 1 else ""))
        self._frame = 0
        self._show_frame()
        if n > 1:
            self._timer.start(max(10, int(1000 / p.fps)))
        else:
            self._timer.stop()

    def _tick(self) -> None:
        p = self.preview_data
        if p is None or self.play_btn.isChecked():
            return
        self._frame = (self._frame + 1) % len(p.frames)
        self._show_frame()

    def _show_frame(self) -> None:
        p = self.preview_data
        self.view.set_image(p.frames[self._frame])
        self.frame_label.setText(f"frame {self._frame + 1} / {len(p.frames)}")

    # ---- export -------------------------------------------------------------------------------------------
    def export_dialog(self, ask=None) -> None:
        """Ask for a file and export to it; a name whose extension disagrees with the chosen format
        is asked about (`ask`, as options.output_name; tests pass their own)."""
        try:
            spec = self.current_spec()
        except ValueError as e:
            self.ctx.session.report(e, "Cannot export")
            return
        ext = self.options.extension(spec)
        start = os.path.join(self.ctx.settings.last_open_dir or os.path.expanduser("~"), f"export{ext}")
        path, _ = QFileDialog.getSaveFileName(self, "Export", start, f"*{ext}")
        if not path:
            return
        chosen = output_name(self, path, ext, **({"ask": ask} if ask else {}))
        if chosen is None:
            return
        path, written = chosen
        if written != ext:  # the name's format: the form shows what is written
            self.options.set_format(written)
        self.export_to(path, spec)

    def export_to(self, path: str, spec=None) -> Worker | None:
        """Start writing `path` in a worker (the tests call this directly)."""
        if self.engine is None or self.worker is not None:
            return None
        try:
            spec = spec or self.current_spec()
        except ValueError as e:
            self.ctx.session.report(e, "Cannot export")
            return None
        w = Worker(export, self.engine, copy.deepcopy(spec), path)
        w.yielded.connect(self._on_progress)
        w.returned.connect(self._on_exported)
        w.errored.connect(lambda e: self.ctx.session.report(e, "Export failed"))
        w.finished.connect(self._on_finished)
        self.worker = w
        self.last_result = None
        self.export_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.progress.setValue(0)
        self.status.setText(f"Exporting {os.path.basename(path)}…")
        self.ctx.session.set_busy("export", f"exporting {os.path.basename(path)}")
        w.start("long")
        return w

    def _on_progress(self, p) -> None:
        if p.fraction is not None:
            self.progress.setValue(int(1000 * p.fraction))
        self.status.setText(p.message)

    def _on_exported(self, r) -> None:
        if r is None:  # cancelled: the generator was closed
            self.status.setText("Cancelled; nothing was written.")
            return
        self.last_result = r
        self.progress.setValue(1000)
        w, h = r.size
        self.status.setText(f"Wrote {r.frames} frame{'s' * (r.frames != 1)} ({w}×{h}) to {r.path}")
        self.ctx.message(f"Exported {r.path}", 6000)

    def _on_finished(self) -> None:
        self.worker = None
        self.export_btn.setEnabled(self.engine is not None)
        self.cancel_btn.setEnabled(False)
        self.ctx.session.set_busy("export", None)

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.status.setText("Cancelling…")

    @property
    def busy(self) -> bool:
        return self.worker is not None or self._preview.busy or self._thumbs.busy or self._debounce.isActive()

    # ---- sessions (explorer/sessions.py collects and restores these) --------------------------------------
    def session_state(self) -> dict:
        """The panel's own state in a session: the output settings and the seed box."""
        return {"output": self.options.output_state(), "seed": self.seed.value()}

    def restore_session_state(self, d: dict) -> None:
        self.options.set_output_state(d.get("output", {}))
        self.seed.setValue(int(d.get("seed", 0)))

    def session_export(self):
        """The export this panel describes (a session's `export`, what `export --session`
        regenerates), or None while it is incomplete."""
        if self.engine is None:
            return None
        try:
            return self.current_spec()
        except ValueError:
            return None

    def restore_session_export(self, spec) -> None:
        self.options.set_vectors(self.vectors())
        self.options.set_spec(spec)
        self._schedule_preview()

    # ---- screenshots, shutdown ----------------------------------------------------------------------------
    def ready_for_screenshot(self) -> bool:
        return self.engine is not None and self.preview_data is not None and not self.busy

    def prepare_screenshot(self, **_) -> None:
        self.play_btn.setChecked(True)  # a still frame, partway through the walk
        if self.preview_data is not None:
            self._frame = len(self.preview_data.frames) // 3
            self._show_frame()

    def shutdown(self) -> None:
        self._timer.stop()
        self._debounce.stop()
        self._preview.cancel()
        self._thumbs.cancel()
        if self.worker is not None:
            self.worker.quit()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self.engine is not None and (self.preview_data is None or self._stale):
            self._schedule_preview()
