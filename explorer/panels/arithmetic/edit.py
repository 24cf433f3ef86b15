"""The Edit tab: the base image chooser, the big decoded z + Σ s·Δ with one slider per active
vector, and under them the strip s = −4 … 4 of the selected vector.

Every decode runs in a worker behind a LatestRequestRunner: dragging a slider across eighty
steps computes only as many images as the CPU keeps up with, the newest always last, and the old
image stays on screen until the new one is ready.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from explorer.widgets.scroll import vertical_scroll
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets import png_export
from explorer.widgets.image_strip import ImageStrip
from explorer.widgets.strength_slider import StrengthSlider
from explorer.workers import LatestRequestRunner
from explorer.panels.arithmetic.base import BaseChooser
from explorer.panels.arithmetic.jobs import STRIP_S, EditRequest, StripRequest, render_edit, render_strip

RESULT_MIN = 192  # it grows to 256 px and more in a window of the default size


def s_caption(s: float) -> str:
    return "s = 0" if s == 0 else f"s = {s:+g}".replace("-", "−")


class EditView(QWidget):
    rendered = Signal(object)  # the decoded result, uint8 (H, W, C)
    strip_rendered = Signal(object)  # uint8 (9, H, W, C)
    activate_requested = Signal(object)  # a vector whose strip cell was clicked while inactive

    def __init__(self, ctx, parent=None):
        super().__init__(parent)
        self.ctx = ctx
        self.engine = None
        self.base = None
        self.active: list = []
        self.strip_vector = None
        self.strengths: dict = {}  # vector → s (kept when a vector is switched off and on)
        self.sliders: dict = {}  # vector → StrengthSlider
        self.last_result: np.ndarray | None = None
        self.last_strip: np.ndarray | None = None
        self._render = LatestRequestRunner(render_edit, self)
        self._render.result.connect(self._on_result)
        self._render.failed.connect(lambda g, r, e: self._failed("Could not decode", e))
        self._render.busy_changed.connect(self._on_busy)
        self._strip = LatestRequestRunner(render_strip, self)
        self._strip.result.connect(self._on_strip)
        self._strip.failed.connect(lambda g, r, e: self._failed("Could not draw the strip", e))
        self._build()

    # ---- layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.chooser = BaseChooser()
        self.chooser.setMinimumWidth(200)
        base_box = QGroupBox("Base image")
        bl = QVBoxLayout(base_box)
        bl.addWidget(self.chooser)

        self.result = ImageGrid(placeholder="Pick a base image on the left: a data image, a sample or your own file.")
        self.result.setMinimumSize(RESULT_MIN, RESULT_MIN)
        self.input_view = ImageGrid(placeholder="")
        self.input_view.setFixedSize(64, 64)
        self.input_caption = QLabel("")
        self.input_caption.setWordWrap(True)
        self.formula = QLabel("")
        self.formula.setWordWrap(True)
        self.formula.setTextFormat(Qt.TextFormat.RichText)
        self.state = QLabel("")
        self.state.setStyleSheet("color: palette(placeholder-text);")
        info = QVBoxLayout()
        info.addWidget(QLabel("<b>Input</b>"))
        info.addWidget(self.input_caption)
        info.addWidget(self.formula)
        info.addStretch(1)
        info.addWidget(self.state)
        under = QHBoxLayout()
        under.addWidget(self.input_view, 0, Qt.AlignmentFlag.AlignTop)
        under.addLayout(info, 1)
        result_box = QGroupBox("Result: z + Σ s·Δ")
        rl = QVBoxLayout(result_box)
        rl.addWidget(self.result, 1)
        rl.addLayout(under)
        # GANs: the truncation trick, applied after the edit (ψ(z + Σ s·Δ) toward the mean latent).
        self.psi = StrengthSlider("truncation ψ", lo=0.0, hi=1.0, value=1.0)
        self.psi.spin.setPrefix("ψ = ")
        self.psi.slider.setTickInterval(1)
        self.psi.slider.setToolTip("Truncation ψ: pulls the latent toward the mean (ψ = 0: the average image, "
                                   "ψ = 1: the model as trained). Lower ψ gives cleaner, more typical images "
                                   "with less variety.")
        self.psi.reset_btn.setText("1")
        self.psi.reset_btn.setToolTip("Back to ψ = 1 (no truncation)")
        self.psi.reset_btn.clicked.disconnect()
        self.psi.reset_btn.clicked.connect(lambda: self.psi.setValue(1.0))
        self.psi.valueChanged.connect(lambda _v: self.refresh())
        self.psi.hide()
        rl.addWidget(self.psi)

        top = QHBoxLayout()
        top.addWidget(base_box, 5)
        top.addWidget(result_box, 6)

        self.slider_box = QGroupBox("Strengths")
        self.slider_area = QVBoxLayout()
        self.slider_area.setContentsMargins(0, 0, 0, 0)
        self.no_sliders = QLabel("Tick a vector in the list to get a slider for it.")
        self.no_sliders.setStyleSheet("color: palette(placeholder-text);")
        self.slider_area.addWidget(self.no_sliders)
        holder = QWidget()
        holder.setLayout(self.slider_area)
        scroll = vertical_scroll(holder, min_height=34, max_height=112)
        sl = QVBoxLayout(self.slider_box)
        sl.setContentsMargins(6, 4, 6, 4)
        sl.addWidget(scroll)
        self.slider_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        self.strip_box = QGroupBox("Strip")
        self.strip = ImageStrip(placeholder="Select a vector to see z + s·Δ for s = −4 … 4.", max_cell=128)
        self.strip.setMinimumHeight(80)
        self.strip.clicked.connect(self._on_strip_click)
        png_export.install(self.strip, lambda: None if self.last_strip is None else png_export.Content(
            self.last_strip, [s_caption(s) for s in STRIP_S], len(STRIP_S)), "arithmetic-strip", self.ctx)
        stl = QVBoxLayout(self.strip_box)
        stl.setContentsMargins(6, 4, 6, 4)
        stl.addWidget(self.strip)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top, 1)
        lay.addWidget(self.slider_box)
        lay.addWidget(self.strip_box)

    # ---- state from the panel ----------------------------------------------------------------------
    def set_engine(self, engine) -> None:
        self.engine = engine
        self.psi.blockSignals(True)
        self.psi.setValue(1.0)
        self.psi.blockSignals(False)
        self.psi.setVisible(engine is not None and "truncate" in engine.capabilities)
        self._render.cancel()
        self._strip.cancel()
        self.base = None
        self.last_result = self.last_strip = None
        self.result.set_image(None)
        self.input_view.set_image(None)
        self.input_caption.setText("")
        self.strip.clear()
        self.strengths.clear()
        self._update_formula()

    def set_base(self, base) -> None:
        self.base = base
        self.input_view.set_image(base.image)
        self.input_caption.setText(base.caption if base.image is not None
                                   else f"{base.caption} (no original image: s = 0 shows the sample)")
        self.refresh()

    def set_vectors(self, active: list, strip_vector) -> None:
        """The active vectors (one slider each) and the one whose strip is shown."""
        if [id(v) for v in active] != [id(v) for v in self.active]:
            self.active = list(active)
            self._rebuild_sliders()
        self.strip_vector = strip_vector
        self.refresh()

    def strength(self, v) -> float:
        return self.strengths.get(v, 0.0)

    def set_strength(self, v, s: float) -> None:
        """Move a vector's slider (as the user would)."""
        slider = self.sliders.get(v)
        if slider is not None:
            slider.setValue(s)
        else:
            self.strengths[v] = float(s)

    # ---- sliders -------------------------------------------------------------------------------------
    def _rebuild_sliders(self) -> None:
        for v, w in list(self.sliders.items()):
            self.slider_area.removeWidget(w)
            w.deleteLater()
        self.sliders.clear()
        for v in self.active:
            w = StrengthSlider(v.name, value=self.strengths.get(v, 0.0))
            w.valueChanged.connect(lambda s, v=v: self._on_slider(v, s))
            self.slider_area.addWidget(w)
            self.sliders[v] = w
        self.no_sliders.setVisible(not self.active)

    def _on_slider(self, v, s: float) -> None:
        self.strengths[v] = s
        self._update_formula()
        self._submit_render()
        if v is self.strip_vector:
            self._highlight()
        elif self.strip_vector is not None:
            self._submit_strip()  # the strip holds the other sliders fixed at their values

    def edits(self, exclude=None) -> tuple:
        return tuple((v, self.strengths.get(v, 0.0)) for v in self.active if v is not exclude)

    # ---- rendering -----------------------------------------------------------------------------------
    def refresh(self) -> None:
        self._update_formula()
        self._submit_render()
        self._submit_strip()

    def _submit_render(self) -> None:
        if self.engine is None or self.base is None:
            return
        self._render.submit(EditRequest(self.engine, self.base.z, self.edits(), self.psi.value()))

    def _submit_strip(self) -> None:
        v = self.strip_vector
        # A short title (a long one would widen the panel past a 1024-pixel window); the rest in its tooltip.
        name = "" if v is None else (v.name if len(v.name) <= 24 else v.name[:23] + "…")
        self.strip_box.setTitle("Strip" if v is None else f"Strip for “{name}”: z + s·Δ")
        self.strip_box.setToolTip("" if v is None else f"“{v.name}”: z + s·Δ for s = −4 … 4, the other sliders "
                                  "held; click an image to use its s")
        if self.engine is None or self.base is None or v is None:
            if v is None:
                self.strip.clear()
            return
        self._strip.submit(StripRequest(self.engine, self.base.z, v, self.edits(exclude=v), self.psi.value()))

    def _on_result(self, generation, request, image) -> None:
        if request.engine is not self.engine:
            return
        self.last_result = image
        self.result.set_image(image)
        self.rendered.emit(image)

    def _on_strip(self, generation, request, images) -> None:
        if request.engine is not self.engine or request.vector is not self.strip_vector:
            return
        self.last_strip = images
        self.strip.set_images(images, [s_caption(s) for s in STRIP_S])
        self._highlight()
        self.strip_rendered.emit(images)

    def _highlight(self) -> None:
        v = self.strip_vector
        if v is None or v not in self.sliders:
            self.strip.set_highlight(None)
            return
        s = self.strengths.get(v, 0.0)
        self.strip.set_highlight(int(np.argmin([abs(s - x) for x in STRIP_S])))

    def _on_strip_click(self, i: int) -> None:
        v = self.strip_vector
        if v is None:
            return
        if v not in self.sliders:
            self.strengths[v] = STRIP_S[i]
            self.activate_requested.emit(v)
        else:
            self.sliders[v].setValue(STRIP_S[i])

    def _on_busy(self, busy: bool) -> None:
        self.state.setText("decoding…" if busy else "")

    def _failed(self, title: str, exc) -> None:
        self.state.setText(f"{title}: {exc}")
        self.ctx.session.report(exc, title)

    def _update_formula(self) -> None:
        terms = [(v.name, self.strengths.get(v, 0.0)) for v in self.active]
        terms = [(n, s) for n, s in terms if s != 0]
        psi = self.psi.value() if self.psi.isVisibleTo(self) else 1.0
        if not terms:
            text = "z (no vector applied)" if self.base is not None else ""
            self.formula.setText(f"{psi:g}·z" if text and psi != 1.0 else text)
            return
        parts = " ".join(f"{'−' if s < 0 else '+'} {abs(s):g}·Δ<sub>{html.escape(n)}</sub>" for n, s in terms)
        self.formula.setText(f"z {parts}" if psi == 1.0 else f"{psi:g}·(z {parts})")

    @property
    def busy(self) -> bool:
        return self._render.busy or self._strip.busy

    def shutdown(self) -> None:
        self._render.cancel()
        self._strip.cancel()
