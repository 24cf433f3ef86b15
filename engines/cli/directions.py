"""`python main.py directions …`: unsupervised edit directions (GANSpace, SeFa) of a model, with
their effect on the images against random directions', as text or JSON, and a strip PNG (one row
per direction, −3σ … +3σ). See engines/latent/directions.py for the methods."""
from __future__ import annotations

import json
import sys

from engines.cli.args import SEED, number
from engines.cli.common import UsageError, _atomic, _ensure_parent, _load_data, _training_data


def add_parser(sub) -> None:
    d = sub.add_parser("directions", help="unsupervised edit directions (GANSpace, SeFa) and their effect")
    d.add_argument("--checkpoint", required=True)
    d.add_argument("--method", required=True, choices=("ganspace", "sefa"))
    d.add_argument("--n", type=number(int, 1, 4096), default=8, help="directions, the top K (default 8)")
    d.add_argument("--data", help="GANSpace on engines that encode exactly: the data set whose latents it "
                   "decomposes (default: the one the model was trained on)")
    d.add_argument("--out", help="strip.png: one row per direction, −3σ … +3σ around a prior sample")
    d.add_argument("--seed", type=SEED, default=0, help="the prior sample the strips start from")
    d.add_argument("--scale", type=number(int, 1, 16), default=1, help="nearest-neighbour upscaling of the PNG")
    d.add_argument("--json", action="store_true", help="print the directions and measures as JSON")
    d.add_argument("--device", default="auto")
    d.set_defaults(func=cmd_directions)


def _data_latents(loaded, engine, source):
    """The training split's latents of the model's data (encoded once, then from the latent cache)."""
    from engines.latent.cache import open_latents

    data = _load_data(source or _training_data(loaded.info), spec=engine.spec)
    ls = open_latents(engine, data)
    idx = ls.train_idx if len(ls.train_idx) else slice(None)
    return ls.latents[idx]


def cmd_directions(a) -> int:
    import os

    from engines import checkpoint as ckpt
    from engines.latent import directions as dirs

    if a.out and os.path.splitext(a.out)[1].lower() != ".png":
        raise UsageError("--out must end in .png (the strips)")
    loaded = ckpt.load(a.checkpoint, device=a.device, with_optimizer=False)
    engine = loaded.engine
    why = dirs.support(engine, a.method)
    if why:
        raise UsageError(why)
    top = dirs.max_directions(engine, a.method)
    if a.n > top:  # before any data is encoded
        raise UsageError(f"--n {a.n}: {dirs.TITLES[a.method]} on this {engine.name} model gives at most "
                         f"{top} directions")
    latents = _data_latents(loaded, engine, a.data) if dirs.uses_data(engine, a.method) else None
    try:
        found = dirs.compute(engine, a.method, a.n, latents=latents, seed=0)
    except dirs.DirectionsError as e:
        raise UsageError(str(e)) from None
    rep = dirs.report(engine, found, latents)
    if a.out:
        _write_strips(a, engine, found)
    if a.json:
        print(json.dumps(rep))
    else:
        _print_table(rep, found)
    return 0


def _print_table(rep: dict, found) -> None:
    from engines.latent.directions import RANDOM_DIRECTIONS

    print(f"{found.k} {rep['method']} directions of a {rep['engine']} model ({rep['source']}; "
          f"{found.seconds:.2f} s), steps of one standard deviation σ")
    print(f"{'#':>3}  {'σ':>7}  {'variance %' if rep['variance'] else 'eigenvalue':>10}  {'effect':>7}")
    for i in range(found.k):
        v = 100 * rep["variance_ratio"][i] if rep["variance"] else rep["eigenvalues"][i]
        print(f"{i + 1:>3}  {rep['sigma'][i]:7.3f}  {v:10.3g}  {rep['effect'][i]:7.4f}")
    print(f"random unit directions (mean of {RANDOM_DIRECTIONS}): effect {rep['random_effect']:.4f}; "
          f"orthonormal error {rep['orthonormal_error']:.1e}")


def _write_strips(a, engine, found) -> None:
    from PIL import Image

    from engines.data.dataset import tile
    from engines.latent import directions as dirs

    z = dirs.prior_latents(engine, 1, a.seed)[0]
    imgs = dirs.strips(engine, z, [s * u for s, u in zip(found.sigma, found.vectors)])
    k, s = imgs.shape[:2]
    grid = tile(imgs.reshape(k * s, *imgs.shape[2:]), s)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    if a.scale > 1:
        img = img.resize((img.width * a.scale, img.height * a.scale), Image.Resampling.NEAREST)
    _ensure_parent(a.out)
    _atomic(a.out, lambda f: img.save(f, format="PNG"))
    print(f"wrote {k} strips (−3σ … +3σ) to {a.out}", file=sys.stderr)
