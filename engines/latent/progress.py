"""What the long-running generators of this package (`cache.encode_dataset`,
`projection.run_umap`, `atlas.decode_atlas`) yield.

They follow the project's worker protocol: each `yield` reports progress and is the only place a
Cancel can land (the worker closes the generator there), and the result is the generator's return
value. `run` drives one to the end for headless callers and tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    stage: str  # short machine-readable name: "encode", "neighbours", "init", "layout", "cached", …
    fraction: float | None  # 0..1 of the whole job, None when the stage cannot tell
    message: str = ""  # one human-readable line for a status bar


def run(gen: Generator[Progress, None, T], on_progress: Callable[[Progress], None] | None = None) -> T:
    """Drive a progress generator to the end and return its result."""
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(p)
