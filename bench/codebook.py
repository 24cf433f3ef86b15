"""Codebook panel latencies on the bundled VQ-VAE (faces 64, K=256, 8×8 grid): what a click or a
paint stroke costs on this machine. Prints a table and saves bench/results/codebook.json.

    python bench/codebook.py [--model F] [--images 2000] [--threads 1]

Rows: the one-off analysis (encode the data set once — the Workspace's job, shared by every
panel —, quantise its latents to code grids, decode every code as a uniform grid, typical patches) per 1000 images; one edited grid decoded (what every painted cell costs,
median of 30); the detail of one code (patches + occurrences); one prior sample (64 tokens);
inpainting 4 painted cells.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from common import ROOT, machine, save, table

BUNDLED = os.path.join(ROOT, "assets", "models", "vqvae-faces-64.safetensors")


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def measure(engine, images: int = 2000) -> list[dict]:
    """The rows ({case, ms, note}) for a VQ engine on the first `images` faces."""
    import numpy as np

    from engines.data import load_dataset
    from engines.latent.progress import run
    from explorer.panels.codebook import jobs
    from explorer.workspace.data import load_model_data

    ds = load_dataset("faces", spec=engine.spec)
    ds = ds.subset(np.arange(min(images, len(ds))))
    t0 = time.perf_counter()
    # What the app does: the Workspace encodes the data once (or reads its latent cache), the panel quantises.
    md = run(load_model_data(engine, None, dataset=ds))
    gen = jobs.analyse(engine, md, max_images=images)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        cd = stop.value
    analysis_s = time.perf_counter() - t0
    grid = cd.grids[0].astype(np.int64)
    return [
        {"case": f"analysis ({len(cd.images)} images)", "ms": 1000 * analysis_s,
         "note": f"{1000 * analysis_s / len(cd.images) * 1000:.0f} ms per 1000 images, once per model"},
        {"case": "decode one edited grid", "ms": _median_ms(lambda: jobs.decode_grid((engine, grid)), 30),
         "note": "per painted cell (latest request wins)"},
        {"case": "code detail (40 patches, 6 images)",
         "ms": _median_ms(lambda: jobs.code_detail(engine, cd, int(np.argmax(cd.counts))), 10), "note": "per click"},
        {"case": "prior sample, 1 grid", "ms": _median_ms(lambda: jobs.sample_grid(engine, 0, 1.0), 5),
         "note": f"{grid.size} tokens, one transformer pass each"},
        {"case": "inpaint 4 cells", "ms": _median_ms(
            lambda: jobs.inpaint_grid(engine, grid, np.pad(np.ones((2, 2), bool), ((3, 3), (3, 3))), 0, 1.0), 5),
         "note": "passes only for painted cells"},
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=BUNDLED)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    from engines import checkpoint as ckpt

    engine = ckpt.load(a.model, device="cpu", with_optimizer=False).engine
    rows = measure(engine, a.images)
    m = machine()
    print(f"# codebook bench — torch {m['torch']}, {m['threads']} thread(s) of {m['cores']} cores, load {os.getloadavg()[0]:.1f}")
    print(table(rows, ["case", "ms", "note"]))
    print("saved", save("codebook", {"rows": rows, "model": a.model}))


if __name__ == "__main__":
    main()
