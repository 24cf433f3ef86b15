"""Interpolation between latents: lerp, slerp, norm-interpolating slerp, paths and easing.

Why more than lerp: under a Gaussian prior N(0, I) in D dimensions almost all mass lies near the
sphere of radius √D, and the straight line between two such latents dips towards the origin
(its midpoint has norm ≈ √(D/2) for independent endpoints), where decoders see latents unlike any
they were trained on. Spherical interpolation keeps the norm when the endpoints share it; the
norm-interpolating variant (`nslerp`) also handles endpoints of different norms by moving the
direction along the great circle and the norm linearly.

All functions take latents flattened to (..., D), as numpy arrays or torch tensors, and return the
same kind (numpy keeps a float dtype, torch keeps dtype and device); the math runs in float64.
`flatten`/`unflatten` convert to and from an engine's `latent_shape`.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

# Below this sin(angle) two directions count as parallel and slerp falls back to lerp
# (the slerp weights sin(tΩ)/sin Ω become 0/0 there).
PARALLEL_EPS = 1e-6

METHODS = ("lerp", "slerp", "nslerp")


# ---- array plumbing ------------------------------------------------------------------------------
def _to64(x) -> tuple[np.ndarray, Callable]:
    """float64 numpy view of `x` plus a function that converts a result back to x's kind."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(x, torch.Tensor):
        dtype = x.dtype if x.is_floating_point() else torch.float32
        device = x.device
        arr = x.detach().to("cpu", torch.float64).numpy()
        return arr, lambda r: torch.from_numpy(np.ascontiguousarray(r)).to(device=device, dtype=dtype)
    arr = np.asarray(x)
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    return arr.astype(np.float64, copy=False), lambda r: np.asarray(r, dtype=dtype)


def flatten(z, latent_shape) -> np.ndarray:
    """(N, *latent_shape) or one latent of `latent_shape` → (N, D) (a single latent gives N = 1)."""
    shape = tuple(latent_shape)
    d = math.prod(shape)
    zs = tuple(z.shape)
    if zs == shape:
        return z.reshape(1, d)
    if zs[1:] == shape or (len(zs) == 2 and zs[1] == d):
        return z.reshape(zs[0], d)
    if len(zs) == 1 and zs[0] == d:
        return z.reshape(1, d)
    raise ValueError(f"latents of shape {zs} do not match latent shape {shape}")


def unflatten(z, latent_shape):
    """(N, D) → (N, *latent_shape); a single (D,) → latent_shape."""
    shape = tuple(latent_shape)
    if len(z.shape) == 1:
        return z.reshape(shape)
    return z.reshape(z.shape[0], *shape)


def _times(t) -> tuple[np.ndarray, bool]:
    arr = np.asarray(t, dtype=np.float64)
    if arr.ndim > 1:
        raise ValueError("t must be a number or a 1-D sequence")
    return arr, arr.ndim == 1


# ---- easing ----------------------------------------------------------------------------------------
def linear(t):
    return np.asarray(t, dtype=np.float64)


def smoothstep(t):
    """3t² − 2t³: zero velocity at both ends, so an animation eases in and out of each point."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def ease_in_out_cubic(t):
    """Cubic ease-in-out: slower start and stop than smoothstep, faster middle."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    return np.where(t < 0.5, 4.0 * t ** 3, 1.0 - (-2.0 * t + 2.0) ** 3 / 2.0)


EASINGS: dict[str, Callable] = {"linear": linear, "smoothstep": smoothstep, "ease_in_out_cubic": ease_in_out_cubic}


def easing(name: str | Callable) -> Callable:
    if callable(name):
        return name
    try:
        return EASINGS[name]
    except KeyError:
        raise ValueError(f"unknown easing '{name}' (known: {', '.join(EASINGS)})") from None


# ---- two-point interpolation --------------------------------------------------------------------------
def _lerp64(a, b, t, batched):
    if batched:
        t = t.reshape((-1,) + (1,) * a.ndim)
    return a + t * (b - a)


