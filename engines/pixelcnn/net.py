"""The gated PixelCNN network: inputs (N, C_in, H, W) → logits (N, V, G, H, W), one V-way
distribution per sub-pixel (G groups = image channels, or 1 for a grid of codes).

The same net models images (C_in = G = image channels, V = 256 values, input scaled to [−1, 1])
and VQ code grids (`engines.vq.prior_pixelcnn`: an embedding of the K codes as input, G = 1,
V = K): only the input layer and V differ.

Receptive field: the first layer's kernel is `kernel` wide, later ones `inner_kernel` (3 in the
paper), so after L layers the output at (i, j) sees the rows i−1−R … i−1 over columns j−R … j+R
and the pixels j−R … j−1 of its own row, R = kernel//2 + (L − 1)·(inner_kernel//2)
(tests/test_pixelcnn.py checks exactly this set). A 28-pixel digit needs R well above 10 for a
pixel to see where the stroke began; a wider inner kernel buys that at fewer layers.
`positions` (H, W) adds a learned row and column bias to every layer (see layers.py).

The last layer (hidden → V·G, a 1×1 convolution) runs as a matrix product on channels-last
features, so `logits_last` gives (N, H, W, G, V) with the V values contiguous: the cross-entropy
over 256 values then reads memory in order (a third faster per training step than the softmax
over the strided channel axis of NCHW logits).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.pixelcnn.layers import GatedLayer, pointwise


class GatedPixelCNN(nn.Module):
    def __init__(self, in_channels: int, groups: int, values: int, hidden: int = 64, layers: int = 8,
                 kernel: int = 7, num_classes: int = 0, positions: tuple[int, int] | None = None,
                 inner_kernel: int = 3):
        super().__init__()
        if hidden % groups:
            raise ValueError(f"hidden ({hidden}) must be a multiple of the image channels ({groups})")
        self.groups, self.values = groups, values
        self.layers = nn.ModuleList(
            [GatedLayer(in_channels, hidden, kernel, groups, first=True, num_classes=num_classes, positions=positions)]
            + [GatedLayer(hidden, hidden, inner_kernel, groups, first=False, num_classes=num_classes, positions=positions)
               for _ in range(layers - 1)])
        self.head = nn.Sequential(nn.ReLU(), pointwise(hidden, hidden, groups), nn.ReLU(),
                                  pointwise(hidden, values * groups, groups))

    def receptive_radius(self) -> int:
        """R: the output at (i, j) sees rows i−1−R … i−1 and columns j−R … j+R (and its row's left)."""
        k = self.layers[0].v[1].kernel_size[1]
        inner = self.layers[1].v[1].kernel_size[1] if len(self.layers) > 1 else 1
        return k // 2 + (len(self.layers) - 1) * (inner // 2)

    def context_rows(self) -> int:
        """How many rows above a pixel can reach it (R + 1)."""
        return self.receptive_radius() + 1

    def logits_last(self, x: torch.Tensor, labels: torch.Tensor | None = None, row0: int = 0) -> torch.Tensor:
        """(N, C_in, h, W) → (N, h, W, G, V) logits; `row0`: the image row the input's first row is."""
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, labels, row0)
        h = self.head[2](self.head[1](self.head[0](h)))
        last = self.head[3]
        w = (last.weight * last.mask)[:, :, 0, 0]  # channel j = value·G + group
        out = F.linear(h.permute(0, 2, 3, 1), w, last.bias)
        n, hh, ww, _ = out.shape
        return out.view(n, hh, ww, self.values, self.groups).transpose(3, 4)  # a view; contiguous when G = 1

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, row0: int = 0) -> torch.Tensor:
        """(N, C_in, h, W) → (N, V, G, h, W) logits (a permuted view of `logits_last`)."""
        return self.logits_last(x, labels, row0).permute(0, 4, 3, 1, 2)
