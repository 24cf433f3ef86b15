"""The first launch's tip above the tabs: where to start (Train, Manifold, Arithmetic), with links
that show those panels, until the user says "Got it" (remembered in the settings)."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

TEXT = ("<b>New here?</b> The bundled VAE on cartoon faces is loaded. "
        "<a href='manifold'>Manifold</a>: drag across the map and watch the face change. "
        "<a href='arithmetic'>Arithmetic</a>: add sunglasses or a smile with z + s·Δ. "
        "<a href='train'>Train</a>: press Start to train your own model on the digits (about 1½ minutes).")


class FirstRunTip(QFrame):
    show_panel = Signal(str)
    dismissed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("firstRunTip")
        self.setStyleSheet("#firstRunTip { background: #fff8dc; border: 1px solid #e0c97a; border-radius: 4px; }")
        self.label = QLabel(TEXT)
        self.label.setWordWrap(True)
        self.label.setOpenExternalLinks(False)
        self.label.linkActivated.connect(self.show_panel)
        self.ok = QPushButton("Got it")
        self.ok.clicked.connect(self._dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.ok)

    def _dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
