"""One export, described as data (`ExportSpec`) and run as a progress generator (`run_export`).

The spec is what a session file stores and what the command line builds from its options, so
an export made in the app can be regenerated headless, frame for frame. `run_export` yields
`Progress` after every batch (where a Cancel lands: the writer then removes its temporary file)
and returns an `ExportResult` with the path, the frame count and a digest of the frames.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import numpy as np

from engines.latent.progress import Progress
from engines.export import writers
from engines.export.pipeline import BackgroundWriter, cores_for_encoder
from engines.export.render import FrameStyle, Timing, render
from engines.export.timeline import Sweep, Timeline, grid_shape, prior_latents

KINDS = ("interpolate", "sweep", "grid", "progress", "diffusion")


@dataclass
class GridSpec:
    """`n` images from seeds `seed`, `seed+1`, …: one still frame, or (with `keys` > 1) a video in
    which every cell walks its own looping timeline through `keys` prior latents."""

    n: int = 16
    seed: int = 0
    keys: int = 1
    seconds: float = 2.0
    fps: float = 24.0
    method: str = "slerp"
    easing: str = "smoothstep"

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "GridSpec":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class ProgressSpec:
    """Training progress: the same seeds decoded by each checkpoint in turn, one frame held for
    `seconds` per checkpoint, captioned with its training step."""

    checkpoints: list[str] = field(default_factory=list)
    n: int = 16
    seed: int = 0
    seconds: float = 0.5
    fps: float = 24.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "ProgressSpec":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class DiffusionSpec:
    """A diffusion sampler's trajectory: one frame per step showing x_t and/or the model's
    prediction x̂₀ for `n` seeds (columns), then the finished images held for `hold_s`. The
    sampler, step count, η and guidance are the spec's sampling `options`."""

    n: int = 4
    seed: int = 0
    show: str = "both"  # "x_t", "x0" or "both" (x_t above x̂₀)
    fps: float = 12.0
    hold_s: float = 1.0

    def __post_init__(self):
        if self.show not in ("x_t", "x0", "both"):
            raise ValueError(f"show must be x_t, x0 or both, got '{self.show}'")

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, d: dict) -> "DiffusionSpec":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class ExportSpec:
    kind: str = "interpolate"
    style: FrameStyle = field(default_factory=FrameStyle)
    timeline: Timeline | None = None
    sweep: Sweep | None = None
    grid: GridSpec | None = None
    progress: ProgressSpec | None = None
    options: dict = field(default_factory=dict)  # sampling options (temperature, sampler, steps, …)
    diffusion: DiffusionSpec | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise writers.ExportError(f"unknown export kind '{self.kind}' (known: {', '.join(KINDS)})")

    @property
    def fps(self) -> float:
        part = {"interpolate": self.timeline, "sweep": self.sweep, "grid": self.grid, "progress": self.progress,
                "diffusion": self.diffusion}
        return float(getattr(part.get(self.kind), "fps", 24.0))

    @property
    def loop(self) -> bool:
        part = self.timeline if self.kind == "interpolate" else self.sweep if self.kind == "sweep" else None
        return bool(getattr(part, "loop", True))

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "style": self.style.to_dict(), "options": dict(self.options)}
        for name in ("timeline", "sweep", "grid", "progress", "diffusion"):
            part = getattr(self, name)
            if part is not None:
                d[name] = part.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExportSpec":
        try:
            return cls(str(d.get("kind", "interpolate")), FrameStyle.from_dict(d.get("style", {})),
                       Timeline.from_dict(d["timeline"]) if d.get("timeline") else None,
                       Sweep.from_dict(d["sweep"]) if d.get("sweep") else None,
                       GridSpec.from_dict(d["grid"]) if d.get("grid") else None,
                       ProgressSpec.from_dict(d["progress"]) if d.get("progress") else None,
                       dict(d.get("options", {})),
                       DiffusionSpec.from_dict(d["diffusion"]) if d.get("diffusion") else None)
        except (KeyError, TypeError, ValueError) as e:
            raise writers.ExportError(f"damaged export description ({e})") from None


@dataclass
class Plan:
    """Latents for every cell of every frame, frame-major, with a caption per frame."""

    latents: np.ndarray  # (frames·cells, D)
    cells: int
    captions: list[str]
    fps: float
    loop: bool

    @property
    def n_frames(self) -> int:
        return len(self.latents) // self.cells


