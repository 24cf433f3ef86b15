"""`sample --video` and `sample --complete` for models that draw pixel by pixel (capability
"raster": the PixelCNN): the raster-order generation as an animation, and completions of the top
half of test images, several side by side."""
from __future__ import annotations

import sys

import numpy as np

from engines.cli.common import UsageError, _ensure_parent, _load_data, _training_data


def _counter(what: str):
    tty = sys.stderr.isatty()

    def show(done, total):
        if tty:
            print(f"\r{what}: pixel {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return show


def completion_inputs(a, loaded, engine):
    """The first --complete test images of --data (default: the model's own data set), and their
    labels when a class-conditional model can use them (None otherwise)."""
    data = _load_data(a.data or _training_data(loaded.info), spec=engine.spec)
    test = data.split("test") if len(data.test_idx) else data
    if len(test.images) < a.complete:
        raise UsageError(f"{data.name} has {len(test.images)} test images, --complete asked for {a.complete}")
    labels = test.labels[: a.complete] if test.labels is not None and engine.config.num_classes else None
    if labels is not None and (labels.min() < 0 or labels.max() >= engine.config.num_classes):
        labels = None
    return test.images[: a.complete], labels


def run(a, loaded, engine, opts: dict) -> np.ndarray:
    """Draw (samples, or completions when --complete) — recording frames when --video — and
    return the uint8 (N, H, W, C) images for the PNG/npz; with --complete the rows are
    [the given top half, the completions…, the original]."""
    from engines.data.dataset import to_uint8
    from engines.export import raster

    if a.complete:
        x, labels = completion_inputs(a, loaded, engine)
        rows = a.rows if a.rows is not None else engine.spec.height // 2
        loop = engine.completion_loop(x, rows=rows, per_image=a.per_image, seed=a.seed, labels=labels, **opts)
        what = "completing"
    else:
        loop = engine.raster_loop(a.n, seed=a.seed, **opts)
        what = "sampling"
    cols = (a.per_image if a.complete else None) or a.cols or int(np.ceil(np.sqrt(len(loop.values))))
    if a.video:
        frames = raster.recorded(loop, engine.images_of, frames=a.frames, progress=_counter(what))
        _ensure_parent(a.video)
        raster.video(a.video, frames, cols, scale=a.scale if a.scale > 1 else 4, fps=a.fps)
        print(f"wrote the raster-order generation ({len(frames)} frames) to {a.video}", file=sys.stderr)
    else:
        loop.run(lambda s: _counter(what)(s.index + 1, len(loop)))
    imgs = to_uint8(engine.images_of(loop.values))
    if not a.complete:
        return imgs
    k = a.per_image
    given = raster.picture(loop, engine.images_of, None)  # bottom tinted: what the model was shown
    if imgs.shape[-1] == 1:
        imgs = np.repeat(imgs, 3, -1)
    rows_out = []
    x_u8 = to_uint8(engine.images_of(engine.values_of(_as_tensor(x, engine))))
    if x_u8.shape[-1] == 1:
        x_u8 = np.repeat(x_u8, 3, -1)
    for i in range(len(x)):
        rows_out += [given[i * k]] + list(imgs[i * k:(i + 1) * k]) + [x_u8[i]]
    a.cols = k + 2
    return np.stack(rows_out)


def _as_tensor(x, engine):
    from engines.base import as_images

    return as_images(x, engine.device)
