"""The model library's contents, without Qt: which checkpoints exist and what they say.

Three sources: bundled models (`assets/models/*.safetensors`, or `LATENT_EXPLORER_MODELS`),
the user's runs folder, and checkpoints opened by hand. `scan()` reads only headers and
thumbnails, so it stays cheap; it still runs in a worker.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = (("bundled", "Bundled models"), ("runs", "My runs"), ("opened", "Opened files"))
PREFERRED_FIRST_MODEL = "vae-faces-64.safetensors"


def bundled_dir() -> str:
    return os.environ.get("LATENT_EXPLORER_MODELS") or os.path.join(ROOT, "assets", "models")


@dataclass
class Entry:
    path: str
    source: str  # bundled | runs | opened
    info: object = None  # CheckpointInfo, or None when unreadable
    thumbnail: np.ndarray | None = None  # uint8 (H, W, C)
    error: str = ""

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    @property
    def ok(self) -> bool:
        return self.info is not None

    def summary(self) -> str:
        """Two short lines for the list: engine · data · image size, then latent size · training time."""
        if not self.ok:
            return f"cannot open: {self.error}"
        i = self.info
        spec = i.spec
        colour = "RGB" if spec.channels == 3 else "grey"
        data = i.data.get("name") or "unknown data"
        line1 = f"{i.engine.upper()} · {data} · {spec.height}×{spec.width} {colour}"
        latent = "×".join(str(d) for d in i.latent_shape) or "?"
        line2 = f"latent {latent} · {duration(i.train_state.get('elapsed_s'))}"
        state = i.train_state.get("state")
        if state and state != "finished":
            line2 += f" · {state}"
        return f"{line1}\n{line2}"

    def tooltip(self) -> str:
        if not self.ok:
            return f"{self.path}\n{self.error}"
        i = self.info
        lines = [self.path, f"engine: {i.engine}", f"data: {i.data.get('source') or i.data.get('name', '?')}",
                 f"steps: {i.train_state.get('step', '?')}"]
        params = i.extra.get("parameters")
        if params:
            lines.append(f"parameters: {params:,}")
        for k, v in sorted(i.metrics.items()):
            if isinstance(v, (int, float)):
                lines.append(f"{k}: {v:.4g}")
        cfg = ", ".join(f"{k}={v}" for k, v in sorted(i.config.items()))
        lines.append(f"config: {cfg}")
        return "\n".join(lines)


def duration(seconds) -> str:
    if seconds is None:
        return "untrained"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def read_entry(path: str, source: str) -> Entry:
    from engines import checkpoint as ckpt

    try:
        info = ckpt.read_info(path)
    except ckpt.CheckpointError as e:
        return Entry(path, source, error=str(e).split(": ", 1)[-1])
    return Entry(path, source, info, ckpt.read_thumbnail(path))


def list_paths(runs_dir: str, opened: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(path, source):
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            out.append((path, source))

    for p in sorted(glob.glob(os.path.join(bundled_dir(), "*.safetensors"))):
        add(p, "bundled")
    if runs_dir and os.path.isdir(runs_dir):
        runs = glob.glob(os.path.join(runs_dir, "*.safetensors"))
        for p in sorted(runs, key=lambda p: -os.path.getmtime(p)):  # newest first
            add(p, "runs")
    for p in opened:
        if os.path.isfile(p):
            add(p, "opened")
    return out


def scan(runs_dir: str, opened: list[str]) -> list[Entry]:
    return [read_entry(p, s) for p, s in list_paths(runs_dir, opened)]


def default_entry(entries: list[Entry], last_model: str = "") -> Entry | None:
    """The model to load at launch: the last one used, else the bundled faces VAE, else any
    bundled VAE on faces, else the first readable entry."""
    ok = [e for e in entries if e.ok]
    for e in ok:
        if last_model and os.path.realpath(e.path) == os.path.realpath(last_model):
            return e
    bundled = [e for e in ok if e.source == "bundled"]
    for e in bundled:
        if os.path.basename(e.path) == PREFERRED_FIRST_MODEL:
            return e
    for e in bundled:
        if e.info.engine == "vae" and e.info.data.get("name") == "faces":
            return e
    return ok[0] if ok else None
