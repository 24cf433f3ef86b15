"""Autoencoder, optionally denoising: x → z → x̂, trained on reconstruction error."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engines.base import Batch, Engine
from engines.config import LATENT_MAX, WIDTH_MAX, EngineConfig, option
from engines.autoencoders.nets import ConvDecoder, ConvEncoder, LatentGaussian


@dataclass
class AEConfig(EngineConfig):
    latent_dim: int = option(16, "size of the latent vector z", minimum=1, maximum=LATENT_MAX)
    width: int = option(32, "channels of the first conv stage (doubles per stage, capped at 8×)", minimum=4, maximum=WIDTH_MAX)
    noise_std: float = option(0.0, "denoising AE: std of Gaussian noise added to inputs during training (0 = plain AE)", minimum=0.0, maximum=10.0)
    mask_prob: float = option(0.0, "denoising AE: fraction of pixels zeroed during training", minimum=0.0, maximum=0.95)
    loss: str = option("mse", "reconstruction loss", choices=("mse", "bce"))


class AEEngine(Engine):
    name = "ae"
    Config = AEConfig
    capabilities = frozenset({"encode", "encode_exact", "decode", "sample", "denoise", "latent_layer"})

    def build(self):
        c = self.config
        return {
            "encoder": ConvEncoder(self.spec, c.latent_dim, base=c.width, max_channels=c.width * 8),
            "decoder": ConvDecoder(self.spec, c.latent_dim, base=c.width, max_channels=c.width * 8),
            "prior": LatentGaussian(c.latent_dim),
        }

    @property
    def latent_shape(self):
        return (self.config.latent_dim,)

    def latent_layer(self):
        """The decoder's first linear layer z → features (SeFa; `engines.base.LatentLayer`)."""
        return self.nets["decoder"].latent_layer(self.config.latent_dim)

    def _encode(self, x):
        return self.nets["encoder"](x)

    def _decode(self, z):
        out = self.nets["decoder"](z)
        return torch.sigmoid(out)

    def _decodes_in_unit_range(self) -> bool:
        return True

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.config
        g = generator if generator is not None else self.rng
        if c.noise_std > 0:
            x = (x + c.noise_std * torch.randn(x.shape, generator=g, device=x.device)).clamp(0, 1)
        if c.mask_prob > 0:
            keep = torch.rand(x.shape[0:1] + x.shape[2:], generator=g, device=x.device) >= c.mask_prob
            x = x * keep.unsqueeze(1)
        return x

    def _loss(self, batch: Batch):
        x = batch.x
        logits = self.nets["decoder"](self.nets["encoder"](self.corrupt(x)))
        if self.config.loss == "bce":
            rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        else:
            rec = ((torch.sigmoid(logits) - x) ** 2).flatten(1).sum(1).mean()
        mse = ((torch.sigmoid(logits.detach()) - x) ** 2).mean()
        return rec, {"loss": rec, "mse": mse}

    def denoise(self, x) -> torch.Tensor:
        """Reconstruct possibly corrupted images (what the denoising AE was trained to do)."""
        return self.decode(self.encode(x))

    # An AE has no prior: samples come from a Gaussian fitted to the training latents
    # (refitted before every checkpoint).
    def prior_sample(self, n, generator, temperature: float = 1.0, **_):
        eps = torch.randn((n, self.config.latent_dim), generator=generator, device=self.device) * float(temperature)
        return self.nets["prior"].transform(eps)

    def prepare_checkpoint(self, x) -> None:
        z = self.encode(x)
        with self.lock:
            self.nets["prior"].fit(z)
