"""`python main.py` with no arguments: the desktop app."""
from __future__ import annotations

import sys


def make_app(argv: list[str] | None = None):
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("Latent Explorer")
    app.setOrganizationName("latent-explorer")
    app.setStyle("Fusion")
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=True, background="w", foreground="#222")
    return app


def main(argv: list[str] | None = None) -> int:
    app = make_app(argv)
    from .window import MainWindow

    window = MainWindow()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
