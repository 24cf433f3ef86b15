"""Step-wise samplers: each sampler is an object with `step(x_t, t, model_output) → (x_prev, x̂₀)`
and one driver loop runs them. The reference functions below are the samplers as they were
before the redesign (verbatim, loops and all); the step-wise objects must give the same numbers
bit for bit on a fixed seed — for DDPM (both variances), DDIM (η = 0 and η > 0), DPM-Solver++(2M),
DDIM inversion (with and without refinement) and SDEdit (a run that starts at an inner t)."""
import math

import pytest
import torch

import engines
from engines.diffusion import samplers as smp
from engines.diffusion.schedule import NoiseSchedule
from engines.spec import ImageSpec


# ---- the reference: the samplers before they became step-wise (2c2c8f9) -------------------------
def _noise(x, generator):
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def ref_ddpm(denoise, schedule, x, timesteps, generator=None, callback=None, variance="small"):
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback((i, t, x, x0, eps))
        c0, ct, var = schedule.posterior(t, s)
        mean = c0 * x0 + ct * x
        if s < 0:
            x = mean
            continue
        if variance == "large":
            var = 1.0 - schedule.abar(t) / schedule.abar(s)
        x = mean + math.sqrt(var) * _noise(x, generator)
    return x


def ref_ddim(denoise, schedule, x, timesteps, generator=None, callback=None, eta=0.0):
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback((i, t, x, x0, eps))
        a_t, a_s = schedule.abar(t), schedule.abar(s)
        sigma = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s)) if eta > 0 else 0.0
        x = math.sqrt(a_s) * x0 + math.sqrt(max(1 - a_s - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * _noise(x, generator)
    return x


def ref_dpm(denoise, schedule, x, timesteps, generator=None, callback=None):
    x0_prev, h_prev = None, None
    for i, t in enumerate(timesteps):
        s = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        x0, eps = denoise(x, t)
        if callback is not None:
            callback((i, t, x, x0, eps))
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


def ref_invert(denoise, schedule, x0, timesteps, callback=None, refine=0):
    x = x0
    ts = list(reversed(timesteps))
    for i, t in enumerate(ts):
        prev = ts[i - 1] if i > 0 else -1
        a_p, a_t = schedule.abar(prev), schedule.abar(t)
        eps = denoise(x, prev if prev >= 0 else t)[1]
        x0_hat = (x - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p)
        if callback is not None:
            callback((i, t, x, x0_hat, eps))
        x_new = math.sqrt(a_t) * x0_hat + math.sqrt(1 - a_t) * eps
        for _ in range(refine):
            eps = denoise(x_new, t)[1]
            x_new = math.sqrt(a_t) * (x - math.sqrt(1 - a_p) * eps) / math.sqrt(a_p) + math.sqrt(1 - a_t) * eps
        x = x_new
    return x


REFERENCE = {"ddpm": lambda d, s, x, ts, g, cb, eta: ref_ddpm(d, s, x, ts, g, cb, "small"),
             "ddpm-large": lambda d, s, x, ts, g, cb, eta: ref_ddpm(d, s, x, ts, g, cb, "large"),
             "ddim": lambda d, s, x, ts, g, cb, eta: ref_ddim(d, s, x, ts, g, cb, eta),
             "dpm": lambda d, s, x, ts, g, cb, eta: ref_dpm(d, s, x, ts, g, cb)}


def wiggly(sch: NoiseSchedule):
    """A nonlinear stand-in for a network (float32, any shape): x̂₀ = tanh(0.8 x + t/T), ε̂ from it."""

    def denoise(x, t):
        a = sch.abar(t)
        x0 = torch.tanh(0.8 * x + t / sch.T)
        return x0, (x - math.sqrt(a) * x0) / math.sqrt(1 - a)

    return denoise


def _start(seed=0, shape=(6, 1, 4, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), g
