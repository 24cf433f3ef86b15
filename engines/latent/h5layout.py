"""The one HDF5 layout for a data set's latents: written by `main.py encode`, by `export … latents.h5`
and by the latent cache, read back by `read` (the only reader).

Root attributes
  format          "latent-explorer-latents"
  format_version  2 (version 1 was the cache's own layout; such files simply miss and are rebuilt)
  model_id        content hash of the model (`engines.latent.cache.model_id`)
  engine          the engine's name ("vae", "gan", …)
  latent_shape    int64 array: the shape of one latent; `latents` holds them flattened
  data_id         hash of the data set (`engines.latent.cache.data_id`)
  data_name, data_source   the data set's name and where it was read from
  image_spec      JSON: {"channels", "height", "width"} of the images that were encoded
  data            JSON: the data set's whole description (`ImageDataset.describe()`)
  (writers may add more: `checkpoint` for the CLI's files, `source` for the GUI's)
Datasets
  latents         float32 (N, D), D = prod(latent_shape)
  labels          int64 (N,), and label_names: strings (K,)            — when the data have labels
  split           uint8 (N,): 0 train, 1 test, 2 neither
  attributes/<name>   float32 (N,) per attribute (the group is always there, maybe empty)
  coords/<projection> float32 (N, 2) map coordinates ("pca", "umap")  — when present

Files are built in memory and written through `engines.atomic.write_hdf5` (HDF5 writing to a full
disk crashes the process). The reader checks the file before trusting it: a regular file with the
HDF5 signature, this format and version, every dataset's declared shape and dtype against N, the
latent shape and what the file actually stores (a small file cannot declare gigabytes of
never-written data), and only then reads. Every refusal is one `LayoutError` line.
"""
from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field

import numpy as np

FORMAT = "latent-explorer-latents"
FORMAT_VERSION = 2
TRAIN, TEST, NEITHER = 0, 1, 2
MAX_BYTES = 16 << 30  # a latent file declaring more than this is refused before anything is read
DEFLATE_RATIO = 1100  # deflate cannot compress better than ~1032:1; more means data that is not there
MAX_NAMES = 100_000
SIGNATURE = b"\x89HDF\r\n\x1a\n"
ROOT_ATTRS = ("format", "format_version", "model_id", "engine", "latent_shape", "data_id", "data_name",
              "data_source", "image_spec", "data")


class LayoutError(ValueError):
    """A file that is not (or no longer) a readable latents file; the message is one line."""


@dataclass(eq=False)
class LatentFile:
    """What a latents file holds, checked."""

    latents: np.ndarray  # float32 (N, D)
    latent_shape: tuple[int, ...]
    model_id: str
    engine: str
    data_id: str
    data: dict  # the data set's description (name, source, spec, …)
    split: np.ndarray  # uint8 (N,)
    labels: np.ndarray | None = None  # int64 (N,)
    label_names: list[str] = field(default_factory=list)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    coords: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)  # every root attribute, decoded
    path: str = ""

    @property
    def train_idx(self) -> np.ndarray:
        return np.flatnonzero(self.split == TRAIN).astype(np.int64)

    @property
    def test_idx(self) -> np.ndarray:
        return np.flatnonzero(self.split == TEST).astype(np.int64)


def split_of(n: int, train_idx, test_idx) -> np.ndarray:
    s = np.full(n, NEITHER, np.uint8)
    s[np.asarray(train_idx, np.int64)] = TRAIN
    s[np.asarray(test_idx, np.int64)] = TEST
    return s


