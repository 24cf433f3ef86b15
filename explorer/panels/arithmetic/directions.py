"""The Directions tab: unsupervised edit directions (GANSpace, SeFa) of the loaded model.

Find K directions (in a worker: `direction_jobs.find_directions`); each gets a row with its name
(edit it to rename: "this one is smile"), what it is (principal component and its share of the
variance, or SeFa eigenvalue; its effect on the images against a random direction's), the strip
−3σ … +3σ around the Edit tab's base image, and a slider in standard deviations. The directions
are attribute vectors Δ = σ·u in the Workspace (`ws.vectors`, method "ganspace"/"sefa"), so they
are saved with the model, kept in sessions and offered by the Export panel like any vector; a
slider here is the same strength as the vector's slider in the Edit tab (moving it switches the
vector on). Finding directions again replaces the earlier ones of that method that were not
renamed. Layer-restricted edits are not offered: `directions.LAYER_NOTE` says why, on screen.
"""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from engines.latent import directions as dirs
from explorer.panels.arithmetic.direction_jobs import FindRequest, StripsRequest, find_directions, \
    render_direction_strips
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.image_strip import ImageStrip
from explorer.widgets.scroll import vertical_scroll
from explorer.widgets.strength_slider import StrengthSlider
from explorer.workers import LatestRequestRunner, run_in_thread

CAPTIONS = tuple("0" if s == 0 else f"{s:+g}σ".replace("-", "−") for s in dirs.STRIP_SIGMAS)
LO, HI = dirs.STRIP_SIGMAS[0], dirs.STRIP_SIGMAS[-1]


def describe(v) -> str:
    """What a direction is, in one line: its component and share of variance (or eigenvalue), its effect."""
    text = v.meta.get("source", v.method)
    if "effect" in v.meta:
        text += f" · effect {v.meta['effect']:.3f}"
        if "random_effect" in v.meta:
            text += f" (random {v.meta['random_effect']:.3f})"
    return text


