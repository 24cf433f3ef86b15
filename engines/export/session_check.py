"""Bounds for session files (engines/export/session.py), checked before any work starts.

A session file may come from anywhere: `read_json` reads at most MAX_BYTES of a regular file
(never blocking on a FIFO) and refuses NaN/Infinity; `check_document` walks the parsed JSON
without recursion (depth, node count, string lengths, integer and float sizes) and checks every
part has the type the app expects; `check_export` bounds the export a session describes (seconds,
fps, counts) and its frame count (`planned_frames`) against engines.bounds.MAX_FRAMES. Every
refusal is a `Bad` (a ValueError) with one line saying which value is wrong.
"""
from __future__ import annotations

import json
import math
import os
import stat

from engines.bounds import MAX_FRAMES

MAX_BYTES = 16 * 2**20
MAX_DEPTH = 32
MAX_NODES = 4_000_000
MAX_STRING = 10_000
MAX_INT = 2**63
MAX_KEYS = 1000  # keys of a timeline, and of the session
MAX_VECTORS = 1000
MAX_BOOKMARKS = 10_000
MAX_LATENT = 3 * 256 * 256  # a diffusion model's latent is an image
MAX_CELLS = 1024  # images per frame
MAX_SECONDS = 3600.0
MAX_FPS = 240.0
MAX_CHECKPOINTS = 1000
MAX_STEPS = 10_000  # sampler steps


class Bad(ValueError):
    pass


