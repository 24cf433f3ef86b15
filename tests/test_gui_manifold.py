"""The Manifold panel offscreen, on a tiny VAE over the `tiny_dataset` blobs: the data is encoded
and mapped, dragging the cursor decodes live (never on the GUI thread), exact planes, atlas,
paths with animation, neighbours and gauges, history and bookmarks, colouring and selection,
and the UMAP flow (with a stand-in for UMAP's fit, so numba never compiles here)."""
import json
import os
import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.base import Engine  # noqa: E402

TINY = {"vae": {"latent_dim": 3, "width": 8}, "ae": {"latent_dim": 3, "width": 8}, "pca": {"n_components": 3}}


@pytest.fixture
def compute_threads(monkeypatch):
    """Every thread that decoded or encoded."""
    seen = []
    for name in ("encode", "decode"):
        original = getattr(Engine, name)

        def recording(self, *args, _original=original, **kwargs):
            seen.append(threading.current_thread())
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(Engine, name, recording)
    return seen


@pytest.fixture
def models(tmp_path, tiny_dataset):
    """Tiny checkpoints whose training data is a user .npz file (found again from the checkpoint)."""
    ds = tiny_dataset(n=96, size=16)
    data = tmp_path / "blobs.npz"
    np.savez(data, images=ds.images, labels=ds.labels, label_names=np.array(ds.label_names),
             attr_height=ds.attributes["height"])
    from engines.data import load_dataset

    loaded = load_dataset(str(data))
    out = {}
    for kind, cfg in TINY.items():
        e = engines.create(kind, loaded.spec, device="cpu", seed=1, **cfg)
        if kind == "pca":
            e.fit(loaded.images[loaded.train_idx])
        out[kind] = ckpt.save(str(tmp_path / f"{kind}-blobs.safetensors"), e, data=loaded.describe(),
                              train_state={"state": "finished"})
    return out


@pytest.fixture
def window(make_window):
    return make_window("manifold")


def open_model(qtbot, w, path):
    p = w.panels["manifold"]
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(path)
    qtbot.waitUntil(lambda: p.projection is not None and p.inspector.image.has_image(), timeout=20_000)
    qtbot.waitUntil(lambda: not p.busy, timeout=10_000)
    return p


def drag(qtbot, p, points, wait_ms=8):
    """A drag through the view's own handler, with time between moves like a real mouse."""
    p.map._drag("start", *points[0])
    for x, y in points:
        p.map._drag("move", x, y)
        qtbot.wait(wait_ms)
    p.map._drag("end", *points[-1])
    qtbot.waitUntil(lambda: not p._frames.busy, timeout=10_000)
    qtbot.waitUntil(lambda: not p.busy, timeout=10_000)


def test_drag_decodes_live_off_the_gui_thread(qtbot, window, models, compute_threads):
    p = open_model(qtbot, window, models["vae"])
    md = p.md
    assert len(p.map.coords) == len(md.ls) == 96 and p.projection.kind == "pca"
    assert md.ls.from_cache is False and os.path.isfile(md.ls.path)  # encoded once, cached in HDF5
    first, shown, entries = p.frame.image.copy(), p.frames_shown, len(p.history)
    images = []
    p.frame_shown.connect(lambda f: images.append(f.image))
    # The GUI thread stays free: a 10 ms timer keeps ticking while the cursor is dragged.
    import time

    from PySide6.QtCore import QTimer

    ticks = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    t = np.linspace(0, 2 * np.pi, 25)
    points = np.stack([2.0 * np.cos(t), 2.0 * np.sin(t)], 1)
    drag(qtbot, p, points)
    timer.stop()
    # Decodes off the GUI thread are checked exactly below; the tick gaps only catch gross blocking
    # (a generous bound: on a loaded machine the scheduler alone can hold the thread 0.4 s).
    assert len(ticks) > 10 and np.max(np.diff(ticks)) < 1.0
    assert p.frames_shown - shown >= 3  # live frames while dragging, not just the last one
    assert any(not np.array_equal(im, first) for im in images)
    # The last latent is exactly the plane's latent under the cursor.
    assert p.map.cursor_pos == pytest.approx(tuple(points[-1]))
    assert np.allclose(p.z, p.projection.mapping.to_latent(points[-1]), atol=1e-5)
    # Decoding and encoding ran in workers only.
    assert compute_threads and threading.main_thread() not in compute_threads
    # One gesture, one history entry; back returns to where the drag started.
    assert len(p.history) == entries + 1
    before = p.history.entries[-2].latent
    window.actions_by_id["map.back"].trigger()
    qtbot.waitUntil(lambda: np.allclose(p.z, before), timeout=5_000)
    p.redo()
    qtbot.waitUntil(lambda: np.allclose(p.z, p.projection.mapping.to_latent(points[-1]), atol=1e-5), timeout=5_000)
    # Reopening the model (a new Workspace) reads the latents from the cache.
    old = window.session.workspace
    window.session.set_model(p.engine, p.info, window.session.path)
    assert window.session.workspace is not old and p.ws is window.session.workspace
    qtbot.waitUntil(lambda: p.md is not None, timeout=10_000)
    assert p.md.ls.from_cache and p.md is window.session.workspace.data


