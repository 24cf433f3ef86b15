"""Affine coupling (RealNVP / Glow §3.3): the channels split in two halves a, b; a passes
unchanged and a small conv net of a (and of the class, for conditional flows) gives a shift t
and a scale σ for b: y_b = (x_b + t) · σ. The Jacobian is triangular, log |det| = Σ log σ.

σ = sigmoid(h + 2) as in Glow's code: it lies in (0, 1) so a step can only contract b, which
keeps training stable, and log σ = −softplus(−(h + 2)) is computed without underflow. The net's
last convolution starts at zero (h = 0, t = 0), so every coupling starts close to the identity.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ZeroConv(nn.Module):
    """A 3×3 convolution whose weights and bias start at zero, its output scaled per channel by
    exp(3·logs) (logs also zero at first) so it can grow quickly once trained (Glow's Conv2dZeros)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        self.logs = nn.Parameter(torch.zeros(1, cout, 1, 1))

    def forward(self, x):
        return self.conv(x) * (3 * self.logs).exp()


class CouplingNet(nn.Module):
    """conv 3×3 → ReLU → conv 1×1 → ReLU → zero-initialised conv 3×3; a class embedding, when the
    flow is conditional, is added after the first convolution."""

    def __init__(self, cin: int, cout: int, width: int, n_labels: int = 0):
        super().__init__()
        self.inp = nn.Conv2d(cin, width, 3, padding=1)
        self.mid = nn.Conv2d(width, width, 1)
        self.out = ZeroConv(width, cout)
        self.embed = nn.Embedding(n_labels, width) if n_labels else None

    def forward(self, x, labels=None):
        h = self.inp(x)
        if self.embed is not None and labels is not None:
            h = h + self.embed(labels)[:, :, None, None]
        return self.out(F.relu(self.mid(F.relu(h))))


class AffineCoupling(nn.Module):
    def __init__(self, channels: int, width: int, n_labels: int = 0):
        super().__init__()
        self.ca = channels // 2
        self.net = CouplingNet(self.ca, 2 * (channels - self.ca), width, n_labels)

    def _shift_scale(self, xa, labels):
        h = self.net(xa, labels)
        shift, raw = h[:, 0::2], h[:, 1::2]
        raw = raw + 2.0
        return shift, torch.sigmoid(raw), -F.softplus(-raw)  # t, σ, log σ

    def forward(self, x, labels=None):
        xa, xb = x[:, : self.ca], x[:, self.ca:]
        shift, scale, log_scale = self._shift_scale(xa, labels)
        yb = (xb + shift) * scale
        return torch.cat([xa, yb], 1), log_scale.flatten(1).sum(1)

    def inverse(self, y, labels=None):
        ya, yb = y[:, : self.ca], y[:, self.ca:]
        shift, scale, _ = self._shift_scale(ya, labels)
        return torch.cat([ya, yb / scale - shift], 1)
