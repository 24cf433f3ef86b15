"""Latent diffusion (Rombach et al. 2022): diffusion over an autoencoder's spatial latents.

Two stages, one training run, one checkpoint. Stage 1 trains the first stage — a convolutional
autoencoder with a light KL term that downsamples by 4 (28 px → 7×7×c) — for `ae_epochs` epochs;
or `autoencoder=PATH` reuses an AE/VAE/VQ-VAE checkpoint (its weights are copied into this
model's file) and stage 1 is skipped. Stage 2 measures the latents' standard deviation on its
first batch (the scale factor, stored with the weights: latents × scale have unit variance) and
trains the pixel diffusion engine's U-Net, schedule and samplers on them — everything of
`DiffusionEngine` runs unchanged, over `to_model` (encode × scale) and `view` (decode ÷ scale).

Every step reports `stage` (1 or 2) with that stage's losses (`ae_loss`, `ae_rec`, `ae_kl`, then
`loss`). The explorer's latent of an image is x_T in latent space: encode = first-stage encode +
DDIM inversion, decode = DDIM from x_T + first-stage decode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from engines.base import Batch, Engine, as_images
from engines.config import LR_MAX, LR_MIN, WEIGHT_MAX, WIDTH_MAX, ConfigError, option
from engines.diffusion.model import DiffusionConfig, DiffusionEngine
from engines.latent_diffusion import first_stage as fs
from engines.device import adam


@dataclass
class LatentDiffusionConfig(DiffusionConfig):
    width: int = option(64, "channels of the U-Net's first level (later levels 2×)", minimum=8, maximum=WIDTH_MAX)
    blocks: int = option(2, "residual blocks per U-Net level", minimum=1, maximum=4)
    target: str = option("v", "what the network predicts: the noise ε, the clean latent x₀, or v = √ᾱ ε − √(1−ᾱ) x₀ (ε blows up at the noisiest steps without clipping)", choices=("eps", "x0", "v"))
    clip: bool = option(False, "clip the predicted x₀ to [−1, 1] while sampling (off: latents are unbounded)")
    latent_channels: int = option(4, "channels c of the built-in autoencoder's latent grid (H/4 × W/4 × c)", minimum=1, maximum=64)
    ae_width: int = option(32, "channels of the built-in autoencoder's first level (2× after)", minimum=4, maximum=WIDTH_MAX)
    ae_epochs: float = option(10.0, "epochs of stage 1 (the autoencoder) before stage 2 (the diffusion) starts", minimum=0.0, maximum=1e6)
    ae_lr: float = option(1e-3, "Adam learning rate of stage 1", minimum=LR_MIN, maximum=LR_MAX)
    kl_weight: float = option(1e-3, "weight of the first stage's KL term (light: the latent keeps detail)", minimum=0.0, maximum=WEIGHT_MAX)
    autoencoder: str = option("", "reuse this AE / VAE / VQ-VAE checkpoint as the first stage (skips stage 1)")
    first_stage: str = option("", "filled in from `autoencoder` (the reused engine and its config); leave empty")


class _Stats(nn.Module):
    """Numbers saved with the weights: the latents' scale factor (0 until stage 2 measures it)
    and the steps stage 1 has taken."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.zeros(()))
        self.register_buffer("ae_steps", torch.zeros((), dtype=torch.long))