# ---- writing -------------------------------------------------------------------------------------------
def fill(h, ls, coords: dict | None = None, extra: dict | None = None, compress: bool = False) -> None:
    """Write `ls` (a `cache.LatentSet`) into the open, empty h5py file `h`. `coords` maps a
    projection name to (N, 2) coordinates; `extra` adds root attributes (not the layout's own)."""
    import h5py

    z = np.ascontiguousarray(ls.latents, dtype=np.float32)
    n = len(z)
    shape = tuple(int(s) for s in ls.latent_shape)
    if z.ndim != 2 or math.prod(shape) != z.shape[1]:
        raise ValueError(f"latents of shape {z.shape} do not hold latents of shape {shape}")
    coords = {k: np.asarray(v, np.float32) for k, v in (coords or {}).items()}
    for k, v in coords.items():
        if v.shape != (n, 2):
            raise ValueError(f"projection '{k}' has shape {v.shape}, expected ({n}, 2)")
    for k in list(ls.attributes) + list(coords):
        if not k or "/" in k or k in (".", ".."):
            raise ValueError(f"'{k}' cannot name an HDF5 dataset (no '/', not empty)")
    desc = dict(getattr(ls, "data_description", None) or {})
    spec = desc.get("spec") or {}
    a = h.attrs
    a["format"] = FORMAT
    a["format_version"] = FORMAT_VERSION
    a["model_id"] = str(ls.model_id)
    a["engine"] = str(ls.engine)
    a["latent_shape"] = np.asarray(shape, np.int64)
    a["data_id"] = str(ls.data_id)
    a["data_name"] = str(desc.get("name", ls.data_name))
    a["data_source"] = str(desc.get("source") or "")
    a["image_spec"] = json.dumps(spec, sort_keys=True)
    a["data"] = json.dumps(desc, sort_keys=True, default=str)
    for k, v in (extra or {}).items():
        if k in ROOT_ATTRS:
            raise ValueError(f"'{k}' is an attribute of the layout itself")
        a[k] = v if isinstance(v, (str, int, float)) else json.dumps(v)
    gz = {"compression": "gzip", "shuffle": True} if compress and z.size else {}
    h.create_dataset("latents", data=z, **gz)
    h.create_dataset("split", data=split_of(n, ls.train_idx, ls.test_idx))
    if ls.labels is not None:
        h.create_dataset("labels", data=np.asarray(ls.labels, np.int64))
        h.create_dataset("label_names", data=[str(s) for s in ls.label_names], dtype=h5py.string_dtype())
    g = h.create_group("attributes")
    for k, v in ls.attributes.items():
        g.create_dataset(k, data=np.asarray(v, np.float32))
    if coords:
        c = h.create_group("coords")
        for k, v in coords.items():
            c.create_dataset(k, data=v)


def write(path: str, ls, coords: dict | None = None, extra: dict | None = None, compress: bool = False,
          what: str = "") -> str:
    """The layout written to `path` (built in memory, then replaced atomically)."""
    from engines import atomic

    return atomic.write_hdf5(path, lambda h: fill(h, ls, coords, extra, compress), what=what)


# ---- reading -------------------------------------------------------------------------------------------
def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == () or isinstance(v, np.generic):
        return _text(v.item())
    return str(v)


