"""Every benchmark the issues asked for, in one run: one table, the machine, versions and date.

    python bench/run.py [--quick] [--only NAME ...] [--threads N] [--compare PREVIOUS.json]

Benchmarks (names for --only, run in this order):

  train       training images/s per engine at 28×28 digits and 64×64 faces;
              peer: a plain PyTorch conv AE/VAE written the usual way (bench/peers.py), scikit-learn for PCA
  quality     our VAE vs the PyTorch-examples MLP VAE and pythae's VAE, same data, same wall time,
              test −ELBO (nats/image, lower is better)
  decode      decode latency of one image and of a 16×16 grid (bundled faces VAE);
              peer: the same decoder module called directly (shows the wrapper's overhead)
  projection  PCA projection (peer: scikit-learn PCA), UMAP first run and from the cache
              (peer: umap-learn without the cache), UMAP warm recompute (peer: umap-learn directly)
  scrub       frames/s while dragging across the PCA plane and the UMAP map (map point → latent →
              decode, one frame at a time); peer: the same loop with the decoder called directly
  diffusion   digits 28: training images/s, seconds per 100 samples at 10/25/50 steps (DDIM,
              DPM-Solver++), cfid after equal training time (bench/diffusion.py); peer: diffusers'
              UNet2DModel + DDIMScheduler (bench-only: pip install diffusers)
  export      frames/s of a 512×512 MP4/GIF/PNG-sequence export of a latent walk (faces VAE),
              split into decode and encode time
  gan         inversion cost and error of the bundled faces GAN
  codebook    Codebook panel latencies on the bundled faces VQ-VAE: analysis, a painted cell's decode,
              a code's detail, a prior sample, inpainting (bench/codebook.py)
  gui         longest GUI event-loop stall while the Train panel trains (bench/gui_stall.py)

Ours and peer run in the same process, interleaved where the measurement allows it, with the same
thread count (`--threads`, default 2: torch intra-op threads and BLAS via threadpoolctl). The load
average is recorded at the start and end of the run and of each benchmark: on a machine whose
cores are busy with other work, numbers (two threads especially) can be several times slower.
`--quick` uses short durations and a UMAP subset: a smoke test, not a verdict (~3 min on idle
cores, more under load; UMAP's first-run numba compile alone takes 25–70 s). The full run takes
~15 min (the VAE quality comparison is 3 × 3 min of training).
Results go to bench/results/run-<date>.json; `--compare` prints the change against an earlier one.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import traceback
from dataclasses import asdict

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import common  # noqa: E402  (puts the project on sys.path)

PYTHAE_NOTE = ("`pip install --dry-run pythae` (0.1.2) keeps torch 2.13.0 and adds only pydantic 2, "
               "annotated-types, typing-inspection and the no-op `dataclasses` backport")


from harness import (_SHARED, Opts, dataset, faces_engine, faces_latents, fmt, interleaved,  # noqa: E402,F401
                     not_implemented, render, row, shared, timed, umap_input, vs_peer)

# ---- benchmarks ---------------------------------------------------------------------------------------------
def bench_train(o: Opts) -> list[dict]:
    import numpy as np
    import peers
    import throughput
    import torch

    import engines
    from engines.data import to_float

    device = torch.device("cpu")
    rows = []
    for data, size, ch in throughput.CASES:
        ds = dataset(data, size, ch)
        x = to_float(ds.images[ds.train_idx])
        for name in engines.names():
            case = f"{name.upper()} train, {data} {size}×{size}×{ch}"
            if name == "pca":
                from sklearn.decomposition import PCA

                n_comp = engines.create("pca", ds.spec, device="cpu").config.n_components
                flat = x.reshape(len(x), -1).numpy()
                ours_r, peer_r = [], []
                for _ in range(1 if o.quick else 2):
                    ours_r.append(throughput.measure(name, ds, device, 0)["img_per_s"])
                    peer_r.append(len(flat) / timed(lambda: PCA(n_comp, random_state=0).fit(flat)))
                rows.append(row("train", case, max(ours_r), "img/s", peer=max(peer_r),
                                peer_name=f"scikit-learn PCA({n_comp}).fit",
                                notes=f"closed-form fit of {len(x)} images, best of {len(ours_r)}"))
            elif name in peers.PLAIN:
                parts = 1 if o.quick else 2
                half = o.train_s / parts
                ours_r, peer_r, note = [], [], ""
                e_cfg = engines.create(name, ds.spec, device="cpu").config
                for _ in range(parts):
                    m = throughput.measure(name, ds, device, half)
                    ours_r.append(m["img_per_s"])
                    note = m["note"]
                    model, loss = peers.plain_model(name, ds.spec, e_cfg.latent_dim, e_cfg.width)
                    p = peers.train_throughput(model, loss, x, e_cfg.batch_size, half, lr=e_cfg.lr)
                    peer_r.append(p["img_per_s"])
                rows.append(row("train", case, float(np.mean(ours_r)), "img/s", peer=float(np.mean(peer_r)),
                                peer_name=f"plain PyTorch conv {name.upper()} (BatchNorm/ReLU, {p['note'].split(', ')[1]})",
                                notes=f"ours {note}; {parts}×{half:g} s each" + (", interleaved" if parts > 1 else "")))
            elif name == "gan":
                rows += _gan_train_rows(o, ds, x, case, device)
            else:
                m = throughput.measure(name, ds, device, o.train_s)
                rows.append(row("train", case, m["img_per_s"], "img/s", notes=m["note"] + "; no peer written yet"))
    return rows


def _gan_train_rows(o: Opts, ds, x, case: str, device) -> list[dict]:
    """Ours (default: + encoder for inversion, EMA of G, diversity indicator; and lean: without
    the encoder and EMA) against the DCGAN example's loop on the same stage plan, interleaved."""
    import numpy as np
    import peers
    import throughput
    import torch

    import engines

    c = engines.create("gan", ds.spec, device="cpu").config
    parts = 1 if o.quick else 2
    half = o.train_s / parts
    ours, lean, peer, note, pnote = [], [], [], "", ""
    for _ in range(parts):
        m = throughput.measure("gan", ds, device, half)
        ours.append(m["img_per_s"])
        note = m["note"]
        lean.append(throughput.measure("gan", ds, device, half, encoder=False, ema_decay=0.0)["img_per_s"])
        torch.manual_seed(0)
        p = peers.train_gan_throughput(peers.PlainDCGAN(ds.spec, c.latent_dim, c.width), x, c.batch_size, half, lr=c.lr)
        peer.append(p["img_per_s"])
        pnote = p["note"].split(", ")[1]
    peer_name = f"PyTorch examples' DCGAN loop on our stage plan ({pnote})"
    tail = f"{parts}×{half:g} s each" + (", interleaved" if parts > 1 else "")
    return [row("train", case, float(np.mean(ours)), "img/s", peer=float(np.mean(peer)), peer_name=peer_name,
                notes=f"ours {note}, default: also trains the inversion encoder, EMA of G, diversity indicator; {tail}"),
            row("train", case.replace("GAN train", "GAN train (no encoder, no EMA)"), float(np.mean(lean)), "img/s",
                peer=float(np.mean(peer)), peer_name=peer_name,
                notes=f"ours with encoder=false, ema_decay=0: the peer's work plus a second generator pass (fresh fakes for "
                      f"the generator step, as n_critic > 1 needs) and the diversity indicator; {tail}")]


