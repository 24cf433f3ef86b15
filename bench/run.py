"""Every benchmark the issues asked for, in one run: one table, the machine, versions and date.

    python bench/run.py [--quick] [--only NAME ...] [--threads N] [--compare PREVIOUS.json]

Benchmarks (names for --only, run in this order):

  train       training images/s per engine at 28×28 digits and 64×64 faces;
              peers: a plain PyTorch conv AE/VAE written the usual way (bench/peers.py), scikit-learn
              for PCA, the PyTorch examples' DCGAN loop, lucidrains' VectorQuantize in our VQ-VAE's
              encoder/decoder, diffusers' UNet2DModel (also on latent diffusion's latents), normflows'
              Glow, a plain gated PixelCNN (bench/pixelcnn.py) (bench-only: pip install '.[bench]')
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
  latent_diffusion  digits 28: latent vs pixel diffusion — cfid at DDIM 25 of latent after T s of
              training against pixel after 2T s, seconds per 100 samples at 10/25 DDIM steps
              (bench/latent_diffusion.py); peer: our pixel diffusion engine
  flow        digits 28: test bits/dim after equal training time, training images/s, sampling time
              (bench/flow.py); peer: normflows' Glow (bench-only: pip install normflows)
  pixelcnn    digits 28: test bits/dim at equal training time, training images/s, seconds to sample
              4 images pixel by pixel (bench/pixelcnn.py); peer: a plain PyTorch gated PixelCNN
  export      frames/s of a 512×512 MP4/GIF/PNG-sequence export of a latent walk (faces VAE),
              split into decode and encode time
  gan         inversion cost and error of the bundled faces GAN
  directions  GANSpace and SeFa (top 8) on the bundled faces GAN and VAE (bench/directions.py); peers:
              scikit-learn PCA in the same pipeline, SeFa's np.linalg.eig(AᵀA)
  codebook    Codebook panel latencies on the bundled faces VQ-VAE: analysis, a painted cell's decode,
              a code's detail, a prior sample, inpainting (bench/codebook.py)
  gui         longest GUI event-loop stall while the Train panel trains (bench/gui_stall.py)
  datasets    time to open each downloaded public set from its cache (bench/public_sets.py); sets not
              downloaded on the machine are listed as skipped
  datasets-standin  every public set through the real pipeline on generated STAND-IN files of the
              official formats served on 127.0.0.1: first use (download + convert + open) against
              opening from the cache (bench/standin/; for machines without internet)

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
import sys
import time
import traceback
from dataclasses import asdict

BENCH = os.path.dirname(os.path.abspath(__file__))
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)

import common  # noqa: E402  (puts the project on sys.path)
from public_sets import bench_datasets, bench_datasets_standin  # noqa: E402
from directions import bench_directions  # noqa: E402
from flow import bench_flow  # noqa: E402
from app_tasks import (EXPORT_CASES, bench_codebook, bench_diffusion, bench_export, bench_gan, bench_gui,  # noqa: E402
                       bench_pixelcnn)
from harness import _SHARED, Opts, render, row  # noqa: E402
from latency import bench_decode, bench_projection, bench_scrub  # noqa: E402
from latent_diffusion import bench_latent_diffusion  # noqa: E402
from report import compare, contention_probe, cpu_name, header, versions  # noqa: E402
from training import _gan_train_rows, _plain_train_row, bench_quality, bench_train  # noqa: E402

# One module per group of benchmarks (training.py, latency.py, app_tasks.py); the names above are
# this module's API for tests/test_bench_smoke.py and for scripts.
__all__ = ["BENCHMARKS", "EXPORT_CASES", "Opts", "_SHARED", "_gan_train_rows", "_plain_train_row", "compare", "header",
           "main", "render", "row", "run_all", "save"]

BENCHMARKS = {
    "train": bench_train,
    "quality": bench_quality,
    "decode": bench_decode,
    "projection": bench_projection,
    "scrub": bench_scrub,
    "diffusion": bench_diffusion,
    "latent_diffusion": bench_latent_diffusion,
    "flow": bench_flow,
    "pixelcnn": bench_pixelcnn,
    "export": bench_export,
    "gan": bench_gan,
    "directions": bench_directions,
    "codebook": bench_codebook,
    "gui": bench_gui,
    "datasets": bench_datasets,
    "datasets-standin": bench_datasets_standin,
}


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
    ap.add_argument("--quick", action="store_true",
                    help="short durations: a smoke run (~10 min for train decode projection scrub export on "
                         "2 cores; the full run ~20 min)")
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
