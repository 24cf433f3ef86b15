"""The DDPM variational bound on −log p(x) in bits per dimension (Ho et al. 2020, eq. 5):

    L = KL(q(x_T|x₀) ‖ N(0, I)) + Σ_{t≥1} KL(q(x_{t−1}|x_t, x₀) ‖ p(x_{t−1}|x_t)) − log p(x₀|x_1)

with p(x_{t−1}|x_t) = q(x_{t−1}|x_t, x̂₀) (the fixed-small variance, so each KL is a scaled
squared error of x̂₀) and a discretised Gaussian decoder over the 256 pixel levels at t = 0.
The sum over T − 1 steps is estimated by importance sampling a few timesteps shared by the batch
from p(t) ∝ 1/t (stratified): the terms fall roughly like 1/t on trained models (most of the bound
sits in the first few steps), so uniform t would need hundreds of samples for a steady number.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from engines.diffusion.schedule import NoiseSchedule


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log P(x) per element for x on the 256-level grid of [−1, 1] (bins of width 2/255; the end
    bins extend to ±∞)."""
    c = x - mean
    plus = (c + 1 / 255) / std
    minus = (c - 1 / 255) / std
    log_cdf_plus = torch.special.log_ndtr(plus)
    log_sf_minus = torch.special.log_ndtr(-minus)
    delta = (torch.special.ndtr(plus) - torch.special.ndtr(minus)).clamp_min(1e-12)
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_sf_minus, delta.log()))


@torch.no_grad()
def bits_per_dim(denoise, schedule: NoiseSchedule, x0: torch.Tensor, generator: torch.Generator,
                 t_samples: int = 16, chunk: int = 128) -> float:
    """Mean bound over the images x0 (model space, [−1, 1]) in bits per dimension."""
    T = schedule.T
    dims = x0[0].numel()
    prob = 1.0 / np.arange(1, T)  # importance weights over t = 1 … T − 1
    prob /= prob.sum()
    cdf = np.cumsum(prob)
    total = 0.0
    for xb in x0.split(chunk):
        n = len(xb)
        nats = torch.zeros(n, dtype=torch.float64, device=xb.device)
        # Prior term: q(x_T|x₀) = N(√ᾱ x₀, 1 − ᾱ) against N(0, 1).
        a = schedule.abar(T - 1)
        m2 = a * xb.double() ** 2
        nats += (0.5 * (m2 + (1 - a) - 1 - math.log(1 - a))).flatten(1).sum(1)
        # Decoder term at t = 0.
        noise = torch.randn(xb.shape, generator=generator, device=xb.device)
        x_t = math.sqrt(schedule.abar(0)) * xb + math.sqrt(1 - schedule.abar(0)) * noise
        x0_hat, _ = denoise(x_t, 0)
        std = math.sqrt(float(schedule.betas[0]))
        nats -= discretized_gaussian_log_likelihood(xb, x0_hat, std).double().flatten(1).sum(1)
        # Middle terms: stratified importance samples of t = 1 … T − 1.
        u = float(torch.rand((), generator=generator, device=xb.device))
        mid = torch.zeros(n, dtype=torch.float64, device=xb.device)
        for k in range(t_samples):
            i = min(int(np.searchsorted(cdf, (k + u) / t_samples)), T - 2)
            t = i + 1
            noise = torch.randn(xb.shape, generator=generator, device=xb.device)
            x_t = math.sqrt(schedule.abar(t)) * xb + math.sqrt(1 - schedule.abar(t)) * noise
            x0_hat, _ = denoise(x_t, t)
            c0, _, var = schedule.posterior(t)
            mid += ((c0 * (xb - x0_hat)).double() ** 2 / (2 * var)).flatten(1).sum(1) / prob[i]
        nats += mid / t_samples
        total += float(nats.sum())
    return total / len(x0) / (dims * math.log(2))
