"""Render assets/icons/latent-explorer.svg to the PNG sizes desktops ask for (16–512 px):
`python assets/build_icons.py` (Qt's SVG renderer, offscreen)."""
import os
import sys

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "icons")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(os.path.join(HERE, "latent-explorer.svg"))
    for n in SIZES:
        img = QImage(n, n, QImage.Format.Format_ARGB32)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(p)
        p.end()
        out = os.path.join(HERE, f"latent-explorer-{n}.png")
        if not img.save(out):
            print(f"could not write {out}", file=sys.stderr)
            return 2
    print(f"wrote {len(SIZES)} PNGs to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