def bench_quality(o: Opts) -> list[dict]:
    import peers
    import torch
    import vae_vs_mlp as vm

    from engines.data import to_float

    ds = dataset("digits", 28, 1)
    xtr, xte = to_float(ds.images[ds.train_idx]), to_float(ds.images[ds.test_idx])
    k, secs = o.quality_k, o.quality_s
    budget = f"{secs / 60:g} min" if secs >= 60 else f"{secs:g} s"
    case = f"VAE test −ELBO, digits 28×28, {budget} training each, vs {{}}"
    smoke = "; --quick: too short to judge quality" if o.quick else ""

    # Ours and the MLP train interleaved in 1 s slices, each for `secs` of its own time, so other
    # programs' load hits both alike.
    load0 = os.getloadavg()[0]
    ours_tr, mlp_tr = vm.OursTrainer(ds, []), vm.MLPTrainer(xtr)
    e, model = ours_tr.engine, mlp_tr.model
    rates, _ = vm.race({"ours": ours_tr, "peer": mlp_tr}, secs)
    ours_rate, rate = rates["ours"], rates["peer"]
    nelbo, niwae = e.bounds(xte, k=k, generator=torch.Generator().manual_seed(0))
    ours, ours_iwae = float(nelbo.mean()), float(niwae.mean())
    head = f"{len(xte)} test images, IWAE-{k}"

    model.eval()
    m_nelbo, m_niwae = vm.mlp_bounds(model, xte, k=k)
    rows = [row("quality", case.format("MLP VAE"), ours, "nats/img", better="lower", kind="quality", peer=m_nelbo,
                peer_name=f"PyTorch-examples MLP VAE 784-400-20 ({peers.n_params(model):,} params)",
                notes=f"{head} ours {ours_iwae:.1f} vs {m_niwae:.1f}; ours {ours_rate:.0f} img/s "
                      f"({e.n_parameters():,} params), peer {rate:.0f} img/s{smoke}",
                load_at_training=load0)]

    version = peers.pythae_version()
    if version is None:
        rows.append(row("quality", case.format("pythae"), ours, "nats/img", better="lower", kind="quality", status="skipped",
                        peer_name="pythae VAE", notes=f"pythae not installed in this venv ({PYTHAE_NOTE})"))
    else:
        pm = peers.pythae_vae(latent_dim=e.config.latent_dim)
        pr = peers.train_pythae(pm, xtr, secs, batch=e.config.batch_size, lr=e.config.lr)
        p_nelbo, p_niwae = peers.pythae_bounds(pm, xte, k=k)
        rows.append(row("quality", case.format("pythae"), ours, "nats/img", better="lower", kind="quality", peer=p_nelbo,
                        peer_name=f"pythae {version} VAE, default MLP nets ({peers.n_params(pm):,} params)",
                        notes=f"{head} ours {ours_iwae:.1f} vs {p_niwae:.1f}; peer {pr['img_per_s']:.0f} img/s, "
                              f"batch {e.config.batch_size}, Adam {e.config.lr:g}{smoke}"))
    return rows


