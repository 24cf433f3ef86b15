"""The seed plane (as in the StyleGAN visualizer): integer points (i, j) of a 2-D plane are
random seeds, each one prior sample; a point between them blends the four neighbouring seeds'
latents bilinearly, so dragging over a discrete grid of seeds changes the image smoothly.

The blend of independent N(0, I) draws with weights w has variance Σw² < 1 between grid points,
which would pull the image toward the mean face mid-cell; dividing the Gaussian part by √Σw²
keeps every blended latent a typical prior draw (engines with a `truncate` method mark their
Gaussian part by `config.latent_dim`; other engines are blended as they are).
"""
from __future__ import annotations

import math

import numpy as np

STRIDE = 1000  # seed of grid point (i, j) = i + STRIDE·j (both wrap at STRIDE)


def seed_at(i: int, j: int) -> int:
    return int(i) % STRIDE + STRIDE * (int(j) % STRIDE)


def seed_latents(engine, seeds) -> np.ndarray:
    """One prior draw per seed (the engine's own `prior_sample`, seeded), float32 (N, D)."""
    import torch

    out = []
    for s in seeds:
        g = torch.Generator(device=engine.device)
        g.manual_seed(int(s))
        with engine.lock:
            z = engine.prior_sample(1, g)
        out.append(z.detach().to("cpu").float().reshape(1, -1).numpy())
    return np.concatenate(out) if out else np.zeros((0, engine.latent_dim), np.float32)


def _gaussian_dims(engine) -> int:
    if "truncate" in engine.capabilities:
        return int(getattr(engine.config, "latent_dim", engine.latent_dim))
    return 0


def blend(engine, x: float, y: float, cache: dict | None = None) -> np.ndarray:
    """The latent at plane point (x, y): bilinear in the four surrounding seeds."""
    i0, j0 = math.floor(x), math.floor(y)
    fx, fy = x - i0, y - j0
    corners = [(i0, j0, (1 - fx) * (1 - fy)), (i0 + 1, j0, fx * (1 - fy)),
               (i0, j0 + 1, (1 - fx) * fy), (i0 + 1, j0 + 1, fx * fy)]
    cache = {} if cache is None else cache
    need = [seed_at(i, j) for i, j, _ in corners if seed_at(i, j) not in cache]
    for s, z in zip(need, seed_latents(engine, need)):
        cache[s] = z
    z = sum(w * cache[seed_at(i, j)] for i, j, w in corners)
    d = _gaussian_dims(engine)
    if d:
        norm = math.sqrt(sum(w * w for _, _, w in corners))
        z = z.copy()
        z[:d] /= max(norm, 1e-6)
    return np.asarray(z, np.float32)