@dataclass
class ExportResult:
    path: str
    frames: int
    size: tuple[int, int]  # (width, height)
    fps: float
    digest: str  # sha256 of the raw frames: equal digests, equal frames
    timing: Timing


def plan(engine, spec: ExportSpec) -> Plan:
    """What `spec` decodes (not for 'progress', which decodes with several checkpoints)."""
    if spec.kind == "interpolate":
        tl = spec.timeline
        if tl is None:
            raise writers.ExportError("an interpolation needs a timeline of keys")
        _check_dim(engine, tl.keys[0] if tl.keys else None)
        tl.validate()
        return Plan(tl.latents(), 1, tl.frame_labels(), tl.fps, tl.loop)
    if spec.kind == "sweep":
        sw = spec.sweep
        if sw is None:
            raise writers.ExportError("a sweep needs a base latent and a vector")
        _check_dim(engine, sw.base)
        return Plan(sw.latents(), 1, sw.frame_labels(), sw.fps, sw.loop)
    if spec.kind == "grid":
        g = spec.grid or GridSpec()
        if g.n < 1:
            raise writers.ExportError("a grid needs at least one image")
        if g.keys <= 1:
            z = prior_latents(engine, g.n, g.seed, **spec.options)
            return Plan(z, g.n, [f"seeds {g.seed}-{g.seed + g.n - 1}"], g.fps, False)
        walks = []
        for i in range(g.n):
            keys = prior_latents(engine, g.keys, g.seed + i, **spec.options)
            walks.append(Timeline(list(keys), g.method, g.easing, g.seconds, g.fps, True).latents())
        z = np.stack(walks, 1).reshape(-1, walks[0].shape[1])  # frame-major
        return Plan(z, g.n, [""] * len(walks[0]), g.fps, True)
    raise writers.ExportError(f"'{spec.kind}' exports are not planned from latents")


def _check_dim(engine, z) -> None:
    if z is None:
        raise writers.ExportError("no keys")
    if np.asarray(z).size != engine.latent_dim:
        raise writers.ExportError(f"the latents have {np.asarray(z).size} dimensions, this model's have "
                                  f"{engine.latent_dim}: they were made with another model")


def run_export(engine, spec: ExportSpec, out: str, batch: int = 32, timing: Timing | None = None):
    """Generator: render and write `spec` to `out` (.mp4, .gif or .png), yielding `Progress`;
    returns an `ExportResult`. Closing the generator (Cancel) leaves nothing under `out`."""
    writers.format_of(out)
    timing = timing if timing is not None else Timing()
    batches, n_frames, fps, loop = frame_batches(engine, spec, batch, timing)
    digest = hashlib.sha256()
    yield Progress("render", 0.0, f"rendering {n_frames} frame{'s' * (n_frames != 1)}")
    t_start = time.perf_counter()
    # The writer encodes in its own thread while the next batch decodes (pipeline.py).
    writer = writers.open_writer(out, fps, n_frames, loop)
    with cores_for_encoder(engine.device, isinstance(writer, writers.Mp4Writer)) as threads, \
            BackgroundWriter(writer) as w:
        timing.extra["decode_threads"] = threads
        done = 0
        for frames in batches:
            digest.update(np.ascontiguousarray(frames))  # the array's own bytes: no copy
            w.append(frames)
            done += len(frames)
            yield Progress("render", done / n_frames, f"frame {done}/{n_frames}")
        t0 = time.perf_counter()
        path = w.commit()
        finish = time.perf_counter() - t0
    # write_s: the writer's own time (its thread's appends, then the commit), however much of it
    # overlapped the decoding; wall_s: the whole export as the user waits for it.
    timing.write_s += w.busy_s + finish
    timing.extra.update(wall_s=time.perf_counter() - t_start, writer_wait_s=w.wait_s)
    return ExportResult(path, done, w.size, fps, digest.hexdigest(), timing)


def frame_batches(engine, spec: ExportSpec, batch: int = 32, timing: Timing | None = None):
    """(generator of uint8 frame batches, frame count, fps, loop) for `spec` — what `run_export`
    writes and what the app's preview plays."""
    timing = timing if timing is not None else Timing()
    if spec.kind == "progress":
        return _progress_frames(engine, spec, timing)
    if spec.kind == "diffusion":
        return _diffusion_frames(engine, spec, timing)
    p = plan(engine, spec)
    batches = render(engine, p.latents, _style(spec.style, p.cells), p.cells, p.captions, batch, timing)
    return batches, p.n_frames, p.fps, p.loop


