"""Checkpoints: one safetensors file holding weights, optimizer state and JSON metadata.

Nothing in the file is ever executed: safetensors stores raw tensors, and everything else
(config, image spec, data description, metrics, optimizer hyper-parameters, training
position) is JSON in the header. Writes go to a temporary file that replaces the target
only once complete, so a crash or a full disk mid-save leaves the previous file valid.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np

from engines import atomic
from engines.checkpoint import meta as meta_mod
from engines import config as cfgmod
from engines.checkpoint.file import HASH_KEY, MAX_HEADER, CheckedFile, CheckpointError, content_hash  # noqa: F401
from engines.spec import ImageSpec

FORMAT = "latent-explorer-checkpoint"
# 2: the metadata carries `content_sha256` (engines/checkpoint/file.py), required from then on.
# Files of format 1 (no hash) still open, with a warning that they cannot be verified.
FORMAT_VERSION = 2
log = logging.getLogger(__name__)


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


def _flatten_optimizer(name: str, opt) -> tuple[dict, dict]:
    import torch

    sd = opt.state_dict()
    tensors, plain = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim/{name}/{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                plain.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "state": plain}


def save(path: str, engine, data: dict | None = None, metrics: dict | None = None,
         train_state: dict | None = None, thumbnail: np.ndarray | None = None,
         include_optimizer: bool = True) -> str:
    """Write the engine atomically to `path`. `thumbnail`: optional uint8 (H,W,C) sample grid."""
    import torch

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
    _write(path, tensors, meta)
    return path


def _write(path: str, tensors: dict, meta: dict) -> None:
    from safetensors.torch import save as st_save

    meta = {k: v for k, v in meta.items() if k != HASH_KEY}
    meta[HASH_KEY] = content_hash(meta, tensors)
    try:
        atomic.write_bytes(path, st_save(tensors, metadata=meta), durable=True, what="checkpoint")
    except atomic.WriteError as e:
        raise CheckpointError(str(e)) from e
    except OSError as e:
        raise CheckpointError(f"{path}: could not write checkpoint ({e.strerror or e})") from e


def _header(path: str) -> CheckedFile:
    """The validated file (header checked against the file's size; nothing else read yet)."""
    return CheckedFile(path)


def _info(path: str, meta: dict) -> CheckpointInfo:
    """Every metadata field, type- and range-checked (the config against its engine's Config)."""
    import engines

    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a Latent Explorer checkpoint")
    text = meta.get("format_version", "0")
    if not (text.isascii() and text.isdigit() and len(text) < 6):
        raise CheckpointError(f"{path}: bad format version")
    version = int(text)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer Latent Explorer (format {version}, this version reads up to {FORMAT_VERSION}); please upgrade")
    if version < 1:
        raise CheckpointError(f"{path}: bad format version")
    if HASH_KEY in meta:
        digest = meta[HASH_KEY]
        if not (len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise CheckpointError(f"{path}: weights damaged: hash unreadable")
    elif version >= 2:
        raise CheckpointError(f"{path}: weights damaged: hash missing")
    if "engine" not in meta:
        raise CheckpointError(f"{path}: damaged checkpoint metadata (no engine)")
    name = meta["engine"]
    try:
        cls = engines.engine_class(name)
    except engines.UnknownEngine:
        raise CheckpointError(f"{path}: unknown engine '{name[:40]}' (known: {', '.join(engines.names())})") from None
    for key in ("config", "spec"):
        if key not in meta:
            raise CheckpointError(f"{path}: damaged checkpoint metadata (no {key})")
    config = meta_mod.json_field(path, meta, "config", {})
    problem = cls.saved_config_problem(meta_mod.check_config(path, cls.Config, config))
    if problem:
        raise CheckpointError(f"{path}: invalid config ({problem})")
    return CheckpointInfo(
        path=path, engine=name, config=config,
        spec=meta_mod.check_spec(path, meta_mod.json_field(path, meta, "spec", {})),
        data=meta_mod.check_data(path, meta_mod.json_field(path, meta, "data", {})),
        metrics=meta_mod.json_field(path, meta, "metrics", {}),
        train_state=meta_mod.check_train_state(path, meta_mod.json_field(path, meta, "train_state", {})),
        format_version=version,
        created=meta_mod.check_created(path, meta),
        extra=meta_mod.check_extra(path, meta_mod.json_field(path, meta, "extra", {})),
    )


def read_info(path: str) -> CheckpointInfo:
    """Metadata only, every field checked: cheap enough for listing a library of checkpoints."""
    with _header(path) as f:
        return _info(path, f.meta)


def read_thumbnail(path: str) -> np.ndarray | None:
    """The sample grid saved with the checkpoint (uint8 H×W×C), or None (absent or unusable)."""
    from safetensors import safe_open

    try:
        with _header(path) as f:
            e = f.tensors.get("thumbnail")
        if e is None or e.dtype != "U8" or len(e.shape) != 3 or e.shape[2] not in (1, 3, 4) \
                or not (0 < e.shape[0] <= 4096 and 0 < e.shape[1] <= 4096):
            return None
        with safe_open(path, framework="numpy") as st:
            return np.array(st.get_tensor("thumbnail"), dtype=np.uint8)
    except Exception:  # noqa: BLE001 - a missing thumbnail never stops the listing
        return None


_unverified_said: set[str] = set()


def _verify(path: str, f: CheckedFile, digest: str, nonfinite: str | None) -> None:
    expected = f.meta.get(HASH_KEY)
    if expected is None:
        key = os.path.realpath(path)
        if key not in _unverified_said:
            _unverified_said.add(key)
            log.warning("%s: written before checkpoints carried a content hash; its weights cannot be verified", path)
    elif expected != digest:
        raise CheckpointError(f"{path}: weights damaged: hash mismatch")
    if nonfinite is not None:
        raise CheckpointError(f"{path}: weights contain NaN/Inf: {nonfinite}")


@dataclass
class Loaded:
    engine: object
    info: CheckpointInfo


def _shapes(state: dict) -> dict:
    return {k: (tuple(v.shape), v.dtype) for k, v in state.items()}


def _probe(cls, spec, cfg) -> dict | None:
    """The state an engine of this config would have, built on torch's meta device (shapes, no
    memory): a config inflated in the file (latent_dim = 10⁶, say) is refused by the shape
    check before anything is allocated. None when the probe cannot run (the real build decides)."""
    import threading

    import torch
    from torch import nn

    try:
        probe = cls.__new__(cls)  # what Engine.__init__ sets before build()
        probe.spec, probe.config, probe.device, probe.seed = spec, cfg, torch.device("cpu"), 0
        probe.lock, probe.step = threading.RLock(), 0
        probe.check_spec(spec)
        with torch.device("meta"):
            return _shapes(nn.ModuleDict(probe.build()).state_dict())
    except Exception:  # noqa: BLE001 - only a shortcut: the real build reports its own errors
        return None


def _first_mismatch(own: dict, entries: dict) -> str | None:
    """`own`: name -> (shape, dtype) of the engine's state; `entries`: the file's tensors."""
    model = {k[len("model/"):]: e for k, e in entries.items() if k.startswith("model/")}
    for k, (shape, dtype) in own.items():
        if k not in model:
            return f"missing: {k}"
        e = model[k]
        if e.shape != shape:
            return f"wrong shape: {k} {list(e.shape)} vs {list(shape)}"
        if e.torch_dtype != dtype:
            return f"wrong dtype: {k} {e.dtype} vs {str(dtype).replace('torch.', '')}"
    for k in model:
        if k not in own:
            return f"unexpected: {k}"
    return None


def load(path: str, device="auto", with_optimizer: bool = True) -> Loaded:
    """Rebuild the engine from the file's (checked) config, then read its weights (and
    optimizer state) straight into it, verifying the content hash and finiteness."""
    import torch

    import engines

    with _header(path) as f:
        info = _info(path, f.meta)
        cls = engines.engine_class(info.engine)
        cfg = meta_mod.check_config(path, cls.Config, info.config)
        expected = _probe(cls, info.spec, cfg)
        wrong = _first_mismatch(expected, f.tensors) if expected is not None else None
        if wrong:
            raise CheckpointError(f"{path}: weights do not match the {info.engine} architecture ({wrong})")
        try:
            engine = cls(info.spec, cfg, device=device, seed=int(info.train_state.get("seed", 0)))
        except (ValueError, TypeError, RuntimeError, MemoryError, OverflowError) as e:
            reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise CheckpointError(f"{path}: cannot build {info.engine} ({reason})") from None
        wrong = _first_mismatch(_shapes(engine.nets.state_dict()), f.tensors)
        if wrong:
            raise CheckpointError(f"{path}: weights do not match the {info.engine} architecture ({wrong})")
        own = engine.nets.state_dict()
        targets: dict = {}
        for k, v in own.items():
            direct = v.device.type == "cpu" and v.is_contiguous()
            targets[f"model/{k}"] = v if direct else torch.empty(tuple(v.shape), dtype=v.dtype)

        def copy_back(name, t):
            if name.startswith("model/"):
                dst = own[name[len("model/"):]]
                if dst is not t:
                    dst.copy_(t)

        plans, optim_meta = {}, {}
        if with_optimizer:
            optim_meta = meta_mod.json_field(path, f.meta, "optimizers", {})
            for name in optim_meta:
                if name not in engine.optimizers:
                    raise CheckpointError(f"{path}: optimizer state does not match (unknown optimizer '{name[:40]}')")
            for name, m in optim_meta.items():
                plans[name] = meta_mod.optimizer_plan(path, name, engine.optimizers[name], m, f.tensors)
                for tname in plans[name]:
                    e = f.tensors[tname]
                    targets[tname] = torch.empty(e.shape, dtype=e.torch_dtype)
        with torch.no_grad():
            digest, nonfinite = f.read(targets, on_read=copy_back)
        _verify(path, f, digest, nonfinite)
    for name, plan in plans.items():
        meta_mod.check_step_counts(path, name, plan, targets)
        try:
            opt = engine.optimizers[name]
            opt.load_state_dict(meta_mod.optimizer_state(optim_meta[name], plan, targets,
                                                         opt.state_dict()["param_groups"]))
            meta_mod.match_layouts(opt)
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise CheckpointError(f"{path}: optimizer state does not match ({str(e)[:200]})") from None
    engine.step = int(info.train_state.get("step", 0))
    engine.resume_state = dict(info.train_state)
    try:
        engine.after_load()
    except ValueError as e:
        raise CheckpointError(f"{path}: damaged weights ({str(e)[:200]})") from None
    return Loaded(engine, info)


def _read_all(path: str) -> tuple[dict, dict]:
    """(metadata, every tensor on the CPU), verified."""
    import torch

    with _header(path) as f:
        _info(path, f.meta)
        tensors = {n: torch.empty(e.shape, dtype=e.torch_dtype) for n, e in f.tensors.items()}
        digest, nonfinite = f.read(tensors)
        _verify(path, f, digest, nonfinite)
        return dict(f.meta), tensors


def update(path: str, metrics: dict | None = None, drop_optimizer: bool = False) -> None:
    """Rewrite a checkpoint's metadata (merge `metrics`) and optionally drop the optimizer
    state (bundled models ship without it), keeping the weights bit for bit."""
    meta, tensors = _read_all(path)
    if metrics:
        merged = meta_mod.json_field(path, meta, "metrics", {})
        merged.update(metrics)
        meta["metrics"] = json.dumps(merged)
    if drop_optimizer:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("optim/")}
        meta["optimizers"] = "{}"
    _write(path, tensors, meta)
