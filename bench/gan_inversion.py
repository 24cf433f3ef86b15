"""GAN inversion and attribute arithmetic on inverted real faces, from the bundled faces GAN.

1. Inversion quality and cost on test faces: reconstruction MSE/PSNR and seconds per image for
   the encoder's guess alone, the guess refined by optimisation (the model's default steps), and
   random starts only (no encoder), so the value of each part shows.
2. The "sunglasses" vector Δ = mean(z | sunglasses) − mean(z | none) over the *inverted* latents
   of a subset of the faces, its quality, and the strip z + s·Δ (s = −4 … 4) on inverted test
   faces without sunglasses → assets/readme/gan_sunglasses_strip.png, with the eye-region
   brightness of the decoded strip against real faces with and without sunglasses (as
   bench/sunglasses.py measures it for the VAE).

    python bench/gan_inversion.py [--model assets/models/gan-faces-64.safetensors] [--n 1200] [--threads 1]

Timings depend on the machine and its load; the table prints the thread count.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import common
import numpy as np
import torch

import sunglasses as sgl
from engines import checkpoint as ckpt
from engines.data import load_dataset
from engines.latent import attributes as attr
from engines.latent.cache import LatentSet

BUNDLED = os.path.join(common.ROOT, "assets", "models", "gan-faces-64.safetensors")


def invert_all(engine, images, steps=None, restarts=None, chunk=64):
    zs, mses = [], []
    for i in range(0, len(images), chunk):
        inv = engine.invert(images[i:i + chunk], steps=steps, restarts=restarts)
        zs.append(inv.z.cpu().numpy())
        mses.append(inv.mse.cpu().numpy())
    return np.concatenate(zs), np.concatenate(mses)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=BUNDLED)
    ap.add_argument("--n", type=int, default=1200, help="faces inverted for the vector (half train, half test)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=sgl.OUT)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not os.path.isfile(a.model):
        print(f"{a.model}: no such model (build it with python assets/build_models.py gan-faces-64)", file=sys.stderr)
        return 2
    engine = ckpt.load(a.model, device="cpu", with_optimizer=False).engine
    ds = load_dataset("faces", spec=engine.spec)
    c = engine.config

    # 1. Inversion variants on 64 test faces.
    probe = ds.images[ds.test_idx[:64]]
    rows = []
    for name, steps, restarts, use_encoder in (("encoder guess only", 0, 1, True),
                                               (f"guess + {c.invert_steps} steps, {c.invert_restarts} starts", None, None, True),
                                               (f"random starts only, {c.invert_steps} steps", None, None, False)):
        saved = engine.nets["encoder"] if not use_encoder and "encoder" in engine.nets else None
        if saved is not None:
            del engine.nets["encoder"]
        try:
            t0 = time.perf_counter()
            _, mse = invert_all(engine, probe, steps, restarts)
            dt = time.perf_counter() - t0
        finally:
            if saved is not None:
                engine.nets["encoder"] = saved
        rows.append({"inversion": name, "mse": float(mse.mean()), "psnr_db": float(np.mean(10 * np.log10(1 / mse))),
                     "ms_per_image": 1000 * dt / len(probe)})
    print(f"inversion of {len(probe)} test faces, {a.threads} thread(s):")
    print(common.table(rows, ["inversion", "mse", "psnr_db", "ms_per_image"]))

    # 2. The sunglasses vector from inverted latents of a subset.
    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(ds.train_idx, min(a.n // 2, len(ds.train_idx)), replace=False))
    te = np.sort(rng.choice(ds.test_idx, min(a.n - len(tr), len(ds.test_idx)), replace=False))
    idx = np.concatenate([tr, te])
    t0 = time.perf_counter()
    z, mse = invert_all(engine, ds.images[idx])
    t_inv = time.perf_counter() - t0
    ls = LatentSet(latents=z.astype(np.float32), latent_shape=tuple(engine.latent_shape), model_id="", data_id="",
                   labels=ds.labels[idx], label_names=list(ds.label_names),
                   attributes={k: v[idx] for k, v in ds.attributes.items()},
                   train_idx=np.arange(len(tr)), test_idx=np.arange(len(tr), len(idx)))
    v = attr.from_attribute(ls, "sunglasses")
    q = v.quality
    sg = ls.attributes["sunglasses"]
    test = ls.test_idx
    faces = [int(test[(sg[test] == 0) & (ls.labels[test] == lab)][0]) for lab in range(len(ls.label_names))]
    strip_rows, bright = [], []
    for i in faces:
        imgs = sgl.decode(engine, attr.strip(ls.latents[i], v, sgl.S))
        strip_rows.append((ds.images[idx[i]], imgs))
        bright.append(sgl.eye_brightness(imgs))
    bright = np.array(bright)
    real_with = float(sgl.eye_brightness(ds.images[ds.test_idx[ds.attributes["sunglasses"][ds.test_idx] == 1]]).mean())
    real_without = float(sgl.eye_brightness(ds.images[ds.test_idx[ds.attributes["sunglasses"][ds.test_idx] == 0]]).mean())
    labels = [f"#{idx[i]}\n{ls.label_names[ls.labels[i]]}" for i in faces]
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "gan_sunglasses_strip.png")
    sgl.strip_figure(strip_rows, labels, f"GAN: z + s·Δ on inverted test faces (s = 0: the inversion); "
                     f"Δ from {len(idx)} inverted faces, d = {q.effect_size:.1f}").save(path)

    print(f"\nsunglasses vector from {len(idx)} inverted faces ({t_inv:.0f} s to invert; mean inversion "
          f"PSNR {np.mean(10 * np.log10(1 / mse)):.1f} dB):")
    print(common.table([{"quantity": k, "value": val} for k, val in (
        ("‖Δ‖", v.norm), ("groups (with / without)", f"{q.n_a} / {q.n_b}"), ("effect size d", q.effect_size),
        ("cosine agreement", q.cosine), ("held-out accuracy", q.heldout_accuracy), ("verdict", q.verdict))],
        ["quantity", "value"]))
    print("\neye-region brightness of the decoded strip (mean over the faces; sunglasses are dark):")
    print(common.table([{"s": f"{s:+g}", "brightness": float(b)} for s, b in zip(sgl.S, bright.mean(0))], ["s", "brightness"]))
    print(f"real test faces: with sunglasses {real_with:.3f}, without {real_without:.3f}")
    print(f"wrote {os.path.relpath(path, common.ROOT)}")
    common.save("gan_inversion", {
        "model": os.path.relpath(a.model, common.ROOT), "threads": a.threads, "inversion": rows,
        "n_inverted": int(len(idx)), "invert_seconds": t_inv, "inversion_mse_mean": float(mse.mean()),
        "vector_norm": v.norm, "quality": {**q.__dict__, "verdict": q.verdict},
        "eye_brightness_per_face": bright.tolist(), "eye_brightness_real": {"with": real_with, "without": real_without},
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
