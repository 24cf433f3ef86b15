"""The Arithmetic panel's left column: the attribute vectors of the current model.

Each row shows a vector's name and norm, how it was made, and its quality (verdict, effect size,
cosine agreement against chance); its check box makes it active (one slider each). Below the
list, the selected vector's quality in full, then the box that makes a new vector from an
attribute, a label or two filtered groups, and Remove / Save… / Load…. The vectors are the
Workspace's (`ws.vectors`): the list re-renders on `vectors_changed`, a check box calls
`ws.set_vector_active`, Remove `ws.remove_vector`. The panel computes new vectors (in a worker)
and handles the files; this widget shows them and asks.
"""
from __future__ import annotations

import html

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QStackedWidget, QVBoxLayout, QWidget)

from engines.latent.directions import is_direction
from explorer.panels.arithmetic.filters import ConditionEditor
from explorer.panels.arithmetic.jobs import Recipe, select

VERDICT_COLOURS = {"strong": "#2e9d4f", "weak": "#e0a100", "not distinguishable from chance": "#d0453b"}
ROLE = Qt.ItemDataRole.UserRole


def _dot(colour: str) -> QIcon:
    pm = QPixmap(14, 14)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(colour))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(1, 1, 12, 12)
    p.end()
    return QIcon(pm)


def is_foreign(v) -> bool:
    return bool(v.meta.get("foreign_model"))


def summary_lines(v) -> list[str]:
    """Three short lines: name and norm, where it came from, its quality (a direction: its effect)."""
    if is_direction(v):
        nan = float("nan")
        return [f"{v.name}   σ {v.meta.get('sigma', 0):.2f}", v.meta.get("source", v.method),
                f"effect {v.meta.get('effect', nan):.3f} vs random {v.meta.get('random_effect', nan):.3f}"]
    q = v.quality
    source = v.meta.get("source") or v.method
    if q is not None:
        source += f" ({q.n_a:,} / {q.n_b:,})"
        quality = f"{q.verdict} · d {q.effect_size:.2f} · cos {q.cosine:.2f} vs {q.cosine_shuffled:.2f}"
    else:
        quality = "quality not measured"
    first = f"{'⚠ ' if is_foreign(v) else ''}{v.name}   ‖Δ‖ {v.norm:.2f}"
    return [first, source, quality]


def details_html(v) -> str:
    q = v.quality
    e = html.escape
    rows = [f"<b>{e(v.name)}</b> — {e(v.meta.get('source') or v.method)}"]
    if is_direction(v):
        rows.append(f"An unsupervised direction ({e(v.meta.get('decomposed', ''))}); Δ is one standard deviation "
                    f"σ = {v.meta.get('sigma', 0):.3f} along it, so s counts standard deviations.")
        if "effect" in v.meta:
            rows.append(f"A step of one σ changes the pixels by {v.meta['effect']:.3f} on average; a random "
                        f"direction by {v.meta.get('random_effect', float('nan')):.3f}.")
    elif q is not None:
        colour = VERDICT_COLOURS.get(q.verdict, "#555")
        rows.append(f"<span style='color:{colour}'><b>{e(q.verdict)}</b></span> · groups of {q.n_a:,} and "
                    f"{q.n_b:,} images")
        rows.append(f"Effect size d = {q.effect_size:.2f} (the groups' separation along Δ in pooled "
                    "standard deviations)")
        rows.append(f"Cosine agreement {q.cosine:.3f}: single pairs' differences vs Δ; shuffled groups give "
                    f"{q.cosine_shuffled:.3f} ± {q.cosine_shuffled_std:.3f}, random directions "
                    f"{q.cosine_random:.3f} ({q.z_score:.0f} σ above chance)")
        if q.heldout_accuracy is not None:
            rows.append(f"Held-out accuracy of the direction {100 * q.heldout_accuracy:.0f} %")
    else:
        rows.append("Quality not measured (the file did not include it).")
    if not is_direction(v):
        rows.append(f"‖Δ‖ = {v.norm:.3f}; s = 1 adds the whole average difference.")
    if is_foreign(v):
        rows.append(f"<span style='color:#d0453b'>⚠ Made with another model ({e(v.model_id or 'unknown')}); "
                    "applied anyway at your request — its direction means something else here.</span>")
    return "<br>".join(rows)


