"""Where the user has been and what they kept: the history of visited latents (back/forward, one
entry per drag) and the bookmarks of the current model, saved as JSON per model id under the
user-data folder (until session files exist) by a worker.

`go(z, label)` asks the panel to show a latent (it comes back through the panel's frames and is
*not* recorded again: `record` skips origin "history"). `PlaceActions` is the Manifold panel's
side (a mixin): undo/redo, bookmarks and their keyboard shortcuts."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from engines.latent.history import Bookmarks, History

from explorer.workers import run_in_thread
from explorer.panels.manifold.jobs import save_bookmarks


class Places(QObject):
    go = Signal(object, str)  # latent, label

    def __init__(self, inspector, ctx, parent=None):
        super().__init__(parent)
        self.inspector = inspector
        self.ctx = ctx
        self.history = History()
        self.md = None
        inspector.back.connect(self.undo)
        inspector.forward.connect(self.redo)
        inspector.bookmark_go.connect(self.go_to_bookmark)
        inspector.bookmark_delete.connect(self.delete_bookmark)

    def set_data(self, md) -> None:
        """A new model's data (its bookmarks come with it); None clears."""
        self.md = md
        self.history.clear()
        self.inspector.set_bookmarks([b.name for b in md.bookmarks] if md is not None else [])
        self._update()

    # ---- history ----------------------------------------------------------------------------------------
    def record(self, z, origin: str, label: str) -> None:
        """A frame was shown: drags and animations coalesce into one entry per gesture."""
        h = self.history
        if origin in ("drag", "drag-end", "animate"):
            h.visit(z, "path" if origin == "animate" else "drag", coalesce=True)
            if origin == "drag-end":
                h.end_gesture()
        elif origin not in ("history", "replace"):
            h.visit(z, label or origin)
        self._update()

    def end_gesture(self) -> None:
        self.history.end_gesture()

    def undo(self) -> None:
        h = self.history
        if h.can_undo:
            label = h.entries[h.position - 1].label
            self.go.emit(h.undo(), label)
            self._update()

    def redo(self) -> None:
        h = self.history
        if h.can_redo:
            label = h.entries[h.position + 1].label
            self.go.emit(h.redo(), label)
            self._update()

    def _update(self) -> None:
        h = self.history
        self.inspector.set_history(h.position + 1, len(h), h.can_undo, h.can_redo)

    # ---- bookmarks ----------------------------------------------------------------------------------------
    def add_bookmark(self, name: str, z) -> bool:
        if self.md is None or z is None:
            return False
        try:
            self.md.bookmarks.add(name, z, model_id=self.md.model_id)
        except ValueError as e:
            self.ctx.message(str(e))
            return False
        self._save(current=name)
        self.ctx.message(f"Bookmarked '{name}'.", 3000)
        return True

    def go_to_bookmark(self, name: str) -> None:
        if self.md is not None and name in self.md.bookmarks:
            self.go.emit(self.md.bookmarks[name].latent, f"bookmark: {name}")

    def delete_bookmark(self, name: str) -> None:
        if self.md is not None and name in self.md.bookmarks:
            self.md.bookmarks.remove(name)
            self._save()

    def next_name(self) -> str:
        n = len(self.md.bookmarks) + 1 if self.md is not None else 1
        while self.md is not None and f"bookmark {n}" in self.md.bookmarks:
            n += 1
        return f"bookmark {n}"

    def _save(self, current: str = "") -> None:
        md = self.md
        self.inspector.set_bookmarks([b.name for b in md.bookmarks], current)
        snapshot = Bookmarks.from_dict(md.bookmarks.to_dict())  # the worker writes a copy
        run_in_thread(save_bookmarks, md.model_id, snapshot,
                      on_error=lambda e: self.ctx.session.report(e, "Could not save the bookmarks"))


class PlaceActions:
    """ManifoldPanel's history and bookmark actions (it owns `places` and the current latent `z`)."""

    @property
    def history(self):
        return self.places.history

    def undo(self) -> None:
        self.places.undo()

    def redo(self) -> None:
        self.places.redo()

    def add_bookmark(self, name: str) -> None:
        self.places.add_bookmark(name, self.z)

    def go_to_bookmark(self, name: str) -> None:
        self.places.go_to_bookmark(name)

    def delete_bookmark(self, name: str) -> None:
        self.places.delete_bookmark(name)

    def shortcut_undo(self) -> None:
        if self.isVisible():
            self.undo()

    def shortcut_redo(self) -> None:
        if self.isVisible():
            self.redo()

    def shortcut_bookmark(self) -> None:
        if self.isVisible() and self.z is not None:
            self.add_bookmark(self.places.next_name())
