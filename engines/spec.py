"""The shape of the images an engine works on."""
from __future__ import annotations

from dataclasses import asdict, dataclass

SUPPORTED_SIZES = (8, 16, 28, 32, 64)


@dataclass(frozen=True)
class ImageSpec:
    """Images are float tensors (N, channels, height, width) with values in [0, 1]."""

    channels: int = 1
    height: int = 28
    width: int = 28

    def __post_init__(self):
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for side in (self.height, self.width):
            if side < 4 or side > 256:
                raise ValueError(f"image side must be between 4 and 256 pixels, got {side}")

    @classmethod
    def square(cls, size: int, channels: int = 1) -> "ImageSpec":
        return cls(channels=channels, height=size, width=size)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def numel(self) -> int:
        return self.channels * self.height * self.width

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ImageSpec":
        return cls(int(d["channels"]), int(d["height"]), int(d["width"]))

    def __str__(self) -> str:
        return f"{self.height}×{self.width}×{self.channels}"
