"""Two groups of data points picked on the map, turned into an attribute vector A − B.

Select points (box or lasso), press "Selection → A", select others, "Selection → B", then
"Vector A − B": the Workspace makes Δ = mean(z | A) − mean(z | B) on the same data, adds it to its
vectors and asks for the Arithmetic panel, which shows it. The groups are the Workspace's. The group names come from their most common labels, so a vector made from
"smiling woman" and "neutral woman" clusters is named that way.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QWidget

from explorer.panels.manifold.state import Links


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
    """The two groups of the map, kept on the Workspace (`ws.groups`, `ws.set_group`) and shown
    from it; "Vector A − B" is `ws.vector_from_groups` (which shows the Arithmetic panel)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.ws = None
        self._links = Links()
        self.selection = np.zeros(0, np.int64)
        self.to_a = QPushButton("Selection → A")
        self.to_b = QPushButton("Selection → B")
        for b in (self.to_a, self.to_b):
            b.setToolTip("Keep the selected points as a group for an attribute vector A − B")
        self.make = QPushButton("Vector A − B")
        self.make.setToolTip("Δ = mean(z | A) − mean(z | B), computed and shown in the Arithmetic panel")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setStyleSheet("color: #666;")
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #b00020;")
        self.error.hide()
        g = QGridLayout(self)
        g.setContentsMargins(0, 0, 0, 0)
        g.addWidget(self.to_a, 0, 0)
        g.addWidget(self.to_b, 0, 1)
        g.addWidget(self.label, 1, 0, 1, 2)
        g.addWidget(self.make, 2, 0, 1, 2)
        g.addWidget(self.error, 3, 0, 1, 2)
        self.to_a.clicked.connect(lambda: self.keep("a"))
        self.to_b.clicked.connect(lambda: self.keep("b"))
        self.make.clicked.connect(self.request_vector)
        self.set_workspace(None)

    def set_workspace(self, ws) -> None:
        """The loaded model's Workspace (None: no model); the groups shown are its groups."""
        self._links.clear()
        self.ws = ws
        if ws is not None:
            self._links.connect(ws.groups_changed, self._on_groups)
            self._links.connect(ws.vector_failed, self._show_error)
        self.set_selection(np.zeros(0, np.int64))

    @property
    def md(self):
        return self.ws.data if self.ws is not None else None

    @property
    def groups(self) -> dict:
        return dict(self.ws.groups) if self.ws is not None else {"a": None, "b": None}

    def set_selection(self, idx) -> None:
        self.selection = np.asarray(idx, dtype=np.int64)
        self._sync()

    def keep(self, which: str) -> None:
        if len(self.selection) and self.ws is not None:
            self.ws.set_group(which, self.selection)  # → groups_changed → _sync

    def name(self) -> str:
        g = self.groups
        return f"{group_name(self.md, g['a'])} − {group_name(self.md, g['b'])}"

    def request_vector(self) -> str | None:
        """Ask the Workspace for the vector A − B (made in a worker; it joins the Workspace's
        vectors and the window shows the Arithmetic panel). Returns its name; None, with the
        reason under the button, when the groups cannot make one."""
        if self.ws is None:
            return None
        try:
            name = self.ws.vector_from_groups(self.name())
        except ValueError as e:
            self._show_error(str(e))
            return None
        self.error.hide()
        return name

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    def _on_groups(self) -> None:
        self.error.hide()
        self._sync()

    def _sync(self) -> None:
        has_sel = len(self.selection) > 0
        self.to_a.setEnabled(has_sel)
        self.to_b.setEnabled(has_sel)
        groups = self.groups
        parts = [f"{k.upper()}: {group_name(self.md, v)} ({len(v):,})" for k, v in groups.items() if v is not None]
        self.label.setText(" · ".join(parts))
        self.label.setVisible(bool(parts))
        both = all(v is not None for v in groups.values())
        self.make.setEnabled(both)
        self.make.setVisible(bool(parts))
        self.setVisible(has_sel or bool(parts))
