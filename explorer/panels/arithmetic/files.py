"""The Arithmetic panel's vector files: save the Workspace's vectors as JSON carrying the model's
identity, load them back into the Workspace — a file made with another model is refused with an
explanation unless the user explicitly applies it anyway (such vectors are marked ⚠).

`VectorFiles` is an object the panel holds; it reads the loaded model's Workspace from the
context when it acts, and asks its `ask_apply_anyway` callable the explicit question."""
from __future__ import annotations

import json
import os
from typing import Callable

from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

VECTOR_FILTER = "Attribute vectors (*.json);;All files (*)"


def ask_apply_anyway_dialog(parent: QWidget, text: str) -> bool:
    """The explicit 'apply anyway' question, as a warning box whose default is Cancel."""
    box = QMessageBox(QMessageBox.Icon.Warning, "Vectors from another model", text,
                      QMessageBox.StandardButton.Cancel, parent)
    anyway = box.addButton("Apply anyway", QMessageBox.ButtonRole.DestructiveRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is anyway


class VectorFiles:
    def __init__(self, ctx, dialog_parent: QWidget, ask_apply_anyway: Callable[[str], bool]):
        """`ctx`: the explorer Context (its Workspace, messages, errors); `dialog_parent`: what
        the file dialogs belong to; `ask_apply_anyway(text)`: True when the user insists on
        vectors made with another model."""
        self.ctx = ctx
        self.dialog_parent = dialog_parent
        self.ask_apply_anyway = ask_apply_anyway
        self.directory = ""  # where the last file was saved or loaded

    def _error(self, title: str, text: str) -> None:
        self.ctx.session.error.emit(title, text)

    def save_dialog(self) -> None:
        suggested = os.path.join(self.directory, f"{self.ctx.session.name or 'model'}-vectors.json")
        path, _ = QFileDialog.getSaveFileName(self.dialog_parent, "Save attribute vectors", suggested, VECTOR_FILTER)
        if path:
            self.save_to(path)

    def save_to(self, path: str) -> bool:
        from engines.latent.attributes import save_vectors

        ws = self.ctx.workspace
        vectors = ws.vectors if ws is not None else []
        if not vectors:
            return False
        if not path.lower().endswith(".json"):
            path += ".json"
        try:
            save_vectors(path, vectors)
        except OSError as e:
            self._error("Could not save the vectors", f"{path}: {e}")
            return False
        self.directory = os.path.dirname(path)
        self.ctx.message(f"Saved {len(vectors)} vector{'s' if len(vectors) != 1 else ''} to {os.path.basename(path)}")
        return True

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.dialog_parent, "Load attribute vectors", self.directory,
                                              VECTOR_FILTER)
        if path:
            self.load_from(path)

    def load_from(self, path: str) -> int:
        """Add the vectors of a file to the Workspace (a name already taken gets ' (2)'). One made
        with another model is refused with an explanation, unless the user explicitly chooses to
        apply it anyway. Returns how many were added."""
        from engines.latent.attributes import VectorMismatch, load_vectors

        ws = self.ctx.workspace
        if ws is None:
            self._error("Cannot load vectors", "Open a model first: vectors belong to a model.")
            return 0
        mid, shape = ws.model_id, tuple(ws.engine.latent_shape)
        try:
            loaded = load_vectors(path, mid, shape)
        except VectorMismatch as e:
            if "dimensions" in str(e):
                self._error("These vectors do not fit this model", str(e))
                return 0
            if not self.ask_apply_anyway(self.mismatch_text(path, mid)):
                return 0
            try:
                loaded = load_vectors(path, mid, shape, force=True)
            except (ValueError, VectorMismatch) as e2:
                self._error("Cannot load vectors", str(e2))
                return 0
        except ValueError as e:
            self._error("Cannot load vectors", str(e))
            return 0
        for v in loaded:
            if v.model_id != mid:
                v.meta["foreign_model"] = True
            v.name = ws.unique_vector_name(v.name)
            ws.add_vector(v, active=True)
        self.directory = os.path.dirname(path)
        self.ctx.message(f"Loaded {len(loaded)} vector{'s' if len(loaded) != 1 else ''} from {os.path.basename(path)}")
        return len(loaded)

    @staticmethod
    def mismatch_text(path: str, model_id: str) -> str:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            others = sorted({v.get("model_id") or "unknown" for v in doc.get("vectors", [])} - {model_id})
        except (OSError, ValueError, AttributeError):
            others = ["unknown"]
        return (f"<b>{os.path.basename(path)}</b> holds vectors made with another model "
                f"({', '.join(others)}); the current model is {model_id}.<br><br>"
                "A direction in one model's latent space means something else in another's (even the same "
                "architecture trained again), so these vectors will most likely not add the attribute here.<br><br>"
                "Apply them anyway? They will be marked ⚠ in the list.")
