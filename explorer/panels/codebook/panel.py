"""The Codebook panel (issue #6): look inside a VQ-VAE's codebook.

Left: every code as a tile (decoded as a uniform grid of itself, or its most typical data
patch), sortable by usage, dead codes crossed out; under it the usage histogram with the
perplexity and a 2-D map (PCA or UMAP) of the code vectors coloured by usage. Right, two tabs:
Code (the selected code's tiles, data patches that quantise to it, and images where it occurs)
and Token editor (`codebook_editor`). The data is the Workspace's (`ws.request_data()`: loaded and
encoded once for every panel, when this panel is first shown); a worker quantises those latents to
code grids (no second encode). Clicks and edits are answered by workers too.
"""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget)
from PySide6.QtCore import Qt

from engines.data import DataUnavailable, training_source

from explorer.widgets import png_export
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.thumb_grid import ThumbGrid
from explorer.workers import LatestRequestRunner, Worker, run_in_thread
from explorer.panels import Panel
from explorer.panels.codebook import jobs
from explorer.panels.codebook.charts import CodeMap, UsageHistogram
from explorer.panels.codebook.editor import TokenEditor
from explorer.panels.codebook.prior import PriorTrainer
from explorer.panels.codebook.views import CodeTiles


def _detail(request):
    engine, cd, code = request
    return jobs.code_detail(engine, cd, code)


