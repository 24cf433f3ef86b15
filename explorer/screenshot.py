"""`python main.py screenshot --panel NAME [--model F] --out file.png`: render a panel offscreen.

Opens the window offscreen at a fixed size with settings kept in a throwaway folder (the user's
own settings are not touched), optionally loads a checkpoint, optionally trains for a few seconds
in the Train panel so its curves and samples show real content, and saves `window.grab()`.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time


class ScreenshotError(ValueError):
    pass


def _wait(app, until, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if until():
            return True
        time.sleep(0.01)
    return until()


def prepare_panel(app, win, panel: str, train_seconds: float = 0.0, options: dict | None = None,
                  wait_s: float = 300.0):
    """Show `panel` in `win` (its model loaded or loading) and wait until it shows its real content
    (see `render`); returns the panel. The layout tests use it too."""
    win.show_panel(panel)
    _wait(app, lambda: not win.session.loading, 60)
    p = win.panels[panel]
    if panel == "train":
        _wait(app, lambda: not p.data_box.loading, 60)
        if train_seconds > 0:
            if p.start():
                _wait(app, lambda: False, train_seconds)
                p.pause_btn.click() if p.state == "running" else None
                _wait(app, lambda: p.state == "paused", 10)
                p.refresh_preview()
                _wait(app, lambda: not p._sampler.busy, 20)
                _wait(app, lambda: False, 0.6)  # let the plot redraw
    ready = getattr(p, "ready_for_screenshot", None)
    if ready is not None:
        _wait(app, ready, wait_s)
        if hasattr(p, "prepare_screenshot"):  # without options a panel shows its default content
            p.prepare_screenshot(**(options or {}))
            _wait(app, lambda: False, 0.3)
            _wait(app, ready, wait_s)
    _wait(app, lambda: False, 0.5)
    return p


def render(panel: str, out: str, model: str | None = None, size: tuple[int, int] = (1280, 800),
           train_seconds: float = 0.0, data: str | None = None, whole_window: bool = True,
           data_size: int | None = None, options: dict | None = None, wait_s: float = 300.0) -> str:
    """`options` go to the panel's `prepare_screenshot(**options)` once it has content (e.g. the
    Manifold panel's `view="atlas"`); panels with `ready_for_screenshot()` are waited for (at most
    `wait_s`) so the picture shows their real content, not a loading state."""
    if not out.lower().endswith(".png"):
        raise ScreenshotError("--out must end in .png")
    if model and not os.path.isfile(model):
        raise ScreenshotError(f"{model}: no such file")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = None
    if not os.environ.get("LATENT_EXPLORER_HOME"):
        home = tempfile.mkdtemp(prefix="latent-explorer-shot-")
        os.environ["LATENT_EXPLORER_HOME"] = home
    from explorer import panels, workers
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    if panel not in panels.names():
        raise ScreenshotError(f"unknown panel '{panel}' (available: {', '.join(panels.names())})")
    app = make_app([sys.argv[0]])
    settings = Settings(tip_dismissed=True)  # the pictures show the panels, not the first launch's tip
    if data:
        settings.train = {"data": data, "size": data_size}
    win = MainWindow(settings=settings, auto_load=not model)
    win.resize(*size)
    win.show_panel(panel)
    win.show()
    _wait(app, lambda: not win.library.scanning, 20)
    if model:
        win.open_path(model)
        if win.errors:
            raise ScreenshotError(win.errors[-1][1])
    if data and panel != "train":  # the data the model's panels map and use, instead of its own
        _wait(app, lambda: not win.session.loading, 60)
        ws = win.ctx.workspace
        if ws is None:
            raise ScreenshotError("--data for this panel needs a model (--model)")
        ws.request_data(data)
    p = prepare_panel(app, win, panel, train_seconds, options, wait_s)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    ok = (win if whole_window else p).grab().save(out)
    if panel == "train" and p.running:
        p.cancel()
    for pn in win.panels.values():
        pn.shutdown()
    workers.wait_all(60_000)
    win.close()
    if not ok:
        raise ScreenshotError(f"{out}: could not write the PNG")
    return out


def render_compare(models: list[str], out: str, size: tuple[int, int] = (1280, 800), n_metrics: int | None = None,
                   hover: int | None = 0, wait_s: float = 1800.0) -> str:
    """The Compare window over `models` (2 to 4 checkpoints), once its comparison has finished;
    `hover`: hover the first map's point nearest this data point (its index on the map's list of
    points), so the picture shows the linked rings."""
    if not out.lower().endswith(".png"):
        raise ScreenshotError("--out must end in .png")
    for m in models:
        if not os.path.isfile(m):
            raise ScreenshotError(f"{m}: no such file")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if not os.environ.get("LATENT_EXPLORER_HOME"):
        os.environ["LATENT_EXPLORER_HOME"] = tempfile.mkdtemp(prefix="latent-explorer-shot-")
    from explorer import workers
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    app = make_app([sys.argv[0]])
    win = MainWindow(settings=Settings(tip_dismissed=True), auto_load=False)
    _wait(app, lambda: not win.library.scanning, 20)
    for m in models:
        if win.library.entry(m) is None:
            win.library.add_opened(m)
    _wait(app, lambda: not win.library.scanning, 20)
    win.open_compare([os.path.abspath(m) for m in models])
    cw = win.compare_window
    cw.set_checked([e.path for m in models for e in [win.library.entry(m)] if e is not None])
    cw.resize(*size)
    if n_metrics:
        cw.n_samples.setValue(n_metrics)
    if not cw.start():
        raise ScreenshotError(cw.errors[-1] if cw.errors else "the comparison did not start")
    _wait(app, lambda: not cw.running, wait_s)
    if cw.view.comparison is None:
        raise ScreenshotError(cw.errors[-1] if cw.errors else "the comparison did not finish")
    _wait(app, lambda: False, 0.5)
    maps = [m for m in cw.view.maps if len(m.coords)]
    if hover is not None and maps:
        from PySide6.QtCore import QPoint, QPointF
        from PySide6.QtTest import QTest

        lm = maps[0]
        x, y = lm.coords[min(hover, len(lm.coords) - 1)]
        p = lm.mapFromScene(lm.vb.mapViewToScene(QPointF(float(x), float(y))))
        QTest.mouseMove(lm.viewport(), QPoint(int(p.x()), int(p.y())))
        _wait(app, lambda: False, 0.5)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    ok = cw.grab().save(out)
    cw.close()
    win.shutdown()
    workers.wait_all(60_000)
    win.close()
    if not ok:
        raise ScreenshotError(f"{out}: could not write the PNG")
    return out


HELP = "render a panel of the app offscreen to a PNG"


def build_parser():
    from engines.cli.common import _Parser

    from explorer import panels

    p = _Parser(prog="main.py screenshot", description=HELP[0].upper() + HELP[1:] + ".")
    p.add_argument("--panel", default="train", help=f"one of: {', '.join(panels.names())}")
    p.add_argument("--model", help="checkpoint to load first")
    p.add_argument("--out", required=True, help="file.png")
    p.add_argument("--size", default="1280x800", help="window size WIDTHxHEIGHT")
    p.add_argument("--train-seconds", type=float, default=0.0, help="Train panel: train this long first")
    p.add_argument("--data", help="data set: the Train panel's choice; for the other panels, the data the "
                                  "model's map and vectors use instead of its training data")
    p.add_argument("--data-size", type=int, help="Train panel: resize the data set's images to N×N")
    p.add_argument("--panel-only", action="store_true", help="grab the panel, not the whole window")
    p.add_argument("--compare", nargs="+", metavar="CHECKPOINT",
                   help="instead of a panel: the Compare window over these 2 to 4 checkpoints, once compared")
    p.add_argument("--compare-n", type=int, help="--compare: samples the FD, precision and recall use")
    return p


def main(argv: list[str] | None = None) -> int:
    """`python main.py screenshot …` (the repository's main.py dispatches here). Usage errors exit
    with status 2 and one line on stderr, like the headless commands."""
    from engines.cli.common import USAGE_ERROR

    a = build_parser().parse_args(argv)
    try:
        try:
            w, h = (int(v) for v in a.size.lower().split("x"))
        except ValueError:
            raise ScreenshotError(f"--size expects WIDTHxHEIGHT, got '{a.size}'") from None
        if a.compare:
            path = render_compare(a.compare, a.out, (w, h), n_metrics=a.compare_n)
        else:
            path = render(a.panel, a.out, a.model, (w, h), a.train_seconds, a.data, whole_window=not a.panel_only,
                          data_size=a.data_size)
    except ScreenshotError as e:
        sys.stderr.write(f"error: {str(e).splitlines()[0]}\n")
        return USAGE_ERROR
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
