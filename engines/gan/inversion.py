"""GAN inversion: find the latent whose generated image is closest to a given image.

A generator has no encoder, so `z = argmin ‖G(z) − x‖² + w·‖z‖²/D` is solved by gradient
descent (Adam on z, the generator fixed), from several starting points per image: an optional
encoder's guess (trained alongside the GAN to predict z from G(z)) and random prior draws. The
best latent seen for each image wins. The prior term keeps z near the typical set of N(0, I),
where the generator has been trained, so the found latents stay editable.

The generator's lock is taken per optimisation step, not for the whole inversion, so the app's
other requests (a scrubbed decode) interleave with a background inversion of a data set.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Inversion:
    z: torch.Tensor  # (N, D) the latents found
    mse: torch.Tensor  # (N,) per-image mean squared error of G(z) against the target, images in [0, 1]
    restart: torch.Tensor  # (N,) which start won: 0 = the encoder's guess when there is one

    @property
    def psnr(self) -> torch.Tensor:
        return 10 * torch.log10(1.0 / self.mse.clamp_min(1e-12))


def invert(generate: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, dim: int, *,
           steps: int = 100, restarts: int = 1, lr: float = 0.05, prior_weight: float = 1e-3,
           init: torch.Tensor | None = None, to_latent: Callable | None = None,
           generator: torch.Generator | None = None, lock=None, should_stop: Callable[[], bool] | None = None) -> Inversion:
    """`generate(latent)` → images in [0, 1] (differentiable); `x`: target images (N, C, H, W) in
    [0, 1]. `init`: (N, dim) starting parameters for restart 0 (the rest are N(0, I) draws).
    `to_latent(params)` maps the optimised parameters to the generator's latent (identity by
    default; the conditional GAN turns class logits into class weights there)."""
    n = len(x)
    dev = x.device
    to_latent = to_latent or (lambda p: p)
    lock = lock or contextlib.nullcontext()
    r = max(1, int(restarts))
    starts = torch.randn((r, n, dim), generator=generator, device=dev)
    if init is not None:
        starts[0] = init.detach().to(dev, torch.float32).reshape(n, dim)
    params = starts.reshape(r * n, dim).clone().requires_grad_(True)
    target = x.detach().float().repeat(r, 1, 1, 1)
    opt = torch.optim.Adam([params], lr=lr)
    best_err = torch.full((r * n,), float("inf"), device=dev)
    best = params.detach().clone()

    def errors(p):
        z = to_latent(p)
        out = generate(z).float()
        err = (out - target).pow(2).flatten(1).mean(1)
        return z, err

    with torch.enable_grad():
        for _ in range(max(0, int(steps))):
            if should_stop is not None and should_stop():
                break
            with lock:
                z, err = errors(params)
                obj = err.sum() + prior_weight * z.pow(2).mean(1).sum()
                (grad,) = torch.autograd.grad(obj, params)
            with torch.no_grad():
                better = err.detach() < best_err
                best_err = torch.where(better, err.detach(), best_err)
                best[better] = params.detach()[better]
            params.grad = grad
            opt.step()
    with torch.no_grad(), lock:  # the final point too
        z, err = errors(params)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best[better] = params.detach()[better]
        err_rn = best_err.view(r, n)
        winner = err_rn.argmin(0)
        chosen = best.view(r, n, dim)[winner, torch.arange(n, device=dev)]
        return Inversion(to_latent(chosen).detach(), err_rn.min(0).values, winner)


# Data sets mapped by inversion are capped to this many images (a fixed, split-preserving random
# subset): inverting costs tens of generator passes per image, so 8000 faces would take many
# minutes on a laptop CPU, and a map or an attribute vector gains little beyond a thousand or two.
MAP_LIMIT = 1500


def inversion_subset(data, limit: int = MAP_LIMIT, seed: int = 0):
    """`data` itself when small enough, else a random subset of `limit` images keeping the
    train/test proportions (and split), named '<name> [limit of N]'."""
    import numpy as np

    from engines.data.dataset import ImageDataset

    n = len(data)
    if n <= limit:
        return data
    rng = np.random.default_rng(seed)
    k_test = int(round(limit * len(data.test_idx) / n))
    tr = np.sort(rng.choice(data.train_idx, min(limit - k_test, len(data.train_idx)), replace=False))
    te = np.sort(rng.choice(data.test_idx, min(k_test, len(data.test_idx)), replace=False)) if k_test else np.zeros(0, int)
    idx = np.concatenate([tr, te])
    return ImageDataset(
        name=f"{data.name} [{len(idx)} of {n}]", images=data.images[idx],
        labels=None if data.labels is None else data.labels[idx], label_names=list(data.label_names),
        attributes={k: v[idx] for k, v in data.attributes.items()},
        train_idx=np.arange(len(tr)), test_idx=np.arange(len(tr), len(idx)), source=data.source)
