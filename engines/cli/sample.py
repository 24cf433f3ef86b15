"""`python main.py sample …`: draw samples from a model into a PNG grid or an .npz."""
from __future__ import annotations

import math
import os
import sys

from engines.cli.common import UsageError, _atomic, _ensure_parent, _sampling_options


def add_parser(sub) -> None:
    s = sub.add_parser("sample", help="draw samples from a model")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="sampling option, e.g. temperature=0.8")
    s.add_argument("--out", required=True, help=".png (grid) or .npz (uint8 'images')")
    s.add_argument("--cols", type=int, help="grid columns (default: square)")
    s.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscaling of the PNG")
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
    engine = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False).engine
    if "sample" not in engine.capabilities:
        raise UsageError(f"{engine.name} models cannot sample")
    opts = _sampling_options(engine, cfgmod.parse_set_args(a.set))
    if "trajectory" in engine.capabilities:  # step-wise: a step counter on a terminal
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
    print(f"wrote {a.n} samples to {a.out}", file=sys.stderr)
    return 0
