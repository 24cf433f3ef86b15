"""`python main.py` with no arguments: the desktop app."""
from __future__ import annotations

import sys


def share_cpu() -> int:
    """Leave one core to the GUI thread: torch's intra-op threads get the others (at least one).

    Training, rendering and the event loop share the CPU; with every core given to one
    training step, the GUI stalls and the step itself slows down (measured in bench/gui_stall.py)."""
    import os

    import torch

    n = max(1, (os.cpu_count() or 2) - 1)
    if torch.get_num_threads() > n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def app_icon():
    """The application icon (assets/icons: the SVG plus PNGs 16–512 px, so every size is sharp)."""
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon

    from explorer import desktop

    icon = QIcon()
    for n in desktop.PNG_SIZES:
        icon.addFile(desktop.icon_path(n), QSize(n, n))
    return icon


def make_app(argv: list[str] | None = None):
    import os

    # X11 WM_CLASS is (instance, class): the instance comes from RESOURCE_NAME (else argv[0], which
    # would be "main.py"), the class from the application name; Wayland's app id is the desktop
    # file name. All three are "latent-explorer", as the desktop entry's StartupWMClass says.
    os.environ.setdefault("RESOURCE_NAME", "latent-explorer")
    from PySide6.QtWidgets import QApplication

    share_cpu()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("latent-explorer")
    app.setApplicationDisplayName("Latent Explorer")
    app.setOrganizationName("latent-explorer")
    app.setDesktopFileName("latent-explorer")
    app.setWindowIcon(app_icon())
    app.setStyle("Fusion")
    import pyqtgraph as pg

    # Antialiased curves cost 3x the paint time in Qt's software rasteriser (bench/gui_stall.py).
    pg.setConfigOptions(antialias=False, background="w", foreground="#222")
    return app


def warm_up() -> None:
    """Import everything a first training step and a first render pull in (torch's optimizer
    step alone imports ~800 modules lazily) by running both on a tiny model. Safe in a worker."""
    import engines
    import engines.checkpoint  # noqa: F401
    import engines.train  # noqa: F401
    from engines.spec import ImageSpec

    for name in engines.names():
        engines.engine_class(name)
    e = engines.create("vae", ImageSpec(1, 8, 8), device="cpu", latent_dim=2, width=4)
    import torch

    e.train_step(torch.rand(2, 1, 8, 8))
    e.sample(2)


def settle_heap() -> None:
    """Collect once, then exempt everything alive from future collections (gc.freeze).

    Startup leaves a million objects (torch, Qt, pyqtgraph) that the cyclic garbage collector
    would otherwise rescan in every full collection — a 100–300 ms pause of *all* threads, the
    GUI's included, whenever a worker happens to trigger one. Call after `warm_up`, on the GUI
    thread, while nothing else runs."""
    import gc

    gc.collect()
    gc.freeze()


def start_warm_up() -> None:
    """warm_up in a worker, then settle_heap on the GUI thread: the window is usable at once."""
    from explorer.workers import run_in_thread

    run_in_thread(warm_up, on_result=lambda _r: settle_heap(), on_error=lambda _e: settle_heap())


def main(argv: list[str] | None = None, files: list[str] = ()) -> int:
    """The app; `files`: checkpoints (and sessions) to open, e.g. from a double-click."""
    app = make_app(argv)
    from explorer.window import MainWindow

    window = MainWindow(auto_load=not files)
    window.show()
    for path in files:
        window.open_file(path)
    start_warm_up()
    _close_on_ctrl_c(window)
    return app.exec()


def _close_on_ctrl_c(window) -> None:
    """Ctrl-C in the terminal closes the window properly (settings saved, training cancelled)."""
    import signal

    from PySide6.QtCore import QTimer

    signal.signal(signal.SIGINT, lambda *_: window.close())
    timer = QTimer(window)  # Python only runs signal handlers when the interpreter gets control
    timer.timeout.connect(lambda: None)
    timer.start(250)


if __name__ == "__main__":
    sys.exit(main())
