"""The class picker of class-conditional samplers (Diffusion and Pixels panels): "classes in turn"
(data −1), then one entry per class named from the model's data set, or just "unconditional"."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox


def fill_class_box(box: QComboBox, num_classes: int, info, tip: str = "") -> None:
    """Refill `box` for a model with `num_classes` classes (0: unconditional); `info` is the
    loaded model's info (its data set's label names, when it has them); `tip` the tooltip of
    "classes in turn"."""
    box.clear()
    if not num_classes:
        box.addItem("unconditional", -1)
        return
    names = list((info.data or {}).get("label_names") or []) if info is not None else []
    box.addItem("classes in turn", -1)
    if tip:
        box.setItemData(0, tip, Qt.ItemDataRole.ToolTipRole)
    for k in range(num_classes):
        box.addItem(f"class {names[k] if k < len(names) else k}", k)
