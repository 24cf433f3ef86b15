"""The in-memory image data set every loader produces."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from engines.spec import ImageSpec


class DataError(ValueError):
    """A data set that cannot be used; the message names the file and the problem, on one line."""

    def __init__(self, message="", *args):
        super().__init__(" ".join(str(message).split()), *args)


DENSE_LABELS = 1000  # labels below this are class indices as they are
MAX_EXACT_FLOAT = 2 ** 53  # float labels beyond this are not whole numbers one can trust


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() else f"{float(x):g}"


def normalize_labels(labels, names, where: str) -> tuple[np.ndarray, list[str]]:
    """Labels as int64 class indices 0..K-1, and their names.

    Labels must be one whole number ≥ 0 per image (integers, bools, or floats holding whole
    numbers). With `names`, each label indexes them. Without, each class is named after its
    value: labels that are all below DENSE_LABELS stay as they are (classes 0..max, so a set
    missing one digit keeps the others' numbers); larger ones are renumbered 0..K-1 over the
    distinct values in increasing order (3, 7, 10⁹ become 0, 1, 2 named "3", "7",
    "1000000000"). No array ever grows with a label's value, and unsigned 64-bit values keep
    their meaning."""
    a = np.asarray(labels)
    if a.ndim != 1:
        raise DataError(f"{where}: labels must be one class index per image (1-D), got shape {a.shape}")
    if a.dtype.hasobject or a.dtype.kind not in "biuf":
        raise DataError(f"{where}: labels must be whole numbers, got dtype {a.dtype}")
    if a.dtype.kind == "f" and a.size:
        if not np.all(np.isfinite(a)):
            raise DataError(f"{where}: labels contain NaN or infinite values")
        bad = a[a != np.round(a)]
        if bad.size:
            raise DataError(f"{where}: labels must be whole numbers, found {bad[0]:g}")
        if np.abs(a).max() > MAX_EXACT_FLOAT:
            raise DataError(f"{where}: labels must be whole numbers below 2^53, found {np.abs(a).max():g}")
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if a.size and a.min() < 0:
        raise DataError(f"{where}: labels must not be negative, found {_num(a.min())}")
    names = [str(x) for x in names] if names is not None else []
    if names:
        top = a.max() if a.size else 0
        if top >= len(names):
            raise DataError(f"{where}: label {_num(top)} has no name ({len(names)} label names, so labels run 0 to {len(names) - 1})")
        return a.astype(np.int64), names
    if not a.size or a.max() < DENSE_LABELS:
        return a.astype(np.int64), [str(i) for i in range(int(a.max()) + 1 if a.size else 0)]
    values, index = np.unique(a, return_inverse=True)  # sorts; memory stays O(N)
    if a.dtype.kind == "f":
        values = values.astype(np.int64)
    return index.astype(np.int64).reshape(-1), [str(v) for v in values.tolist()]


@dataclass
class ImageDataset:
    name: str
    images: np.ndarray  # uint8 (N, H, W, C), C in {1, 3}
    labels: np.ndarray | None = None  # int64 (N,)
    label_names: list[str] = field(default_factory=list)
    # Per-image attributes, float32 (N,); binary attributes hold 0.0/1.0.
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    train_idx: np.ndarray | None = None
    test_idx: np.ndarray | None = None
    source: str = ""  # where it came from: a built-in name with its parameters, or a path

    def __post_init__(self):
        imgs = self.images
        if not isinstance(imgs, np.ndarray) or imgs.dtype != np.uint8:
            raise DataError(f"{self.source or self.name}: images must be a uint8 array, got {getattr(imgs, 'dtype', type(imgs))}")
        if imgs.ndim == 3:
            imgs = imgs[..., None]
        if imgs.ndim != 4 or imgs.shape[-1] not in (1, 3):
            raise DataError(f"{self.source or self.name}: images must be (N,H,W), (N,H,W,1) or (N,H,W,3), got shape {imgs.shape}")
        self.images = imgs
        n = len(imgs)
        if n == 0:
            raise DataError(f"{self.source or self.name}: contains no images")
        if self.labels is not None:
            self.labels = np.asarray(self.labels)
            if self.labels.ndim != 1 or len(self.labels) != n:
                raise DataError(f"{self.source or self.name}: {self.labels.size} labels for {n} images")
            self.labels, self.label_names = normalize_labels(self.labels, self.label_names, self.source or self.name)
        for k, v in list(self.attributes.items()):
            v = np.asarray(v, dtype=np.float32)
            if v.shape != (n,):
                raise DataError(f"{self.source or self.name}: attribute '{k}' has shape {v.shape}, expected ({n},)")
            self.attributes[k] = v
        if self.train_idx is None or self.test_idx is None:
            self.train_idx, self.test_idx = fixed_split(n)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def spec(self) -> ImageSpec:
        _, h, w, c = self.images.shape
        return ImageSpec(c, h, w)

    def subset(self, idx: np.ndarray, name_suffix: str = "") -> "ImageDataset":
        idx = np.asarray(idx)
        n = len(idx)
        return ImageDataset(
            name=self.name + name_suffix,
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            label_names=list(self.label_names),
            attributes={k: v[idx] for k, v in self.attributes.items()},
            train_idx=np.arange(n), test_idx=np.arange(0),
            source=self.source,
        ) if n else _empty_like(self)

    def split(self, which: str) -> "ImageDataset":
        if which not in ("train", "test"):
            raise ValueError("split is 'train' or 'test'")
        return self.subset(self.train_idx if which == "train" else self.test_idx, f"[{which}]")

    def to_spec(self, spec: ImageSpec) -> "ImageDataset":
        """A copy resized and converted to the spec's size and channel count."""
        if spec == self.spec:
            return self
        images = convert_images(self.images, spec)
        return ImageDataset(self.name, images, self.labels, list(self.label_names), dict(self.attributes),
                            self.train_idx, self.test_idx, self.source)

    def describe(self) -> dict:
        """What a checkpoint records about the data it was trained on."""
        return {
            "name": self.name,
            "source": self.source,
            "n": len(self),
            "n_train": int(len(self.train_idx)),
            "n_test": int(len(self.test_idx)),
            "spec": self.spec.to_dict(),
            "label_names": list(self.label_names),
            "attributes": sorted(self.attributes),
        }


def _empty_like(ds: ImageDataset):
    raise DataError(f"{ds.source or ds.name}: the selection contains no images")


def fixed_split(n: int, test_fraction: float = 0.15, seed: int = 1234) -> tuple[np.ndarray, np.ndarray]:
    """A split that depends only on n, so a data set's test images never change between runs."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction))) if n > 1 else 0
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def convert_images(images: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """Resize (antialiased) and convert channels; uint8 (N,H,W,C) in and out."""
    n, h, w, c = images.shape
    from engines.data.guards import check_budget

    check_budget(n * spec.height * spec.width * spec.channels, f"{n} images", f"converting them to {spec}")
    out = np.empty((n, spec.height, spec.width, spec.channels), dtype=np.uint8)
    for i in range(n):
        out[i] = convert_image(images[i], spec)
    return out


def convert_image(img: np.ndarray, spec: ImageSpec) -> np.ndarray:
    pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    return pil_to_spec(pil, spec)


def pil_to_spec(pil: Image.Image, spec: ImageSpec) -> np.ndarray:
    if pil.mode not in ("L", "RGB"):
        if pil.mode in ("RGBA", "LA", "P", "PA") or "A" in pil.getbands():
            # Composite transparency on white rather than letting it turn black.
            pil = pil.convert("RGBA")
            bg = Image.new("RGBA", pil.size, (255, 255, 255, 255))
            pil = Image.alpha_composite(bg, pil)
        pil = pil.convert("RGB")
    pil = pil.convert("L" if spec.channels == 1 else "RGB")
    if pil.size != (spec.width, spec.height):
        pil = pil.resize((spec.width, spec.height), Image.Resampling.LANCZOS if pil.size[0] > spec.width else Image.Resampling.BILINEAR)
    arr = np.asarray(pil, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def to_float(images: np.ndarray):
    """uint8 (N,H,W,C) → float32 torch tensor (N,C,H,W) in [0,1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(x, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """float tensor (N,C,H,W) with values in `value_range` (default [0,1]; diffusion's model space:
    (−1, 1)) → uint8 numpy (N,H,W,C)."""
    import torch

    lo, hi = value_range
    with torch.inference_mode():  # one float temporary, the rest in place; uint8 made by torch, channels last
        x = x.detach().float()
        if (lo, hi) != (0.0, 1.0):
            x = (x - lo) / (hi - lo)
        u8 = x.clamp(0, 1).mul_(255).round_().to(torch.uint8).permute(0, 2, 3, 1)
        return u8.to("cpu").contiguous().numpy()


def tile(imgs: np.ndarray, cols: int | None = None, pad: int = 1, fill: int = 255, border: bool = True) -> np.ndarray:
    """uint8 (N, H, W, C) → one grid image, `cols` wide (default: square), `pad` pixels of `fill`
    between images and, with `border`, around the grid."""
    n, h, w, c = imgs.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    edge = pad if border else 0
    out = np.full((rows * (h + pad) - pad + 2 * edge, cols * (w + pad) - pad + 2 * edge, c), fill, dtype=np.uint8)
    for i, im in enumerate(imgs):
        r, q = divmod(i, cols)
        y, x = edge + r * (h + pad), edge + q * (w + pad)
        out[y:y + h, x:x + w] = im
    return out
