"""The Export panel offscreen: keys → preview → MP4 in a worker, Cancel leaves no file, session
files restore the keys and settings (and refuse another model unless the user agrees), and PNG
export of a view's images."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.spec import ImageSpec  # noqa: E402


def _model(tmp_path, seed=0, name="m"):
    e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=seed, latent_dim=4, width=8)
    path = ckpt.save(str(tmp_path / f"{name}.safetensors"), e)
    return ckpt.load(path, device="cpu", with_optimizer=False)


@pytest.fixture
def window(make_window):
    return make_window("export", size=(1280, 800), shutdown_ms=20_000)


def _open(qtbot, w, loaded):
    p = w.panels["export"]
    w.session.set_model(loaded.engine, loaded.info, loaded.info.path)
    qtbot.waitUntil(lambda: p.preview_data is not None and not p.busy, timeout=20_000)
    return p


def test_default_keys_preview_and_export(qtbot, window, tmp_path):
    p = _open(qtbot, window, _model(tmp_path))
    assert len(p.keys.keys) == 4 and p.keys.item(0).icon() is not None
    p.options.seconds.setValue(0.25)
    p.options.fps.setValue(8)
    p.options.width.setValue(64)
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 8 and not p.busy,
                    timeout=10_000)
    assert "8 frames" in p.summary.text() and "64×64" in p.summary.text()
    out = str(tmp_path / "walk.mp4")
    w = p.export_to(out)
    assert w is not None and not p.export_btn.isEnabled()
    qtbot.waitUntil(lambda: p.worker is None, timeout=20_000)
    assert w.thread_name != "MainThread" and p.last_result is not None
    import imageio.v3 as iio

    assert iio.imread(out).shape == (8, 64, 64, 3) and "Wrote 8 frames" in p.status.text()
    assert not window.errors
    # A key from an image file: encoded in a worker, its latent is the engine's encoding.
    from PIL import Image

    img = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "face.png")
    p.add_image_key(str(tmp_path / "face.png"))
    qtbot.waitUntil(lambda: len(p.keys.keys) == 5, timeout=10_000)
    assert p.keys.labels[-1] == "face.png"
    assert np.allclose(p.keys.keys[-1], p.engine.encode(img[None]).numpy().reshape(-1), atol=1e-5)


def test_cancel_leaves_nothing(qtbot, window, tmp_path, monkeypatch):
    p = _open(qtbot, window, _model(tmp_path))
    p.options.seconds.setValue(20.0)  # 4 × 480 frames: far longer than the test waits
    out = tmp_path / "out"
    out.mkdir()
    w = p.export_to(str(out / "long.gif"))
    qtbot.waitUntil(lambda: p.progress.value() > 0, timeout=20_000)
    p.cancel()
    qtbot.waitUntil(lambda: p.worker is None, timeout=20_000)
    assert os.listdir(out) == [] and p.last_result is None and "Cancelled" in p.status.text()
    assert w.quitting


def _reopen_from_other_model(qtbot, window, p, path, tmp_path, n_keys):
    """Switch to another model ('other'), then open the session saved with model m: it loads m
    first and restores `n_keys` keys. Returns the other model."""
    other = _model(tmp_path, seed=7, name="other")
    window.session.set_model(other.engine, other.info, other.info.path)
    qtbot.waitUntil(lambda: len(p.keys.keys) == 4, timeout=10_000)
    assert window.sessions.open_path(path) == "loading"
    qtbot.waitUntil(lambda: window.session.path == str(tmp_path / "m.safetensors") and len(p.keys.keys) == n_keys
                    and not window.session.loading, timeout=20_000)
    return other


def _vector(name="up", dim=4):
    from engines.latent.attributes import AttributeVector

    return AttributeVector(name, np.ones(dim, np.float32), "test", "", (dim,))


def test_session_round_trip_and_other_model(qtbot, window, tmp_path):
    p = _open(qtbot, window, _model(tmp_path))
    ws = window.ctx.workspace
    ws.add_vector(_vector("up"), active=True)
    p.keys.setCurrentRow(3)
    p.keys.remove_selected()  # three keys left
    assert len(ws.keys) == 3  # the panel edits the Workspace's keys
    p.options.method.setCurrentIndex(p.options.method.findData("lerp"))
    p.options.format.setCurrentIndex(p.options.format.findData(".gif"))
    keys = [k.copy() for k in p.keys.keys]
    path = str(tmp_path / "s.json")
    assert window.sessions.save_to(path)
    doc = json.load(open(path))
    assert doc["schema_version"] == 1 and doc["model"]["id"].startswith("vae-") and len(doc["keys"]) == 3
    assert doc["export"]["timeline"]["method"] == "lerp" and "manifold" in doc["panels"]
    assert doc["panels"]["export"]["output"]["format"] == ".gif"
    assert [v["name"] for v in doc["vectors"]] == ["up"] and doc["workspace"]["active_vectors"] == ["up"]
    ws.set_vector_active("up", False)
    p.keys.clear_keys()
    assert ws.keys == [] and p.keys.count() == 0
    p.options.method.setCurrentIndex(0)
    p.options.format.setCurrentIndex(0)
    assert window.sessions.open_path(path) == "restored"
    assert all(np.array_equal(a, b) for a, b in zip(p.keys.keys, keys)) and len(p.keys.keys) == 3
    assert p.options.method.currentData() == "lerp" and p.options.format.currentData() == ".gif"
    assert [v.name for v in ws.active_vectors] == ["up"]  # which vectors are on, too
    # Another model with the same shapes: refused (the user says no), then applied (yes).
    # The session's model file exists: opening the session loads it, then restores the keys.
    other = _reopen_from_other_model(qtbot, window, p, path, tmp_path, n_keys=3)
    assert all(np.array_equal(a, b) for a, b in zip(p.keys.keys, keys))
    window.session.set_model(other.engine, other.info, other.info.path)
    qtbot.waitUntil(lambda: len(p.keys.keys) == 4, timeout=10_000)
    os.unlink(tmp_path / "m.safetensors")  # and now the session's own model is gone
    asked = []
    assert window.sessions.open_path(path, ask=lambda parent, text: asked.append(text) or False) == "mismatch"
    assert "made with model m" in asked[0] and window.errors[-1][0] == "The session belongs to another model"
    assert window.sessions.open_path(path, ask=lambda parent, text: True) == "restored"
    assert len(p.keys.keys) == 3


def test_keys_set_in_the_workspace_appear_in_the_panel(qtbot, window, tmp_path):
    """The key list shows ws.keys, whoever changes them, and edits them through the Workspace;
    'From map' and 'Bookmarks' read the Workspace's current latent and bookmarks."""
    p = _open(qtbot, window, _model(tmp_path))
    ws = window.ctx.workspace
    z = np.arange(4, dtype=np.float32)
    ws.add_key(z, "from elsewhere")
    assert p.keys.count() == 5 and p.keys.item(4).text() == "from elsewhere"
    assert np.array_equal(p.keys.keys[4], z)
    qtbot.waitUntil(lambda: not p.keys.item(4).icon().isNull() and not p.busy, timeout=10_000)
    ws.set_keys([z, -z], ["a", "b"])
    assert [p.keys.item(i).text() for i in range(p.keys.count())] == ["a", "b"]
    qtbot.waitUntil(lambda: p.preview_data is not None and not p.busy, timeout=10_000)
    assert p.current_spec().timeline.labels == ["a", "b"]
    p.keys.setCurrentRow(0)
    p.keys.move_selected(1)
    assert [k.label for k in ws.keys] == ["b", "a"]
    p.keys.setCurrentRow(0)
    p.keys.remove_selected()
    assert [k.label for k in ws.keys] == ["a"] and p.keys.count() == 1
    ws.set_current(2 * z, "picked", "map")
    p.add_map_btn.click()
    assert ws.keys[-1].label == "picked" and np.array_equal(ws.keys[-1].latent, 2 * z)
    ws.add_bookmark("place 1", -2 * z)
    p.add_marks_btn.click()
    assert ws.keys[-1].label == "place 1" and np.array_equal(p.keys.keys[-1], -2 * z)
    p.seed.setValue(5)
    p.add_seed_btn.click()
    assert p.keys.labels[-1] == "seed 5" and p.seed.value() == 6 and len(ws.keys) == 4
    # Vectors are the Workspace's too: the sweep offers them, switched-on ones first.
    ws.add_vector(_vector("off"), active=False)
    ws.add_vector(_vector("on"), active=True)
    assert [p.options.vector.itemText(i) for i in range(p.options.vector.count())] == ["on", "off"]
    assert not window.errors


