"""Bounds of the command line's numbers: argparse types that refuse NaN, ±Inf, non-numbers and
values out of range in one line (exit 2) before any work starts, and the ranges of sampling
options given as `--set key=value`."""
from __future__ import annotations

import argparse
import math

SAMPLE_MAX = 10_000  # images one `sample` draws
# Ranges of the sampling options engines declare (`--set k=v` of sample and export); others ±1e6.
SAMPLING_BOUNDS = {"steps": (1, 10_000), "temperature": (1e-3, 100.0), "truncation": (0.0, 10.0),
                   "eta": (0.0, 10.0), "guidance": (0.0, 100.0), "label": (-1, 10_000)}


def number(kind, lo, hi, lo_open=False):
    """An argparse type: an int or a finite float within [lo, hi] (or (lo, hi] when `lo_open`),
    refused by the parser in one line (exit 2) before any work starts."""
    def parse(text: str):
        try:
            v = kind(text)
        except (TypeError, ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"needs {'an integer' if kind is int else 'a number'}, "
                                             f"got {text[:40]!r}") from None
        if kind is float and not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"needs a finite number, got {text[:40]!r}")
        if v < lo or v > hi or (lo_open and v == lo):
            raise argparse.ArgumentTypeError(f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {text[:40]!r}")
        return v

    parse.__name__ = kind.__name__
    return parse


SEED = number(int, 0, 2**32 - 1)
IMAGE_SIDE = number(int, 8, 256)  # --size of training images
EPOCHS = number(float, 0, 1e6, lo_open=True)
MINUTES = number(float, 0, 1e6, lo_open=True)


def check_sampling_option(name: str, value) -> str | None:
    """What is wrong with a sampling option's converted value, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi = SAMPLING_BOUNDS.get(name, (-1e6, 1e6))
        if not (math.isfinite(value) and lo <= value <= hi):
            return f"must be in [{lo:g}, {hi:g}]"
    elif isinstance(value, str) and len(value) > 100:
        return f"is {len(value)} characters long"
    return None
