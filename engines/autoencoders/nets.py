"""Convolutional encoder/decoder pairs that fit every supported image size.

The encoder halves the resolution while both sides are even and larger than 4 (64→32→16→8→4,
28→14→7, 8→4), so 28×28 needs no padding tricks; the decoder mirrors it exactly with
stride-2 transposed convolutions.
"""
from __future__ import annotations

from torch import nn

from engines.spec import ImageSpec


def down_plan(spec: ImageSpec, base: int, max_channels: int) -> tuple[list[int], int, int]:
    """Channels after each stride-2 stage and the final feature-map size.

    DCGAN-style: the first stage maps the image straight to `base` channels at half
    resolution, so no full-resolution feature maps are ever computed (they dominate CPU time)."""
    h, w, ch = spec.height, spec.width, []
    c = base
    while h % 2 == 0 and w % 2 == 0 and min(h, w) > 4:
        ch.append(c)
        h, w = h // 2, w // 2
        c = min(c * 2, max_channels)
    return ch, h, w


def _act():
    # In place: every SiLU here follows a convolution, a linear layer or a GroupNorm, none of which
    # needs its own output for the backward pass (same values and gradients, checked in
    # tests/test_infer_speedups.py); it saves one activation-sized tensor per layer.
    return nn.SiLU(inplace=True)


def _norm(c: int) -> nn.Module:
    # GroupNorm keeps single-image decoding identical to batched decoding (BatchNorm would not).
    return nn.GroupNorm(min(8, c), c)


class ConvEncoder(nn.Module):
    """image (N,C,H,W) → feature vector (N, out_features)."""

    mode_free = True  # forward never reads `training` (engines.base.MODE_FREE)

    def __init__(self, spec: ImageSpec, out_features: int, base: int = 32, max_channels: int = 256):
        super().__init__()
        chans, h, w = down_plan(spec, base, max_channels)
        layers: list[nn.Module] = []
        c_in = spec.channels
        if not chans:  # sides that never halve: one stride-1 stage
            layers += [nn.Conv2d(c_in, base, 3, padding=1), _act()]
            c_in = base
        for i, c in enumerate(chans):
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1)]
            layers += [_act()] if i == 0 else [_norm(c), _act()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.out_shape = (c_in, h, w)
        self.head = nn.Linear(c_in * h * w, out_features)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class ConvDecoder(nn.Module):
    """vector (N, in_features) → image logits/means (N,C,H,W); mirrors ConvEncoder."""

    mode_free = True

    def __init__(self, spec: ImageSpec, in_features: int, base: int = 32, max_channels: int = 256):
        super().__init__()
        chans, h, w = down_plan(spec, base, max_channels)
        top = chans[-1] if chans else base
        self.start_shape = (top, h, w)
        self.head = nn.Sequential(nn.Linear(in_features, top * h * w), _act())
        layers: list[nn.Module] = []
        rev = list(reversed(chans))
        for i, c in enumerate(rev):
            last = i == len(rev) - 1
            c_out = spec.channels if last else rev[i + 1]
            layers += [nn.ConvTranspose2d(c, c_out, 4, stride=2, padding=1)]
            if not last:
                layers += [_norm(c_out), _act()]
        if not chans:
            layers += [nn.Conv2d(base, spec.channels, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        return self.body(self.head(z).view(len(z), *self.start_shape))

    def latent_layer(self, free_dims: int):
        """The first linear layer's weight and activations (linear → SiLU): `engines.base.LatentLayer`."""
        from engines.base import LatentLayer

        return LatentLayer(self.head[0].weight, self.head, free_dims)


class LatentGaussian(nn.Module):
    """A full-covariance Gaussian fitted to training latents: the sampling prior for models
    that have none of their own (the plain autoencoder), saved with the weights."""

    mode_free = True

    def __init__(self, dim: int):
        super().__init__()
        import torch

        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("chol", torch.eye(dim))

    def fit(self, z) -> None:
        import torch

        mean = z.mean(0)
        cov = torch.cov((z - mean).T).reshape(z.shape[1], z.shape[1])
        cov = cov + 1e-5 * cov.diagonal().mean().clamp_min(1e-6) * torch.eye(z.shape[1], device=z.device)
        self.mean.copy_(mean)
        self.chol.copy_(torch.linalg.cholesky(cov))

    def transform(self, eps):
        return self.mean + eps @ self.chol.T
