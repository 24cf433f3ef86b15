"""The Diffusion panel's computations, run in workers (no Qt here).

A run records every step of a sampler as uint8 frames — x_t and the predicted x̂₀ for each image —
so the timeline can be scrubbed and played without touching the model again. A run is a
generator driving the engine's step-wise sampler (`sampling_loop`): it yields after every step,
which is where the panel's worker reports progress and where a Cancel, or a newer request, stops it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from engines.data.dataset import to_uint8

MAX_STEPS = 1000


@dataclass(frozen=True)
class RunRequest:
    sampler: str = "dpm"
    steps: int = 20
    eta: float = 0.0
    guidance: float = 1.0
    label: int = -1  # −1: one class after another (conditional models); ignored otherwise
    seed: int = 0
    n: int = 1
    start_t: int | None = None  # SDEdit: start from this step of a noised image instead of noise
    image_key: tuple = ()  # which data image was noised (part of the cache key)
    branch_step: int | None = None  # branching: from this step on, the sampler's noise comes from branch_seed
    branch_seed: int = 0


@dataclass
class Trajectory:
    """Frames of a run: x_t[k] and x0[k] are (N, H, W, C) uint8 before step k; x_t[-1] is the
    result. `t[k]` is the model timestep of step k."""

    request: RunRequest
    t: list[int]
    abar: list[float]
    x_t: list[np.ndarray] = field(default_factory=list)
    x0: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.t)

    @property
    def result(self) -> np.ndarray:
        return self.x_t[-1]


def _labels(engine, req: RunRequest):
    k = engine.config.num_classes
    if k == 0:
        return None
    if req.label < 0:  # a grid shows each class in turn; SDEdit without a class stays unconditional
        return None if req.start_t is not None else torch.arange(req.n, device=engine.device) % k
    return torch.full((req.n,), req.label, device=engine.device, dtype=torch.long)


def run(engine, req: RunRequest, x_start: torch.Tensor | None = None):
    """Generator: sample with recording, yielding (step, steps) after every step; returns the
    `Trajectory`. `x_start` (model space) with `req.start_t` runs SDEdit from a noised image;
    otherwise the run starts from seeded noise like `engine.sample`. Closing it stops the sampler
    between two steps."""
    import time

    from engines.diffusion import samplers as smp

    if not 1 <= req.steps <= MAX_STEPS:
        raise ValueError(f"steps must be within 1…{MAX_STEPS}")
    sched = engine.schedule
    ts = sched.timesteps(req.steps, start=req.start_t, spacing=smp.default_spacing(req.sampler))
    g = torch.Generator(device=engine.device)
    g.manual_seed(int(req.seed))
    if x_start is None:
        x = torch.randn((req.n, *engine.latent_shape), generator=g, device=engine.device)
    else:
        x = x_start.to(engine.device)
    traj = Trajectory(req, ts, [sched.abar(t) for t in ts])
    t0 = time.perf_counter()
    loop = engine.sampling_loop(x, ts, req.sampler, req.eta, req.guidance, _labels(engine, req), g)
    if req.branch_step == 0:
        g.manual_seed(int(req.branch_seed))
    for rec in loop:
        # The engine shows its own space: pixels as they are, a latent grid decoded to an image.
        traj.x_t.append(to_uint8(engine.view_images(rec.x_t)))
        traj.x0.append(to_uint8(engine.view_images(rec.x0)))
        if rec.index + 1 == req.branch_step:
            # The steps so far drew the same noise as the original run, so x_t of the branch step
            # is the original's; the noise the sampler draws from that step on is new.
            g.manual_seed(int(req.branch_seed))
        yield rec.index + 1, len(ts)
    final = to_uint8(loop.result)  # the sampler's result is in [0, 1]
    traj.x_t.append(final)
    traj.x0.append(final)
    traj.seconds = time.perf_counter() - t0
    return traj


def noised(engine, image: np.ndarray, t: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """q(x_t | x₀) for one data image (uint8 (H, W, C)): the model-space tensor and its uint8 view."""
    x = engine.forward_process(image[None], t, seed=seed)
    return x, to_uint8(engine.view_images(x))[0]


def noise_job(request):
    """(engine, image, t, seed) → (model-space x_t, its uint8 view, ᾱ_t): the forward tab's runner."""
    engine, image, t, seed = request
    x, shown = noised(engine, image, t, seed)
    return x, shown, engine.schedule.abar(t)


def load_data(engine, info):
    """The model's data (its test split when it has one) at the model's image size, and the
    PCA plane of its pixels for the data map."""
    from engines.data import load_dataset, training_source

    ds = load_dataset(training_source(info), spec=engine.spec)
    ds = ds.split("test") if len(ds.test_idx) else ds
    return ds, DataPCA(ds.images)


class DataPCA:
    """The first two principal axes of a set of uint8 images (N, H, W, C)."""

    def __init__(self, images: np.ndarray, max_images: int = 2000):
        x = images[:max_images].reshape(min(len(images), max_images), -1).astype(np.float32) / 255
        self.mean = x.mean(0)
        _, s, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.axes = vt[:2]
        self.coords = self.project(images[:max_images])

    def project(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float32) / 255
        return (x - self.mean) @ self.axes.T

    def paths(self, traj: "Trajectory") -> np.ndarray:
        """Where each sample's x̂₀ lies on the plane at every step: (steps + 1, N, 2)."""
        return np.stack([self.project(f) for f in traj.x0])


class TrajectoryCache:
    """The last few runs by request, so going back to earlier settings shows them at once."""

    def __init__(self, size: int = 8):
        self.size = size
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key, traj: Trajectory) -> None:
        self._items[key] = traj
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
