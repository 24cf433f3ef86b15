"""Checkpoints: one safetensors file holding weights, optimizer state and JSON metadata.

Nothing in the file is ever executed: safetensors stores raw tensors, and everything else
(config, image spec, data description, metrics, optimizer hyper-parameters, training
position) is JSON in the header. Writes go to a temporary file that replaces the target
only once complete, so a crash or a full disk mid-save leaves the previous file valid.
"""
from __future__ import annotations

import json
import os
import struct
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engines import atomic
from engines import config as cfgmod
from engines.spec import ImageSpec

FORMAT = "latent-explorer-checkpoint"
FORMAT_VERSION = 1
MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(ValueError):
    """The file is not a checkpoint we can open; the message says why."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself, readable without building the model."""

    path: str
    engine: str
    config: dict
    spec: ImageSpec
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    train_state: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    created: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def latent_shape(self) -> list:
        return list(self.extra.get("latent_shape", []))


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors, plain = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{name}/{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "state": plain}


def _unflatten_optimizer(name: str, meta: dict, tensors: dict) -> dict:
    state: dict = {}
    prefix = f"optim/{name}/"
    for key, v in tensors.items():
        if key.startswith(prefix):
            pid, k = key[len(prefix):].split("/", 1)
            state.setdefault(int(pid), {})[k] = v
    for pid, st in meta.get("state", {}).items():
        state.setdefault(int(pid), {}).update(st)
    return {"state": state, "param_groups": meta["param_groups"]}


def save(path: str, engine, data: dict | None = None, metrics: dict | None = None,
         train_state: dict | None = None, thumbnail: np.ndarray | None = None,
         include_optimizer: bool = True) -> str:
    """Write the engine atomically to `path`. `thumbnail`: optional uint8 (H,W,C) sample grid."""
    with engine.lock:
        tensors = {f"model/{k}": v for k, v in engine.state_tensors().items()}
        optim_meta = {}
        if include_optimizer:
            for name, opt in engine.optimizers.items():
                t, m = _flatten_optimizer(name, opt)
                tensors.update(t)
                optim_meta[name] = m
        meta = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "engine": engine.name,
            "config": cfgmod.to_json(engine.config),
            "spec": json.dumps(engine.spec.to_dict()),
            "data": json.dumps(data or {}),
            "metrics": json.dumps(metrics or {}),
            "train_state": json.dumps({"step": engine.step, "seed": engine.seed, **(train_state or {})}),
            "optimizers": json.dumps(optim_meta),
            "extra": json.dumps({"latent_shape": list(engine.latent_shape), "capabilities": sorted(engine.capabilities),
                                 "parameters": engine.n_parameters()}),
            "created": repr(time.time()),
        }
    if thumbnail is not None:
        tensors["thumbnail"] = torch.from_numpy(np.ascontiguousarray(thumbnail, dtype=np.uint8))
    blob = st_save(tensors, metadata=meta)
    _atomic_write(path, blob)
    return path


def _atomic_write(path: str, blob: bytes) -> None:
    try:
        atomic.write_bytes(path, blob, durable=True, what="checkpoint")
    except atomic.WriteError as e:
        raise CheckpointError(str(e)) from e
    except OSError as e:
        raise CheckpointError(f"{path}: could not write checkpoint ({e.strerror or e})") from e


def _read_header(path: str) -> dict:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(f"{path}: not a checkpoint (file too short)")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise CheckpointError(f"{path}: not a checkpoint, or truncated (bad header length)")
            header = json.loads(f.read(n))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path}: not a checkpoint (unreadable header)") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read ({e.strerror or e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a checkpoint (unreadable header)")
    # The header also lists every tensor's byte range; the data must extend to the last one.
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]
    if ends and 8 + n + max(ends) > size:
        raise CheckpointError(f"{path}: checkpoint is truncated ({size} bytes, needs {8 + n + max(ends)})")
    return header


def read_info(path: str) -> CheckpointInfo:
    """Metadata only: cheap enough for listing a library of checkpoints."""
    meta = _read_header(path).get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint")
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise CheckpointError(f"{path}: bad format version") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer Latent Explorer (format {version}, this version reads up to {FORMAT_VERSION}); please upgrade")
    try:
        return CheckpointInfo(
            path=path,
            engine=meta["engine"],
            config=json.loads(meta["config"]),
            spec=ImageSpec.from_dict(json.loads(meta["spec"])),
            data=json.loads(meta.get("data", "{}")),
            metrics=json.loads(meta.get("metrics", "{}")),
            train_state=json.loads(meta.get("train_state", "{}")),
            format_version=version,
            created=float(meta.get("created", "0")),
            extra=json.loads(meta.get("extra", "{}")),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({e})") from None


def _read_tensors(path: str) -> dict[str, torch.Tensor]:
    try:
        with open(path, "rb") as f:
            return st_load(f.read())
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: corrupt checkpoint ({str(e).splitlines()[0][:120]})") from None


def read_thumbnail(path: str) -> np.ndarray | None:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="pt") as f:
            if "thumbnail" in f.keys():
                return f.get_tensor("thumbnail").numpy()
    except Exception:
        return None
    return None


@dataclass
class Loaded:
    engine: object
    info: CheckpointInfo


def load(path: str, device="auto", with_optimizer: bool = True) -> Loaded:
    """Rebuild the engine from the file's config, then load its weights (and optimizer)."""
    import engines

    info = read_info(path)
    try:
        cls = engines.engine_class(info.engine)
    except engines.UnknownEngine:
        raise CheckpointError(f"{path}: unknown engine '{info.engine}' (known: {', '.join(engines.names())})") from None
    try:
        cfg = cfgmod.from_json(cls.Config, json.dumps(info.config))
    except cfgmod.ConfigError as e:
        raise CheckpointError(f"{path}: invalid config ({e})") from None
    tensors = _read_tensors(path)
    try:
        engine = cls(info.spec, cfg, device=device, seed=int(info.train_state.get("seed", 0)))
    except ValueError as e:
        raise CheckpointError(f"{path}: cannot build {info.engine} ({e})") from None
    model = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    try:
        engine.load_state_tensors(model)
    except (KeyError, RuntimeError) as e:
        msg = str(e.args[0]) if e.args else str(e)
        raise CheckpointError(f"{path}: {msg.splitlines()[0][:300]}") from None
    if with_optimizer:
        optim_meta = json.loads(_read_header(path)["__metadata__"].get("optimizers", "{}"))
        for name, opt in engine.optimizers.items():
            if name in optim_meta:
                try:
                    opt.load_state_dict(_unflatten_optimizer(name, optim_meta[name], tensors))
                except (KeyError, ValueError, RuntimeError) as e:
                    raise CheckpointError(f"{path}: optimizer state does not match ({e})") from None
    engine.step = int(info.train_state.get("step", 0))
    engine.resume_state = dict(info.train_state)
    engine.after_load()
    return Loaded(engine, info)


def update(path: str, metrics: dict | None = None, drop_optimizer: bool = False) -> None:
    """Rewrite a checkpoint's metadata (merge `metrics`) and optionally drop the optimizer
    state (bundled models ship without it), keeping the weights bit for bit."""
    header = _read_header(path)
    meta = dict(header.get("__metadata__") or {})
    read_info(path)  # validates format/version
    tensors = _read_tensors(path)
    if metrics:
        merged = json.loads(meta.get("metrics", "{}"))
        merged.update(metrics)
        meta["metrics"] = json.dumps(merged)
    if drop_optimizer:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("optim/")}
        meta["optimizers"] = "{}"
    _atomic_write(path, st_save(tensors, metadata=meta))
