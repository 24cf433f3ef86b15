"""A seeded corpus of malformed checkpoints, generated from one tiny saved checkpoint.

`build(src, folder)` writes every case into `folder` and returns [(kind, path, expect)]: `expect`
is a word the CheckpointError's message must contain ('' = any one-line CheckpointError).
Kinds: truncation in every region, bit flips in header and body, lying header lengths /
dtypes / offsets / shapes, garbage and extreme metadata values (each both with the hash and as
a hash-less legacy file, so the field checks themselves are exercised), NaN/Inf weights, and
other files renamed to .safetensors (PNG, HDF5, empty, text, folder, FIFO, device, …).
"""
from __future__ import annotations

import json
import os
import random
import struct

import numpy as np
import torch

HASH_KEY = "content_sha256"


def split(raw: bytes) -> tuple[int, dict, bytes]:
    (n,) = struct.unpack("<Q", raw[:8])
    return n, json.loads(raw[8:8 + n]), raw[8 + n:]


def join(header: dict, body: bytes, pad: bool = True) -> bytes:
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def legacy(header: dict) -> dict:
    """The same header as a file written before content hashes (format 1, no hash)."""
    h = json.loads(json.dumps(header))
    h["__metadata__"].pop(HASH_KEY, None)
    h["__metadata__"]["format_version"] = "1"
    return h


class Corpus:
    def __init__(self, folder: str):
        self.folder = folder
        self.cases: list[tuple[str, str, str]] = []

    def add(self, kind: str, data: bytes, expect: str = "") -> str:
        path = os.path.join(self.folder, f"{len(self.cases):04d}-{kind}.safetensors")
        with open(path, "wb") as f:
            f.write(data)
        self.cases.append((kind, path, expect))
        return path

    def add_path(self, kind: str, path: str, expect: str = "") -> None:
        self.cases.append((kind, path, expect))


