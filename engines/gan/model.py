"""Generative adversarial network: a generator G: z → x trained against a discriminator D.

z ~ N(0, I). Sampling and decoding use an exponential moving average of G's weights (when
`ema_decay` > 0): smoother than the live weights, which oscillate with the adversarial game.
A GAN has no encoder, so `encode(x)` *inverts* the generator by optimisation
(`engines.gan.inversion`), started from a small encoder trained alongside to predict z from G(z)
plus random restarts; `last_inversion` holds the reconstruction error of the latest call.

Class-conditional models (`n_classes` > 0, labels from the data set) append class weights
(one-hot for a sampled class) to z, so the latent is (latent_dim + n_classes) long and an
interpolation between two classes blends them.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engines.base import Batch, Engine, INFER_CHUNK, LatentLayer, as_images
from engines.config import (CLASSES_MAX, LATENT_MAX, LR_MAX, LR_MIN, WEIGHT_MAX, WIDTH_MAX, ConfigError,
                            EngineConfig, option)
from engines.data.dataset import DataError
from engines.device import adam, autocast
from engines.gan.losses import LOSSES, StepSettings, adversarial_step, pairwise_diversity
from engines.gan.nets import Discriminator, ema_update, make_generator, recalibrate_batchnorm
from engines.gan.inversion import Inversion, invert
from engines.autoencoders.nets import ConvEncoder

AUGMENT = ("none", "translation", "color,translation", "color,translation,cutout")


@dataclass
class GANConfig(EngineConfig):
    lr: float = option(2e-4, "generator Adam learning rate", minimum=LR_MIN, maximum=LR_MAX)
    lr_d: float = option(2e-4, "discriminator Adam learning rate (TTUR: often 2–4× the generator's)", minimum=LR_MIN, maximum=LR_MAX)
    beta1: float = option(0.5, "Adam β₁ for both players (0.5 as in DCGAN; 0 is common with WGAN-GP)", minimum=0.0, maximum=0.999)
    beta2: float = option(0.999, "Adam β₂ for both players", minimum=0.0, maximum=0.9999)
    latent_dim: int = option(64, "size of the latent vector z", minimum=1, maximum=LATENT_MAX)
    # 16, not DCGAN's 64: on a few thousand images a wider D overfits and wins, and G collapses
    # (width 32 on the 6,800 built-in faces: diversity 0.70, recall 0.25 after 40 epochs; 16: 0.91, 0.84
    # after 100). Raise it together with `augment` for larger or more varied data.
    width: int = option(16, "channels of the first conv stage of D and last of G (doubles per stage, capped at 8×)", minimum=4, maximum=WIDTH_MAX)
    arch: str = option("dcgan", "network family: DCGAN (strided convs, batch norm in G) or small residual nets", choices=("dcgan", "resnet"))
    loss: str = option("ns", "adversarial loss: non-saturating, least squares, Wasserstein with gradient penalty, hinge", choices=LOSSES)
    n_critic: int = option(1, "discriminator updates per generator update (5 is usual for WGAN-GP)", minimum=1, maximum=100)
    gp_weight: float = option(10.0, "WGAN-GP: weight λ of the gradient penalty", minimum=0.0, maximum=WEIGHT_MAX)
    r1_gamma: float = option(0.0, "R1 penalty weight γ on real images (γ/2·E‖∇D‖²; 0 = off)", minimum=0.0, maximum=WEIGHT_MAX)
    spectral_norm: bool = option(False, "spectral normalisation of every discriminator layer")
    augment: str = option("none", "DiffAugment for small data sets: the same differentiable augmentation of reals and fakes before D", choices=AUGMENT)
    ema_decay: float = option(0.999, "EMA of the generator's weights used for sampling (0 = sample the live generator)", minimum=0.0, maximum=0.99999)
    n_classes: int = option(0, "class-conditional: number of classes in the data set's labels (0 = unconditional)", minimum=0, maximum=CLASSES_MAX)
    encoder: bool = option(True, "train an encoder alongside (predicts z from G(z)) to start inversions from its guess")
    # Speed options (README, GAN section: what each costs and changes).
    reuse_fakes: bool = option(True, "n_critic = 1: the generator step reuses the discriminator step's fakes (one generator pass per step, as DCGAN; off: fresh fakes, a second pass)")
    ema_every: int = option(1, "update the EMA generator every k steps (with decay^k, the same average)", minimum=1, maximum=1000)
    encoder_every: int = option(8, "train the inversion encoder on every k-th step's fakes (1 = every step)", minimum=1, maximum=1000)
    diversity_every: int = option(25, "measure the diversity indicator every N steps (the Train panel shows the latest)", minimum=1, maximum=100_000)
    invert_steps: int = option(50, "inversion: optimisation steps per image (encode)", minimum=0, maximum=100_000)
    invert_restarts: int = option(2, "inversion: starting points per image (the encoder's guess + random draws)", minimum=1, maximum=64)
    invert_lr: float = option(0.05, "inversion: Adam learning rate on z", minimum=LR_MIN, maximum=LR_MAX)
    invert_prior: float = option(1e-3, "inversion: weight of ‖z‖²/D keeping found latents near the prior", minimum=0.0, maximum=WEIGHT_MAX)


class GANEngine(Engine):
    name = "gan"
    Config = GANConfig
    capabilities = frozenset({"encode", "encode_approx", "decode", "sample", "invert", "truncate", "log_prior",
                              "latent_layer"})
    sampling_options = {"truncation": float, "label": int}
    # Train panel: terms plotted apart from the losses, on a linear 0…1 scale.
    health_terms = ("d_real_acc", "d_fake_acc", "diversity")
    health_caption = ("Training health: D's accuracy on real and fake images (both near 1: D wins; near ½: balanced) "
                      "and sample diversity (≈1: as varied as the data; →0: collapse)")

    def build(self):
        c = self.config
        mc = c.width * 8
        g = make_generator(c.arch, self.spec, c.latent_dim + c.n_classes, c.width, mc)
        nets = {"generator": g,
                "discriminator": Discriminator(self.spec, c.width, mc, c.arch, c.spectral_norm, c.n_classes)}
        if c.ema_decay > 0:
            nets["generator_ema"] = copy.deepcopy(g).requires_grad_(False)
        if c.encoder:
            nets["encoder"] = ConvEncoder(self.spec, c.latent_dim + c.n_classes, base=c.width, max_channels=mc)
        return nets

    def make_optimizers(self):
        c = self.config
        betas = (c.beta1, c.beta2)
        opts = {"generator": adam(self.nets["generator"].parameters(), lr=c.lr, betas=betas),
                "discriminator": adam(self.nets["discriminator"].parameters(), lr=c.lr_d, betas=betas)}
        if "encoder" in self.nets:
            opts["encoder"] = adam(self.nets["encoder"].parameters(), lr=1e-3)
        return opts

    @property
    def latent_shape(self):
        return (self.config.latent_dim + self.config.n_classes,)

    @property
    def sampler(self):
        """The generator that draws: the EMA copy when there is one (its batch-norm statistics
        measured for its own weights first, see `calibrate`)."""
        if "generator_ema" not in self.nets:
            return self.nets["generator"]
        if getattr(self, "_ema_stale", False):
            self.calibrate()
        return self.nets["generator_ema"]

    def calibrate(self) -> None:
        """Measure the EMA generator's batch-norm statistics on 8 batches of 64 prior draws
        (seeded, so the same weights always give the same statistics and samples)."""
        if "generator_ema" not in self.nets:
            return
        with self.lock:
            g = torch.Generator(device=self.device)
            g.manual_seed(12345)
            recalibrate_batchnorm(self.nets["generator_ema"], lambda i: self.prior_sample(64, g))
            self._ema_stale = False

    def after_load(self) -> None:  # checkpoint.load
        self.calibrate()

    def prepare_checkpoint(self, x) -> None:  # engines.train, before every save
        with self.lock:
            if getattr(self, "_ema_stale", False):
                self.calibrate()

    # ---- latents ------------------------------------------------------------------------------
    def _with_class(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        k = self.config.n_classes
        if not k:
            return z
        return torch.cat([z, F.one_hot(y, k).to(z.dtype)], 1)

    def prior_sample(self, n, generator, truncation: float = 1.0, label: int = -1, **_):
        c = self.config
        z = torch.randn((n, c.latent_dim), generator=generator, device=self.device)
        z = self.truncate(z, truncation)
        if not c.n_classes:
            return z
        if label >= c.n_classes:
            raise ConfigError(f"label must be below {c.n_classes} (the model's classes), got {label}")
        y = (torch.full((n,), label, device=self.device, dtype=torch.long) if label >= 0
             else torch.randint(c.n_classes, (n,), generator=generator, device=self.device))
        return self._with_class(z, y)

    def truncate(self, z, psi: float):
        """The truncation trick: z̄ + ψ(z − z̄) with z̄ = 0, the prior's mean (class weights, the
        tail of a conditional latent, are left alone). ψ < 1 trades variety for typical, cleaner
        images; ψ = 1 is the model itself."""
        psi = float(psi)
        if psi == 1.0:
            return z
        z = torch.as_tensor(z).clone()
        d = self.config.latent_dim
        z[..., :d] = z[..., :d] * psi
        return z

    def log_prior(self, z):
        """log N(z; 0, I) of the Gaussian part, per latent (the in-distribution gauge)."""
        z = torch.as_tensor(z)[..., : self.config.latent_dim]
        return -0.5 * (z ** 2 + math.log(2 * math.pi)).sum(-1)

    def _decode(self, z):
        return (self.sampler(z).float() + 1) * 0.5

    def latent_layer(self) -> LatentLayer:
        """The sampling generator's first linear layer z → features (SeFa, GANSpace); class weights
        of a conditional latent are not free."""
        g = self.sampler
        return LatentLayer(g.head.weight, g.first_features, self.config.latent_dim)

    # ---- training ---------------------------------------------------------------------------
    def _loss(self, batch):  # the adversarial game has no single objective; see train_step
        raise NotImplementedError("GANs are trained by train_step")

    def _labels(self, batch: Batch):
        k = self.config.n_classes
        if not k:
            return None
        y = batch.labels
        if y is None:
            raise DataError("a class-conditional GAN (n_classes > 0) needs a data set with labels")
        y = y.to(self.device, torch.long)
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= k):
            raise DataError(f"the data's labels go up to {int(y.max())} but n_classes is {k}; "
                            "set n_classes to the number of classes")
        return y

    def train_step(self, batch):
        if not isinstance(batch, Batch):
            batch = Batch(as_images(batch, self.device))
        c = self.config
        with self.lock:
            self.nets.train()
            labels = self._labels(batch)
            real = batch.x * 2 - 1
            used = {}

            def sample_latent(n):
                z = torch.randn((n, c.latent_dim), generator=self.rng, device=self.device)
                # Conditional fakes take the real batch's labels: the classes stay balanced
                # like the data, and D's gradient penalty sees one label per pair.
                used["z"] = self._with_class(z, labels)
                return used["z"], labels

            # Under torchrun each forward pass is one DDP call, so the fakes are not carried from
            # the discriminator's call into the generator's: fresh fakes there.
            settings = StepSettings(c.loss, c.n_critic, c.gp_weight, c.r1_gamma, c.augment,
                                    reuse_fakes=c.reuse_fakes and self.ddp is None)
            terms, fake = adversarial_step(self.nets["generator"], self.nets["discriminator"],
                                           self.optimizers["generator"], self.optimizers["discriminator"],
                                           real, sample_latent, settings, labels, self.rng,
                                           context=lambda: autocast(self.device),
                                           forward=self.forward_loss, backward=self.backward)
            if "generator_ema" in self.nets and (self.step + 1) % c.ema_every == 0:
                # Warm-up: early on the average would be dominated by the random initial weights.
                # Every k steps: decay^k, the weight k single updates give the older average.
                decay = min(c.ema_decay, (1 + self.step) / (10 + self.step)) ** c.ema_every
                ema_update(self.nets["generator_ema"], self.nets["generator"], decay)
                self._ema_stale = True
            # The encoder trains, and the diversity indicator is measured, on every k-th / N-th
            # step (the first included; by step number, so a resumed run does the same); those
            # steps report them, and the trainer averages each term over the steps that did.
            if "encoder" in self.nets and self.step % c.encoder_every == 0:
                terms["enc_loss"] = self._encoder_step(fake, used["z"])
            if self.step % c.diversity_every == 0:
                terms["diversity"] = pairwise_diversity(fake, real)
            self.step += 1
            return terms

    def _encoder_step(self, fake: torch.Tensor, z: torch.Tensor) -> float:
        """Teach the encoder to predict the latent of a generated image (its z; the class as logits)."""
        d = self.config.latent_dim
        def enc_loss():
            with autocast(self.device):
                pred = self.nets["encoder"]((fake + 1) * 0.5).float()
            loss = F.mse_loss(pred[:, :d], z[:, :d])
            if self.config.n_classes:
                loss = loss + F.cross_entropy(pred[:, d:], z[:, d:].argmax(1))
            return loss

        loss = self.forward_loss(enc_loss)
        opt = self.optimizers["encoder"]
        opt.zero_grad(set_to_none=True)
        if self.backward(loss):
            opt.step()
        return float(loss.detach())

    # ---- inversion ----------------------------------------------------------------------------
    def _to_latent(self, p):
        d = self.config.latent_dim
        if not self.config.n_classes:
            return p
        return torch.cat([p[:, :d], torch.softmax(p[:, d:], 1)], 1)

    def invert(self, x, steps: int | None = None, restarts: int | None = None, seed: int = 0,
               should_stop=None) -> Inversion:
        """Latents for images x (uint8 or float in [0, 1]) and their reconstruction errors."""
        c = self.config
        x = as_images(x, self.device)
        steps = c.invert_steps if steps is None else int(steps)
        restarts = c.invert_restarts if restarts is None else int(restarts)
        g = torch.Generator(device=self.device)
        g.manual_seed(int(seed))
        G = self.sampler

        def generate(z):
            was = G.training
            G.eval()  # batch-norm running statistics: each image independent of its batch
            try:
                return (G(z).float() + 1) * 0.5
            finally:
                G.train(was)

        parts = []
        for chunk in x.split(INFER_CHUNK):
            init = self._encoder_guess(chunk)
            parts.append(invert(generate, chunk, self.latent_dim, steps=steps, restarts=restarts, lr=c.invert_lr,
                                prior_weight=c.invert_prior, init=init, to_latent=self._to_latent,
                                generator=g, lock=self.lock, should_stop=should_stop))
        if not parts:
            empty = torch.zeros((0, self.latent_dim), device=self.device)
            return Inversion(empty, torch.zeros(0, device=self.device), torch.zeros(0, dtype=torch.long))
        out = Inversion(torch.cat([p.z for p in parts]), torch.cat([p.mse for p in parts]),
                        torch.cat([p.restart for p in parts]))
        self.last_inversion = out
        return out

    def _encoder_guess(self, x):
        if "encoder" not in self.nets:
            return None
        enc = self.nets["encoder"]
        with self.lock, torch.no_grad():
            was = enc.training
            enc.eval()
            try:
                return enc(x).float()
            finally:
                enc.train(was)

    def encode(self, x) -> torch.Tensor:
        """Inversion by optimisation (see `invert`); `last_inversion` keeps the errors."""
        return self.invert(x).z.detach()

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, x, max_images: int = 2000, quick: bool = False):
        """Inversion error on a few test images (costly: `invert_steps` generator passes each) and
        the diversity indicator of 256 fixed-seed samples against the test images."""
        x = as_images(x, self.device)
        out: dict[str, float] = {}
        if not len(x):
            return out
        k = min(len(x), 32 if quick else 128, max_images)
        inv = self.invert(x[:k])
        out["inversion_mse"] = float(inv.mse.mean())
        out["inversion_psnr"] = float(10 * math.log10(1.0 / max(out["inversion_mse"], 1e-12)))
        m = min(len(x), 256)
        out["diversity"] = pairwise_diversity(self.sample(m, seed=0), x[:m])
        return out