def test_no_load_a_model_text_while_one_is_loaded(qtbot, make_window, tmp_path):
    """Issue #18 item 8: the preview said "Load a model" while a model was loading and after it
    had loaded (until the preview came)."""
    w = make_window("train")  # the Export panel is not on show: its preview waits
    p = w.panels["export"]
    assert "Load a model" in p.view._placeholder
    loaded = _model(tmp_path)
    w.session.load(loaded.info.path)
    assert "Load a model" not in p.view._placeholder and "Loading" in p.view._placeholder
    qtbot.waitUntil(lambda: w.session.engine is not None and not w.session.loading, timeout=20_000)
    assert "Load a model" not in p.view._placeholder
    w.show_panel("export")
    qtbot.waitUntil(lambda: p.preview_data is not None and not p.busy, timeout=20_000)


def test_export_panel_reaches_no_other_panel():
    """It imports no other panel and asks its window for nothing: its state is the Workspace's."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "explorer" / "panels" / "export"
    for f in root.glob("*.py"):
        text = f.read_text(encoding="utf-8")
        others = set(re.findall(r"explorer\.panels\.(\w+)", text)) - {"export"}
        assert not others, (f.name, others)
        assert "window()" not in text and "_other(" not in text, f.name


def test_png_export_of_view_images(qtbot, window, tmp_path):
    from PIL import Image

    from explorer.widgets import png_export

    imgs = (np.random.default_rng(0).random((6, 8, 8, 3)) * 255).astype(np.uint8)
    out = str(tmp_path / "strip.png")
    w = png_export.export_dialog(window, png_export.Content(imgs, [f"s={i}" for i in range(6)], 6), "strip",
                                 window.ctx, path=out, options={"scale": 4, "smooth": False, "labels": True})
    qtbot.waitUntil(lambda: os.path.exists(out), timeout=10_000)
    qtbot.waitUntil(lambda: w not in __import__("explorer.workers", fromlist=["_LIVE"])._LIVE, timeout=5_000)
    im = np.asarray(Image.open(out))
    assert im.shape == (32 + 4, 6 * 32 + 7 * 2, 3)
    assert np.array_equal(im[2:12, 2:34], imgs[0].repeat(4, 0).repeat(4, 1)[:10])  # above the caption band
    assert png_export.export_dialog(window, None, "x", window.ctx) is None


def test_data_menu_writes_the_maps_latents(qtbot, window, tmp_path, tiny_dataset):
    """The latents come from the Workspace's data (asked for when not loaded yet), the map's
    coordinates from its projections; no other panel is involved."""
    from engines.export.data import read_latents
    from explorer.panels.export import data as export_data

    ds = tiny_dataset(n=40, size=16, channels=3)
    npz = str(tmp_path / "blobs.npz")
    np.savez(npz, images=ds.images, labels=ds.labels, height=ds.attributes["height"])
    e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=0, latent_dim=4, width=8)
    path = ckpt.save(str(tmp_path / "d.safetensors"), e, data={"name": "blobs", "source": npz})
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    p = window.panels["export"]
    window.session.set_model(loaded.engine, loaded.info, path)
    ws = window.ctx.workspace
    assert ws.data is None
    out = str(tmp_path / "lat.h5")
    assert export_data.latents(p, ".h5", out) == export_data.WAITING  # encodes the data first
    qtbot.waitUntil(lambda: os.path.exists(out), timeout=30_000)
    d = read_latents(out)
    assert d["latents"].shape == (40, 4) and np.allclose(d["latents"], ws.data.ls.latents)
    assert export_data.latents(p, ".csv", str(tmp_path / "no.csv")) is None  # no map drawn yet
    coords = np.random.default_rng(0).random((40, 2)).astype(np.float32)
    ws.set_projection("pca", coords)
    out2 = str(tmp_path / "lat2.h5")
    assert export_data.latents(p, ".h5", out2) is not None
    qtbot.waitUntil(lambda: os.path.exists(out2), timeout=10_000)
    assert np.allclose(read_latents(out2)["coords"]["pca"], coords)
    assert export_data.latents(p, ".csv", str(tmp_path / "map.csv")) is not None
    qtbot.waitUntil(lambda: os.path.exists(tmp_path / "map.csv"), timeout=10_000)
    assert export_data.bookmarks(p, str(tmp_path / "b.json")) is None  # none yet: a message, no file
    ws.add_bookmark("place 1", np.ones(4, np.float32))
    assert export_data.bookmarks(p, str(tmp_path / "b2.json")) is not None
    qtbot.waitUntil(lambda: os.path.exists(tmp_path / "b2.json"), timeout=10_000)
    assert export_data.codebook(p, str(tmp_path / "c.h5")) is None  # a VAE has no codebook
    assert not os.path.exists(tmp_path / "b.json") and not window.errors


def test_sweep_and_diffusion_kinds(qtbot, window, tmp_path):
    from engines.latent.attributes import AttributeVector

    p = _open(qtbot, window, _model(tmp_path))
    kinds = p.options.kind
    diff_item = kinds.model().item(kinds.findData("diffusion"))
    assert not diff_item.isEnabled()  # a VAE has no trajectory
    window.ctx.workspace.add_vector(AttributeVector("up", np.ones(4, np.float32), "test", "", (4,)))
    p.options.fps.setValue(8)
    p.options.sweep_seconds.setValue(0.5)
    p.options.width.setValue(32)
    kinds.setCurrentIndex(kinds.findData("sweep"))
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 8 and not p.busy,
                    timeout=10_000)
    spec = p.current_spec()
    assert spec.sweep.name == "up" and np.array_equal(spec.sweep.base, p.keys.keys[0])
    # Training progress: two checkpoints of the same architecture, 0.25 s each at 8 fps.
    ckpts = [_model(tmp_path, seed=s, name=f"step{s}").info.path for s in (1, 2)]
    kinds.setCurrentIndex(kinds.findData("progress"))
    p.options.add_checkpoints(ckpts)
    p.options.prog_n.setValue(2)
    p.options.prog_seconds.setValue(0.25)
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 4 and not p.busy,
                    timeout=10_000)
    assert p.current_spec().progress.checkpoints == ckpts
    d = engines.create("diffusion", ImageSpec(3, 16, 16), device="cpu", width=8, levels=2, attn_size=4)
    path = ckpt.save(str(tmp_path / "d.safetensors"), d)
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    window.session.set_model(loaded.engine, loaded.info, path)
    qtbot.waitUntil(lambda: p.engine is loaded.engine and diff_item.isEnabled(), timeout=10_000)
    kinds.setCurrentIndex(kinds.findData("diffusion"))
    p.options.diff_steps.setValue(3)
    p.options.diff_n.setValue(2)
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 3 + 8 and not p.busy,
                    timeout=20_000)
    assert p.current_spec().options == {"sampler": "dpm", "steps": 3}




def test_a_session_reopens_everything_in_a_fresh_window(qtbot, make_window, tmp_path, tiny_dataset):
    """Saved from one window, opened in a new one (which loads the session's model first): the
    keys, the vectors with their on/off flags, the bookmarks, the map groups (kept when the data
    arrives), the current latent, and each panel's own state are back."""
    from explorer.workspace import store

    ds = tiny_dataset(n=40, size=16, channels=3)
    npz = str(tmp_path / "blobs.npz")
    np.savez(npz, images=ds.images, labels=ds.labels)
    e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=0, latent_dim=4, width=8)
    path = ckpt.save(str(tmp_path / "m.safetensors"), e, data={"name": "blobs", "source": npz})
    w1 = make_window("export", size=(1280, 800), shutdown_ms=20_000)
    p1 = _open(qtbot, w1, ckpt.load(path, device="cpu", with_optimizer=False))
    ws1 = w1.ctx.workspace
    ws1.request_data()
    qtbot.waitUntil(lambda: ws1.data is not None, timeout=30_000)
    ws1.set_keys([np.full(4, k, np.float32) for k in (1.0, 2.0, 3.0)], ["one", "two", "three"])
    ws1.add_vector(_vector("up"), active=True)
    ws1.add_vector(_vector("down"), active=False)
    ws1.add_bookmark("place 1", np.full(4, -1.0, np.float32))
    ws1.set_group("a", [0, 1, 2])
    ws1.set_group("b", [5, 6])
    ws1.set_current(np.full(4, 0.5, np.float32), "here", "test")
    p1.options.format.setCurrentIndex(p1.options.format.findData(".gif"))
    p1.options.width.setValue(96)
    p1.seed.setValue(42)
    p1.options.seconds.setValue(1.5)
    m1 = w1.panels["manifold"]
    m1.apply_view(projection="axes")  # the Manifold panel's own view state
    manifold_state = m1.session_state()
    assert manifold_state["projection"] == "axes"
    session = str(tmp_path / "s.json")
    assert w1.sessions.save_to(session)
    os.unlink(store.bookmarks_path(ws1.model_id))  # the bookmarks come back from the session, not the disk

    w2 = make_window("export", size=(1280, 800), shutdown_ms=20_000)
    assert w2.ctx.workspace is None
    assert w2.sessions.open_path(session) == "loading"
    qtbot.waitUntil(lambda: w2.ctx.workspace is not None and len(w2.ctx.workspace.keys) == 3, timeout=20_000)
    ws2, p2 = w2.ctx.workspace, w2.panels["export"]
    assert ws2 is not ws1 and w2.session.path == path
    assert [k.label for k in ws2.keys] == ["one", "two", "three"] and p2.keys.labels == ["one", "two", "three"]
    assert all(np.array_equal(a.latent, b.latent) for a, b in zip(ws1.keys, ws2.keys))
    assert [v.name for v in ws2.vectors] == ["up", "down"] and [v.name for v in ws2.active_vectors] == ["up"]
    assert np.array_equal(ws2.vector("up").vector, ws1.vector("up").vector)
    assert [b.name for b in ws2.bookmarks] == ["place 1"]
    assert np.array_equal(ws2.current, ws1.current) and ws2.current_label == "here"
    qtbot.waitUntil(lambda: ws2.data is not None, timeout=30_000)  # the session's data source, loaded
    assert list(ws2.groups["a"]) == [0, 1, 2] and list(ws2.groups["b"]) == [5, 6]
    assert p2.options.format.currentData() == ".gif" and p2.options.width.value() == 96 and p2.seed.value() == 42
    assert p2.options.seconds.value() == 1.5
    m2 = w2.panels["manifold"]
    state = m2.session_state()
    assert state["projection"] == "axes" and state["view"] == manifold_state["view"]
    assert not w1.errors and not w2.errors


