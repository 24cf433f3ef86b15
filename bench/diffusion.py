"""Our diffusion engine against huggingface `diffusers` (a bench-only dependency:
`pip install diffusers`; without it the peer columns stay empty and say why).

Same data (digits 28×28, train split), same noise schedule (cosine, T = 1000), ε-prediction,
Adam at the same learning rate and batch 64, a U-Net of similar size on each side: ours at its
default width 32 (levels 32/64/64 at 28/14/7 px, attention at 7×7) and diffusers' UNet2DModel with
block_out_channels (32, 64, 64), one layer per block, attention in the 7×7 blocks.

- train: images/s, both trained for the same wall time in interleaved slices;
- sample: seconds per 100 images at 10/25/50 steps — our DDIM and DPM-Solver++ on our U-Net, and
  diffusers' DDIMScheduler driving its UNet2DModel (the issue's reference) and driving our U-Net
  (isolates the sampler loop from the network);
- quality: cfid (classifier Fréchet distance, `engines.metrics`) of DDIM-25 samples from each model
  after that same training budget.

    python bench/diffusion.py [--quick]      (also run by bench/run.py)
"""
from __future__ import annotations

import importlib
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from harness import slice_race  # noqa: E402

common.on_path()

STEPS = (10, 25, 50)


def peer_unet(spec, width: int = 32, levels: int = 4, attn_size: int = 8, blocks: int = 1):
    """diffusers' UNet2DModel on our engine's level plan (`engines.diffusion.unet.level_sizes`):
    channels width·(1, 2, 2, 2), `blocks` layers per block, attention (head size 16) in the blocks
    whose side is at most `attn_size` — at 28 px (32, 64, 64) with attention at 7×7, at 64 px
    (32, 64, 64, 64) with attention at 8×8."""
    from diffusers import UNet2DModel

    from engines.diffusion.unet import level_sizes

    sizes = level_sizes(spec, levels)
    chans = tuple(width * m for m in (1, 2, 2, 2, 2)[: len(sizes)])
    attn = [max(h, w) <= attn_size for h, w in sizes]
    return UNet2DModel(sample_size=spec.height, in_channels=spec.channels, out_channels=spec.channels,
                       layers_per_block=blocks, block_out_channels=chans, norm_num_groups=8,
                       down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
                       up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
                       attention_head_dim=16)


def latent_peer(engine, device="cpu"):
    """(Peer, first): diffusers' UNet2DModel on `engine`'s (a latent-diffusion engine) latent grid
    and level plan, with its own copy of the engine's first stage: each batch is encoded inside the
    step as our `to_model` does (the posterior mean × the scale measured on the first batch, kept in
    `peer.latent_scale`)."""
    import copy

    import torch

    c = engine.config
    first = copy.deepcopy(engine.nets["first"])
    scale: list[float] = []

    def to_model(xb):
        with torch.no_grad():
            z = first.posterior(xb)[0]
            if not scale:
                scale.append(1.0 / float(z.std()))
            return z * scale[0]

    peer = Peer(engine.unet_spec, c.lr, width=c.width, levels=c.levels, attn_size=c.attn_size, blocks=c.blocks,
                target=c.target, to_model=to_model, device=device)
    peer.latent_scale = scale
    return peer, first


def diffusers_available() -> str | None:
    try:
        importlib.import_module("diffusers")
    except ImportError:
        return "diffusers is not installed (pip install diffusers)"
    return None


class Peer:
    """diffusers' UNet2DModel trained the usual way (DDPMScheduler.add_noise, ε-MSE; with
    target="v" the MSE to `DDPMScheduler.get_velocity`). `to_model` maps a batch of images in
    [0, 1] to x₀ (default: pixels in [−1, 1]; latent diffusion: a first stage's latents)."""

    def __init__(self, spec, lr: float, seed: int = 0, width: int = 32, levels: int = 4, attn_size: int = 8,
                 device="cpu", blocks: int = 1, target: str = "eps", to_model=None):
        import torch
        from diffusers import DDPMScheduler

        torch.manual_seed(seed)
        self.net = peer_unet(spec, width, levels, attn_size, blocks).to(device)
        self.target, self.to_model = target, to_model or (lambda x: x * 2 - 1)
        self.sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                   prediction_type="v_prediction" if target == "v" else "epsilon")
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.g = torch.Generator(device=device).manual_seed(seed)

    def train_step(self, x):
        import torch
        import torch.nn.functional as F

        x0 = self.to_model(x)
        noise = torch.randn(x0.shape, generator=self.g, device=x0.device)
        t = torch.randint(0, 1000, (len(x0),), generator=self.g, device=x0.device)
        self.net.train()
        goal = self.sched.get_velocity(x0, noise, t) if self.target == "v" else noise
        loss = F.mse_loss(self.net(self.sched.add_noise(x0, noise, t), t).sample, goal)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def diffusers_ddim(net_fn, shape, steps: int, seed: int = 0, device="cpu", target: str = "eps", raw: bool = False):
    """The usual diffusers sampling loop: DDIMScheduler (η = 0) with `net_fn(x, t) → ε` (or v, with
    target="v"); images in [0, 1], or the raw x₀ (latents) with `raw`."""
    import torch
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                          prediction_type="v_prediction" if target == "v" else "epsilon")
    sched.set_timesteps(steps, device=device)
    x = torch.randn(shape, generator=torch.Generator(device=device).manual_seed(seed), device=device)
    with torch.inference_mode():
        for t in sched.timesteps:
            x = sched.step(net_fn(x, t), t, x).prev_sample
    return x if raw else (x.clamp(-1, 1) + 1) / 2


