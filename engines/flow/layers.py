"""The invertible pieces of a Glow step: squeeze, actnorm, the LU-decomposed 1×1 convolution.

Every layer maps (N, C, H, W) → (N, C', H', W') and back exactly. `forward(x)` returns
(y, logdet) with logdet = log |det ∂y/∂x| per image, shape (N,), in float32 (each is a short sum
of per-channel terms times H·W, so float32 keeps ~7 significant digits; the flow adds the
layers' terms up in float64). `inverse(y)` returns x.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, 4C, H/2, W/2): each 2×2 patch becomes 4 channels (a permutation: log-det 0)."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of `squeeze`."""
    n, c, h, w = x.shape
    x = x.reshape(n, c // 4, 2, 2, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(n, c // 4, 2 * h, 2 * w)


class ActNorm(nn.Module):
    """y = (x + b) · exp(s) per channel. Data-dependent initialisation (Glow §3.1): the first
    training batch sets b and s so that y has zero mean and unit variance per channel; the
    `initialized` buffer is saved with the weights, so loading or resuming never re-initialises."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.logs = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False) if x[:, :1].numel() > 1 else torch.ones_like(mean)
        self.bias.copy_(-mean)
        self.logs.copy_(-torch.log(std.clamp_min(1e-6)))
        self.initialized.fill_(1)

    def forward(self, x):
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = (x + self.bias) * self.logs.exp()
        return y, self.logs.sum().expand(len(x)) * (x.shape[2] * x.shape[3])

    def inverse(self, y):
        return y * (-self.logs).exp() - self.bias


class InvConv1x1(nn.Module):
    """An invertible 1×1 convolution with W = P·L·(U + diag(sign·exp(log_s))) (Glow §3.2): P a
    fixed permutation, L unit lower-triangular, U strictly upper-triangular. log |det W| is then
    Σ log_s (no determinant to compute) and stays exact; W starts as a random rotation. The inverse
    weight is computed in float64, so forward then inverse agree to float32 rounding."""

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.register_buffer("eye", torch.eye(channels))
        self.lower = nn.Parameter(lower.float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def weight(self) -> torch.Tensor:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.perm @ lower @ upper

    def forward(self, x):
        w = self.weight()
        y = F.conv2d(x, w.view(*w.shape, 1, 1))
        return y, self.log_s.sum().expand(len(x)) * (x.shape[2] * x.shape[3])

    def inverse(self, y):
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv2d(y, w_inv.view(*w_inv.shape, 1, 1))
