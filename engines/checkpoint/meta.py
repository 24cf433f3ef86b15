"""A checkpoint's JSON metadata, checked field by field before any of it reaches an engine.

Every value read from a file is checked for its type and range here, so a damaged or hostile
file is a `CheckpointError` naming the field, never a TypeError deep inside an engine: the
config against the engine's Config dataclass (types, then `option()` choices and bounds via
`engines.config.coerce`), the image spec, the training position, the optimizer state against
the optimizers the engine builds.
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing

from engines import config as cfgmod
from engines.checkpoint.file import CheckpointError

MAX_DEPTH = 16


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _depth_ok(obj) -> bool:
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if d > MAX_DEPTH:
            return False
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return True


def json_field(path: str, meta: dict, key: str, default, kind=dict):
    """meta[key] parsed as JSON of type `kind` (default when absent), nesting bounded."""
    if key not in meta:
        return default
    try:
        value = json.loads(meta[key])
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path}: damaged checkpoint metadata ('{key}' is not valid JSON)") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: damaged checkpoint metadata ('{key}' should be a {kind.__name__})")
    if not _depth_ok(value):
        raise CheckpointError(f"{path}: damaged checkpoint metadata ('{key}' is nested too deeply)")
    return value


def _bad(path: str, what: str, value) -> CheckpointError:
    text = repr(value)
    return CheckpointError(f"{path}: damaged checkpoint metadata ({what}, got {text[:60]}{'…' if len(text) > 60 else ''})")


def check_spec(path: str, d: dict):
    from engines.spec import ImageSpec

    for k in ("channels", "height", "width"):
        if not _is_int(d.get(k)):
            raise _bad(path, f"spec.{k} must be an integer", d.get(k))
    if d["channels"] not in (1, 3):
        raise _bad(path, "spec.channels must be 1 or 3", d["channels"])
    for k in ("height", "width"):
        if not 4 <= d[k] <= 256:
            raise _bad(path, f"spec.{k} must be 4 to 256 pixels", d[k])
    try:
        return ImageSpec(d["channels"], d["height"], d["width"])
    except ValueError as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata (spec: {e})") from None


# train_state key -> (check, what it must be)
_TRAIN_STATE = {
    "step": (lambda v: _is_int(v) and 0 <= v < 2 ** 62, "a count ≥ 0"),
    "seed": (lambda v: _is_int(v) and -2 ** 63 <= v < 2 ** 63, "a 64-bit integer"),
    "elapsed_s": (lambda v: _is_real(v) and v >= 0, "seconds ≥ 0"),
    "images_seen": (lambda v: _is_int(v) and 0 <= v < 2 ** 62, "a count ≥ 0"),
    "world_size": (lambda v: _is_int(v) and 1 <= v <= 1_000_000, "a process count ≥ 1"),
    "effective_batch": (lambda v: _is_int(v) and 1 <= v < 2 ** 40, "a batch ≥ 1"),
    "epochs": (lambda v: v is None or (_is_real(v) and v >= 0), "a number ≥ 0 or null"),
    "minutes": (lambda v: v is None or (_is_real(v) and v >= 0), "a number ≥ 0 or null"),
    "state": (lambda v: isinstance(v, str), "text"),
    "prior_state": (lambda v: isinstance(v, str), "text"),
}


def check_train_state(path: str, ts: dict) -> dict:
    for key, (ok, what) in _TRAIN_STATE.items():
        if key in ts and not ok(ts[key]):
            raise _bad(path, f"train_state.{key} must be {what}", ts[key])
    return ts


def check_extra(path: str, extra: dict) -> dict:
    shape = extra.get("latent_shape", [])
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_int(d) and 1 <= d < 2 ** 31 for d in shape)):
        raise _bad(path, "extra.latent_shape must be a list of sizes ≥ 1", shape)
    caps = extra.get("capabilities", [])
    if not (isinstance(caps, list) and all(isinstance(c, str) for c in caps)):
        raise _bad(path, "extra.capabilities must be a list of names", caps)
    if "parameters" in extra and not (_is_int(extra["parameters"]) and 0 <= extra["parameters"] < 2 ** 50):
        raise _bad(path, "extra.parameters must be a count ≥ 0", extra["parameters"])
    return extra


def check_data(path: str, data: dict) -> dict:
    for k in ("name", "source"):
        if k in data and not isinstance(data[k], str):
            raise _bad(path, f"data.{k} must be text", data[k])
    return data


def check_created(path: str, meta: dict) -> float:
    try:
        created = float(meta.get("created", "0"))
    except ValueError:
        raise _bad(path, "created must be a time", meta.get("created")) from None
    if not (math.isfinite(created) and 0 <= created < 1e11):
        raise _bad(path, "created must be a time", meta.get("created"))
    return created


def _field_types(cfg_cls) -> dict:
    hints = typing.get_type_hints(cfg_cls)
    out = {}
    for f in dataclasses.fields(cfg_cls):
        t = hints.get(f.name, str)
        optional = False
        if typing.get_origin(t) is typing.Union:
            args = [a for a in typing.get_args(t) if a is not type(None)]
            optional = len(args) < len(typing.get_args(t))
            t = args[0] if args else str
        out[f.name] = (t, optional)
    return out


_TYPE_WORDS = {float: "a finite number", int: "an integer", bool: "true or false", str: "text"}


def check_config(path: str, cfg_cls, data: dict):
    """The engine's Config from a checkpoint's config: JSON types must be the field's own (an
    int for an int, a finite number for a float, …), then `option()` choices and bounds."""
    types = _field_types(cfg_cls)
    kwargs = {}
    for name, value in data.items():
        if name not in types:  # from a newer version of the engine: ignored, as before
            continue
        t, optional = types[name]
        if value is None and optional:
            kwargs[name] = None
            continue
        ok = {bool: lambda v: isinstance(v, bool), int: _is_int, float: _is_real,
              str: lambda v: isinstance(v, str)}.get(t, lambda v: isinstance(v, (str, int, float, bool)))(value)
        if not ok:
            raise _bad(path, f"config.{name} must be {_TYPE_WORDS.get(t, 'a ' + t.__name__)}", value)
        if _is_int(value) and not -2 ** 31 <= value < 2 ** 31:
            raise _bad(path, f"config.{name} is out of any range", value)
        try:
            kwargs[name] = cfgmod.coerce(cfg_cls, name, value)
        except cfgmod.ConfigError as e:
            raise CheckpointError(f"{path}: invalid config ({e})") from None
    for name, value in getattr(cfg_cls, "absent_means", {}).items():
        kwargs.setdefault(name, value)  # a field newer than the file: what the file was trained with
    try:
        return cfg_cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid config ({e})") from None


def _compatible(fresh, saved) -> bool:
    if isinstance(fresh, bool) or fresh is None:
        return saved is None or isinstance(saved, bool)
    if _is_int(fresh) or isinstance(fresh, float):
        return _is_real(saved)
    if isinstance(fresh, (tuple, list)):
        return (isinstance(saved, list) and len(saved) == len(fresh)
                and all(_compatible(a, b) for a, b in zip(fresh, saved)))
    if isinstance(fresh, str):
        return isinstance(saved, str)
    return False


def optimizer_plan(path: str, name: str, opt, meta, tensor_names: dict) -> dict:
    """Check one optimizer's saved state against the one the engine built. Returns
    {tensor name: (pid, key, expected shape or None for a scalar, parameter)}; raises
    CheckpointError naming the first mismatch."""
    def bad(why):
        return CheckpointError(f"{path}: optimizer state does not match ({name}: {why})")

    fresh = opt.state_dict()["param_groups"]
    if not isinstance(meta, dict) or not isinstance(meta.get("param_groups"), list):
        raise bad("no parameter groups")
    groups, state = meta["param_groups"], meta.get("state", {})
    if len(groups) != len(fresh):
        raise bad(f"{len(groups)} parameter groups, the engine has {len(fresh)}")
    params = {}
    for i, (g, f) in enumerate(zip(groups, fresh)):
        if not isinstance(g, dict) or g.get("params") != f["params"]:
            raise bad(f"parameter group {i} holds other parameters")
        for k, v in g.items():
            if k != "params" and k in f and not _compatible(f[k], v):
                raise bad(f"parameter group {i}: '{k}' = {str(v)[:40]}")
            if k in _GROUP_RANGES and not _GROUP_RANGES[k][0](v):
                raise bad(f"parameter group {i}: '{k}' = {str(v)[:40]} (want {_GROUP_RANGES[k][1]})")
        params.update(zip(f["params"], opt.param_groups[i]["params"]))
    if not isinstance(state, dict):
        raise bad("state is not a table")
    for pid, st in state.items():
        if not (pid.isdigit() and int(pid) in params and isinstance(st, dict) and all(_is_real(v) for v in st.values())):
            raise bad(f"state of parameter {pid[:20]}")
        if "step" in st and not 0 <= st["step"] <= STEP_MAX:
            raise bad(f"state of parameter {pid[:20]}: step {str(st['step'])[:20]}")
    plan = {}
    prefix = f"optim/{name}/"
    for tname, entry in tensor_names.items():
        if not tname.startswith(prefix):
            continue
        pid, _, key = tname[len(prefix):].partition("/")
        if not (pid.isdigit() and int(pid) in params and key):
            raise bad(f"unexpected tensor {tname}")
        p = params[int(pid)]
        if key == "step":
            if len(entry.shape) != 0 or not entry.torch_dtype.is_floating_point:
                raise bad(f"{tname} {list(entry.shape)} is not a step count")
        elif entry.shape != tuple(p.shape) or entry.torch_dtype != p.dtype:
            raise bad(f"{tname} {entry.dtype} {list(entry.shape)} vs the parameter's {list(p.shape)}")
        plan[tname] = (int(pid), key)
    return plan


# How the optimizer runs, not where training stands: these come from the engine's own optimizer,
# never from the file (a file's "capturable": true would fail the first CPU step, "amsgrad": true
# the first step for want of its extra moment; an older file's "fused": null would turn the fused
# kernel off).
IMPLEMENTATION_KEYS = ("foreach", "fused", "capturable", "differentiable", "maximize", "amsgrad",
                       "decoupled_weight_decay")
# Hyperparameters the file does carry (a resumed run keeps its learning rate and betas), each in the
# range Adam's constructor would demand: load_state_dict checks none of them, and a β₁ of 1 makes
# the first step divide by a zero bias correction (weights all NaN).
_GROUP_RANGES = {
    "lr": (lambda v: _is_real(v) and 0 < v <= 10, "a learning rate in (0, 10]"),
    "betas": (lambda v: isinstance(v, list) and len(v) == 2 and all(_is_real(b) and 0 <= b < 1 for b in v),
              "two betas in [0, 1)"),
    "eps": (lambda v: _is_real(v) and 0 < v <= 1, "an epsilon in (0, 1]"),
    "weight_decay": (lambda v: _is_real(v) and 0 <= v <= 10, "a weight decay in [0, 10]"),
}
STEP_MAX = 10**12  # optimizer step counts: 0 … this


def check_step_counts(path: str, name: str, plan: dict, tensors: dict) -> None:
    """Saved step tensors (read) must be counts 0 … STEP_MAX: a step of −1 becomes 0 at the next
    update, and Adam's bias correction 1 − β^0 = 0 then divides the update by zero."""
    for tname, (_pid, key) in plan.items():
        if key == "step":
            v = float(tensors[tname])
            if not 0 <= v <= STEP_MAX:
                raise CheckpointError(f"{path}: optimizer state does not match ({name}: {tname} = {v:g} is not a "
                                      f"step count)")


