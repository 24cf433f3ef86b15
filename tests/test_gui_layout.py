"""Layout at the sizes the app promises (1024×700 and 1280×800, the model library shown): every
panel, with a bundled model loaded and its content ready (as `main.py screenshot` prepares it),
shows no text that needs more room than its widget has and no two texts on top of each other;
the window can shrink to 1024×700; splitter positions survive closing and reopening the window."""
import os

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QPoint, QRect, Qt  # noqa: E402
from PySide6 import QtGui  # noqa: E402
from PySide6.QtGui import QTextDocument  # noqa: E402
from PySide6.QtWidgets import (QAbstractButton, QCheckBox, QGroupBox, QLabel, QPushButton, QRadioButton,  # noqa: E402
                               QSplitter, QStyle, QTabWidget, QWidget)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "assets", "models")
SIZES = ((1024, 700), (1280, 800))
MODEL_FOR = {"codebook": "vqvae-faces-64", "diffusion": "diffusion-digits-28"}  # the rest: vae-faces-64
SLACK = 1  # px: rounding between font metrics and layout


def _plain_lines(text: str, rich: bool, font) -> tuple[list[str], float | None]:
    if not rich:
        return text.replace("&&", "\0").replace("&", "").replace("\0", "&").split("\n"), None
    doc = QTextDocument()
    doc.setDefaultFont(font)
    doc.setDocumentMargin(0)
    doc.setHtml(text)
    return doc.toPlainText().split("\n"), doc.idealWidth()


def _label_problem(lab: QLabel) -> str | None:
    text = lab.text()
    if not text or lab.pixmap() is not None and not lab.pixmap().isNull():
        return None
    cr = lab.contentsRect()
    indent = max(lab.indent(), 0) if lab.indent() > 0 else 0
    room = cr.width() - 2 * lab.margin() - indent
    if lab.wordWrap():
        need_h = lab.heightForWidth(lab.width())
        if need_h > lab.height() + SLACK:
            return f"word-wrapped text needs {need_h} px of height, has {lab.height()}"
        return None
    fm = lab.fontMetrics()
    rich = lab.textFormat() == Qt.TextFormat.RichText or (
        lab.textFormat() == Qt.TextFormat.AutoText and QtGui.Qt.mightBeRichText(text))
    lines, ideal = _plain_lines(text, rich, lab.font())
    need = ideal if ideal is not None else max(fm.horizontalAdvance(line) for line in lines)
    if need > room + SLACK:
        return f"text needs {need:.0f} px, has {room}"
    need_h = fm.height() if ideal is None else 0
    if need_h > cr.height() + SLACK:
        return f"text needs {need_h} px of height, has {cr.height()}"
    return None


def _button_problem(b: QAbstractButton) -> str | None:
    text = b.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
    if not text:
        return None
    fm = b.fontMetrics()
    need = fm.horizontalAdvance(text)
    style = b.style()
    if isinstance(b, (QCheckBox, QRadioButton)):
        metric = QStyle.PixelMetric
        need += style.pixelMetric(metric.PM_IndicatorWidth, None, b) + style.pixelMetric(
            metric.PM_CheckBoxLabelSpacing, None, b)
    elif isinstance(b, QPushButton):
        need += 2 * style.pixelMetric(QStyle.PixelMetric.PM_ButtonMargin, None, b) // 2
        if not b.icon().isNull():
            need += b.iconSize().width() + 4
        if b.menu() is not None:
            need += style.pixelMetric(QStyle.PixelMetric.PM_MenuButtonIndicator, None, b)
    else:
        return None
    if need > b.width() + SLACK:
        return f"text needs {need} px, has {b.width()}"
    return None


def _group_problem(g: QGroupBox) -> str | None:
    title = g.title().replace("&&", "\0").replace("&", "").replace("\0", "&")
    if not title:
        return None
    need = g.fontMetrics().horizontalAdvance(title) + (20 if g.isCheckable() else 0) + 8
    return f"title needs {need} px, has {g.width()}" if need > g.width() + SLACK else None


def _shown_rect(w: QWidget, win: QWidget) -> QRect:
    """The part of `w` on screen, in window coordinates (empty when scrolled out of view)."""
    r = w.visibleRegion().boundingRect()
    if r.isEmpty():
        return QRect()
    return QRect(w.mapTo(win, r.topLeft()), r.size())


def _name(w: QWidget) -> str:
    text = w.text() if hasattr(w, "text") else w.title() if isinstance(w, QGroupBox) else ""
    chain, p = [], w
    while p is not None and len(chain) < 4:
        chain.append(type(p).__name__ + (f"#{p.objectName()}" if p.objectName() else ""))
        p = p.parentWidget()
    return f"{' < '.join(chain)} {text[:70]!r}"


