"""Scrub speed: can a 64×64 RGB VAE follow a drag at ≥ 30 decoded frames/s on a laptop CPU?

Measures, on the CPU with `--threads` intra-op threads (default 2, as on a 2-core laptop):

- decode latency of one image and of a 16×16 atlas grid (256 latents);
- a simulated drag: 200 successive map points along a loop → latent → decode, one at a time,
  on the PCA plane (exact) and on the UMAP map (modified Shepard inverse), as frames/s;
- the map-point → latent cost per point: the Shepard inverse against umap's inverse_transform;
- projection times: PCA of 10,000 latents, UMAP first run (numba compile included), warm
  recompute, and reopening from the disk cache.

The model is the bundled assets/models/vae-faces-64.safetensors when present (a fresh default
VAE otherwise: the speed is the same), the data the built-in faces, encoded through the latent
cache. Each timing is also taken with 1 thread, because on a machine whose cores are busy with
other work two threads can be much slower than one (they wait for each other's time slices).

    python bench/scrub.py [--threads 2] [--frames 200] [--skip-umap]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import common
import numpy as np
import torch

import engines
from engines.data import load_dataset
from engines.latent import cache, projection
from engines.latent.atlas import grid_latents
from engines.spec import ImageSpec

BUNDLED = os.path.join(common.ROOT, "assets", "models", "vae-faces-64.safetensors")


def load_engine():
    if os.path.isfile(BUNDLED):
        from engines import checkpoint as ckpt

        return ckpt.load(BUNDLED, device="cpu", with_optimizer=False).engine, "bundled vae-faces-64"
    return engines.create("vae", ImageSpec(3, 64, 64), device="cpu"), "fresh default VAE"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def drag(engine, mapping, points) -> dict:
    """Map each point to a latent and decode it, one frame at a time, like a drag."""
    map_s, dec_s = [], []
    for p in points:
        t0 = time.perf_counter()
        z = mapping.to_latent(p)
        t1 = time.perf_counter()
        engine.decode(np.asarray(z, np.float32)[None])
        t2 = time.perf_counter()
        map_s.append(t1 - t0)
        dec_s.append(t2 - t1)
    frame = [a + b for a, b in zip(map_s, dec_s)]
    return {"map_ms": 1e3 * statistics.mean(map_s), "decode_ms": 1e3 * statistics.mean(dec_s),
            "frame_ms": 1e3 * statistics.mean(frame), "p95_frame_ms": 1e3 * float(np.percentile(frame, 95)),
            "fps": len(frame) / sum(frame)}


def loop_path(n: int, radius: float = 1.5) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([radius * np.cos(t), radius * np.sin(2 * t)], 1)  # a figure eight across the centre


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--skip-umap", action="store_true")
    ap.add_argument("--umap-inverse-points", type=int, default=3, help="0 skips umap's own inverse (≈ 20 s per point)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    engine, what = load_engine()
    print(f"model: {what}, latent {engine.latent_shape}, {engine.n_parameters():,} parameters; "
          f"torch {torch.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

    data = load_dataset("faces", spec=engine.spec)
    t0 = time.perf_counter()
    ls = cache.open_latents(engine, data)
    t_latents = time.perf_counter() - t0
    t0 = time.perf_counter()
    ls2 = cache.open_latents(engine, data)
    t_reopen = time.perf_counter() - t0
    print(f"latents of {len(ls)} faces: {t_latents:.2f} s ({'cache' if ls.from_cache else 'encoded'}), "
          f"reopen {1e3 * t_reopen:.0f} ms ({'cache' if ls2.from_cache else 'encoded'})")

    rows, result = [], {"model": what, "threads": a.threads, "latents_s": t_latents, "reopen_s": t_reopen}
    from engines.latent.progress import run

    # ---- projections ----
    zsyn = np.random.default_rng(0).normal(size=(10_000, 64)).astype(np.float32)
    pca_t = statistics.median(timed(lambda: projection.pca_projection(zsyn), 5))
    pca_f = statistics.median(timed(lambda: projection.pca_projection(ls.latents), 5))
    rows += [{"threads": a.threads, "case": "PCA projection 10,000 x 64 (synthetic)", "ms": 1e3 * pca_t},
             {"threads": a.threads, "case": f"PCA projection faces {len(ls)} x {ls.dim}", "ms": 1e3 * pca_f}]
    result["pca_10k_ms"] = 1e3 * pca_t
    pca = projection.pca_projection(ls.latents)

    umap_proj = None
    if not a.skip_umap:
        params = projection.UmapParams()
        key_file = os.path.join(projection.umap_dir(), projection.umap_key(ls.latents, params) + ".npz")
        if os.path.exists(key_file):
            os.unlink(key_file)  # a true first run
        stages: dict[str, float] = {}
        t0 = time.perf_counter()
        run(projection.run_umap(ls.latents, params), lambda p: stages.setdefault(p.stage, time.perf_counter() - t0))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        umap_proj = run(projection.run_umap(ls.latents, params))
        cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        run(projection.run_umap(ls.latents, params, cache=False))
        warm = time.perf_counter() - t0
        order = sorted(stages, key=stages.get) + ["end"]
        times = [stages[k] for k in order[:-1]] + [first]
        split = ", ".join(f"{k} {times[i + 1] - times[i]:.0f} s" for i, k in enumerate(order[:-1]))
        rows += [{"threads": a.threads, "case": f"UMAP {len(ls)} points, first run in process", "ms": 1e3 * first,
                  "note": f"includes numba compile; {split}"},
                 {"threads": a.threads, "case": "UMAP same, warm recompute", "ms": 1e3 * warm},
                 {"threads": a.threads, "case": "UMAP same, reopened from the disk cache", "ms": 1e3 * cached}]
        result.update(umap_first_s=first, umap_first_stages=split, umap_warm_s=warm, umap_cached_s=cached)
        print(f"UMAP: first {first:.0f} s ({split}), warm {warm:.1f} s, cached {1e3 * cached:.0f} ms", flush=True)

        sm = umap_proj.mapping
        lo, hi = umap_proj.coords.min(0), umap_proj.coords.max(0)
        upath = (lo + hi) / 2 + loop_path(a.frames, 0.6) * (hi - lo) / 2 / 1.5
        per_point = timed(lambda: sm.to_latent(upath[0]), 200)
        batch_t = statistics.median(timed(lambda: sm.to_latent(upath), 5))
        rows += [{"threads": a.threads, "case": "Shepard inverse (ours), 1 point", "ms": 1e3 * statistics.median(per_point)},
                 {"threads": a.threads, "case": f"Shepard inverse (ours), {a.frames} points at once", "ms": 1e3 * batch_t}]
        result["shepard_point_ms"] = 1e3 * statistics.median(per_point)

        # umap's own inverse needs the fitted object (refit here: the cache holds only coordinates)
        if a.umap_inverse_points > 0:
            import warnings

            import umap

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                model = umap.UMAP(random_state=0, n_jobs=1).fit(ls.latents)
                fit_s = time.perf_counter() - t0
                pts = upath[: a.umap_inverse_points]
                model.inverse_transform(pts[:1])  # the first call compiles
                inv = timed(lambda: [model.inverse_transform(p[None]) for p in pts], 1)[0] / len(pts)
                inv_batch = timed(lambda: model.inverse_transform(pts), 1)[0]
            rows += [{"threads": a.threads, "case": "umap.inverse_transform, 1 point", "ms": 1e3 * inv,
                      "note": f"needs the fitted UMAP object (refit {fit_s:.0f} s; not storable without pickle)"},
                     {"threads": a.threads, "case": f"umap.inverse_transform, {len(pts)} points at once", "ms": 1e3 * inv_batch}]
            result["umap_inverse_point_ms"] = 1e3 * inv
            print(f"umap.inverse_transform: {inv:.1f} s per point", flush=True)

    # ---- decoding and dragging ----
    grid = grid_latents(pca.mapping, extent=2.5, resolution=16).latents.astype(np.float32)
    z1 = grid[:1]
    path = loop_path(a.frames)
    for threads in sorted({a.threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        for _ in range(5):
            engine.decode(z1)
        single = timed(lambda: engine.decode(z1), 50)
        batch = timed(lambda: engine.decode(grid), 3)
        d = drag(engine, pca.mapping, path)
        rows += [{"threads": threads, "case": "decode 1 image (median of 50)", "ms": 1e3 * statistics.median(single),
                  "fps": 1 / statistics.median(single)},
                 {"threads": threads, "case": "decode 16x16 grid (256 latents)", "ms": 1e3 * statistics.median(batch),
                  "fps": 256 / statistics.median(batch), "note": "fps = images/s"},
                 {"threads": threads, "case": f"drag on PCA plane ({a.frames} frames)", "ms": d["frame_ms"], "fps": d["fps"],
                  "note": f"map {1e3 * d['map_ms']:.0f} us + decode {d['decode_ms']:.1f} ms; p95 frame {d['p95_frame_ms']:.1f} ms"}]
        result[f"threads_{threads}"] = {"single_ms": 1e3 * statistics.median(single),
                                        "grid256_ms": 1e3 * statistics.median(batch), "drag_pca": d}
        if umap_proj is not None:
            du = drag(engine, umap_proj.mapping, upath)
            rows.append({"threads": threads, "case": f"drag on UMAP map ({a.frames} frames)", "ms": du["frame_ms"], "fps": du["fps"],
                         "note": f"map {1e3 * du['map_ms']:.0f} us + decode {du['decode_ms']:.1f} ms; p95 frame {du['p95_frame_ms']:.1f} ms"})
            result[f"threads_{threads}"]["drag_umap"] = du
        print(f"{threads} thread(s): drag {d['fps']:.0f} frames/s", flush=True)
    torch.set_num_threads(a.threads)
    result["load_average_end"] = os.getloadavg()[0]

    print(common.table(rows, ["threads", "case", "ms", "fps", "note"]))
    result["rows"] = rows
    print("saved", common.save("scrub", result))


if __name__ == "__main__":
    main()
