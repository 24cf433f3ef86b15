"""The Compare results: a column per model (its name, its samples from the shared seeds, its map
of the same data points), one legend, and the metrics table below.

Hovering a point on one map shows that data point's image there and rings the same data index on
every other map (linked hover: where each model puts the same face). The view only shows a
`engines.compare.Comparison`; computing one is the Compare window's worker's job.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QGridLayout, QHeaderView, QLabel, QSizePolicy, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from engines.compare import cell
from explorer.widgets import map_colours
from explorer.widgets.latent_map import LatentMap
from explorer.widgets.map_legend import MapLegend
from explorer.widgets.thumb_grid import ThumbGrid

FAMILY = {"pca": "PCA", "ae": "autoencoder", "vae": "VAE", "vqvae": "VQ-VAE", "gan": "GAN", "diffusion": "diffusion"}


class CompareView(QWidget):
    hovered = Signal(int)  # the data index hovered on any map (−1: none)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.comparison = None
        self.maps: list[LatentMap] = []
        self.sample_grids: list[ThumbGrid] = []
        self.titles: list[QLabel] = []
        self._row_of: dict[int, int] = {}
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(10)
        self.grid.setVerticalSpacing(4)
        self.placeholder = QLabel("Tick two to four models trained on the same data set, then Compare.")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #666;")
        self.legend = MapLegend()
        self.legend.toggled.connect(self._toggle_class)
        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.verticalHeader().hide()
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #555;")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.placeholder, 1)
        lay.addLayout(self.grid, 1)
        lay.addWidget(self.legend)
        lay.addWidget(self.table)
        lay.addWidget(self.note)
        self._show_results(False)

    def _show_results(self, on: bool) -> None:
        self.placeholder.setVisible(not on)
        for w in (self.legend, self.table, self.note):
            w.setVisible(on)

    # ---- content --------------------------------------------------------------------------------------------
    def clear(self) -> None:
        while self.grid.count():
            w = self.grid.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        self.maps, self.sample_grids, self.titles = [], [], []
        self.comparison = None
        self._show_results(False)

    def set_comparison(self, comp) -> None:
        self.clear()
        self.comparison = comp
        self._row_of = {int(d): i for i, d in enumerate(comp.map_index)}
        colouring = (map_colours.by_categories(comp.labels, comp.label_names, "label")
                     if comp.labels is not None and len(comp.labels) else map_colours.uniform(len(comp.map_index)))
        for col, m in enumerate(comp.models):
            title = QLabel(f"<b>{m.name}</b> &nbsp;<span style='color:#666'>{FAMILY.get(m.engine, m.engine)}</span>")
            title.setToolTip(m.path)
            grid = ThumbGrid(min_cell=36, max_cell=72, max_rows=2)
            grid.set_images(list(m.samples))
            grid.setToolTip(f"{m.name}: its sample({len(m.samples)}, seed={comp.options.seed})")
            lm = LatentMap()
            lm.setMinimumSize(160, 160)
            if m.coords is not None and len(m.coords):
                lm.set_points(m.coords, comp.map_index)
                lm.set_colours(colouring.codes, colouring.colours, alpha=170)
                lm.set_axis_titles(f"{comp.options.projection.upper()} 1", f"{comp.options.projection.upper()} 2")
                lm.fit()
                lm.set_hover_provider(self._hover_image)
                lm.hovered.connect(lambda idx, col=col: self.link_hover(col, idx))
            else:
                lm.setToolTip(m.note or "no map")
            self.grid.addWidget(title, 0, col)
            self.grid.addWidget(grid, 1, col)
            self.grid.addWidget(lm, 2, col)
            self.grid.setColumnStretch(col, 1)
            self.titles.append(title)
            self.sample_grids.append(grid)
            self.maps.append(lm)
        self.grid.setRowStretch(2, 1)
        self.legend.set_entries(colouring.title, colouring.colours, colouring.entries,
                                note=f"· {len(comp.map_index):,} data points, the same on every map")
        self._fill_table(comp.table())
        stored = [m.name for m in comp.models if m.metrics_source == "stored"]
        n = comp.options.n_metrics
        self.note.setText(
            f"{comp.data.describe()} · samples: each model's sample({comp.options.seeds}, seed={comp.options.seed}) · FD, precision, recall and coverage "
            f"over {n:,} samples in the data set's classifier features (lower FD is better)"
            + (f" · from the evaluation stored in {', '.join(stored)}" if stored else "")
            + " · hover a point: the same data point is ringed on every map")
        self._show_results(True)

    def _fill_table(self, table) -> None:
        t = self.table
        t.clear()
        t.setColumnCount(len(table.columns))
        t.setRowCount(len(table.rows))
        t.setHorizontalHeaderLabels([c.title for c in table.columns])
        for j, c in enumerate(table.columns):
            head = t.horizontalHeaderItem(j)
            tip = c.tip + (f" ({c.better} is better)" if c.better else "")
            head.setToolTip(tip.strip())
            best = table.best(c.key)
            for i, r in enumerate(table.rows):
                item = QTableWidgetItem(cell(c, r.get(c.key)))
                align = Qt.AlignmentFlag.AlignLeft if c.kind == "text" else Qt.AlignmentFlag.AlignRight
                item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
                if i in best:
                    f = QFont(item.font())
                    f.setBold(True)
                    item.setFont(f)
                if r.get(c.key) is None and c.kind != "text":
                    item.setToolTip("this family has none" if c.key in ("elbo_nats", "bpd") else "not measured")
                t.setItem(i, j, item)
        t.setWordWrap(False)
        head = t.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for j, c in enumerate(table.columns):  # model names and durations whole
            if c.key in ("model", "train_s"):
                head.setSectionResizeMode(j, QHeaderView.ResizeMode.ResizeToContents)
        t.resizeRowsToContents()
        # The header's two-line titles and every row, no scrolling (its height before it is shown is stale).
        h = head.sizeHint().height() + sum(t.rowHeight(i) for i in range(t.rowCount())) + 2 * t.frameWidth() + 2
        t.setFixedHeight(h)

    # ---- linked hover -----------------------------------------------------------------------------------------
    def _hover_image(self, data_index: int):
        comp = self.comparison
        row = self._row_of.get(int(data_index))
        if comp is None or row is None:
            return np.zeros((1, 1, 1), np.uint8), ""
        caption = f"data point {data_index}"
        if comp.labels is not None and comp.label_names:
            caption += f" · {comp.label_names[int(comp.labels[row])]}"
        return comp.images[row], caption

    def link_hover(self, source: int, data_index: int) -> None:
        """A map was hovered: ring the same data point on every other map."""
        for i, lm in enumerate(self.maps):
            if i != source:
                lm.mark(data_index)
        self.hovered.emit(data_index)

    def _toggle_class(self, index: int, visible: bool) -> None:
        comp = self.comparison
        if comp is None or comp.labels is None:
            return
        shown = np.array([i not in self.legend.hidden for i in range(len(self.legend.entries))])
        mask = shown[comp.labels]
        for lm in self.maps:
            if len(lm.coords):
                lm.set_visible_points(mask)
