"""The building blocks of a gated PixelCNN (van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders").

Two stacks keep the model causal without the original PixelCNN's blind spot:

- the **vertical stack** sees every pixel in the rows above (a (k//2+1)×k kernel padded so that
  output row i covers input rows i−k//2 … i); it reaches the horizontal stack only *shifted down
  one row*, so what the horizontal stack gets from it at (i, j) comes from rows < i — including
  the pixels up and to the right, which a masked k×k kernel never sees;
- the **horizontal stack** sees the current row to the left (a 1×(k//2+1) kernel padded on the
  left), and the current pixel itself only through the sub-pixel mask below.

Sub-pixels (R → G → B): every feature map's channels are split into `groups` (one per image
channel; channel j belongs to group j mod groups). At the current pixel a channel of group g may
read channels of groups < g (mask "A", the first layer: R sees nothing of its own pixel, G sees R,
B sees R and G) or ≤ g (mask "B", every later layer). Pixels to the left and rows above are seen
whole. Grey images (and code grids) have one group, where mask "A" hides the current pixel.

Gates: out = tanh(a) ⊙ σ(b) with (a, b) the two halves of a convolution's output, class
conditioning adding a learned per-class bias to both, and a residual 1×1 on the horizontal stack.

Positions (optional): a learned bias per row and per column added to both stacks' pre-activations
in every layer. A shallow net sees only R rows above a pixel, so six blank rows above look the
same at the top of an image (the digit has not begun) as at the bottom (it has ended); the row
bias tells them apart. Positions are not data, so causality is untouched; a net run on a crop of
rows is told where the crop starts (`row0`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def group_mask(out_ch: int, in_ch: int, groups: int, kind: str) -> torch.Tensor:
    """(out_ch, in_ch) 0/1 mask of which input channels an output channel may read at the
    current pixel: group(in) < group(out) for kind "A", ≤ for "B"."""
    go = torch.arange(out_ch)[:, None] % groups
    gi = torch.arange(in_ch)[None, :] % groups
    return (gi < go if kind == "A" else gi <= go).float()


class MaskedConv(nn.Conv2d):
    """A convolution whose weight is multiplied by a fixed mask before every use."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], mask: torch.Tensor):
        super().__init__(in_ch, out_ch, kernel)
        self.register_buffer("mask", mask.expand_as(self.weight).clone(), persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias)


def vertical_conv(in_ch: int, out_ch: int, k: int) -> nn.Module:
    """Rows above and the current row, k columns wide: output (i, j) ← input rows i−k//2…i."""
    return nn.Sequential(nn.ZeroPad2d((k // 2, k // 2, k // 2, 0)), nn.Conv2d(in_ch, out_ch, (k // 2 + 1, k)))


def horizontal_conv(in_ch: int, out_ch: int, k: int, groups: int, kind: str) -> nn.Module:
    """The current row, columns j−k//2…j; at column j (the current pixel) only the sub-pixels the
    mask `kind` allows."""
    mask = torch.ones(out_ch, in_ch, 1, k // 2 + 1)
    mask[:, :, 0, -1] = group_mask(out_ch, in_ch, groups, kind)
    return nn.Sequential(nn.ZeroPad2d((k // 2, 0, 0, 0)), MaskedConv(in_ch, out_ch, (1, k // 2 + 1), mask))


def pointwise(in_ch: int, out_ch: int, groups: int) -> nn.Module:
    """A 1×1 convolution that keeps the sub-pixel order (mask "B")."""
    return MaskedConv(in_ch, out_ch, (1, 1), group_mask(out_ch, in_ch, groups, "B")[:, :, None, None])


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Row i ← row i−1 (zeros in row 0)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer of both stacks. The first layer (mask "A", no residual) takes the input;
    later ones (mask "B") take the previous layer's (v, h), both `hidden` channels."""

    def __init__(self, in_ch: int, hidden: int, k: int, groups: int, first: bool, num_classes: int = 0,
                 positions: tuple[int, int] | None = None):
        super().__init__()
        self.first = first
        self.v = vertical_conv(in_ch, 2 * hidden, k)
        self.h = horizontal_conv(in_ch, 2 * hidden, k, groups, "A" if first else "B")
        # v → h: from rows above only (shifted), so every sub-pixel may read all of it.
        self.v_to_h = nn.Conv2d(2 * hidden, 2 * hidden, 1)
        self.h_out = pointwise(hidden, hidden, groups)
        self.cond = nn.Embedding(num_classes, 2 * hidden) if num_classes > 0 else None
        self.row = self.col = None
        if positions is not None:  # zero-initialised: training starts from the position-free net
            self.row = nn.Parameter(torch.zeros(2 * hidden, positions[0], 1))
            self.col = nn.Parameter(torch.zeros(2 * hidden, 1, positions[1]))

    def forward(self, v: torch.Tensor, h: torch.Tensor, labels: torch.Tensor | None = None, row0: int = 0):
        v_pre = self.v(v)
        h_pre = self.h(h) + self.v_to_h(shift_down(v_pre))
        if self.cond is not None and labels is not None:
            c = self.cond(labels)[:, :, None, None]
            v_pre, h_pre = v_pre + c, h_pre + c
        if self.row is not None:
            p = self.row[:, row0: row0 + v.shape[2]] + self.col
            v_pre, h_pre = v_pre + p, h_pre + p
        h_new = self.h_out(gate(h_pre))
        return gate(v_pre), (h_new if self.first else h + h_new)