def test_real_mouse_events_drag_the_cursor(qtbot, window, models):
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    p = open_model(qtbot, window, models["vae"])
    vp = p.map.viewport()
    shown = p.frames_shown

    def send(kind, x, y, button, buttons):
        pos = QPointF(x, y)
        ev = QMouseEvent(kind, pos, QPointF(vp.mapToGlobal(pos.toPoint())), button, buttons,
                         Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(vp, ev)

    left = Qt.MouseButton.LeftButton
    w, h = vp.width(), vp.height()
    send(QEvent.Type.MouseButtonPress, w * 0.3, h * 0.5, left, left)
    for k in range(1, 13):
        send(QEvent.Type.MouseMove, w * (0.3 + 0.03 * k), h * (0.5 - 0.02 * k), Qt.MouseButton.NoButton, left)
        qtbot.wait(10)
    send(QEvent.Type.MouseButtonRelease, w * 0.66, h * 0.26, left, Qt.MouseButton.NoButton)
    qtbot.waitUntil(lambda: not p.busy, timeout=10_000)
    assert p.frames_shown - shown >= 2
    end = p.map.vb.mapSceneToView(p.map.mapToScene(int(w * 0.66), int(h * 0.26)))
    assert p.map.cursor_pos == pytest.approx((end.x(), end.y()), abs=0.05 * p.map.view_rect()[2])


def test_exact_planes_axes_and_three_points(qtbot, window, models):
    p = open_model(qtbot, window, models["vae"])
    c = p.controls
    # Latent axes: map point (x, y) is (z0, z2); a click in empty space decodes exactly there.
    c.axis_i.setValue(0)
    c.axis_j.setValue(2)
    c.set_projection("axes")
    qtbot.waitUntil(lambda: p.projection is not None and p.projection.kind == "axes", timeout=5_000)
    qtbot.waitUntil(lambda: not p.busy, timeout=5_000)
    p._on_click(5.0, -4.0, -1)
    qtbot.waitUntil(lambda: not p.busy and p.z is not None and abs(p.z[0] - 5.0) < 1e-5, timeout=5_000)
    assert p.z[2] == pytest.approx(-4.0, abs=1e-5)
    assert p.map.getPlotItem().getAxis("bottom").labelText == "latent z0"
    # Pick three data points (Pick mode, clicks on the points), then the plane through them.
    c.set_mouse_mode("pick")
    assert p.map.mode == "pick"
    picks = [3, 10, 50]
    for i in picks:
        x, y = p.map.point_of(i)
        assert p.map.data_index_at(x, y) == i  # the click finds the point under the mouse
        p._on_click(x, y, i)
    assert len(p.paths.latents()) == 3  # data points are latents at once
    qtbot.waitUntil(lambda: c.plane_btn.isEnabled(), timeout=5_000)  # with the path drawn
    c.set_projection("points")
    qtbot.waitUntil(lambda: p.projection is not None and p.projection.kind == "three points", timeout=5_000)
    for i, expect in zip(picks, [(0, 0), (1, 0), (0, 1)]):
        assert p.map.point_of(i) == pytest.approx(expect, abs=1e-5)
    # The path's decoded strip is there: 2 segments × 8 steps + 1.
    qtbot.waitUntil(lambda: p.strip.count() == 17, timeout=5_000)
    assert p.strip.isVisibleTo(p)


def test_atlas_path_animation_and_inspection(qtbot, window, models, compute_threads):
    p = open_model(qtbot, window, models["vae"])
    c = p.controls
    # Inspect: 8 nearest data images, the distance gauge, the prior gauge (a VAE has a prior).
    qtbot.waitUntil(lambda: p.inspector.neighbours.count() == 8, timeout=5_000)
    assert p.inspector.nn_gauge.value is not None and p.inspector.prior_gauge.isVisibleTo(p)
    assert "Typical" in p.inspector.verdict.text()  # the start is a training image
    p.inspector.neighbours.clicked.emit(3)
    target = p.inspector._neighbour_indices[3]
    qtbot.waitUntil(lambda: np.allclose(p.z, p.md.ls.latents[target]), timeout=5_000)
    # Atlas: coarse first, then every cell decoded, in a worker.
    c.atlas_res.setValue(4)
    c.set_atlas_mode(True)
    qtbot.waitUntil(lambda: p.atlas.complete, timeout=10_000)
    assert p.atlas.canvas.shape == (4 * 16, 4 * 16, 1) and p.map.atlas.isVisible()
    assert p.atlas.canvas.std() > 0
    c.set_atlas_mode(False)
    qtbot.waitUntil(lambda: not p.map.atlas.isVisible(), timeout=5_000)
    # A path between two data points (picked) and a free position (cursor): strip, then animation.
    p.add_path_point(0, 0, 5)
    p.add_path_point(0, 0, 40)
    qtbot.waitUntil(lambda: p.strip.count() == 9, timeout=5_000)
    c.path_method.setCurrentIndex(c.path_method.findData("lerp"))
    qtbot.waitUntil(lambda: p.paths.result is not None and p.paths.result.method == "lerp", timeout=5_000)
    lerp_mid = p.paths.result.latents[4]
    assert np.allclose(lerp_mid, (p.md.ls.latents[5] + p.md.ls.latents[40]) / 2, atol=1e-5)
    shown = p.frames_shown
    c.play.click()
    assert p.paths.playing
    qtbot.waitUntil(lambda: p.frames_shown - shown >= 5, timeout=5_000)
    c.play.click()
    assert not p.paths.playing and c.play.text().endswith("Play")
    assert p.strip.highlight is not None
    qtbot.waitUntil(lambda: not p.busy, timeout=5_000)
    assert threading.main_thread() not in compute_threads


def test_bookmarks_persist_per_model(qtbot, window, models):
    from explorer.workspace.store import bookmarks_path

    p = open_model(qtbot, window, models["vae"])
    p.go_to_data(7)
    qtbot.waitUntil(lambda: np.allclose(p.z, p.md.ls.latents[7]), timeout=5_000)
    p.inspector.bookmarks.setEditText("seven")
    p.inspector.add_btn.click()
    path = bookmarks_path(p.md.model_id)
    qtbot.waitUntil(lambda: os.path.isfile(path), timeout=5_000)
    assert json.load(open(path))["bookmarks"][0]["name"] == "seven"
    # Another model has its own (empty) list; coming back brings "seven" back.
    open_model(qtbot, window, models["ae"])
    assert p.inspector.bookmarks.count() == 0
    open_model(qtbot, window, models["vae"])
    assert p.inspector.bookmarks.itemText(0) == "seven"
    p.go_to_data(2)
    qtbot.waitUntil(lambda: np.allclose(p.z, p.md.ls.latents[2]), timeout=5_000)
    p.places.go_to_bookmark("seven")
    qtbot.waitUntil(lambda: np.allclose(p.z, p.md.ls.latents[7]), timeout=5_000)
    p.places.delete_bookmark("seven")
    qtbot.waitUntil(lambda: json.load(open(path))["bookmarks"] == [], timeout=5_000)


def test_colour_legend_hover_selection_and_engines(qtbot, window, models):
    from PySide6.QtCore import QPointF

    p = open_model(qtbot, window, models["pca"])
    c = p.controls
    assert [c.colour.itemData(i) for i in range(c.colour.count())][:2] == ["label", "attr:height"]
    assert len(p.legend.entries) == 3  # left / mid / right
    c.colour.setCurrentIndex(c.colour.findData("attr:height"))
    assert len(p.legend.entries) == 5 and p.area.colouring.continuous  # quantile bins
    p.legend._on_link("0")  # hide the lowest bin
    assert not p.map._visible[p.area.colouring.codes == 0].any()
    # Hovering a point shows its original image and what it is.
    i = int(p.map.index[np.flatnonzero(p.map._visible)[0]])
    qtbot.wait(50)  # the legend's new text may resize the map: take positions after that
    x, y = p.map.point_of(i)
    p.map._on_mouse_moved(p.map.vb.mapViewToScene(QPointF(x, y)))
    qtbot.waitUntil(lambda: p.map.popup.isVisible(), timeout=5_000)
    assert p.map.popup.text.text().startswith(f"#{i} ") and not p.map.popup.image.pixmap().isNull()
    # Box selection selects exactly the visible points inside the rectangle.
    c.set_mouse_mode("box")
    x0, y0, x1, y1 = -0.5, -0.5, 1.5, 1.5
    p.map.drag_path([(x0, y0), (x1, y1)])
    xy = p.map.coords
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1) & p.map._visible
    assert set(p.selection) == set(p.map.index[inside]) and len(p.selection) > 0
    # A lasso (a free polygon) the same way.
    c.set_mouse_mode("lasso")
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    ring = np.stack([0.3 + 1.2 * np.cos(t), 0.2 + 0.9 * np.sin(t)], 1)
    p.map.drag_path(ring)
    from engines.latent.projection import select_polygon

    lasso = p.map.index[[r for r in select_polygon(xy, ring) if p.map._visible[r]]]
    assert set(p.selection) == set(lasso) and len(lasso) > 0
    assert f"{len(lasso)} points selected" in c.selection_label.text()
    c.sel_mean.click()
    qtbot.waitUntil(lambda: np.allclose(p.z, p.md.ls.latents[p.selection].mean(0), atol=1e-5), timeout=5_000)
    # The AE works the same way (no prior: no prior gauge).
    p = open_model(qtbot, window, models["ae"])
    qtbot.waitUntil(lambda: p.inspector.neighbours.count() == 8, timeout=5_000)
    assert not p.inspector.prior_gauge.isVisibleTo(p)


