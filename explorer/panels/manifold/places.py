"""Where the user has been and what they kept, as the Manifold panel's inspector shows them: the
history of visited latents (back/forward, one entry per drag) and the model's bookmarks. Both are
the Workspace's (`ws.history`, `ws.bookmarks`, saved per model by `explorer.workspace.store`):
`PlaceList` only shows them and changes them through the Workspace's methods, so a latent set by
another panel or a restored session is in the same history."""
from __future__ import annotations

from PySide6.QtCore import QObject

from explorer.panels.manifold.state import Links


class PlaceList(QObject):
    def __init__(self, inspector, ctx, parent=None):
        super().__init__(parent)
        self.inspector = inspector
        self.ctx = ctx
        self.ws = None
        self._links = Links()
        self._added = ""  # the name just bookmarked (stays in the edit field)
        inspector.back.connect(self.undo)
        inspector.forward.connect(self.redo)
        inspector.bookmark_add.connect(self.add_bookmark)
        inspector.bookmark_go.connect(self.go_to_bookmark)
        inspector.bookmark_delete.connect(self.delete_bookmark)

    def set_workspace(self, ws) -> None:
        """The loaded model's Workspace (None: no model)."""
        self._links.clear()
        self.ws = ws
        if ws is not None:
            self._links.connect(ws.history_changed, self._show_history)
            self._links.connect(ws.bookmarks_changed, self._show_bookmarks)
        self._show_history()
        self._show_bookmarks()

    @property
    def history(self):
        return self.ws.history if self.ws is not None else None

    # ---- history ----------------------------------------------------------------------------------------
    def undo(self) -> None:
        if self.ws is not None:
            self.ws.undo()

    def redo(self) -> None:
        if self.ws is not None:
            self.ws.redo()

    def end_gesture(self) -> None:
        if self.ws is not None:
            self.ws.end_gesture()

    def _show_history(self) -> None:
        h = self.history
        if h is None:
            self.inspector.set_history(0, 0, False, False)
        else:
            self.inspector.set_history(h.position + 1, len(h), h.can_undo, h.can_redo)

    # ---- bookmarks ----------------------------------------------------------------------------------------
    def add_bookmark(self, name: str) -> bool:
        """Bookmark the Workspace's current latent under `name` (saved at once)."""
        ws = self.ws
        if ws is None or ws.current is None:
            return False
        self._added = name.strip()
        try:
            ws.add_bookmark(name)
        except (ValueError, OSError) as e:
            self._added = ""
            self.ctx.message(f"Could not bookmark: {e}")
            return False
        self.ctx.message(f"Bookmarked '{name.strip()}'.", 3000)
        return True

    def go_to_bookmark(self, name: str) -> None:
        ws = self.ws
        if ws is not None and name in ws.bookmarks:
            ws.set_current(ws.bookmarks[name].latent, f"bookmark: {name}", "bookmark")

    def delete_bookmark(self, name: str) -> None:
        if self.ws is not None:
            try:
                self.ws.delete_bookmark(name)
            except OSError as e:
                self.ctx.message(f"Could not save the bookmarks: {e}")

    def next_name(self) -> str:
        return self.ws.next_bookmark_name() if self.ws is not None else "place 1"

    def _show_bookmarks(self) -> None:
        names = [b.name for b in self.ws.bookmarks] if self.ws is not None else []
        current, self._added = self._added, ""
        self.inspector.set_bookmarks(names, current if current in names else "")