def test_output_name_disagreeing_with_the_format_is_asked_about(qtbot, window, tmp_path, monkeypatch):
    """`walk.mp4` asked as GIF: never silently `walk.mp4.gif`; the question's three answers."""
    from PySide6.QtWidgets import QFileDialog

    from explorer.panels.export import options

    p = _open(qtbot, window, _model(tmp_path))
    p.options.set_format(".gif")
    typed = str(tmp_path / "walk.mp4")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (typed, "*.gif")))
    started, asked = [], []
    monkeypatch.setattr(p, "export_to", lambda path, spec=None: started.append(path))

    def answer(a):
        def ask(parent, name, name_ext, chosen_ext):
            asked.append((name, name_ext, chosen_ext))
            return a
        return ask

    p.export_dialog(ask=answer(options.CANCEL))
    assert started == [] and asked == [(typed, ".mp4", ".gif")]
    p.export_dialog(ask=answer(options.RENAME))
    assert started[-1] == str(tmp_path / "walk.gif") and p.options.format.currentData() == ".gif"
    p.export_dialog(ask=answer(options.USE_NAME))
    assert started[-1] == typed and p.options.format.currentData() == ".mp4"  # the form follows the name
    assert len(asked) == 3 and len(started) == 2
    # Agreeing names and names without an extension are not asked about.
    p.options.set_format(".gif")
    for name, expected in (("loop.GIF", "loop.GIF"), ("loop", "loop.gif")):
        typed = str(tmp_path / name)
        p.export_dialog(ask=answer(options.CANCEL))
        assert started[-1] == str(tmp_path / expected)
    assert len(asked) == 3
    # A name with an extension Export does not write: only rename (added to) or cancel.
    assert options.output_name(None, "/x/walk.avi", ".gif", ask=answer(options.USE_NAME)) is None
    assert options.output_name(None, "/x/walk.avi", ".gif", ask=answer(options.RENAME)) == ("/x/walk.avi.gif", ".gif")
    assert asked[-1] == ("/x/walk.avi", None, ".gif")


def test_the_format_question_offers_three_answers(qtbot, window):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from explorer.panels.export import options

    seen = []

    def click(label_start):
        def go():
            box = next(w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible())
            seen.append(sorted(b.text() for b in box.buttons()))
            next(b for b in box.buttons() if b.text().replace("&", "").startswith(label_start)).click()
        QTimer.singleShot(50, go)

    click("Write MP4")
    assert options.ask_format(window, "/x/walk.mp4", ".mp4", ".gif") == options.USE_NAME
    click("Save as walk.gif")
    assert options.ask_format(window, "/x/walk.mp4", ".mp4", ".gif") == options.RENAME
    click("Cancel")
    assert options.ask_format(window, "/x/walk.mp4", ".mp4", ".gif") == options.CANCEL
    assert len(seen) == 3 and len(seen[0]) == 3
