"""What the Directions tab computes, as plain functions run in workers (no Qt here): GANSpace or
SeFa directions with their effect against random directions (`find_directions`), and one strip
−3σ … +3σ per direction around the base latent (`render_direction_strips`). The math is
`engines.latent.directions`'."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.latent import directions as dirs


@dataclass(frozen=True, eq=False)
class FindRequest:
    engine: object
    method: str  # "ganspace" | "sefa"
    k: int
    latents: np.ndarray | None  # the encoded data's training latents (engines that encode exactly)
    model_id: str


def find_directions(req: FindRequest) -> list:
    """The top-k directions as attribute vectors Δ = σ·u (meta: what they are, their effect, the
    random directions' effect)."""
    e = req.engine
    found = dirs.compute(e, req.method, req.k, latents=req.latents)
    effect = dirs.effects(e, found.vectors, found.sigma)
    rnd = dirs.random_effect(e, dirs.reference_latents(e, req.method, req.latents))
    vectors = found.to_vectors(req.model_id, e.latent_shape, effect=effect)
    for v in vectors:
        v.meta["random_effect"] = rnd
    return vectors


@dataclass(frozen=True, eq=False)
class StripsRequest:
    engine: object
    z: np.ndarray  # the base latent (D,)
    vectors: tuple  # AttributeVectors Δ = σ·u


def render_direction_strips(req: StripsRequest) -> np.ndarray:
    """uint8 (K, 7, H, W, C): z + s·Δ for s = −3 … 3 (standard deviations) per direction."""
    return dirs.strips(req.engine, req.z, [v.vector for v in req.vectors])
