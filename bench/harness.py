"""What every benchmark of bench/run.py shares: the run's options, a result row and its ours-vs-peer
verdict, the printed table, inputs loaded once per run (data sets, the bundled faces VAE and its
latents), and timing helpers (interleaving ours with the peer so a change of load hits both)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import common

common.on_path()


@dataclass
class Opts:
    quick: bool = False
    threads: int = 2
    train_s: float = 10.0  # train rows: seconds per engine, case and side (ours / peer), stepped in turn
    quality_s: float = 180.0  # VAE quality: wall-clock training time of each model
    quality_k: int = 64  # importance samples for the test bounds
    decode_repeat: int = 200
    grid_repeat: int = 9
    frames: int = 200  # scrub: frames per drag
    drag_passes: int = 5  # scrub: drags over the path per map (the median pass is reported; 3 read 0.92-0.99× for the same code)
    umap_points: int | None = None  # None: every face
    gui_s: float = 20.0
    export_frames: int = 192  # frames of the exported walk (8 s at 24 fps)
    diffusion_train_s: float = 240.0  # diffusion: training wall time of each side before the quality check

    @classmethod
    def make(cls, quick: bool = False, threads: int = 2) -> "Opts":
        if quick:
            # Short where the time goes (training, UMAP, the GUI, export); the millisecond
            # measurements (decode, scrub) as many as the full run: they cost a second or two, and
            # fewer swung those rows by ±5 % between quick runs. Export: the full run's 192 frames
            # (~1 s an export): at 48, ffmpeg's fixed costs (start 0.05 s, x264's flush of its
            # lookahead 0.11 s, read-back 0.02 s) were half the writer's time, and write/decode read
            # 1.55-2.09 in quick runs against 0.72-0.93 in full runs of the same code.
            return cls(True, threads, train_s=3.0, quality_s=12.0, quality_k=8, grid_repeat=9,
                       umap_points=2000, gui_s=5.0, diffusion_train_s=8.0)
        return cls(False, threads)


# ---- rows ---------------------------------------------------------------------------------------
def row(bench: str, case: str, ours, unit: str, *, better: str = "higher", peer=None, peer_name: str | None = None,
        notes: str = "", status: str = "ok", kind: str = "speed", **extra) -> dict:
    """One result. `better`: which direction is better for `ours`/`peer`; `kind`: 'speed' rows get
    a speed factor against the peer, 'quality' rows a difference."""
    ours = None if ours is None else float(ours)
    peer = None if peer is None else float(peer)
    r = {"bench": bench, "case": case, "ours": ours, "peer": peer, "peer_name": peer_name, "unit": unit,
         "better": better, "kind": kind, "status": status, "notes": notes}
    r["ratio"] = ours / peer if ours is not None and peer else None  # ours / peer, as measured
    r["vs_peer"] = vs_peer(r)
    r.update(extra)
    return r


def vs_peer(r: dict) -> str:
    ours, peer = r["ours"], r["peer"]
    if ours is None or peer is None or r["status"] != "ok":
        return ""
    if r["kind"] == "quality":
        diff = ours - peer
        good = diff < 0 if r["better"] == "lower" else diff > 0
        return f"{abs(diff):.1f} {r['unit'].split('/')[0]} {'better' if good else 'worse'}" if abs(diff) >= 0.05 else "same"
    if not peer or not ours:
        return ""
    f = ours / peer if r["better"] == "higher" else peer / ours  # > 1: ours is faster
    if f >= 1.05:
        return f"{f:.2g}× faster" if f < 10 else f"{f:.0f}× faster"
    if f <= 0.95:
        return f"{f:.2g}× (slower)"
    return f"≈ same ({f:.2f}×)"


def not_implemented(bench: str, case: str, unit: str, peer_name: str | None, notes: str) -> dict:
    return row(bench, case, None, unit, peer_name=peer_name, notes=notes, status="not implemented yet")


def fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        a = abs(v)
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 100:
            return f"{v:.0f}"
        if a >= 10:
            return f"{v:.1f}"
        if a >= 0.1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


COLUMNS = (("benchmark", "bench"), ("case", "case"), ("ours", "ours"), ("peer", "peer"), ("ours vs peer", "vs_peer"),
           ("unit", "unit"), ("notes", "notes"))


def render(rows: list[dict]) -> str:
    shown = []
    for r in rows:
        d = {k: (fmt(r.get(k)) if k in ("ours", "peer") else str(r.get(k) or "")) for _, k in COLUMNS}
        if r["status"] != "ok" and r.get("ours") is None:
            d["ours"] = r["status"]
        if r.get("peer_name"):
            d["notes"] = f"peer: {r['peer_name']}" + (f"; {d['notes']}" if d["notes"] else "")
        shown.append(d)
    w = {k: max([len(h)] + [len(d[k]) for d in shown]) for h, k in COLUMNS}
    right = {"ours", "peer"}
    line = lambda d: "  ".join((d[k].rjust(w[k]) if k in right else d[k].ljust(w[k])) for _, k in COLUMNS).rstrip()  # noqa: E731
    out = [line({k: h for h, k in COLUMNS}), "  ".join("-" * w[k] for _, k in COLUMNS)]
    out += [line(d) for d in shown]
    return "\n".join(out)


# ---- shared inputs (loaded once per run) ----------------------------------------------------------------
_SHARED: dict = {}


def shared(key, make):
    if key not in _SHARED:
        _SHARED[key] = make()
    return _SHARED[key]


def dataset(name: str, size: int, channels: int):
    from engines.data import load_dataset

    return shared(("data", name, size, channels), lambda: load_dataset(name, size=size, channels=channels))


def faces_engine():
    """The bundled faces VAE (a fresh default one when absent: the speed is the same)."""
    def make():
        import scrub

        return scrub.load_engine()

    return shared("faces_engine", make)


def faces_latents():
    from engines.data import load_dataset
    from engines.latent import cache

    def make():
        engine, _ = faces_engine()
        t0 = time.perf_counter()
        ls = cache.open_latents(engine, load_dataset("faces", spec=engine.spec))
        return ls, time.perf_counter() - t0

    return shared("faces_latents", make)


def umap_input(o: Opts):
    import numpy as np

    ls, _ = faces_latents()
    z = np.asarray(ls.latents, np.float32).reshape(len(ls.latents), -1)
    return z if o.umap_points is None or o.umap_points >= len(z) else z[: o.umap_points]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(a, b, repeat: int, warmup: int = 0, alternate: bool = False) -> tuple[list[float], list[float]]:
    """Time `a()` and `b()` alternately, so a change of load hits both alike. `alternate`: swap
    which side goes first on every repeat (the second call of a pair can find the caches the first
    one warmed: always going second would favour one side)."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for i in range(repeat):
        if alternate and i % 2:
            tb.append(timed(b))
            ta.append(timed(a))
        else:
            ta.append(timed(a))
            tb.append(timed(b))
    return ta, tb


