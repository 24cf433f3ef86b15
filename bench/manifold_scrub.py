"""Scrub frames/s in the Manifold panel itself (not just the decoder): the real window offscreen,
the bundled faces VAE, N cursor moves through the map view's own drag handler at a fixed mouse
rate, events processed between moves. Counts decoded frames shown, paints of the big image and
the GUI thread's longest event batch.

    python bench/manifold_scrub.py [--model F] [--moves 100] [--interval-ms 10]

bench/scrub.py measures the decoder alone; this adds everything the panel does per frame (the
LatestRequestRunner hand-off, drawing the image and cursor, history, throttled inspection).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import common  # noqa: F401  (puts the project on sys.path)
import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("LATENT_EXPLORER_HOME", tempfile.mkdtemp(prefix="manifold-bench-"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(common.ROOT, "assets", "models", "vae-faces-64.safetensors"))
    ap.add_argument("--moves", type=int, default=100)
    ap.add_argument("--interval-ms", type=float, default=10.0, help="time between mouse moves (10 ms = 100 Hz)")
    a = ap.parse_args()

    import torch
    from PySide6.QtCore import QEvent, QObject

    from explorer.app import make_app
    from explorer.screenshot import _wait
    from explorer.settings import Settings
    from explorer.window import MainWindow

    app = make_app()
    w = MainWindow(Settings(), auto_load=False)
    w.resize(1280, 800)
    w.show_panel("manifold")
    w.show()
    _wait(app, lambda: not w.library.scanning, 20)
    w.open_path(a.model)
    p = w.panels["manifold"]
    _wait(app, p.ready_for_screenshot, 600)

    class Paints(QObject):
        n = 0

        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.Paint:
                self.n += 1
            return False

    paints = Paints()
    p.inspector.image.installEventFilter(paints)
    frames0, paints0 = p.frames_shown, paints.n
    t = np.linspace(0, 2 * np.pi, a.moves)
    pts = np.stack([1.5 * np.cos(t), 1.5 * np.sin(2 * t)], 1)  # a figure eight across the map
    longest = 0.0
    t0 = time.perf_counter()
    p.map._drag("start", *pts[0])
    for x, y in pts:
        until = time.perf_counter() + a.interval_ms / 1000
        p.map._drag("move", x, y)
        while time.perf_counter() < until:
            b = time.perf_counter()
            app.processEvents()
            longest = max(longest, time.perf_counter() - b)
            time.sleep(0.0005)
    p.map._drag("end", *pts[-1])
    seconds = time.perf_counter() - t0
    _wait(app, lambda: not p.busy, 10)
    frames, painted = p.frames_shown - frames0, paints.n - paints0
    print(f"{os.path.basename(a.model)}, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{a.moves} moves in {seconds:.2f} s: {frames} decoded frames shown ({frames / seconds:.1f}/s), "
          f"{painted} paints of the image ({painted / seconds:.1f}/s); longest GUI-thread event batch "
          f"{1e3 * longest:.0f} ms")
    w.shutdown()
    w.close()


if __name__ == "__main__":
    main()