def test_umap_flow_with_progress_cancel_and_cache(qtbot, window, models, monkeypatch):
    """UMAP's own fit is replaced by a stand-in (no numba compile in the default tests); the real
    UMAP is tested at the API level in test_latent_umap.py."""
    import time

    from engines.latent import projection as proj
    from explorer.panels.manifold import umap as manifold_umap

    slow = {"on": False}

    def fake_fit(z, params, report, stopped):
        for epoch in range(1, 21):
            report("layout", epoch, 20)
            time.sleep(0.2 if slow["on"] else 0.005)
            if stopped():
                raise proj._Stop()
        return proj.pca_projection(z).coords * 3.0

    monkeypatch.setattr(manifold_umap, "umap_job", lambda z, params: proj.run_umap(z, params, _fit=fake_fit))
    p = open_model(qtbot, window, models["vae"])
    c = p.controls
    c.set_projection("umap")
    qtbot.waitUntil(lambda: "Not computed yet" in c.umap_status.text(), timeout=5_000)
    assert p.projection.kind == "pca"  # the map stays until UMAP is run
    # A run that is cancelled leaves the map as it was.
    slow["on"] = True
    c.umap_run_btn.click()
    qtbot.waitUntil(lambda: c.umap_bar.value() > 0, timeout=5_000)
    assert c.umap_cancel_btn.isEnabled() and not c.umap_run_btn.isEnabled()
    c.umap_cancel_btn.click()
    qtbot.waitUntil(lambda: c.umap_run_btn.isEnabled(), timeout=5_000)
    assert "Cancelled" in c.umap_status.text() and p.projection.kind == "pca"
    # A run to the end replaces the map; scrubbing uses the Shepard inverse.
    slow["on"] = False
    c.umap_run_btn.click()
    qtbot.waitUntil(lambda: p.projection.kind == "umap", timeout=10_000)
    qtbot.waitUntil(lambda: not p.busy, timeout=5_000)
    x, y = p.map.point_of(11)
    p.scrub_to(x, y)
    qtbot.waitUntil(lambda: not p.busy and np.allclose(p.z, p.md.ls.latents[11], atol=1e-4), timeout=5_000)
    # Cached on disk: another model id-less session (a fresh panel state) finds it without running.
    c.set_projection("pca")
    qtbot.waitUntil(lambda: p.projection.kind == "pca", timeout=5_000)
    p.umap.maps.clear()
    c.set_projection("umap")
    qtbot.waitUntil(lambda: p.projection.kind == "umap", timeout=5_000)
    assert "from the cache" in c.umap_status.text()