def read_json(path: str):
    """The parsed JSON of `path`, read with a size limit; Bad for a file that is not a regular
    file or is too large, ValueError/UnicodeDecodeError/RecursionError for malformed text."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise Bad("is a folder, not a session file")
        if not stat.S_ISREG(st.st_mode):
            raise Bad("is not a regular file")
        if st.st_size > MAX_BYTES:
            raise Bad(f"{st.st_size:,} bytes is more than a session file may have ({MAX_BYTES:,})")
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise Bad(f"more than {MAX_BYTES:,} bytes")
    return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)


def _no_constant(name: str):
    raise Bad(f"{name} is not allowed in a session file")


# ---- the document ---------------------------------------------------------------------------
def _walk(doc) -> None:
    stack = [(doc, 0)]
    nodes = 0
    while stack:
        v, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise Bad(f"more than {MAX_NODES:,} values")
        if depth > MAX_DEPTH:
            raise Bad(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
            for k in v:
                if len(k) > MAX_STRING:
                    raise Bad(f"a name of {len(k):,} characters")
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, str):
            if len(v) > MAX_STRING:
                raise Bad(f"a text of {len(v):,} characters")
        elif isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, int):
            if abs(v) >= MAX_INT:
                raise Bad(f"the number {str(v)[:20]}… is too large")
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise Bad("a number too large to be finite")


def _dict(v, what: str, most: int = 256) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise Bad(f"'{what}' must be an object, not {type(v).__name__}")
    if len(v) > most:
        raise Bad(f"'{what}' has {len(v):,} entries (at most {most:,})")
    return v


def _list(v, what: str, most: int) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise Bad(f"'{what}' must be a list, not {type(v).__name__}")
    if len(v) > most:
        raise Bad(f"'{what}' has {len(v):,} entries (at most {most:,})")
    return v


def _vector(v, what: str) -> list:
    v = _list(v, what, MAX_LATENT)
    if not v:
        raise Bad(f"'{what}' is empty")
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise Bad(f"'{what}' must be a list of numbers")
    return v


def _scalars(v, what: str) -> dict:
    d = _dict(v, what, 64)
    for k, x in d.items():
        if not (x is None or isinstance(x, (str, int, float, bool))):
            raise Bad(f"'{what}.{k}' must be a number or text")
    return d


def _number(d: dict, key: str, lo: float, hi: float, what: str, integer: bool = False, lo_open: bool = False):
    if key not in d:
        return
    v = d[key]
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok:
        raise Bad(f"'{what}.{key}' must be {'an integer' if integer else 'a number'}, not {type(v).__name__}")
    if v < lo or v > hi or (lo_open and v == lo):
        raise Bad(f"'{what}.{key}' must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {v if integer else format(v, 'g')}")


def _timing(d: dict, what: str) -> None:
    _number(d, "seconds", 0, MAX_SECONDS, what, lo_open=True)
    _number(d, "fps", 0, MAX_FPS, what, lo_open=True)


def check_document(d: dict) -> None:
    """Bad unless the parsed session `d` is within every limit and of the expected shape."""
    _walk(d)
    model = _dict(d.get("model"), "model")
    for k in ("id", "path", "engine", "name"):
        if k in model and not isinstance(model[k], str):
            raise Bad(f"'model.{k}' must be text")
    if "latent_shape" in model:
        shape = _list(model["latent_shape"], "model.latent_shape", 8)
        if not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_LATENT for s in shape):
            raise Bad("'model.latent_shape' must be a few positive sizes")
    _number(d, "seed", 0, 2**32 - 1, "session", integer=True)
    _number(d, "created", -1e12, 1e12, "session")
    _scalars(d.get("sampler"), "sampler")
    for i, k in enumerate(_list(d.get("keys"), "keys", MAX_KEYS)):
        k = _dict(k, f"keys[{i}]")
        _vector(k.get("latent"), f"keys[{i}].latent")
        if not isinstance(k.get("label", ""), str):
            raise Bad(f"'keys[{i}].label' must be text")
    for i, v in enumerate(_list(d.get("vectors"), "vectors", MAX_VECTORS)):
        v = _dict(v, f"vectors[{i}]")
        if "vector" in v:
            _vector(v["vector"], f"vectors[{i}].vector")
    for i, b in enumerate(_list(d.get("bookmarks"), "bookmarks", MAX_BOOKMARKS)):
        b = _dict(b, f"bookmarks[{i}]")
        if "latent" in b:
            _vector(b["latent"], f"bookmarks[{i}].latent")
        if not isinstance(b.get("name", ""), str):
            raise Bad(f"'bookmarks[{i}].name' must be text")
    for name, p in _dict(d.get("panels"), "panels", 64).items():
        _dict(p, f"panels.{name}", 10_000)
    _dict(d.get("workspace"), "workspace", 64)
    if d.get("export") is not None:
        _export_document(_dict(d["export"], "export"))


def _export_document(e: dict) -> None:
    if not isinstance(e.get("kind", "interpolate"), str):
        raise Bad("'export.kind' must be text")
    style = _dict(e.get("style"), "export.style")
    _number(style, "scale", 0, 64, "export.style", lo_open=True)
    _number(style, "cols", 1, MAX_CELLS, "export.style", integer=True)
    _number(style, "gap", 0, 64, "export.style", integer=True)
    _scalars(e.get("options"), "export.options")
    _number(_dict(e.get("options"), "export.options"), "steps", 1, MAX_STEPS, "export.options", integer=True)
    if e.get("timeline"):
        t = _dict(e["timeline"], "export.timeline")
        _timing(t, "export.timeline")
        keys = _list(t.get("keys"), "export.timeline.keys", MAX_KEYS)
        for i, k in enumerate(keys):
            _vector(k, f"export.timeline.keys[{i}]")
        if len({len(k) for k in keys}) > 1:
            raise Bad("'export.timeline.keys' have different lengths")
        _list(t.get("labels"), "export.timeline.labels", MAX_KEYS)
    if e.get("sweep"):
        s = _dict(e["sweep"], "export.sweep")
        _timing(s, "export.sweep")
        for k in ("s_from", "s_to"):
            _number(s, k, -1000, 1000, "export.sweep")
        if len(_vector(s.get("base"), "export.sweep.base")) != len(_vector(s.get("vector"), "export.sweep.vector")):
            raise Bad("'export.sweep' base and vector have different lengths")
    if e.get("grid"):
        g = _dict(e["grid"], "export.grid")
        _timing(g, "export.grid")
        _number(g, "n", 1, MAX_CELLS, "export.grid", integer=True)
        _number(g, "keys", 1, MAX_KEYS, "export.grid", integer=True)
        _number(g, "seed", 0, 2**32 - 1, "export.grid", integer=True)
    if e.get("progress"):
        p = _dict(e["progress"], "export.progress")
        _timing(p, "export.progress")
        _number(p, "n", 1, MAX_CELLS, "export.progress", integer=True)
        _number(p, "seed", 0, 2**32 - 1, "export.progress", integer=True)
        cks = _list(p.get("checkpoints"), "export.progress.checkpoints", MAX_CHECKPOINTS)
        if not all(isinstance(c, str) for c in cks):
            raise Bad("'export.progress.checkpoints' must be a list of paths")
    if e.get("diffusion"):
        f = _dict(e["diffusion"], "export.diffusion")
        _number(f, "fps", 0, MAX_FPS, "export.diffusion", lo_open=True)
        _number(f, "hold_s", 0, MAX_SECONDS, "export.diffusion")
        _number(f, "n", 1, MAX_CELLS, "export.diffusion", integer=True)
        _number(f, "seed", 0, 2**32 - 1, "export.diffusion", integer=True)


# ---- the export it describes ----------------------------------------------------------------
def planned_frames(spec, steps: int | None = None) -> int:
    """Frames the export `spec` (engines.export.job.ExportSpec) will have, computed from its
    numbers alone (a diffusion trajectory: `steps` or the spec's 'steps' option, else 0 steps)."""
    def per(seconds, fps) -> int:
        n = int(round(float(seconds) * float(fps)))
        if n < 1:
            raise Bad(f"{seconds} s at {fps} fps is less than one frame")
        return n

    k = spec.kind
    if k == "interpolate":
        t = spec.timeline
        if t is None or len(t.keys) < 2:
            raise Bad("an interpolation needs a timeline of at least two keys")
        segs = len(t.keys) if t.loop else len(t.keys) - 1
        return segs * per(t.seconds, t.fps) + (0 if t.loop else 1)
    if k == "sweep":
        s = spec.sweep
        if s is None:
            raise Bad("a sweep needs a base latent and a vector")
        n = per(s.seconds, s.fps)
        return 2 * n if s.loop else n + 1
    if k == "grid":
        g = spec.grid
        if g is None:
            raise Bad("a grid needs its numbers")
        return 1 if g.keys <= 1 else g.keys * per(g.seconds, g.fps)
    if k == "progress":
        p = spec.progress
        if p is None:
            raise Bad("a training-progress video needs checkpoints")
        return max(1, int(round(p.seconds * p.fps))) * len(p.checkpoints)
    d = spec.diffusion
    if d is None:
        raise Bad("a diffusion export needs its numbers")
    steps = int(steps if steps is not None else spec.options.get("steps", 0) or 0)
    return steps + max(1, int(round(d.hold_s * d.fps)))


def cells_of(spec) -> tuple[int, int]:
    """(images per frame, rows of a diffusion frame) of `spec`."""
    if spec.kind == "grid" and spec.grid is not None:
        return int(spec.grid.n), 1
    if spec.kind == "progress" and spec.progress is not None:
        return int(spec.progress.n), 1
    if spec.kind == "diffusion" and spec.diffusion is not None:
        return int(spec.diffusion.n), 2 if spec.diffusion.show == "both" else 1
    return 1, 1


def frame_shape(spec, model_spec) -> tuple[int, int]:
    """(height, width) of the export's frames for images of `model_spec`."""
    cells, rows = cells_of(spec)
    st = spec.style
    if spec.kind == "diffusion":
        ch, cw = st.cell(model_spec)
        return rows * ch + (rows + 1) * st.gap, cells * cw + (cells + 1) * st.gap
    return st.frame_size(model_spec, cells)


def check_export(spec, steps: int | None = None) -> int:
    """Bad when the export `spec` would have more than MAX_FRAMES frames; its frame count otherwise."""
    for name in ("timeline", "sweep", "grid", "progress", "diffusion"):
        part = getattr(spec, name)
        if part is None:
            continue
        for key, hi in (("seconds", MAX_SECONDS), ("fps", MAX_FPS), ("hold_s", MAX_SECONDS)):
            v = getattr(part, key, None)
            if v is not None and not (0 <= float(v) <= hi):
                raise Bad(f"export {name} {key} must be in [0, {hi:g}], got {v}")
        n = getattr(part, "n", None)
        if n is not None and not (1 <= int(n) <= MAX_CELLS):
            raise Bad(f"export {name} n must be in [1, {MAX_CELLS}], got {n}")
    frames = planned_frames(spec, steps)
    if frames > MAX_FRAMES:
        raise Bad(f"the export would have {frames:,} frames, more than the {MAX_FRAMES:,} allowed")
    if spec.grid is not None and spec.kind == "grid" and spec.grid.keys > 1:
        from engines.latent import interpolate as itp

        itp.interpolator(spec.grid.method)
        itp.easing(spec.grid.easing)
    return frames