def layout_problems(win: QWidget) -> list[str]:
    """Every visible text that would be elided or cut, and every two visible texts that overlap."""
    problems = []
    texts = []
    for w in win.findChildren(QWidget):
        if not w.isVisible() or w.window() is not win or _shown_rect(w, win).isEmpty():
            continue
        if isinstance(w, QLabel):
            why = _label_problem(w)
            if w.text():
                texts.append(w)
        elif isinstance(w, QAbstractButton):
            why = _button_problem(w)
            if w.text():
                texts.append(w)
        elif isinstance(w, QGroupBox):
            why = _group_problem(w)
        else:
            continue
        shown = _shown_rect(w, win)
        if not why and shown.width() < w.width() - SLACK:  # e.g. a scroll area narrower than its content
            why = f"cut by its container: {shown.width()} of its {w.width()} px shown"
        if why:
            problems.append(f"{_name(w)}: {why}")
    # A text against every other text, and against the widgets beside it (same parent: e.g. a
    # caption and the image strip under it).
    rects = {w: _shown_rect(w, win) for w in texts}
    seen = set()
    for a, ra in rects.items():
        parent = a.parentWidget()
        siblings = [w for w in parent.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
                    if w.isVisible() and w.isWindow() is False] if parent is not None else []
        for b in [*rects, *siblings]:
            if b is a or a.isAncestorOf(b) or b.isAncestorOf(a) or frozenset((a, b)) in seen:
                continue
            seen.add(frozenset((a, b)))
            inter = ra.intersected(rects.get(b) or _shown_rect(b, win))
            if inter.width() > SLACK and inter.height() > SLACK:
                problems.append(f"{_name(a)} overlaps {_name(b)} ({inter.width()}×{inter.height()} px)")
    return problems


def panel_problems(app, win, panel) -> list[str]:
    """`layout_problems` with the panel's inner tabs (e.g. Diffusion's Forward, Reverse) shown in
    turn; the tabs are left as they were."""
    from explorer.screenshot import _wait

    found = list(layout_problems(win))
    for tw in panel.findChildren(QTabWidget):
        before = tw.currentIndex()
        for i in range(tw.count()):
            if i == before:
                continue
            tw.setCurrentIndex(i)
            _wait(app, lambda: False, 0.15)
            if tw.isVisible():
                found += [f"[{tw.tabText(i)}] {p}" for p in layout_problems(win) if p not in found]
        tw.setCurrentIndex(before)
    _wait(app, lambda: False, 0.05)
    return list(dict.fromkeys(found))


def _panel_order():
    from explorer import panels

    names = panels.names()
    return sorted(names, key=lambda n: (MODEL_FOR.get(n, "vae-faces-64"), names.index(n)))


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))
    make_app()
    settings = Settings(runs_dir=str(tmp_path / "runs"))
    if hasattr(settings, "tip_dismissed"):  # as `main.py screenshot`: the panels, not the first launch's tip
        settings.tip_dismissed = True
    w = MainWindow(settings, auto_load=False)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.shutdown(30_000)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_panel_fits_at(qtbot, window, size):
    from PySide6.QtWidgets import QApplication

    from explorer.screenshot import prepare_panel

    app = QApplication.instance()
    win = window
    assert win.library_dock.isVisible()
    win.resize(*size)
    qtbot.waitUntil(lambda: win.size().toTuple() == size, timeout=5_000)
    problems, loaded = [], None
    for name in _panel_order():
        model = MODEL_FOR.get(name, "vae-faces-64")
        if model != loaded:
            win.open_path(os.path.join(MODELS, f"{model}.safetensors"))
            loaded = model
        panel = prepare_panel(app, win, name, wait_s=60)
        assert win.session.engine is not None and not win.errors, win.errors
        assert win.size().toTuple() == size, f"{name}: the window grew to {win.size().toTuple()}"
        problems += [f"{name}: {p}" for p in panel_problems(app, win, panel)]
    assert not problems, f"at {size[0]}×{size[1]}:\n" + "\n".join(problems)


def test_window_shrinks_to_1024x700_with_the_library_shown(window):
    win = window
    assert win.library_dock.isVisible()
    hint = win.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700, hint.toTuple()
    win.resize(1024, 700)
    assert win.size().toTuple() == (1024, 700)


def test_splitter_positions_survive_a_restart(qtbot, tmp_path, monkeypatch):
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))
    make_app()
    settings = Settings(runs_dir=str(tmp_path / "runs"))

    def splitters(w):
        return {p.name: p.findChildren(QSplitter) for p in w.panels.values() if p.findChildren(QSplitter)}

    w = MainWindow(settings, auto_load=False)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show_panel("codebook")
    w.show()
    qtbot.waitUntil(lambda: w.library_dock.isVisible() and w.library_dock.width() > 0)
    qtbot.wait(200)
    found = splitters(w)
    assert found, "no panel has a splitter"
    moved = {}
    for name, ss in found.items():
        for i, s in enumerate(ss):
            sizes = s.sizes()
            total = sum(sizes)
            if len(sizes) < 2 or total <= 0:
                continue
            want = [total // 3, total - total // 3] + [0] * (len(sizes) - 2)
            s.setSizes(want)
            moved[(name, i)] = s.sizes()
    assert moved
    w.close()
    settings = Settings.from_dict(settings.to_dict())  # as written to and read from the file
    w2 = MainWindow(settings, auto_load=False)
    qtbot.addWidget(w2)
    # The offscreen screen is small: restoreGeometry fits the window into it. Same size as before,
    # so that the splitters can be compared pixel for pixel.
    w2.resize(w.size())
    w2.show()
    qtbot.waitUntil(lambda: w2.library_dock.isVisible() and w2.library_dock.width() > 0)
    qtbot.wait(200)
    assert w2.tabs.currentWidget() is w2.panels["codebook"]
    again = splitters(w2)
    for (name, i), sizes in moved.items():
        assert again[name][i].sizes() == sizes, (name, i)
    w2.close()
