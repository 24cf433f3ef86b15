"""What the Train panel runs in its workers — plain functions, no Qt.

`training_job` builds the engine (or takes a resumed one) and then yields from engines.train.train,
so the model is constructed and every step is taken on the worker's thread. `render_preview`
draws the fixed-seed samples or reconstructions shown while the model learns.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

import numpy as np

PREVIEW_SEED = 1234
PREVIEW_WIDTH = 300  # px: grids are laid out to fit this at 1:1 when the images allow


def preview_cols(side: int) -> int:
    """Columns of a preview grid: 8 for small images, down to 4 for 64 px ones."""
    return max(4, min(8, PREVIEW_WIDTH // (side + 1)))


def preview_count(side: int) -> int:
    return 4 * preview_cols(side)


@dataclass
class Started:
    """First thing a training job yields: the engine it trains (built on the worker thread)."""

    engine: object
    total_epochs: float | None


def training_job(make_engine, data, options, control, more_epochs: float | None = None):
    from engines.train import train

    engine = make_engine()
    if more_epochs is not None:  # resuming: train this many epochs beyond where the run stopped
        bs = min(int(getattr(engine.config, "batch_size", len(data.train_idx))), len(data.train_idx))
        steps_per_epoch = max(1, len(data.train_idx) // max(1, bs))
        options.epochs = engine.step / steps_per_epoch + more_epochs
    yield Started(engine, options.epochs)
    yield from train(engine, data, options, control)


def fixed_images(data, n: int | None = None) -> np.ndarray:
    """The same test images every refresh (so the reconstructions can be compared over time)."""
    n = n or preview_count(data.spec.width) // 2
    pool = data.test_idx if len(data.test_idx) >= n else data.train_idx
    idx = pool[np.linspace(0, len(pool) - 1, min(n, len(pool))).astype(int)]
    return data.images[idx]


def data_preview(data) -> np.ndarray:
    """A grid of real training images, spread over the training split."""
    from engines.data.dataset import tile

    side = data.spec.width
    n = min(preview_count(side), len(data.train_idx))
    idx = data.train_idx[np.linspace(0, len(data.train_idx) - 1, n).astype(int)]
    return tile(data.images[idx], preview_cols(side))


def render_preview(request) -> tuple[np.ndarray, str]:
    """(engine, mode, images) → (uint8 grid, caption). mode: 'samples' or 'reconstructions'."""
    from engines.data.dataset import tile, to_uint8

    engine, mode, images = request
    t0 = time.perf_counter()
    step = engine.step
    if mode == "reconstructions" and "encode" in engine.capabilities and images is not None:
        rec = to_uint8(engine.decode(engine.encode(images)))
        pairs = np.empty((2 * len(images), *images.shape[1:]), np.uint8)
        cols = preview_cols(images.shape[2])
        # Rows alternate: a row of originals, then their reconstructions.
        for r in range(0, len(images), cols):
            chunk = slice(r, r + cols)
            k = len(images[chunk])
            pairs[2 * r: 2 * r + k] = images[chunk]
            pairs[2 * r + k: 2 * r + 2 * k] = rec[chunk]
        grid = tile(pairs, cols)
        caption = f"Test images (odd rows) and reconstructions (even rows) at step {step:,}"
    elif "sample" in engine.capabilities:
        side = engine.spec.width
        # A model that draws pixel by pixel makes one row only: a full grid would take minutes.
        n = preview_cols(side) if "raster" in engine.capabilities else preview_count(side)
        grid = tile(to_uint8(engine.sample(n, seed=PREVIEW_SEED)), preview_cols(side))
        caption = f"Samples from fixed seeds at step {step:,}"
    else:
        return None, f"{engine.name} cannot draw samples or reconstructions"
    return grid, caption + f" ({1000 * (time.perf_counter() - t0):.0f} ms)"


# The first launch's Train settings: a VAE on the digits at 28×28 learns visibly for a minute or two
# on a laptop CPU (about 1,000 images/s on 2 cores: 60 epochs of 1,527 images ≈ 90 s), with
# samples that go from noise to digits — something to watch, where the digits' native 8×8 ended in
# a second.
FIRST_RUN = {"engine": "vae", "data": "digits", "size": 28, "epochs": 60}


def run_name(engine: str, data_name: str, size: int, when: float | None = None) -> str:
    """'vae-digits-28-1206-0931': engine, data, size and the start's month-day-hour-minute, so a
    run never takes a bundled model's name (vae-digits-28); unique_path numbers repeats (-2, -3, …)."""
    data = re.sub(r"[^A-Za-z0-9_-]+", "-", data_name).strip("-") or "data"
    stamp = time.strftime("%m%d-%H%M", time.localtime(when))
    return f"{engine}-{data}-{size}-{stamp}"


def unique_path(folder: str, name: str) -> str:
    name = re.sub(r"[\\/:*?\"<>|]+", "-", name).strip() or "model"
    if name.endswith(".safetensors"):
        name = name[: -len(".safetensors")]
    path = os.path.join(folder, name + ".safetensors")
    i = 2
    while os.path.exists(path):
        path = os.path.join(folder, f"{name}-{i}.safetensors")
        i += 1
    return path
