"""`python bench/run.py --only diffusion export gan codebook gui`: the diffusion benchmark, export
frames/s, GAN inversion cost, Codebook panel latencies and the GUI stall while training."""
from __future__ import annotations

import os
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import time  # noqa: E402

import common  # noqa: E402  (puts the project on sys.path)
from harness import Opts, as_rows, dataset, faces_engine, row  # noqa: E402

EXPORT_CASES = ("MP4 of a latent walk", "GIF of a latent walk", "PNG frame sequence")


def bench_diffusion(o: Opts) -> list[dict]:
    import diffusion

    return as_rows(diffusion.run(o.quick, train_s=o.diffusion_train_s))


def _peer_export(engine, spec, path: str) -> int:
    """The same frames (decoded by the same render) written the usual way, one step after the
    other: imageio-ffmpeg's `write_frames` (libx264, same CRF and preset), Pillow's `save_all` of
    octree-quantized frames, Pillow's PNG `save` per frame. Returns the frame count."""
    import numpy as np
    from PIL import Image

    from engines.export.job import frame_batches

    batches, _, fps, _ = frame_batches(engine, spec)
    frames = np.concatenate(list(batches))
    if path.endswith(".mp4"):
        import imageio_ffmpeg

        from engines.export.writers import MP4_CRF, MP4_PRESET

        h, w = frames.shape[1:3]
        gen = imageio_ffmpeg.write_frames(path, (w, h), fps=fps, codec="libx264", quality=None, macro_block_size=1,
                                          output_params=["-crf", str(MP4_CRF), "-preset", MP4_PRESET],
                                          pix_fmt_out="yuv420p")
        gen.send(None)
        for f in frames:
            gen.send(np.ascontiguousarray(f))
        gen.close()
    elif path.endswith(".gif"):
        ims = [Image.fromarray(f).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
               for f in frames]
        ims[0].save(path, format="GIF", save_all=True, append_images=ims[1:], duration=40, disposal=1, loop=0)
    else:
        os.makedirs(path[:-4], exist_ok=True)
        for i, f in enumerate(frames):
            Image.fromarray(f).save(os.path.join(path[:-4], f"frame_{i:05d}.png"))
    return len(frames)


def bench_pixelcnn(o: Opts) -> list[dict]:
    import pixelcnn

    return as_rows(pixelcnn.run(o.quick, train_s=None if o.quick else o.diffusion_train_s))


def bench_export(o: Opts) -> list[dict]:
    """Frames/s of exporting a looping slerp walk of the faces VAE at 512×512 (nearest-neighbour ×8),
    split into decode (decode + upscale + uint8 on the device) and write (the writer's own time:
    video encoding / GIF quantizing / PNG compression, in its thread while the next batch decodes).
    The issue's bar: write/decode ≤ 2. Peer: the same frames decoded, then written with the plain
    library calls (`_peer_export`), alternating with ours."""
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
    from engines.export.writers import MP4_CRF, MP4_PRESET

    peer_names = {"walk.mp4": f"imageio-ffmpeg write_frames (libx264, CRF {MP4_CRF}, {MP4_PRESET}: the writer's own settings)",
                  "walk.gif": "Pillow quantize (fast octree) + save_all", "walk.png": "Pillow save per frame"}
    # Both warmed up first, by a 4-frame export each: otherwise the first case's first run (ours,
    # which goes first) pays the process's one-time costs (the decoder's first calls, loading
    # ffmpeg) and the peer after it does not — in a --quick run, MP4 read 0.5× from that alone.
    warm = ExportSpec("interpolate", spec.style, timeline=default_timeline(engine, n_keys=4, seed=0,
                                                                          seconds=1 / 24, fps=24))
    try:
        for name in ("walk.mp4", "walk.gif", "walk.png"):
            run(run_export(engine, warm, os.path.join(out_dir, f"warm-{name}")))
            _peer_export(engine, warm, os.path.join(out_dir, f"warm-peer-{name}"))
        for case, name in zip(EXPORT_CASES, ("walk.mp4", "walk.gif", "walk.png")):
            repeats = 1 if o.quick else 3  # best of 2 swung the MP4 row between 0.90x and 0.98x
            best, peer_best, timing = 0.0, 0.0, None
            for rep in range(repeats):  # ours and the peer alternate; the best of each
                t_ = Timing()
                t0 = time.perf_counter()
                r = run(run_export(engine, spec, os.path.join(out_dir, f"{rep}-{name}"), timing=t_))
                fps = r.frames / (time.perf_counter() - t0)
                if fps > best:
                    best, timing = fps, t_
                t0 = time.perf_counter()
                n = _peer_export(engine, spec, os.path.join(out_dir, f"peer{rep}-{name}"))
                peer_best = max(peer_best, n / (time.perf_counter() - t0))
            ratio = timing.write_s / max(timing.decode_s, 1e-9)
            verdict = "OK" if ratio <= 2 else "TOO SLOW"
            w, h = r.size
            wall = timing.extra.get("wall_s", 0.0)
            rows.append(row("export", f"export {case} ({r.frames} frames {w}×{h})", best, "frames/s",
                            peer=peer_best, peer_name=peer_names[name],
                            notes=f"{what}; decode {timing.decode_s:.2f} s ({r.frames / max(timing.decode_s, 1e-9):.0f}"
                                  f" frames/s), write {timing.write_s:.2f} s ({r.frames / max(timing.write_s, 1e-9):.0f}"
                                  f" frames/s, in a thread), wall {wall:.2f} s: write/decode {ratio:.2f}, "
                                  f"target ≤ 2: {verdict}; best of {repeats}",
                            decode_s=timing.decode_s, write_s=timing.write_s, wall_s=wall))
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
