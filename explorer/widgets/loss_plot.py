"""Live loss curves, one per named term (pyqtgraph), with a log-scale toggle.

Points are appended cheaply; the plot redraws at most twice a second from a timer and shows at
most MAX_POINTS per curve (older history is thinned), without antialiasing or a translucent grid,
so a long run never makes the GUI thread stall on redraws (bench/gui_stall.py).
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

MAX_POINTS = 600
PEN_WIDTH = 2
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


class _LossAxis(pg.AxisItem):
    """In log mode, label only 1, 2 and 5 × 10^k, as plain numbers: pyqtgraph's default labels
    every minor tick ("7·10²") and they pile up when the range spans less than a decade."""

    def tickStrings(self, values, scale, spacing):
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        out = []
        for v in values:
            x = 10.0 ** v
            mantissa = x / 10.0 ** np.floor(np.log10(x) + 1e-9)
            keep = any(abs(mantissa - m) < 1e-6 for m in (1, 2, 5))
            out.append((f"{x:,.0f}" if x >= 1 else f"{x:.3g}") if keep else "")
        return out


class LossPlot(QWidget):
    def __init__(self, parent=None, redraw_ms: int = 500):
        super().__init__(parent)
        self._steps: list[float] = []
        self._values: dict[str, list[float]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        self._dirty = False

        self.plot = pg.PlotWidget(background="w", axisItems={"left": _LossAxis("left")})
        self.plot.setMinimumHeight(160)
        item = self.plot.getPlotItem()
        # No grid: translucent grid lines double the paint time (GUI stalls while training).
        item.setLabel("bottom", "step")
        item.setLabel("left", "per image")
        item.setMenuEnabled(False)
        # Ranges are set here in steps (see _fit_ranges), not auto-ranged on every update: the
        # axes then keep their cached tick labels and a redraw only paints the curves.
        item.getViewBox().disableAutoRange()
        self._xr: tuple[float, float] | None = None
        self._yr: tuple[float, float] | None = None
        for axis in ("left", "bottom"):
            item.getAxis(axis).setTextPen("#333")
            item.getAxis(axis).setPen("#888")

        # Terms differ by orders of magnitude (a VAE's KL vs its reconstruction): log by default.
        self.log_box = QCheckBox("Log scale")
        self.log_box.setChecked(True)
        item.setLogMode(y=True)
        self.log_box.toggled.connect(self.set_log)
        self.caption = QLabel("Loss curves appear here while a model trains.")
        self.caption.setWordWrap(True)
        # The legend, with each term's latest value, is a label above the plot: it never hides
        # a curve and costs nothing to paint.
        self.legend = QLabel("")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.caption, 1)
        top.addWidget(self.log_box)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.legend)
        lay.addWidget(self.plot, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(redraw_ms)
        self._timer.timeout.connect(self._redraw)
        self._timer.start()

    # ---- data ---------------------------------------------------------------------------------
    def clear(self) -> None:
        self._steps.clear()
        self._values.clear()
        for c in self._curves.values():
            self.plot.removeItem(c)
        self._curves.clear()
        self.legend.clear()
        self._xr = self._yr = None
        self._dirty = False

    def add(self, step: float, metrics: dict[str, float]) -> None:
        terms = {k: v for k, v in metrics.items() if not k.startswith("test_")}
        if not terms:
            return
        n = len(self._steps)
        self._steps.append(float(step))
        for k, v in terms.items():
            series = self._values.setdefault(k, [np.nan] * n)
            series.append(float(v))
        for k, series in self._values.items():
            if len(series) < n + 1:
                series.append(np.nan)
        self._dirty = True

    def terms(self) -> list[str]:
        return list(self._values)

    def last_step(self) -> float | None:
        return self._steps[-1] if self._steps else None

    def n_points(self) -> int:
        return len(self._steps)

    def set_log(self, on: bool) -> None:
        self.plot.getPlotItem().setLogMode(y=bool(on))
        self._yr = None
        self._dirty = True
        self._redraw()

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    # ---- drawing ------------------------------------------------------------------------------
    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        x = np.asarray(self._steps)
        keep = _thin(len(x), MAX_POINTS)
        x = x[keep]
        log = self.log_box.isChecked()
        created = False
        for i, (k, series) in enumerate(self._values.items()):
            curve = self._curves.get(k)
            if curve is None:
                if created:  # adding a curve and its legend entry is slow: one per redraw
                    self._dirty = True
                    continue
                pen = pg.mkPen(COLOURS[i % len(COLOURS)], width=PEN_WIDTH)
                curve = self.plot.plot([], [], pen=pen, connect="finite")
                self._curves[k] = curve
                created = True
            y = np.asarray(series)[keep]
            if log:
                y = np.where(y > 0, y, np.nan)  # log of a negative term is undefined: leave a gap
            curve.setData(x, y, connect="finite")
        self._fit_ranges(x, [np.asarray(v)[keep] for v in self._values.values()], log)
        self.legend.setText(self._legend_html())

    def _fit_ranges(self, x: np.ndarray, series: list[np.ndarray], log: bool) -> None:
        """Grow the x range by half again when the run outgrows it; move the y range only when a
        value leaves it or the values shrink to under half of it (losses fall fast at first)."""
        vb = self.plot.getPlotItem().getViewBox()
        if len(x) and (self._xr is None or x[-1] > self._xr[1]):
            self._xr = (0.0, max(10.0, float(x[-1]) * 1.5))
            vb.setXRange(*self._xr, padding=0)
        ys = np.concatenate(series) if series else np.empty(0)
        ys = ys[np.isfinite(ys)]
        if log:
            ys = np.log10(ys[ys > 0])
        if not len(ys):
            return
        lo, hi = float(ys.min()), float(ys.max())
        if self._yr is not None:
            cur_lo, cur_hi = self._yr
            if lo >= cur_lo and hi <= cur_hi and (hi - lo) > 0.5 * (cur_hi - cur_lo):
                return
        pad = max(0.08 * (hi - lo), 0.05 if log else 1e-6 + 0.05 * abs(hi))
        self._yr = (lo - pad, hi + pad)
        vb.setYRange(*self._yr, padding=0)

    def _legend_html(self) -> str:
        parts = []
        for i, (k, series) in enumerate(self._values.items()):
            last = next((v for v in reversed(series) if v == v), None)  # newest non-NaN
            value = "" if last is None else f" {last:.4g}"
            colour = COLOURS[i % len(COLOURS)]
            parts.append(f'<span style="color:{colour}; font-size:large">&#9632;</span>&nbsp;{k}<b>{value}</b>')
        return "&nbsp;&nbsp;&nbsp; ".join(parts)


def _thin(n: int, limit: int) -> np.ndarray:
    """Indices keeping at most `limit` points: the recent half dense, older history sparse."""
    if n <= limit:
        return np.arange(n)
    recent = limit // 2
    old = np.linspace(0, n - recent - 1, limit - recent).round().astype(int)
    return np.unique(np.concatenate([old, np.arange(n - recent, n)]))
