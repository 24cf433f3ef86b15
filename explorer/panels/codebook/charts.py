"""Usage histogram and the 2-D map of code vectors (pyqtgraph) for the Codebook panel."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget


def usage_brushes(counts: np.ndarray) -> list:
    """Viridis by log usage; dead codes are drawn separately."""
    cmap = pg.colormap.get("viridis")
    lc = np.log1p(counts.astype(float))
    t = lc / max(float(lc.max()), 1e-9)
    return [pg.mkBrush(cmap.map(float(v), mode="qcolor")) for v in t]


class UsageHistogram(QWidget):
    """Codes sorted by usage (bars, share of all cells in %), with the uniform share as a line:
    a healthy codebook is a long flat plateau, a collapsing one a few spikes."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumSize(120, 120)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "usage rank")
        self.plot.setLabel("left", "share of cells", units="%")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.shown: np.ndarray | None = None

    def set_counts(self, counts: np.ndarray | None, perplexity: float = 0.0) -> None:
        self.plot.clear()
        self.shown = None
        if counts is None or counts.sum() == 0:
            self.plot.setTitle("")
            return
        k = len(counts)
        share = 100.0 * np.sort(counts)[::-1] / counts.sum()
        self.shown = share
        used = int((counts > 0).sum())
        bars = pg.BarGraphItem(x=np.arange(k), height=share, width=1.0, brush=pg.mkBrush(70, 110, 190),
                               pen=pg.mkPen(None))
        self.plot.addItem(bars)
        self.plot.addItem(pg.InfiniteLine(pos=100.0 / k, angle=0, pen=pg.mkPen((200, 60, 60), width=1, style=Qt.PenStyle.DashLine)))
        if used < k:  # where the dead codes start
            self.plot.addItem(pg.InfiniteLine(pos=used - 0.5, angle=90, pen=pg.mkPen((220, 40, 40), width=1)))
        self.plot.setTitle(f"<span style='font-size:9pt'>{used}/{k} used<br>perplexity {perplexity:.1f}</span>")
        self.plot.setToolTip(f"Share of all code cells per code, most used first. {used} of {k} codes are used "
                             f"(red line: where the dead codes start); perplexity {perplexity:.1f} is the "
                             f"effective number of codes ({k} if all were used equally, dashed line).")
        self.plot.setXRange(-0.5, k - 0.5, padding=0.01)
        self.plot.setYRange(0, float(share.max()) * 1.05, padding=0)


class CodeMap(QWidget):
    """Code vectors on two axes (PCA or UMAP), coloured by log usage; dead codes are red crosses.
    Clicking a point emits `clicked(code)`."""

    clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumSize(120, 120)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setAspectLocked(False)
        for ax in ("left", "bottom"):
            self.plot.getAxis(ax).enableAutoSIPrefix(False)
        self.scatter = pg.ScatterPlotItem(size=7, pen=pg.mkPen(None), hoverable=True)
        self.dead = pg.ScatterPlotItem(size=8, symbol="x", pen=pg.mkPen(None), brush=pg.mkBrush(220, 40, 40))
        self.ring = pg.ScatterPlotItem(size=16, pen=pg.mkPen((255, 170, 0), width=2), brush=pg.mkBrush(None))
        for item in (self.scatter, self.dead, self.ring):
            self.plot.addItem(item)
        self.scatter.sigClicked.connect(self._on_click)
        self.dead.sigClicked.connect(self._on_click)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.coords: np.ndarray | None = None

    def set_data(self, coords: np.ndarray | None, counts: np.ndarray | None, title: str = "PCA") -> None:
        self.coords = coords
        if coords is None or counts is None:
            for item in (self.scatter, self.dead, self.ring):
                item.clear()
            self.plot.setTitle("")
            return
        live = counts > 0
        idx = np.arange(len(coords))
        brushes = usage_brushes(counts)
        self.scatter.setData(pos=coords[live], data=idx[live], brush=[b for b, ok in zip(brushes, live) if ok])
        self.dead.setData(pos=coords[~live], data=idx[~live])
        self.plot.setTitle(f"<span style='font-size:9pt'>code vectors, {title}</span>")
        self.plot.setToolTip("Each point is a code vector; colour: log usage (yellow = most used), "
                             "red crosses: dead codes. Click a point to select its code.")
        self.plot.setLabel("bottom", f"{title} 1")
        self.plot.setLabel("left", f"{title} 2")
        self.plot.autoRange()

    def set_selected(self, code: int | None) -> None:
        if code is None or self.coords is None or not 0 <= code < len(self.coords):
            self.ring.clear()
        else:
            self.ring.setData(pos=self.coords[code:code + 1])

    def _on_click(self, _item, points, *_) -> None:
        if len(points):
            self.clicked.emit(int(points[0].data()))