class CodebookPanel(Panel):
    name = "codebook"
    title = "Codebook"

    def __init__(self, ctx, parent=None):
        super().__init__(ctx, parent)
        self.engine = None
        self.info = None
        self.cd: jobs.CodebookData | None = None
        self.selected: int | None = None
        self.message = ""
        self._loader: Worker | None = None  # the analysis of the Workspace's data
        self._deferred = False  # the data is asked for when the panel is first shown
        self._waiting = False  # asked the Workspace for its data, not here yet
        self._umap: dict = {}  # id(cd) → coords
        self._umap_running = False
        self._detail_runner = LatestRequestRunner(_detail, self)
        self._detail_runner.result.connect(self._on_detail)
        self._detail_runner.failed.connect(lambda _g, _r, e: self._error("Could not show the code", e))
        self._build()
        ctx.session.model_changed.connect(self._on_model)
        if ctx.session.engine is not None:
            self._on_model(ctx.session.engine, ctx.session.info)

    # ---- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.status = QLabel("Open a VQ-VAE model in the library to look inside its codebook.")
        self.status.setWordWrap(True)
        self.mode = QComboBox()
        self.mode.addItems(["Tiles: code as uniform grid", "Tiles: most typical patch"])
        self.mode.currentIndexChanged.connect(self._show_tiles)
        self.sort = QComboBox()
        self.sort.addItems(["Sort: code index", "Sort: usage"])
        self.sort.currentIndexChanged.connect(self._apply_sort)
        self.projection = QComboBox()
        self.projection.addItems(["Map: PCA", "Map: UMAP"])
        self.projection.currentIndexChanged.connect(self._show_map)
        self.prior = PriorTrainer()
        self.prior.setEnabled(False)
        self.prior.trained.connect(self._on_prior_trained)
        self.prior.failed.connect(lambda title, msg: self.ctx.session.error.emit(title, msg))
        top = QHBoxLayout()
        for w in (self.mode, self.sort, self.projection):
            top.addWidget(w)
        top.addStretch(1)
        top.addWidget(self.prior)

        self.tiles = CodeTiles()
        self.tiles.clicked.connect(self.select_code)
        png_export.install(self.tiles, lambda: None if self.cd is None else png_export.Content(
            (self.cd.uniform if self.mode.currentIndex() == 0 else self.cd.typical)[self.tiles.order()],
            [f"#{c}" for c in self.tiles.order()]), "codebook", self.ctx)
        self.histogram = UsageHistogram()
        self.map = CodeMap()
        self.map.clicked.connect(self.select_code)
        charts = QSplitter(Qt.Orientation.Horizontal)
        charts.addWidget(self.histogram)
        charts.addWidget(self.map)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.tiles)
        left.addWidget(charts)
        left.setStretchFactor(0, 3)
        left.setStretchFactor(1, 2)

        self.code_title = QLabel("Click a code to see what it draws and where it occurs.")
        self.code_title.setWordWrap(True)
        self.code_uniform = ImageGrid()
        self.code_typical = ImageGrid()
        for w in (self.code_uniform, self.code_typical):
            w.setMinimumSize(96, 96)
            w.setMaximumHeight(150)
        pair = QHBoxLayout()
        for label, w in (("uniform grid", self.code_uniform), ("most typical patch", self.code_typical)):
            col = QVBoxLayout()
            col.addWidget(QLabel(label), 0, Qt.AlignmentFlag.AlignHCenter)
            col.addWidget(w)
            pair.addLayout(col)
        self.patches = ThumbGrid(placeholder="Data patches that use the code appear here.", min_cell=34, max_cell=52,
                                 max_rows=4)
        self.occurrences = ThumbGrid(placeholder="Images where the code occurs appear here.", min_cell=72, max_cell=128,
                                     max_rows=2)
        code_tab = QWidget()
        cl = QVBoxLayout(code_tab)
        cl.addWidget(self.code_title)
        cl.addLayout(pair)
        for text, view in (("<b>Patches that quantise to it</b> (cell and half a cell around it)", self.patches),
                           ("<b>Where it occurs</b> (cells outlined in red)", self.occurrences)):
            caption = QLabel(text)
            caption.setWordWrap(True)
            cl.addWidget(caption)
            cl.addWidget(view)
        cl.addStretch(1)
        self.editor = TokenEditor()
        self.editor.brush_changed.connect(lambda _c: self._mark())
        self.editor.failed.connect(lambda title, msg: self.ctx.session.error.emit(title, msg))
        self.tabs = QTabWidget()
        self.tabs.addTab(code_tab, "Code")
        self.tabs.addTab(self.editor, "Token editor")

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self.tabs)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        self.tabs.setMinimumWidth(400)
        left.setMinimumWidth(300)
        self._split = split
        lay = QVBoxLayout(self)
        lay.addWidget(self.status)
        lay.addLayout(top)
        lay.addWidget(split, 1)

    # ---- the model and its data -------------------------------------------------------------------
    def _on_model(self, engine, info) -> None:
        if self._loader is not None:
            self._loader.quit()
            self._loader = None
        self.ctx.session.set_busy("codebook", None)
        self.engine, self.info, self.cd, self.selected = engine, info, None, None
        self._deferred = self._waiting = False
        self._detail_runner.cancel()
        self.tiles.clear()
        self.histogram.set_counts(None)
        self.map.set_data(None, None)
        self._clear_detail()
        self.editor.set_model(None, None)
        self.prior.set_model(None, None, None, None)
        if engine is None:
            self._say("Open a VQ-VAE model in the library to look inside its codebook.")
            return
        if "codebook" not in engine.capabilities:
            self._say(f"This is a {engine.name} model: it has no codebook. The Codebook panel shows VQ-VAE "
                      "models (train one with the engine 'vqvae').")
            return
        try:
            source = training_source(info)
        except DataUnavailable as e:
            self._say(str(e))
            return
        self.prior.set_model(engine, info, self.ctx.session.path, source)
        ws = self.ctx.workspace
        if ws is not None:
            ws.data_ready.connect(lambda md, ws=ws: ws is self.ctx.workspace and self._on_data(md))
            ws.data_progress.connect(lambda p, ws=ws: ws is self.ctx.workspace and self._on_data_progress(p))
            ws.data_failed.connect(lambda msg, ws=ws: ws is self.ctx.workspace and self._on_data_failed(msg))
        self._start()

    def _say(self, text: str) -> None:
        self.message = text
        self.status.setText(text)

    def _start(self, now: bool = False) -> None:
        """Analyse the Workspace's data, asking for it first when it is not loaded."""
        ws = self.ctx.workspace
        if ws is None:
            return
        if not (now or self.isVisible()):
            self._deferred = True
            self._say("The model's data is encoded when this panel is shown.")
            return
        self._deferred = False
        if ws.data is not None:
            self._analyse(ws.data)
            return
        self._waiting = True
        source = training_source(self.info)
        self._say(f"Encoding {os.path.basename(source.rstrip('/')) or source}…")
        self.ctx.session.set_busy("codebook", "codebook: encoding data")
        ws.request_data()

    def _on_data_progress(self, p) -> None:
        if self._waiting:
            pct = f" {100 * p.fraction:.0f}%" if p.fraction is not None else ""
            self._say(f"Codebook: {p.message}{pct}")

    def _on_data_failed(self, msg: str) -> None:
        if self._waiting:
            self._waiting = False
            self.ctx.session.set_busy("codebook", None)
            self._say(f"Cannot analyse the codebook: {msg}")

    def _on_data(self, md) -> None:
        """The Workspace's data arrived (asked for here or by another panel, or replaced by
        another source): analyse it, unless the panel has not been shown yet."""
        self._waiting = False
        if self._deferred or self.engine is None:
            return
        self._analyse(md)

    def _analyse(self, md) -> None:
        if self._loader is not None:
            self._loader.quit()
        w = Worker(jobs.analyse, self.engine, md)
        w.yielded.connect(lambda step, w=w: self._on_progress(w, step))
        w.returned.connect(lambda cd, w=w: self._on_analysed(w, cd))
        w.errored.connect(lambda e, w=w: self._on_failed(w, e))
        w.finished.connect(lambda w=w: self._on_finished(w))
        self._loader = w
        self._say("Quantising the data's latents to code grids…")
        self.ctx.session.set_busy("codebook", "codebook: code grids")
        w.start()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not getattr(self, "_sized", False):
            self._sized = True
            half = max(1, self._split.width() // 2)
            self._split.setSizes([half, self._split.width() - half])
        if self._deferred:
            self._start(now=True)

    def _on_progress(self, w, step) -> None:
        if w is self._loader:
            pct = f" {100 * step.fraction:.0f}%" if step.fraction is not None else ""
            self._say(f"Codebook: {step.message}{pct}")

    def _on_failed(self, w, e) -> None:
        if w is self._loader:
            self._say(f"Cannot analyse the codebook: {e}")

    def _on_finished(self, w) -> None:
        if w is self._loader:
            self._loader = None
            self.ctx.session.set_busy("codebook", None)

    def _on_analysed(self, w, cd) -> None:
        if w is not self._loader or cd is None:
            return
        self.cd = cd
        used = int((~cd.dead).sum())
        shown = f"{len(cd.images):,} images" if cd.total == len(cd.images) else \
            f"the first {len(cd.images):,} of {cd.total:,} images"
        self._say(f"{cd.name}: {shown} → {cd.grids.shape[1]}×{cd.grids.shape[2]} code grids. "
                  f"K = {cd.k} codes, {used} used ({100 * used / cd.k:.0f}%), {int(cd.dead.sum())} dead, "
                  f"perplexity {cd.perplexity:.1f}. Prior: {'trained' if cd.prior_trained else 'not trained'}.")
        self._show_tiles()
        self._apply_sort()
        self.histogram.set_counts(cd.counts, cd.perplexity)
        self._show_map()
        self.editor.set_model(self.engine, cd)
        self.select_code(int(np.argmax(cd.counts)))

    def _on_prior_trained(self, path: str) -> None:
        if self.cd is not None and self.engine is not None:
            self.cd.prior_trained = self.engine.prior_trained
            self.editor.set_model(self.engine, self.cd)
            self._say(self.status.text().replace("Prior: not trained.", "Prior: trained."))
        if path:
            self.ctx.message(f"Prior saved in {os.path.basename(path)}")

    # ---- views ------------------------------------------------------------------------------------
    def _tips(self) -> list[str]:
        cd = self.cd
        total = max(1, int(cd.counts.sum()))
        rank = np.empty(cd.k, int)
        rank[np.argsort(-cd.counts, kind="stable")] = np.arange(1, cd.k + 1)
        return [f"code {c}: {int(n):,} cells ({100 * n / total:.2f}%), usage rank {rank[c]}"
                + (" — dead (never used on this data)" if n == 0 else "") for c, n in enumerate(cd.counts)]

    def _show_tiles(self) -> None:
        if self.cd is None:
            return
        tiles = self.cd.uniform if self.mode.currentIndex() == 0 else self.cd.typical
        self.tiles.set_tiles(tiles, self.cd.dead, self._tips())

    def _apply_sort(self) -> None:
        if self.cd is None:
            return
        order = np.arange(self.cd.k) if self.sort.currentIndex() == 0 else np.argsort(-self.cd.counts, kind="stable")
        self.tiles.set_order(order)

    def _show_map(self) -> None:
        cd = self.cd
        if cd is None:
            return
        if self.projection.currentIndex() == 0:
            self.map.set_data(cd.coords, cd.counts, "PCA")
        elif id(cd) in self._umap:
            self.map.set_data(self._umap[id(cd)], cd.counts, "UMAP")
        elif not self._umap_running:
            self._umap_running = True
            self.ctx.session.set_busy("codebook-umap", "codebook: UMAP of the code vectors")

            def done(coords, cd=cd):
                self._umap_running = False
                self.ctx.session.set_busy("codebook-umap", None)
                self._umap[id(cd)] = coords
                if cd is self.cd:
                    self._show_map()

            def failed(e):
                self._umap_running = False
                self.ctx.session.set_busy("codebook-umap", None)
                self.projection.setCurrentIndex(0)
                self._error("UMAP failed", e)

            run_in_thread(jobs.umap_coords, cd.vectors, on_result=done, on_error=failed)
        self.map.set_selected(self.selected)

    def _mark(self) -> None:
        self.tiles.set_marks(self.selected, self.editor.brush if self.cd is not None else None)
        self.map.set_selected(self.selected)

    def select_code(self, code: int) -> None:
        """Show one code in the Code tab, and make it the token editor's brush."""
        if self.cd is None or not 0 <= code < self.cd.k:
            return
        self.selected = int(code)
        self.editor.set_brush(self.selected)
        self._mark()
        cd = self.cd
        n = int(cd.counts[code])
        share = 100 * n / max(1, int(cd.counts.sum()))
        self.code_title.setText(f"<b>Code {code}</b>: {n:,} cells ({share:.2f}% of all), in "
                                f"{int((cd.grids == code).any(axis=(1, 2)).sum()):,} of {len(cd.images):,} images"
                                + (" — <span style='color:#d22'>dead</span>" if n == 0 else ""))
        self.code_uniform.set_image(cd.uniform[code])
        self.code_typical.set_image(cd.typical[code])
        self._detail_runner.submit((self.engine, cd, int(code)))

    def _on_detail(self, _gen, request, d) -> None:
        if request[1] is not self.cd:
            return
        self.patches.set_images(d.patches if len(d.patches) else None, tips=d.patch_tips)
        self.occurrences.set_images(d.occurrences if len(d.occurrences) else None, captions=d.occurrence_tips,
                                     tips=d.occurrence_names)
        if not len(d.patches):
            self.patches.set_placeholder("No data patch uses this code (a dead code).")
            self.occurrences.set_placeholder("It occurs nowhere in the data.")

    def _clear_detail(self) -> None:
        self.code_title.setText("Click a code to see what it draws and where it occurs.")
        self.code_uniform.set_image(None)
        self.code_typical.set_image(None)
        self.patches.set_images(None)
        self.occurrences.set_images(None)

    def _error(self, title: str, e) -> None:
        self.ctx.session.error.emit(title, str(e) or type(e).__name__)

    # ---- screenshots and lifecycle -----------------------------------------------------------------
    def prepare_screenshot(self, tab: str = "code", code: int | None = None, sort: str = "usage",
                           tiles: str = "uniform", image: int | None = None, paint=None) -> None:
        """`paint`: (i, j, code) cells the token editor paints into `image` (default: two cells with
        the selected code)."""
        self.sort.setCurrentIndex(1 if sort == "usage" else 0)
        self.mode.setCurrentIndex(1 if tiles.startswith("typ") else 0)
        if self.cd is None:
            return
        if code is not None:
            self.select_code(code)
        if tab.startswith("token"):
            self.tabs.setCurrentIndex(1)
            if image is not None:
                self.editor.use_image(image)
            for i, j, c in paint or [(3, 3, self.editor.brush), (3, 4, self.editor.brush)]:
                brush = self.editor.brush
                self.editor.set_brush(c)
                self.editor.paint_cells([(i, j)])
                self.editor.set_brush(brush)

    def ready_for_screenshot(self) -> bool:
        if self.engine is None or "codebook" not in self.engine.capabilities:
            return True
        if self._loader is not None or self._deferred or self._waiting or self.prior.running:
            return False
        return self.cd is None or not (self._detail_runner.busy or self.editor.busy or self._umap_running)

    @property
    def busy(self) -> bool:
        return not self.ready_for_screenshot()

    def shutdown(self) -> None:
        if self._loader is not None:
            self._loader.quit()
        self._detail_runner.cancel()
        self.editor.shutdown()
        self.prior.cancel()
