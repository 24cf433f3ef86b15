"""An image file as a latent: read it, convert it to the model's spec (resize, channels), encode
it. Qt-free; the Arithmetic panel's base and the Export panel's image keys both use it."""
from __future__ import annotations

import os

import numpy as np


def read_image(path: str, spec) -> np.ndarray:
    """uint8 (H, W, C) at `spec`; ValueError with the file's name when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    from engines.data.dataset import pil_to_spec

    try:
        with Image.open(path) as pil:
            pil.load()
            return np.array(pil_to_spec(pil, spec))  # writable: torch.from_numpy warns otherwise
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"{os.path.basename(path)}: not an image this app can read ({e})") from None


def encode_image_file(engine, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(latent float32 (D,), uint8 image at the engine's spec) of one image file."""
    img = read_image(path, engine.spec)
    z = engine.encode(img[None]).detach().to("cpu").float().reshape(-1).numpy()
    return z.astype(np.float32), img
