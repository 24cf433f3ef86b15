"""The Arithmetic panel's vector files: save the model's vectors as JSON carrying its identity,
load them back — a file made with another model is refused with an explanation unless the user
explicitly applies it anyway (such vectors are marked ⚠). A mixin of ArithmeticPanel."""
from __future__ import annotations

import os

from PySide6.QtWidgets import QFileDialog, QMessageBox

VECTOR_FILTER = "Attribute vectors (*.json);;All files (*)"


class VectorFilesMixin:
    def save_dialog(self) -> None:
        suggested = os.path.join(self.vectors_dir, f"{self.ctx.session.name or 'model'}-vectors.json")
        path, _ = QFileDialog.getSaveFileName(self, "Save attribute vectors", suggested, VECTOR_FILTER)
        if path:
            self.save_vectors_to(path)

    def save_vectors_to(self, path: str) -> bool:
        from engines.latent.attributes import save_vectors

        vectors = self.vectors.vectors()
        if not vectors:
            return False
        if not path.lower().endswith(".json"):
            path += ".json"
        try:
            save_vectors(path, vectors)
        except OSError as e:
            self.ctx.session.error.emit("Could not save the vectors", f"{path}: {e}")
            return False
        self.vectors_dir = os.path.dirname(path)
        self.ctx.message(f"Saved {len(vectors)} vector{'s' if len(vectors) != 1 else ''} to {os.path.basename(path)}")
        return True

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load attribute vectors", self.vectors_dir, VECTOR_FILTER)
        if path:
            self.load_vectors_from(path)

    def load_vectors_from(self, path: str) -> int:
        """Add the vectors of a file. One made with another model is refused with an explanation,
        unless the user explicitly chooses to apply it anyway. Returns how many were added."""
        from engines.latent.attributes import VectorMismatch, load_vectors

        if self.engine is None or not self.model_id:
            self.ctx.session.error.emit("Cannot load vectors", "Wait until the model is ready.")
            return 0
        shape = tuple(self.engine.latent_shape)
        try:
            loaded = load_vectors(path, self.model_id, shape)
        except VectorMismatch as e:
            if "dimensions" in str(e):
                self.ctx.session.error.emit("These vectors do not fit this model", str(e))
                return 0
            if not self.ask_apply_anyway(self._mismatch_text(path)):
                return 0
            try:
                loaded = load_vectors(path, self.model_id, shape, force=True)
            except (ValueError, VectorMismatch) as e2:
                self.ctx.session.error.emit("Cannot load vectors", str(e2))
                return 0
        except ValueError as e:
            self.ctx.session.error.emit("Cannot load vectors", str(e))
            return 0
        for v in loaded:
            if v.model_id != self.model_id:
                v.meta["foreign_model"] = True
            self.vectors.add(v, active=True)
        self.vectors_dir = os.path.dirname(path)
        self.ctx.message(f"Loaded {len(loaded)} vector{'s' if len(loaded) != 1 else ''} from {os.path.basename(path)}")
        return len(loaded)

    def _mismatch_text(self, path: str) -> str:
        import json

        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            others = sorted({v.get("model_id") or "unknown" for v in doc.get("vectors", [])} - {self.model_id})
        except (OSError, ValueError, AttributeError):
            others = ["unknown"]
        return (f"<b>{os.path.basename(path)}</b> holds vectors made with another model "
                f"({', '.join(others)}); the current model is {self.model_id}.<br><br>"
                "A direction in one model's latent space means something else in another's (even the same "
                "architecture trained again), so these vectors will most likely not add the attribute here.<br><br>"
                "Apply them anyway? They will be marked ⚠ in the list.")

    def ask_apply_anyway(self, text: str) -> bool:
        """The explicit 'apply anyway' question (tests replace this)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Vectors from another model", text,
                          QMessageBox.StandardButton.Cancel, self)
        anyway = box.addButton("Apply anyway", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        return box.clickedButton() is anyway