class LatentDiffusionEngine(DiffusionEngine):
    name = "latent-diffusion"
    Config = LatentDiffusionConfig
    capabilities = frozenset({"encode", "encode_approx", "decode", "sample", "trajectory"})
    # Train panel: plotted apart from the two stages' losses, on a linear scale.
    health_terms = ("stage", "scale")
    health_caption = ("Stage 1 trains the autoencoder (ae_* curves above), stage 2 the diffusion over its latents "
                      "(loss); scale: the latents' scale factor 1/std, measured when stage 2 starts")

    def check_spec(self, spec):
        if not (self.config.autoencoder or self.config.first_stage):
            fs.check_divisible(spec)

    @classmethod
    def saved_config_problem(cls, config) -> str | None:
        """A saved model describes a reused first stage in `first_stage` (its weights are in the
        file): `autoencoder` alone would make opening it read another file."""
        if config.first_stage:
            try:
                fs.parse_first_stage(config.first_stage)
            except ConfigError as e:
                return str(e)
        elif config.autoencoder:
            return "autoencoder is set but first_stage is empty (a saved model describes its first stage)"
        return None

    def after_load(self) -> None:
        stats = self.nets["stats"]
        if not float(stats.scale) >= 0:  # NaN/Inf are refused before, with the tensor's name
            raise ValueError(f"the latents' scale factor is {float(stats.scale):.3g}; it is 0 (not measured yet) or positive")
        if int(stats.ae_steps) < 0:
            raise ValueError(f"stage 1's step count is {int(stats.ae_steps)}")
        super().after_load()

    # ---- the two stages' networks ---------------------------------------------------------------
    def build(self):
        c = self.config
        source = None
        if c.autoencoder and not c.first_stage:  # a new model reusing a checkpoint
            c.first_stage = fs.describe_checkpoint(c.autoencoder, self.spec)
            source = c.autoencoder
        if c.first_stage:
            eng, self._grid = fs.build_reused(c.first_stage, self.spec, self.device)
            if source is not None:
                from engines import checkpoint as ckpt

                eng.nets.load_state_dict(ckpt.load(source, device=self.device, with_optimizer=False).engine.nets.state_dict())
            self.first, first_net = fs.Reused(eng, self._grid), eng.nets
        else:
            self._grid = fs.Grid(c.latent_channels, self.spec.height // fs.DOWNSAMPLE, self.spec.width // fs.DOWNSAMPLE)
            first_net = fs.KLAutoencoder(self.spec.channels, c.latent_channels, c.ae_width)
            self.first = fs.BuiltIn(first_net)
        nets = super().build()
        nets["first"] = first_net
        nets["stats"] = _Stats()
        return nets

    def make_optimizers(self):
        opts = {"main": adam(self.nets["unet"].parameters(), lr=self.config.lr)}
        if self.first.trainable:
            opts["ae"] = adam(self.nets["first"].parameters(), lr=self.config.ae_lr)
        return opts

    def n_parameters(self) -> int:
        return sum(p.numel() for k in ("unet", "first") for p in self.nets[k].parameters())

    @property
    def latent_shape(self):
        return self._grid.shape

    @property
    def unet_spec(self):
        return self._grid

    # ---- the diffused space: scaled first-stage latents -----------------------------------------
    @property
    def scale(self) -> float:
        """The scale factor (1 / std of the latents), 1 before stage 2 has measured it."""
        s = float(self.nets["stats"].scale)
        return s if s > 0 else 1.0

    def to_model(self, x):
        with torch.no_grad():
            return self.first.encode(x) * self.scale

    def view(self, x):
        return self.first.decode(x / self.scale).clamp_(0, 1)

    def reconstruct(self, x) -> torch.Tensor:
        """The first stage alone: decode(encode(x)) for images in [0, 1]."""
        return self._infer(lambda c: self.first.decode(self.first.encode(c)).clamp_(0, 1), as_images(x, self.device))

    # ---- training: stage 1, then stage 2 --------------------------------------------------------
    def stage1_steps(self) -> int:
        """Steps of stage 1: `ae_epochs` × the trainer's steps per epoch (× 1 outside a trainer);
        0 when the first stage is reused."""
        if not self.first.trainable:
            return 0
        return int(math.ceil(self.config.ae_epochs * (self.epoch_steps or 1)))

    @property
    def stage(self) -> int:
        """1 while the autoencoder trains, 2 once the diffusion does."""
        return 1 if int(self.nets["stats"].ae_steps) < self.stage1_steps() else 2

    def ema_age(self) -> int:
        return self.step - int(self.nets["stats"].ae_steps)

    def train_step(self, batch):
        if not isinstance(batch, Batch):
            batch = Batch(as_images(batch, self.device))
        if self.stage == 1:
            return self._autoencoder_step(batch)
        stats = self.nets["stats"]
        if float(stats.scale) <= 0:  # the first batch of stage 2 measures the scale factor
            with self.inference():
                stats.scale.fill_(fs.unit_scale(self.first.encode(batch.x)))
        out = super().train_step(batch)
        out.update(stage=2.0, scale=float(stats.scale))
        return out

    def _autoencoder_step(self, batch: Batch) -> dict[str, float]:
        with self.lock:
            self.nets.train()
            opt = self.optimizers["ae"]
            opt.zero_grad(set_to_none=True)
            loss, terms = self.forward_loss(self.nets["first"].loss, batch.x, self.config.kl_weight, self.rng)
            if self.backward(loss):
                opt.step()
            self.step += 1
            self.nets["stats"].ae_steps += 1
            out = {k: float(v.detach()) for k, v in terms.items()}
            out["stage"] = 1.0
            return out

    # ---- evaluation --------------------------------------------------------------------------------
    # The pixel model's variational bound would be one on latents here, not on the images: none.
    likelihood = Engine.likelihood

    @torch.no_grad()
    def evaluate(self, x, max_images: int = 2000, quick: bool = False):
        x = as_images(x, self.device)
        out = super().evaluate(x, max_images, quick)
        rec = self.reconstruct(x[:max_images])
        out["ae_mse"] = float(((rec - x[:max_images]) ** 2).mean())
        return out