def run(quick: bool = False, train_s: float | None = None, n_time: int | None = None, n_quality: int | None = None):
    """Rows as dicts: bench, case, ours, peer, unit, better, kind, notes."""
    import torch

    import engines
    from engines.base import Batch
    from engines.data import load_dataset, to_float, to_uint8
    from engines.metrics import compare
    from engines.metrics.classifier import get_classifier

    train_s = train_s if train_s is not None else (8.0 if quick else 240.0)
    n_time = n_time or (8 if quick else 25)  # timed on this many, reported per 100
    n_quality = n_quality or (64 if quick else 500)
    ds = load_dataset("digits", size=28, channels=1)
    tr = ds.split("train")
    x_all = to_float(tr.images)
    ours = engines.create("diffusion", ds.spec, device="cpu", seed=0)
    why_not = diffusers_available()
    peer = None if why_not else Peer(ds.spec, ours.config.lr)
    bs = 64
    g = torch.Generator().manual_seed(0)
    counts = {"ours": 0, "peer": 0}

    def step(side):
        idx = torch.randint(0, len(x_all), (bs,), generator=g)
        if side == "ours":
            ours.train_step(Batch(x_all[idx]))
        else:
            peer.train_step(x_all[idx])
        counts[side] += bs

    slice_s = min(2.0, train_s / 4)
    spent = slice_race({"ours": lambda: step("ours"), "peer": None if peer is None else lambda: step("peer")},
                       {"ours": train_s, "peer": train_s}, {"ours": slice_s, "peer": slice_s})
    rows = []
    n_ours = ours.n_parameters()
    n_peer = sum(p.numel() for p in peer.net.parameters()) if peer else None
    peer_note = why_not or f"UNet2DModel {n_peer / 1e6:.2f} M parameters"
    rows.append(dict(bench="diffusion", case="train on digits 28 (batch 64)", ours=counts["ours"] / spent["ours"],
                     peer=counts["peer"] / spent["peer"] if peer else None, unit="images/s", better="higher",
                     kind="speed", peer_name="diffusers UNet2DModel + DDPMScheduler",
                     notes=f"ours {n_ours / 1e6:.2f} M parameters; {peer_note}; {train_s:.0f} s each, interleaved"))

    shape = (n_time, *ds.spec.shape)
    scale = 100.0 / n_time
    our_net = ours.nets["ema"].eval()
    for steps in STEPS:
        # Each variant twice, interleaved, keeping the faster run: other work on a shared machine
        # only ever slows a run down, so the minimum is the steadier number.
        fns = {"ddim": lambda: ours.sample(n_time, seed=0, sampler="ddim", steps=steps),
               "dpm": lambda: ours.sample(n_time, seed=0, sampler="dpm", steps=steps)}
        if peer is not None:
            pnet = peer.net.eval()
            fns["peer"] = lambda: diffusers_ddim(lambda x, t: pnet(x, t).sample, shape, steps)
            fns["mixed"] = lambda: diffusers_ddim(lambda x, t: our_net(x, t.float().expand(len(x))), shape, steps)
        best: dict[str, float] = {}
        for _ in range(2):
            for k, fn in fns.items():
                best[k] = min(best.get(k, math.inf), _time(fn))
        t_ddim, t_dpm, t_peer, t_mixed = best["ddim"], best["dpm"], best.get("peer"), best.get("mixed")
        rows.append(dict(bench="diffusion", case=f"sample, DDIM {steps} steps", ours=t_ddim * scale,
                         peer=None if t_peer is None else t_peer * scale, unit="s/100 images", better="lower",
                         kind="speed", peer_name="diffusers DDIMScheduler + UNet2DModel",
                         notes=(why_not or f"diffusers DDIMScheduler driving our U-Net: {t_mixed * scale:.2f} s")
                         + (f"; timed on {n_time} images, scaled" if n_time != 100 else "") + "; faster of 2 interleaved runs"))
        rows.append(dict(bench="diffusion", case=f"sample, DPM-Solver++ {steps} steps", ours=t_dpm * scale, peer=None,
                         unit="s/100 images", better="lower", kind="speed", peer_name=None,
                         notes="same network calls as DDIM; compare with the DDIM row's peer"))

    clf = get_classifier(ds)
    test = ds.split("test").images
    ours_imgs = to_uint8(ours.sample(n_quality, seed=1, sampler="ddim", steps=25))
    q_ours = compare(clf, test, ours_imgs)["cfid"]
    q_peer = None
    if peer is not None:
        pnet = peer.net.eval()
        chunks = [diffusers_ddim(lambda x, t: pnet(x, t).sample, (min(100, n_quality - i), *ds.spec.shape), 25, seed=1 + i)
                  for i in range(0, n_quality, 100)]
        q_peer = compare(clf, test, to_uint8(torch.cat(chunks)))["cfid"]
    rows.append(dict(bench="diffusion", case=f"sample quality after {train_s:.0f} s of training (DDIM 25)", ours=q_ours,
                     peer=q_peer, unit="cfid", better="lower", kind="quality", peer_name="diffusers UNet2DModel",
                     notes=f"{n_quality} samples vs {len(test)} test digits; lower is better"
                     + ("; quick: far too little training to mean much" if quick else "")))
    return rows


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for r in run(a.quick):
        ours, peer = r["ours"], r["peer"]
        print(f"{r['case']:<48} ours {ours:10.3f}  peer {'' if peer is None else f'{peer:10.3f}':>10} {r['unit']:<14} {r['notes']}")