def _style(style: FrameStyle, cells: int) -> FrameStyle:
    if cells > 1 and style.cols <= 1:  # a grid with no column count: as square as it gets
        return FrameStyle(style.scale, style.smooth, grid_shape(cells)[1], style.gap, style.labels, style.background)
    return style


def _progress_frames(engine, spec: ExportSpec, timing: Timing):
    """(generator of frame batches, frames, fps, loop) for a training-progress video."""
    from engines import checkpoint as ckpt

    ps = spec.progress
    if ps is None or not ps.checkpoints:
        raise writers.ExportError("a training-progress video needs checkpoints")
    infos = []
    for path in ps.checkpoints:
        info = ckpt.read_info(path)
        if info.engine != engine.name or info.spec != engine.spec:
            raise writers.ExportError(f"{path}: a {info.engine} model on {info.spec}, not like the {engine.name} "
                                      f"on {engine.spec} being exported")
        infos.append(info)
    order = sorted(range(len(infos)), key=lambda i: int(infos[i].train_state.get("step", 0)))
    hold = max(1, int(round(ps.seconds * ps.fps)))
    z = prior_latents(engine, ps.n, ps.seed, **spec.options)  # the same latents for every checkpoint
    style = _style(spec.style, ps.n)

    def gen():
        for i in order:
            other = ckpt.load(ps.checkpoints[i], device=engine.device, with_optimizer=False).engine
            step = int(infos[i].train_state.get("step", 0))
            frames = next(render(other, z, style, ps.n, [f"step {step:,}"], batch=max(ps.n, 1), timing=timing))
            yield np.repeat(frames, hold, axis=0)

    return gen(), hold * len(order), ps.fps, False


def _diffusion_frames(engine, spec: ExportSpec, timing: Timing):
    """(frame batches, frames, fps, loop) of a sampler's trajectory. The sampler is driven step
    by step (`engine.sample_loop`): each step becomes one finished frame on the device (so only
    uint8 frames, not every intermediate tensor, are kept) and one batch, so progress is reported
    and a Cancel lands between steps."""
    import torch

    from engines.export.render import draw_caption, finish

    ds = spec.diffusion or DiffusionSpec()
    if "trajectory" not in engine.capabilities:
        raise writers.ExportError(f"{engine.name} models have no sampling trajectory (diffusion models do)")
    if ds.n < 1:
        raise writers.ExportError("a trajectory needs at least one seed")
    rows = 2 if ds.show == "both" else 1
    style = spec.style
    if style.cols != ds.n:
        style = FrameStyle(style.scale, style.smooth, ds.n, style.gap, style.labels, style.background)
    try:
        loop = engine.sample_loop(ds.n, seed=ds.seed, **spec.options)
    except TypeError as e:
        raise writers.ExportError(f"{engine.name}: this model's sampler cannot report its steps ({e})") from None
    hold = max(1, int(round(ds.hold_s * ds.fps)))

    def frame(parts, caption: str) -> np.ndarray:
        x = torch.cat(parts)  # images in [0, 1]
        f = finish(x, style, engine.spec, len(x))[0]
        return draw_caption(f, caption) if style.labels else f

    def gen():
        t0 = time.perf_counter()
        for rec in loop:
            shown = {"x_t": (rec.x_t,), "x0": (rec.x0,), "both": (rec.x_t, rec.x0)}[ds.show]
            parts = [engine.view_images(p) for p in shown]  # the engine's space as images
            out = frame(parts, f"step {rec.index + 1}, t = {int(rec.t)}")[None]
            timing.decode_s += time.perf_counter() - t0  # sampling and frame making together
            timing.frames += 1
            yield out
            t0 = time.perf_counter()
        last = loop.result.float()
        end = frame([last] * rows, f"done after {len(loop)} steps")
        timing.decode_s += time.perf_counter() - t0
        timing.frames += hold
        for s in range(0, hold, 16):
            yield np.repeat(end[None], min(16, hold - s), axis=0)

    return gen(), len(loop) + hold, ds.fps, False
