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
