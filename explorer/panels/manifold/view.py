"""The middle of the Manifold panel: the map (or the seed plane in its place), a message over it
while there is nothing to draw, the colour legend (points coloured and hidden by it) and the path
strip under it. Widgets only."""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from explorer.widgets.scroll import vertical_scroll
from explorer.widgets.latent_map import LatentMap
from explorer.widgets.map_legend import MapLegend
from explorer.panels.manifold.paths import PathStrip
from explorer.panels.manifold.seeds import SeedBrowser
from explorer.panels.manifold.state import colouring_for


class MapArea(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.map = LatentMap()
        self.message = QLabel("")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.message.setStyleSheet("QLabel { color: #444; background: rgba(255,255,255,215); padding: 16px;"
                                   " border: 1px solid #ccc; border-radius: 4px; }")
        self.message.setMaximumWidth(420)
        stack = QWidget()
        sl = QGridLayout(stack)
        sl.setContentsMargins(0, 0, 0, 0)
        sl.addWidget(self.map, 0, 0)
        self.seeds = SeedBrowser()
        self.seeds.hide()
        sl.addWidget(self.seeds, 0, 0)
        sl.addWidget(self.message, 0, 0, Qt.AlignmentFlag.AlignCenter)
        self.legend = MapLegend()
        self.strip = PathStrip()
        center = QVBoxLayout(self)
        center.setContentsMargins(0, 0, 0, 0)
        center.setSpacing(4)
        center.addWidget(stack, 1)
        center.addWidget(self.legend)
        center.addWidget(self.strip)
        self.seed_mode = False
        self.colouring = None  # map_colours.Colouring of the points drawn
        self.legend.toggled.connect(lambda *_: self.apply_visibility())

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.setVisible(bool(text) and not self.seed_mode)

    def apply_colours(self, md, key: str) -> None:
        """Colour the points by `key` (label, attr:NAME, split, none); the legend follows."""
        if md is None or not len(self.map.coords):
            return
        col = self.colouring = colouring_for(md, key)
        self.map.set_colours(col.codes, col.colours)
        self.map.set_visible_points(None)
        n, total = len(md.shown), len(md.ls)
        self.legend.set_entries(col.title, col.colours, col.entries, f"{n:,} of {total:,} points drawn" if n < total else "")

    def apply_visibility(self) -> None:
        """Hide the points of the legend entries switched off."""
        col = self.colouring
        if col is None:
            return
        hidden = np.asarray(sorted(self.legend.hidden), dtype=np.int64)
        self.map.set_visible_points(None if not len(hidden) else ~np.isin(col.codes, hidden))

    def set_seed_mode(self, on: bool) -> None:
        """The seed plane in the map's place (or the map back)."""
        self.seed_mode = on
        self.seeds.setVisible(on)
        self.map.setVisible(not on)
        self.message.setVisible(bool(self.message.text()) and not on)


def side_scroll(form: QWidget) -> QScrollArea:
    """The side form in a narrow vertical scroll area."""
    return vertical_scroll(form, min_width=230, max_width=290)
