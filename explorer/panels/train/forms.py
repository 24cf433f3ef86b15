"""A settings form generated from an engine's config dataclass (engines.config.describe):
one row per field with its default, its range and its help text as the tooltip."""
from __future__ import annotations

from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QSpinBox, QWidget

INT_LIMIT = 2_000_000_000


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


class ConfigForm(QWidget):
    """`values()` gives the fields as typed values; `config()` builds (and validates) the dataclass."""

    def __init__(self, cfg_cls=None, parent=None):
        super().__init__(parent)
        self.cfg_cls = None
        self.rows: list[dict] = []
        self.editors: dict[str, QWidget] = {}
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        if cfg_cls is not None:
            self.set_config_class(cfg_cls)

    def set_config_class(self, cfg_cls) -> None:
        from engines import config as cfgmod

        while self.form.rowCount():
            self.form.removeRow(0)
        self.cfg_cls = cfg_cls
        self.rows = cfgmod.describe(cfg_cls)
        self.editors = {}
        for row in self.rows:
            editor = self._editor(row)
            tip = row["help"] or row["name"]
            tip += f"\nDefault: {_fmt(row['default'])}"
            if row["min"] is not None or row["max"] is not None:
                lo = "" if row["min"] is None else _fmt(row["min"])
                hi = "" if row["max"] is None else _fmt(row["max"])
                tip += f"  ·  range [{lo}, {hi}]"
            editor.setToolTip(tip)
            label = QLabel(_label(row["name"]))
            label.setToolTip(tip)
            self.editors[row["name"]] = editor
            self.form.addRow(label, editor)

    def _editor(self, row: dict) -> QWidget:
        t, default = row["type"], row["default"]
        if row["choices"]:
            w = QComboBox()
            for c in row["choices"]:
                w.addItem(str(c), c)
            w.setCurrentIndex(max(0, w.findData(default)))
            return w
        if t == "bool":
            w = QCheckBox()
            w.setChecked(bool(default))
            return w
        if t == "int":
            w = QSpinBox()
            w.setRange(int(row["min"]) if row["min"] is not None else -INT_LIMIT,
                       int(row["max"]) if row["max"] is not None else INT_LIMIT)
            w.setValue(int(default))
            w.setAccelerated(True)
            return w
        w = QLineEdit(_fmt(default) if default is not None else "")
        if t == "float":
            v = QDoubleValidator(w)
            v.setNotation(QDoubleValidator.Notation.ScientificNotation)
            # The range guides typing; a value outside it (or NaN) is still refused by config().
            if row["min"] is not None:
                v.setBottom(float(row["min"]))
            if row["max"] is not None:
                v.setTop(float(row["max"]))
            w.setValidator(v)
        return w

    # ---- values -----------------------------------------------------------------------------
    def values(self) -> dict:
        out = {}
        for row in self.rows:
            w = self.editors[row["name"]]
            if isinstance(w, QComboBox):
                out[row["name"]] = w.currentData()
            elif isinstance(w, QCheckBox):
                out[row["name"]] = w.isChecked()
            elif isinstance(w, QSpinBox):
                out[row["name"]] = w.value()
            else:
                out[row["name"]] = w.text().strip()
        return out

    def changed_values(self) -> dict:
        """Only the fields that differ from their defaults (what is worth remembering)."""
        from engines import config as cfgmod

        out = {}
        for row in self.rows:
            v = self.values()[row["name"]]
            try:
                if cfgmod.coerce(self.cfg_cls, row["name"], v) != row["default"]:
                    out[row["name"]] = v
            except cfgmod.ConfigError:
                out[row["name"]] = v
        return out

    def set_values(self, values: dict) -> None:
        for name, v in values.items():
            w = self.editors.get(name)
            if w is None:
                continue
            if isinstance(w, QComboBox):
                i = w.findData(v)
                if i >= 0:
                    w.setCurrentIndex(i)
            elif isinstance(w, QCheckBox):
                w.setChecked(str(v).lower() in ("1", "true", "yes", "on") if isinstance(v, str) else bool(v))
            elif isinstance(w, QSpinBox):
                try:
                    w.setValue(int(v))
                except (TypeError, ValueError):
                    pass
            else:
                w.setText(_fmt(v))

    def config(self):
        """The config dataclass; raises engines.config.ConfigError naming the bad field."""
        from engines import config as cfgmod

        return cfgmod.build(self.cfg_cls, self.values())
