"""A seeded corpus of malformed checkpoints of the newer kinds (tests/new_kinds.py), generated from
one tiny good file of each kind: the generic damage of tests/checkpoint_corpus.py in a compact
form (truncations, bit flips in header and body, lying header lengths / dtypes / shapes / offsets,
tensors removed / added), then what each kind can get wrong on its own: settings inflated beyond
the stored weights (refused by shape on the meta device) or past their ranges (hidden = 10⁶,
layers = 10⁴), settings of the wrong JSON type, a latent diffusion's scale factor NaN / ±inf /
negative, a first stage that disagrees with the U-Net, a reused first stage described by a
hostile `first_stage`, a PixelCNN whose `positions` field disagrees with its tensors, a VQ-VAE
whose `prior` disagrees with the prior's tensors.

`build(kind, src, folder, rnd, make, save)` returns [(case kind, path, expect)]: `expect` is a word
the one-line CheckpointError must contain ('' = any); None marks a well-formed file that must load.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import torch

from tests.checkpoint_corpus import Corpus, join, legacy, split

# Settings per kind: (inflated but within range -> refused by the shape check,
#                     past the range -> refused by the range check, wrong JSON types)
INFLATE = {
    "latent-diffusion": ([{"width": 256}, {"latent_channels": 64}, {"ae_width": 256}, {"blocks": 4, "levels": 4}],
                         [{"width": 10 ** 6}, {"latent_channels": 10 ** 4}, {"ae_width": 2 ** 31 - 1}, {"blocks": 10 ** 4}],
                         {"width": ["8", 8.5, True, None], "latent_channels": [[2], {"a": 1}], "target": [5, "q"],
                          "clip": [1, "yes"], "ae_epochs": [float("nan"), "1"], "first_stage": [5, ["x"]],
                          "autoencoder": [7, True]}),
    "latent-diffusion-reused": ([{"width": 256}, {"blocks": 4}], [{"width": 10 ** 6}, {"levels": 10 ** 4}],
                                {"first_stage": [5, None, {"engine": "ae"}], "width": ["big"]}),
    "flow": ([{"width": 2048}, {"steps": 64}, {"width": 2048, "steps": 64}, {"num_classes": 10_000}],
             [{"width": 10 ** 6}, {"steps": 10 ** 4}, {"levels": 10 ** 4}, {"eval_samples": 10 ** 9}],
             {"width": ["8", 4.5, False], "dequantization": [3, "magic"], "levels": [None, [2]]}),
    "pixelcnn": ([{"hidden": 256}, {"layers": 32}, {"hidden": 256, "layers": 32}, {"num_classes": 10_000}, {"kernel": 15},
                  {"inner_kernel": 15}],
                 [{"hidden": 10 ** 6}, {"layers": 10 ** 4}, {"kernel": 10 ** 5}, {"num_classes": 2 ** 40},
                  {"inner_kernel": 10 ** 5}],
                 {"hidden": ["48", 4.5, True], "positions": ["yes", 1, 0, None, [True]], "kernel": [3.5, "3"],
                  "inner_kernel": [5.0, "5", None, 2],
                  "temperature": [float("inf"), "hot"]}),
    "pixelcnn-before-positions": ([{"hidden": 256}, {"layers": 32}], [{"hidden": 10 ** 6}, {"layers": 10 ** 4}],
                                  {"hidden": ["4"]}),
    "vq-pixelcnn-prior": ([{"prior_dim": 1024}, {"prior_layers": 24}, {"codebook_size": 4096}, {"width": 256}],
                          [{"prior_dim": 10 ** 6}, {"prior_layers": 10 ** 4}, {"codebook_size": 2 ** 31 - 1}],
                          {"prior": [5, "lstm", None], "prior_dim": ["8", 8.5], "prior_layers": [True]}),
}


def _rehash_write(path: str, header: dict, body: bytes) -> bytes:
    """A header change (config, tensors) given a valid content hash, as a careful forger would:
    the damage must then be caught by the field and shape checks, not only the hash."""
    from engines.checkpoint.file import content_hasher, _hash_entry_head

    meta = header["__metadata__"]
    h = content_hasher(meta)
    names = sorted(k for k in header if k != "__metadata__")
    for name in names:
        v = header[name]
        a, b = v["data_offsets"]
        _hash_entry_head(h, name, v["dtype"], v["shape"])
        h.update(body[a:b])
    meta["content_sha256"] = h.hexdigest()
    return join(header, body)


def _copy(header: dict) -> dict:
    return json.loads(json.dumps(header))


def _with_config(c: Corpus, kind: str, header: dict, body: bytes, change: dict, expect: str, hashed=True) -> None:
    h = _copy(header)
    cfg = json.loads(h["__metadata__"]["config"])
    cfg.update(change)
    h["__metadata__"]["config"] = json.dumps(cfg)
    c.add(kind, _rehash_write(c.folder, h, body) if hashed else join(legacy(h), body), expect)


def _tensors_rebuilt(tensors: dict) -> tuple[dict, bytes]:
    """(header entries, body) for {name: (dtype name, shape, bytes)} laid out in name order."""
    entries, body, pos = {}, b"", 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + len(data)]}
        body += data
        pos += len(data)
    return entries, body


def _tensor_table(header: dict, body: bytes) -> dict:
    return {k: (v["dtype"], v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def _with_tensors(c: Corpus, kind: str, header: dict, table: dict, expect: str) -> None:
    entries, body = _tensors_rebuilt(table)
    h = {"__metadata__": _copy(header)["__metadata__"], **entries}
    c.add(kind, _rehash_write(c.folder, h, body), expect)


def generic(c: Corpus, rnd, raw: bytes) -> None:
    n, header, body = split(raw)
    for cut in (0, 4, 7, 8, 9, 8 + n // 2, 8 + n - 1):
        c.add("truncate-header", raw[:cut])
    for frac in (0.01, 0.3, 0.5, 0.9, 0.999):
        c.add("truncate-body", raw[:8 + n + int(len(body) * frac)], "truncated")
    for _ in range(8):
        bad = bytearray(raw)
        bad[rnd.randrange(0, 8 + n)] ^= 1 << rnd.randrange(8)
        c.add("flip-header", bytes(bad))
    for _ in range(8):
        bad = bytearray(raw)
        bad[rnd.randrange(8 + n, len(raw))] ^= 1 << rnd.randrange(8)
        c.add("flip-body", bytes(bad), "hash mismatch")
    for lie in (n - 1, n + 8, 0, 2 ** 63, len(raw), 100 * 1024 * 1024 + 1):
        c.add("lie-header-length", struct.pack("<Q", lie) + raw[8:])
    names = sorted(k for k in header if k != "__metadata__")
    f32 = [k for k in names if header[k]["dtype"] == "F32" and len(header[k]["shape"]) >= 1]
    for name in rnd.sample(f32, min(4, len(f32))):
        v = header[name]
        a, b = v["data_offsets"]
        numel = int(np.prod(v["shape"]))
        for what, change in {"dtype-F16": {"dtype": "F16"}, "dtype-I64": {"dtype": "I64"}, "dtype-junk": {"dtype": "X7"},
                             "shape-bigger": {"shape": [s * 2 for s in v["shape"]]},
                             "shape-huge": {"shape": [2 ** 62, 2 ** 62]}, "shape-negative": {"shape": [-numel]},
                             "offset-shift": {"data_offsets": [a + 4, b + 4]},
                             "offset-beyond": {"data_offsets": [a + len(body), b + len(body)]},
                             "offset-reversed": {"data_offsets": [b, a]}}.items():
            h = _copy(header)
            h[name].update(change)
            c.add(f"lie-{what}", join(h, body))
    # Reshaped but the same bytes, with a valid hash: the shape check names the tensor.
    multi = [k for k in f32 if k.startswith("model/") and len(header[k]["shape"]) > 1]
    for name in multi[:3]:
        table = _tensor_table(header, body)
        dtype, shape, data = table[name]
        table[name] = (dtype, [int(np.prod(shape))], data)
        _with_tensors(c, "lie-shape-flat-hashed", header, table, "do not match")
    model = [k for k in names if k.startswith("model/")]
    for name in rnd.sample(model, min(4, len(model))):  # a tensor missing, with a valid hash
        table = _tensor_table(header, body)
        del table[name]
        _with_tensors(c, "tensor-missing", header, table, "missing")
    table = _tensor_table(header, body)
    table["model/extra.weight"] = ("F32", [2], bytes(8))
    _with_tensors(c, "tensor-extra", header, table, "unexpected")
    table = _tensor_table(header, body)
    table[model[0]] = (table[model[0]][0], [1] + list(table[model[0]][1]), table[model[0]][2])
    _with_tensors(c, "tensor-extra-dim", header, table, "do not match")


def config_cases(c: Corpus, kind: str, raw: bytes) -> None:
    _, header, body = split(raw)
    within, beyond, wrong_types = INFLATE[kind]
    for change in within:
        _with_config(c, "config-inflated", header, body, change, "do not match")
        _with_config(c, "config-inflated-legacy", header, body, change, "do not match", hashed=False)
    for change in beyond:
        _with_config(c, "config-beyond-range", header, body, change, "")
    for field, values in wrong_types.items():
        for v in values:
            _with_config(c, "config-type", header, body, {field: v}, "")


def _scalar_bytes(value: float) -> bytes:
    return struct.pack("<f", value)


def latent_diffusion_cases(c: Corpus, raw: bytes, other_raw: bytes) -> None:
    """The scale factor, the stage counter, and a first stage that disagrees with the U-Net."""
    _, header, body = split(raw)
    for value, expect in ((float("nan"), "NaN/Inf"), (float("inf"), "NaN/Inf"), (float("-inf"), "NaN/Inf"),
                          (-1.0, "scale"), (-1e-30, "scale"), (0.0, None)):  # 0: stage 2 not started yet (loads)
        table = _tensor_table(header, body)
        table["model/stats.scale"] = ("F32", [], _scalar_bytes(value))
        _with_tensors(c, "ld-scale", header, table, expect)
    table = _tensor_table(header, body)
    table["model/stats.scale"] = ("F32", [4], _scalar_bytes(1.0) * 4)
    _with_tensors(c, "ld-scale-shape", header, table, "do not match")
    table = _tensor_table(header, body)
    table["model/stats.scale"] = ("F64", [], struct.pack("<d", 1.0))
    _with_tensors(c, "ld-scale-dtype", header, table, "do not match")
    table = _tensor_table(header, body)
    del table["model/stats.scale"]
    _with_tensors(c, "ld-scale-missing", header, table, "missing")
    # first stage of a model with 3 latent channels beside this U-Net over 2 (and the other way)
    _, oh, ob = split(other_raw)
    mine, theirs = _tensor_table(header, body), _tensor_table(oh, ob)
    spliced = {k: v for k, v in mine.items() if not k.startswith("model/first.")}
    spliced.update({k: v for k, v in theirs.items() if k.startswith("model/first.")})
    spliced = {k: v for k, v in spliced.items() if not k.startswith("optim/ae/")}
    _with_tensors(c, "ld-first-stage-disagrees", header, spliced, "do not match")
    spliced = {k: v for k, v in theirs.items() if not k.startswith("model/first.") and not k.startswith("optim/")}
    spliced.update({k: v for k, v in mine.items() if k.startswith("model/first.")})
    _with_tensors(c, "ld-unet-disagrees", header, spliced, "do not match")
    _with_config(c, "ld-latent-channels-lie", header, body, {"latent_channels": 3}, "do not match")


def latent_diffusion_reused_cases(c: Corpus, raw: bytes) -> None:
    """A hostile `first_stage` (the reused first stage's engine and config, JSON in a setting)."""
    _, header, body = split(raw)
    cfg = json.loads(header["__metadata__"]["config"])
    fs = json.loads(cfg["first_stage"])
    ae = fs["config"]
    hostile = {
        "not-json": "{not json",
        "a-list": "[1, 2]",
        "no-engine": json.dumps({"config": ae}),
        "unknown-engine": json.dumps({"engine": "nope", "config": {}}),
        "gan": json.dumps({"engine": "gan", "config": {}}),
        "pixelcnn": json.dumps({"engine": "pixelcnn", "config": {"hidden": 4}}),
        "itself": json.dumps({"engine": "latent-diffusion", "config": dict(cfg)}),
        "config-not-table": json.dumps({"engine": "ae", "config": [1]}),
        "config-wrong-type": json.dumps({"engine": "ae", "config": {**ae, "latent_dim": "2"}}),
        "config-beyond-range": json.dumps({"engine": "ae", "config": {**ae, "latent_dim": 10 ** 9}}),
        "config-inflated": json.dumps({"engine": "ae", "config": {**ae, "latent_dim": 4096, "width": 256}}),
        "config-other-latent": json.dumps({"engine": "ae", "config": {**ae, "latent_dim": 3}}),
        "vae-for-ae": json.dumps({"engine": "vae", "config": ae}),
        "deep": "[" * 5000 + "]" * 5000,
    }
    for what, value in hostile.items():
        _with_config(c, f"ldr-first-stage-{what}", header, body, {"first_stage": value}, "")
    # `autoencoder` set but `first_stage` empty: a file that would read another file when opened
    for target in ("/dev/zero", os.path.join(c.folder, "nowhere.safetensors"), fs["path"]):
        _with_config(c, "ldr-autoencoder-without-first-stage", header, body,
                     {"first_stage": "", "autoencoder": target}, "first_stage")


def pixelcnn_cases(c: Corpus, raw: bytes, before_positions: bool) -> None:
    _, header, body = split(raw)
    if before_positions:  # trained without position biases: claiming them is a shape mismatch
        _with_config(c, "pix-positions-claimed", header, body, {"positions": True}, "missing")
        return
    h = _copy(header)  # dropped field, tensors kept: the file says "before positions" but holds them
    cfg = json.loads(h["__metadata__"]["config"])
    cfg.pop("positions")
    h["__metadata__"]["config"] = json.dumps(cfg)
    c.add("pix-positions-dropped", _rehash_write(c.folder, h, body), "unexpected")
    _with_config(c, "pix-positions-false", header, body, {"positions": False}, "unexpected")
    _with_config(c, "pix-kernel-even", header, body, {"kernel": 4}, "kernel")
    _with_config(c, "pix-inner-kernel-even", header, body, {"inner_kernel": 4}, "inner_kernel")
    _with_config(c, "pix-inner-kernel-wider", header, body, {"inner_kernel": 5}, "")  # tensors are 3 wide
    _with_config(c, "pix-hidden-not-multiple", header, body, {"hidden": 5}, "")


def vq_prior_cases(c: Corpus, raw: bytes) -> None:
    _, header, body = split(raw)
    _with_config(c, "vq-prior-transformer", header, body, {"prior": "transformer", "prior_heads": 2}, "do not match")
    _with_config(c, "vq-prior-heads", header, body, {"prior": "transformer", "prior_heads": 3}, "")
    for value, expect in ((-5, "step count"), (2 ** 62, None)):  # a huge count is only a count
        table = _tensor_table(header, body)
        k = "model/prior.trained_steps"
        table[k] = ("I64", [], struct.pack("<q", value))
        _with_tensors(c, "vq-prior-steps", header, table, expect)


def nonfinite(c: Corpus, make, save) -> None:
    for i, value in enumerate((float("nan"), float("inf"))):
        e = make()
        params = list(e.nets.parameters())
        with torch.no_grad():
            params[(7 * i + 3) % len(params)].view(-1)[0] = value
        path = os.path.join(c.folder, f"nonfinite-{i}.safetensors")
        save(path, e)
        c.add_path("nonfinite", path, "NaN/Inf")


def build(kind: str, src: str, folder: str, rnd, make, save, other_src: str | None = None):
    os.makedirs(folder, exist_ok=True)
    raw = open(src, "rb").read()
    c = Corpus(folder)
    generic(c, rnd, raw)
    config_cases(c, kind, raw)
    if kind == "latent-diffusion":
        latent_diffusion_cases(c, raw, open(other_src, "rb").read())
    elif kind == "latent-diffusion-reused":
        latent_diffusion_reused_cases(c, raw)
    elif kind.startswith("pixelcnn"):
        pixelcnn_cases(c, raw, kind == "pixelcnn-before-positions")
    elif kind == "vq-pixelcnn-prior":
        vq_prior_cases(c, raw)
    nonfinite(c, make, save)
    return c.cases
