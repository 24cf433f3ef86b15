"""Multi-scale Glow (Kingma & Dhariwal 2018): L levels of [squeeze → K × (actnorm → invertible 1×1
conv → affine coupling) → split], the last level without a split and with a learned prior on what
is left. A 28×28×1 image: 4×14×14 after the first squeeze, 2 channels leave at the split, 8×7×7
after the second squeeze; the latent is 2·14·14 + 8·7·7 = 784 numbers, one per pixel.

`forward(y)` maps y ∈ [0, 1)^D (shifted to [−½, ½)) to the standardised latents ε of every split
and of the top, plus log |det ∂ε/∂y| per image accumulated in float64; log p(y) = log N(ε; 0, I)
+ log-det. `inverse` runs the same pieces backwards. `flatten`/`unflatten` turn the list of ε into
one vector per image (the first split's ε first, the top's last) and back.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from engines.flow.coupling import AffineCoupling
from engines.flow.layers import ActNorm, InvConv1x1, squeeze, unsqueeze
from engines.flow.prior import Split, TopPrior

LOG_2PI = math.log(2 * math.pi)


def max_levels(height: int, width: int) -> int:
    """How many squeezes the image sides allow (each halves them; both must be even)."""
    n = 0
    while height % 2 == 0 and width % 2 == 0 and height >= 2 and width >= 2:
        height, width, n = height // 2, width // 2, n + 1
    return n


class FlowStep(nn.Module):
    """actnorm → invertible 1×1 conv → affine coupling (one step of Glow)."""

    def __init__(self, channels: int, width: int, n_labels: int = 0):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv1x1(channels)
        self.coupling = AffineCoupling(channels, width, n_labels)

    def forward(self, x, labels=None):
        x, ld1 = self.actnorm(x)
        x, ld2 = self.invconv(x)
        x, ld3 = self.coupling(x, labels)
        return x, ld1 + ld2 + ld3

    def inverse(self, y, labels=None):
        y = self.coupling.inverse(y, labels)
        return self.actnorm.inverse(self.invconv.inverse(y))


class Glow(nn.Module):
    def __init__(self, channels: int, height: int, width: int, levels: int, steps: int, hidden: int,
                 n_labels: int = 0):
        super().__init__()
        if not 1 <= levels <= max_levels(height, width):
            raise ValueError(f"a {height}×{width} image allows 1…{max_levels(height, width)} levels, got {levels}")
        self.levels = nn.ModuleList()
        self.splits = nn.ModuleList()
        self.shapes: list[tuple[int, int, int]] = []  # the ε of each split, then the top's
        c, h, w = channels, height, width
        for i in range(levels):
            c, h, w = 4 * c, h // 2, w // 2
            self.levels.append(nn.ModuleList(FlowStep(c, hidden, n_labels) for _ in range(steps)))
            if i < levels - 1:
                self.splits.append(Split(c, n_labels))
                self.shapes.append((c - c // 2, h, w))
                c = c // 2
        self.top = TopPrior(c, h, w, n_labels)
        self.shapes.append((c, h, w))

    def forward(self, y, labels=None):
        """y in [0, 1) → (list of ε, log |det| per image in float64)."""
        h = y - 0.5
        logdet = torch.zeros(len(y), dtype=torch.float64, device=y.device)
        eps = []
        for i, steps in enumerate(self.levels):
            h = squeeze(h)
            for step in steps:
                h, ld = step(h, labels)
                logdet = logdet + ld.double()
            if i < len(self.splits):
                h, e, ld = self.splits[i](h, labels)
                eps.append(e)
                logdet = logdet + ld.double()
        e, ld = self.top(h, labels)
        eps.append(e)
        return eps, logdet + ld.double()

    def inverse(self, eps, labels=None):
        h = self.top.inverse(eps[-1], labels)
        for i in reversed(range(len(self.levels))):
            if i < len(self.splits):
                h = self.splits[i].inverse(h, eps[i], labels)
            for step in reversed(self.levels[i]):
                h = step.inverse(h, labels)
            h = unsqueeze(h)
        return h + 0.5

    def log_prob(self, y, labels=None):
        """log p(y) per image in nats (float64)."""
        eps, logdet = self.forward(y, labels)
        return standard_normal_logpdf(self.flatten(eps)) + logdet

    # ---- the latent as one vector per image ---------------------------------------------------
    def flatten(self, eps) -> torch.Tensor:
        return torch.cat([e.flatten(1) for e in eps], 1)

    def unflatten(self, z: torch.Tensor) -> list[torch.Tensor]:
        out, at = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            out.append(z[:, at: at + size].reshape(len(z), *shape))
            at += size
        return out


def standard_normal_logpdf(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row, summed in float64."""
    return -0.5 * (z.double() ** 2 + LOG_2PI).sum(1)
