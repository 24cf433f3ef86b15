"""The first launch's tip, in the tab bar's corner (it takes no room from the panels): where to
start — Manifold, Arithmetic, Train — as links that show those panels, with a longer hint as its
tooltip, until the user closes it (remembered in the settings)."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

TEXT = ("<b>New?</b> Try <a href='manifold'>Manifold</a> · <a href='arithmetic'>Arithmetic</a> · "
        "<a href='train'>Train</a>")
HINT = ("The bundled VAE on cartoon faces is loaded.\n"
        "Manifold: drag across the map and watch the face change.\n"
        "Arithmetic: add sunglasses or a smile with z + s·Δ.\n"
        "Train: press Start to train your own model on the digits (about 1½ minutes).")


class FirstRunTip(QFrame):
    show_panel = Signal(str)
    dismissed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("firstRunTip")
        self.setStyleSheet("#firstRunTip { background: #fff8dc; border: 1px solid #e0c97a; border-radius: 4px; }")
        self.label = QLabel(TEXT)
        self.label.setOpenExternalLinks(False)
        self.label.linkActivated.connect(self.show_panel)
        self.setToolTip(HINT)
        self.ok = QPushButton("✕")
        self.ok.setToolTip("Got it: do not show this again")
        self.ok.setFlat(True)
        self.ok.setFixedWidth(22)
        self.ok.clicked.connect(self._dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 1, 2, 1)
        lay.setSpacing(4)
        lay.addWidget(self.label)
        lay.addWidget(self.ok)

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
