"""The README's flow latent walk: test digits encoded by the bundled flow, walked between in latent
space (spherical interpolation, the project's `engines.latent.interpolate.path`), decoded.

Each row goes from one test digit to the next; its first and last images are the decoded latents
of the real digits — a flow reconstructs them exactly, so the ends are the data themselves. The
script prints the round trip's largest error and the latents' norms against √D (a typical draw
from N(0, I) has norm ≈ √D; interpolating linearly would pass through much smaller norms).

    python bench/flow_walk.py [--model assets/models/flow-digits-28.safetensors] [--out assets/readme/flow_walk.png]
"""
from __future__ import annotations

import argparse
import os

import common
import numpy as np
import torch
from PIL import Image

common.on_path()


def main() -> None:
    from engines import checkpoint as ckpt
    from engines.data import load_dataset
    from engines.data.dataset import tile, to_uint8
    from engines.latent.interpolate import path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(common.ROOT, "assets", "models", "flow-digits-28.safetensors"))
    ap.add_argument("--out", default=os.path.join(common.ROOT, "assets", "readme", "flow_walk.png"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--scale", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    e = ckpt.load(a.model, device="cpu").engine
    test = load_dataset("digits", size=28, channels=1).split("test")
    # One test digit of each class 0…5, walked 0 → 1 → … → 5: five rows.
    labels = np.asarray(test.labels)
    picks = [int(np.flatnonzero(labels == k)[0]) for k in range(6)]
    x = test.images[picks]
    z = e.encode(x)
    err = float((e.decode(z) - torch.as_tensor(x).permute(0, 3, 1, 2).float() / 255).abs().max())
    rows = [path(z[i:i + 2].numpy(), a.steps - 1, method="slerp") for i in range(len(picks) - 1)]
    frames = np.concatenate(rows)
    imgs = to_uint8(e.decode(torch.as_tensor(frames, dtype=torch.float32)))
    grid = tile(imgs, cols=a.steps, pad=2)
    Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).resize(
        (grid.shape[1] * a.scale, grid.shape[0] * a.scale), Image.NEAREST).save(a.out)
    norms = z.norm(dim=1)
    print(f"round trip max |x − decode(encode(x))| = {err:.2e}; latent norms {norms.min():.1f}…{norms.max():.1f} "
          f"(√D = {z.shape[1] ** 0.5:.1f}); wrote {a.out}")


if __name__ == "__main__":
    main()
