"""The Compare window (issue #20, part 3): refusals in one line, the comparison in a worker with
Cancel, the table per family, linked hover across the maps, CSV and PNG export, and how the
main window opens it."""
import csv
import os
import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from explorer import catalog  # noqa: E402
from tests.compare_models import make_models, save_model  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    from engines.data import load_dataset
    from explorer.app import make_app
    from explorer.compare.window import CompareWindow

    make_app()
    models = make_models(tmp_path / "models", families=("vae", "gan"))
    models["other"] = save_model(tmp_path / "models" / "vae-digits-16.safetensors", "vae",
                                 load_dataset("digits", size=16), steps=0)
    entries = [catalog.read_entry(p, "runs") for p in models.values()]
    cw = CompareWindow(entries, "cpu")
    cw.n_samples.setMinimum(10)
    cw.n_samples.setValue(30)
    qtbot.addWidget(cw)
    cw.show()
    yield cw, models
    cw.cancel()
    from explorer import workers

    workers.wait_all(30_000)


def run(qtbot, cw, paths):
    cw.set_checked(paths)
    worker = []
    cw.run_btn.clicked.disconnect()
    with qtbot.waitSignal(cw.finished, timeout=180_000):
        assert cw.start()
        worker.append(cw.worker)
        assert cw.running and not cw.run_btn.isEnabled() and cw.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: not cw.running, timeout=10_000)
    # Everything was computed off the GUI thread.
    assert worker[0].thread_name and worker[0].thread_name != threading.current_thread().name
    return cw.view.comparison


def test_refusals_are_one_line_and_nothing_runs(window):
    cw, models = window
    cw.set_checked([models["vae"], models["other"]])
    assert not cw.start() and not cw.running
    msg = cw.errors[-1]
    assert "\n" not in msg and "different data sets" in msg and "8×8 grey" in msg and "16×16 grey" in msg
    assert cw.status.text() == msg and cw._dialog is not None and cw._dialog.text() == msg
    cw.set_checked([models["vae"]])
    assert not cw.start() and cw.errors[-1] == "pick 2 to 4 models to compare (got 1)"
    assert cw.view.comparison is None and not cw.csv_btn.isEnabled()


def test_compare_shows_samples_maps_and_the_table(qtbot, window):
    cw, models = window
    comp = run(qtbot, cw, [models["vae"], models["gan"]])
    v = cw.view
    assert [m.engine for m in comp.models] == ["vae", "gan"] and len(v.maps) == 2
    for grid, m in zip(v.sample_grids, comp.models):
        assert grid.count() == comp.options.seeds
    t = v.table
    heads = [t.horizontalHeaderItem(j).text() for j in range(t.columnCount())]
    assert heads[:3] == ["model", "family", "FD"] and "−ELBO\n(nats/image)" in heads and "bits/dim" not in heads
    col = heads.index("−ELBO\n(nats/image)")
    assert float(t.item(0, col).text().replace(",", "")) > 0 and t.item(1, col).text() == "—"
    assert t.item(1, col).toolTip() == "this family has none"
    assert cw.csv_btn.isEnabled() and cw.png_btn.isEnabled()


