"""Two groups of data points picked on the map, turned into an attribute vector A − B.

Select points (box or lasso), press "Selection → A", select others, "Selection → B", then
"Vector A − B": the Arithmetic panel computes Δ = mean(z | A) − mean(z | B) on the same data and
shows its quality. The group names come from their most common labels, so a vector made from
"smiling woman" and "neutral woman" clusters is named that way.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QWidget


def group_name(md, idx: np.ndarray) -> str:
    """The group's dominant label when most of it shares one, else 'N points'."""
    ls = getattr(md, "ls", None)
    if ls is not None and ls.labels is not None and len(idx):
        counts = np.bincount(ls.labels[idx])
        top = int(np.argmax(counts))
        if counts[top] >= 0.6 * len(idx):
            return str(ls.label_names[top]) if top < len(ls.label_names) else str(top)
    return f"{len(idx):,} points"


class GroupsBox(QWidget):
    vector_requested = Signal(object, object, str)  # idx_a, idx_b, name

    def __init__(self, parent=None):
        super().__init__(parent)
        self.md = None
        self.selection = np.zeros(0, np.int64)
        self.groups: dict[str, np.ndarray | None] = {"a": None, "b": None}
        self.to_a = QPushButton("Selection → A")
        self.to_b = QPushButton("Selection → B")
        for b in (self.to_a, self.to_b):
            b.setToolTip("Keep the selected points as a group for an attribute vector A − B")
        self.make = QPushButton("Vector A − B")
        self.make.setToolTip("Δ = mean(z | A) − mean(z | B), computed and shown in the Arithmetic panel")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setStyleSheet("color: #666;")
        g = QGridLayout(self)
        g.setContentsMargins(0, 0, 0, 0)
        g.addWidget(self.to_a, 0, 0)
        g.addWidget(self.to_b, 0, 1)
        g.addWidget(self.label, 1, 0, 1, 2)
        g.addWidget(self.make, 2, 0, 1, 2)
        self.to_a.clicked.connect(lambda: self.keep("a"))
        self.to_b.clicked.connect(lambda: self.keep("b"))
        self.make.clicked.connect(self.request_vector)
        self.set_data(None)

    def set_data(self, md) -> None:
        """New data (or none): groups index into one data set, so they are forgotten."""
        self.md = md
        self.groups = {"a": None, "b": None}
        self.set_selection(np.zeros(0, np.int64))

    def set_selection(self, idx) -> None:
        self.selection = np.asarray(idx, dtype=np.int64)
        self._sync()

    def keep(self, which: str) -> None:
        if len(self.selection):
            self.groups[which] = self.selection.copy()
            self._sync()

    def name(self) -> str:
        a, b = self.groups["a"], self.groups["b"]
        return f"{group_name(self.md, a)} − {group_name(self.md, b)}"

    def request_vector(self) -> bool:
        a, b = self.groups["a"], self.groups["b"]
        if a is None or b is None:
            return False
        self.vector_requested.emit(a, b, self.name())
        return True

    def _sync(self) -> None:
        has_sel = len(self.selection) > 0
        self.to_a.setEnabled(has_sel)
        self.to_b.setEnabled(has_sel)
        parts = [f"{k.upper()}: {group_name(self.md, v)} ({len(v):,})" for k, v in self.groups.items() if v is not None]
        self.label.setText(" · ".join(parts))
        self.label.setVisible(bool(parts))
        both = all(v is not None for v in self.groups.values())
        self.make.setEnabled(both)
        self.make.setVisible(bool(parts))
        self.setVisible(has_sel or bool(parts))
