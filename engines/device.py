"""Choosing the compute device: CUDA, then MPS, then CPU, unless the user names one."""
from __future__ import annotations

import contextlib

import torch


class DeviceError(ValueError):
    pass


def pick_device(name: str | None = "auto") -> torch.device:
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device '{name}' asked for, but CUDA is not available here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"device '{name}' asked for, but MPS is not available here")
    return dev


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA where supported (no GradScaler needed); a no-op elsewhere.

    CPU autocast is left off: on small conv nets it is slower than fp32 and changes results."""
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe() -> dict:
    info = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": False, "default": str(pick_device())}
    mps = getattr(torch.backends, "mps", None)
    info["mps"] = bool(mps is not None and mps.is_available())
    if info["cuda"]:
        info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
