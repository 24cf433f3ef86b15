"""A percentile gauge: where a value falls among reference values, on a bar with three zones.

Used for the in-distribution indicator: 0–90 "typical" (green), 90–99 "unusual" (amber), above
99 "far from the data" (red). The scale is stretched at the top (0–90 takes 55 % of the width,
90–99 and 99–100 the rest) because that is where the verdict changes.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

ZONES = ((0.0, 90.0, "#8fd19e", "typical"), (90.0, 99.0, "#ffd36b", "unusual"), (99.0, 100.0, "#f08a80", "far"))
STOPS = ((0.0, 0.0), (90.0, 0.55), (99.0, 0.82), (100.0, 1.0))  # percentile → fraction of the width


def position(pct: float) -> float:
    pct = min(100.0, max(0.0, float(pct)))
    for (p0, f0), (p1, f1) in zip(STOPS, STOPS[1:]):
        if pct <= p1:
            return f0 + (f1 - f0) * (pct - p0) / (p1 - p0)
    return 1.0


class PercentileGauge(QWidget):
    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.title = title
        self.value: float | None = None
        self.detail = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(160)

    def set_value(self, pct: float | None, detail: str = "") -> None:
        self.value, self.detail = pct, detail
        self.setToolTip(detail)
        self.update()

    def _fm(self) -> QFontMetrics:
        return QFontMetrics(self.font())

    def sizeHint(self) -> QSize:
        return QSize(260, self._fm().height() + 22)

    def minimumSizeHint(self) -> QSize:
        return QSize(160, self.sizeHint().height())

    def paintEvent(self, _e) -> None:
        p = QPainter(self)
        fm = self._fm()
        pal = self.palette()
        text_colour = pal.color(QPalette.ColorRole.Text)
        h_text = fm.height()
        p.setPen(text_colour)
        value = "" if self.value is None else f"percentile {self.value:.0f}"
        vw = fm.horizontalAdvance(value) + 8 if value else 0
        p.drawText(QRectF(0, 0, self.width() - vw, h_text), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   fm.elidedText(self.title, Qt.TextElideMode.ElideRight, self.width() - vw))
        if value:
            p.drawText(QRectF(0, 0, self.width(), h_text), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                       value)
        bar = QRectF(6, h_text + 7, self.width() - 12, 13)
        small = p.font()
        small.setPointSizeF(max(6.5, small.pointSizeF() * 0.8))
        sfm = QFontMetrics(small)
        for lo, hi, colour, name in ZONES:
            x0 = bar.left() + bar.width() * position(lo)
            x1 = bar.left() + bar.width() * position(hi)
            c = QColor(colour)
            if self.value is None:
                c.setAlpha(90)
            zone = QRectF(x0, bar.top(), x1 - x0, bar.height())
            p.fillRect(zone, c)
            if sfm.horizontalAdvance(name) < zone.width() - 4:  # the zone's name inside it
                p.setFont(small)
                p.setPen(QColor(0, 0, 0, 150))
                p.drawText(zone, Qt.AlignmentFlag.AlignCenter, name)
        p.setPen(QPen(QColor(0, 0, 0, 70), 1))
        p.drawRect(bar)
        if self.value is not None:
            x = bar.left() + bar.width() * position(self.value)
            tri = QPolygonF([QPointF(x, bar.top() + 4), QPointF(x - 6, bar.top() - 6), QPointF(x + 6, bar.top() - 6)])
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setPen(QPen(QColor("#222"), 1))
            p.setBrush(QColor("#222"))
            p.drawPolygon(tri)
            p.setPen(QPen(QColor("#222"), 2))
            p.drawLine(QPointF(x, bar.top()), QPointF(x, bar.bottom()))
