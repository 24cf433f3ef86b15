"""Where the user has been: visited latents with undo/redo, and named bookmarks.

Plain Python (no Qt): the panels call `visit` and show `current`; the session saves `to_dict()`.

A drag produces a latent per frame; recording each would make undo useless, so a drag calls
`visit(z, coalesce=True)` while moving (replacing the entry the drag started) and the next
non-coalesced visit starts a new entry — one undo step per gesture. Visiting after an undo drops
the redo branch, as in every editor. The history is bounded (oldest entries fall off).

Bookmarks carry the model id they were made with (`cache.model_id`), so a session reopened on
another model can tell which bookmarks still mean what they meant.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

SCHEMA = 1


def _latent(z) -> np.ndarray:
    arr = np.array(z, dtype=np.float32).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ValueError("latent contains NaN or Inf")
    return arr


@dataclass(eq=False)
class Entry:
    latent: np.ndarray  # float32 (D,)
    label: str = ""  # what put it there: "click", "drag", "analogy", "bookmark: …"
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict:
        return {"latent": [float(x) for x in self.latent], "label": self.label, "time": self.time}

    @classmethod
    def from_dict(cls, d: dict) -> "Entry":
        return cls(_latent(d["latent"]), str(d.get("label", "")), float(d.get("time", 0.0)))


class History:
    def __init__(self, max_len: int = 200):
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self.max_len = int(max_len)
        self._entries: list[Entry] = []
        self._pos = -1  # index of the current entry
        self._coalescing = False

    # ---- reading ------------------------------------------------------------------------------------
    @property
    def current(self) -> np.ndarray | None:
        return None if self._pos < 0 else self._entries[self._pos].latent

    @property
    def entries(self) -> list[Entry]:
        return list(self._entries)

    @property
    def position(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._entries) - 1

    # ---- changing -----------------------------------------------------------------------------------
    def visit(self, z, label: str = "", coalesce: bool = False) -> None:
        """Record z as the current latent. `coalesce=True` (during a drag) replaces the entry the
        drag created instead of adding one per frame. Revisiting the current latent is a no-op."""
        z = _latent(z)
        if self.current is not None and self.current.shape == z.shape and np.array_equal(self.current, z):
            return
        del self._entries[self._pos + 1:]  # a new visit discards the redo branch
        if coalesce and self._coalescing and self._entries:
            self._entries[-1] = Entry(z, label or self._entries[-1].label)
        else:
            self._entries.append(Entry(z, label))
            if len(self._entries) > self.max_len:
                del self._entries[: len(self._entries) - self.max_len]
        self._pos = len(self._entries) - 1
        self._coalescing = coalesce

    def end_gesture(self) -> None:
        """The drag ended: the next coalesced visit starts a new entry."""
        self._coalescing = False

    def undo(self) -> np.ndarray | None:
        """Step back; returns the latent now current (unchanged at the oldest entry)."""
        self._coalescing = False
        if self.can_undo:
            self._pos -= 1
        return self.current

    def redo(self) -> np.ndarray | None:
        self._coalescing = False
        if self.can_redo:
            self._pos += 1
        return self.current

    def clear(self) -> None:
        self._entries.clear()
        self._pos = -1
        self._coalescing = False

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "max_len": self.max_len, "position": self._pos,
                "entries": [e.to_dict() for e in self._entries]}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        h = cls(int(d.get("max_len", 200)))
        h._entries = [Entry.from_dict(e) for e in d.get("entries", [])][-h.max_len:]
        h._pos = min(int(d.get("position", len(h._entries) - 1)), len(h._entries) - 1)
        if h._entries and h._pos < 0:
            h._pos = len(h._entries) - 1
        return h


@dataclass(eq=False)
class Bookmark:
    name: str
    latent: np.ndarray  # float32 (D,)
    note: str = ""
    model_id: str = ""
    created: float = field(default_factory=time.time)

    def __post_init__(self):
        self.latent = _latent(self.latent)

    def to_dict(self) -> dict:
        return {"name": self.name, "latent": [float(x) for x in self.latent], "note": self.note,
                "model_id": self.model_id, "created": self.created}

    @classmethod
    def from_dict(cls, d: dict) -> "Bookmark":
        return cls(str(d["name"]), d["latent"], str(d.get("note", "")), str(d.get("model_id", "")), float(d.get("created", 0.0)))


class Bookmarks:
    """Named latents, in the order they were added; names are unique (re-adding replaces)."""

    def __init__(self):
        self._items: dict[str, Bookmark] = {}

    def add(self, name: str, z, note: str = "", model_id: str = "") -> Bookmark:
        name = name.strip()
        if not name:
            raise ValueError("a bookmark needs a name")
        b = Bookmark(name, z, note, model_id)
        self._items.pop(name, None)
        self._items[name] = b
        return b

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def rename(self, old: str, new: str) -> None:
        new = new.strip()
        if not new:
            raise ValueError("a bookmark needs a name")
        if new != old and new in self._items:
            raise ValueError(f"a bookmark named '{new}' already exists")
        items = [(new if k == old else k, v) for k, v in self._items.items()]
        if old not in self._items:
            raise KeyError(old)
        self._items = dict(items)
        self._items[new].name = new

    def __getitem__(self, name: str) -> Bookmark:
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(list(self._items.values()))

    def __len__(self) -> int:
        return len(self._items)

    def for_model(self, model_id: str) -> list[Bookmark]:
        """Bookmarks made on this model (the others' latents mean something else here)."""
        return [b for b in self._items.values() if b.model_id == model_id]

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "bookmarks": [b.to_dict() for b in self._items.values()]}

    @classmethod
    def from_dict(cls, d: dict) -> "Bookmarks":
        bm = cls()
        for item in d.get("bookmarks", []):
            b = Bookmark.from_dict(item)
            bm._items[b.name] = b
        return bm
