"""The Pixels panel's computations, run in workers (no Qt here).

A run drives the engine's raster loop (sampling, or completing the top of data images) through
`engines.export.raster.recording`, which keeps evenly spaced pictures of what is drawn so far;
it yields after every pixel — where the panel's worker reports progress and where a Cancel or a
newer request stops it — and returns a `Run` the timeline scrubs without touching the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

FRAMES = 200  # pictures kept per run


@dataclass(frozen=True)
class RunRequest:
    mode: str = "sample"  # "sample" | "complete"
    n: int = 9  # samples, or data images to complete
    per_image: int = 3  # completions of each image
    temperature: float = 1.0
    label: int = -1  # −1: classes in turn (conditional models)
    seed: int = 0
    first_image: int = 0  # completion: the first data image


@dataclass
class Run:
    request: RunRequest
    frames: list[np.ndarray] = field(default_factory=list)  # (N, H, W, 3) uint8 each
    cols: int = 3
    originals: np.ndarray | None = None  # completion: the full data images (N, H, W, 3)
    seconds: float = 0.0
    pixels: int = 0


def load_data(engine, info):
    """The model's data at its image size (its test split when it has one)."""
    from engines.data import load_dataset, training_source

    ds = load_dataset(training_source(info), spec=engine.spec)
    return ds.split("test") if len(ds.test_idx) else ds


def run(engine, req: RunRequest, images: np.ndarray | None = None, labels: np.ndarray | None = None):
    """Generator: (done, total) after every pixel; returns the `Run`. A class-conditional model
    completes each image as its own class (`labels`) unless a class is chosen."""
    from engines.data.dataset import to_uint8
    from engines.export import raster

    label = None if req.label < 0 else req.label
    t0 = time.perf_counter()
    if req.mode == "complete":
        if images is None or not len(images):
            raise ValueError("no data images to complete")
        usable = (labels is not None and engine.config.num_classes > 0 and len(labels) == len(images)
                  and 0 <= labels.min() and labels.max() < engine.config.num_classes)
        loop = engine.completion_loop(images, per_image=req.per_image, seed=req.seed, temperature=req.temperature,
                                      label=label, labels=labels if usable else None)
        cols = req.per_image
        x = to_uint8(engine.images_of(engine.values_of(engine.images_of(loop.values[:: req.per_image]))))
        originals = np.repeat(x, 3, -1) if x.shape[-1] == 1 else x
    else:
        loop = engine.raster_loop(req.n, seed=req.seed, temperature=req.temperature, label=label)
        cols, originals = int(np.ceil(np.sqrt(req.n))), None
    frames = yield from raster.recording(loop, engine.images_of, FRAMES)
    return Run(req, frames, cols, originals, time.perf_counter() - t0, len(loop))


def completion_rows(run: Run, frame: np.ndarray) -> np.ndarray:
    """Completion frames laid out one data image per row: its completions, then the original."""
    k = run.request.per_image
    cells = []
    for i in range(len(frame) // k):
        cells += list(frame[i * k:(i + 1) * k]) + [run.originals[i]]
    return np.stack(cells)
