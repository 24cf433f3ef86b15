"""The Diffusion panel's reverse-process tab: x_t and the predicted x̂₀ of the step on show side
by side, the timeline with play/pause and speed, "Branch here", and the original and branch
results when a branch was run. Only widgets: the panel fills them and reacts to their signals."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from explorer.widgets import png_export
from explorer.widgets.image_grid import ImageGrid
from explorer.panels.diffusion.forward import _captioned
from explorer.panels.diffusion.map import TrajectoryMap

SPEEDS = (2, 5, 10, 20, 30)


class ReverseView(QWidget):
    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.xt_view = ImageGrid(placeholder="x_t")
        self.x0_view = ImageGrid(placeholder="predicted x̂₀")
        for view, name in ((self.xt_view, "x_t"), (self.x0_view, "x0")):  # the step grids, as PNG
            png_export.install(view, lambda v=view: None if v.array is None else png_export.Content([v.array]),
                               f"diffusion-{name}", ctx)
        b1, self.xt_caption = _captioned(self.xt_view, "x_t")
        b2, self.x0_caption = _captioned(self.x0_view, "predicted x̂₀")
        self.original_view = ImageGrid()
        self.branch_view = ImageGrid()
        b3, self.original_caption = _captioned(self.original_view, "original result")
        b4, self.branch_caption = _captioned(self.branch_view, "branch result")
        self.compare = QWidget()
        cl = QVBoxLayout(self.compare)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(b3, 1)
        cl.addWidget(b4, 1)
        self.compare.setVisible(False)
        views = QHBoxLayout()
        views.addWidget(b1, 3)
        views.addWidget(b2, 3)
        self.map = TrajectoryMap()
        views.addWidget(self.map, 2)
        views.addWidget(self.compare, 1)

        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, 0)
        self.play_btn = QPushButton("Play")
        self.play_btn.setCheckable(True)
        self.speed = QComboBox()
        for fps in SPEEDS:
            self.speed.addItem(f"{fps} steps/s", fps)
        self.speed.setCurrentIndex(2)
        self.step_label = QLabel("")
        self.step_label.setMinimumWidth(300)
        self.branch_btn = QPushButton("Branch here")
        self.branch_btn.setToolTip("Re-run from the step shown with new noise and compare the results "
                                   "(deterministic samplers — DDIM at η = 0, DPM-Solver++ — always end the same)")
        tl = QHBoxLayout()
        tl.addWidget(self.branch_btn)
        tl.addWidget(self.play_btn)
        tl.addWidget(self.speed)
        tl.addWidget(self.timeline, 1)
        tl.addWidget(self.step_label)

        lay = QVBoxLayout(self)
        lay.addLayout(views, 1)
        lay.addLayout(tl)
