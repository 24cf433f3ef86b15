"""Fixed-seed samples over the course of a run: one row per moment, the same seeds in every
column, so the eye follows each seed from noise to a face (and sees a GAN collapse: the columns
become alike). Plain numpy; the Train panel feeds it the preview grids it already draws."""
from __future__ import annotations

import numpy as np

MAX_ROWS = 8


class SampleTimeline:
    def __init__(self, max_rows: int = MAX_ROWS):
        self.max_rows = max_rows
        self.steps: list[int] = []
        self.rows: list[np.ndarray] = []

    def clear(self) -> None:
        self.steps.clear()
        self.rows.clear()

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, step: int, grid: np.ndarray, side: int) -> bool:
        """Keep the first row of a preview grid (laid out by engines.train.tile with 1 px padding).
        A step already kept is skipped. With more than `max_rows`, the row closest in steps to its
        predecessor goes (never the first or newest), so the rows stay spread over the run."""
        if grid is None or (self.steps and step <= self.steps[-1]) or grid.shape[0] < side + 1:
            return False
        self.steps.append(int(step))
        self.rows.append(np.ascontiguousarray(grid[: side + 1]))
        while len(self.rows) > self.max_rows:
            gaps = [self.steps[i] - self.steps[i - 1] for i in range(1, len(self.steps) - 1)]
            drop = 1 + int(np.argmin(gaps))
            del self.steps[drop], self.rows[drop]
        return True

    def image(self) -> np.ndarray | None:
        if not self.rows:
            return None
        last = self.rows[-1]
        bottom = np.full((1, *last.shape[1:]), 255, np.uint8)  # the closing padding row
        return np.concatenate(self.rows + [bottom])

    def caption(self) -> str:
        if not self.steps:
            return ""
        return ("The same seeds (columns) over training, one row per moment, at steps "
                + ", ".join(f"{s:,}" for s in self.steps))
