"""Denoising diffusion (DDPM): a U-Net learns to undo q(x_t | x₀) = N(√ᾱ_t x₀, (1−ᾱ_t) I) for
every t; sampling runs any sampler of `samplers` from pure noise. Images live in [−1, 1] inside
the engine. Sampling, encoding and decoding use the EMA copy of the weights.

The latent of an image is x_T from deterministic DDIM inversion (`encode`), and `decode` is
deterministic DDIM from x_T, so interpolation and attribute arithmetic work on x_T as they do on
a VAE's z. Class-conditional models (num_classes > 0) drop the label for a fraction of training
images, which gives the unconditional prediction that classifier-free guidance needs.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engines.diffusion import samplers as smp
from engines.base import Batch, Engine, as_images, class_labels
from engines.config import CLASSES_MAX, LR_MAX, LR_MIN, WIDTH_MAX, ConfigError, EngineConfig, option
from engines.diffusion.schedule import SPACINGS, NoiseSchedule
from engines.diffusion.unet import UNet


@dataclass
class DiffusionConfig(EngineConfig):
    lr: float = option(5e-4, "Adam learning rate", minimum=LR_MIN, maximum=LR_MAX)
    width: int = option(32, "channels of the U-Net's first level (later levels 2×)", minimum=8, maximum=WIDTH_MAX)
    blocks: int = option(1, "residual blocks per U-Net level", minimum=1, maximum=4)
    levels: int = option(4, "most U-Net levels (resolution halves per level while the side is even and > 4)", minimum=1, maximum=5)
    attn_size: int = option(8, "self-attention at levels whose side is at most this many pixels", minimum=0, maximum=256)
    dropout: float = option(0.0, "dropout inside residual blocks", minimum=0.0, maximum=0.9)
    schedule: str = option("cosine", "noise schedule ᾱ_t", choices=("linear", "cosine"))
    timesteps: int = option(1000, "diffusion steps T of training", minimum=2, maximum=10_000)
    target: str = option("eps", "what the network predicts: the noise ε, the clean image x₀, or v = √ᾱ ε − √(1−ᾱ) x₀", choices=("eps", "x0", "v"))
    num_classes: int = option(0, "condition on the data set's labels 0…N−1 (0 = unconditional)", minimum=0, maximum=CLASSES_MAX)
    label_dropout: float = option(0.1, "conditional: fraction of training images seen without label (for classifier-free guidance)", minimum=0.0, maximum=1.0)
    guidance: float = option(2.0, "conditional: default classifier-free guidance scale when sampling (1 = plain conditional, 0 = unconditional)", minimum=0.0, maximum=100.0)
    ema_decay: float = option(0.999, "decay of the weights' exponential moving average used for sampling", minimum=0.0, maximum=1.0)
    sampler: str = option("dpm", "default sampler", choices=smp.NAMES)
    sample_steps: int = option(20, "default number of sampling steps", minimum=1, maximum=10_000)
    latent_steps: int = option(20, "DDIM steps of encode (inversion to x_T) and decode (x_T to image); below ~20 round trips blur", minimum=1, maximum=10_000)
    inversion_refine: int = option(1, "fixed-point refinements per DDIM inversion step (closer round trips, one more network call each)", minimum=0, maximum=5)
    clip: bool = option(True, "clip the predicted x₀ to the data range while sampling")


class DiffusionEngine(Engine):
    name = "diffusion"
    Config = DiffusionConfig
    capabilities = frozenset({"encode", "encode_approx", "decode", "sample", "likelihood", "trajectory"})
    sampling_options = {"sampler": str, "steps": int, "eta": float, "guidance": float, "label": int, "spacing": str}

    def build(self):
        c = self.config
        mults = (1, 2, 2, 2, 2)[: c.levels]
        unet = UNet(self.unet_spec, width=c.width, mults=mults, blocks=c.blocks, attn_size=c.attn_size,
                    num_classes=c.num_classes, dropout=c.dropout)
        ema = copy.deepcopy(unet)
        for p in ema.parameters():
            p.requires_grad_(False)
        return {"unet": unet, "ema": ema}

    @property
    def latent_shape(self):
        return tuple(self.spec.shape)

    # ---- the space the diffusion runs in (pixels here; a latent grid in latent diffusion) ------
    @property
    def unet_spec(self):
        """What the U-Net sees: `.channels`, `.height`, `.width` of the diffused tensors."""
        return self.spec

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → the diffused space (x₀ of the forward process): [−1, 1] pixels here."""
        return x * 2 - 1

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """A tensor of the diffused space (x_t, x̂₀) → images in [0, 1]: what a trajectory shows."""
        return ((x + 1) / 2).clamp_(0, 1)

    def view_images(self, x: torch.Tensor) -> torch.Tensor:
        """`view` for callers outside the sampling loop (the Diffusion panel, the export), under
        the engine's lock in inference mode."""
        with self.inference():
            return self.view(torch.as_tensor(x, dtype=torch.float32).to(self.device))

    @property
    def schedule(self) -> NoiseSchedule:
        if getattr(self, "_schedule", None) is None:
            self._schedule = NoiseSchedule(self.config.schedule, self.config.timesteps)
        return self._schedule

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.nets["unet"].parameters())  # the EMA copy is not a parameter

    # ---- the network as a denoiser ----------------------------------------------------------
    def denoiser(self, labels: torch.Tensor | None = None, guidance: float = 1.0, clip: bool | None = None,
                 ema: bool = True) -> smp.Denoiser:
        """(x_t, t) → (x̂₀, ε̂) from the network, with classifier-free guidance when labels are
        given and guidance ≠ 1: out = out_∅ + w·(out_y − out_∅)."""
        net = self.nets["ema" if ema else "unet"]
        sched, target = self.schedule, self.config.target
        k = self.config.num_classes
        clip = self.config.clip if clip is None else clip
        guided = k > 0 and labels is not None and guidance != 1.0

        def denoise(x: torch.Tensor, t: int):
            tt = torch.full((len(x),), float(t), device=x.device)
            if guided:
                null = torch.full_like(labels, k)
                out_y, out_0 = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([labels, null])).chunk(2)
                out = out_0 + guidance * (out_y - out_0)
            else:
                out = net(x, tt, labels if k > 0 else None)
            out = out.float()
            a = sched.abar(t)
            sa, s1 = math.sqrt(a), math.sqrt(1 - a)
            if target == "eps":
                eps, x0 = out, (x - s1 * out) / sa
            elif target == "x0":
                x0, eps = out, (x - sa * out) / s1
            else:
                x0, eps = sa * x - s1 * out, s1 * x + sa * out
            if clip:
                x0 = x0.clamp(-1, 1)
                eps = (x - sa * x0) / s1
            return x0, eps

        return denoise

    def _labels(self, n: int, label: int | None) -> torch.Tensor | None:
        return class_labels(n, label, self.config.num_classes, self.device, "this diffusion model")

    # ---- training ---------------------------------------------------------------------------
    def _loss(self, batch: Batch):
        c, sched = self.config, self.schedule
        x0 = self.to_model(batch.x)
        n = len(x0)
        t = torch.randint(0, sched.T, (n,), generator=self.rng, device=x0.device)
        noise = torch.randn(x0.shape, generator=self.rng, device=x0.device)
        xt = sched.q_sample(x0, t, noise)
        labels = None
        if c.num_classes > 0:
            labels = torch.full((n,), c.num_classes, device=x0.device, dtype=torch.long)
            if batch.labels is not None:
                y = batch.labels.long()
                if int(y.max()) >= c.num_classes or int(y.min()) < 0:
                    raise ConfigError(f"the data's labels go up to {int(y.max())} but num_classes is {c.num_classes}")
                keep = torch.rand(n, generator=self.rng, device=x0.device) >= c.label_dropout
                labels = torch.where(keep, y, labels)
        out = self.nets["unet"](xt, t.float(), labels).float()
        if c.target == "eps":
            goal = noise
        elif c.target == "x0":
            goal = x0
        else:
            a = sched.abar_tensor(t, x0)
            goal = a.sqrt() * noise - (1 - a).sqrt() * x0
        loss = F.mse_loss(out, goal)
        return loss, {"loss": loss}

    def ema_age(self) -> int:
        """Steps the U-Net has trained (the EMA's warm-up counts from its first step)."""
        return self.step

    def train_step(self, batch):
        out = super().train_step(batch)
        with self.lock, torch.no_grad():
            age = self.ema_age()
            d = min(self.config.ema_decay, (1 + age) / (10 + age))
            torch._foreach_lerp_(list(self.nets["ema"].parameters()),
                                 [p.detach() for p in self.nets["unet"].parameters()], 1 - d)
            for be, b in zip(self.nets["ema"].buffers(), self.nets["unet"].buffers()):
                be.copy_(b)
        return out

    # ---- sampling ---------------------------------------------------------------------------
    def _eval(self, fn):
        with self.lock, torch.inference_mode():
            was = self.nets.training
            self.nets.eval()
            try:
                return fn()
            finally:
                self.nets.train(was)

    def sampling_loop(self, x_t: torch.Tensor, timesteps: list[int], sampler: str | None = None, eta: float = 0.0,
                      guidance: float | None = None, labels: torch.Tensor | None = None,
                      generator: torch.Generator | None = None) -> smp.Loop:
        """The step-wise run of a sampler from x_t (model space, [−1, 1] scale) over `timesteps`:
        iterate it for one `StepRecord` per step (each step under the engine's lock, in inference
        mode; the lock is free between steps), then `.result` holds the images in [0, 1]. The
        panel, the export and `sample` all drive sampling through this."""
        sampler = sampler or self.config.sampler
        guidance = self.config.guidance if guidance is None else float(guidance)
        x_t = torch.as_tensor(x_t, dtype=torch.float32).to(self.device)
        den = self.denoiser(labels, guidance)
        return smp.Loop(smp.make(sampler, self.schedule, timesteps, generator, eta), den, x_t, guard=self.inference,
                        finish=self.view)

    def run_sampler(self, x_t: torch.Tensor, timesteps: list[int], sampler: str | None = None, eta: float = 0.0,
                    guidance: float | None = None, labels: torch.Tensor | None = None,
                    generator: torch.Generator | None = None, callback=None) -> torch.Tensor:
        """`sampling_loop` run to its end; returns images in [0, 1]."""
        return self.sampling_loop(x_t, timesteps, sampler, eta, guidance, labels, generator).run(callback)

    def sample_loop(self, n: int, seed: int = 0, sampler: str | None = None, steps: int | None = None,
                    eta: float = 0.0, guidance: float | None = None, label: int | None = None,
                    spacing: str | None = None) -> smp.Loop:
        """`sample`'s run, step by step (see `sampling_loop`); options are checked at once."""
        sampler = sampler or self.config.sampler
        if sampler not in smp.NAMES:
            raise ConfigError(f"unknown sampler '{sampler}' (known: {', '.join(smp.NAMES)})")
        if eta < 0:
            raise ConfigError("sampling option eta must be ≥ 0")
        steps = int(steps or self.config.sample_steps)
        if steps < 1:
            raise ConfigError("sampling option steps must be ≥ 1")
        spacing = spacing or smp.default_spacing(sampler)
        if spacing not in SPACINGS:
            raise ConfigError(f"unknown timestep spacing '{spacing}' (known: {', '.join(SPACINGS)})")
        g = torch.Generator(device=self.device)
        g.manual_seed(int(seed))
        x_T = torch.randn((n, *self.latent_shape), generator=g, device=self.device)
        return self.sampling_loop(x_T, self.schedule.timesteps(steps, spacing=spacing), sampler, eta, guidance,
                                  self._labels(n, label), g)

    def sample(self, n: int, seed: int = 0, sampler: str | None = None, steps: int | None = None,
               eta: float = 0.0, guidance: float | None = None, label: int | None = None, spacing: str | None = None,
               callback=None):
        return self.sample_loop(n, seed, sampler, steps, eta, guidance, label, spacing).run(callback)

    def prior_sample(self, n, generator, **_):
        return torch.randn((n, *self.latent_shape), generator=generator, device=self.device)

    # ---- latents: x_T by DDIM inversion -------------------------------------------------------
    def _encode(self, x):
        den = self.denoiser(None, 1.0, clip=False)
        inverse = smp.DDIMInverse(self.schedule, self.schedule.timesteps(self.config.latent_steps),
                                  refine=self.config.inversion_refine)
        return smp.Loop(inverse, den, self.to_model(x)).run()

    def _decode(self, z):
        den = self.denoiser(None, 1.0)
        return self.view(smp.Loop(smp.DDIM(self.schedule, self.schedule.timesteps(self.config.latent_steps)), den, z).run())

    # ---- forward process ----------------------------------------------------------------------
    def forward_process(self, x, t: int, noise: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
        """x_t ~ q(x_t | x₀) for images x in [0, 1]; returned in model space ([−1, 1] scale; `view` shows it)."""
        with self.inference():
            x0 = self.to_model(as_images(x, self.device))
        if noise is None:
            g = torch.Generator(device=self.device).manual_seed(int(seed))
            noise = torch.randn(x0.shape, generator=g, device=self.device)
        tt = torch.full((len(x0),), int(t), device=self.device, dtype=torch.long)
        return self.schedule.q_sample(x0, tt, noise.to(self.device))

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, x, max_images: int = 2000, quick: bool = False):
        # DDIM inversion + decoding costs 2·latent_steps network calls per image: a subset will do.
        return super().evaluate(as_images(x, self.device)[: (64 if quick else 256)], max_images, quick)

    @torch.no_grad()
    def likelihood(self, x, quick: bool = False):
        """The variational bound on −log p(x) of the discretised images, in bits per dimension."""
        from engines.diffusion.vlb import bits_per_dim

        x = as_images(x, self.device)
        den = self.denoiser(None, 1.0, clip=False)
        g = torch.Generator(device=self.device).manual_seed(0)
        return {"bpd": self._eval(lambda: bits_per_dim(den, self.schedule, x * 2 - 1, g, t_samples=4 if quick else 16))}
