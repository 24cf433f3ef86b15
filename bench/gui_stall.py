"""How long can the GUI thread stall while the Train panel trains? (target: < 50 ms on CPU)

Starts the window offscreen, starts a training run through the Train panel (VAE on digits 28×28
by default), and records the gaps between ticks of a 5 ms QTimer on the GUI thread for ~20 s.
A gap is how long the event loop could not react; sample refreshes, progress signals and plot
redraws all happen during the run. Prints a table and saves bench/results/gui_stall.json.

    python bench/gui_stall.py [--seconds 20] [--data digits] [--size 28] [--engine vae]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from common import save, table  # importing common puts the project on sys.path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["LATENT_EXPLORER_HOME"] = tempfile.mkdtemp(prefix="gui-stall-")


def worst(gaps: list[float], k: int = 5) -> list[tuple[float, float]]:
    """The k longest gaps as (seconds into the measurement, ms)."""
    import numpy as np

    at = np.cumsum(gaps) / 1000
    order = np.argsort(gaps)[::-1][:k]
    return [(round(float(at[i]), 2), round(float(gaps[i]), 1)) for i in sorted(order)]


def measure(app, seconds: float, tick_ms: int = 5) -> list[float]:
    from PySide6.QtCore import QTimer

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(1000 * (now - last[0]))
        last[0] = now

    timer = QTimer()
    timer.setInterval(tick_ms)
    timer.timeout.connect(tick)
    timer.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return gaps[1:]


def stats(gaps: list[float]) -> dict:
    import numpy as np

    g = np.asarray(gaps)
    return {"ticks": len(g), "max_ms": float(g.max()), "p99_ms": float(np.percentile(g, 99)),
            "p50_ms": float(np.percentile(g, 50)), "over_50ms": int((g > 50).sum())}


def run(seconds: float = 20, data: str = "digits", size: int = 28, engine: str = "vae") -> dict:
    """Open the window offscreen, train through the Train panel for `seconds`, and return the
    idle and training gap statistics (bench/run.py calls this; `main` prints and saves it)."""
    from explorer.app import make_app, settle_heap, warm_up
    from explorer.settings import Settings
    from explorer.window import MainWindow

    app = make_app([sys.argv[0]])
    runs = tempfile.mkdtemp(prefix="gui-stall-runs-")
    win = MainWindow(Settings(train={"data": data, "size": size, "engine": engine}, runs_dir=runs), auto_load=False)
    win.show()
    panel = win.panels["train"]
    t0 = time.perf_counter()
    while (panel.data_box.loading or panel.data_box.dataset is None) and time.perf_counter() - t0 < 120:
        app.processEvents()
        time.sleep(0.01)
    if panel.data_box.dataset is None:
        win.shutdown()
        win.close()
        raise RuntimeError(f"cannot load {data}: {panel.data_box.last_error}")
    ds = panel.data_box.dataset
    warm_up()  # as explorer.app.main does (in a worker) once the window is up
    settle_heap()
    idle = stats(measure(app, 3))
    panel.epochs.setValue(10_000)
    progress = []
    panel.progress.connect(progress.append)
    assert panel.start(), panel.status.text()
    gaps = measure(app, seconds)
    training = stats(gaps)
    panel.cancel()
    while panel.running:
        app.processEvents()
        time.sleep(0.01)
    rates = [p.images_per_s for p in progress if p.state == "running" and p.images_per_s > 0]
    steps = progress[-1].step if progress else 0
    win.shutdown()
    win.close()
    import torch

    return {"dataset": f"{ds.name} {ds.spec}", "idle": idle, "training": training,
            "images_per_s": rates[-1] if rates else 0.0, "steps": steps, "progress_signals": len(progress),
            "worst_gaps": worst(gaps), "torch_threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--engine", default="vae")
    a = ap.parse_args()

    try:
        r = run(a.seconds, a.data, a.size, a.engine)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    idle, training, img_s, steps = r["idle"], r["training"], r["images_per_s"], r["steps"]
    rows = [{"phase": "idle", **idle}, {"phase": f"training {a.engine} on {r['dataset']}", **training}]
    print(table(rows, ["phase", "ticks", "max_ms", "p99_ms", "p50_ms", "over_50ms"]))
    print(f"training: {steps} steps in {a.seconds:.0f} s, {img_s:.0f} img/s, "
          f"{r['progress_signals']} progress signals ({r['progress_signals'] / a.seconds:.1f}/s)")
    print("longest gaps (s into the run, ms):", r["worst_gaps"])
    load = r["load_average"]
    if load is not None:
        print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores")
    verdict = "OK" if training["max_ms"] < 50 else "TOO SLOW"
    print(f"longest GUI stall while training: {training['max_ms']:.1f} ms (target < 50 ms): {verdict}")
    path = save("gui_stall", {"args": vars(a), "idle": idle, "training": training, "images_per_s": img_s,
                              "steps": steps, "progress_signals": r["progress_signals"],
                              "worst_gaps": r["worst_gaps"], "load_average": load})
    print(f"saved {path}")
    return 0 if training["max_ms"] < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
