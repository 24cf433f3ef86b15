"""Data sets: built-in generated/shipped ones and loaders for the user's own files.

`load_dataset("faces", size=32)` or `load_dataset("/path/to/folder", spec=ImageSpec(3, 64, 64))`.
"""
from __future__ import annotations

import os

from engines.spec import ImageSpec
from engines.data.dataset import DataError, ImageDataset, convert_images, fixed_split, to_float, to_uint8

BUILTIN = ("shapes", "faces", "digits", "mnist-5k")
# Public sets, downloaded on first use (engines/data/public/): mnist, fashion-mnist, kmnist, cifar10, celeba.
from engines.data.public.registry import PUBLIC  # noqa: E402


class DataUnavailable(ValueError):
    """A model's training data cannot be found (a user file that moved, an unknown set)."""


def training_source(info) -> str:
    """The data set a checkpoint (its `checkpoint.read_info` result) was trained on, as something
    `load_dataset` accepts."""
    data = getattr(info, "data", None) or {}
    name, source = data.get("name") or "", data.get("source") or ""
    if name in BUILTIN or (name in PUBLIC and source in ("", name)):
        return name
    if source and os.path.exists(source):
        return source
    raise DataUnavailable(f"The data this model was trained on ({source or name or 'not recorded'}) is not "
                          "available here. Choose a data set with the same kind of images.")

# Native form of each built-in set: (channels, side).
NATIVE = {"shapes": (3, 32), "faces": (3, 64), "digits": (1, 8), "mnist-5k": (1, 28)}
NATIVE.update({k: (v.shape[2], v.shape[0]) for k, v in PUBLIC.items()})


def load_dataset(name_or_path: str, spec: ImageSpec | None = None, size: int | None = None,
                 channels: int | None = None) -> ImageDataset:
    """Load a built-in set by name or the user's file/folder by path, converted to `spec`
    (or to `size`×`size` keeping the native channel count when only `size` is given)."""
    if spec is None and (size is not None or channels is not None):
        native_c, native_s = NATIVE.get(name_or_path, (None, None))
        c = channels or native_c
        s = size or native_s
        if c is None or s is None:
            ds = _load_raw(name_or_path, size=None)
            c = c or ds.spec.channels
            s = s or ds.spec.height
            return ds.to_spec(ImageSpec(c, s, s))
        spec = ImageSpec(c, s, s)
    ds = _load_raw(name_or_path, size=spec.height if spec is not None and spec.height == spec.width else None)
    return ds.to_spec(spec) if spec is not None else ds


def _load_raw(name_or_path: str, size: int | None) -> ImageDataset:
    if name_or_path == "shapes":
        from engines.data.shapes import make_shapes

        # Drawn at most at 64 px; larger specs are resized by to_spec.
        return make_shapes(size=min(size or NATIVE["shapes"][1], 64))
    if name_or_path == "faces":
        from engines.data.faces import make_faces

        return make_faces(size=min(size or NATIVE["faces"][1], 64))
    if name_or_path == "digits":
        from engines.data.digits import load_digits

        return load_digits()
    if name_or_path == "mnist-5k":
        from engines.data.mnist5k import load_mnist5k

        return load_mnist5k()
    if name_or_path in PUBLIC and not os.path.lexists(name_or_path):
        from engines.data.public import load_public

        return load_public(name_or_path)
    if not os.path.lexists(name_or_path):  # a broken or looping link goes on, to be named as such
        raise DataError(f"{name_or_path}: no such built-in or public data set ({', '.join(BUILTIN + tuple(PUBLIC))}) or file")
    from engines.data.files import load_path

    return load_path(name_or_path)


__all__ = ["BUILTIN", "PUBLIC", "DataError", "ImageDataset", "load_dataset", "convert_images", "fixed_split", "to_float", "to_uint8"]