def test_two_map_selections_make_a_vector_through_the_workspace(qtbot, window, models, tiny_dataset):
    """The map's groups are the Workspace's; "Vector A − B" is `ws.vector_from_groups`, which adds
    the vector to the Workspace and asks for the Arithmetic panel (the window shows it): the
    Manifold panel never imports or touches the Arithmetic panel."""
    import inspect as pyinspect

    from explorer.panels.manifold import groups as groups_module
    from explorer.panels.manifold import panel as panel_module

    p = open_model(qtbot, window, models["vae"])
    ws = window.session.workspace
    c, g = p.controls, p.controls.groups
    assert not g.isVisibleTo(p)  # nothing selected, no groups yet
    c.set_mouse_mode("box")
    xy = p.map.coords
    p.map.drag_path([(xy[:, 0].min() - 1, xy[:, 1].min() - 1), (0.0, xy[:, 1].max() + 1)])
    a = p.selection.copy()
    assert len(a) and g.to_a.isEnabled() and not g.make.isEnabled()
    g.to_a.click()
    assert set(ws.groups["a"]) == set(a) and ws.groups["b"] is None  # stored on the Workspace
    p.map.drag_path([(0.0, xy[:, 1].min() - 1), (xy[:, 0].max() + 1, xy[:, 1].max() + 1)])
    b = p.selection.copy()
    assert len(b) and not set(a) & set(b)
    g.to_b.click()
    assert set(ws.groups["b"]) == set(b)
    assert g.make.isEnabled() and f"({len(a):,})" in g.label.text() and f"({len(b):,})" in g.label.text()
    assert window.tabs.currentWidget() is p
    g.make.click()  # made in a worker: the vector joins the Workspace, then the Arithmetic panel shows
    qtbot.waitUntil(lambda: len(ws.vectors) == 1, timeout=20_000)
    assert window.tabs.currentWidget() is window.panels["arithmetic"]
    assert ws.is_active(ws.vectors[0].name)
    v = ws.vectors[0]
    lat = ws.data.ls.latents
    np.testing.assert_allclose(v.vector, lat[a].mean(0) - lat[b].mean(0), rtol=1e-4, atol=1e-5)
    assert v.name == g.name() and v.quality is not None and not g.error.isVisibleTo(p)
    for module in (panel_module, groups_module):  # no reach into another panel
        src = pyinspect.getsource(module)
        assert "panels.arithmetic" not in src and "window()" not in src and ".panels[" not in src
    # Groups set from outside (another panel, a session) show here; too small ones say why.
    window.show_panel("manifold")
    ws.set_group("a", a[:1])
    assert f"({1:,})" in g.label.text()
    g.make.click()
    assert g.error.isVisibleTo(p) and "at least two" in g.error.text() and len(ws.vectors) == 1
    # New data forgets the groups (their indices meant the old data's images).
    p.use_dataset(tiny_dataset(n=40, size=16))
    qtbot.waitUntil(lambda: p.md is not None and len(p.md.ls) == 40, timeout=20_000)
    assert ws.groups == {"a": None, "b": None} and g.groups == {"a": None, "b": None}
    assert not g.label.isVisibleTo(p) and not g.error.isVisibleTo(p)
    qtbot.waitUntil(lambda: not p.busy, timeout=10_000)


