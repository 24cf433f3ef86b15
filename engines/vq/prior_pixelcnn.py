"""A gated PixelCNN prior over VQ code grids (`train-prior --set prior=pixelcnn`), the VQ-VAE
paper's own choice, beside the causal transformer of `engines.vq.prior`.

The same network as the `pixelcnn` engine (`engines.pixelcnn.net`), with the K codes embedded as
its input and a K-way softmax per cell instead of 256 levels per sub-pixel (one group: a cell is
one "sub-pixel"). It has the transformer prior's interface — `nll`, `fill`, `sample`,
`trained_steps` — so the VQ engine, `train-prior`, the Codebook panel and `evaluate` (prior nats
per code) work with either, and the two can be compared on the same codebook. The difference in
kind: the transformer sees every earlier cell; the PixelCNN sees the rows above within its
receptive field and the cells to the left, through convolutions (cheaper, more local).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engines.pixelcnn.net import GatedPixelCNN
from engines.pixelcnn.raster import RasterLoop


class PixelCNNCodePrior(nn.Module):
    def __init__(self, num_codes: int, grid: tuple[int, int], dim: int = 128, layers: int = 4, kernel: int = 7):
        super().__init__()
        self.num_codes = num_codes
        self.grid = tuple(grid)
        self.length = grid[0] * grid[1]
        self.embed = nn.Embedding(num_codes, dim)
        self.net = GatedPixelCNN(dim, 1, num_codes, hidden=dim, layers=layers, kernel=kernel)
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))

    @property
    def trained(self) -> bool:
        return int(self.trained_steps) > 0

    def logits(self, values: torch.Tensor, row0: int = 0) -> torch.Tensor:
        """(N, 1, h, w) codes → (N, K, 1, h, w): each cell's logits given the cells before it
        (`row0`: the grid row of the first; unused, this net has no position biases)."""
        return self.net(self.embed(values[:, 0]).permute(0, 3, 1, 2))

    def nll(self, grids: torch.Tensor) -> torch.Tensor:
        """(N, h, w) code grids → −log p per grid, nats."""
        v = grids[:, None].long()
        return F.cross_entropy(self.logits(v).float(), v, reduction="none").flatten(1).sum(1)

    @torch.no_grad()
    def fill(self, grids: torch.Tensor, mask: torch.Tensor, temperature: float,
             generator: torch.Generator) -> torch.Tensor:
        """Re-draw the cells where `mask` (N, h, w) is true, in raster order, each given the cells
        before it (temperature 0: the most likely code)."""
        loop = RasterLoop(self.logits, grids[:, None].long(), mask, temperature, generator,
                          context_rows=self.net.context_rows())
        return loop.run()[:, 0]

    def sample(self, n: int, temperature: float, generator: torch.Generator) -> torch.Tensor:
        device = self.embed.weight.device
        grids = torch.zeros((n, *self.grid), dtype=torch.long, device=device)
        return self.fill(grids, torch.ones_like(grids, dtype=torch.bool), temperature, generator)
