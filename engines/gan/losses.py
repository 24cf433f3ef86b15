"""Adversarial losses, gradient penalties, DiffAugment and one discriminator/generator update.

Kept free of image assumptions (any x shape, any G: latent → x, D: (x, y) → score), so the toy
2-D Gaussian-mixture tests run exactly the code the image engine trains with.

Losses (r = D(real), f = D(fake), raw scores/logits):
  ns      non-saturating (Goodfellow et al. 2014): D: softplus(−r) + softplus(f); G: softplus(−f)
  lsgan   least squares (Mao et al. 2017): D: ½(r−1)² + ½f²; G: ½(f−1)²
  wgan-gp Wasserstein critic (Gulrajani et al. 2017): D: f − r + λ·GP; G: −f
  hinge   (Lim & Ye 2017; Miyato et al. 2018): D: relu(1−r) + relu(1+f); G: −f
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("ns", "lsgan", "wgan-gp", "hinge")


def d_loss(kind: str, r: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-r).mean() + F.softplus(f).mean()
    if kind == "lsgan":
        return 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f ** 2).mean()
    if kind == "wgan-gp":
        return f.mean() - r.mean()
    if kind == "hinge":
        return F.relu(1 - r).mean() + F.relu(1 + f).mean()
    raise ValueError(f"unknown GAN loss '{kind}' (known: {', '.join(LOSSES)})")


def g_loss(kind: str, f: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        return F.softplus(-f).mean()
    if kind == "lsgan":
        return 0.5 * ((f - 1) ** 2).mean()
    if kind in ("wgan-gp", "hinge"):
        return -f.mean()
    raise ValueError(f"unknown GAN loss '{kind}' (known: {', '.join(LOSSES)})")


def d_accuracy(kind: str, r: torch.Tensor, f: torch.Tensor) -> tuple[float, float]:
    """Share of real images D scores as real, and of fakes it scores as fake. The decision
    threshold is where the loss puts it: 0 for logits/hinge, ½ for LSGAN's targets 0/1; a
    Wasserstein critic has no absolute scale, so its threshold is the batch's median score."""
    if kind == "lsgan":
        t = 0.5
    elif kind == "wgan-gp":
        t = float(torch.cat([r, f]).median())
    else:
        t = 0.0
    return float((r > t).float().mean()), float((f < t).float().mean())


