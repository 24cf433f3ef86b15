"""User settings: one JSON file with a schema version, in the platform's user config folder.

Qt-free on purpose: the window hands geometry over as base64 text. `LATENT_EXPLORER_HOME`
moves every user folder (config, runs) under one root — the tests point it at a temp dir.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

from engines import atomic

SCHEMA_VERSION = 1
APP_NAME = "latent-explorer"


def home_override() -> str | None:
    return os.environ.get("LATENT_EXPLORER_HOME") or None


def config_dir() -> str:
    root = home_override()
    if root:
        return os.path.join(root, "config")
    import platformdirs

    return platformdirs.user_config_dir(APP_NAME, appauthor=False)


def data_dir() -> str:
    root = home_override()
    if root:
        return os.path.join(root, "data")
    import platformdirs

    return platformdirs.user_data_dir(APP_NAME, appauthor=False)


def default_runs_dir() -> str:
    return os.path.join(data_dir(), "runs")


def settings_path() -> str:
    return os.path.join(config_dir(), "settings.json")


@dataclass
class Settings:
    schema_version: int = SCHEMA_VERSION
    runs_dir: str = ""  # empty: default_runs_dir()
    window_geometry: str = ""  # base64 of QMainWindow.saveGeometry()
    window_state: str = ""  # base64 of QMainWindow.saveState()
    splitters: dict = field(default_factory=dict)  # "panel/splitter" -> base64 of QSplitter.saveState()
    last_panel: str = "train"
    last_model: str = ""  # path of the model selected when the app last closed
    last_open_dir: str = ""  # folder of the last File → Open
    last_data_dir: str = ""  # folder of the last user data set picked in the Train panel
    opened_files: list[str] = field(default_factory=list)  # checkpoints opened by hand, newest first
    user_data: list[str] = field(default_factory=list)  # the user's data sets, newest first
    device: str = "auto"
    train: dict = field(default_factory=dict)  # Train panel choices: data, engine, config, epochs…
    shortcuts: dict = field(default_factory=dict)  # action id -> key sequence, overriding actions.py
    tip_dismissed: bool = False  # the first launch's "where to start" tip was closed

    MAX_RECENT = 12

    @property
    def runs_folder(self) -> str:
        return self.runs_dir or default_runs_dir()

    def remember(self, list_name: str, path: str) -> None:
        items = [p for p in getattr(self, list_name) if p != path]
        setattr(self, list_name, [path, *items][: self.MAX_RECENT])

    def forget(self, list_name: str, path: str) -> None:
        setattr(self, list_name, [p for p in getattr(self, list_name) if p != path])

    # ---- persistence --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | None = None) -> str:
        path = path or settings_path()
        atomic.write_json(path, self.to_dict(), sort_keys=True)
        return path

    @classmethod
    def load(cls, path: str | None = None) -> "Settings":
        """Read the file; a missing, unreadable or newer-format file gives defaults."""
        path = path or settings_path()
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> "Settings":
        version = int(data.get("schema_version", 0) or 0)
        if version > SCHEMA_VERSION:
            return cls()  # written by a newer app: do not guess, start clean (the file is kept until saved)
        data = migrate(dict(data), version)
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        defaults = cls()
        for k, v in data.items():
            if k not in known:
                continue
            if type(v) is not type(getattr(defaults, k)):  # a hand-edited file with a wrong type
                continue
            kwargs[k] = v
        kwargs["schema_version"] = SCHEMA_VERSION
        return cls(**kwargs)


def migrate(data: dict, version: int) -> dict:
    """Bring an older settings dict up to SCHEMA_VERSION, one step at a time."""
    steps = {
        0: _from_v0,
    }
    while version < SCHEMA_VERSION:
        data = steps[version](data)
        version += 1
    return data


def _from_v0(data: dict) -> dict:
    # Version 0: files written before settings carried a version; same fields.
    return data
