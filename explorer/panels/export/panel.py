"""Export panel: build a video (a walk through key latents, an attribute sweep, a grid of seeds,
a diffusion trajectory), preview it, and write MP4/GIF/PNG in the background with progress and
Cancel; File → Save/Open Session keeps everything needed to regenerate it.

Keys come from seeds, from the Manifold panel (its current latent, its bookmarks) or a session.
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
from explorer.panels.export.options import ExportOptions


class ExportPanel(KeySources, Panel):
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
        self._on_model(ctx.session.engine, ctx.session.info)

    # ---- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.keys = KeyList()
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setPrefix("seed ")
        self.add_seed_btn = QPushButton("Add")
        self.add_seed_btn.setToolTip("Add the prior latent drawn with this seed (then the seed moves on)")
        self.add_map_btn = QPushButton("From map")
        self.add_map_btn.setToolTip("Add the Manifold panel's current latent")
        self.add_marks_btn = QPushButton("Bookmarks")
        self.add_marks_btn.setToolTip("Add every bookmark of the Manifold panel")
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

        self.add_seed_btn.clicked.connect(self.add_seed_key)
        self.add_map_btn.clicked.connect(self.add_map_key)
        self.add_marks_btn.clicked.connect(self.add_bookmark_keys)
        self.add_image_btn.clicked.connect(self.add_image_dialog)
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
        self.engine, self.info = engine, info
        self.preview_data = None
        self._timer.stop()
        self.view.set_image(None)
        self.keys.clear_keys()
        ok = engine is not None
        for w in (self.add_seed_btn, self.add_map_btn, self.add_marks_btn, self.export_btn):
            w.setEnabled(ok)
        self.add_image_btn.setEnabled(ok and "encode" in engine.capabilities)
        if not ok:
            self.view.set_placeholder("Load a model in the library to export from it.")
            return
        self.options.set_kinds("trajectory" in engine.capabilities, True)
        if "sample" in engine.capabilities:
            from engines.export.timeline import prior_latents

            for i, z in enumerate(prior_latents(engine, 4, 0)):
                self.keys.add(z, f"seed 0·{i}")
            self.seed.setValue(1)

    def _keys_changed(self) -> None:
        if self.engine is not None:
            self._thumbs.submit((self.engine, np.stack(self.keys.keys) if self.keys.keys else np.zeros((0, 1))))
        self._schedule_preview()

    def vectors(self) -> list:
        a = self._other("arithmetic")
        vl = getattr(a, "vectors", None)
        return [(v.name, v) for v in vl.vectors()] if vl is not None and hasattr(vl, "vectors") else []

    # ---- spec and preview ---------------------------------------------------------------------------------
    def current_spec(self):
        """The ExportSpec the panel describes now (ValueError when something is missing)."""
        self.options.set_vectors(self.vectors())
        a = self._other("arithmetic")
        base = getattr(getattr(getattr(a, "edit", None), "base", None), "z", None)
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
    def export_dialog(self) -> None:
        try:
            spec = self.current_spec()
        except ValueError as e:
            self.ctx.session.report(e, "Cannot export")
            return
        ext = self.options.extension(spec)
        start = os.path.join(self.ctx.settings.last_open_dir or os.path.expanduser("~"), f"export{ext}")
        path, _ = QFileDialog.getSaveFileName(self, "Export", start, f"*{ext}")
        if path:
            if not path.lower().endswith(ext):
                path += ext
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

    # ---- sessions (File menu) -------------------------------------------------------------------------------
    def save_session_dialog(self) -> None:
        from explorer.panels.export import session as export_session

        export_session.save_dialog(self)

    def open_session_dialog(self) -> None:
        from explorer.panels.export import session as export_session

        export_session.open_dialog(self)

    def _apply_pending_session(self, engine, info) -> None:
        from explorer.panels.export import session as export_session

        s, self._pending_session = getattr(self, "_pending_session", None), None
        try:
            self.ctx.session.model_changed.disconnect(self._apply_pending_session)
        except (RuntimeError, TypeError):
            pass
        if s is None or engine is None:
            return
        # After this panel's own _on_model (connected first), which reset the keys.
        notes = export_session.restore(self, s)
        self.ctx.message("Session restored" + (f" ({'; '.join(notes)})" if notes else ""), 6000)

    def save_panel_png(self) -> None:
        """File → Save Panel as PNG: the panel on show, as it looks."""
        win = self.window()
        panel = win.tabs.currentWidget() if hasattr(win, "tabs") else self
        start = os.path.join(self.ctx.settings.last_open_dir or os.path.expanduser("~"), f"{panel.name or 'panel'}.png")
        path, _ = QFileDialog.getSaveFileName(self, "Save panel as PNG", start, "PNG images (*.png)")
        if path:
            ok = panel.grab().save(path if path.lower().endswith(".png") else path + ".png")
            self.ctx.message(f"Saved {path}" if ok else f"Could not write {path}", 5000)

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
