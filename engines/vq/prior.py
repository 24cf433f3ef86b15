"""An autoregressive prior over VQ code grids: a small causal transformer.

The grid is read in raster order (row by row); token t is predicted from a begin token and the
tokens before it, p(c) = Π_t p(c_t | c_<t). Sampling draws the tokens one at a time with a
temperature; `fill` re-draws only chosen cells given everything before them in raster order —
inpainting as far as a one-directional prior allows (cells after a painted region are kept, but
the prior never looked at them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CodePrior(nn.Module):
    def __init__(self, num_codes: int, grid: tuple[int, int], dim: int = 128, layers: int = 4, heads: int = 4):
        super().__init__()
        self.num_codes = num_codes
        self.grid = tuple(grid)
        self.length = grid[0] * grid[1]
        self.tok = nn.Embedding(num_codes + 1, dim)  # the last token is "begin"
        self.pos = nn.Parameter(torch.randn(self.length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_codes)
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        mask = torch.triu(torch.full((self.length, self.length), float("-inf")), diagonal=1)
        self.register_buffer("causal", mask, persistent=False)

    @property
    def trained(self) -> bool:
        return int(self.trained_steps) > 0

    def logits(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, L) codes → (N, L, K): the logits at t predict codes[:, t] from codes[:, :t]."""
        n = codes.shape[0]
        begin = torch.full((n, 1), self.num_codes, dtype=torch.long, device=codes.device)
        inp = torch.cat([begin, codes[:, :-1]], 1)
        h = self.tok(inp) + self.pos[: inp.shape[1]]
        h = self.blocks(h, mask=self.causal[: inp.shape[1], : inp.shape[1]], is_causal=True)
        return self.head(self.norm(h))

    def nll(self, grids: torch.Tensor) -> torch.Tensor:
        """(N, h, w) code grids → −log p per grid, nats."""
        codes = grids.reshape(len(grids), -1)
        lg = self.logits(codes).float()
        return F.cross_entropy(lg.transpose(1, 2), codes, reduction="none").sum(1)

    @torch.no_grad()
    def fill(self, grids: torch.Tensor, mask: torch.Tensor, temperature: float,
             generator: torch.Generator) -> torch.Tensor:
        """Re-draw the cells where `mask` (N, h, w) is true, in raster order, each given all
        the cells before it. Temperature 0 takes the most likely code."""
        codes = grids.reshape(len(grids), -1).clone()
        m = mask.reshape(len(grids), -1).to(codes.device)
        for t in range(self.length):
            rows = m[:, t]
            if not bool(rows.any()):
                continue
            # Only the prefix matters at position t: later tokens are masked out anyway.
            lg = self.logits(codes[:, : t + 1])[:, t].float()
            if temperature <= 0:
                pick = lg.argmax(1)
            else:
                probs = F.softmax(lg / temperature, 1)
                pick = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            codes[:, t] = torch.where(rows, pick, codes[:, t])
        return codes.view_as(grids)

    def sample(self, n: int, temperature: float, generator: torch.Generator) -> torch.Tensor:
        device = self.pos.device
        grids = torch.zeros((n, *self.grid), dtype=torch.long, device=device)
        return self.fill(grids, torch.ones_like(grids, dtype=torch.bool), temperature, generator)
