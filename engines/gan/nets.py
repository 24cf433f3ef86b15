"""Generator and discriminator networks for the GAN engine, for every supported image size.

Both follow the resolution plan of `nets.down_plan` (64→32→16→8→4, 28→14→7, 8→4), so a
generator mirrors its discriminator stage for stage.

DCGAN variant (Radford et al. 2016's guidelines): the generator uses fractionally-strided
(transposed) convolutions with batch norm and ReLU and a tanh output; the discriminator uses
strided convolutions with LeakyReLU(0.2). The discriminator has no batch norm: it would couple
the images of a batch, which breaks the per-image gradient penalties (R1, WGAN-GP); spectral
norm is the optional normaliser there. Residual variant: upsample + 3×3 conv blocks with
skip connections in G, 3×3 conv + average-pool blocks in D (the SNGAN/WGAN-GP ResNets, small).

Class-conditional models: the generator's input already carries the class (the engine appends
class weights to z); the discriminator adds a projection term ⟨embed(y), features⟩ (Miyato &
Koyama 2018).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from engines.autoencoders.nets import down_plan
from engines.spec import ImageSpec


def _plan(spec: ImageSpec, base: int, max_channels: int):
    chans, h, w = down_plan(spec, base, max_channels)
    return chans, h, w, (chans[-1] if chans else base)


class DCGANGenerator(nn.Module):
    """latent (N, in_features) → image (N, C, H, W) in [-1, 1]."""

    def __init__(self, spec: ImageSpec, in_features: int, base: int = 32, max_channels: int = 256):
        super().__init__()
        chans, h, w, top = _plan(spec, base, max_channels)
        self.start_shape = (top, h, w)
        self.head = nn.Linear(in_features, top * h * w, bias=False)
        # In-place activations (as the DCGAN example): no extra buffer per layer; same values.
        self.head_act = nn.Sequential(nn.BatchNorm2d(top), nn.ReLU(inplace=True))
        rev = list(reversed(chans))
        layers: list[nn.Module] = []
        for i, c in enumerate(rev):
            last = i == len(rev) - 1
            c_out = spec.channels if last else rev[i + 1]
            layers.append(nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        if not chans:  # sides that never halve
            layers.append(nn.Conv2d(top, spec.channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        h = self.head(z).view(len(z), *self.start_shape)
        return torch.tanh(self.body(self.head_act(h)))

    def first_features(self, z):
        """The first layer's activations (linear → batch norm → ReLU), flattened: what GANSpace's PCA sees."""
        return self.head_act(self.head(z).view(len(z), *self.start_shape)).flatten(1)


class _UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, up: bool):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest") if up else nn.Identity()
        self.main = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), self.up,
                                  nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_out), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Sequential(self.up, nn.Conv2d(c_in, c_out, 1))

    def forward(self, x):
        return self.main(x) + self.skip(x)


class ResNetGenerator(nn.Module):
    def __init__(self, spec: ImageSpec, in_features: int, base: int = 32, max_channels: int = 256):
        super().__init__()
        chans, h, w, top = _plan(spec, base, max_channels)
        self.start_shape = (top, h, w)
        self.head = nn.Linear(in_features, top * h * w)
        rev = list(reversed(chans)) or [top]
        blocks = []
        for i, c in enumerate(rev):
            c_out = rev[i + 1] if i + 1 < len(rev) else rev[-1]
            blocks.append(_UpBlock(c, c_out, up=bool(chans)))
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Sequential(nn.BatchNorm2d(rev[-1]), nn.ReLU(), nn.Conv2d(rev[-1], spec.channels, 3, padding=1))

    def forward(self, z):
        return torch.tanh(self.out(self.blocks(self.head(z).view(len(z), *self.start_shape))))

    def first_features(self, z):
        """The first layer's activations (linear, then the first block's batch norm and ReLU), flattened."""
        main = self.blocks[0].main
        return main[1](main[0](self.head(z).view(len(z), *self.start_shape))).flatten(1)


class _DownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, down: bool, first: bool, norm):
        super().__init__()
        pool = nn.AvgPool2d(2) if down else nn.Identity()
        pre = [] if first else [nn.LeakyReLU(0.2)]
        self.main = nn.Sequential(*pre, norm(nn.Conv2d(c_in, c_out, 3, padding=1)), nn.LeakyReLU(0.2),
                                  norm(nn.Conv2d(c_out, c_out, 3, padding=1)), pool)
        self.skip = nn.Sequential(norm(nn.Conv2d(c_in, c_out, 1)), pool)

    def forward(self, x):
        return self.main(x) + self.skip(x)


class Discriminator(nn.Module):
    """image (N, C, H, W) in [-1, 1] (+ class indices) → one logit/score per image."""

    def __init__(self, spec: ImageSpec, base: int = 32, max_channels: int = 256, arch: str = "dcgan",
                 spectral_norm: bool = False, n_classes: int = 0):
        super().__init__()
        norm = _sn if spectral_norm else (lambda m: m)
        chans, h, w, top = _plan(spec, base, max_channels)
        layers: list[nn.Module] = []
        c_in = spec.channels
        if arch == "resnet":
            for i, c in enumerate(chans or [base]):
                layers.append(_DownBlock(c_in, c, down=bool(chans), first=i == 0, norm=norm))
                c_in = c
            layers.append(nn.LeakyReLU(0.2))
        else:
            if not chans:
                layers += [norm(nn.Conv2d(c_in, base, 3, padding=1)), nn.LeakyReLU(0.2)]
                c_in = base
            for c in chans:
                layers += [norm(nn.Conv2d(c_in, c, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
                c_in = c
        self.features = nn.Sequential(*layers)
        self.head = norm(nn.Linear(c_in * h * w, 1))
        self.embed = norm(nn.Embedding(n_classes, c_in * h * w)) if n_classes else None

    def forward(self, x, y=None):
        f = self.features(x).flatten(1)
        out = self.head(f).squeeze(1)
        if self.embed is not None and y is not None:
            out = out + (self.embed(y) * f).sum(1)
        return out


def make_generator(arch: str, spec: ImageSpec, in_features: int, base: int, max_channels: int) -> nn.Module:
    cls = ResNetGenerator if arch == "resnet" else DCGANGenerator
    return cls(spec, in_features, base, max_channels)


@torch.no_grad()
def ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1−decay)·live for the weights. Batch-norm statistics are not averaged
    (nor copied: the live generator's statistics do not fit the averaged weights and tint every
    image); `recalibrate_batchnorm` measures them for the averaged weights before it is used.
    One fused `_foreach_lerp_` over all the weights (per-parameter `lerp_` launched a kernel each)."""
    pe = [p for p in ema.parameters()]
    if pe:
        with torch.no_grad():
            torch._foreach_lerp_(pe, [p.detach() for p in live.parameters()], 1.0 - decay)


def recalibrate_batchnorm(net: nn.Module, latents, batches: int = 8) -> bool:
    """Re-estimate every batch-norm layer's running statistics as the plain average over
    `batches` forward passes of `latents(i)` (a latent batch per index, deterministic)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    momenta = [m.momentum for m in bns]
    was = net.training
    with torch.inference_mode(False), torch.no_grad():
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        net.train()
        try:
            for i in range(batches):
                net(latents(i))
        finally:
            net.train(was)
            for m, mom in zip(bns, momenta):
                m.momentum = mom
    return True
