"""Engine configs are dataclasses; these helpers turn them into/from JSON and `--set key=value`.

Every numeric field is declared with `option(..., minimum=, maximum=)`: `coerce` (and so `build`,
`--set`, the Train panel's form and a checkpoint's stored config) refuses a value outside its
range, NaN or ±Inf, before anything is allocated (tests/test_bounds.py checks that every engine's
numeric fields have both bounds).
"""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import MISSING, dataclass, field, fields


class ConfigError(ValueError):
    pass


def option(default, help: str, choices: tuple | None = None, minimum=None, maximum=None):
    """A documented config field: the help text becomes the GUI tooltip and the CLI's listing."""
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if minimum is not None:
        meta["min"] = minimum
    if maximum is not None:
        meta["max"] = maximum
    return field(default=default, metadata=meta)


# Shared limits (an engine's own fields may be tighter).
LR_MIN, LR_MAX = 1e-8, 10.0  # a learning rate is finite and positive
BATCH_MAX = 4096
LATENT_MAX = 4096  # latent vector sizes
WIDTH_MAX = 256  # channels of a network's first stage (later stages up to 8×)
STEPS_MAX = 10_000_000  # counts of training steps (warm-ups, annealing, starts)
WEIGHT_MAX = 1000.0  # loss weights and penalties
CLASSES_MAX = 10_000


@dataclass
class EngineConfig:
    """Fields every trainable engine shares."""

    lr: float = option(1e-3, "Adam learning rate", minimum=LR_MIN, maximum=LR_MAX)
    batch_size: int = option(64, "images per training step", minimum=1, maximum=BATCH_MAX)


def _field_type(cfg_cls, f) -> type:
    hints = typing.get_type_hints(cfg_cls)
    t = hints.get(f.name, str)
    if typing.get_origin(t) is typing.Union:  # Optional[X] -> X
        args = [a for a in typing.get_args(t) if a is not type(None)]
        t = args[0] if args else str
    return t


def coerce(cfg_cls, name: str, value):
    """Convert a value (often a string from the command line) to the field's declared type."""
    by_name = {f.name: f for f in fields(cfg_cls)}
    if name not in by_name:
        valid = ", ".join(sorted(by_name))
        raise ConfigError(f"unknown setting '{name}' for {cfg_cls.__name__} (valid: {valid})")
    f = by_name[name]
    t = _field_type(cfg_cls, f)
    try:
        if t is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    value = True
                elif low in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError(value)
            else:
                value = bool(value)
        elif t is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool):
                raise ValueError(value)
            if isinstance(value, str) and "e" in value.lower():
                as_float = float(value)
                if not math.isfinite(as_float) or not as_float.is_integer():
                    raise ValueError(value)
                value = int(as_float)
            else:
                value = int(value)
        elif t is float:
            if isinstance(value, bool):
                raise ValueError(value)
            value = float(value)
        elif t is str:
            value = str(value)
    except (TypeError, ValueError, OverflowError):
        what = {int: "an integer", float: "a number", bool: "true or false"}.get(t, f"a {t.__name__}")
        raise ConfigError(f"setting '{name}' needs {what}, got {_short(value)}") from None
    if t is float and not math.isfinite(value):
        raise ConfigError(f"setting '{name}' must be a finite number, got {value!r}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"setting '{name}' must be one of {', '.join(map(str, choices))}, got {_short(value)}")
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if t in (int, float) and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        raise ConfigError(f"setting '{name}' must be within [{'' if lo is None else lo}, "
                          f"{'' if hi is None else hi}], got {_short(value)}")
    if t is str and len(value) > 1000:
        raise ConfigError(f"setting '{name}' is {len(value)} characters long")
    return value


def _short(value) -> str:
    r = repr(value)
    return r if len(r) <= 40 else r[:37] + "..."


def build(cfg_cls, overrides: dict | None = None):
    """A config from defaults plus overrides (values coerced and checked)."""
    overrides = dict(overrides or {})
    kwargs = {k: coerce(cfg_cls, k, v) for k, v in overrides.items()}
    return cfg_cls(**kwargs)


def split_overrides(cfg_cls, overrides: dict) -> tuple[dict, dict]:
    """Separate overrides that belong to this config from the rest (e.g. sampling options)."""
    names = {f.name for f in fields(cfg_cls)}
    mine = {k: v for k, v in overrides.items() if k in names}
    rest = {k: v for k, v in overrides.items() if k not in names}
    return mine, rest


def parse_set_args(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def to_json(cfg) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True)


def from_json(cfg_cls, text: str):
    """A config from stored JSON (a checkpoint's); ConfigError naming the field when a value is
    missing its type or outside its range, or when the text is not a JSON object."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"config is not valid JSON ({str(e)[:80]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a JSON object, not {type(data).__name__}")
    if len(data) > 1000:
        raise ConfigError(f"config has {len(data)} settings")
    known = {f.name for f in fields(cfg_cls)}
    # Unknown keys come from a newer version of an engine; ignore rather than refuse to open.
    return build(cfg_cls, {k: v for k, v in data.items() if k in known})


def describe(cfg_cls) -> list[dict]:
    """One row per field: name, type, default, help, choices — for forms and `--help`."""
    rows = []
    for f in fields(cfg_cls):
        default = f.default if f.default is not MISSING else (f.default_factory() if f.default_factory is not MISSING else None)
        rows.append({
            "name": f.name,
            "type": _field_type(cfg_cls, f).__name__,
            "default": default,
            "help": f.metadata.get("help", ""),
            "choices": f.metadata.get("choices"),
            "min": f.metadata.get("min"),
            "max": f.metadata.get("max"),
        })
    return rows
