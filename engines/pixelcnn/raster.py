"""Drawing from an autoregressive model pixel by pixel, in raster order, observable step by step.

`RasterLoop` fills the cells of a value grid (N, G, H, W) (G sub-pixels per pixel: R → G → B)
that a mask marks, one pixel at a time in raster order and each sub-pixel given everything
before it; iterate it for one `RasterStep` per pixel (every step under the caller's guard — the
engine's lock in inference mode — which is free between steps), then `.result` holds the grid.
Sampling is the all-true mask; completion (keep the top of an image, draw the rest) and a VQ
prior's inpainting are other masks. The panel, the CLI's video and `sample` all drive it.

Each step runs the network on the rows that can reach the current one only — none below it (the
model is causal) and, given `context_rows` (the net's receptive field above a pixel), none further
up: the crop gives the same logits as the whole image (tests/test_pixelcnn.py checks) for a
fraction of the work.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch


@dataclass
class RasterStep:
    index: int  # steps done so far − 1 (0 … len(loop) − 1)
    row: int
    col: int
    values: torch.Tensor  # the (N, G, H, W) grid after this pixel (the loop's own tensor: clone to keep)
    total: int = 0  # steps in the whole loop


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """(N, V) logits → (N,) values: a categorical draw at `temperature` (0: the most likely)."""
    if temperature <= 0:
        return logits.argmax(1)
    probs = torch.softmax(logits.float() / temperature, 1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


class RasterLoop:
    def __init__(self, logits: Callable[[torch.Tensor], torch.Tensor], values: torch.Tensor, todo: torch.Tensor,
                 temperature: float = 1.0, generator: torch.Generator | None = None, guard=None,
                 context_rows: int | None = None):
        """`logits(values[:, :, a:b], a)` → (N, V, G, b − a, W) for rows a…b−1; `values` (N, G, H, W)
        long, the given cells filled in; `todo` (N, H, W) bool, the pixels to draw; `context_rows`
        how many rows above a pixel can reach it (None: all)."""
        self.context_rows = context_rows
        self.logits, self.temperature, self.generator = logits, float(temperature), generator
        self.values = values.clone()
        self.todo = todo.to(values.device, torch.bool)
        self.guard = guard or contextlib.nullcontext
        any_row = self.todo.any(0)
        self.positions = [(int(i), int(j)) for i, j in any_row.nonzero().tolist()]  # raster order
        self.result: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def __iter__(self) -> Iterator[RasterStep]:
        g = self.values.shape[1]
        for k, (i, j) in enumerate(self.positions):
            with self.guard():
                rows = self.todo[:, i, j]
                top = 0 if self.context_rows is None else max(0, i - self.context_rows)
                for c in range(g):
                    lg = self.logits(self.values[:, :, top: i + 1], top)[:, :, c, -1, j]
                    pick = draw(lg, self.temperature, self.generator)
                    self.values[:, c, i, j] = torch.where(rows, pick, self.values[:, c, i, j])
            yield RasterStep(k, i, j, self.values, len(self.positions))
        self.result = self.values

    def run(self, callback=None) -> torch.Tensor:
        for step in self:
            if callback is not None:
                callback(step)
        return self.result if self.result is not None else self.values
