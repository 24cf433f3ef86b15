"""The Diffusion panel's forward-process tab: a data image, the t slider and noise seed, x₀ | x_t |
the SDEdit result side by side, and the noise schedule plotted with a marker at t.

The widget only shows things; the panel computes x_t and the SDEdit runs in workers and calls
`show_noised` / `show_result`.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QVBoxLayout,
                               QWidget)

from explorer.widgets.image_grid import ImageGrid
from explorer.panels.diffusion.schedule import SchedulePlot


def _captioned(widget: QWidget, text: str) -> tuple[QWidget, QLabel]:
    box = QWidget()
    lay = QVBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(2)
    cap = QLabel(text)
    cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
    cap.setWordWrap(True)  # long captions wrap instead of widening their column
    lay.addWidget(cap)
    lay.addWidget(widget, 1)
    return box, cap


class ForwardView(QWidget):
    changed = Signal()  # image, t or noise seed changed: the panel recomputes x_t
    sdedit_requested = Signal()
    random_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.x0_view = ImageGrid(placeholder="No data image")
        self.xt_view = ImageGrid(placeholder="x_t appears here")
        self.result_view = ImageGrid(placeholder="Press “Denoise from t” to run the reverse process from x_t "
                                                 "(SDEdit): large t keeps little of the image, small t keeps most of it.")
        row = QHBoxLayout()
        b0, _ = _captioned(self.x0_view, "data image x₀")
        b1, self.xt_caption = _captioned(self.xt_view, "x_t ~ q(x_t | x₀)")
        b2, self.result_caption = _captioned(self.result_view, "reverse process from x_t")
        for b in (b0, b1, b2):
            row.addWidget(b, 1)

        self.index = QSpinBox()
        self.index.setRange(0, 0)
        self.index.setPrefix("image ")
        self.index.setToolTip("Which image of the model's training data to noise")
        self.random_btn = QPushButton("Random image")
        self.random_btn.clicked.connect(self.random_requested)
        self.noise_seed = QSpinBox()
        self.noise_seed.setRange(0, 2 ** 31 - 1)
        self.noise_seed.setPrefix("noise seed ")
        self.t_slider = QSlider(Qt.Orientation.Horizontal)
        self.t_slider.setRange(0, 999)
        self.t_slider.setValue(500)
        self.t_label = QLabel()
        self.sdedit_btn = QPushButton("Denoise from t")
        self.sdedit_btn.setToolTip("Run the chosen sampler from x_t back to an image (SDEdit); "
                                   "its trajectory also opens in the Reverse tab")
        self.sdedit_btn.clicked.connect(self.sdedit_requested)
        for w in (self.index, self.noise_seed):
            w.valueChanged.connect(self.changed)
        self.t_slider.valueChanged.connect(self.changed)

        controls = QGridLayout()
        controls.addWidget(self.index, 0, 0)
        controls.addWidget(self.random_btn, 0, 1)
        controls.addWidget(self.noise_seed, 0, 2)
        controls.addWidget(self.sdedit_btn, 0, 3)
        controls.addWidget(QLabel("t"), 1, 0, Qt.AlignmentFlag.AlignRight)
        controls.addWidget(self.t_slider, 1, 1, 1, 3)
        # Its own row: t, ᾱ_t and the SNR are never cut, whatever the window's width.
        controls.addWidget(self.t_label, 2, 1, 1, 3)
        controls.setColumnStretch(1, 1)
        controls.setColumnStretch(2, 1)

        self.plot = SchedulePlot()
        self.plot.setMinimumWidth(160)
        left = QVBoxLayout()
        left.addLayout(row, 1)
        left.addLayout(controls)
        lay = QHBoxLayout(self)
        lay.addLayout(left, 3)
        lay.addWidget(self.plot, 2)

    # ---- state the panel sets ---------------------------------------------------------------------
    def set_schedule(self, abar) -> None:
        self.plot.set_schedule(abar)
        if abar is not None:
            self.t_slider.setRange(0, len(abar) - 1)
        self.plot.set_marker(self.t)

    def set_count(self, n: int) -> None:
        self.index.setRange(0, max(0, n - 1))

    @property
    def t(self) -> int:
        return self.t_slider.value()

    def show_noised(self, x0, xt, t: int, abar: float) -> None:
        self.x0_view.set_image(x0)
        self.xt_view.set_image(xt)
        snr = abar / max(1 - abar, 1e-12)
        self.t_label.setText(f"t = {t}   ᾱ_t = {abar:.4f}   SNR = {snr:.3g}")
        self.xt_caption.setText(f"x_t at t = {t} (√ᾱ = {abar ** 0.5:.2f} of the signal)")
        self.plot.set_marker(t)

    def show_result(self, image, text: str) -> None:
        self.result_view.set_image(image)
        self.result_caption.setText(text)