def _plain(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _json(path: str, a, key: str):
    try:
        return json.loads(_text(a.get(key, "{}")))
    except ValueError:
        raise LayoutError(f"{path}: attribute '{key}' is not JSON") from None


def _checked(path: str, f, name: str, shape: tuple, kinds: str, size: int):
    """f[name] after checking its shape, dtype and that the file stores what it declares."""
    import h5py

    where = f"{path}: '{name}'"
    if name not in f or isinstance(f.get(name, getlink=True), (h5py.ExternalLink, h5py.SoftLink)):
        raise LayoutError(f"{where} is missing" if name not in f else f"{where} is a link, which is not followed")
    d = f[name]
    if not isinstance(d, h5py.Dataset):
        raise LayoutError(f"{where} is not a dataset")
    if d.shape != shape:
        raise LayoutError(f"{where} has shape {d.shape}, expected {shape}")
    if d.dtype.kind not in kinds:
        raise LayoutError(f"{where} has dtype {d.dtype}, expected {'numbers' if kinds != 'O' else 'strings'}")
    if d.is_virtual or d.external:
        raise LayoutError(f"{where} refers to data in other files, which is not read")
    nbytes = math.prod(shape) * d.dtype.itemsize
    if nbytes == 0 or d.dtype.kind == "O":
        return d
    storage = d.id.get_storage_size()
    if storage > size:
        raise LayoutError(f"{where} is truncated: {storage} bytes stored in a {size}-byte file")
    if d.chunks and d.id.get_num_chunks() < math.prod(-(-s // c) for s, c in zip(shape, d.chunks)):
        raise LayoutError(f"{where} declares {nbytes} bytes but not all of its chunks are stored")
    if d.id.get_create_plist().get_nfilters() > 0:
        if nbytes > DEFLATE_RATIO * storage + (1 << 20):
            raise LayoutError(f"{where} declares {nbytes} bytes stored in only {storage}")
    elif storage < nbytes:
        raise LayoutError(f"{where} declares {nbytes} bytes but the file holds only {storage} of it")
    return d


def read(path: str, max_bytes: int = MAX_BYTES) -> LatentFile:
    """The latents file at `path`, checked; `LayoutError` (one line) when it is not one."""
    import h5py

    try:
        st = os.stat(path)
    except OSError as e:
        raise LayoutError(f"{path}: cannot open ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise LayoutError(f"{path}: not a regular file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise LayoutError(f"{path}: cannot read ({e.strerror or e})") from None
    if head != SIGNATURE:
        raise LayoutError(f"{path}: not an HDF5 file" + (" (empty)" if not head else ""))
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001 — h5py raises OSError, ValueError, RuntimeError on damage
        raise LayoutError(f"{path}: not a readable HDF5 file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    try:
        with f:
            return _read_open(path, f, st.st_size, max_bytes)
    except LayoutError:
        raise
    except Exception as e:  # noqa: BLE001 — damage found while reading what the checks let through
        raise LayoutError(f"{path}: damaged ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def _read_open(path: str, f, size: int, max_bytes: int) -> LatentFile:
    import h5py

    a = f.attrs
    fmt = _text(a.get("format", ""))
    if fmt == "latent-explorer-export":
        raise LayoutError(f"{path}: written by an older Latent Explorer export; export it again")
    if fmt != FORMAT:
        raise LayoutError(f"{path}: not a Latent Explorer latents file" + (f" (format '{fmt}')" if fmt else ""))
    try:
        version = int(_plain(a.get("format_version", -1)))
    except (TypeError, ValueError):
        version = -1
    if version != FORMAT_VERSION:
        newer = version > FORMAT_VERSION
        raise LayoutError(f"{path}: latents format version {version}; this version reads {FORMAT_VERSION}"
                          + (" (please upgrade)" if newer else " (encode it again)"))
    try:
        shape = tuple(int(s) for s in np.asarray(a["latent_shape"]).reshape(-1))
    except (KeyError, TypeError, ValueError):
        raise LayoutError(f"{path}: no valid 'latent_shape' attribute") from None
    if not shape or any(s < 1 for s in shape):
        raise LayoutError(f"{path}: latent_shape {shape} is not a shape")
    d = f.get("latents")
    if not isinstance(d, h5py.Dataset) or d.shape is None or len(d.shape) != 2:
        raise LayoutError(f"{path}: no 2-D 'latents' dataset")
    n, dim = d.shape
    if dim != math.prod(shape):
        raise LayoutError(f"{path}: latents have {dim} values each, latent_shape {shape} needs {math.prod(shape)}")
    attr_group = f.get("attributes")
    coord_group = f.get("coords")
    for name, g in (("attributes", attr_group), ("coords", coord_group)):
        if g is not None and not isinstance(g, h5py.Group):
            raise LayoutError(f"{path}: '{name}' is not a group")
    plan = [("latents", (n, dim), "f"), ("split", (n,), "iu")]
    if "labels" in f:
        plan.append(("labels", (n,), "iu"))
        names_d = f.get("label_names")
        k = names_d.shape[0] if isinstance(names_d, h5py.Dataset) and names_d.shape and len(names_d.shape) == 1 else -1
        if not 0 <= k <= MAX_NAMES:
            raise LayoutError(f"{path}: 'label_names' is missing or not a list of at most {MAX_NAMES} names")
        plan.append(("label_names", (k,), "OS"))
    plan += [(f"attributes/{k}", (n,), "fiub") for k in (attr_group or {})]
    plan += [(f"coords/{k}", (n, 2), "f") for k in (coord_group or {})]
    ds = {name: _checked(path, f, name, shp, kinds, size) for name, shp, kinds in plan}
    need = sum(math.prod(shp) * max(8, ds[name].dtype.itemsize) for name, shp, _ in plan)
    if need > max_bytes:
        raise LayoutError(f"{path}: declares {need} bytes of arrays, more than the {max_bytes} read")
    split = ds["split"][()]
    if split.size and int(split.max()) > NEITHER:
        raise LayoutError(f"{path}: 'split' holds {int(split.max())}; 0 train, 1 test, 2 neither")
    labels = None
    names: list[str] = []
    if "labels" in ds:
        labels = ds["labels"][()].astype(np.int64)
        names = [_text(s) for s in ds["label_names"][()]]
    return LatentFile(
        latents=ds["latents"][()].astype(np.float32, copy=False), latent_shape=shape,
        model_id=_text(a.get("model_id", "")), engine=_text(a.get("engine", "")), data_id=_text(a.get("data_id", "")),
        data=_json(path, a, "data"), split=split.astype(np.uint8), labels=labels, label_names=names,
        attributes={k: ds[f"attributes/{k}"][()].astype(np.float32) for k in (attr_group or {})},
        coords={k: ds[f"coords/{k}"][()].astype(np.float32) for k in (coord_group or {})},
        attrs={k: _plain(v) for k, v in a.items()}, path=path,
    )
