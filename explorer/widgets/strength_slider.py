"""One vector's strength: a name, a slider s ∈ [lo, hi] in steps of 0.1, the value, a reset.

The slider works in integer tenths (Qt sliders are integer); `value()` and `valueChanged` are in
s units. Dragging emits on every step — the owner coalesces the renders (LatestRequestRunner).
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSlider, QToolButton, QWidget

STEPS_PER_UNIT = 10


class StrengthSlider(QWidget):
    valueChanged = Signal(float)

    def __init__(self, name: str, lo: float = -4.0, hi: float = 4.0, value: float = 0.0, parent=None):
        super().__init__(parent)
        self.name_label = QLabel(name)
        self.name_label.setMinimumWidth(90)
        self.name_label.setMaximumWidth(170)
        self.name_label.setToolTip(name)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(round(lo * STEPS_PER_UNIT), round(hi * STEPS_PER_UNIT))
        self.slider.setSingleStep(1)
        self.slider.setPageStep(STEPS_PER_UNIT)
        self.slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.slider.setTickInterval(STEPS_PER_UNIT)
        self.slider.setMinimumWidth(160)
        self.slider.setToolTip("Strength s: the image shows z + s·Δ (s = 1 adds the average difference "
                               "between the two groups). Arrow keys step 0.1, Page Up/Down step 1.")
        self.spin = QDoubleSpinBox()
        self.spin.setRange(lo, hi)
        self.spin.setSingleStep(1.0 / STEPS_PER_UNIT)
        self.spin.setDecimals(1)
        self.spin.setPrefix("s = ")
        self.spin.setKeyboardTracking(False)
        self.spin.setFixedWidth(84)
        self.reset_btn = QToolButton()
        self.reset_btn.setText("0")
        self.reset_btn.setToolTip("Back to s = 0")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.name_label)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.spin)
        lay.addWidget(self.reset_btn)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)
        self.reset_btn.clicked.connect(lambda: self.setValue(0.0))
        self.setValue(value)

    def set_name(self, name: str) -> None:
        self.name_label.setText(name)
        self.name_label.setToolTip(name)

    def value(self) -> float:
        return self.slider.value() / STEPS_PER_UNIT

    def setValue(self, s: float) -> None:
        self.slider.setValue(round(float(s) * STEPS_PER_UNIT))

    def _from_slider(self, ticks: int) -> None:
        s = ticks / STEPS_PER_UNIT
        self.spin.blockSignals(True)
        self.spin.setValue(s)
        self.spin.blockSignals(False)
        self.valueChanged.emit(s)

    def _from_spin(self, s: float) -> None:
        self.slider.setValue(round(s * STEPS_PER_UNIT))
