"""`python main.py sample …`: draw samples from a model into a PNG grid or an .npz."""
from __future__ import annotations

import math
import os
import sys

from engines.cli.args import SAMPLE_MAX, SEED, number
from engines.cli.common import UsageError, _atomic, _ensure_parent, _sampling_options


def add_parser(sub) -> None:
    s = sub.add_parser("sample", help="draw samples from a model")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=number(int, 1, SAMPLE_MAX), default=64, help=f"samples, 1 to {SAMPLE_MAX}")
    s.add_argument("--seed", type=SEED, default=0)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="sampling option, e.g. temperature=0.8")
    s.add_argument("--out", required=True, help=".png (grid) or .npz (uint8 'images')")
    s.add_argument("--cols", type=number(int, 1, SAMPLE_MAX), help="grid columns (default: square)")
    s.add_argument("--scale", type=number(int, 1, 64), default=1, help="nearest-neighbour upscaling of the PNG")
    s.add_argument("--video", help="pixel-by-pixel models: also write the raster-order generation as .mp4/.gif/.png")
    s.add_argument("--frames", type=number(int, 2, 10_000), default=120, help="--video: frames recorded (default 120)")
    s.add_argument("--fps", type=number(float, 1, 120), default=24.0, help="--video: frames per second")
    s.add_argument("--complete", type=number(int, 1, SAMPLE_MAX), metavar="N",
                   help="pixel-by-pixel models: keep the top of N test images and draw the rest")
    s.add_argument("--per-image", type=number(int, 1, 64), default=4, help="--complete: completions per image")
    s.add_argument("--rows", type=number(int, 0, 4096), help="--complete: rows kept (default: the top half)")
    s.add_argument("--data", help="--complete: data set of the images (default: the model's own)")
    s.add_argument("--device", default="auto")
    s.set_defaults(func=cmd_sample)


def cmd_sample(a) -> int:
    import numpy as np

    from engines import checkpoint as ckpt
    from engines import config as cfgmod
    from engines.data.dataset import tile, to_uint8

    if a.n <= 0:
        raise UsageError("--n must be positive")
    ext = os.path.splitext(a.out)[1].lower()
    if ext not in (".png", ".npz"):
        raise UsageError("--out must end in .png (a grid) or .npz (key 'images')")
    loaded = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False)
    engine = loaded.engine
    if "sample" not in engine.capabilities:
        raise UsageError(f"{engine.name} models cannot sample")
    if (a.video or a.complete) and "raster" not in engine.capabilities:
        raise UsageError(f"--video and --complete are for models that draw pixel by pixel (pixelcnn), not {engine.name}")
    if a.video:
        from engines.export.writers import format_of

        format_of(a.video)
    from engines import bounds

    bounds.check_images(a.complete * a.per_image if a.complete else a.n, engine.spec, "sampling")
    opts = _sampling_options(engine, cfgmod.parse_set_args(a.set))
    if "raster" in engine.capabilities:
        from engines.cli import raster

        imgs = raster.run(a, loaded, engine, opts)
    elif "trajectory" in engine.capabilities:  # step-wise: a step counter on a terminal
        loop = engine.sample_loop(a.n, seed=a.seed, **opts)
        tty = sys.stderr.isatty()
        for rec in loop:
            if tty:
                print(f"\rsampling: step {rec.index + 1}/{len(loop)}", end="", file=sys.stderr, flush=True)
        if tty:
            print(file=sys.stderr)
        imgs = to_uint8(loop.result)
    else:
        imgs = to_uint8(engine.sample(a.n, seed=a.seed, **opts))
    _ensure_parent(a.out)
    if ext == ".npz":
        arr = imgs[..., 0] if imgs.shape[-1] == 1 else imgs
        _atomic(a.out, lambda f: np.savez(f, images=arr))
    else:
        from PIL import Image

        grid = tile(imgs, a.cols or int(math.ceil(math.sqrt(a.n))))
        img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
        if a.scale > 1:
            img = img.resize((img.width * a.scale, img.height * a.scale), Image.Resampling.NEAREST)
        _atomic(a.out, lambda f: img.save(f, format="PNG"))
    print(f"wrote {len(imgs)} {'images' if a.complete else 'samples'} to {a.out}", file=sys.stderr)
    return 0
