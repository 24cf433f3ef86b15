"""What the Workspace keeps per model on disk, keyed by the model's content hash
(`engines.latent.cache.model_id`): bookmarks and attribute vectors, written atomically."""
from __future__ import annotations

import json
import os

from engines import atomic


def _dir(kind: str) -> str:
    from explorer.settings import data_dir

    return os.path.join(data_dir(), kind)


def path_for(kind: str, model_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return os.path.join(_dir(kind), f"{safe}.json")


def bookmarks_path(model_id: str) -> str:
    return path_for("bookmarks", model_id)


def load_bookmarks(model_id: str):
    """The bookmarks saved for this model; an empty set when there are none or the file is bad."""
    from engines.latent.history import Bookmarks

    try:
        with open(bookmarks_path(model_id), encoding="utf-8") as f:
            return Bookmarks.from_dict(json.load(f))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Bookmarks()


def save_bookmarks(model_id: str, bookmarks) -> str:
    path = bookmarks_path(model_id)
    atomic.write_json(path, bookmarks.to_dict())
    return path


def vectors_path(model_id: str) -> str:
    return path_for("vectors", model_id)


def load_vectors(model_id: str) -> list[tuple]:
    """The attribute vectors saved for this model, as (AttributeVector, active) pairs in their
    order; none when there are none or the file is bad (unreadable, not this format)."""
    from engines.latent.attributes import AttributeVector

    try:
        with open(vectors_path(model_id), encoding="utf-8") as f:
            doc = json.load(f)
        active = doc.get("active")
        out = []
        for d in doc["vectors"]:
            v = AttributeVector.from_dict(d)
            out.append((v, True if active is None else v.name in active))
        return out
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def save_vectors(model_id: str, vectors, active=None) -> str:
    """Write this model's vectors (AttributeVector list, in order) and which of them are switched
    on (`active`: names; None = all), atomically."""
    vectors = list(vectors)
    names = [v.name for v in vectors] if active is None else [n for n in active]
    path = vectors_path(model_id)
    atomic.write_json(path, {"format": 1, "model_id": model_id, "vectors": [v.to_dict() for v in vectors],
                             "active": names})
    return path
