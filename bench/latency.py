"""`python bench/run.py --only decode projection scrub`: decode latency, PCA/UMAP projection
times and frames/s while dragging across the map, each against the plain library call."""
from __future__ import annotations

import os
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import statistics  # noqa: E402
import time  # noqa: E402

from harness import Opts, faces_engine, faces_latents, interleaved, row, timed, umap_input  # noqa: E402


def bench_decode(o: Opts) -> list[dict]:
    import numpy as np
    import torch

    engine, what = faces_engine()
    dec = engine.nets["decoder"].eval()
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((1, engine.latent_dim)).astype(np.float32)
    grid = rng.standard_normal((256, engine.latent_dim)).astype(np.float32)  # the cost does not depend on values

    def plain(z):
        # Both sides start from the same float32 NumPy latents (what a drag hands the decoder, and
        # what the scrub rows' peer converts too); a tensor made beforehand left ~10 µs of ours's
        # ~40-80 µs gap at one image in the conversion the peer skipped.
        with torch.inference_mode():
            return torch.sigmoid(dec(torch.from_numpy(z)))

    ours1, peer1 = interleaved(lambda: engine.decode(z1), lambda: plain(z1), o.decode_repeat, warmup=5, alternate=True)
    oursg, peerg = interleaved(lambda: engine.decode(grid), lambda: plain(grid), o.grid_repeat, warmup=1, alternate=True)
    med = statistics.median
    peer_name = "the same decoder module called directly on the same NumPy latents (torch.from_numpy)"
    return [row("decode", f"decode 1 image, {what}", 1e3 * med(ours1), "ms", better="lower", peer=1e3 * med(peer1),
                peer_name=peer_name, notes=f"median of {len(ours1)}, interleaved, order alternating"),
            row("decode", "decode 16×16 grid (256 latents)", 1e3 * med(oursg), "ms", better="lower", peer=1e3 * med(peerg),
                peer_name=peer_name, notes=f"median of {len(oursg)}; {256 / med(oursg):.0f} images/s")]


def bench_projection(o: Opts) -> list[dict]:
    import warnings

    import numpy as np
    from sklearn.decomposition import PCA

    from engines.latent import projection
    from engines.latent.progress import run

    ls, lat_s = faces_latents()
    rows = []
    med = statistics.median
    zsyn = np.random.default_rng(0).normal(size=(10_000, 64)).astype(np.float32)
    zf = np.asarray(ls.latents, np.float32).reshape(len(ls.latents), -1)
    for label, z in (("10,000×64 synthetic", zsyn), (f"faces latents {len(zf):,}×{zf.shape[1]}", zf)):
        # ~2 ms each: 21 alternating pairs (5 swung the row between 0.8× and 1.3× on one machine)
        a, b = interleaved(lambda: projection.pca_projection(z), lambda: PCA(2).fit_transform(z), 21, warmup=2,
                           alternate=True)
        rows.append(row("projection", f"PCA projection, {label}", 1e3 * med(a), "ms", better="lower",
                        peer=1e3 * med(b), peer_name="scikit-learn PCA(2).fit_transform",
                        notes=f"median of {len(a)}, interleaved, order alternating"))

    zu = umap_input(o)
    params = projection.UmapParams()
    key_file = os.path.join(projection.umap_dir(), projection.umap_key(zu, params) + ".npz")
    if os.path.exists(key_file):
        os.unlink(key_file)  # a true first run
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    run(projection.run_umap(zu, params), lambda p: stages.setdefault(p.stage, time.perf_counter() - t0))
    first = time.perf_counter() - t0
    order = sorted(stages, key=stages.get)
    times = [stages[s] for s in order] + [first]
    split = ", ".join(f"{s} {times[i + 1] - times[i]:.0f} s" for i, s in enumerate(order))
    subset = f" (first {len(zu):,} of {len(zf):,}: --quick)" if len(zu) < len(zf) else ""
    n = f"{len(zu):,} faces latents{subset}"
    rows.append(row("projection", f"UMAP first run in process, {n}", first, "s", better="lower",
                    notes=f"umap-learn inside; numba compile included; {split}"))

    import umap

    def direct():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            umap.UMAP(n_neighbors=params.n_neighbors, min_dist=params.min_dist, random_state=params.seed,
                      n_jobs=1).fit_transform(zu)

    cached = timed(lambda: run(projection.run_umap(zu, params)))
    # A single pair, as --quick once had, swung the ratio by ±6 % between runs; best of 3 read
    # 0.89-1.00 (2,000 points, --quick) and 0.94-1.00 (8,000), while one process timed ours and
    # umap-learn level call by call (4.4-5.0 s each, either side ahead by up to 8 %)
    reps = 5
    warm, peer = interleaved(lambda: run(projection.run_umap(zu, params, cache=False)), direct, reps)
    rows.append(row("projection", "UMAP reopened from our disk cache", cached, "s", better="lower", peer=min(peer),
                    peer_name="umap-learn fit_transform again (warm, no cache)", notes="same latents and parameters"))
    rows.append(row("projection", "UMAP warm recompute (cache off)", min(warm), "s", better="lower", peer=min(peer),
                    peer_name="umap-learn fit_transform (warm)",
                    notes=f"best of {reps}, interleaved; ours adds staged progress/cancel and the inverse-map index"))
    return rows


