"""A small U-Net noise predictor for 8–64 px images (the diffusion engine's network).

Residual blocks with GroupNorm and SiLU; the sinusoidal time embedding (plus a class embedding
for conditional models) enters every block by scale-shift after its second GroupNorm
(AdaGN: h ← GroupNorm(h)·(1 + y_s) + y_b, as on the slides); self-attention at the low
resolutions. Resolution halves while both sides are even and larger than 4, so 28×28 runs as
28 → 14 → 7 with no padding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engines.spec import ImageSpec


def level_sizes(spec: ImageSpec, max_levels: int) -> list[tuple[int, int]]:
    """(height, width) of each U-Net level, finest first."""
    h, w = spec.height, spec.width
    sizes = [(h, w)]
    while len(sizes) < max_levels and h % 2 == 0 and w % 2 == 0 and min(h, w) > 4:
        h, w = h // 2, w // 2
        sizes.append((h, w))
    return sizes


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style sinusoids of the (float) timestep: (N,) → (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, c) if c % min(8, c) == 0 else 1, c)


def _zero(m: nn.Module) -> nn.Module:
    # Zero-initialised last layers make every residual branch start as the identity.
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = _norm(c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, c: int, heads: int = 4):
        super().__init__()
        self.heads = heads if c % heads == 0 else 1
        self.norm = _norm(c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = _zero(nn.Conv2d(c, c, 1))

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).view(n, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # (n, heads, hw, c/heads)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class Block(nn.Module):
    """A residual block, optionally followed by self-attention."""

    def __init__(self, c_in, c_out, emb_dim, attn: bool, dropout: float):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, dropout)
        self.attn = Attention(c_out) if attn else None

    def forward(self, x, emb):
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNet(nn.Module):
    """(x_t, t, class) → network output of x_t's shape (ε, x₀ or v, by the engine's target).

    `num_classes` > 0 adds a class embedding with one extra "no class" entry (index
    num_classes) that classifier-free guidance uses for the unconditional prediction."""

    def __init__(self, spec: ImageSpec, width: int = 32, mults: tuple[int, ...] = (1, 2, 2, 2),
                 blocks: int = 1, attn_size: int = 8, num_classes: int = 0, dropout: float = 0.0):
        super().__init__()
        sizes = level_sizes(spec, len(mults))
        chans = [width * m for m in mults[: len(sizes)]]
        emb_dim = 4 * width
        self.time_dim = width
        self.time_mlp = nn.Sequential(nn.Linear(width, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.num_classes = num_classes
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.conv_in = nn.Conv2d(spec.channels, width, 3, padding=1)

        self.down = nn.ModuleList()
        skips, c = [width], width
        for i, (ch, (h, w)) in enumerate(zip(chans, sizes)):
            attn = max(h, w) <= attn_size
            for _ in range(blocks):
                self.down.append(Block(c, ch, emb_dim, attn, dropout))
                c = ch
                skips.append(c)
            if i < len(sizes) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([Block(c, c, emb_dim, True, dropout), Block(c, c, emb_dim, False, dropout)])

        self.up = nn.ModuleList()
        for i in reversed(range(len(sizes))):
            ch, (h, w) = chans[i], sizes[i]
            attn = max(h, w) <= attn_size
            for _ in range(blocks + 1):
                self.up.append(Block(c + skips.pop(), ch, emb_dim, attn, dropout))
                c = ch
            if i > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)))
        self.out = nn.Sequential(_norm(c), nn.SiLU(), _zero(nn.Conv2d(c, spec.channels, 3, padding=1)))

    def forward(self, x, t, labels=None):
        emb = self.time_mlp(timestep_embedding(t, self.time_dim))
        if self.class_emb is not None:
            if labels is None:
                labels = torch.full((len(x),), self.num_classes, device=x.device, dtype=torch.long)
            emb = emb + self.class_emb(labels)
        h = self.conv_in(x)
        hs = [h]
        for m in self.down:
            h = m(h, emb) if isinstance(m, Block) else m(h)
            hs.append(h)
        for m in self.mid:
            h = m(h, emb)
        for m in self.up:
            if isinstance(m, Block):
                h = m(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = m(h)
        return self.out(h)
