"""The Export panel's settings: what to export (keyframe walk, attribute sweep, seed grid,
diffusion trajectory, training progress over checkpoints) and how (format, width, fps, scaling, captions). `spec(...)` turns the form
into an `engines.export.ExportSpec`; `set_spec` fills the form from one (a session file)."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QListWidget, QMessageBox, QPushButton, QSizePolicy, QSpinBox, QStackedWidget,
                               QVBoxLayout, QWidget)

KINDS = (("Latent walk through keys", "interpolate"), ("Attribute sweep z + s·Δ", "sweep"),
         ("Grid of seeds", "grid"), ("Diffusion trajectory", "diffusion"),
         ("Training progress (checkpoints)", "progress"))
FORMATS = (("MP4 video (H.264)", ".mp4"), ("GIF (looping)", ".gif"), ("PNG (image / frame sequence)", ".png"))
USE_NAME, RENAME, CANCEL = "name", "rename", "cancel"  # the answers of `ask_format`


def ask_format(parent, name: str, name_ext: str | None, chosen_ext: str) -> str:
    """Ask what to do with an output `name` whose extension disagrees with the chosen format:
    USE_NAME (write the name's format; offered when `name_ext` is one Export writes), RENAME
    (write the chosen format under a name ending in `chosen_ext`) or CANCEL."""
    chosen = chosen_ext[1:].upper()
    renamed = os.path.basename(output_rename(name, chosen_ext, name_ext))
    if name_ext:
        text = (f"“{os.path.basename(name)}” is a {name_ext[1:].upper()} name, but the format chosen is {chosen}.")
    else:
        text = f"“{os.path.basename(name)}” does not end in .mp4, .gif or .png; the format chosen is {chosen}."
    box = QMessageBox(QMessageBox.Icon.Question, "Output name and format", text, QMessageBox.StandardButton.NoButton,
                      parent)
    use = box.addButton(f"Write {name_ext[1:].upper()}", QMessageBox.ButtonRole.AcceptRole) if name_ext else None
    rename = box.addButton(f"Save as {renamed}", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(rename)
    box.exec()
    clicked = box.clickedButton()
    return USE_NAME if use is not None and clicked is use else RENAME if clicked is rename else CANCEL


def output_rename(path: str, chosen_ext: str, name_ext: str | None) -> str:
    """`path` ending in `chosen_ext`: a known extension is replaced, anything else kept and added to."""
    return (os.path.splitext(path)[0] if name_ext else path) + chosen_ext


def output_name(parent, path: str, chosen_ext: str, ask=ask_format) -> tuple[str, str] | None:
    """The file to write for a name typed in the save dialog and the chosen format's extension:
    `(path, ext)`, or None when the user cancels. A name without an extension gets the chosen one;
    a name whose extension disagrees is never renamed silently: `ask(parent, path, name_ext,
    chosen_ext)` says USE_NAME, RENAME or CANCEL (tests pass their own `ask`)."""
    base, ext = os.path.splitext(path)
    ext = ext.lower()
    if ext == chosen_ext:
        return path, chosen_ext
    if not ext or not os.path.basename(base):
        return path + chosen_ext, chosen_ext
    known = ext if ext in {e for _, e in FORMATS} else None
    answer = ask(parent, path, known, chosen_ext)
    if answer == USE_NAME and known:
        return path, known
    if answer == RENAME:
        return output_rename(path, chosen_ext, known), chosen_ext
    return None


def _spin(lo, hi, value, step=1.0, decimals=2, suffix=""):
    s = QDoubleSpinBox()
    s.setRange(lo, hi)
    s.setDecimals(decimals)
    s.setSingleStep(step)
    s.setValue(value)
    s.setSuffix(suffix)
    return s


def _int(lo, hi, value, suffix=""):
    s = QSpinBox()
    s.setRange(lo, hi)
    s.setValue(value)
    s.setSuffix(suffix)
    return s


def _combo(items):
    c = QComboBox()
    for title, key in items:
        c.addItem(title, key)
    return c


def _select(combo: QComboBox, key) -> None:
    i = combo.findData(key)
    if i >= 0:
        combo.setCurrentIndex(i)


class ExportOptions(QWidget):
    changed = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.kind = _combo(KINDS)
        self.pages = QStackedWidget()
        # keyframe walk
        self.method = _combo((("spherical (slerp)", "slerp"), ("norm-interpolating slerp", "nslerp"), ("linear", "lerp")))
        self.easing = _combo((("smoothstep (linger on keys)", "smoothstep"), ("cubic ease in/out", "ease_in_out_cubic"),
                              ("linear", "linear")))
        self.seconds = _spin(0.1, 60, 2.0, 0.5, 2, " s per segment")
        self.loop = QCheckBox("Loop back to the first key")
        self.loop.setChecked(True)
        self.pages.addWidget(self._form(("Path", self.method), ("Easing", self.easing), ("Timing", self.seconds),
                                         ("", self.loop)))
        # sweep
        self.vector = QComboBox()
        self.vector.setToolTip("Attribute vectors made in the Arithmetic panel")
        self.s_from = _spin(-10, 10, -3.0, 0.5)
        self.s_to = _spin(-10, 10, 3.0, 0.5)
        self.sweep_seconds = _spin(0.2, 60, 4.0, 0.5, 2, " s")
        self.sweep_loop = QCheckBox("There and back")
        self.sweep_loop.setChecked(True)
        self.pages.addWidget(self._form(("Vector Δ", self.vector), ("s from", self.s_from), ("s to", self.s_to),
                                        ("Length", self.sweep_seconds), ("", self.sweep_loop)))
        # grid
        self.grid_n = _int(1, 256, 16, " images")
        self.grid_seed = _int(0, 2**31 - 1, 0)
        self.grid_keys = _int(1, 16, 1, " keys")
        self.grid_keys.setSpecialValueText("none (a still image)")
        self.grid_keys.setToolTip("A still image, or every cell walks through its own keys")
        self.grid_seconds = _spin(0.1, 60, 2.0, 0.5, 2, " s per segment")
        self.pages.addWidget(self._form(("Images", self.grid_n), ("First seed", self.grid_seed), ("Walk", self.grid_keys),
                                        ("Timing", self.grid_seconds)))
        # diffusion
        self.diff_n = _int(1, 16, 4, " seeds")
        self.diff_seed = _int(0, 2**31 - 1, 0)
        self.diff_show = _combo((("x_t above x̂₀", "both"), ("x_t (noisy)", "x_t"), ("x̂₀ (prediction)", "x0")))
        self.diff_sampler = _combo((("DPM-Solver++ 2M", "dpm"), ("DDIM", "ddim"), ("DDPM", "ddpm")))
        self.diff_steps = _int(1, 1000, 20, " steps")
        self.pages.addWidget(self._form(("Seeds", self.diff_n), ("First seed", self.diff_seed), ("Show", self.diff_show),
                                        ("Sampler", self.diff_sampler), ("Steps", self.diff_steps)))
        # training progress
        self.ckpts = QListWidget()
        self.ckpts.setToolTip("Checkpoints of one run: each decodes the same seeds, in training order")
        self.ckpts.setMaximumHeight(70)
        self.ckpt_add = QPushButton("Add checkpoints…")
        self.ckpt_clear = QPushButton("Clear")
        row = QHBoxLayout()
        row.addWidget(self.ckpt_add)
        row.addWidget(self.ckpt_clear)
        rw = QWidget()
        rw.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        self.prog_n = _int(1, 64, 8, " images")
        self.prog_seed = _int(0, 2**31 - 1, 0)
        self.prog_seconds = _spin(0.05, 10, 0.5, 0.25, 2, " s each")
        self.pages.addWidget(self._form(("", self.ckpts), ("", rw), ("Seeds", self.prog_n), ("First seed", self.prog_seed),
                                        ("Hold", self.prog_seconds)))
        self.ckpt_add.clicked.connect(self._add_checkpoints)
        self.ckpt_clear.clicked.connect(lambda: (self.ckpts.clear(), self.changed.emit()))
        # output
        self.format = _combo(FORMATS)
        self.width = _int(16, 4096, 512, " px wide")
        self.fps = _spin(1, 60, 24, 1, 0, " fps")
        self.smooth = QCheckBox("Smooth upscaling (bicubic)")
        self.labels = QCheckBox("Captions on the frames")
        out = QGroupBox("Output")
        of = QFormLayout(out)
        for label, w in (("Format", self.format), ("Size", self.width), ("Rate", self.fps), ("", self.smooth),
                         ("", self.labels)):
            of.addRow(label, w)
        what = QGroupBox("What")
        wl = QVBoxLayout(what)
        wl.addWidget(self.kind)
        wl.addWidget(self.pages)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(what)
        lay.addWidget(out)
        self.kind.currentIndexChanged.connect(self._show_page)
        self._show_page(0)
        for cls, signal in ((QComboBox, "currentIndexChanged"), (QSpinBox, "valueChanged"),
                            (QDoubleSpinBox, "valueChanged"), (QCheckBox, "toggled")):
            for w in self.findChildren(cls):
                getattr(w, signal).connect(lambda *_: self.changed.emit())

    def _show_page(self, index: int) -> None:
        """Only the page on show counts for the size (a stack is as tall as its tallest page)."""
        ignored, preferred = QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred
        for i in range(self.pages.count()):
            on = i == index
            self.pages.widget(i).setSizePolicy(preferred if on else ignored, preferred if on else ignored)
        self.pages.setCurrentIndex(index)
        self.pages.adjustSize()

    def _add_checkpoints(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Checkpoints of one run", "", "Checkpoints (*.safetensors)")
        self.add_checkpoints(paths)

    def add_checkpoints(self, paths) -> None:
        have = set(self.checkpoints())
        for p in paths:
            if p not in have:
                self.ckpts.addItem(os.path.basename(p))
                item = self.ckpts.item(self.ckpts.count() - 1)
                item.setToolTip(p)
                item.setData(Qt.ItemDataRole.UserRole, p)
        self.changed.emit()

    def checkpoints(self) -> list[str]:
        return [self.ckpts.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.ckpts.count())]

    @staticmethod
    def _form(*rows) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        f.setContentsMargins(0, 0, 0, 0)
        for label, field in rows:
            f.addRow(label, field)
        return w

    @property
    def kind_key(self) -> str:
        return self.kind.currentData()

    def set_kinds(self, diffusion: bool, sweep: bool) -> None:
        """Grey out what the current model cannot do."""
        model = self.kind.model()
        for i in range(self.kind.count()):
            key = self.kind.itemData(i)
            ok = (key != "diffusion" or diffusion) and (key != "sweep" or sweep)
            model.item(i).setEnabled(ok)
        if not model.item(self.kind.currentIndex()).isEnabled():
            self.kind.setCurrentIndex(0)

    def set_vectors(self, vectors) -> None:
        """(name, AttributeVector) pairs; keeps the current choice when it is still there."""
        current = self.vector.currentText()
        self.vector.blockSignals(True)
        self.vector.clear()
        for name, v in vectors:
            self.vector.addItem(name, v)
        i = self.vector.findText(current)
        self.vector.setCurrentIndex(max(0, i))
        self.vector.blockSignals(False)

    def spec(self, engine, keys, labels, base=None):
        """The ExportSpec this form describes (ValueError with a readable message when incomplete)."""
        from engines.export import ExportSpec, FrameStyle, GridSpec, Sweep, Timeline
        from engines.export.job import DiffusionSpec
        from engines.export.timeline import prior_latents

        kind, fps = self.kind_key, float(self.fps.value())
        spec = ExportSpec(kind)
        cells = 1
        if kind == "interpolate":
            if len(keys) < 2:
                raise ValueError("add at least two keys")
            spec.timeline = Timeline(list(keys), self.method.currentData(), self.easing.currentData(),
                                     self.seconds.value(), fps, self.loop.isChecked(), list(labels))
        elif kind == "sweep":
            v = self.vector.currentData()
            if v is None:
                raise ValueError("make an attribute vector in the Arithmetic panel first")
            z = keys[0] if len(keys) else (base if base is not None else prior_latents(engine, 1, 0)[0])
            spec.sweep = Sweep(z, v.vector, self.s_from.value(), self.s_to.value(), self.sweep_seconds.value(), fps,
                               self.easing.currentData(), self.sweep_loop.isChecked(), v.name)
        elif kind == "grid":
            cells = self.grid_n.value()
            spec.grid = GridSpec(cells, self.grid_seed.value(), self.grid_keys.value(), self.grid_seconds.value(), fps,
                                 self.method.currentData(), self.easing.currentData())
        elif kind == "progress":
            from engines.export import ProgressSpec

            if not self.ckpts.count():
                raise ValueError("add checkpoints of a run (its periodic saves) to show its progress")
            cells = self.prog_n.value()
            spec.progress = ProgressSpec(self.checkpoints(), cells, self.prog_seed.value(), self.prog_seconds.value(),
                                         fps)
        else:
            n = self.diff_n.value()
            cells = n
            spec.diffusion = DiffusionSpec(n, self.diff_seed.value(), self.diff_show.currentData(), fps, 1.0)
            spec.options = {"sampler": self.diff_sampler.currentData(), "steps": self.diff_steps.value()}
        cols = cells if kind == "diffusion" else (int(round(cells ** 0.5 + 0.4999)) if cells > 1 else 1)
        spec.style = FrameStyle.for_width(engine.spec, self.width.value(), cells, cols, self.smooth.isChecked(),
                                          2, self.labels.isChecked())
        return spec

    def extension(self, spec) -> str:
        ext = self.format.currentData()
        if spec.kind == "grid" and spec.grid.keys <= 1:
            return ".png"  # a still image
        return ext

    def set_spec(self, spec) -> None:
        """Fill the form from a spec (a session being opened)."""
        _select(self.kind, spec.kind)
        st = spec.style
        self.smooth.setChecked(st.smooth)
        self.labels.setChecked(st.labels)
        if spec.timeline is not None:
            t = spec.timeline
            _select(self.method, t.method)
            _select(self.easing, t.easing)
            self.seconds.setValue(t.seconds)
            self.loop.setChecked(t.loop)
            self.fps.setValue(t.fps)
        if spec.sweep is not None:
            s = spec.sweep
            self.s_from.setValue(s.s_from)
            self.s_to.setValue(s.s_to)
            self.sweep_seconds.setValue(s.seconds)
            self.sweep_loop.setChecked(s.loop)
            self.fps.setValue(s.fps)
            i = self.vector.findText(s.name)
            if i >= 0:
                self.vector.setCurrentIndex(i)
        if spec.grid is not None:
            g = spec.grid
            self.grid_n.setValue(g.n)
            self.grid_seed.setValue(g.seed)
            self.grid_keys.setValue(g.keys)
            self.grid_seconds.setValue(g.seconds)
            self.fps.setValue(g.fps)
        if spec.progress is not None:
            pr = spec.progress
            self.ckpts.clear()
            self.add_checkpoints(pr.checkpoints)
            self.prog_n.setValue(pr.n)
            self.prog_seed.setValue(pr.seed)
            self.prog_seconds.setValue(pr.seconds)
            self.fps.setValue(pr.fps)
        if spec.diffusion is not None:
            d = spec.diffusion
            self.diff_n.setValue(d.n)
            self.diff_seed.setValue(d.seed)
            _select(self.diff_show, d.show)
            _select(self.diff_sampler, spec.options.get("sampler", "dpm"))
            self.diff_steps.setValue(int(spec.options.get("steps", 20)))
            self.fps.setValue(d.fps)

    def output_state(self) -> dict:
        return {"format": self.format.currentData(), "width": self.width.value()}

    def set_format(self, ext: str) -> None:
        _select(self.format, ext)

    def set_output_state(self, d: dict) -> None:
        _select(self.format, d.get("format", ".mp4"))
        self.width.setValue(int(d.get("width", 512)))
