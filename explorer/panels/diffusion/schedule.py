"""The noise schedule as two small plots over t: ᾱ_t (how much signal is left) and the
signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) on a log scale, with a marker at the chosen step."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

PEN = pg.mkPen("#1f77b4", width=2)
MARK = pg.mkPen("#d62728", width=1.5)


class SchedulePlot(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.abar_plot = pg.PlotWidget(background="w")
        self.snr_plot = pg.PlotWidget(background="w")
        for p, label in ((self.abar_plot, "ᾱ_t"), (self.snr_plot, "SNR")):
            p.setMenuEnabled(False)
            p.setMouseEnabled(False, False)
            p.hideButtons()
            p.setLabel("left", label)
            p.showGrid(x=True, y=True, alpha=0.2)
            p.setMinimumHeight(110)
        self.snr_plot.setLabel("bottom", "t")
        self.snr_plot.setLogMode(False, True)
        self.abar_curve = self.abar_plot.plot(pen=PEN)
        self.snr_curve = self.snr_plot.plot(pen=PEN)
        self.markers = [pg.InfiniteLine(angle=90, pen=MARK) for _ in range(2)]
        self.abar_plot.addItem(self.markers[0])
        self.snr_plot.addItem(self.markers[1])
        self.abar_plot.setXLink(self.snr_plot)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.abar_plot)
        lay.addWidget(self.snr_plot)

    def set_schedule(self, abar: np.ndarray | None) -> None:
        if abar is None:
            self.abar_curve.setData([], [])
            self.snr_curve.setData([], [])
            return
        t = np.arange(len(abar))
        snr = abar / np.maximum(1 - abar, 1e-12)
        self.abar_curve.setData(t, abar)
        # log-mode plots need positive values; the cosine schedule's last steps reach ~1e-9
        self.snr_curve.setData(t, np.clip(snr, 1e-6, None))
        self.abar_plot.setYRange(0, 1, padding=0.05)
        self.snr_plot.setXRange(0, len(abar) - 1, padding=0.02)

    def set_marker(self, t: int) -> None:
        for m in self.markers:
            m.setValue(t)
