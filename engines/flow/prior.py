"""The learned priors of a multi-scale flow, written as standardising bijections.

At a split (Glow §3, RealNVP's multi-scale architecture) half of the channels z leave the flow;
their prior is N(μ, σ²) with μ, log σ from a zero-initialised conv of the half that stays (and
the class, for conditional flows). At the top, μ, log σ are learned per position (and class).
Instead of scoring z under N(μ, σ²) we map it to ε = (z − μ)/σ, an affine bijection with
log-det −Σ log σ, and score ε under N(0, I): the same log-density, but the latent the explorer
sees is ε — the prior is exactly N(0, I), temperature T is ε ↦ T·ε (Glow's z = μ + T·σ·ε), and
decoding ε back to z needs nothing but the kept half.
"""
from __future__ import annotations

import torch
from torch import nn

from engines.flow.coupling import ZeroConv


class _ClassBias(nn.Module):
    """A per-class, per-channel offset of (μ, log σ), zero at first; absent for unconditional flows."""

    def __init__(self, n_labels: int, channels: int):
        super().__init__()
        self.embed = nn.Embedding(n_labels, channels)
        nn.init.zeros_(self.embed.weight)

    def forward(self, labels):
        return self.embed(labels)[:, :, None, None]


class Split(nn.Module):
    """(N, C, H, W) → kept (N, C/2, H, W) and ε (N, C − C/2, H, W)."""

    def __init__(self, channels: int, n_labels: int = 0):
        super().__init__()
        self.ck = channels // 2
        cz = channels - self.ck
        self.conv = ZeroConv(self.ck, 2 * cz)
        self.cls = _ClassBias(n_labels, 2 * cz) if n_labels else None

    def _params(self, kept, labels):
        h = self.conv(kept)
        if self.cls is not None and labels is not None:
            h = h + self.cls(labels)
        return h[:, 0::2], h[:, 1::2]  # μ, log σ

    def forward(self, x, labels=None):
        kept, z = x[:, : self.ck], x[:, self.ck:]
        mu, logs = self._params(kept, labels)
        return kept, (z - mu) * (-logs).exp(), -logs.flatten(1).sum(1)

    def inverse(self, kept, eps, labels=None):
        mu, logs = self._params(kept, labels)
        return torch.cat([kept, mu + logs.exp() * eps], 1)


class TopPrior(nn.Module):
    """The prior of what is left after the last level: μ, log σ learned per position (and class)."""

    def __init__(self, channels: int, height: int, width: int, n_labels: int = 0):
        super().__init__()
        self.params = nn.Parameter(torch.zeros(1, 2 * channels, height, width))
        self.cls = _ClassBias(n_labels, 2 * channels) if n_labels else None

    def _params(self, n, labels):
        h = self.params.expand(n, -1, -1, -1)
        if self.cls is not None and labels is not None:
            h = h + self.cls(labels)
        return h[:, 0::2], h[:, 1::2]

    def forward(self, z, labels=None):
        mu, logs = self._params(len(z), labels)
        return (z - mu) * (-logs).exp(), -logs.flatten(1).sum(1)

    def inverse(self, eps, labels=None):
        mu, logs = self._params(len(eps), labels)
        return mu + logs.exp() * eps