def step_race(steps: dict, seconds: float, warmup: int = 3, clock=time.perf_counter,
              min_steps: int = 6) -> dict[str, dict]:
    """Training images/s of each `steps[name](i)` (one step on batch i; returns the images it
    trained on), the sides taking one step each in turn until every side has had `seconds` and
    `min_steps` steps (a 0.7 s step raced for 3 s gave 1-4 steps a side: ±10 % between runs):
    interleaved step by step, so another program's burst of load hits all sides alike. The rate is
    all images over all step time — the mean, not the median: work done every k-th step (a GAN's
    encoder, every 8th) must count; the median-step rate is kept beside it."""
    import statistics

    for i in range(warmup):
        for fn in steps.values():
            fn(i)
    times: dict[str, list[float]] = {k: [] for k in steps}
    cpu: dict[str, list[float]] = {k: [] for k in steps}
    images = {k: 0 for k in steps}
    i = warmup
    def done(t):
        return sum(t) >= seconds and len(t) >= max(min_steps, 1)

    while not all(map(done, times.values())):
        for k, fn in steps.items():
            if done(times[k]):
                continue
            c0, t0 = time.process_time(), clock()
            images[k] += fn(i)
            times[k].append(clock() - t0)
            cpu[k].append(time.process_time() - c0)
        i += 1
    out = {}
    for k, t in times.items():
        per_step = images[k] / len(t)
        out[k] = {"img_per_s": images[k] / sum(t), "median_img_per_s": per_step / statistics.median(t), "steps": len(t),
                  # per CPU second of this process (all its threads): the work, less the waiting under load
                  "cpu_img_per_s": images[k] / max(sum(cpu[k]), 1e-9)}
    return out


def slice_race(steps: dict, budget: dict[str, float], slice_s: dict[str, float], after=None) -> dict[str, float]:
    """Train the sides in turn, `slice_s[side]` seconds of `steps[side]()` calls at a time, until
    each has had `budget[side]` seconds (a side whose step is None sits out): coarse interleaving
    for races whose quality is checked after equal (or set) training time. `after(side, spent)`
    runs after each slice. Returns the seconds each side trained."""
    spent = dict.fromkeys(steps, 0.0)
    while any(step is not None and spent[k] < budget[k] for k, step in steps.items()):
        for side, step in steps.items():
            if step is None or spent[side] >= budget[side]:
                continue
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < slice_s[side]:
                step()
            spent[side] += time.perf_counter() - t0
            if after is not None:
                after(side, spent[side])
    return spent


def as_rows(results) -> list[dict]:
    """A stand-alone bench's result dicts (bench, case, ours, unit, then `row`'s keywords) as rows."""
    out = []
    for r in results:
        r = dict(r)
        out.append(row(r.pop("bench"), r.pop("case"), r.pop("ours"), r.pop("unit"), **r))
    return out