def test_the_current_latent_is_the_workspaces(qtbot, window, models):
    """Two Manifold views on one Workspace agree on the current latent, whoever sets it; a latent
    set while the panel is hidden is drawn when it is shown."""
    from explorer.panels.manifold.panel import ManifoldPanel

    p = open_model(qtbot, window, models["vae"])
    ws = window.session.workspace
    lat = p.md.ls.latents
    # From outside (another panel, a session): the cursor and the frame follow.
    ws.set_current(lat[9], "from elsewhere", "test")
    qtbot.waitUntil(lambda: p.frame is not None and np.allclose(p.frame.z, lat[9]) and not p.busy, timeout=5_000)
    assert p.map.cursor_pos == pytest.approx(p.map.point_of(9), abs=1e-4)
    assert "from elsewhere" in p.inspector.caption.text()
    # A second view of the same Workspace: a click in one moves the other.
    other = ManifoldPanel(window.ctx)
    qtbot.addWidget(other)
    other.resize(1100, 700)
    other.show()
    try:
        qtbot.waitUntil(lambda: other.projection is not None and other.frame is not None, timeout=10_000)
        assert other.md is p.md  # the data was loaded once, for both
        assert np.allclose(other.frame.z, lat[9])
        p.go_to_data(30)
        assert np.allclose(ws.current, lat[30])  # a known latent is current at once
        qtbot.waitUntil(lambda: other.frame is not None and np.allclose(other.frame.z, lat[30]), timeout=5_000)
        qtbot.waitUntil(lambda: not p.busy and not other.busy, timeout=5_000)
        # A drag in the other view: its latent (known once decoded) becomes the Workspace's, and p draws it.
        entries = len(ws.history)
        pts = np.array([[0.2, 0.1], [0.5, -0.3], [0.9, -0.6]])
        drag(qtbot, other, pts)
        want = other.projection.mapping.to_latent(pts[-1])
        assert np.allclose(ws.current, want, atol=1e-5) and len(ws.history) == entries + 1
        qtbot.waitUntil(lambda: np.allclose(p.frame.z, want, atol=1e-5), timeout=5_000)
        # Undo in one view is undone in both.
        p.undo()
        qtbot.waitUntil(lambda: np.allclose(other.frame.z, lat[30]) and np.allclose(p.frame.z, lat[30]),
                        timeout=5_000)
    finally:
        other.shutdown()
        other.close()
    # Hidden: nothing is decoded; shown again, the latent set meanwhile is drawn.
    window.show_panel("train")
    shown = p.frames_shown
    ws.set_current(lat[50], "while away", "test")
    qtbot.wait(100)
    assert p.frames_shown == shown
    window.show_panel("manifold")
    qtbot.waitUntil(lambda: np.allclose(p.frame.z, lat[50]), timeout=5_000)