def _truncations(c: Corpus, raw: bytes, n: int, header: dict) -> None:
    for cut in range(0, 8):
        c.add("truncate-length", raw[:cut])
    for cut in sorted({8, 9, 8 + n // 4, 8 + n // 2, 8 + n - 1, 8 + n - 8}):
        c.add("truncate-header", raw[:cut])
    for name, v in header.items():
        if name == "__metadata__":
            continue
        a, b = (8 + n + o for o in v["data_offsets"])
        for cut in sorted({a, (a + b) // 2, b - 1} - {b}):
            if cut < len(raw):
                c.add("truncate-tensor", raw[:cut], "truncated" if cut > 8 + n else "")


def _flips(c: Corpus, rnd: random.Random, raw: bytes, n: int) -> None:
    for _ in range(80):
        pos = rnd.randrange(0, 8 + n)
        bad = bytearray(raw)
        bad[pos] ^= 1 << rnd.randrange(8)
        c.add("flip-header", bytes(bad))
    for _ in range(80):
        pos = rnd.randrange(8 + n, len(raw))
        bad = bytearray(raw)
        bad[pos] ^= 1 << rnd.randrange(8)
        c.add("flip-body", bytes(bad), "hash mismatch")


def _lies(c: Corpus, rnd: random.Random, raw: bytes, n: int, header: dict, body: bytes) -> None:
    for lie in (n - 1, n + 1, n + 8, n - 8, 0, 1, 2 ** 63, 2 ** 64 - 1, len(raw), 100 * 1024 * 1024 + 1):
        c.add("lie-header-length", struct.pack("<Q", lie) + raw[8:])
    names = sorted(k for k in header if k != "__metadata__")
    f32 = [k for k in names if header[k]["dtype"] == "F32" and len(header[k]["shape"]) >= 1]
    picked = rnd.sample(f32, min(8, len(f32)))
    for name in picked:
        v = header[name]
        a, b = v["data_offsets"]
        numel = int(np.prod(v["shape"]))
        lies = {
            "dtype-F16": {"dtype": "F16"}, "dtype-F64": {"dtype": "F64"}, "dtype-I32": {"dtype": "I32"},
            "dtype-garbage": {"dtype": "Q99"}, "dtype-number": {"dtype": 7},
            "shape-flat": {"shape": [numel]} if len(v["shape"]) > 1 else {"shape": [1, numel]},
            "shape-bigger": {"shape": [s * 2 for s in v["shape"]]}, "shape-negative": {"shape": [-numel]},
            "shape-huge": {"shape": [2 ** 62, 2 ** 62]}, "shape-text": {"shape": "big"},
            "offset-shift": {"data_offsets": [a + 4, b + 4]}, "offset-back": {"data_offsets": [max(0, a - 4), b - 4]},
            "offset-reversed": {"data_offsets": [b, a]}, "offset-negative": {"data_offsets": [-4, b - a - 4]},
            "offset-beyond": {"data_offsets": [a + len(body), b + len(body)]},
            "offset-huge": {"data_offsets": [2 ** 63, 2 ** 63 + b - a]}, "offset-float": {"data_offsets": [float(a), float(b)]},
            "missing-dtype": None,
        }
        for kind, change in lies.items():
            h = json.loads(json.dumps(header))
            if change is None:
                del h[name]["dtype"]
            else:
                h[name].update(change)
            c.add(f"lie-{kind}", join(h, body))
    # Two same-sized tensors swap their byte ranges: the header is consistent, the bytes are not.
    by_size: dict = {}
    for k in names:
        by_size.setdefault(header[k]["data_offsets"][1] - header[k]["data_offsets"][0], []).append(k)
    pairs = [v for v in by_size.values() if len(v) >= 2][:4]
    for a, b in (p[:2] for p in pairs):
        h = json.loads(json.dumps(header))
        h[a]["data_offsets"], h[b]["data_offsets"] = h[b]["data_offsets"], h[a]["data_offsets"]
        c.add("lie-swapped-offsets", join(h, body))
    # A tensor removed / an extra tensor / a renamed one (body kept or adjusted).
    h = json.loads(json.dumps(header))
    del h[names[0]]
    c.add("lie-tensor-removed", join(h, body))
    h = json.loads(json.dumps(header))
    h["model/extra.weight"] = {"dtype": "F32", "shape": [2], "data_offsets": [len(body), len(body) + 8]}
    c.add("lie-tensor-extra", join(h, body + bytes(8)))
    c.add("lie-tensor-extra-legacy", join(legacy(h), body + bytes(8)))
    model = [k for k in names if k.startswith("model/")]
    h = legacy(header)
    h[model[0].replace("model/", "model/renamed_")] = h.pop(model[0])
    c.add("lie-tensor-renamed-legacy", join(h, body), "do not match")
    h = json.loads(json.dumps(header))
    h["__metadata__"]["x"] = 5
    c.add("lie-metadata-not-text", join(h, body))
    c.add("lie-header-list", struct.pack("<Q", 8) + b"[1,2,3] " + body)
    for depth in (50, 900, 100_000):  # deep nesting in the header itself, and in a tensor entry
        deep = b"[" * depth + b"]" * depth
        c.add("lie-header-deep", struct.pack("<Q", len(deep)) + deep + body)
        text = b'{"model/x":' + b"[" * depth + b"]" * depth + b"}"
        c.add("lie-entry-deep", struct.pack("<Q", len(text)) + text + body)
    c.add("lie-header-utf8", struct.pack("<Q", 8) + b"\xff\xfe{}    " + body)


EXTREME = ["1e999", "-1e999", "NaN", "null", "true", "[]", "\"text\"", "-5", str(10 ** 40), "[" * 3000 + "]" * 3000,
           "{\"a\":" * 200 + "1" + "}" * 200, "{\"", ""]


def _metadata(c: Corpus, header: dict, body: bytes) -> None:
    meta = header["__metadata__"]
    for key in ("format", "format_version", "engine", "config", "spec", "data", "metrics", "train_state",
                "optimizers", "extra", "created", HASH_KEY):
        for i, value in enumerate(EXTREME):
            h = json.loads(json.dumps(header))
            h["__metadata__"][key] = value
            c.add(f"meta-{key}", join(h, body))
            if key in ("config", "spec", "train_state", "extra", "created", "metrics", "data") and i % 2 == 0:
                c.add(f"meta-{key}-legacy", join(legacy(h), body))
        h = json.loads(json.dumps(header))
        del h["__metadata__"][key]
        if key not in ("data", "metrics", "train_state", "optimizers", "extra", "created"):
            c.add(f"meta-{key}-missing", join(h, body))
    fields = {
        "config": {k: v for k, v in json.loads(meta["config"]).items()},
        "spec": json.loads(meta["spec"]),
        "train_state": {"step": 1, "seed": 1, "elapsed_s": 1.0, "world_size": 1, "effective_batch": 1, "state": "x",
                        "images_seen": 1},
        "extra": {"latent_shape": [2], "capabilities": ["x"], "parameters": 1},
    }
    # Settings inflated far beyond the stored weights but inside their ranges: refused by their
    # shapes before the engine would allocate them (on the meta device), not after. (Values past
    # an option's range are refused by the range check first: "field-config" cases.)
    cfg = json.loads(meta["config"])
    for inflated in ({"latent_dim": 4096}, {"width": 256}, {"latent_dim": 4096, "width": 256}):
        h = legacy(header)
        h["__metadata__"]["config"] = json.dumps({**cfg, **inflated})
        c.add("field-config-inflated", join(h, body), "do not match")
    for inflated in ({"latent_dim": 10 ** 6}, {"width": 4096}, {"latent_dim": 2 ** 31 - 1, "width": 2 ** 20}):
        h = legacy(header)
        h["__metadata__"]["config"] = json.dumps({**cfg, **inflated})
        c.add("field-config", join(h, body), "must be within")
    for group, keys in fields.items():
        for field in keys:
            cur0 = json.loads(meta[group])
            for value in _invalid_for(cur0.get(field, keys[field]), field):
                cur = dict(cur0)
                cur[field] = value
                h = legacy(header)
                h["__metadata__"][group] = json.dumps(cur)
                c.add(f"field-{group}", join(h, body), f"{group}.{field}" if group != "config" else field)


def _invalid_for(current, field: str) -> list:
    """Values of the wrong type (or out of every range) for a field holding `current`."""
    common = [[1], {"a": 1}, None]
    if isinstance(current, bool):
        return common + [1, "yes", 0.5]
    if isinstance(current, int):
        out = common + ["text", 1.5, True, float("nan"), 2 ** 64, 10 ** 30]
        return out if field == "seed" else out + [-5]
    if isinstance(current, float):
        return common + ["text", True, float("nan"), float("inf"), -5]
    if isinstance(current, str):
        return common + [5, True, 1.5]
    if isinstance(current, list):
        return [None, "text", 5, [-1], [1.5], [None], {"a": 1}] if field == "latent_shape" else [None, "text", 5, [1], {"a": 1}]
    return common


def _nonfinite(c: Corpus, make_engine, save) -> None:
    for i, value in enumerate((float("nan"), float("inf"), float("-inf"))):
        for which in range(3):
            e = make_engine()
            params = [p for p in e.nets.parameters()]
            p = params[(which * 3 + i) % len(params)]
            with torch.no_grad():
                p.view(-1)[0] = value
            path = os.path.join(c.folder, f"nonfinite-{i}-{which}.safetensors")
            save(path, e)
            c.add_path("nonfinite", path, "NaN/Inf")
    e = make_engine()
    opt = next(iter(e.optimizers.values()))
    st = next(iter(opt.state.values()), None)
    if st is not None:
        key = next(k for k, v in st.items() if torch.is_tensor(v) and v.dim() > 0)
        st[key].view(-1)[0] = float("nan")
        path = os.path.join(c.folder, "nonfinite-optimizer.safetensors")
        save(path, e)
        c.add_path("nonfinite-optimizer", path, "NaN/Inf")


def _wrong_files(c: Corpus, rnd: random.Random) -> None:
    from PIL import Image
    import h5py
    import io
    import gzip
    import zipfile

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    c.add("file-png", buf.getvalue())
    h5 = os.path.join(c.folder, "h5.safetensors")
    with h5py.File(h5, "w") as f:
        f["images"] = np.zeros((4, 8, 8), np.uint8)
    c.add_path("file-hdf5", h5)
    c.add("file-empty", b"", "too short")
    c.add("file-text", b"this is not a checkpoint\n" * 20)
    c.add("file-json", json.dumps({"format": "latent-explorer-checkpoint"}).encode())
    c.add("file-random", bytes(rnd.getrandbits(8) for _ in range(4096)))
    c.add("file-gzip", gzip.compress(b"x" * 1000))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("a.npy", b"x")
    c.add("file-npz", zbuf.getvalue())
    c.add("file-pickle", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94.")
    c.add("file-zeros", bytes(64))
    d = os.path.join(c.folder, "folder.safetensors")
    os.mkdir(d)
    c.add_path("file-folder", d, "folder")
    fifo = os.path.join(c.folder, "fifo.safetensors")
    os.mkfifo(fifo)
    c.add_path("file-fifo", fifo, "not a regular file")
    dev = os.path.join(c.folder, "device.safetensors")
    os.symlink("/dev/zero", dev)
    c.add_path("file-device", dev, "not a regular file")
    dangling = os.path.join(c.folder, "dangling.safetensors")
    os.symlink(os.path.join(c.folder, "nowhere"), dangling)
    c.add_path("file-dangling-link", dangling, "no such file")
    c.add_path("file-missing", os.path.join(c.folder, "missing.safetensors"), "no such file")


def build(src: str, folder: str, make_engine, save, seed: int = 17) -> list[tuple[str, str, str]]:
    rnd = random.Random(seed)
    raw = open(src, "rb").read()
    n, header, body = split(raw)
    c = Corpus(folder)
    _truncations(c, raw, n, header)
    _flips(c, rnd, raw, n)
    _lies(c, rnd, raw, n, header, body)
    _metadata(c, header, body)
    _nonfinite(c, make_engine, save)
    _wrong_files(c, rnd)
    return c.cases