class VectorList(QWidget):
    recipe_requested = Signal(object)  # arithmetic_jobs.Recipe
    current_changed = Signal(object)  # AttributeVector or None
    save_requested = Signal()
    load_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.md = None
        self.ws = None  # the Workspace whose vectors are shown
        self._shown: list = []  # the vectors the rows show, in order
        self.list = QListWidget()
        self.list.setIconSize(QSize(14, 14))
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setMinimumHeight(150)
        self.list.setToolTip("Tick a vector to get a slider for it; the selected one gets the strip")
        self.details = QLabel("No vectors yet: add one from an attribute, a label or two groups below.")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setMinimumHeight(60)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.remove_btn = QPushButton("Remove")
        self.save_btn = QPushButton("Save…")
        self.load_btn = QPushButton("Load…")
        self.save_btn.setToolTip("Save the vectors (with this model's identity) as JSON")
        self.load_btn.setToolTip("Load vectors saved from this model")
        files = QHBoxLayout()
        for b in (self.remove_btn, self.save_btn, self.load_btn):
            b.setMinimumWidth(b.fontMetrics().horizontalAdvance(b.text()) + 16)  # three in a narrow column
            files.addWidget(b)

        vectors = QGroupBox("Attribute vectors")
        vl = QVBoxLayout(vectors)
        vl.addWidget(self.list, 1)
        vl.addLayout(files)
        vl.addWidget(self.details)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(vectors, 1)
        lay.addWidget(self._build_new_box())

        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentItemChanged.connect(self._on_current)
        self.remove_btn.clicked.connect(self.remove_current)
        self.save_btn.clicked.connect(lambda: self.save_requested.emit())
        self.load_btn.clicked.connect(lambda: self.load_requested.emit())
        self.set_data(None)

    # ---- the "new vector" box --------------------------------------------------------------------
    def _build_new_box(self) -> QGroupBox:
        box = QGroupBox("New vector Δ")
        box.setToolTip("Δ = mean(A) − mean(B): the difference between the mean latents of two groups of images")
        self.kind = QComboBox()
        self.kind.addItem("from an attribute", "attribute")
        self.kind.addItem("from labels", "label")
        self.kind.addItem("from two groups", "groups")
        self.pages = QStackedWidget()

        attr_page = QWidget()
        af = QFormLayout(attr_page)
        af.setContentsMargins(0, 0, 0, 0)
        af.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.attribute = QComboBox()
        self.attr_method = QComboBox()
        self.attr_method.addItem("upper − lower half", "median")
        self.attr_method.addItem("per unit (regression)", "regression")
        self.attr_method.setToolTip("Continuous attributes: the difference between the halves above and below the "
                                    "median, or the regression slope Cov(z, y)/Var(y)")
        af.addRow("Attribute", self.attribute)
        af.addRow("Method", self.attr_method)
        self.pages.addWidget(attr_page)

        label_page = QWidget()
        lf = QFormLayout(label_page)
        lf.setContentsMargins(0, 0, 0, 0)
        lf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.label_a = QComboBox()
        self.label_b = QComboBox()
        lf.addRow("A", self.label_a)
        lf.addRow("minus B", self.label_b)
        self.pages.addWidget(label_page)

        group_page = QWidget()
        gf = QFormLayout(group_page)
        gf.setContentsMargins(0, 0, 0, 0)
        gf.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.group_a = ConditionEditor(vertical=True)
        self.group_b = ConditionEditor(any_text="rest:", vertical=True)
        gf.addRow("A", self.group_a)
        gf.addRow("minus B", self.group_b)
        self.group_count = QLabel("")
        gf.addRow("", self.group_count)
        self.pages.addWidget(group_page)

        self.name_edit = QLineEdit()
        self.add_btn = QPushButton("Add vector")
        self.add_btn.setDefault(True)
        form = QFormLayout(box)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # a narrow column: labels above their fields
        form.addRow("Make", self.kind)
        form.addRow(self.pages)
        form.addRow("Name", self.name_edit)
        form.addRow(self.add_btn)

        self.kind.currentIndexChanged.connect(self._on_kind)
        self.attribute.currentIndexChanged.connect(self._update_new_box)
        self.attr_method.currentIndexChanged.connect(self._update_new_box)
        self.label_a.currentIndexChanged.connect(self._update_new_box)
        self.label_b.currentIndexChanged.connect(self._update_new_box)
        self.group_a.changed.connect(self._update_new_box)
        self.group_b.changed.connect(self._update_new_box)
        self.add_btn.clicked.connect(self.request_new)
        self.name_edit.returnPressed.connect(self.request_new)
        return box

    def set_data(self, md) -> None:
        """The model's encoded data (None while loading or when there is none)."""
        self.md = md
        for c in (self.attribute, self.label_a, self.label_b):
            c.blockSignals(True)
            c.clear()
        if md is not None:
            for k in md.binary_attributes:
                self.attribute.addItem(k, k)
            for k in md.continuous_attributes:
                self.attribute.addItem(f"{k} (continuous)", k)
            if md.ls.labels is not None:
                self.label_b.addItem("all other labels", -1)
                for i, n in enumerate(md.ls.label_names):
                    self.label_a.addItem(n, i)
                    self.label_b.addItem(n, i)
        for c in (self.attribute, self.label_a, self.label_b):
            c.blockSignals(False)
        self.group_a.set_data(md)
        self.group_b.set_data(md)
        model = self.kind.model()
        model.item(0).setEnabled(md is not None and self.attribute.count() > 0)
        model.item(1).setEnabled(md is not None and self.label_a.count() > 0)
        model.item(2).setEnabled(md is not None)
        if md is not None and not model.item(self.kind.currentIndex()).isEnabled():
            self.kind.setCurrentIndex(next((i for i in range(3) if model.item(i).isEnabled()), 2))
        self._on_kind()

    def _on_kind(self, *_):
        self.pages.setCurrentIndex(self.kind.currentIndex())
        self._update_new_box()

    def _update_new_box(self, *_):
        md = self.md
        kind = self.kind.currentData()
        ok = md is not None
        if kind == "attribute":
            key = self.attribute.currentData()
            binary = md is not None and key in md.binary_attributes
            self.attr_method.setEnabled(not binary)
            ok &= key is not None
            per_unit = self.attr_method.currentData() != "median"
            auto = key if binary or key is None else (f"{key} (per unit)" if per_unit else f"{key} (high − low)")
        elif kind == "label":
            a, b = self.label_a.currentData(), self.label_b.currentData()
            ok &= a is not None and a != b
            auto = "" if a is None else (f"{self.label_a.currentText()} (vs rest)" if b == -1
                                         else f"{self.label_a.currentText()} − {self.label_b.currentText()}")
        else:
            auto = ""
            if md is not None:
                ga, gb = self.group_a.conditions(), self.group_b.conditions()
                na = len(select(md.ls, ga))
                nb = len(select(md.ls, gb, exclude=select(md.ls, ga))) if gb else len(md.ls) - na
                self.group_count.setText(f"A: {na:,} images · B: {nb:,} images")
                ok &= na >= 2 and nb >= 2 and bool(ga)
                auto = f"{self.group_a.describe()} − {self.group_b.describe() if gb else 'rest'}"
        self.name_edit.setPlaceholderText(auto or "name")
        self.add_btn.setEnabled(bool(ok))

    def recipe(self) -> Recipe | None:
        if not self.add_btn.isEnabled():
            return None
        name = self.name_edit.text().strip()
        kind = self.kind.currentData()
        if kind == "attribute":
            key = self.attribute.currentData()
            method = "auto" if key in self.md.binary_attributes else self.attr_method.currentData()
            return Recipe("attribute", name, attribute=key, method=method)
        if kind == "label":
            return Recipe("label", name, label=int(self.label_a.currentData()), versus=int(self.label_b.currentData()))
        return Recipe("groups", name or self.name_edit.placeholderText(), group_a=self.group_a.conditions(),
                      group_b=self.group_b.conditions())

    def request_new(self) -> None:
        r = self.recipe()
        if r is not None:
            self.name_edit.clear()
            self.recipe_requested.emit(r)

    def choose(self, kind: str, attribute: str | None = None) -> None:
        """Set the new-vector box (scripts, tests, the screenshot)."""
        self.kind.setCurrentIndex(max(0, self.kind.findData(kind)))
        if attribute is not None:
            self.attribute.setCurrentIndex(max(0, self.attribute.findData(attribute)))

    # ---- the list: the Workspace's vectors ---------------------------------------------------------------
    def set_workspace(self, ws) -> None:
        """Show `ws.vectors` (None: no model), re-rendered whenever they change."""
        if self.ws is not None:
            try:
                self.ws.vectors_changed.disconnect(self._render)
            except (RuntimeError, TypeError):
                pass
        self.ws = ws
        self._shown = []
        if ws is not None:
            ws.vectors_changed.connect(self._render)
        self._render()

    def _render(self) -> None:
        """Rebuild the rows from the Workspace. The selection stays on the vector it was on; a
        vector that just arrived is selected (it gets the strip); a fresh list selects its first."""
        ws = self.ws
        vectors = [] if ws is None else ws.vectors
        before = {id(v) for v in self._shown}
        fresh = not self._shown
        current = self.current()
        self._shown = list(vectors)
        self.list.blockSignals(True)
        self.list.clear()
        for v in vectors:
            item = QListWidgetItem("\n".join(summary_lines(v)))
            item.setData(ROLE, v)
            verdict = v.quality.verdict if v.quality is not None else ""
            item.setIcon(_dot("#d0453b" if is_foreign(v) else VERDICT_COLOURS.get(verdict, "#999999")))
            item.setToolTip(details_html(v))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if ws.is_active(v.name) else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        new = [v for v in vectors if id(v) not in before]
        pick = vectors[0] if vectors and fresh else (new[-1] if new else current)
        row = next((i for i, v in enumerate(vectors) if v is pick), -1)
        self.list.setCurrentRow(row)
        self.list.blockSignals(False)
        self._on_current(self.list.currentItem(), None)

    def _on_item_changed(self, item) -> None:
        if self.ws is not None:
            self.ws.set_vector_active(item.data(ROLE).name, item.checkState() == Qt.CheckState.Checked)

    def add(self, v, active: bool = True, select: bool = True) -> None:
        """Add a vector to the Workspace: it shows up, selected, when the Workspace says so
        (`select` is accepted from older callers; a new vector is always selected)."""
        if self.ws is not None:
            self.ws.add_vector(v, active)

    def vectors(self) -> list:
        return [self.list.item(i).data(ROLE) for i in range(self.list.count())]

    def entries(self) -> list[tuple]:
        """(vector, active) for every row, in order."""
        return [(it.data(ROLE), it.checkState() == Qt.CheckState.Checked)
                for it in (self.list.item(i) for i in range(self.list.count()))]

    def active(self) -> list:
        return [v for v, on in self.entries() if on]

    def current(self):
        it = self.list.currentItem()
        return None if it is None else it.data(ROLE)

    def set_active(self, v, on: bool) -> None:
        if self.ws is not None:
            self.ws.set_vector_active(v.name, on)

    def select_vector(self, v) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(ROLE) is v:
                self.list.setCurrentRow(i)

    def remove_current(self) -> None:
        v = self.current()
        if v is not None and self.ws is not None:
            self.ws.remove_vector(v.name)

    def _on_current(self, item, _prev) -> None:
        v = None if item is None else item.data(ROLE)
        self.remove_btn.setEnabled(v is not None)
        self.save_btn.setEnabled(self.list.count() > 0)
        if v is None:
            self.details.setText("No vectors yet: add one from an attribute, a label or two groups below."
                                 if self.list.count() == 0 else "Select a vector to see its quality.")
        else:
            self.details.setText(details_html(v))
        self.current_changed.emit(v)
