"""File → Save Session / Open Session: the model's identity, the Export panel's keys and export,
the Arithmetic panel's vectors, the Manifold panel's bookmarks, and every panel's own state
(panels with `session_state()` / `restore_session_state(d)`), in one JSON file
(`engines.export.session`). Opening a session made with another model says so and asks before
applying anything; a session whose model file is gone says that too."""
from __future__ import annotations

import os

from PySide6.QtWidgets import QFileDialog, QMessageBox


def collect(export_panel):
    """A `Session` of the window's current state."""
    from engines.export import session as sess

    engine = export_panel.engine
    s = sess.Session(model=sess.model_entry(engine, export_panel.ctx.session.path, export_panel.ctx.session.name))
    s.keys = [{"label": lab, "latent": [float(x) for x in z]}
              for z, lab in zip(export_panel.keys.keys, export_panel.keys.labels)]
    try:
        s.export = export_panel.current_spec()
    except ValueError:
        s.export = None  # not enough keys yet: the rest is still worth keeping
    s.vectors = [v.to_dict() for _name, v in export_panel.vectors()]
    manifold = export_panel._other("manifold")
    md = getattr(manifold, "md", None)
    if md is not None:
        s.bookmarks = [b.to_dict() for b in md.bookmarks]
    s.panels["export"] = {"output": export_panel.options.output_state(), "seed": export_panel.seed.value()}
    for name, panel in getattr(export_panel.window(), "panels", {}).items():
        state = getattr(panel, "session_state", None)
        if state is not None:
            s.panels[name] = state()
    if s.export is not None:
        s.sampler = dict(s.export.options)
    return s


def restore(export_panel, s) -> list[str]:
    """Apply a session to the window's panels; returns notes on what could not be restored."""
    import numpy as np

    notes = []
    export_panel.keys.set_keys([np.asarray(k["latent"], np.float32) for k in s.keys], [k.get("label", "") for k in s.keys])
    own = s.panels.get("export", {})
    export_panel.options.set_output_state(own.get("output", {}))
    export_panel.seed.setValue(int(own.get("seed", 0)))
    if s.vectors:
        arithmetic = export_panel._other("arithmetic")
        vl = getattr(arithmetic, "vectors", None)
        if vl is not None and hasattr(vl, "add"):
            from engines.latent.attributes import AttributeVector

            have = {v.name for _n, v in export_panel.vectors()}
            for d in s.vectors:
                if d.get("name") not in have:
                    vl.add(AttributeVector.from_dict(d), active=False, select=False)
    manifold = export_panel._other("manifold")
    md, places = getattr(manifold, "md", None), getattr(manifold, "places", None)
    if s.bookmarks and md is not None and places is not None:
        for d in s.bookmarks:
            if d.get("name") not in md.bookmarks and len(d.get("latent", ())) == export_panel.engine.latent_dim:
                places.add_bookmark(str(d["name"]), np.asarray(d["latent"], np.float32))
    elif s.bookmarks:
        notes.append("bookmarks not restored: open the Manifold panel's data first")
    for name, panel in getattr(export_panel.window(), "panels", {}).items():
        if name in s.panels and hasattr(panel, "restore_session_state"):
            try:
                panel.restore_session_state(s.panels[name])
            except (KeyError, TypeError, ValueError) as e:
                notes.append(f"{name}: {e}")
    if s.export is not None:
        export_panel.options.set_vectors(export_panel.vectors())
        export_panel.options.set_spec(s.export)
    export_panel.refresh_preview()
    return notes


def save_dialog(export_panel) -> None:
    if export_panel.engine is None:
        export_panel.ctx.message("Load a model first: a session belongs to a model.")
        return
    start = os.path.join(export_panel.ctx.settings.last_open_dir or os.path.expanduser("~"), "session.json")
    path, _ = QFileDialog.getSaveFileName(export_panel, "Save session", start, "Sessions (*.json)")
    if path:
        save_to(export_panel, path if path.lower().endswith(".json") else path + ".json")


def save_to(export_panel, path: str) -> bool:
    from engines.export import session as sess

    try:
        sess.save(path, collect(export_panel))
    except (OSError, ValueError) as e:
        export_panel.ctx.session.report(e, "Could not save the session")
        return False
    export_panel.ctx.message(f"Saved session {path}", 5000)
    return True


def open_dialog(export_panel) -> None:
    start = export_panel.ctx.settings.last_open_dir or os.path.expanduser("~")
    path, _ = QFileDialog.getOpenFileName(export_panel, "Open session", start, "Sessions (*.json);;All files (*)")
    if path:
        open_path(export_panel, path, ask=_ask)


def _ask(parent, text: str) -> bool:
    box = QMessageBox(QMessageBox.Icon.Warning, "Another model", text,
                      QMessageBox.StandardButton.Apply | QMessageBox.StandardButton.Cancel, parent)
    return box.exec() == QMessageBox.StandardButton.Apply


def open_path(export_panel, path: str, ask=None) -> str:
    """Open a session: 'restored', 'loading' (its model is being loaded first), 'mismatch'
    (another model; applied only if `ask(parent, text)` says so) or 'failed'."""
    from engines.export import session as sess

    ctx = export_panel.ctx
    try:
        s = sess.load(path)
    except sess.SessionError as e:
        ctx.session.report(e, "Cannot open the session")
        return "failed"
    engine = export_panel.engine
    if engine is None or (s.model.get("path") and os.path.abspath(s.model["path"]) != os.path.abspath(ctx.session.path or "")
                          and os.path.isfile(s.model["path"])):
        try:
            model_path = sess.resolve_model(s)
        except sess.SessionError as e:
            if engine is None:
                ctx.session.report(e, "Cannot open the session")
                return "failed"
            model_path = None
            ctx.message(str(e), 8000)
        if model_path is not None:
            export_panel._pending_session = s  # restored when the model arrives
            ctx.session.model_changed.connect(export_panel._apply_pending_session)
            ctx.session.load(model_path)
            return "loading"
    try:
        sess.check_model(s, engine)
    except sess.SessionError as e:
        if ask is None or not ask(export_panel, f"{e}.\n\nApply its keys and settings to this model anyway?"):
            ctx.session.report(e, "The session belongs to another model")
            return "mismatch"
    notes = restore(export_panel, s)
    ctx.message(f"Opened session {os.path.basename(path)}" + (f" ({'; '.join(notes)})" if notes else ""), 6000)
    return "restored"
