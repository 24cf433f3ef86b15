"""Session files: everything needed to reopen a view and regenerate its exports.

A session is JSON (no pickle, readable in a text editor):

    {"format": "latent-explorer-session", "schema_version": 1,
     "model": {"id": "<cache.model_id>", "path": "...", "engine": "vae", "latent_shape": [16], ...},
     "seed": 0, "sampler": {"temperature": 1.0},
     "keys": [{"label": ..., "latent": [...]}], "vectors": [AttributeVector.to_dict()…],
     "bookmarks": [Bookmark.to_dict()…], "workspace": {"current": [...], "groups": {...}, ...},
     "panels": {"manifold": {...}, "arithmetic": {...}, ...}, "export": ExportSpec.to_dict()}

`workspace` is what the app's Workspace keeps besides keys, vectors and bookmarks (the current
latent, history, map groups, which vectors are on, the data source); `panels` each panel's own
view state. Files without `workspace` (older ones) still open.

The model is named by its content hash (`engines.latent.cache.model_id`), not just its path: a
checkpoint trained one more step has other latents, so `check_model` refuses (with a message that
says what differs) a session opened on another model, and `resolve_model` says when the file the
session was made with is missing.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from engines import atomic
from engines.export.job import ExportSpec
from engines.export.writers import ExportError

FORMAT = "latent-explorer-session"
SCHEMA_VERSION = 1


class SessionError(ExportError):
    """A session file that cannot be read, or that belongs to another model."""


@dataclass
class Session:
    model: dict = field(default_factory=dict)  # id, path, engine, latent_shape, name
    seed: int = 0
    sampler: dict = field(default_factory=dict)
    keys: list = field(default_factory=list)  # [{"label", "latent"}]
    vectors: list = field(default_factory=list)  # AttributeVector dicts
    bookmarks: list = field(default_factory=list)  # Bookmark dicts
    panels: dict = field(default_factory=dict)  # panel name → its state
    workspace: dict = field(default_factory=dict)  # the Workspace's session_state()
    export: ExportSpec | None = None
    created: float = field(default_factory=time.time)
    path: str | None = None  # where it was read from / written to (not stored)

    @property
    def model_id(self) -> str:
        return str(self.model.get("id", ""))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "schema_version": SCHEMA_VERSION, "created": self.created, "model": self.model,
                "seed": int(self.seed), "sampler": self.sampler, "keys": self.keys, "vectors": self.vectors,
                "bookmarks": self.bookmarks, "workspace": self.workspace, "panels": self.panels,
                "export": None if self.export is None else self.export.to_dict()}

    @classmethod
    def from_dict(cls, d: dict, path: str | None = None) -> "Session":
        where = path or "session"
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SessionError(f"{where}: not a Latent Explorer session file")
        version = d.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise SessionError(f"{where}: session has no valid schema version")
        if version > SCHEMA_VERSION:
            raise SessionError(f"{where}: written by a newer Latent Explorer (session schema {version}, "
                               f"this version reads up to {SCHEMA_VERSION})")
        try:
            return cls(dict(d.get("model") or {}), int(d.get("seed", 0)), dict(d.get("sampler") or {}),
                       list(d.get("keys") or []), list(d.get("vectors") or []), list(d.get("bookmarks") or []),
                       dict(d.get("panels") or {}), dict(d.get("workspace") or {}),
                       export=ExportSpec.from_dict(d["export"]) if d.get("export") else None,
                       created=float(d.get("created", 0.0)), path=path)
        except (TypeError, ValueError) as e:
            raise SessionError(f"{where}: damaged session ({e})") from None


def model_entry(engine, path: str | None = None, name: str = "") -> dict:
    from engines.latent.cache import model_id

    return {"id": model_id(engine), "path": os.path.abspath(path) if path else "", "engine": engine.name,
            "latent_shape": [int(s) for s in engine.latent_shape], "spec": engine.spec.to_dict(),
            "name": name or (os.path.splitext(os.path.basename(path))[0] if path else "")}


def save(path: str, session: Session) -> str:
    """Write atomically (a temp file renamed into place)."""
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise SessionError(f"{d}: folder does not exist")
    atomic.write_json(path, session.to_dict(), allow_nan=False)
    session.path = path
    return path


def load(path: str) -> Session:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise SessionError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SessionError(f"{path}: cannot read the session ({e})") from None
    return Session.from_dict(doc, path)


def resolve_model(session: Session) -> str:
    """The checkpoint the session was made with; SessionError when it no longer exists."""
    p = str(session.model.get("path", ""))
    if not p:
        raise SessionError("the session does not say which checkpoint it was made with; pass --checkpoint")
    if not os.path.isfile(p):
        raise SessionError(f"the session's model {p} is missing (id {session.model_id}); "
                           "pass the checkpoint it was made with")
    return p


def check_model(session: Session, engine) -> None:
    """Raise SessionError unless `engine` is the model the session was made with."""
    from engines.latent.cache import model_id

    want = session.model_id
    have = model_id(engine)
    if not want or want == have:
        return
    m = session.model
    what = []
    if m.get("engine") and m["engine"] != engine.name:
        what.append(f"a {m['engine']}, not a {engine.name}")
    if m.get("latent_shape") and list(m["latent_shape"]) != [int(s) for s in engine.latent_shape]:
        what.append(f"latents {m['latent_shape']}, not {list(engine.latent_shape)}")
    detail = "; ".join(what) or "same kind of model, different weights"
    name = m.get("name") or m.get("path") or want
    raise SessionError(f"this session was made with model {name} ({want}), not this one ({have}): {detail}")
