"""What a video shows, as latents per frame: keyframe timelines, attribute sweeps, seed grids.

A `Timeline` is a list of key latents (picked on the map, drawn from seeds, encoded from images)
played one segment after another: `seconds` per segment at `fps`, each segment's time reshaped by
an easing (smoothstep lingers on each key), latents moved by lerp, slerp or nslerp
(`engines.latent.interpolate`). A looping timeline adds the segment from the last key back to the
first and leaves out the final frame, so the video repeats without a stutter.

Everything here is plain data with `to_dict`/`from_dict` (the session file stores it) and pure
functions of it: the same timeline gives the same latents, bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engines.latent import interpolate as itp

MAX_FRAMES = 100_000  # a typo in fps or seconds should fail fast, not fill the disk


def _frames_per(seconds: float, fps: float) -> int:
    n = int(round(float(seconds) * float(fps)))
    if n < 1:
        raise ValueError(f"{seconds} s at {fps} fps is less than one frame per segment")
    return n


def _check_fps(fps: float) -> None:
    if not (0 < float(fps) <= 240):
        raise ValueError(f"fps must be in (0, 240], got {fps}")


@dataclass
class Timeline:
    keys: list  # float32 (D,) arrays
    method: str = "slerp"
    easing: str = "smoothstep"
    seconds: float = 2.0  # per segment
    fps: float = 24.0
    loop: bool = True
    labels: list[str] = field(default_factory=list)  # one per key (shown on the key's frames if asked)

    def __post_init__(self):
        self.keys = [np.asarray(k, np.float32).reshape(-1) for k in self.keys]
        itp.interpolator(self.method)  # unknown names fail here, not mid-export
        itp.easing(self.easing)
        _check_fps(self.fps)

    def validate(self) -> None:
        if len(self.keys) < 2:
            raise ValueError("a timeline needs at least two keys")
        if len({len(k) for k in self.keys}) != 1:
            raise ValueError("keys of different latent sizes")
        if self.n_frames > MAX_FRAMES:
            raise ValueError(f"{self.n_frames} frames is more than the {MAX_FRAMES} allowed")

    @property
    def n_segments(self) -> int:
        return len(self.keys) if self.loop else len(self.keys) - 1

    @property
    def frames_per_segment(self) -> int:
        return _frames_per(self.seconds, self.fps)

    @property
    def n_frames(self) -> int:
        n = self.n_segments * self.frames_per_segment
        return n if self.loop else n + 1

    def key_frames(self) -> np.ndarray:
        """The frame index at which each key is shown exactly."""
        return np.arange(len(self.keys)) * self.frames_per_segment

    def latents(self) -> np.ndarray:
        """float32 (n_frames, D)."""
        self.validate()
        pts = np.stack(self.keys).astype(np.float64)
        if self.loop:
            pts = np.concatenate([pts, pts[:1]])
        z = itp.path(pts, self.frames_per_segment, self.method, self.easing)
        if self.loop:
            z = z[:-1]  # the first key again: the player wraps there
        return np.asarray(z, np.float32)

    def frame_labels(self) -> list[str]:
        """A caption per frame: the key's label on its frame, "A -> B" on the way between keys
        (ASCII: the built-in font has no arrow; a caption blinking on for one frame per key would be unreadable)."""
        names = [self.labels[i] if i < len(self.labels) and self.labels[i] else f"key {i + 1}"
                 for i in range(len(self.keys))]
        per = self.frames_per_segment
        out = []
        for f in range(self.n_frames):
            seg, k = divmod(f, per)
            a = names[seg % len(names)]
            out.append(a if k == 0 else f"{a} -> {names[(seg + 1) % len(names)]}")
        return out

    def to_dict(self) -> dict:
        return {"keys": [[float(x) for x in k] for k in self.keys], "method": self.method, "easing": self.easing,
                "seconds": float(self.seconds), "fps": float(self.fps), "loop": bool(self.loop),
                "labels": list(self.labels)}

    @classmethod
    def from_dict(cls, d: dict) -> "Timeline":
        return cls([np.asarray(k, np.float32) for k in d["keys"]], str(d.get("method", "slerp")),
                   str(d.get("easing", "smoothstep")), float(d.get("seconds", 2.0)), float(d.get("fps", 24.0)),
                   bool(d.get("loop", True)), [str(s) for s in d.get("labels", [])])


@dataclass
class Sweep:
    """z + s·Δ with s moving from `s_from` to `s_to` over `seconds` (and back when `loop`)."""

    base: np.ndarray  # (D,)
    vector: np.ndarray  # (D,)
    s_from: float = -3.0
    s_to: float = 3.0
    seconds: float = 4.0
    fps: float = 24.0
    easing: str = "smoothstep"
    loop: bool = True
    name: str = ""

    def __post_init__(self):
        self.base = np.asarray(self.base, np.float32).reshape(-1)
        self.vector = np.asarray(self.vector, np.float32).reshape(-1)
        if self.base.shape != self.vector.shape:
            raise ValueError(f"base latent has {self.base.size} dimensions, the vector {self.vector.size}")
        itp.easing(self.easing)
        _check_fps(self.fps)

    @property
    def n_frames(self) -> int:
        n = _frames_per(self.seconds, self.fps)
        return 2 * n if self.loop else n + 1

    def strengths(self) -> np.ndarray:
        n = _frames_per(self.seconds, self.fps)
        u = itp.easing(self.easing)(np.arange(n + 1) / n)
        s = self.s_from + (self.s_to - self.s_from) * u
        if self.loop:  # there and back; neither end repeated, so the loop is seamless
            s = np.concatenate([s[:-1], s[::-1][:-1]])
        return s

    def latents(self) -> np.ndarray:
        s = self.strengths()
        return (self.base[None].astype(np.float64) + s[:, None] * self.vector[None]).astype(np.float32)

    def frame_labels(self) -> list[str]:
        head = f"{self.name} " if self.name else ""
        return [f"{head}s = {s:+.2f}" for s in self.strengths()]

    def to_dict(self) -> dict:
        return {"base": [float(x) for x in self.base], "vector": [float(x) for x in self.vector],
                "s_from": self.s_from, "s_to": self.s_to, "seconds": self.seconds, "fps": self.fps,
                "easing": self.easing, "loop": self.loop, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "Sweep":
        return cls(np.asarray(d["base"], np.float32), np.asarray(d["vector"], np.float32), float(d["s_from"]),
                   float(d["s_to"]), float(d["seconds"]), float(d["fps"]), str(d.get("easing", "smoothstep")),
                   bool(d.get("loop", True)), str(d.get("name", "")))


def prior_latents(engine, n: int, seed: int, **options) -> np.ndarray:
    """n latents from the engine's prior with a fixed seed (what `engine.sample(n, seed)` decodes).
    For a VQ model these are the code vectors of grids drawn from its prior over code grids (its
    latents are the grid before quantisation), not Gaussian noise it never decodes well."""
    import torch

    vq = _vq_prior_latents(engine, n, seed, **options)
    if vq is not None:
        return vq
    g = torch.Generator(device=engine.device)
    g.manual_seed(int(seed))
    with engine.lock:
        z = engine.prior_sample(int(n), g, **options)
    return z.detach().to("cpu", torch.float32).reshape(int(n), -1).numpy()


def _vq_prior_latents(engine, n: int, seed: int, temperature: float = 1.0, **_) -> np.ndarray | None:
    import torch

    if not (callable(getattr(engine, "sample_indices", None)) and callable(getattr(engine, "code_vectors", None))):
        return None
    idx = engine.sample_indices(int(n), int(seed), float(temperature)).to("cpu", torch.long)  # (n, h, w)
    codes = engine.code_vectors()  # (K, D)
    k, d = codes.shape
    c = int(engine.latent_shape[0])
    if c == d:  # nearest-code quantiser: the code vectors themselves
        z = codes[idx].permute(0, 3, 1, 2)
    elif c == k:  # Gumbel quantiser (argmax of logits): a clear one-hot
        z = torch.nn.functional.one_hot(idx, k).permute(0, 3, 1, 2).float() * 10.0
    else:
        return None
    return z.reshape(int(n), -1).float().numpy()


def default_timeline(engine, n_keys: int = 4, seed: int = 0, seconds: float = 2.0, fps: float = 24.0) -> Timeline:
    """What `export --kind interpolate` makes with no further options: a looping spherical
    interpolation through a few latents drawn from the model with a fixed seed."""
    keys = prior_latents(engine, n_keys, seed)
    return Timeline(list(keys), "slerp", "smoothstep", seconds, fps, True, [f"key {i + 1} (seed {seed})" for i in range(n_keys)])


def grid_shape(n: int, cols: int | None = None) -> tuple[int, int]:
    cols = int(cols) if cols else int(math.ceil(math.sqrt(n)))
    return int(math.ceil(n / cols)), cols