def _slerp_weights(a, b, t, batched):
    """Weights (wa, wb) of slerp between the directions of a and b (..., D); lerp weights where
    either is zero or they are (anti)parallel, where the arc is undefined."""
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    zero = (na < 1e-12) | (nb < 1e-12)
    cos = np.clip((a * b).sum(-1, keepdims=True) / np.where(zero, 1.0, na * nb), -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    if batched:
        t = t.reshape((-1,) + (1,) * a.ndim)
    fallback = zero | (sin < PARALLEL_EPS)
    safe = np.where(fallback, 1.0, sin)
    wa = np.where(fallback, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    wb = np.where(fallback, t, np.sin(t * omega) / safe)
    return wa, wb


def lerp(a, b, t):
    """(1 − t)·a + t·b. a, b: (..., D); t: a number → (..., D), or (T,) → (T, ..., D)."""
    a64, back = _to64(a)
    b64, _ = _to64(b)
    t64, batched = _times(t)
    return back(_lerp64(a64, b64, t64, batched))


def slerp(a, b, t):
    """Spherical interpolation on the arc from a to b:
    (sin((1−t)Ω)·a + sin(tΩ)·b) / sin Ω, Ω the angle between a and b.

    Keeps the norm for all t when |a| = |b|. Falls back to lerp for (anti)parallel endpoints,
    where the arc is undefined. Shapes as in `lerp`."""
    a64, back = _to64(a)
    b64, _ = _to64(b)
    t64, batched = _times(t)
    wa, wb = _slerp_weights(a64, b64, t64, batched)
    return back(wa * a64 + wb * b64)


def nslerp(a, b, t):
    """Norm-interpolating slerp: the direction moves along the great circle (slerp of the unit
    vectors) and the norm linearly from |a| to |b|. Equals `slerp` when |a| = |b|; unlike slerp
    it passes through no norm outside [min, max] of the endpoint norms. Shapes as in `lerp`."""
    a64, back = _to64(a)
    b64, _ = _to64(b)
    t64, batched = _times(t)
    na = np.linalg.norm(a64, axis=-1, keepdims=True)
    nb = np.linalg.norm(b64, axis=-1, keepdims=True)
    if np.any(na < 1e-12) or np.any(nb < 1e-12):
        return back(_lerp64(a64, b64, t64, batched))  # a zero endpoint has no direction
    ua, ub = a64 / na, b64 / nb
    wa, wb = _slerp_weights(ua, ub, t64, batched)
    u = wa * ua + wb * ub
    u = u / np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-300)
    norm = _lerp64(na, nb, t64, batched)
    return back(u * norm)


_FUNCS = {"lerp": lerp, "slerp": slerp, "nslerp": nslerp}


def interpolator(method: str) -> Callable:
    try:
        return _FUNCS[method]
    except KeyError:
        raise ValueError(f"unknown interpolation '{method}' (known: {', '.join(METHODS)})") from None


# ---- paths through several points -----------------------------------------------------------------------
def path(points, steps: int, method: str = "slerp", ease: str | Callable = "linear"):
    """Latents along the piecewise path through `points` (P ≥ 2, shape (P, D)), `steps` per
    segment: (steps·(P−1) + 1, D). Point i sits exactly at index i·steps. `ease` reshapes time
    within each segment (e.g. "smoothstep" lingers near each picked point)."""
    p64, back = _to64(points)
    if p64.ndim != 2 or len(p64) < 2:
        raise ValueError(f"a path needs at least two points of shape (P, D), got {p64.shape}")
    steps = int(steps)
    if steps < 1:
        raise ValueError("steps per segment must be at least 1")
    f = interpolator(method)
    t = easing(ease)(np.arange(steps) / steps)
    segs = [f(p64[i], p64[i + 1], t) for i in range(len(p64) - 1)]
    out = np.concatenate(segs + [p64[-1:]], axis=0)
    out[::steps] = p64  # the picked points themselves, bit for bit
    return back(out)


def along(points, t, method: str = "slerp"):
    """Evaluate the piecewise path through `points` (P, D) at global times t ∈ [0, 1] (each segment
    lasts 1/(P−1)): (T, D). For animation: `along(points, easing("smoothstep")(np.linspace(0, 1, n)))`
    eases the whole journey rather than each segment."""
    p64, back = _to64(points)
    if p64.ndim != 2 or len(p64) < 2:
        raise ValueError(f"a path needs at least two points of shape (P, D), got {p64.shape}")
    t64 = np.clip(np.atleast_1d(np.asarray(t, dtype=np.float64)), 0.0, 1.0)
    n_seg = len(p64) - 1
    pos = t64 * n_seg
    seg = np.minimum(pos.astype(np.int64), n_seg - 1)
    local = pos - seg
    f = interpolator(method)
    out = np.stack([f(p64[s], p64[s + 1], float(u)) for s, u in zip(seg, local)]) if len(t64) else np.zeros((0, p64.shape[1]))
    return back(out)


def knot_indices(n_points: int, steps: int) -> np.ndarray:
    """Where the picked points sit in `path(points, steps)`'s output."""
    return np.arange(n_points) * int(steps)
