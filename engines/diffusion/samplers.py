"""Step-wise samplers for DDPM-family models, apart from any network (as diffusers' schedulers).

A sampler is an object that holds its timestep list and any multistep state and advances one step
at a time: `step(x_t, t, model_output) → StepOutput(x_prev, x0)`, where `model_output` is the
model's `Prediction(x̂₀, ε̂)` at (x_t, t). The previous timestep always comes from the list (never
t − T/n, wrong at the ends). `Loop` is the one driver: it asks a `denoise(x, t) → (x̂₀, ε̂)`
function (a trained network, or an analytic oracle in the tests) and steps the sampler, yielding
a `StepRecord` after every step, so a caller can report progress, reseed or stop between steps.

- `DDPM`: ancestral sampling, variance "small" (the posterior's β̃) or "large" (β);
- `DDIM`: η = 0 is the deterministic probability-flow path, η = 1 matches DDPM's small variance;
- `DPMSolver2M`: DPM-Solver++(2M), a second-order multistep solver of the probability-flow ODE in
  log-SNR time using data predictions (keeps the previous x̂₀); good samples in 10–20 steps;
- `DDIMInverse`: deterministic DDIM run backwards, clean data → x_T (with fixed-point refinement).

Every forward sampler visits `timesteps` (decreasing, from `NoiseSchedule.timesteps`) and ends on
clean data. The functions `ddpm`, `ddim`, `dpm_solver_2m`, `run` and `ddim_invert` drive a whole
run through `Loop` with an optional `callback(StepRecord)`.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, NamedTuple

import torch

from engines.diffusion.schedule import NoiseSchedule

NAMES = ("ddpm", "ddpm-large", "ddim", "dpm")


def default_spacing(name: str) -> str:
    """Timestep spacing each sampler does best with for few steps (see NoiseSchedule.timesteps):
    the multistep solver wants even log-SNR steps, DDPM/DDIM crowd theirs near clean data."""
    return "logsnr" if name in ("dpm", "dpm++2m") else "quadratic"


Denoiser = Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


class Prediction(NamedTuple):
    """What the model says at (x_t, t)."""
    x0: torch.Tensor  # the clean data x̂₀
    eps: torch.Tensor  # the noise ε̂


class StepOutput(NamedTuple):
    x_prev: torch.Tensor  # the sample at the previous (less noisy) timestep — the next one when inverting
    x0: torch.Tensor  # the prediction of clean data the step used


class StepRecord(NamedTuple):
    index: int  # 0 … len(timesteps) − 1
    t: int  # the timestep of this step
    x_t: torch.Tensor  # the input of this step
    x0: torch.Tensor  # the prediction of clean data
    eps: torch.Tensor  # the model's prediction of the noise
    x_prev: torch.Tensor | None = None  # the output of this step


class Sampler:
    """One step at a time over `timesteps`. Subclasses implement `step`; multistep solvers keep
    their state between calls and drop it in `reset` (the driver calls it before a run)."""

    name = ""
    increasing = False  # inversion visits its timesteps upwards
    refine = 0  # extra model calls per step (`refine_step`), for inversion

    def __init__(self, schedule: NoiseSchedule, timesteps: list[int], generator: torch.Generator | None = None):
        ts = [int(t) for t in timesteps]
        if not ts:
            raise ValueError("a sampler needs at least one timestep")
        ordered = all(a < b for a, b in zip(ts, ts[1:])) if self.increasing else all(a > b for a, b in zip(ts, ts[1:]))
        if not ordered:
            raise ValueError(f"timesteps must be strictly {'in' if self.increasing else 'de'}creasing, got {ts[:6]}…")
        self.schedule, self.timesteps, self.generator = schedule, ts, generator
        self._prev = dict(zip(ts, ts[1:] + [-1]))
        self._before = dict(zip(ts, [-1] + ts[:-1]))

    def __len__(self) -> int:
        return len(self.timesteps)

    def prev_timestep(self, t: int) -> int:
        """The timestep after t in the list (the previous one of the diffusion), −1 after the last."""
        try:
            return self._prev[int(t)]
        except KeyError:
            raise ValueError(f"t = {t} is not one of this sampler's timesteps") from None

    def model_timestep(self, t: int) -> int:
        """Where the model is asked before the step at t (t itself, except for inversion)."""
        return t

    def reset(self) -> None:
        """Forget the multistep state (before a new run)."""

    def step(self, x_t: torch.Tensor, t: int, model_output: Prediction) -> StepOutput:
        raise NotImplementedError

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)


class DDPM(Sampler):
    """Ancestral sampling x_s ~ p(x_s | x_t) = q(x_s | x_t, x̂₀) (skipped steps use the coarser chain)."""

    name = "ddpm"

    def __init__(self, schedule, timesteps, generator=None, variance: str = "small"):
        if variance not in ("small", "large"):
            raise ValueError(f"DDPM variance must be 'small' or 'large', got {variance!r}")
        super().__init__(schedule, timesteps, generator)
        self.variance = variance

    def step(self, x_t, t, model_output):
        x0 = model_output[0]
        s = self.prev_timestep(t)
        c0, ct, var = self.schedule.posterior(t, s)
        mean = c0 * x0 + ct * x_t
        if s < 0:  # the last step returns the mean: adding noise to clean data only blurs it
            return StepOutput(mean, x0)
        if self.variance == "large":
            var = 1.0 - self.schedule.abar(t) / self.schedule.abar(s)
        return StepOutput(mean + math.sqrt(var) * self._noise(x_t), x0)


class DDIM(Sampler):
    """x_s = √ᾱ_s x̂₀ + √(1 − ᾱ_s − σ²) ε̂ + σ z, σ = η·√((1−ᾱ_s)/(1−ᾱ_t))·√(1 − ᾱ_t/ᾱ_s)."""

    name = "ddim"

    def __init__(self, schedule, timesteps, generator=None, eta: float = 0.0):
        super().__init__(schedule, timesteps, generator)
        self.eta = float(eta)

    def step(self, x_t, t, model_output):
        x0, eps = model_output
        s = self.prev_timestep(t)
        a_t, a_s = self.schedule.abar(t), self.schedule.abar(s)
        eta = self.eta
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)) if eta > 0 else 0.0
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * self._noise(x)
        return StepOutput(x, x0)


class DPMSolver2M(Sampler):
    """DPM-Solver++(2M) (Lu et al. 2022) with x = α x₀ + σ ε, λ = log(α/σ), h = λ_s − λ_t:
    x_s = (σ_s/σ_t) x_t − α_s (e^{−h} − 1) D, where D = x̂₀ at the first step and
    (1 + 1/2r) x̂₀ − (1/2r) x̂₀_prev afterwards (r = h_prev/h). The step to clean data returns D's
    first-order value x̂₀ (λ = ∞ there). Keeps the previous x̂₀ and h between steps."""

    name = "dpm"

    def __init__(self, schedule, timesteps, generator=None):
        super().__init__(schedule, timesteps, generator)
        self.reset()

    def reset(self) -> None:
        self.x0_prev: torch.Tensor | None = None
        self.h_prev: float | None = None

    def step(self, x_t, t, model_output):
        x0 = model_output[0]
        s = self.prev_timestep(t)
        if s < 0:
            return StepOutput(x0, x0)
        a_t, a_s = self.schedule.abar(t), self.schedule.abar(s)
        al_t, sg_t, al_s, sg_s = math.sqrt(a_t), math.sqrt(1 - a_t), math.sqrt(a_s), math.sqrt(1 - a_s)
        h = math.log(al_s / sg_s) - math.log(al_t / sg_t)
        if self.x0_prev is None:
            d = x0
        else:
            r = self.h_prev / h
            d = (1 + 0.5 / r) * x0 - (0.5 / r) * self.x0_prev
        x = (sg_s / sg_t) * x_t - al_s * math.expm1(-h) * d
        self.x0_prev, self.h_prev = x0, h
        return StepOutput(x, x0)


class DDIMInverse(Sampler):
    """Deterministic DDIM backwards: clean data → x at timesteps[0] (x_T when it is T − 1).

    `timesteps` is the decreasing list decoding will use; inversion visits it upwards, and the step
    at t goes from the timestep before it (clean data first) to t. Each step needs ε̂ at the point
    it is heading to, which is unknown; the usual approximation uses ε̂ at the current point, and
    `refine` fixed-point iterations (`refine_step`, driven by `Loop`) re-evaluate it at the new
    point (better round trips for a few more network calls)."""

    name = "ddim-inverse"
    increasing = True

    def __init__(self, schedule, timesteps, generator=None, refine: int = 0):
        super().__init__(schedule, list(reversed([int(t) for t in timesteps])), generator)
        self.refine = int(refine)

    def model_timestep(self, t: int) -> int:
        # ε̂ at the current point; at clean data (no timestep of its own) the target step stands in.
        before = self._before[int(t)]
        return before if before >= 0 else t

    def _abars(self, t: int) -> tuple[float, float]:
        if int(t) not in self._before:
            raise ValueError(f"t = {t} is not one of this sampler's timesteps")
        return self.schedule.abar(self._before[int(t)]), self.schedule.abar(t)

    def step(self, x_t, t, model_output):
        eps = model_output[1]
        a_p, a_t = self._abars(t)
        x0_hat = (x_t - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p)
        return StepOutput(math.sqrt(a_t) * x0_hat + math.sqrt(1 - a_t) * eps, x0_hat)

    def refine_step(self, x_t, t, model_output) -> StepOutput:
        """The step at t again, with ε̂ evaluated at the point the last try reached."""
        eps = model_output[1]
        a_p, a_t = self._abars(t)
        x_new = math.sqrt(a_t) * (x_t - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p) + math.sqrt(1 - a_t) * eps
        return StepOutput(x_new, (x_t - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p))


def make(name: str, schedule: NoiseSchedule, timesteps: list[int], generator: torch.Generator | None = None,
         eta: float = 0.0) -> Sampler:
    """The sampler called `name`: ddpm | ddpm-large | ddim | dpm (dpm++2m)."""
    if name == "ddpm":
        return DDPM(schedule, timesteps, generator, variance="small")
    if name == "ddpm-large":
        return DDPM(schedule, timesteps, generator, variance="large")
    if name == "ddim":
        return DDIM(schedule, timesteps, generator, eta=eta)
    if name in ("dpm", "dpm++2m"):
        return DPMSolver2M(schedule, timesteps, generator)
    raise ValueError(f"unknown sampler '{name}' (known: {', '.join(NAMES)})")


class Loop:
    """The one driver loop: `for rec in Loop(sampler, denoise, x)` runs one step per iteration and
    yields its `StepRecord` (x_t, x̂₀, ε̂ and x_prev), so a caller can report progress, reseed the
    sampler's generator or stop between steps; `result` holds the end (after `finish`, if given).
    `guard` is a context manager factory each step runs under (an engine's lock and inference
    mode: held per step, never across a yield). `len(loop)` is the number of steps."""

    def __init__(self, sampler: Sampler, denoise: Denoiser, x: torch.Tensor, guard=None, finish=None):
        self.sampler, self.denoise, self.x = sampler, denoise, x
        self.guard = guard or contextlib.nullcontext
        self.finish = finish
        self.result: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.sampler.timesteps)

    def __iter__(self) -> Iterator[StepRecord]:
        sampler, denoise = self.sampler, self.denoise
        sampler.reset()
        x = self.x
        for i, t in enumerate(sampler.timesteps):
            with self.guard():
                x0, eps = denoise(x, sampler.model_timestep(t))
                out = first = sampler.step(x, t, Prediction(x0, eps))
                for _ in range(sampler.refine):
                    out = sampler.refine_step(x, t, Prediction(*denoise(out.x_prev, t)))
            yield StepRecord(i, t, x, first.x0, eps, out.x_prev)
            x = out.x_prev
        with self.guard():
            self.result = x if self.finish is None else self.finish(x)

    def run(self, callback=None) -> torch.Tensor:
        """Every step to the end, `callback(StepRecord)` after each; returns `result`."""
        for rec in self:
            if callback is not None:
                callback(rec)
        return self.result


# ---- whole runs, for callers that need no step in between ----------------------------------------
def ddpm(denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
         generator: torch.Generator | None = None, callback=None, variance: str = "small", **_) -> torch.Tensor:
    return Loop(DDPM(schedule, timesteps, generator, variance), denoise, x).run(callback)


def ddim(denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
         generator: torch.Generator | None = None, callback=None, eta: float = 0.0, **_) -> torch.Tensor:
    return Loop(DDIM(schedule, timesteps, generator, eta), denoise, x).run(callback)


def dpm_solver_2m(denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
                  generator: torch.Generator | None = None, callback=None, **_) -> torch.Tensor:
    return Loop(DPMSolver2M(schedule, timesteps, generator), denoise, x).run(callback)


def run(name: str, denoise: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int],
        generator: torch.Generator | None = None, callback=None, eta: float = 0.0) -> torch.Tensor:
    """Dispatch by name: ddpm | ddpm-large | ddim | dpm."""
    return Loop(make(name, schedule, timesteps, generator, eta), denoise, x).run(callback)


def ddim_invert(denoise: Denoiser, schedule: NoiseSchedule, x0: torch.Tensor, timesteps: list[int],
                callback=None, refine: int = 0) -> torch.Tensor:
    """Clean data → x at timesteps[0] by `DDIMInverse` (see there)."""
    return Loop(DDIMInverse(schedule, timesteps, refine=refine), denoise, x0).run(callback)


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
