"""scikit-learn's bundled handwritten digits: 1797 grey 8×8 images, no download needed."""
from __future__ import annotations

import numpy as np

from engines.data.dataset import ImageDataset


def load_digits() -> ImageDataset:
    from sklearn.datasets import load_digits as sk_load_digits  # slow import; only when asked for

    bunch = sk_load_digits()
    # Pixel values are ink counts 0..16 (each 8×8 pixel pools a 4×4 block of a 32×32 bitmap).
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return ImageDataset(name="digits", images=images, labels=bunch.target,
                        label_names=[str(d) for d in range(10)], source="digits")
