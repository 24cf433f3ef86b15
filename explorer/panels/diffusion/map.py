"""The trajectory on the data map: the model's data images as grey points on their first two
principal axes (PCA of the pixels), and the path each sample's predicted x̂₀ takes through that
plane during sampling — from the blurry mean of everything at the noisy end to one digit at the
clean end. The step on show is marked."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


class TrajectoryMap(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "PC 1 of the data")
        self.plot.setLabel("left", "PC 2")
        self.plot.setTitle("x̂₀ on the data map", size="9pt")
        self.points = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(150, 150, 150, 90))
        self.plot.addItem(self.points)
        self.paths: list[pg.PlotDataItem] = []
        self.marks = pg.ScatterPlotItem(size=9, pen=pg.mkPen("k", width=1))
        self.plot.addItem(self.marks)
        self._paths = None  # (steps + 1, N, 2)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)
        self.setMinimumWidth(180)

    def set_data(self, coords: np.ndarray | None) -> None:
        if coords is None:
            self.points.setData([], [])
        else:
            self.points.setData(coords[:, 0], coords[:, 1])
        self.set_paths(None)

    def set_paths(self, paths: np.ndarray | None, max_paths: int = len(COLOURS)) -> None:
        """paths (steps + 1, N, 2); the first `max_paths` samples are drawn."""
        for item in self.paths:
            self.plot.removeItem(item)
        self.paths = []
        self._paths = None if paths is None else paths[:, :max_paths]
        if self._paths is not None:
            for i in range(self._paths.shape[1]):
                pen = pg.mkPen(COLOURS[i % len(COLOURS)], width=1.5)
                item = self.plot.plot(self._paths[:, i, 0], self._paths[:, i, 1], pen=pen)
                self.paths.append(item)
        self.set_step(None)

    def set_step(self, k: int | None) -> None:
        if self._paths is None or k is None:
            self.marks.setData([], [])
            return
        k = max(0, min(k, len(self._paths) - 1))
        at = self._paths[k]
        self.marks.setData(at[:, 0], at[:, 1], brush=[pg.mkBrush(COLOURS[i % len(COLOURS)]) for i in range(len(at))])
