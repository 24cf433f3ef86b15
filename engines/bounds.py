"""Limits checked before any work starts: memory estimates against what the machine has.

The estimates are deliberately simple (and generous), so that a typo — a batch of 10⁶, a width of
10⁴, a 4.8-million-frame export — is refused at once with the number, instead of allocating until
the machine swaps or the process is killed:

* training: the training split held on the device as uint8 (N·H·W·C bytes) + a batch's
  activations, B·H·W·max(width, C)·4 bytes × ACTIVATION_FACTOR (forward and backward through a
  dozen layers) + parameters, (8·width)²·9·4 bytes per stage × 4 (weights, gradients, two Adam
  moments) × log₂(side) stages;
* exports: the frame latents (frames × D × 8 bytes) + one batch of float frames (32·H·W·3·4
  bytes) + for a GIF every frame kept as palette image until the end (frames × H × W bytes).

Available memory is MemAvailable from /proc/meminfo (os.sysconf elsewhere), and the device's free
memory for CUDA. `LATENT_EXPLORER_MEMORY_LIMIT` (bytes) overrides it — the tests use it.
"""
from __future__ import annotations

import math
import os

from engines.config import ConfigError

ACTIVATION_FACTOR = 16
MAX_FRAMES = 100_000  # one export, any kind
MAX_FRAME_SIDE = 8192  # pixels
EXPORT_BATCH = 32


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def available_memory() -> int:
    """Bytes of RAM this process can still use without swapping (best effort)."""
    env = os.environ.get("LATENT_EXPLORER_MEMORY_LIMIT")
    if env:
        try:
            return int(float(env))
        except ValueError:
            pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def device_memory(device) -> int:
    """Free bytes on `device` (RAM for the CPU and MPS)."""
    dev = str(device)
    if dev.startswith("cuda") and not os.environ.get("LATENT_EXPLORER_MEMORY_LIMIT"):
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(dev))
            return int(free)
        except Exception:  # noqa: BLE001 — no CUDA after all: fall back to RAM
            pass
    return available_memory()


def training_estimate(cfg, spec, n_images: int) -> int:
    """Bytes a training run of config `cfg` on `n_images` images of `spec` needs (see above)."""
    c, h, w = int(spec.channels), int(spec.height), int(spec.width)
    width = int(getattr(cfg, "width", 0) or 0)
    batch = int(getattr(cfg, "batch_size", 64) or 1)
    data = int(n_images) * c * h * w
    act = batch * h * w * max(width, c, 8) * 4 * ACTIVATION_FACTOR
    stages = max(1, int(math.log2(max(h, w))) - 1)
    params = (8 * max(width, 8)) ** 2 * 9 * 4 * 4 * stages
    latent = int(getattr(cfg, "latent_dim", 0) or getattr(cfg, "n_components", 0) or 0)
    params += latent * c * h * w * 4 * 4  # a dense layer (or basis) between the latent and the image
    codes = int(getattr(cfg, "codebook_size", 0) or 0) * int(getattr(cfg, "code_dim", 0) or 0)
    params += codes * 4 * 4
    return data + act + params


def check_training(cfg, spec, n_images: int, device="cpu") -> int:
    """ConfigError when the estimate exceeds the free memory of `device`; the estimate otherwise."""
    need = training_estimate(cfg, spec, n_images)
    have = device_memory(device)
    if need > have:
        raise ConfigError(f"this run needs about {gib(need)} of memory (batch {getattr(cfg, 'batch_size', '?')}, "
                          f"width {getattr(cfg, 'width', '-')}, {n_images} images of {spec}) but only "
                          f"{gib(have)} is available; lower batch_size or width")
    return need


def export_estimate(frames: int, height: int, width: int, latent_dim: int, gif: bool) -> int:
    need = frames * max(1, latent_dim) * 8 + EXPORT_BATCH * height * width * 3 * 4
    if gif:
        need += frames * height * width
    return need


def check_export(frames: int, height: int, width: int, latent_dim: int, out: str) -> int:
    """ConfigError for an export of more than MAX_FRAMES frames, frames wider or taller than
    MAX_FRAME_SIDE, or one whose memory estimate exceeds the available memory."""
    if frames > MAX_FRAMES:
        raise ConfigError(f"the export would have {frames:,} frames, more than the {MAX_FRAMES:,} allowed; "
                          "lower seconds or fps")
    if max(height, width) > MAX_FRAME_SIDE:
        raise ConfigError(f"frames of {width}×{height} pixels are larger than the {MAX_FRAME_SIDE} allowed; "
                          "lower --size, --scale or --n")
    gif = out.lower().endswith(".gif")
    need = export_estimate(frames, height, width, latent_dim, gif)
    have = available_memory()
    if need > have:
        raise ConfigError(f"the export of {frames:,} frames of {width}×{height} needs about {gib(need)} of memory "
                          f"but only {gib(have)} is available; make it shorter or smaller")
    return need


def check_images(n: int, spec, what: str) -> int:
    """ConfigError when `n` images of `spec` (as float32, about three copies: model output,
    uint8 and the picture made of them) would not fit in the available memory."""
    need = int(n) * int(spec.channels) * int(spec.height) * int(spec.width) * 4 * 3
    have = available_memory()
    if need > have:
        raise ConfigError(f"{what} of {n:,} images of {spec} needs about {gib(need)} of memory but only "
                          f"{gib(have)} is available; ask for fewer")
    return need
