"""Variational autoencoder: q(z|x) = N(μ, σ²), p(z) = N(0, I), reparameterised sampling,
loss = −ELBO = E_q[−log p(x|z)] + β·KL(q(z|x) ‖ p(z)), all in nats per image."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engines.base import Batch, Engine, as_images
from engines.config import LATENT_MAX, STEPS_MAX, WEIGHT_MAX, WIDTH_MAX, EngineConfig, option
from engines.autoencoders.nets import ConvDecoder, ConvEncoder

LOG_2PI = math.log(2 * math.pi)


@dataclass
class VAEConfig(EngineConfig):
    latent_dim: int = option(16, "size of the latent vector z", minimum=1, maximum=LATENT_MAX)
    width: int = option(32, "channels of the first conv stage (doubles per stage, capped at 8×)", minimum=4, maximum=WIDTH_MAX)
    beta: float = option(1.0, "weight of the KL term (β-VAE); 1 gives the true ELBO", minimum=0.0, maximum=WEIGHT_MAX)
    likelihood: str = option("bernoulli", "p(x|z): Bernoulli on pixel intensities, or Gaussian", choices=("bernoulli", "gaussian"))
    sigma: float = option(0.1, "Gaussian likelihood: initial (or fixed) pixel std", minimum=1e-4, maximum=10.0)
    learn_sigma: bool = option(True, "Gaussian likelihood: learn one pixel std per channel")
    kl_warmup_steps: int = option(0, "ramp the KL weight linearly from 0 to β over this many steps (against posterior collapse)", minimum=0, maximum=STEPS_MAX)
    free_bits: float = option(0.0, "free bits: minimum nats per latent dimension before KL is penalised", minimum=0.0, maximum=100.0)
    logvar_min: float = option(-10.0, "clamp of the encoder's log-variance (stability)", minimum=-30.0, maximum=10.0)
    logvar_max: float = option(4.0, "clamp of the encoder's log-variance (stability)", minimum=-10.0, maximum=30.0)
    iwae_k: int = option(64, "importance samples for the IWAE bound in evaluation", minimum=1, maximum=5000)


class _LogSigma(nn.Module):
    def __init__(self, channels: int, sigma: float, learn: bool):
        super().__init__()
        self.value = nn.Parameter(torch.full((channels,), math.log(sigma)), requires_grad=learn)


class VAEEngine(Engine):
    name = "vae"
    Config = VAEConfig
    capabilities = frozenset({"encode", "encode_exact", "decode", "sample", "likelihood", "log_prior", "latent_layer"})

    def build(self):
        c = self.config
        nets = {
            "encoder": ConvEncoder(self.spec, 2 * c.latent_dim, base=c.width, max_channels=c.width * 8),
            "decoder": ConvDecoder(self.spec, c.latent_dim, base=c.width, max_channels=c.width * 8),
        }
        if c.likelihood == "gaussian":
            nets["log_sigma"] = _LogSigma(self.spec.channels, c.sigma, c.learn_sigma)
        return nets

    @property
    def latent_shape(self):
        return (self.config.latent_dim,)

    def latent_layer(self):
        """The decoder's first linear layer z → features (SeFa; `engines.base.LatentLayer`)."""
        return self.nets["decoder"].latent_layer(self.config.latent_dim)

    # ---- model pieces ---------------------------------------------------------------------
    def posterior(self, x):
        h = self.nets["encoder"](x)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(self.config.logvar_min, self.config.logvar_max)

    def _encode(self, x):
        return self.posterior(x)[0]

    def _decode(self, z):
        out = self.nets["decoder"](z)
        return torch.sigmoid(out) if self.config.likelihood == "bernoulli" else out

    def _decodes_in_unit_range(self) -> bool:
        return self.config.likelihood == "bernoulli"

    def log_px_z(self, x, out):
        """log p(x|z) per image, from the decoder's raw output."""
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        log_sigma = self.nets["log_sigma"].value.view(1, -1, 1, 1)
        nll = 0.5 * ((x - out) / log_sigma.exp()) ** 2 + log_sigma + 0.5 * LOG_2PI
        return -nll.flatten(1).sum(1)

    def log_prior(self, z):
        """log N(z; 0, I) per latent vector — the in-distribution indicator."""
        return -0.5 * (z ** 2 + LOG_2PI).sum(-1)

    def encode_distribution(self, x):
        x = as_images(x, self.device)
        with self.inference():
            return self.posterior(x)

    def kl_weight(self) -> float:
        c = self.config
        if c.kl_warmup_steps <= 0:
            return c.beta
        return c.beta * min(1.0, (self.step + 1) / c.kl_warmup_steps)

    def _loss(self, batch: Batch):
        x = batch.x
        mu, logvar = self.posterior(x)
        eps = torch.randn(mu.shape, generator=self.rng, device=mu.device, dtype=mu.dtype)
        z = mu + (0.5 * logvar).exp() * eps
        out = self.nets["decoder"](z).float()
        recon = -self.log_px_z(x, out).mean()
        kl_dims = 0.5 * (mu.float() ** 2 + logvar.float().exp() - 1 - logvar.float())  # (N, D)
        kl = kl_dims.sum(1).mean()
        if self.config.free_bits > 0:
            kl_obj = kl_dims.mean(0).clamp_min(self.config.free_bits).sum()
        else:
            kl_obj = kl
        loss = recon + self.kl_weight() * kl_obj
        return loss, {"loss": loss, "recon": recon, "kl": kl, "neg_elbo": recon + kl}

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def bounds(self, x, k: int | None = None, generator: torch.Generator | None = None, chunk: int = 64):
        """Per-image −ELBO and IWAE(k) bounds on −log p(x), in nats."""
        x = as_images(x, self.device)
        k = k or self.config.iwae_k
        g = generator or torch.Generator(device=self.device).manual_seed(0)
        nelbo, niwae = [], []
        with self.inference():
            for xb in x.split(chunk):
                mu, logvar = self.posterior(xb)
                std = (0.5 * logvar).exp()
                kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1)
                eps = torch.randn((k, *mu.shape), generator=g, device=mu.device)
                z = mu + std * eps  # (k, B, D)
                out = self.nets["decoder"](z.flatten(0, 1)).float()
                lpx = self.log_px_z(xb.repeat(k, 1, 1, 1), out).view(k, -1)
                lpz = self.log_prior(z)
                lqz = (-0.5 * (eps ** 2 + LOG_2PI) - 0.5 * logvar).sum(-1)
                nelbo.append(kl - lpx.mean(0))
                niwae.append(-(torch.logsumexp(lpx + lpz - lqz, 0) - math.log(k)))
        return torch.cat(nelbo), torch.cat(niwae)

    @torch.no_grad()
    def likelihood(self, x, quick: bool = False):
        """−ELBO and −IWAE_k, bounds on −log p(x) in nats per image (what `evaluate` reports)."""
        out = {}
        k = min(self.config.iwae_k, 8) if quick else self.config.iwae_k
        nelbo, niwae = self.bounds(as_images(x, self.device), k=k)
        out["elbo_nats"] = float(nelbo.mean())  # −ELBO: an upper bound on −log p(x)
        out["iwae_nats"] = float(niwae.mean())  # −IWAE_k: a tighter upper bound
        out["iwae_k"] = float(k)
        return out
