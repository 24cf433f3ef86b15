"""A session file's part of the Workspace: what it keeps (`state_of`) and how a session's pieces
are applied to a fresh Workspace (`restore`), each checked against the model's latent size.
Qt-free logic over the Workspace's own methods (which emit its signals)."""
from __future__ import annotations

import numpy as np


def state_of(ws) -> dict:
    return {
        "data_source": ws.data_source,
        "current": None if ws.current is None else [float(x) for x in ws.current],
        "current_label": ws.current_label,
        "history": ws.history.to_dict(),
        "groups": {k: None if v is None else [int(i) for i in v] for k, v in ws.groups.items()},
        "active_vectors": [v.name for v in ws.active_vectors],
    }


def restore(ws, keys=(), vectors=(), bookmarks=(), state: dict | None = None) -> list[str]:
    """Apply keys, vectors (with which are on), bookmarks, groups, history and the current latent;
    returns notes on what could not be applied. Groups wait for their data source to arrive."""
    from engines.latent.attributes import AttributeVector
    from engines.latent.history import History

    notes: list[str] = []
    d = ws.latent_dim
    good = [k for k in keys if len(k.get("latent", ())) == d]
    if len(good) != len(keys):
        notes.append(f"{len(keys) - len(good)} key(s) of the wrong size skipped")
    ws.set_keys([k["latent"] for k in good], [k.get("label", "") for k in good])
    state = state or {}
    active = set(state.get("active_vectors", [v.get("name") for v in vectors]))
    for vd in vectors:
        v = AttributeVector.from_dict(vd)
        if v.vector.size != d:
            notes.append(f"vector '{v.name}' has {v.vector.size} numbers, the model {d}: skipped")
            continue
        ws.add_vector(v, active=v.name in active)
    ws.ensure_bookmarks()
    for b in bookmarks:
        if b.get("name") not in ws.bookmarks and len(b.get("latent", ())) == d:
            ws.bookmarks.add(str(b["name"]), np.asarray(b["latent"], np.float32), str(b.get("note", "")), ws.model_id)
    if bookmarks:
        ws.bookmarks_changed.emit()
        ws._save_bookmarks()
    groups = state.get("groups") or {}
    for k in ("a", "b"):
        if groups.get(k) is not None:
            ws.groups[k] = np.asarray(groups[k], np.int64)
    src = state.get("data_source")
    if ws.data is None or (src and src != ws.data_source):  # indices into data still to come
        ws._restored_groups = (src, dict(ws.groups))
    ws.groups_changed.emit()
    if state.get("history"):
        try:
            ws.history = History.from_dict(state["history"])
            ws.history_changed.emit()
        except (KeyError, TypeError, ValueError) as e:
            notes.append(f"history: {e}")
    if state.get("current") is not None and len(state["current"]) == d:
        ws.set_current(state["current"], state.get("current_label", ""), "session", record=False)
    if src and src != ws.data_source:
        ws.request_data(src)
    return notes
