"""Latent diffusion against pixel diffusion on 28×28 digits (the built-in set).

Both unconditional, v-prediction, cosine schedule, batch 64, from the same seed. Pixel diffusion
is our `diffusion` engine at its defaults (U-Net width 32 over 28/14/7 px); latent diffusion is our
`latent-diffusion` engine (a KL autoencoder of width 16 to 7×7×4, then a U-Net of width 32 over the
7×7 latents).

- quality at equal training time: the latent model gets `train_s` seconds of wall time in all —
  its first third trains the autoencoder, the rest the diffusion — and pixel diffusion gets twice
  that, the two interleaved in slices (1 s of latent, 2 s of pixel) so the machine's load hits both
  alike; then the classifier Fréchet distance (`engines.metrics`, cfid) of DDIM-25 samples against
  the test digits. The issue's bar: latent beats pixel trained twice as long.
- sampling speed at equal steps: seconds per 100 images with DDIM at 10 and 25 steps, the latent
  side including its decoder; each twice, interleaved, the faster kept. The issue's bar: ≥ 3×.

    python bench/latent_diffusion.py [--quick]      (also `bench/run.py --only latent_diffusion`)
"""
from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from harness import slice_race  # noqa: E402

common.on_path()

STEPS = (10, 25)
AE_SHARE = 1 / 3  # of the latent model's training time


def run(quick: bool = False, train_s: float | None = None, n_time: int | None = None, n_quality: int | None = None):
    """Rows as dicts: bench, case, ours, peer, unit, better, kind, notes."""
    import torch

    import engines
    from engines.base import Batch
    from engines.data import load_dataset, to_float, to_uint8
    from engines.metrics import compare
    from engines.metrics.classifier import get_classifier

    train_s = train_s if train_s is not None else (8.0 if quick else 240.0)
    n_time = n_time or (8 if quick else 50)
    n_quality = n_quality or (64 if quick else 500)
    ds = load_dataset("digits", size=28, channels=1)
    x_all = to_float(ds.split("train").images)
    bs = 64
    latent = engines.create("latent-diffusion", ds.spec, device="cpu", seed=0, ae_width=16, width=32, batch_size=bs,
                            ae_epochs=1e6)  # stage 1 ends by time, below
    pixel = engines.create("diffusion", ds.spec, device="cpu", seed=0, target="v", batch_size=bs)
    latent.epoch_steps = max(1, len(x_all) // bs)
    g = torch.Generator().manual_seed(0)
    ae = {"s": 0.0}

    def after(side, spent_s):
        if side == "latent" and latent.stage == 1 and spent_s >= AE_SHARE * train_s:
            # stage 1 has had its share: stage 2 starts with the next step
            latent.config.ae_epochs = (int(latent.nets["stats"].ae_steps) - 0.5) / latent.epoch_steps
            ae["s"] = spent_s

    steps = {side: (lambda eng=eng: eng.train_step(Batch(x_all[torch.randint(0, len(x_all), (bs,), generator=g)])))
             for side, eng in (("latent", latent), ("pixel", pixel))}
    spent = slice_race(steps, {"latent": train_s, "pixel": 2 * train_s},
                       {"latent": min(1.0, train_s / 8), "pixel": min(2.0, train_s / 4)}, after)
    ae_s = ae["s"]
    ae_steps = int(latent.nets["stats"].ae_steps)
    train_note = (f"latent: {ae_steps} autoencoder steps ({ae_s:.0f} s) + {latent.ema_age()} diffusion steps "
                  f"in {spent['latent']:.0f} s; pixel: {pixel.step} steps in {spent['pixel']:.0f} s; batch {bs}, "
                  "interleaved on a shared (loaded) machine")

    rows = []
    clf = get_classifier(ds)
    test = ds.split("test").images
    q = {name: compare(clf, test, to_uint8(eng.sample(n_quality, seed=1, sampler="ddim", steps=25)))["cfid"]
         for name, eng in (("latent", latent), ("pixel", pixel))}
    rec = latent.reconstruct(test)
    ae_mse = float(((rec - to_float(test)) ** 2).mean())
    rows.append(dict(bench="latent_diffusion", case=f"quality, DDIM 25: latent after {train_s:.0f} s vs pixel after "
                     f"{2 * train_s:.0f} s", ours=q["latent"], peer=q["pixel"], unit="cfid", better="lower",
                     kind="quality", peer_name="pixel diffusion, twice the training time",
                     notes=f"{n_quality} samples vs {len(test)} test digits; autoencoder test MSE {ae_mse:.4f}; "
                     + train_note + ("; quick: far too little training to mean much" if quick else "")))

    for steps in STEPS:
        fns = {"latent": lambda: latent.sample(n_time, seed=0, sampler="ddim", steps=steps),
               "pixel": lambda: pixel.sample(n_time, seed=0, sampler="ddim", steps=steps)}
        best: dict[str, float] = {}
        for _ in range(2):
            for k, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[k] = min(best.get(k, math.inf), time.perf_counter() - t0)
        scale = 100.0 / n_time
        rows.append(dict(bench="latent_diffusion", case=f"sample, DDIM {steps} steps", ours=best["latent"] * scale,
                         peer=best["pixel"] * scale, unit="s/100 images", better="lower", kind="speed",
                         peer_name="pixel diffusion (our diffusion engine)",
                         notes=f"latent: {latent.n_parameters() / 1e6:.2f} M parameters (U-Net + autoencoder), pixel: "
                         f"{pixel.n_parameters() / 1e6:.2f} M; timed on {n_time} images, scaled; faster of 2 interleaved runs"))
    return rows


def bench_latent_diffusion(o) -> list[dict]:
    """bench/run.py's entry: the latent model's training time is `o.diffusion_train_s`."""
    from harness import as_rows

    return as_rows(run(o.quick, train_s=o.diffusion_train_s))


if __name__ == "__main__":
    import argparse

    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--train-s", type=float, default=None, help="the latent model's training time (pixel: twice)")
    ap.add_argument("--n", type=int, default=None, help="samples for the quality check")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for r in run(a.quick, train_s=a.train_s, n_quality=a.n):
        ours, peer = r["ours"], r["peer"]
        print(f"{r['case']:<60} latent {ours:10.3f}  pixel {peer:10.3f} {r['unit']:<14} {r['notes']}")
