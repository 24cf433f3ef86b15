"""What every command shares: the one-line usage error (exit status 2), the parser that reports it,
loading data and checkpoints' training data, sampling options, running on torchrun's processes,
and atomic output files."""
from __future__ import annotations

import argparse
import os
import sys

from engines.cli.args import check_sampling_option

USAGE_ERROR = 2


class UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(USAGE_ERROR)


def _user_errors() -> tuple:
    from engines.checkpoint import CheckpointError
    from engines.config import ConfigError
    from engines.data.dataset import DataError
    from engines.device import DeviceError
    from engines.distributed import DistributedError
    from engines import UnknownEngine
    from engines.export.writers import ExportError
    from engines.atomic import WriteError
    from engines.compare import CompareError

    return (CompareError, DistributedError, UsageError, CheckpointError, ConfigError, DataError, DeviceError, UnknownEngine, ExportError,
            WriteError)


def _load_data(name_or_path, spec=None, size=None, channels=None):
    from engines.data import load_dataset

    return load_dataset(name_or_path, spec=spec, size=size, channels=channels)


def _training_data(info) -> str:
    """The data set a checkpoint was trained on, as something `load_dataset` accepts."""
    from engines.data import DataUnavailable, training_source

    try:
        return training_source(info)
    except DataUnavailable:
        known = info.data.get("source") or info.data.get("name") or "unknown"
        raise UsageError(f"the data set this model was trained on ({known}) is not available; pass --data") from None


def _check_length(a) -> None:
    if a.epochs is not None and a.epochs <= 0:
        raise UsageError("--epochs must be positive")
    if a.minutes is not None and a.minutes <= 0:
        raise UsageError("--minutes must be positive")


def _on_processes(device_name, run) -> int:
    """`run(dist, device)` on this process's rank: under torchrun in its process group (joined
    here, left after; engines/distributed.py), otherwise as the one process."""
    from engines.distributed import setup

    dist, device = setup(device_name)
    ok = False
    try:
        rc = run(dist, device)
        ok = True
        return rc
    finally:
        dist.close(ok)


def _speaker(dist):
    """print on rank 0, silence elsewhere: one progress bar and one summary per run."""
    return print if dist.is_main else (lambda *_, **__: None)


def _sampling_options(engine, overrides: dict) -> dict:
    allowed = getattr(engine, "sampling_options", {})
    out = {}
    for k, v in overrides.items():
        if k not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise UsageError(f"unknown sampling option '{k}' for {engine.name} (valid: {names})")
        try:
            out[k] = allowed[k](v)
        except (ValueError, OverflowError):
            raise UsageError(f"sampling option '{k}' needs a {allowed[k].__name__}, got {str(v)[:40]!r}") from None
        problem = check_sampling_option(k, out[k])
        if problem:
            raise UsageError(f"sampling option '{k}' {problem}, got {str(v)[:40]!r}")
    return out


def _ensure_parent(path: str) -> None:
    """`--out`'s folder, made when missing (as `mkdir -p`); one line when it cannot be."""
    d = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(d):
        return
    try:
        os.makedirs(d, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create the folder {d}: {e.strerror or e}") from None


def _atomic(path: str, write, binary_path: bool = False) -> None:
    """Write via a temp file in the same folder, then rename: no half-written output."""
    from engines import atomic

    try:
        with atomic.replacing(path) as tmp:
            if binary_path:
                write(tmp)
            else:
                with open(tmp, "wb") as f:
                    write(f)
    except atomic.WriteError:
        raise  # already one line: what failed and that the previous file is unchanged
    except OSError as e:
        raise UsageError(f"{path}: could not write ({e.strerror or e})") from None