def test_a_latents_label_travels_with_its_frame(qtbot, window, models):
    """A click on a data point keeps its caption, and a jump superseded by another keeps its own
    label (before, the click's label was dropped and the older frame took the newer label)."""
    p = open_model(qtbot, window, models["vae"])
    lat = p.md.ls.latents
    seen = []
    p.frame_shown.connect(lambda f: seen.append((f.z.copy(), p.inspector.caption.text())))
    p._on_click(*p.map.point_of(3), 3)  # a click on data point 3: origin "click"
    p.go_to(lat[20], "jump", "twenty")  # while 3 is being decoded
    qtbot.waitUntil(lambda: not p.busy and any(np.allclose(z, lat[20]) for z, _ in seen), timeout=5_000)
    for z, caption in seen:
        if np.allclose(z, lat[3]):
            assert "#3" in caption and "twenty" not in caption
        elif np.allclose(z, lat[20]):
            assert "twenty" in caption
    assert "twenty" in p.inspector.caption.text()
    assert window.session.workspace.current_label == "twenty"


def test_session_state_is_the_view_only(qtbot, window, models):
    p = open_model(qtbot, window, models["vae"])
    c = p.controls
    c.axis_i.setValue(2)
    c.axis_j.setValue(0)
    c.set_projection("axes")
    c.colour.setCurrentIndex(c.colour.findData("attr:height"))
    c.path_steps.setValue(5)
    state = p.session_state()
    assert state["projection"] == "axes" and state["colour"] == "attr:height" and state["axes"] == [2, 0]
    assert not {"latent", "history", "bookmarks", "groups"} & set(state)  # the Workspace's
    c.set_projection("pca")
    c.colour.setCurrentIndex(c.colour.findData("label"))
    c.path_steps.setValue(8)
    p.restore_session_state(json.loads(json.dumps(state)))
    assert c.projection.currentData() == "axes" and c.colour.currentData() == "attr:height"
    assert (c.axis_i.value(), c.axis_j.value(), c.path_steps.value()) == (2, 0, 5)
    qtbot.waitUntil(lambda: p.projection.kind == "axes" and not p.busy, timeout=5_000)
