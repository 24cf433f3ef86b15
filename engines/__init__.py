"""Latent Explorer's compute side: model families, data, training, checkpoints. No Qt here."""
from __future__ import annotations

import importlib

from engines.spec import ImageSpec

# name -> "module:Class"; modules load on first use so `import engines` stays cheap.
_REGISTRY = {
    "pca": "engines.autoencoders.pca:PCAEngine",
    "ae": "engines.autoencoders.ae:AEEngine",
    "vae": "engines.autoencoders.vae:VAEEngine",
    "gan": "engines.gan.model:GANEngine",
    "diffusion": "engines.diffusion.model:DiffusionEngine",
    "latent-diffusion": "engines.latent_diffusion.model:LatentDiffusionEngine",
    "vqvae": "engines.vq.model:VQVAEEngine",
    "flow": "engines.flow.engine:FlowEngine",
    "pixelcnn": "engines.pixelcnn.model:PixelCNNEngine",
}


class UnknownEngine(ValueError):
    pass


def names() -> list[str]:
    return list(_REGISTRY)


def engine_class(name: str):
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UnknownEngine(f"unknown engine '{name}' (known: {', '.join(_REGISTRY)})") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def register(name: str, target: str) -> None:
    _REGISTRY[name] = target


def create(name: str, spec: ImageSpec, device="auto", seed: int = 0, **config):
    """`engines.create("vae", spec, latent_dim=16)` — config fields as keyword arguments."""
    from engines import config as cfgmod

    cls = engine_class(name)
    return cls(spec, cfgmod.build(cls.Config, config), device=device, seed=seed)


__all__ = ["ImageSpec", "create", "engine_class", "names", "register", "UnknownEngine"]
