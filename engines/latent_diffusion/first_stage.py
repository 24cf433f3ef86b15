"""The first stage of latent diffusion: images ↔ a spatial latent grid.

Built in: a small convolutional autoencoder with a light KL regulariser (Rombach et al.'s "KL-reg"
first stage), downsampling by 4 — 28×28 → 7×7×c, 64×64 → 16×16×c. Its loss per image is the
Bernoulli reconstruction term (binary cross-entropy, nats) plus `kl_weight`·KL(q(z|x) ‖ N(0, I)),
so the latent stays near a Gaussian scale without losing detail.

Reused: any engine with an exact encoder and a decoder (an AE, a VAE, a VQ-VAE checkpoint), its
latent taken as it is — a vector latent of size d becomes a d×1×1 grid.
"""
from __future__ import annotations

import json
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from engines.config import ConfigError

DOWNSAMPLE = 4


class Grid(NamedTuple):
    """The shape of the diffused tensors, as the U-Net reads an image spec."""
    channels: int
    height: int
    width: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c), c)


class _Res(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                  _norm(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class KLAutoencoder(nn.Module):
    """image (N, C, H, W) → (μ, log σ²) each (N, c, H/4, W/4); latent → image logits."""

    def __init__(self, image_channels: int, latent_channels: int, width: int):
        super().__init__()
        w1, w2 = width, 2 * width
        # Residual blocks at the two lower resolutions only: full-resolution ones cost most on a CPU.
        self.encoder = nn.Sequential(
            nn.Conv2d(image_channels, w1, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), _Res(w2),
            nn.Conv2d(w2, w2, 4, stride=2, padding=1), _Res(w2),
            _norm(w2), nn.SiLU(), nn.Conv2d(w2, 2 * latent_channels, 3, padding=1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, w2, 3, padding=1), _Res(w2),
            nn.ConvTranspose2d(w2, w2, 4, stride=2, padding=1), _Res(w2),
            nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1),
            _norm(w1), nn.SiLU(), nn.Conv2d(w1, image_channels, 3, padding=1))

    def posterior(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-20.0, 10.0)

    def loss(self, x, kl_weight: float, generator: torch.Generator):
        """(loss, terms) per image in nats: reconstruction (Bernoulli) + kl_weight·KL."""
        mu, logvar = self.posterior(x)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=generator, device=mu.device)
        rec = F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").flatten(1).sum(1).mean()
        kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).flatten(1).sum(1).mean()
        loss = rec + kl_weight * kl
        return loss, {"ae_loss": loss, "ae_rec": rec, "ae_kl": kl}


class BuiltIn:
    """The built-in first stage, over the engine's `first` net (a KLAutoencoder)."""

    trainable = True

    def __init__(self, net: KLAutoencoder):
        self.net = net

    def encode(self, x):
        return self.net.posterior(x)[0]

    def decode(self, z):
        return torch.sigmoid(self.net.decoder(z))


class Reused:
    """A first stage taken from another engine's checkpoint (its weights live in this model's
    nets under `first`, so one file holds both stages)."""

    trainable = False

    def __init__(self, engine, grid: Grid):
        self.engine, self.grid = engine, grid

    def encode(self, x):
        return self.engine._encode(x).reshape(len(x), *self.grid.shape)

    def decode(self, z):
        return self.engine._decode(z.reshape(len(z), *self.engine.latent_shape))


def grid_of(latent_shape) -> Grid:
    shape = tuple(int(s) for s in latent_shape)
    if len(shape) == 1:
        return Grid(shape[0], 1, 1)
    if len(shape) == 3:
        return Grid(*shape)
    raise ConfigError(f"a first stage's latent must be a vector or a C×H×W grid, not {shape}")


def describe_checkpoint(path: str, spec) -> str:
    """The `first_stage` setting (JSON: engine name and config) for the checkpoint at `path`,
    checked: it must exist, encode exactly, decode, and share the model's image size. Any problem
    is one ConfigError line."""
    import os

    from engines import checkpoint as ckpt
    from engines import engine_class

    if not os.path.isfile(path):
        raise ConfigError(f"autoencoder: no checkpoint at {path}")
    try:
        info = ckpt.read_info(path)
    except ckpt.CheckpointError as e:
        raise ConfigError(f"autoencoder: {e}") from None
    caps = engine_class(info.engine).capabilities
    if not {"encode_exact", "decode"} <= caps:
        raise ConfigError(f"autoencoder: {path} is a {info.engine}, which has no exact encoder and decoder "
                          "(use an ae, vae or vqvae checkpoint)")
    if info.spec != spec:
        raise ConfigError(f"autoencoder: {path} is for {info.spec} images, this model for {spec}")
    return json.dumps({"engine": info.engine, "config": info.config, "path": path}, sort_keys=True)


def parse_first_stage(first_stage: str):
    """(engine class, config) of a `first_stage` description (JSON: {"engine", "config"[, "path"]}),
    checked as strictly as a checkpoint's own config — it is read from a file: an object, a known
    engine with an exact encoder and a decoder, a config whose every value has its field's JSON type
    and range. Any problem is one ConfigError line."""
    from engines import UnknownEngine, engine_class
    from engines.checkpoint import meta as meta_mod

    try:
        d = json.loads(first_stage)
    except (ValueError, RecursionError):
        raise ConfigError("first_stage is not valid JSON") from None
    if not (isinstance(d, dict) and isinstance(d.get("engine"), str) and isinstance(d.get("config"), dict)):
        raise ConfigError("first_stage must be a JSON object with an engine name and its config")
    try:
        cls = engine_class(d["engine"])
    except UnknownEngine:
        raise ConfigError(f"first_stage: unknown engine '{d['engine'][:40]}'") from None
    if not {"encode_exact", "decode"} <= cls.capabilities:
        raise ConfigError(f"first_stage: a {cls.name} has no exact encoder and decoder (an ae, vae or vqvae is)")
    try:
        cfg = meta_mod.check_config("first_stage", cls.Config, d["config"])
    except ValueError as e:  # a CheckpointError naming the field
        raise ConfigError(str(e)) from None
    return cls, cfg


def build_reused(first_stage: str, spec, device):
    """(engine, grid) of the first stage named by `first_stage` (JSON), weights untrained: the
    caller loads them (from the reused checkpoint, or from this model's own file). Under torch's
    meta device (the checkpoint loader's shape probe) only its networks are built, with no memory:
    an engine would move them to `device`."""
    import threading

    cls, cfg = parse_first_stage(first_stage)
    if torch.get_default_device().type == "meta":
        eng = cls.__new__(cls)  # what Engine.__init__ sets before build()
        eng.spec, eng.config, eng.device, eng.seed = spec, cfg, device, 0
        eng.lock, eng.step = threading.RLock(), 0
        eng.check_spec(spec)
        eng.nets = nn.ModuleDict(eng.build())
    else:
        eng = cls(spec, cfg, device=device)
    for p in eng.nets.parameters():
        p.requires_grad_(False)
    return eng, grid_of(eng.latent_shape)


def check_divisible(spec) -> None:
    if spec.height % DOWNSAMPLE or spec.width % DOWNSAMPLE:
        raise ValueError(f"latent diffusion's autoencoder downsamples by {DOWNSAMPLE}: the image sides "
                         f"must be multiples of {DOWNSAMPLE}, got {spec.height}×{spec.width}")


def unit_scale(z: torch.Tensor) -> float:
    """1 / std of latents: the factor that brings them to unit variance (Rombach et al.)."""
    std = float(z.float().std())
    return 1.0 / std if math.isfinite(std) and std > 1e-8 else 1.0
