"""The map's legend as one wrapping line of rich text: a coloured dot, the name and the count per
entry. Clicking an entry hides or shows those points (`toggled(index, visible)`)."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QSizePolicy


class MapLegend(QLabel):
    toggled = Signal(int, bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.linkActivated.connect(self._on_link)
        self.title = ""
        self.entries: list[tuple[str, int]] = []
        self.colours: list[tuple[int, int, int]] = []
        self.hidden: set[int] = set()

    def set_entries(self, title: str, colours, entries, note: str = "") -> None:
        self.title, self.colours, self.entries = title, list(colours), list(entries)
        self.note = note
        self.hidden = set()
        self._render()

    def clear_entries(self) -> None:
        self.entries, self.colours, self.hidden = [], [], set()
        self.setText("")

    def _render(self) -> None:
        parts = [f"<b>{html.escape(self.title)}</b>&nbsp;&nbsp;"]
        for i, ((name, count), rgb) in enumerate(zip(self.entries, self.colours)):
            off = i in self.hidden
            dot = "#cccccc" if off else "#%02x%02x%02x" % tuple(rgb)
            text_style = "color:#999;text-decoration:line-through" if off else "color:#222;text-decoration:none"
            # No line break inside an entry: non-breaking spaces, a word joiner after dashes.
            label = html.escape(name).replace(" ", "&nbsp;").replace("–", "–\u2060")
            parts.append(f"<a href='{i}' style='{text_style}'><span style='color:{dot};font-size:large'>●</span>"
                         f"&nbsp;{label}&nbsp;<span style='color:#888'>{count:,}</span></a>")
        note = f"&nbsp;&nbsp;<span style='color:#888'>{html.escape(self.note)}</span>" if getattr(self, "note", "") else ""
        self.setText("&nbsp;&nbsp; ".join(parts[:1]) + " &nbsp; ".join(parts[1:]) + note)
        self.setToolTip("Click an entry to hide or show its points" if len(self.entries) > 1 else "")

    def _on_link(self, href: str) -> None:
        i = int(href)
        visible = i in self.hidden
        (self.hidden.discard if visible else self.hidden.add)(i)
        self._render()
        self.toggled.emit(i, visible)
