"""Noise schedules of a DDPM and the closed forms that follow from ᾱ_t alone.

Timesteps are integers 0 … T−1; step t has noise level ᾱ_t = ∏_{s≤t} (1 − β_s), so even t = 0
is slightly noisy and "clean" (ᾱ = 1) is one step further. The table is kept in float64 on
the CPU: samplers read per-step coefficients as Python floats, which costs nothing and works on
any device and dtype.
"""
from __future__ import annotations

import math

import numpy as np
import torch

KINDS = ("linear", "cosine")
SPACINGS = ("quadratic", "logsnr", "linear")


class NoiseSchedule:
    def __init__(self, kind: str = "linear", T: int = 1000):
        if kind not in KINDS:
            raise ValueError(f"unknown noise schedule '{kind}' (known: {', '.join(KINDS)})")
        if T < 2:
            raise ValueError("a noise schedule needs at least 2 steps")
        self.kind, self.T = kind, int(T)
        self.betas = linear_betas(T) if kind == "linear" else cosine_betas(T)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)

    # ---- per-step numbers -------------------------------------------------------------------
    def abar(self, t: int) -> float:
        """ᾱ_t; t = −1 means clean data (ᾱ = 1)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def snr(self) -> np.ndarray:
        a = self.alphas_cumprod
        return a / (1.0 - a)

    def abar_tensor(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """ᾱ_t for a batch of integer steps, shaped to broadcast against images `like`."""
        a = torch.as_tensor(self.alphas_cumprod, dtype=torch.float64)[t.cpu().long()]
        return a.to(device=like.device, dtype=like.dtype).view(-1, *([1] * (like.dim() - 1)))

    # ---- forward process ----------------------------------------------------------------------
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t ~ q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), given the noise."""
        a = self.abar_tensor(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def posterior(self, t: int, s: int | None = None) -> tuple[float, float, float]:
        """q(x_s | x_t, x_0) for s < t (s = t − 1 by default; s = −1 is clean):
        mean = c0·x_0 + ct·x_t, variance var. With skipped steps the one-step β_t becomes
        1 − ᾱ_t/ᾱ_s (the DDPM posterior of the coarser chain)."""
        s = t - 1 if s is None else s
        a_t, a_s = self.abar(t), self.abar(s)
        beta = 1.0 - a_t / a_s
        c0 = math.sqrt(a_s) * beta / (1.0 - a_t)
        ct = math.sqrt(a_t / a_s) * (1.0 - a_s) / (1.0 - a_t)
        var = beta * (1.0 - a_s) / (1.0 - a_t)
        return c0, ct, var

    # ---- timestep spacing ---------------------------------------------------------------------
    def timesteps(self, n: int, start: int | None = None, spacing: str = "quadratic") -> list[int]:
        """n strictly decreasing steps from `start` (default T − 1, pure noise) down to 0.

        Both ends are always visited: the common "leading" spacing (0, 20, …, 980) never sees the
        noisiest step, and "trailing" spacing (999, …, 99) ends on a noisy step whose x̂₀ is a
        blurred posterior mean. In between, "linear" spaces t evenly, "quadratic" (DDIM's choice for
        small images) crowds steps near t = 0 where fine detail is decided, and "logsnr" spaces
        them evenly in log-SNR (DPM-Solver's choice; the noisy end floored at log-SNR −10)."""
        start = self.T - 1 if start is None else int(start)
        if not 0 <= start < self.T:
            raise ValueError(f"start step must be within 0…{self.T - 1}, got {start}")
        if spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing '{spacing}' (known: {', '.join(SPACINGS)})")
        n = max(1, min(int(n), start + 1))
        if n == 1:
            return [start]
        u = np.linspace(1.0, 0.0, n)
        if spacing == "linear":
            ts = np.round(u * start)
        elif spacing == "quadratic":
            ts = np.round(u ** 2 * start)
        else:
            lam = np.log(self.snr()[: start + 1])  # decreasing in t
            lo = max(lam[start], -10.0)
            target = lo + (1 - u) * (lam[0] - lo)
            # the step whose log-SNR is nearest each target (lam is monotone: search its reverse)
            idx = np.searchsorted(lam[::-1], target)
            ts = start - np.clip(idx, 0, start)
            ts[0] = start
        ts = ts.astype(np.int64)
        ts[-1] = 0
        # Strictly decreasing, keeping n steps within start … 0.
        ts = np.minimum(ts, start - np.arange(n))
        for i in range(n - 2, -1, -1):
            ts[i] = max(ts[i], ts[i + 1] + 1)
        return [int(t) for t in ts]


def linear_betas(T: int) -> np.ndarray:
    # Ho et al.'s 1e-4 … 0.02 for T = 1000, rescaled so other T keep the same ᾱ curve shape.
    scale = 1000.0 / T
    return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), T, dtype=np.float64)


def cosine_betas(T: int, s: float = 0.008) -> np.ndarray:
    # Nichol & Dhariwal: ᾱ(t) = cos²(((t/T + s)/(1 + s))·π/2), β clipped at 0.999 near t = T.
    steps = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    abar = f / f[0]
    return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, 0.999)
