"""Which models can be compared: two to four checkpoints trained on the same data set.

"The same data set" is what each checkpoint records about its training data (`info.data`): the
source (or name), the number of images and the image spec (size, channels). Models trained on
different data, or at another size, have no common test images, classifier or map: refused with
one line naming each model's data set.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

MIN_MODELS, MAX_MODELS = 2, 4


class CompareError(ValueError):
    """The models cannot be compared (one line for the user)."""


@dataclass(frozen=True)
class DataIdentity:
    """What a checkpoint says about the data set it was trained on."""

    name: str
    source: str
    n: int | None
    channels: int
    height: int
    width: int

    @classmethod
    def of(cls, info) -> "DataIdentity":
        d = info.data or {}
        n = d.get("n")
        return cls(name=str(d.get("name") or ""), source=str(d.get("source") or d.get("name") or ""),
                   n=n if isinstance(n, int) and not isinstance(n, bool) else None,
                   channels=info.spec.channels, height=info.spec.height, width=info.spec.width)

    @property
    def key(self) -> tuple:
        return self.source or self.name, self.n, self.channels, self.height, self.width

    def describe(self) -> str:
        """'faces (8,000 images, 64×64 RGB)'."""
        colour = "RGB" if self.channels == 3 else "grey"
        count = f"{self.n:,} images, " if self.n is not None else ""
        return f"{self.name or self.source or 'unrecorded data'} ({count}{self.height}×{self.width} {colour})"


def model_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def check_count(n: int) -> None:
    if not MIN_MODELS <= n <= MAX_MODELS:
        raise CompareError(f"pick {MIN_MODELS} to {MAX_MODELS} models to compare (got {n})")


def check_comparable(infos: list) -> DataIdentity:
    """The data set all `infos` (checkpoint.read_info results) share; CompareError when there are
    fewer than 2 or more than 4, one is picked twice, or they were trained on different data."""
    check_count(len(infos))
    seen: set[str] = set()
    for info in infos:
        real = os.path.realpath(info.path)
        if real in seen:
            raise CompareError(f"{model_name(info.path)} is picked twice: pick {MIN_MODELS} to {MAX_MODELS} different models")
        seen.add(real)
    ids = [DataIdentity.of(i) for i in infos]
    if len({d.key for d in ids}) > 1:
        each = "; ".join(f"{model_name(i.path)} on {d.describe()}" for i, d in zip(infos, ids))
        raise CompareError(f"cannot compare models trained on different data sets ({each}): "
                           "pick models trained on the same data set")
    return ids[0]


def read_infos(paths: list[str]) -> list:
    """Every checkpoint's metadata (CheckpointError for an unreadable one), in order."""
    from engines import checkpoint as ckpt

    check_count(len(paths))
    return [ckpt.read_info(p) for p in paths]
