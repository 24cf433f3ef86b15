"""Samplers for DDPM-family models, apart from any network: each takes a `denoise(x, t)`
function returning (x̂₀, ε̂) and a NoiseSchedule, so any sampler runs on any trained model
(and on an analytic oracle in the tests).

- `ddpm`: ancestral sampling, variance "small" (the posterior's β̃) or "large" (β);
- `ddim`: η = 0 is the deterministic probability-flow path, η = 1 matches DDPM's small variance;
- `dpm`: DPM-Solver++(2M), a second-order multistep solver of the probability-flow ODE in
  log-SNR time using data predictions; good samples in 10–20 steps.

Every sampler visits `timesteps` (decreasing, from `NoiseSchedule.timesteps`) and ends on clean
data. `callback(StepRecord)` sees every step; with no callback nothing extra is computed or copied.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from engines.diffusion.schedule import NoiseSchedule

NAMES = ("ddpm", "ddpm-large", "ddim", "dpm")


def default_spacing(name: str) -> str:
    """Timestep spacing each sampler does best with for few steps (see NoiseSchedule.timesteps):
    the multistep solver wants even log-SNR steps, DDPM/DDIM crowd theirs near clean data."""
    return "logsnr" if name in ("dpm", "dpm++2m") else "quadratic"

Denoiser = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


class StepRecord(NamedTuple):
    index: int  # 0 … len(timesteps) − 1
    t: int  # the model's timestep at this step
    x_t: torch.Tensor  # the input of this step
    x0: torch.Tensor  # the model's prediction of clean data
    eps: torch.Tensor  # the model's prediction of the noise


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def ddpm(denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
         generator: torch.Generator | None = None, callback=None, variance: str = "small", **_) -> torch.Tensor:
    """Ancestral sampling x_s ~ p(x_s | x_t) = q(x_s | x_t, x̂₀) (skipped steps use the coarser chain)."""
    if variance not in ("small", "large"):
        raise ValueError(f"DDPM variance must be 'small' or 'large', got {variance!r}")
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback(StepRecord(i, t, x, x0, eps))
        c0, ct, var = schedule.posterior(t, s)
        mean = c0 * x0 + ct * x
        if s < 0:
            x = mean  # the last step returns the mean: adding noise to clean data only blurs it
            continue
        if variance == "large":
            var = 1.0 - schedule.abar(t) / schedule.abar(s)
        x = mean + math.sqrt(var) * _noise(x, generator)
    return x


def ddim(denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
         generator: torch.Generator | None = None, callback=None, eta: float = 0.0, **_) -> torch.Tensor:
    """x_s = √ᾱ_s x̂₀ + √(1 − ᾱ_s − σ²) ε̂ + σ z, σ = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_s).
    The previous step comes from the timestep list (never t − T/n, wrong at the ends)."""
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback(StepRecord(i, t, x, x0, eps))
        a_t, a_s = schedule.abar(t), schedule.abar(s)
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)) if eta > 0 else 0.0
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _noise(x, generator)
    return x


def dpm_solver_2m(denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
                  generator: torch.Generator | None = None, callback=None, **_) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) with x = α x₀ + σ ε, λ = log(α/σ), h = λ_s − λ_t:
    x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) D, where D = x̂₀ at the first step and
    (1 + 1/2r) x̂₀ − (1/2r) x̂₀_prev afterwards (r = h_prev/h). The step to clean data returns D's
    first-order value x̂₀ (λ = ∞ there)."""
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback(StepRecord(i, t, x, x0, eps))
        if s < 0:
            x = x0
            continue
        a_t, a_s = schedule.abar(t), schedule.abar(s)
        al_t, sg_t, al_s, sg_s = math.sqrt(a_t), math.sqrt(1 - a_t), math.sqrt(a_s), math.sqrt(1 - a_s)
        h = math.log(al_s / sg_s) - math.log(al_t / sg_t)
        if x0_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
        x = (sg_s / sg_t) * x - al_s * math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x


def run(name: str, denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
        generator: torch.Generator | None = None, callback=None, eta: float = 0.0) -> torch.Tensor:
    """Dispatch by name: ddpm | ddpm-large | ddim | dpm."""
    if name == "ddpm":
        return ddpm(denoise, schedule, x, timesteps, generator, callback, variance="small")
    if name == "ddpm-large":
        return ddpm(denoise, schedule, x, timesteps, generator, callback, variance="large")
    if name == "ddim":
        return ddim(denoise, schedule, x, timesteps, generator, callback, eta=eta)
    if name in ("dpm", "dpm++2m"):
        return dpm_solver_2m(denoise, schedule, x, timesteps, generator, callback)
    raise ValueError(f"unknown sampler '{name}' (known: {', '.join(NAMES)})")


def ddim_invert(denoise: Denoiser, schedule: NoiseSchedule, x0: torch.Tensor, timesteps: list[int],
                callback=None, refine: int = 0) -> torch.Tensor:
    """Run deterministic DDIM backwards: clean data → x at timesteps[0] (x_T when it is T − 1).

    `timesteps` is the decreasing list decoding will use; inversion visits it in reverse. Each
    step needs ε̂ at the point it is heading to, which is unknown; the usual approximation uses
    ε̂ at the current point, and `refine` fixed-point iterations re-evaluate it at the new point
    (better round trips for a few more network calls)."""
    x = x0
    ts = list(reversed(timesteps))
    for i, t in enumerate(ts):
        prev = ts[i - 1] if i > 0 else -1
        a_p, a_t = schedule.abar(prev), schedule.abar(t)
        # ε̂ at the current point; at clean data (no timestep of its own) the target step stands in.
        eps = denoise(x, prev if prev >= 0 else t)[1]
        x0_hat = (x - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p)
        if callback is not None:
            callback(StepRecord(i, t, x, x0_hat, eps))
        x_new = math.sqrt(a_t) * x0_hat + math.sqrt(1 - a_t) * eps
        for _ in range(refine):
            eps = denoise(x_new, t)[1]
            x_new = math.sqrt(a_t) * (x - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p) + math.sqrt(1 - a_t) * eps
        x = x_new
    return x


class Trajectory:
    """A callback that keeps every step on the CPU: x_t, x̂₀ and ε̂ stacked as (steps, N, C, H, W)."""

    def __init__(self):
        self.t: list[int] = []
        self._x, self._x0, self._eps = [], [], []

    def __call__(self, rec: StepRecord) -> None:
        self.t.append(int(rec.t))
        self._x.append(rec.x_t.detach().float().cpu().clone())
        self._x0.append(rec.x0.detach().float().cpu().clone())
        self._eps.append(rec.eps.detach().float().cpu().clone())

    def __len__(self) -> int:
        return len(self.t)

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.stack(self._x), torch.stack(self._x0), torch.stack(self._eps)
