"""Dequantisation: from 8-bit images to a continuous density and back to exact bits per dimension.

An image is a vector of integers k ∈ {0 … 255}^D (the engine's x = k/255). A flow models a
density p(y) on y ∈ [0, 1)^D. With y = (k + u)/256 and u ∈ [0, 1)^D drawn from q(u | k),
Jensen's inequality gives the bound on the discrete model's probability

    −log P(k) ≤ E_q[ −log p(y) + log q(u | k) ] + D·log 256        (nats)

(the 256^D is the Jacobian of u ↦ y). Uniform dequantisation takes q = U[0, 1)^D, so log q = 0;
variational dequantisation (Flow++, Ho et al. 2019) learns q(u | k) — here one conditional
affine step then a sigmoid: u = sigmoid(μ(k) + e^{s(k)}·η), η ~ N(0, I) — and tightens the bound.
Bits per dimension is the same bound divided by D·ln 2; with [0, 1]-scaled data the D·log 256
term is exactly "+ 8" bits per dimension.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from engines.flow.coupling import ZeroConv

N_BINS = 256
LOG_2PI = math.log(2 * math.pi)


def to_bins(x: torch.Tensor) -> torch.Tensor:
    """x = k/255 in [0, 1] → k as floats (rounded: intensities that are not exact multiples of
    1/255 go to the nearest bin)."""
    return torch.round(x.clamp(0, 1) * (N_BINS - 1))


def bin_centres(x: torch.Tensor) -> torch.Tensor:
    """x ↦ y = (255·x + ½)/256: the k/255 intensities go to the middle of their bins. An affine map
    of any real x (not only multiples of 1/255), so `from_bin_centres` inverts it exactly."""
    return (x * (N_BINS - 1) + 0.5) / N_BINS


def from_bin_centres(y: torch.Tensor) -> torch.Tensor:
    return (y * N_BINS - 0.5) / (N_BINS - 1)


class VariationalDequantizer(nn.Module):
    """q(u | k): η ~ N(0, I), h = μ + e^s·η with (μ, s) from a small conv net of the image
    (zero-initialised last layer: it starts as u = sigmoid(η)), u = sigmoid(h)."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(width, width, 1), nn.ReLU(), ZeroConv(width, 2 * channels))

    def forward(self, k: torch.Tensor, eta: torch.Tensor):
        """u and log q(u | k) per image, for bins k (N, C, H, W) and noise η ~ N(0, I)."""
        h = self.net(k / (N_BINS - 1) - 0.5)
        mu, s = h[:, 0::2], h[:, 1::2]
        z = mu + s.exp() * eta
        u = torch.sigmoid(z)
        # log q(u) = log N(η) − s − log sigmoid'(z), log sigmoid'(z) = −softplus(−z) − softplus(z)
        log_q = -0.5 * (eta ** 2 + LOG_2PI) - s + F.softplus(-z) + F.softplus(z)
        return u, log_q.flatten(1).sum(1)


def dequantize(x: torch.Tensor, generator: torch.Generator, net: VariationalDequantizer | None = None):
    """Images x = k/255 → (y = (k + u)/256 in [0, 1), log q(u | k) per image; 0 for uniform)."""
    k = to_bins(x)
    if net is None:
        u = torch.rand(k.shape, generator=generator, device=k.device, dtype=k.dtype)
        return (k + u) / N_BINS, torch.zeros(len(k), device=k.device, dtype=k.dtype)
    eta = torch.randn(k.shape, generator=generator, device=k.device, dtype=k.dtype)
    u, log_q = net(k, eta)
    return (k + u) / N_BINS, log_q


def bits_per_dim(log_p_y: torch.Tensor, log_q: torch.Tensor, dims: int) -> torch.Tensor:
    """The bound above per image in bits per dimension, from log p(y) and log q(u | k) in nats
    (computed in float64: log p(y) of a 64×64×3 image is ~10⁴ nats)."""
    nll = -(log_p_y.double() - log_q.double()) + dims * math.log(N_BINS)
    return nll / (dims * math.log(2))
