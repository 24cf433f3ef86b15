"""The Workspace: everything the user explores on one loaded model, in one evented object.

napari's ViewerModel is the model: the state lives here, not on widgets. A panel reads the
Workspace, listens to its signals, and changes it only through its methods — it never reaches
into another panel. The window makes one Workspace per loaded model (`ModelSession.workspace`);
a new model replaces it, and the old one's late results are dropped.

What it holds:
- the engine and its checkpoint info, and the model's identity (content hash);
- the data set and its latents (`ModelData`), loaded and encoded once, in a worker, shared by
  every panel (`request_data`; a different data source replaces it for every panel);
- the current latent and its history (undo/redo), bookmarks (saved per model);
- keys (the latents an export walks through), the two map groups A/B, attribute vectors (with
  which of them are switched on; saved per model like the bookmarks, read when first looked at);
- cross-panel actions as requests the window carries out (`show_requested`).
Only `PySide6.QtCore` is used (signals); no widget is imported here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal

from explorer.workspace import session_state
from explorer.workspace.data import ModelData, load_model_data

log = logging.getLogger(__name__)


@dataclass
class Key:
    latent: np.ndarray  # float32 (D,)
    label: str = ""


@dataclass
class VectorEntry:
    vector: object  # engines.latent.attributes.AttributeVector
    active: bool = True


class Workspace(QObject):
    data_loading = Signal(str)  # the source being loaded
    data_progress = Signal(object)  # engines.latent.progress.Progress
    data_ready = Signal(object)  # ModelData
    data_failed = Signal(str)  # one line
    current_changed = Signal(object, str, str)  # latent (D,), label, origin
    history_changed = Signal()
    bookmarks_changed = Signal()
    keys_changed = Signal()
    groups_changed = Signal()
    vectors_changed = Signal()
    vector_failed = Signal(str)  # one line: a vector could not be made
    projections_changed = Signal()
    show_requested = Signal(str)  # a panel name: a cross-panel action wants it on show

    def __init__(self, engine, info=None, path: str | None = None, parent: QObject | None = None,
                 model_id: str | None = None):
        """`model_id`: the engine's content hash when the caller has it (computed in the loader's
        worker); otherwise it is computed on first use."""
        super().__init__(parent)
        from engines.latent.history import Bookmarks, History

        self.engine, self.info, self.path = engine, info, path
        self.data: ModelData | None = None
        self._loader = None  # the Worker loading data
        self._loading_source: str | None = None
        self._load_gen = 0
        self._model_id: str | None = model_id
        self.history = History()
        self.bookmarks = Bookmarks()
        self._bookmarks_loaded = False
        self.current: np.ndarray | None = None
        self.current_label = ""
        self.keys: list[Key] = []
        self.groups: dict[str, np.ndarray | None] = {"a": None, "b": None}
        self._vectors: list[VectorEntry] = []
        self.projections: dict[str, np.ndarray] = {}  # map kind ('pca', 'umap', …) → (N, 2) of ws.data
        self._restored_groups = None  # (data source, groups) from a session, kept until that data arrives
        self._vectors_loaded = False  # the saved ones are read when first looked at
        self.closed = False
        self._load_keys()  # the keys this model had last time (the Export panel seeds 4 when none)

    # ---- identity ------------------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """The content hash of the model (computed once; ~10 ms for a few MB of weights)."""
        if self._model_id is None:
            if self.data is not None:
                self._model_id = self.data.model_id
            else:
                from engines.latent.cache import model_id

                self._model_id = model_id(self.engine)
        return self._model_id

    @property
    def latent_dim(self) -> int:
        return int(np.prod(self.engine.latent_shape))

    def can(self, capability: str) -> bool:
        return self.engine.can(capability)

    # ---- data ----------------------------------------------------------------------------------------
    @property
    def loading(self) -> bool:
        return self._loader is not None

    @property
    def data_source(self) -> str | None:
        return self.data.source if self.data is not None else None

    def request_data(self, source: str | None = None, dataset=None) -> bool:
        """Make sure the model's data (or `source` / `dataset` instead) is loaded and encoded.
        Nothing happens when it already is or is being loaded; otherwise a worker loads it and
        `data_ready` follows (or `data_failed`). Returns True when a load started."""
        if self.closed or not self.engine.can("encode"):
            return False
        if dataset is None:
            want = source
            if want is None and self.data is not None:
                return False  # whatever is loaded is the model's data
            if self.data is not None and want == self.data.source:
                return False
            if self._loader is not None and (want is None or want == self._loading_source):
                return False
        from explorer.workers import Worker

        self._stop_loader()
        self._load_gen += 1
        gen = self._load_gen
        self._loading_source = source if dataset is None else (dataset.source or dataset.name)
        w = Worker(load_model_data, self.engine, self.info, source, dataset)
        w.yielded.connect(lambda p, g=gen: g == self._load_gen and self.data_progress.emit(p))
        w.returned.connect(lambda md, g=gen: g == self._load_gen and self._on_data(md))
        w.errored.connect(lambda e, g=gen: g == self._load_gen and self._on_failed(e))
        w.finished.connect(lambda g=gen: g == self._load_gen and self._on_finished())
        self._loader = w
        self.data_loading.emit(self._loading_source or "")
        w.start()
        return True

    def _on_data(self, md: ModelData) -> None:
        if self.closed or md is None:
            return
        self.data = md
        self._model_id = md.model_id
        self._load_bookmarks()
        self.groups = {"a": None, "b": None}
        pending, self._restored_groups = self._restored_groups, None
        if pending is not None and pending[0] in (None, md.source):
            self.groups = pending[1]  # a session's groups, restored before its data was loaded
        self.projections = {}
        self.data_ready.emit(md)
        self.groups_changed.emit()

    def _on_failed(self, e) -> None:
        if not self.closed:
            self.data_failed.emit(str(e) or type(e).__name__)

    def _on_finished(self) -> None:
        self._loader = None
        self._loading_source = None

    def cancel_data(self) -> None:
        """Stop loading the data (the user's Cancel): `data_failed` says so; a later
        `request_data` starts again."""
        if self._loader is None:
            return
        self._load_gen += 1  # the stopped worker's late signals are dropped
        self._stop_loader()
        self._loading_source = None
        self.data_failed.emit("Loading the data was cancelled. Show a panel that needs it, or pick data, to load it again.")

    def _stop_loader(self) -> None:
        if self._loader is not None:
            self._loader.quit()
            self._loader = None

    def close(self) -> None:
        """The model is being replaced: stop loading and drop every late result."""
        self.closed = True
        self._load_gen += 1
        self._stop_loader()

    # ---- the current latent and its history ------------------------------------------------------------
    def set_current(self, z, label: str = "", origin: str = "", record: bool = True, coalesce: bool = False) -> None:
        z = np.asarray(z, np.float32).reshape(-1)
        self.current, self.current_label = z, label
        if record:
            self.history.visit(z, label or origin, coalesce=coalesce)
            self.history_changed.emit()
        self.current_changed.emit(z, label, origin)

    def end_gesture(self) -> None:
        self.history.end_gesture()

    def undo(self) -> bool:
        z = self.history.undo()
        if z is None:
            return False
        self._move_in_history(z, "undo")
        return True

    def redo(self) -> bool:
        z = self.history.redo()
        if z is None:
            return False
        self._move_in_history(z, "redo")
        return True

    def _move_in_history(self, z, origin: str) -> None:
        entry = self.history.entries[self.history.position]
        self.set_current(z, entry.label, origin, record=False)
        self.history_changed.emit()

    # ---- bookmarks ---------------------------------------------------------------------------------------
    def _load_bookmarks(self) -> None:
        if not self._bookmarks_loaded:
            from explorer.workspace.store import load_bookmarks

            loaded = load_bookmarks(self.model_id)
            for b in loaded:  # keep any added before the data came
                if b.name not in self.bookmarks:
                    self.bookmarks.add(b.name, b.latent, b.note, b.model_id)
            self._bookmarks_loaded = True
            self.bookmarks_changed.emit()

    def ensure_bookmarks(self) -> None:
        """Read the bookmarks saved for this model now (they are otherwise read when the data
        arrives or the first bookmark is added); `bookmarks_changed` follows the first time."""
        self._load_bookmarks()

    def add_bookmark(self, name: str, z=None, note: str = "") -> str | None:
        """Bookmark `z` (default: the current latent) under `name`; saved at once. Returns the
        file written, or None when there is nothing to bookmark."""
        z = self.current if z is None else z
        if z is None or not name:
            return None
        self._load_bookmarks()
        self.bookmarks.add(name, z, note, self.model_id)
        self.bookmarks_changed.emit()
        return self._save_bookmarks()

    def delete_bookmark(self, name: str) -> None:
        if name in self.bookmarks:
            self.bookmarks.remove(name)
            self.bookmarks_changed.emit()
            self._save_bookmarks()

    def next_bookmark_name(self) -> str:
        i = len(self.bookmarks) + 1
        while f"place {i}" in self.bookmarks:
            i += 1
        return f"place {i}"

    def _save_bookmarks(self) -> str:
        from explorer.workspace.store import save_bookmarks

        return save_bookmarks(self.model_id, self.bookmarks)

    # ---- keys (what an export walks through; saved per model on every change) -----------------------------
    def _load_keys(self) -> None:
        from explorer.workspace.store import load_keys

        mid = self._store_id()
        if mid is None:
            return
        saved = load_keys(mid, self.latent_dim)
        if saved:
            self.keys = [Key(z, label) for z, label in saved]

    def _keys_changed(self) -> None:
        from explorer.workspace.store import save_keys

        mid = self._store_id()
        if mid is not None:
            try:
                save_keys(mid, self.keys)
            except OSError as e:
                log.warning("could not save the export keys of %s: %s", mid, e)
        self.keys_changed.emit()

    def add_key(self, z, label: str = "") -> None:
        z = np.asarray(z, np.float32).reshape(-1)
        if z.size != self.latent_dim:
            raise ValueError(f"a key needs {self.latent_dim} numbers, got {z.size}")
        self.keys.append(Key(z, label))
        self._keys_changed()

    def set_keys(self, latents, labels=None) -> None:
        labels = list(labels) if labels is not None else [""] * len(latents)
        self.keys = [Key(np.asarray(z, np.float32).reshape(-1), str(lab)) for z, lab in zip(latents, labels)]
        self._keys_changed()

    def remove_key(self, i: int) -> None:
        if 0 <= i < len(self.keys):
            del self.keys[i]
            self._keys_changed()

    def move_key(self, i: int, j: int) -> None:
        if 0 <= i < len(self.keys) and 0 <= j < len(self.keys) and i != j:
            self.keys.insert(j, self.keys.pop(i))
            self._keys_changed()

    # ---- map groups A / B ----------------------------------------------------------------------------------
    def set_group(self, which: str, indices) -> None:
        if which not in self.groups:
            raise KeyError(f"group '{which}' (groups: a, b)")
        self.groups[which] = None if indices is None else np.unique(np.asarray(indices, np.int64))
        self.groups_changed.emit()

    # ---- map projections --------------------------------------------------------------------------------
    def set_projection(self, kind: str, coords) -> None:
        """The map's 2-D coordinates of the data points (`kind`: 'pca', 'umap', …), one row per
        row of `ws.data.ls`; what the map shows and the export writes. Dropped when the data changes."""
        coords = np.asarray(coords, np.float32)
        if self.data is not None and len(coords) != len(self.data.ls):
            raise ValueError(f"{kind}: {len(coords)} points for {len(self.data.ls)} data points")
        self.projections[kind] = coords
        self.projections_changed.emit()

    # ---- attribute vectors ---------------------------------------------------------------------------------
    # Saved per model (explorer.workspace.store, by content hash) on every change, and loaded the
    # first time they are looked at: a restart, or reopening the model, finds them again.
    def _entries(self) -> list[VectorEntry]:
        if not self._vectors_loaded:
            self._vectors_loaded = True
            self._load_vectors()
        return self._vectors

    def _store_id(self) -> str | None:
        try:
            return self.model_id
        except (TypeError, NotImplementedError, AttributeError):  # cannot be identified: nothing is kept for it
            return None

    def _load_vectors(self) -> None:
        from explorer.workspace.store import load_vectors

        mid = self._store_id()
        if mid is None:
            return
        have = {e.vector.name for e in self._vectors}
        d = self.latent_dim
        for v, active in load_vectors(mid):  # after any added before they were looked at
            if v.name not in have and v.vector.size == d:
                self._vectors.append(VectorEntry(v, active))
                have.add(v.name)

    def _save_vectors(self) -> None:
        from explorer.workspace.store import save_vectors

        mid = self._store_id()
        if mid is None:
            return
        entries = self._entries()
        try:
            save_vectors(mid, [e.vector for e in entries], [e.vector.name for e in entries if e.active])
        except OSError as e:
            log.warning("could not save the attribute vectors of %s: %s", mid, e)

    @property
    def vectors(self) -> list:
        return [e.vector for e in self._entries()]

    @property
    def active_vectors(self) -> list:
        return [e.vector for e in self._entries() if e.active]

    def is_active(self, name: str) -> bool:
        return any(e.active for e in self._entries() if e.vector.name == name)

    def vector(self, name: str):
        for e in self._entries():
            if e.vector.name == name:
                return e.vector
        raise KeyError(name)

    def unique_vector_name(self, name: str) -> str:
        have = {v.name for v in self.vectors}
        if name not in have:
            return name
        i = 2
        while f"{name} ({i})" in have:
            i += 1
        return f"{name} ({i})"

    def add_vector(self, v, active: bool = True) -> None:
        """Add (or replace, by name) an attribute vector; saved for this model at once."""
        for e in self._entries():
            if e.vector.name == v.name:
                e.vector, e.active = v, active
                break
        else:
            self._vectors.append(VectorEntry(v, active))
        self._save_vectors()
        self.vectors_changed.emit()

    def remove_vector(self, name: str) -> None:
        n = len(self._entries())
        self._vectors = [e for e in self._vectors if e.vector.name != name]
        if len(self._vectors) != n:
            self._save_vectors()
            self.vectors_changed.emit()

    def rename_vector(self, name: str, new_name: str) -> str:
        """Rename a vector (the same object: views keyed by it keep it); a taken name gets a
        ' (2)'. Returns the name it got. KeyError when there is no vector `name`."""
        v = self.vector(name)
        new_name = new_name.strip()
        if not new_name or new_name == name:
            return name
        v.name = self.unique_vector_name(new_name)
        self._save_vectors()
        self.vectors_changed.emit()
        return v.name

    def set_vector_active(self, name: str, on: bool) -> None:
        for e in self._entries():
            if e.vector.name == name and e.active != on:
                e.active = on
                self._save_vectors()
                self.vectors_changed.emit()

    def vector_from_groups(self, name: str = "") -> str:
        """Start making the attribute vector mean(A) − mean(B) from the map's two groups (with its
        quality measures, in a worker); it joins the vectors and the Arithmetic panel is asked
        onto the screen when done (`vectors_changed`, `show_requested`). Returns the vector's
        name; raises ValueError at once when a group is missing or too small."""
        from engines.latent.attributes import from_groups
        from explorer.workers import run_in_thread

        md = self.data
        a, b = self.groups.get("a"), self.groups.get("b")
        if md is None or a is None or b is None:
            raise ValueError("select two groups (A and B) on the map first")
        a = np.unique(a)
        b = np.setdiff1d(np.unique(b), a)
        if len(a) < 2 or len(b) < 2:
            raise ValueError(f"each group needs at least two images (A has {len(a)}, B has {len(b)})")
        name = self.unique_vector_name(name or "A − B")
        ls = md.ls

        def done(v):
            if not self.closed:
                self.add_vector(v)
                self.show_requested.emit("arithmetic")

        run_in_thread(from_groups, ls.latents, a, b, name, "groups", split=ls.is_train(), model_id=self.model_id,
                      latent_shape=tuple(ls.latent_shape),
                      meta={"source": f"groups: {md.source} ({len(a)} − {len(b)} images)"},
                      on_result=done, on_error=lambda e: self.vector_failed.emit(str(e) or type(e).__name__))
        return name

    # ---- sessions (explorer/workspace/session_state.py) ------------------------------------------------------
    def session_state(self) -> dict:
        """What a session file keeps of the Workspace (JSON-able), besides keys, vectors and bookmarks."""
        return session_state.state_of(self)

    def keys_state(self) -> list[dict]:
        return [{"label": k.label, "latent": [float(x) for x in k.latent]} for k in self.keys]

    def restore(self, keys=(), vectors=(), bookmarks=(), state: dict | None = None) -> list[str]:
        """Apply a session's pieces (already checked against this model); notes on what could not be."""
        return session_state.restore(self, keys, vectors, bookmarks, state)