def _input_grad(D, x: torch.Tensor, y) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    out = D(x, y)
    (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return g.flatten(1)


def r1_penalty(D, real: torch.Tensor, y=None) -> torch.Tensor:
    """E‖∇ₓD(x)‖² over real x (Mescheder et al. 2018); the caller weights it by γ/2."""
    return _input_grad(D, real, y).pow(2).sum(1).mean()


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, y=None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """E(‖∇D(x̂)‖₂ − 1)² at x̂ = εx + (1−ε)x̃, ε ~ U(0,1) per sample (WGAN-GP); weighted by λ."""
    eps = torch.rand((len(real),) + (1,) * (real.dim() - 1), generator=generator, device=real.device, dtype=real.dtype)
    mix = eps * real.detach() + (1 - eps) * fake.detach()
    g = _input_grad(D, mix, y)
    return (g.norm(dim=1) - 1).pow(2).mean()


# ---- DiffAugment (Zhao et al. 2020): the same differentiable augmentation for reals and fakes ----
def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """x: images (N, C, H, W) in [-1, 1]. policy: comma-separated subset of color, translation,
    cutout. Gradients flow through every operation, so G learns through the augmented D."""
    if not policy or policy == "none" or x.dim() != 4:
        return x
    n, dev = len(x), x.device

    def rand(*shape):
        return torch.rand(shape, generator=generator, device=dev, dtype=x.dtype)

    for op in policy.split(","):
        op = op.strip()
        if op == "color":
            x = x + (rand(n, 1, 1, 1) - 0.5)  # brightness ±0.25 of the [0,1] range, in [-1,1] units
            mean = x.mean(1, keepdim=True)
            x = (x - mean) * (rand(n, 1, 1, 1) * 2) + mean  # saturation ×[0,2]
            mean = x.mean((1, 2, 3), keepdim=True)
            x = (x - mean) * (rand(n, 1, 1, 1) + 0.5) + mean  # contrast ×[0.5,1.5]
        elif op == "translation":
            h, w = x.shape[2:]
            sh, sw = max(1, int(h * 0.125 + 0.5)), max(1, int(w * 0.125 + 0.5))
            dy = (rand(n) * (2 * sh + 1)).long() - sh
            dx = (rand(n) * (2 * sw + 1)).long() - sw
            iy = (torch.arange(h, device=dev).view(1, h) + dy.view(n, 1)).clamp(-1, h)
            ix = (torch.arange(w, device=dev).view(1, w) + dx.view(n, 1)).clamp(-1, w)
            padded = F.pad(x, (1, 1, 1, 1))  # shifted-in border is zero (mid-grey)
            rows = padded.gather(2, (iy + 1).view(n, 1, h, 1).expand(n, x.shape[1], h, w + 2))
            x = rows.gather(3, (ix + 1).view(n, 1, 1, w).expand(n, x.shape[1], h, w))
        elif op == "cutout":
            h, w = x.shape[2:]
            ch, cw = max(1, h // 2), max(1, w // 2)
            cy = (rand(n) * (h + 1 - ch)).long()
            cx = (rand(n) * (w + 1 - cw)).long()
            yy = torch.arange(h, device=dev).view(1, h, 1)
            xx = torch.arange(w, device=dev).view(1, 1, w)
            inside = ((yy >= cy.view(n, 1, 1)) & (yy < (cy + ch).view(n, 1, 1))
                      & (xx >= cx.view(n, 1, 1)) & (xx < (cx + cw).view(n, 1, 1)))
            x = x * (~inside).unsqueeze(1).to(x.dtype)
        elif op:
            raise ValueError(f"unknown DiffAugment operation '{op}' (known: color, translation, cutout)")
    return x


# ---- one training step -----------------------------------------------------------------------
@dataclass
class StepSettings:
    loss: str = "ns"
    n_critic: int = 1
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    augment: str = "none"
    # n_critic = 1: the generator step reuses the discriminator step's fakes (kept with their
    # graph), as the DCGAN example does: one generator forward pass per step instead of two.
    reuse_fakes: bool = False


def grad_norm(module: nn.Module) -> float:
    """‖∇‖₂ over all of the module's gradients (one fused per-tensor norm, one host sync)."""
    grads = [p.grad.detach() for p in module.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    if any(g.dtype != torch.float32 for g in grads):
        grads = [g.float() for g in grads]
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))


def adversarial_step(G, D, opt_g, opt_d, real: torch.Tensor, sample_latent: Callable, s: StepSettings,
                     labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
                     context=None, forward: Callable | None = None,
                     backward: Callable | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """`n_critic` discriminator updates on `real` (with fresh fakes each), then one generator
    update. `sample_latent(n)` → (latents, class indices or None). `context()`: a context manager
    around forward passes (autocast). Returns (named terms, the last generator batch, detached).

    With n_critic > 1 every critic update sees the same real batch (the trainer hands one batch
    per step) and new fakes. The generator update draws fresh fakes too, unless `s.reuse_fakes`
    and n_critic = 1: then it scores the discriminator step's fakes (generated once, with their
    graph) with the updated D — the DCGAN example's step, one generator pass fewer.

    `forward(fn)` runs each player's loss computation and `backward(loss)` backpropagates it,
    False to skip the optimizer step: an engine passes its `forward_loss`/`backward`, through
    which training on several processes averages the gradients (engines/distributed.py)."""
    import contextlib

    ctx = context or contextlib.nullcontext
    forward = forward or (lambda fn: fn())
    backward = backward or (lambda loss: loss.backward() or True)
    n = len(real)
    aug = (lambda t: diff_augment(t, s.augment, generator)) if s.augment and s.augment != "none" else (lambda t: t)
    terms: dict[str, float] = {}
    D.requires_grad_(True)
    reuse = s.reuse_fakes and max(1, s.n_critic) == 1
    kept: dict = {}

    def d_phase():
        z, y_fake = sample_latent(n)
        if reuse:  # keep the graph: the generator step backpropagates through these fakes
            with ctx():
                kept["fake"], kept["y"] = G(z), y_fake
            fake = kept["fake"].detach()
        else:
            with torch.no_grad(), ctx():
                fake = G(z)
        with ctx():
            real_in, fake_in = aug(real), aug(fake.float())
            r, f = D(real_in, labels).float(), D(fake_in, y_fake).float()
            loss_d = d_loss(s.loss, r, f)
        total = loss_d
        if s.loss == "wgan-gp" and s.gp_weight > 0:
            gp = gradient_penalty(D, real_in, fake_in, labels, generator)
            total = total + s.gp_weight * gp
            terms["gp"] = float(gp.detach())
        if s.r1_gamma > 0:
            r1 = r1_penalty(D, real_in, labels)
            total = total + 0.5 * s.r1_gamma * r1
            terms["r1"] = float(r1.detach())
        return total, loss_d, r, f

    for _ in range(max(1, s.n_critic)):
        total, loss_d, r, f = forward(d_phase)
        opt_d.zero_grad(set_to_none=True)
        ok = backward(total)
        terms["d_grad_norm"] = grad_norm(D)
        if ok:
            opt_d.step()
    terms["d_loss"] = float(loss_d.detach())
    terms["d_real_acc"], terms["d_fake_acc"] = d_accuracy(s.loss, r.detach(), f.detach())

    # Generator: D's weights are constants here (no wasted gradient buffers for them).
    D.requires_grad_(False)
    try:
        def g_phase():
            if reuse:
                fake, y_fake = kept.pop("fake"), kept.pop("y")
                with ctx():
                    return g_loss(s.loss, D(aug(fake), y_fake).float()), fake
            z, y_fake = sample_latent(n)
            with ctx():
                fake = G(z)
                return g_loss(s.loss, D(aug(fake), y_fake).float()), fake

        loss_g, fake = forward(g_phase)
        opt_g.zero_grad(set_to_none=True)
        ok = backward(loss_g)
        terms["g_grad_norm"] = grad_norm(G)
        if ok:
            opt_g.step()
    finally:
        D.requires_grad_(True)
    terms["g_loss"] = float(loss_g.detach())
    return terms, fake.detach()


def pairwise_diversity(fake: torch.Tensor, real: torch.Tensor, side: int = 16) -> float:
    """Mode-collapse indicator: mean pairwise distance between generated images over the same
    for real images (both average-pooled to at most side×side). ≈1: as varied as the data;
    → 0: the generator draws (nearly) one image."""
    def feats(t):
        t = t.float()
        if t.dim() == 4 and t.shape[-1] > side:
            t = F.adaptive_avg_pool2d(t, side)
        return t.flatten(1)

    def mpd(v):
        if len(v) < 2:
            return 0.0
        d = torch.cdist(v, v)
        return float(d.sum() / (len(v) * (len(v) - 1)))

    ref = mpd(feats(real))
    return mpd(feats(fake)) / ref if ref > 0 else 0.0
