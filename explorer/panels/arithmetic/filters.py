"""A filter over the model's data: a label and/or an attribute value, as two combo boxes.

Binary attributes offer "with X" / "without X"; continuous ones "X high" / "X low" (above or
below the median, which splits the data in halves). Used by the thumbnail browsers and to define
the two groups of a vector. `conditions()` gives `arithmetic_jobs.Condition`s.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QVBoxLayout, QWidget

from explorer.panels.arithmetic.jobs import Condition


class ConditionEditor(QWidget):
    changed = Signal()

    def __init__(self, parent=None, any_text: str = "any", vertical: bool = False):
        super().__init__(parent)
        self.any_text = any_text
        self.label = QComboBox()
        self.label.setToolTip("Keep images with this label")
        self.attribute = QComboBox()
        self.attribute.setToolTip("Keep images with (or without) this attribute; continuous attributes "
                                  "split at their median")
        for c in (self.label, self.attribute):
            c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            c.setMinimumContentsLength(8)
            c.currentIndexChanged.connect(lambda _i: self.changed.emit())
        lay = QVBoxLayout(self) if vertical else QHBoxLayout(self)  # vertical: for a narrow column
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.attribute, 1)
        self.set_data(None)

    def set_data(self, md) -> None:
        for c in (self.label, self.attribute):
            c.blockSignals(True)
            c.clear()
        self.label.addItem(f"{self.any_text} label", None)
        self.attribute.addItem(f"{self.any_text} attribute", None)
        if md is not None:
            ls = md.ls
            if ls.labels is not None:
                for i, n in enumerate(ls.label_names):
                    self.label.addItem(n, Condition("label", i))
            for k in md.binary_attributes:
                self.attribute.addItem(f"with {k}", Condition("attr", k, "=", 1.0))
                self.attribute.addItem(f"without {k}", Condition("attr", k, "=", 0.0))
            for k in md.continuous_attributes:
                med = float(np.median(ls.attributes[k]))
                self.attribute.addItem(f"{k} high", Condition("attr", k, "≥", med))
                self.attribute.addItem(f"{k} low", Condition("attr", k, "<", med))
        self.label.setVisible(self.label.count() > 1)
        self.attribute.setVisible(self.attribute.count() > 1)
        for c in (self.label, self.attribute):
            c.blockSignals(False)
        self.changed.emit()

    def conditions(self) -> tuple:
        return tuple(c for c in (self.label.currentData(), self.attribute.currentData()) if c is not None)

    def set_conditions(self, label: str | None = None, attribute: str | None = None) -> bool:
        """Choose entries by their text ("smiling woman", "without sunglasses"); False if absent."""
        ok = True
        for combo, text in ((self.label, label), (self.attribute, attribute)):
            if text is None:
                continue
            i = combo.findText(text)
            ok &= i >= 0
            if i >= 0:
                combo.setCurrentIndex(i)
        return ok

    def describe(self) -> str:
        parts = [c.currentText() for c in (self.label, self.attribute) if c.currentData() is not None]
        return " & ".join(parts) or "all images"