class DirectionRow(QFrame):
    """One direction: name (editable), what it is, its strip and its slider."""

    renamed = Signal(object, str)  # the vector, the name typed
    moved = Signal(object, float)  # the vector, s in standard deviations

    def __init__(self, v, parent=None):
        super().__init__(parent)
        self.vector = v
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.name = QLineEdit(v.name)
        self.name.setToolTip("Rename the direction (e.g. “smile”): the name it has everywhere, saved with the model")
        self.name.setMaximumWidth(220)
        self.name.setMinimumWidth(90)
        self.info = QLabel("")
        self.info.setStyleSheet("color: palette(placeholder-text);")
        self.info.setWordWrap(True)
        self.strip = ImageStrip(placeholder="drawing…", min_cell=36, max_cell=64, gap=4, expected=len(CAPTIONS))
        self.strip.setToolTip("z + s·σ·u for s = −3 … 3 standard deviations around the base image; click one to use it")
        self.slider = StrengthSlider("step", lo=LO, hi=HI)
        self.slider.name_label.hide()  # a narrow column: the spin box says "σ"
        self.slider.slider.setMinimumWidth(80)
        self.slider.spin.setPrefix("")
        self.slider.spin.setSuffix(" σ")
        self.slider.slider.setToolTip("Move the base image this many standard deviations along the direction")
        top = QHBoxLayout()
        top.addWidget(self.name)
        top.addWidget(self.info, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.setSpacing(3)
        lay.addLayout(top)
        lay.addWidget(self.strip)
        lay.addWidget(self.slider)
        self.update_vector()
        self.name.editingFinished.connect(lambda: self.renamed.emit(self.vector, self.name.text().strip()))
        self.slider.valueChanged.connect(lambda s: self.moved.emit(self.vector, s))
        self.strip.clicked.connect(lambda i: self.slider.setValue(dirs.STRIP_SIGMAS[i]))

    def update_vector(self) -> None:
        v = self.vector
        if self.name.text() != v.name and not self.name.hasFocus():
            self.name.setText(v.name)
        self.info.setText(html.escape(describe(v)))
        self.info.setToolTip(f"{describe(v)}\nσ = {v.meta.get('sigma', 0):.3f} (one standard deviation of the model's "
                             f"latents along it); decomposed: {v.meta.get('decomposed', '')}")

    def set_strength(self, s: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(s)
        self.slider.blockSignals(False)
        self.strip.set_highlight(int(np.argmin([abs(s - x) for x in dirs.STRIP_SIGMAS])) if s else None)


class DirectionsView(QWidget):
    found = Signal(list)  # the new directions (AttributeVectors), once in the Workspace

    def __init__(self, ctx, edit, parent=None):
        """`edit`: the Edit tab's EditView, whose base image the strips start from and whose
        strengths the sliders set."""
        super().__init__(parent)
        self.ctx, self.edit = ctx, edit
        self.ws = None
        self.md = None
        self.rows: dict[int, DirectionRow] = {}  # id(vector) → row
        self._finding = 0
        self._base = None
        self._strips = LatestRequestRunner(render_direction_strips, self)
        self._strips.result.connect(self._on_strips)
        self._strips.failed.connect(lambda g, r, e: self.ctx.session.report(e, "Could not draw the directions"))
        self._build()
        edit.rendered.connect(self._on_rendered)

    def _build(self) -> None:
        self.method = QComboBox()
        self.method.addItem("GANSpace (PCA)", "ganspace")
        self.method.addItem("SeFa (closed form)", "sefa")
        self.method.setToolTip("GANSpace: principal components of the encoded data's latents, or of a GAN's "
                               "first-layer activations carried back to z.\nSeFa: eigenvectors of AᵀA for the first linear "
                               "layer's weight A.")
        self.k = QSpinBox()
        self.k.setRange(1, 8)
        self.k.setValue(6)
        self.k.setPrefix("top ")
        self.find_btn = QPushButton("Find directions")
        self.find_btn.clicked.connect(lambda: self.find())
        self.state = QLabel("")
        self.state.setWordWrap(True)
        controls = QHBoxLayout()
        for w in (self.method, self.k, self.find_btn):
            controls.addWidget(w)
        controls.addWidget(self.state, 1)
        self.result = ImageGrid(placeholder="")
        self.result.setFixedSize(128, 128)
        self.result.setToolTip("The base image with every switched-on slider's edit (as in the Edit tab)")
        self.holder = QVBoxLayout()
        self.holder.setContentsMargins(0, 0, 0, 0)
        self.empty = QLabel("No directions yet: pick a method and find them. They need no labels.")
        self.empty.setStyleSheet("color: palette(placeholder-text);")
        self.empty.setWordWrap(True)
        self.holder.addWidget(self.empty)
        self.holder.addStretch(1)
        inner = QWidget()
        inner.setLayout(self.holder)
        self.scroll = vertical_scroll(inner, min_height=120)
        self.layer_note = QLabel(dirs.LAYER_NOTE)
        self.layer_note.setWordWrap(True)
        self.layer_note.setStyleSheet("color: palette(placeholder-text);")
        side = QVBoxLayout()
        side.addWidget(QLabel("<b>Result</b>"))
        side.addWidget(self.result)
        side.addStretch(1)
        body = QHBoxLayout()
        body.addLayout(side)
        body.addWidget(self.scroll, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(controls)
        lay.addLayout(body, 1)
        lay.addWidget(self.layer_note)
        self.method.currentIndexChanged.connect(self._update_controls)

    # ---- the model -------------------------------------------------------------------------------------
    def set_workspace(self, ws) -> None:
        if self.ws is not None:
            try:
                self.ws.vectors_changed.disconnect(self._render_rows)
            except (RuntimeError, TypeError):
                pass
        self.ws, self.md, self._base = ws, None, None
        self._strips.cancel()
        if ws is not None:
            ws.vectors_changed.connect(self._render_rows)
            model = self.method.model()
            for i in range(self.method.count()):
                why = dirs.support(ws.engine, self.method.itemData(i))
                model.item(i).setEnabled(why is None)
                model.item(i).setToolTip(why or "")
            if not model.item(self.method.currentIndex()).isEnabled():
                self.method.setCurrentIndex(next((i for i in range(self.method.count())
                                                  if model.item(i).isEnabled()), 0))
        self._render_rows()
        self._update_controls()

    def set_data(self, md) -> None:
        self.md = md
        self._update_controls()

    def _why_not(self) -> str | None:
        ws = self.ws
        if ws is None:
            return "Open a model to find its directions."
        why = dirs.support(ws.engine, self.method.currentData())
        if why:
            return why[0].upper() + why[1:] + "."
        if dirs.uses_data(ws.engine, self.method.currentData()) and self.md is None:
            return "Waiting for the model's encoded data (GANSpace decomposes it)."
        return None

    def _update_controls(self, *_) -> None:
        why = self._why_not()
        ok = why is None and not self._finding
        self.find_btn.setEnabled(ok)
        if self.ws is not None and why is None:
            n = None if self.md is None else len(self.md.ls.train_idx) or len(self.md.ls)
            self.k.setMaximum(max(1, dirs.max_directions(self.ws.engine, self.method.currentData(), n)))
        if not self._finding:
            self.state.setText(why or "")

    # ---- finding directions -------------------------------------------------------------------------------
    def find(self, method: str | None = None, k: int | None = None) -> bool:
        """Find `method`'s top-k directions (default: the controls') in a worker."""
        if method is not None:
            self.method.setCurrentIndex(max(0, self.method.findData(method)))
        if k is not None:
            self.k.setValue(int(k))
        why = self._why_not()
        if why is not None or self._finding:
            if why:
                self.ctx.message(why)
            return False
        ws, method, k = self.ws, self.method.currentData(), self.k.value()
        latents = None
        if dirs.uses_data(ws.engine, method):
            ls = self.md.ls
            latents = ls.latents[ls.train_idx] if len(ls.train_idx) else ls.latents
        self._finding += 1
        self.state.setText(f"finding {dirs.TITLES[method]} directions and measuring their effect…")
        self.ctx.session.set_busy("arithmetic-directions", f"finding {dirs.TITLES[method]} directions")
        self._update_controls()
        run_in_thread(find_directions, FindRequest(ws.engine, method, k, latents, ws.model_id),
                      on_result=lambda vs, ws=ws: self._on_found(ws, vs), on_error=self._on_failed)
        return True

    def _done(self) -> None:
        self._finding -= 1
        self.ctx.session.set_busy("arithmetic-directions", None)
        self._update_controls()

    def _on_failed(self, exc) -> None:
        self._done()
        self.ctx.session.report(exc, "Could not find directions")

    def _on_found(self, ws, vectors) -> None:
        self._done()
        if ws is not self.ws or ws.closed:
            return
        method = vectors[0].method if vectors else ""
        for old in [v for v in ws.vectors if dirs.is_direction(v) and v.method == method
                    and v.name == v.meta.get("default_name")]:
            ws.remove_vector(old.name)  # the earlier ones of this method, unless renamed
        for v in vectors:
            v.name = ws.unique_vector_name(v.name)
            ws.add_vector(v, active=False)
        self.state.setText(f"{len(vectors)} {dirs.TITLES.get(method, method)} directions")
        self.found.emit(vectors)

    # ---- the rows -------------------------------------------------------------------------------------
    def directions(self) -> list:
        return [] if self.ws is None else [v for v in self.ws.vectors if dirs.is_direction(v)]

    def _render_rows(self) -> None:
        vectors = self.directions()
        if [id(v) for v in vectors] == list(self.rows):
            for row in self.rows.values():
                row.update_vector()
            return
        for row in self.rows.values():
            self.holder.removeWidget(row)
            row.deleteLater()
        self.rows = {}
        for i, v in enumerate(vectors):
            row = DirectionRow(v)
            row.renamed.connect(self._rename)
            row.moved.connect(self._move)
            row.set_strength(self.edit.strength(v))
            self.holder.insertWidget(i, row)
            self.rows[id(v)] = row
        self.empty.setVisible(not vectors)
        self._submit_strips()

    def _rename(self, v, name: str) -> None:
        if self.ws is not None and name and name != v.name and self.ws.vector(v.name) is v:
            self.ws.rename_vector(v.name, name)

    def _move(self, v, s: float) -> None:
        """A row's slider: the vector's strength in the Edit tab, switched on if it was not."""
        ws = self.ws
        if ws is None:
            return
        self.edit.set_strength(v, s)
        if not ws.is_active(v.name) and s != 0:
            ws.set_vector_active(v.name, True)
        row = self.rows.get(id(v))
        if row is not None:
            row.set_strength(s)

    # ---- pictures -------------------------------------------------------------------------------------
    def _submit_strips(self) -> None:
        base = self.edit.base
        vectors = tuple(r.vector for r in self.rows.values())
        if self.ws is None or base is None or not vectors:
            return
        self._base = base
        self._strips.submit(StripsRequest(self.ws.engine, np.asarray(base.z, np.float32).reshape(-1), vectors))

    def _on_strips(self, generation, request, images) -> None:
        if self.ws is None or request.engine is not self.ws.engine:
            return
        for v, imgs in zip(request.vectors, images):
            row = self.rows.get(id(v))
            if row is not None:
                row.strip.set_images(imgs, CAPTIONS)

    def _on_rendered(self, image) -> None:
        """The Edit tab decoded z + Σ s·Δ: show it, follow its strengths and, for a new base, redraw the strips."""
        self.result.set_image(image)
        for row in self.rows.values():
            row.set_strength(self.edit.strength(row.vector))
        if self.edit.base is not self._base:
            self._submit_strips()

    def demo(self, method: str, k: int, s: float) -> None:
        """The screenshot's content: `method`'s top k, the first one's slider at s once found."""
        self._demo_s = float(s)
        self.found.connect(self._demo_found)
        if not self.find(method, k):
            self.found.disconnect(self._demo_found)
            self._demo_s = None

    def _demo_found(self, vectors) -> None:
        self.found.disconnect(self._demo_found)
        if vectors:
            self._move(vectors[0], self._demo_s)
        self._demo_s = None

    @property
    def busy(self) -> bool:
        return bool(self._finding) or self._strips.busy or getattr(self, "_demo_s", None) is not None

    def shutdown(self) -> None:
        self._strips.cancel()
