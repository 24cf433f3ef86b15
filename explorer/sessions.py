"""File → Save Session / Open Session, at the window level.

A session (`engines.export.session.Session`, one JSON file) keeps the model's identity, the
loaded Workspace's keys, attribute vectors (with which are on), bookmarks and state (current
latent, history, map groups, data source), each panel's own view state (panels with
`session_state()` / `restore_session_state(d)`), and the export a panel describes (a panel with
`session_export()` / `restore_session_export(spec)`: what `export --session` regenerates).

Opening a session made with another model says so and asks before applying anything; when the
session's own model file is still there it is loaded first and the session applied once it
arrives; a session whose model file is gone says that too. The window owns the one
`SessionFiles`; panels never see each other through it.
"""
from __future__ import annotations

import os

from PySide6.QtWidgets import QFileDialog, QMessageBox


def ask_apply(parent, text: str) -> bool:
    box = QMessageBox(QMessageBox.Icon.Warning, "Another model", text,
                      QMessageBox.StandardButton.Apply | QMessageBox.StandardButton.Cancel, parent)
    return box.exec() == QMessageBox.StandardButton.Apply


class SessionFiles:
    """Saves and opens sessions for a window: `ctx` (the model session, settings, Workspace),
    `panels` (name → panel, read when saving or restoring), `parent` (the widget dialogs open over)."""

    def __init__(self, ctx, panels: dict, parent=None):
        self.ctx, self.panels, self.parent = ctx, panels, parent
        self._pending = None  # a Session waiting for its model to load
        ctx.session.model_changed.connect(self._apply_pending)

    # ---- collect and restore ----------------------------------------------------------------------------
    def collect(self):
        """A `Session` of the loaded model's Workspace and every panel's state (ValueError when no
        model is loaded)."""
        from engines.export import session as sess

        ws, s_ = self.ctx.workspace, self.ctx.session
        if ws is None:
            raise ValueError("load a model first: a session belongs to a model")
        s = sess.Session(model=sess.model_entry(ws.engine, s_.path, s_.name))
        ws.ensure_bookmarks()
        s.keys = ws.keys_state()
        s.vectors = [v.to_dict() for v in ws.vectors]
        s.bookmarks = [b.to_dict() for b in ws.bookmarks]
        s.workspace = ws.session_state()
        for name, panel in self.panels.items():
            state = getattr(panel, "session_state", None)
            if state is not None:
                s.panels[name] = state()
            spec = getattr(panel, "session_export", None)
            if spec is not None and s.export is None:
                s.export = spec()
        if s.export is not None:
            s.sampler = dict(s.export.options)
        return s

    def restore(self, s) -> list[str]:
        """Apply a session to the loaded model's Workspace and the panels; returns notes on what
        could not be restored."""
        ws = self.ctx.workspace
        if ws is None:
            return ["no model is loaded"]
        state = dict(s.workspace)
        if not state:  # an older session: which vectors were on was the Arithmetic panel's
            active = (s.panels.get("arithmetic") or {}).get("active")
            if active is not None:
                state["active_vectors"] = list(active)
        notes = ws.restore(s.keys, s.vectors, s.bookmarks, state)
        for name, panel in self.panels.items():
            if name in s.panels and hasattr(panel, "restore_session_state"):
                try:
                    panel.restore_session_state(s.panels[name])
                except (KeyError, TypeError, ValueError) as e:
                    notes.append(f"{name}: {e}")
        if s.export is not None:
            for panel in self.panels.values():
                if hasattr(panel, "restore_session_export"):
                    panel.restore_session_export(s.export)
        return notes

    # ---- files ------------------------------------------------------------------------------------------
    def save_dialog(self) -> None:
        if self.ctx.workspace is None:
            self.ctx.message("Load a model first: a session belongs to a model.")
            return
        start = os.path.join(self.ctx.settings.last_open_dir or os.path.expanduser("~"), "session.lxsession")
        path, _ = QFileDialog.getSaveFileName(self.parent, "Save session", start, "Sessions (*.lxsession *.json)")
        if path:
            self.save_to(path if path.lower().endswith((".lxsession", ".json")) else path + ".lxsession")

    def save_to(self, path: str) -> bool:
        from engines.export import session as sess

        try:
            sess.save(path, self.collect())
        except (OSError, ValueError) as e:
            self.ctx.session.report(e, "Could not save the session")
            return False
        self.ctx.message(f"Saved session {path}", 5000)
        return True

    def open_dialog(self) -> None:
        start = self.ctx.settings.last_open_dir or os.path.expanduser("~")
        path, _ = QFileDialog.getOpenFileName(self.parent, "Open session", start, "Sessions (*.lxsession *.json);;All files (*)")
        if path:
            self.open_path(path, ask=ask_apply)

    def open_path(self, path: str, ask=None) -> str:
        """Open a session: 'restored', 'loading' (its model is being loaded first), 'mismatch'
        (another model; applied only if `ask(parent, text)` says so) or 'failed'."""
        from engines.export import session as sess

        ctx = self.ctx
        try:
            s = sess.load(path)
        except sess.SessionError as e:
            ctx.session.report(e, "Cannot open the session")
            return "failed"
        engine = ctx.session.engine
        own = s.model.get("path")
        if engine is None or (own and os.path.abspath(own) != os.path.abspath(ctx.session.path or "")
                              and os.path.isfile(own)):
            try:
                model_path = sess.resolve_model(s)
            except sess.SessionError as e:
                if engine is None:
                    ctx.session.report(e, "Cannot open the session")
                    return "failed"
                model_path = None
                ctx.message(str(e), 8000)
            if model_path is not None:
                self._pending = s  # restored when the model arrives
                ctx.session.load(model_path)
                return "loading"
        try:
            sess.check_model(s, engine)
        except sess.SessionError as e:
            if ask is None or not ask(self.parent, f"{e}.\n\nApply its keys and settings to this model anyway?"):
                ctx.session.report(e, "The session belongs to another model")
                return "mismatch"
        self._pending = None
        notes = self.restore(s)
        ctx.message(f"Opened session {os.path.basename(path)}" + (f" ({'; '.join(notes)})" if notes else ""), 6000)
        return "restored"

    def _apply_pending(self, engine, info) -> None:
        """After every panel's own model handler (they were connected first, and reset their state)."""
        s, self._pending = self._pending, None
        if s is None or engine is None:
            return
        want = os.path.abspath(str(s.model.get("path", "")))
        if want != os.path.abspath(self.ctx.session.path or ""):  # another model was picked meanwhile
            self.ctx.message("The session was not applied: another model was opened before its own loaded.", 8000)
            return
        notes = self.restore(s)
        self.ctx.message("Session restored" + (f" ({'; '.join(notes)})" if notes else ""), 6000)