def mouse_move(widget, pos) -> None:
    """A real mouse-move event on the map's viewport (what the pointer sends)."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    vp = widget.viewport()
    local = QPointF(pos)
    ev = QMouseEvent(QEvent.Type.MouseMove, local, QPointF(vp.mapToGlobal(pos)), Qt.MouseButton.NoButton,
                     Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, ev)


def test_hovering_a_point_rings_the_same_data_point_on_the_other_map(qtbot, window):
    from PySide6.QtCore import QPointF

    cw, models = window
    comp = run(qtbot, cw, [models["vae"], models["gan"]])
    a, b = cw.view.maps
    qtbot.waitUntil(lambda: a.width() > 100, timeout=5000)
    rects = []

    def settled():  # the maps' view ranges settle after the first layout
        rects.append(a.view_rect())
        return len(rects) > 2 and rects[-1] == rects[-2] == rects[-3]

    qtbot.waitUntil(settled, timeout=5000)
    row = int(np.argmin(np.linalg.norm(a.coords - np.median(a.coords, 0), axis=1)))  # well inside the view
    x, y = a.coords[row]
    p = a.mapFromScene(a.vb.mapViewToScene(QPointF(float(x), float(y))))
    with qtbot.waitSignal(cw.view.hovered, timeout=5000) as hovered:
        mouse_move(a, p)
    target = hovered.args[0]  # the point under the mouse (this one, or a neighbour within a few pixels)
    assert target in comp.map_index
    at = a.vb.mapSceneToView(a.mapToScene(p))  # where the mouse was, in map units
    px, py = a.vb.viewPixelSize()
    assert abs(a.point_of(target)[0] - at.x()) < 8 * px and abs(a.point_of(target)[1] - at.y()) < 8 * py
    xa, ya = a.hover_ring.getData()
    assert (xa[0], ya[0]) == pytest.approx(a.point_of(target))
    xs, ys = b.hover_ring.getData()
    assert len(xs) == 1 and (xs[0], ys[0]) == pytest.approx(b.point_of(target))
    k = int(np.flatnonzero(comp.map_index == target)[0])
    assert b.point_of(target) == pytest.approx(tuple(comp.models[1].coords[k]))  # the GAN's place for that image
    assert a.popup.isVisible() and a.popup.text.text().startswith(f"data point {target} · ")
    cw.view.link_hover(0, -1)  # the mouse left: the rings go
    assert len(b.hover_ring.getData()[0]) == 0


def test_csv_and_png_exports_are_written_whole_and_read_back(qtbot, window, tmp_path):
    from PIL import Image

    cw, models = window
    comp = run(qtbot, cw, [models["gan"], models["vae"]])
    out = tmp_path / "exports"
    out.mkdir()
    with qtbot.waitSignal(cw.exported, timeout=10_000):
        cw.export_csv(str(out / "table.csv"))
    rows = list(csv.DictReader(open(out / "table.csv", encoding="utf-8")))
    assert [r["model"] for r in rows] == ["vae-digits", "gan-digits"]  # in the list's order
    assert float(rows[1]["cfid"]) == comp.table().rows[1]["cfid"] and rows[1]["elbo_nats"] == ""
    with qtbot.waitSignal(cw.exported, timeout=10_000):
        cw.export_png(str(out / "view.png"))
    img = Image.open(out / "view.png")
    assert img.size == (cw.view.width(), cw.view.height())
    px = np.asarray(img.convert("RGB"))
    assert px.std() > 10  # real content, not a blank grab
    assert sorted(os.listdir(out)) == ["table.csv", "view.png"]  # no temp files left


def test_cancel_stops_the_comparison(qtbot, window):
    cw, models = window
    cw.set_checked([models["vae"], models["gan"]])
    assert cw.start()
    cw.cancel()
    qtbot.waitUntil(lambda: not cw.running, timeout=120_000)
    assert cw.view.comparison is None and cw.status.text() == "cancelled" and cw.run_btn.isEnabled()


def test_main_window_opens_compare_from_the_library(qtbot, make_window, tmp_path):
    paths = make_models(tmp_path / "runs", families=("vae", "gan"))  # the window's runs folder
    w = make_window()
    qtbot.waitUntil(lambda: len(w.library.entries) == 2, timeout=10_000)
    from tests.test_gui_library_metrics import item_for

    menu = w.library.context_menu(item_for(w.library, "gan-digits"))
    action = next(a for a in menu.actions() if a.text() == "Compare with…")
    action.trigger()
    cw = w.compare_window
    assert cw.isVisible() and cw.checked_paths() == [paths["gan"]]
    assert cw.models.count() == 2
    w.actions_by_id["view.compare"].trigger()  # View → Compare Models… brings the same window back
    assert w.compare_window is cw and cw.checked_paths() == [paths["gan"]]
