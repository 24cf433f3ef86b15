"""Training throughput (images/s) for each engine at 28×28 (digits, grey) and 64×64 (faces, RGB).

    python bench/throughput.py [--seconds 10] [--threads 2] [--device auto]
"""
from __future__ import annotations

import argparse
import time

import common
import torch

import engines
from engines.base import Batch
from engines.data import load_dataset, to_float
from engines.device import pick_device

CASES = [("digits", 28, 1), ("faces", 64, 3)]


def measure(name, ds, device, seconds, **config):
    e = engines.create(name, ds.spec, device=device, **config)
    x = to_float(ds.images[ds.train_idx]).to(device)
    if e.closed_form:
        t0 = time.perf_counter()
        e.fit(x)
        el = time.perf_counter() - t0
        return {"img_per_s": len(x) / el, "note": f"closed-form fit of {len(x)} images in {el:.2f} s"}
    bs = e.config.batch_size
    n = len(x)
    for i in range(3):  # warm-up
        e.train_step(Batch(x[(i * bs) % (n - bs):][:bs]))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    steps = 0
    while time.perf_counter() - t0 < seconds:
        i = (steps * bs) % (n - bs)
        e.train_step(Batch(x[i:i + bs]))
        steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    el = time.perf_counter() - t0
    return {"img_per_s": steps * bs / el, "note": f"batch {bs}, {e.n_parameters():,} params"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    rows = []
    for data, size, ch in CASES:
        ds = load_dataset(data, size=size, channels=ch)
        for name in engines.names():
            r = measure(name, ds, device, a.seconds)
            rows.append({"engine": name, "data": f"{data} {size}×{size}×{ch}", "device": str(device), **r})
            print(f"  {name:10s} {data} {size}: {r['img_per_s']:.0f} img/s", flush=True)
    print(common.table(rows, ["engine", "data", "device", "img_per_s", "note"]))
    print("saved", common.save("throughput", {"rows": rows}))


if __name__ == "__main__":
    main()