def bench_decode(o: Opts) -> list[dict]:
    import numpy as np
    import torch

    engine, what = faces_engine()
    dec = engine.nets["decoder"].eval()
    rng = np.random.default_rng(0)
    z1 = rng.standard_normal((1, engine.latent_dim)).astype(np.float32)
    grid = rng.standard_normal((256, engine.latent_dim)).astype(np.float32)  # the cost does not depend on values
    t1, tg = torch.from_numpy(z1), torch.from_numpy(grid)

    def plain(z):
        with torch.inference_mode():
            return torch.sigmoid(dec(z))

    ours1, peer1 = interleaved(lambda: engine.decode(z1), lambda: plain(t1), o.decode_repeat, warmup=5)
    oursg, peerg = interleaved(lambda: engine.decode(grid), lambda: plain(tg), o.grid_repeat, warmup=1)
    med = statistics.median
    peer_name = "the same decoder module called directly"
    return [row("decode", f"decode 1 image, {what}", 1e3 * med(ours1), "ms", better="lower", peer=1e3 * med(peer1),
                peer_name=peer_name, notes=f"median of {len(ours1)}, interleaved"),
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
        a, b = interleaved(lambda: projection.pca_projection(z), lambda: PCA(2).fit_transform(z), 5, warmup=1)
        rows.append(row("projection", f"PCA projection, {label}", 1e3 * med(a), "ms", better="lower",
                        peer=1e3 * med(b), peer_name="scikit-learn PCA(2).fit_transform", notes="median of 5"))

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
    warm, peer = interleaved(lambda: run(projection.run_umap(zu, params, cache=False)), direct, 1)
    rows.append(row("projection", "UMAP reopened from our disk cache", cached, "s", better="lower", peer=peer[0],
                    peer_name="umap-learn fit_transform again (warm, no cache)", notes="same latents and parameters"))
    rows.append(row("projection", "UMAP warm recompute (cache off)", warm[0], "s", better="lower", peer=peer[0],
                    peer_name="umap-learn fit_transform (warm)",
                    notes="ours adds staged progress/cancel and the inverse-map index"))
    return rows


def _drag_pair(engine, mapping, points) -> tuple[float, float, float]:
    """(ours frames/s, peer frames/s, ours p95 frame ms) of the scrub loop — map point → latent →
    decode, one frame at a time, as bench/scrub.drag — through `engine.decode` (ours) and with the
    decoder module called directly (peer), alternating frame by frame so load changes hit both."""
    import numpy as np
    import torch

    dec = engine.nets["decoder"].eval()
    ours, peer = [], []
    for p in points:
        t0 = time.perf_counter()
        engine.decode(np.asarray(mapping.to_latent(p), np.float32)[None])
        t1 = time.perf_counter()
        z = torch.from_numpy(np.asarray(mapping.to_latent(p), np.float32)[None])
        with torch.inference_mode():
            torch.sigmoid(dec(z))
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        peer.append(t2 - t1)
    return len(points) / sum(ours), len(points) / sum(peer), 1e3 * float(np.percentile(ours, 95))


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
    ours, peer, p95 = _drag_pair(engine, pca.mapping, path)
    rows.append(row("scrub", f"drag on the PCA plane ({o.frames} frames)", ours, "frames/s", peer=peer,
                    peer_name=peer_name, notes=f"{what}; p95 frame {p95:.1f} ms; target ≥ 30"))
    zu = umap_input(o)
    um = run(projection.run_umap(zu, projection.UmapParams()))  # from the cache after `projection`
    lo, hi = um.coords.min(0), um.coords.max(0)
    upath = (lo + hi) / 2 + scrub.loop_path(o.frames, 0.6) * (hi - lo) / 2 / 1.5
    ours, peer, p95 = _drag_pair(engine, um.mapping, upath)
    rows.append(row("scrub", f"drag on the UMAP map ({o.frames} frames)", ours, "frames/s", peer=peer,
                    peer_name=peer_name, notes=f"Shepard inverse over {len(zu):,} points; p95 frame {p95:.1f} ms"))
    return rows


EXPORT_CASES = ("MP4 of a latent walk", "GIF of a latent walk", "PNG frame sequence")


def bench_diffusion(o: Opts) -> list[dict]:
    import diffusion

    out = []
    for r in diffusion.run(o.quick, train_s=o.diffusion_train_s):
        r = dict(r)
        out.append(row(r.pop("bench"), r.pop("case"), r.pop("ours"), r.pop("unit"), **r))
    return out


def bench_export(o: Opts) -> list[dict]:
    """Frames/s of exporting a looping slerp walk of the faces VAE at 512×512 (nearest-neighbour ×8),
    split into decode (decode + upscale + uint8 on the device) and write (video encoding / PNG
    compression) time. The issue's bar: encoding may not be the bottleneck by more than 2×."""
    import shutil
    import tempfile

    from engines.export import ExportSpec, FrameStyle, Timing, default_timeline, run_export
    from engines.latent.progress import run

    engine, what = faces_engine()
    frames = max(4, o.export_frames - o.export_frames % 4)  # whole segments of a 4-key loop
    tl = default_timeline(engine, n_keys=4, seed=0, seconds=frames / 4 / 24, fps=24)
    spec = ExportSpec("interpolate", FrameStyle.for_width(engine.spec, 512), timeline=tl)
    out_dir = tempfile.mkdtemp(prefix="bench-export-")
    rows = []
    try:
        for case, name in zip(EXPORT_CASES, ("walk.mp4", "walk.gif", "walk.png")):
            timing = Timing()
            t0 = time.perf_counter()
            r = run(run_export(engine, spec, os.path.join(out_dir, name), timing=timing))
            total = time.perf_counter() - t0
            ratio = timing.write_s / max(timing.decode_s, 1e-9)
            verdict = "OK" if ratio <= 2 else "TOO SLOW"
            w, h = r.size
            rows.append(row("export", f"export {case} ({r.frames} frames {w}×{h})", r.frames / total, "frames/s",
                            notes=f"{what}; decode {timing.decode_s:.2f} s ({r.frames / max(timing.decode_s, 1e-9):.0f}"
                                  f" frames/s), write {timing.write_s:.2f} s ({r.frames / max(timing.write_s, 1e-9):.0f}"
                                  f" frames/s): write/decode {ratio:.2f}, target ≤ 2: {verdict}",
                            decode_s=timing.decode_s, write_s=timing.write_s))
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return rows


def bench_gui(o: Opts) -> list[dict]:
    import gui_stall  # sets QT_QPA_PLATFORM=offscreen and a throwaway LATENT_EXPLORER_HOME on import
    import torch

    try:
        r = gui_stall.run(seconds=o.gui_s)
    finally:
        torch.set_num_threads(o.threads)  # the app's make_app leaves a core to the GUI thread
    t, idle = r["training"], r["idle"]
    verdict = "OK" if t["max_ms"] < 50 else "TOO SLOW"
    return [row("gui", f"longest GUI stall while training VAE {r['dataset']}", t["max_ms"], "ms", better="lower",
                notes=f"target < 50 ms: {verdict}; p99 {t['p99_ms']:.1f} ms, idle max {idle['max_ms']:.1f} ms; "
                      f"{o.gui_s:g} s, {r['steps']} steps, {r['images_per_s']:.0f} img/s on "
                      f"{r['torch_threads']} torch thread(s) (the app's own policy)")]


def bench_gan(o: Opts) -> list[dict]:
    """Inversion cost and error of the bundled faces GAN (bench/gan_inversion.py has the rest)."""
    import numpy as np

    from engines import checkpoint as ckpt

    path = os.path.join(common.ROOT, "assets", "models", "gan-faces-64.safetensors")
    case = "GAN inversion, faces 64×64 (encoder guess + optimisation)"
    if not os.path.isfile(path):
        return [row("gan", case, None, "ms/img", status="skipped", notes="no bundled GAN (assets/build_models.py gan-faces-64)")]
    engine = ckpt.load(path, device="cpu", with_optimizer=False).engine
    ds = dataset("faces", 64, 3)
    x = ds.images[ds.test_idx[: 8 if o.quick else 32]]
    t0 = time.perf_counter()
    inv = engine.invert(x)
    ms = 1000 * (time.perf_counter() - t0) / len(x)
    psnr = float(np.mean(10 * np.log10(1 / inv.mse.cpu().numpy())))
    c = engine.config
    return [row("gan", case, ms, "ms/img", better="lower",
                notes=f"{len(x)} test faces, {c.invert_steps} steps × {c.invert_restarts} starts, PSNR {psnr:.1f} dB")]


def bench_codebook(o: Opts) -> list[dict]:
    """Codebook panel latencies on the bundled faces VQ-VAE (bench/codebook.py)."""
    import codebook

    from engines import checkpoint as ckpt

    if not os.path.isfile(codebook.BUNDLED):
        return [row("codebook", "Codebook panel latencies", None, "ms", status="skipped",
                    notes="no bundled VQ-VAE (assets/build_models.py vqvae-faces-64)")]
    engine = ckpt.load(codebook.BUNDLED, device="cpu", with_optimizer=False).engine
    return [row("codebook", r["case"], r["ms"], "ms", better="lower", notes=f"bundled vqvae-faces-64; {r['note']}")
            for r in codebook.measure(engine, 200 if o.quick else 2000)]


BENCHMARKS = {
    "train": bench_train,
    "quality": bench_quality,
    "decode": bench_decode,
    "projection": bench_projection,
    "scrub": bench_scrub,
    "diffusion": bench_diffusion,
    "export": bench_export,
    "gan": bench_gan,
    "codebook": bench_codebook,
    "gui": bench_gui,
}


# ---- run, save, compare -----------------------------------------------------------------------------------
def versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("torch", "numpy", "scikit-learn", "umap-learn", "numba", "PySide6-Essentials", "pyqtgraph",
                "pythae", "diffusers"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def contention_probe(threads: int, calls: int = 100) -> dict:
    """ms per call of a decoder-sized transposed convolution with `threads` and with 1 thread.
    On idle cores more threads are at least as fast; when other jobs hold the cores, OpenMP
    threads wait for each other's time slices and `threads` can be several times slower."""
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(1, 128, 8, 8), torch.randn(128, 64, 4, 4)
    before = torch.get_num_threads()
    out = {}
    try:
        for n in sorted({threads, 1}, reverse=True):
            torch.set_num_threads(n)
            with torch.inference_mode():
                for _ in range(10):
                    F.conv_transpose2d(x, w, stride=2, padding=1)
                t0 = time.perf_counter()
                for _ in range(calls):
                    F.conv_transpose2d(x, w, stride=2, padding=1)
            out[f"ms_{n}_threads"] = 1e3 * (time.perf_counter() - t0) / calls
    finally:
        torch.set_num_threads(before)
    out["slowdown"] = out[f"ms_{threads}_threads"] / out["ms_1_threads"]
    return out


def _probe_text(p: dict, threads: int) -> str:
    if threads == 1:
        return f"{p['ms_1_threads']:.2f} ms/call"
    s = p["slowdown"]
    verdict = (f"{threads} threads {s:.1f}× SLOWER than 1: cores busy, times inflated" if s > 1.2
               else f"{threads} threads {1 / s:.1f}× faster than 1: cores free enough")
    return f"{p[f'ms_{threads}_threads']:.2f} vs {p['ms_1_threads']:.2f} ms/call ({verdict})"


def header(meta: dict) -> str:
    v = meta["versions"]
    vs = ", ".join(f"{k} {x}" for k, x in v.items() if x)
    missing = ", ".join(k for k, x in v.items() if not x)
    load = meta["load_average"]
    end = f"{load['end'][0]:.2f}" if "end" in load else "…"
    return "\n".join([
        f"Latent Explorer benchmarks — {meta['date']}{'  (--quick)' if meta['opts']['quick'] else ''}",
        f"machine: {meta['cpu']}, {meta['cores']} cores, {meta['platform']}, GPU: {meta['cuda'] or 'none (CPU run)'}",
        f"versions: {vs}" + (f" (not installed: {missing})" if missing else ""),
        f"threads: {meta['opts']['threads']} (torch intra-op, BLAS via threadpoolctl); "
        f"load average (1 min) at start {load['start'][0]:.2f}, at end {end}",
    ] + [f"contention probe at {when} (small conv, {t} vs 1 thread): {_probe_text(p, t)}"
         for when, p in meta.get("contention", {}).items() for t in [meta["opts"]["threads"]]])


def compare(previous: dict, rows: list[dict], meta: dict | None = None) -> str:
    """Change of `ours` against an earlier run's JSON, row by row (matched on benchmark and case)."""
    before = {(r["bench"], r["case"]): r for r in previous.get("rows", [])}
    out = []
    for r in rows:
        p = before.get((r["bench"], r["case"]))
        if p is None or r.get("ours") is None or p.get("ours") is None:
            continue
        new, old = r["ours"], p["ours"]
        if r["kind"] == "quality":
            d = new - old
            good = d < 0 if r["better"] == "lower" else d > 0
            change = "same" if abs(d) < 0.05 else f"{d:+.1f} {r['unit']} ({'better' if good else 'worse'})"
        elif old and new:
            f = new / old if r["better"] == "higher" else old / new  # > 1: faster now
            change = f"≈ same ({f:.2f}×)" if 0.95 < f < 1.05 else f"{f:.2g}× {'faster' if f > 1 else 'slower'}"
        else:
            change = ""
        out.append({"benchmark": r["bench"], "case": r["case"], "before": fmt(old), "now": fmt(new),
                    "unit": r["unit"], "change": change})
    pm = previous.get("meta", {})
    head = (f"compared with {pm.get('date', '?')} (threads {pm.get('opts', {}).get('threads', '?')}, "
            f"{'quick' if pm.get('opts', {}).get('quick') else 'full'} run, load at start "
            f"{(pm.get('load_average', {}).get('start') or ['?'])[0]})")
    if meta is not None:
        po, no = pm.get("opts", {}), meta.get("opts", {})
        diff = [k for k in ("quick", "threads") if k in po and po.get(k) != no.get(k)]
        if diff:
            head += f" — NOT like for like: {', '.join(diff)} differ (now {', '.join(f'{k}={no.get(k)}' for k in diff)})"
    if not out:
        return head + ": no rows in common"
    return head + "\n" + common.table(out, ["benchmark", "case", "before", "now", "unit", "change"])


def run_all(o: Opts, only: list[str] | None = None, say=print) -> tuple[dict, list[dict]]:
    import torch

    names = [n for n in BENCHMARKS if not only or n in only]
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu_name(), "cores": os.cpu_count(),
            "platform": platform.platform(), "cuda": common.machine()["cuda"], "versions": versions(),
            "opts": asdict(o), "benchmarks": {}, "load_average": {"start": list(os.getloadavg())},
            "contention": {"start": contention_probe(o.threads)}}
    rows: list[dict] = []
    for name in names:
        load0 = os.getloadavg()[0]
        say(f"[{name}] running (load average {load0:.2f}) …")
        t0 = time.perf_counter()
        try:
            got = BENCHMARKS[name](o)
        except Exception as e:  # noqa: BLE001 - one broken benchmark must not lose the others
            traceback.print_exc()
            got = [row(name, "(benchmark failed)", None, "", status="error", notes=f"{type(e).__name__}: {e}")]
        finally:
            torch.set_num_threads(o.threads)
        secs = time.perf_counter() - t0
        meta["benchmarks"][name] = {"seconds": round(secs, 1), "load_start": load0, "load_end": os.getloadavg()[0]}
        for r in got:
            r.setdefault("load_at_start", load0)
        rows += got
        say(f"[{name}] {secs:.0f} s\n{render(got)}\n")
    meta["load_average"]["end"] = list(os.getloadavg())
    meta["contention"]["end"] = contention_probe(o.threads)
    return meta, rows


def save(meta: dict, rows: list[dict], path: str | None = None) -> str:
    if path is None:
        os.makedirs(common.RESULTS, exist_ok=True)
        stamp = meta["date"].replace(":", "").replace("-", "")
        path = os.path.join(common.RESULTS, f"run-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1, default=str)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short durations (~2–3 min in all): a smoke run")
    ap.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                    help=f"run only these ({', '.join(BENCHMARKS)})")
    ap.add_argument("--threads", type=int, default=2, help="torch and BLAS threads (default 2, as the issue reports)")
    ap.add_argument("--compare", metavar="PREVIOUS.json", help="print the change against an earlier run")
    ap.add_argument("--out", help="JSON path (default bench/results/run-<date>.json)")
    a = ap.parse_args(argv)
    previous = None
    if a.compare:
        with open(a.compare) as f:
            previous = json.load(f)

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(a.threads)
    o = Opts.make(a.quick, a.threads)
    with threadpool_limits(a.threads):
        meta, rows = run_all(o, a.only, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(header(meta))
    print()
    print(render(rows))
    path = save(meta, rows, a.out)
    print(f"\nsaved {path}")
    if previous is not None:
        print()
        print(compare(previous, rows, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
