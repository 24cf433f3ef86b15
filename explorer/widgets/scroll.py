"""A vertical scroll area around a side form or a list of rows: no frame, no horizontal scrolling,
optional size limits. The Train, Manifold and Arithmetic panels use it."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


def vertical_scroll(content: QWidget, min_width: int | None = None, max_width: int | None = None,
                    min_height: int | None = None, max_height: int | None = None) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidget(content)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    for value, setter in ((min_width, scroll.setMinimumWidth), (max_width, scroll.setMaximumWidth),
                          (min_height, scroll.setMinimumHeight), (max_height, scroll.setMaximumHeight)):
        if value is not None:
            setter(value)
    return scroll
