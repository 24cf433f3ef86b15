"""Networks of the VQ-VAE family: a conv encoder to a grid of vectors, its mirror decoder, and
the VQGAN patch discriminator.

The grid keeps spatial layout (unlike `nets.ConvEncoder`, which ends in a linear layer), so each
code index stands for one region of the image: 64→8×8, 32→8×8, 28→7×7, 16→8×8, 8→4×4 by default.
"""
from __future__ import annotations

from torch import nn

from engines.spec import ImageSpec


def grid_plan(spec: ImageSpec, downsample: int = 0) -> int:
    """Number of stride-2 halvings. 0 = automatic: halve while both sides are even and the grid
    is larger than 8 (at least once when the image is at least 8 pixels)."""
    h, w = spec.height, spec.width
    if downsample > 0:
        if h % (2 ** downsample) or w % (2 ** downsample):
            raise ValueError(f"downsample={downsample} needs image sides divisible by {2 ** downsample}, "
                             f"got {spec.height}×{spec.width}")
        return downsample
    n = 0
    while h % 2 == 0 and w % 2 == 0 and min(h, w) >= 8 and (max(h, w) > 8 or n == 0):
        h, w, n = h // 2, w // 2, n + 1
    return n


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel. Group/batch norms pool statistics over the
    whole map, so editing one code would change every pixel of the decoded image; this keeps
    the decoder local (an edited cell changes only its neighbourhood) and batch-independent."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.LayerNorm(c)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _norm(c: int) -> nn.Module:
    return ChannelNorm(c)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_norm(c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                  _norm(c), nn.SiLU(), nn.Conv2d(c, c, 1))

    def forward(self, x):
        return x + self.body(x)


def _channels(halvings: int, width: int) -> list[int]:
    return [min(width * 2 ** i, width * 4) for i in range(halvings)]


class GridEncoder(nn.Module):
    """image (N,C,H,W) → (N, out_channels, H/2^k, W/2^k)."""

    def __init__(self, spec: ImageSpec, out_channels: int, width: int, halvings: int, res_blocks: int):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = spec.channels
        for i, c in enumerate(_channels(halvings, width)):
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1)]
            layers += [nn.SiLU()] if i == 0 else [_norm(c), nn.SiLU()]
            c_in = c
        if halvings == 0:
            layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.SiLU()]
            c_in = width
        layers += [ResBlock(c_in) for _ in range(res_blocks)]
        layers += [_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, out_channels, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class GridDecoder(nn.Module):
    """(N, in_channels, h, w) → image logits (N,C,H,W); mirrors GridEncoder."""

    def __init__(self, spec: ImageSpec, in_channels: int, width: int, halvings: int, res_blocks: int):
        super().__init__()
        chans = list(reversed(_channels(halvings, width))) or [width]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 3, padding=1)]
        layers += [ResBlock(chans[0]) for _ in range(res_blocks)]
        layers += [_norm(chans[0]), nn.SiLU()]
        for i in range(halvings):
            last = i == halvings - 1
            c_out = spec.channels if last else chans[i + 1]
            layers += [nn.ConvTranspose2d(chans[i], c_out, 4, stride=2, padding=1)]
            if not last:
                layers += [_norm(c_out), nn.SiLU()]
        if halvings == 0:
            layers += [nn.Conv2d(chans[0], spec.channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    @property
    def last_layer(self) -> nn.Parameter:
        """The weight the VQGAN adaptive weight compares gradient norms at."""
        return self.body[-1].weight

    def forward(self, z):
        return self.body(z)


class PatchDiscriminator(nn.Module):
    """PatchGAN: one real/fake logit per overlapping patch rather than per image."""

    def __init__(self, spec: ImageSpec, width: int, layers: int = 2):
        super().__init__()
        mods: list[nn.Module] = []
        c_in, c = spec.channels, width
        side = min(spec.height, spec.width)
        for i in range(layers):
            if side < 4:
                break
            mods += [nn.Conv2d(c_in, c, 4, stride=2, padding=1)]
            mods += [nn.LeakyReLU(0.2)] if i == 0 else [_norm(c), nn.LeakyReLU(0.2)]
            c_in, c, side = c, c * 2, side // 2
        mods += [nn.Conv2d(c_in, 1, 3, padding=1)]
        self.body = nn.Sequential(*mods)

    def forward(self, x):
        return self.body(x)