def match_layouts(opt) -> None:
    """Give each loaded per-parameter state tensor (Adam's moments) its parameter's memory layout.
    Defensive: today every engine loads into fresh nets in the default (contiguous) layout, the
    file's layout too. Should a net ever be in another (channels-last), Adam's fused kernel would
    update wrongly without a word (a 3×3 conv weight in channels-last with contiguous moments: 0.16
    off after one step against plain Adam; same layouts: 6e-8)."""
    import torch

    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            for k, v in st.items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    st[k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


def optimizer_state(meta: dict, plan: dict, tensors: dict, fresh_groups: list[dict]) -> dict:
    """The state dict to load: saved tensors and numbers, with the engine's own implementation
    flags (`IMPLEMENTATION_KEYS`) in every parameter group."""
    state: dict = {}
    for tname, (pid, key) in plan.items():
        state.setdefault(pid, {})[key] = tensors[tname]
    for pid, st in meta.get("state", {}).items():
        state.setdefault(int(pid), {}).update(st)
    groups = []
    for saved, fresh in zip(meta["param_groups"], fresh_groups):
        g = {k: v for k, v in saved.items() if k not in IMPLEMENTATION_KEYS}
        g.update({k: fresh[k] for k in IMPLEMENTATION_KEYS if k in fresh})
        groups.append(g)
    return {"state": state, "param_groups": groups}