def _drag_pair(engine, mapping, points, passes: int = 1) -> tuple[float, float, float]:
    """(ours frames/s, peer frames/s, ours p95 frame ms) of the scrub loop — map point → latent →
    decode, one frame at a time, as bench/scrub.drag — through `engine.decode` (ours) and with the
    decoder module called directly (peer), alternating frame by frame so load changes hit both, and
    which side goes first alternating too (the second of a pair finds warm caches). Each side's
    frames/s is all frames over all frame time of a pass; with several passes over the path, the
    median pass (a burst of other load in one pass does not decide the row)."""
    import numpy as np
    import torch

    dec = engine.nets["decoder"].eval()

    def ours_frame(p):
        engine.decode(np.asarray(mapping.to_latent(p), np.float32)[None])

    def peer_frame(p):
        z = torch.from_numpy(np.asarray(mapping.to_latent(p), np.float32)[None])
        with torch.inference_mode():
            torch.sigmoid(dec(z))

    ours_fps, peer_fps, every = [], [], []
    for k in range(passes):
        ours, peer = [], []
        for i, p in enumerate(points):
            if (i + k) % 2:
                peer.append(timed(lambda: peer_frame(p)))
                ours.append(timed(lambda: ours_frame(p)))
            else:
                ours.append(timed(lambda: ours_frame(p)))
                peer.append(timed(lambda: peer_frame(p)))
        ours_fps.append(len(points) / sum(ours))
        peer_fps.append(len(points) / sum(peer))
        every += ours
    med = statistics.median
    return med(ours_fps), med(peer_fps), 1e3 * float(np.percentile(every, 95))


def bench_scrub(o: Opts) -> list[dict]:
    import scrub

    from engines.latent import projection
    from engines.latent.progress import run

    engine, what = faces_engine()
    ls, _ = faces_latents()
    pca = projection.pca_projection(ls.latents)
    for _ in range(5):
        engine.decode(pca.mapping.to_latent(scrub.loop_path(2)[0])[None])
    path = scrub.loop_path(o.frames)
    rows = []
    peer_name = "same loop, decoder module called directly (alternating frames)"
    ours, peer, p95 = _drag_pair(engine, pca.mapping, path, o.drag_passes)
    rows.append(row("scrub", f"drag on the PCA plane ({o.frames} frames)", ours, "frames/s", peer=peer,
                    peer_name=peer_name, notes=f"{what}; median of {o.drag_passes} passes; p95 frame {p95:.1f} ms; target ≥ 30"))
    zu = umap_input(o)
    um = run(projection.run_umap(zu, projection.UmapParams()))  # from the cache after `projection`
    lo, hi = um.coords.min(0), um.coords.max(0)
    upath = (lo + hi) / 2 + scrub.loop_path(o.frames, 0.6) * (hi - lo) / 2 / 1.5
    ours, peer, p95 = _drag_pair(engine, um.mapping, upath, o.drag_passes)
    rows.append(row("scrub", f"drag on the UMAP map ({o.frames} frames)", ours, "frames/s", peer=peer,
                    peer_name=peer_name, notes=f"Shepard inverse over {len(zu):,} points; median of {o.drag_passes} passes; p95 frame {p95:.1f} ms"))
    return rows
