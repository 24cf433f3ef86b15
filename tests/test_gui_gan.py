"""The GAN in the app, offscreen: the Train panel's health curves and samples over time, the
Manifold panel's map of inverted latents and seed plane, the Arithmetic panel's truncation."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from test_gui_train import window  # noqa: E402,F401  (the window fixture)

GAN = {"latent_dim": 4, "width": 8, "batch_size": 16, "invert_steps": 3, "invert_restarts": 1}


def test_train_panel_shows_gan_health_and_timeline(qtbot, window):  # noqa: F811
    panel = window.panels["train"]
    panel.engine_combo.setCurrentIndex(panel.engine_combo.findData("gan"))
    panel.form.set_values(GAN)
    panel.epochs.setValue(4)
    panel.preview_mode.setCurrentIndex(panel.preview_mode.findData("timeline"))
    with qtbot.waitSignal(panel.training_finished, timeout=60_000) as done:
        assert panel.start()
    assert done.args[0].state == "finished", done.args[0].message
    qtbot.waitUntil(lambda: panel.state == "idle" and panel.samples.has_image(), timeout=10_000)
    assert panel.health_plot.isVisible()
    assert {"d_loss", "g_loss", "d_grad_norm", "g_grad_norm"} <= set(panel.loss_plot.terms())
    assert set(panel.health_plot.terms()) == {"d_real_acc", "d_fake_acc", "diversity"}
    assert not set(panel.health_plot.terms()) & set(panel.loss_plot.terms())
    # The timeline: one row per refresh, the same seeds in every row, steps increasing.
    assert len(panel.timeline) >= 1
    assert panel.timeline.steps == sorted(panel.timeline.steps)
    assert "over training" in panel.sample_caption.text()
    img = panel.timeline.image()
    assert img.shape[0] == len(panel.timeline) * 17 + 1  # 16 px rows plus padding


# ---- Manifold panel ---------------------------------------------------------------------------------
@pytest.fixture
def gan_models(tmp_path, tiny_dataset):
    """A tiny GAN whose training data is a user .npz (found again from the checkpoint), and one
    whose data is gone."""
    import engines
    from engines import checkpoint as ckpt
    from engines.data import load_dataset

    ds = tiny_dataset(n=64, size=16)
    data = tmp_path / "blobs.npz"
    np.savez(data, images=ds.images, labels=ds.labels, label_names=np.array(ds.label_names),
             attr_height=ds.attributes["height"])
    loaded = load_dataset(str(data))
    e = engines.create("gan", loaded.spec, device="cpu", seed=1, **GAN)
    e.train_step(loaded.images[:16])
    return {"gan": ckpt.save(str(tmp_path / "gan-blobs.safetensors"), e, data=loaded.describe()),
            "lost": ckpt.save(str(tmp_path / "gan-lost.safetensors"), e, data={"name": "gone", "source": "/nowhere.npz"})}


@pytest.fixture
def mwindow(make_window):
    return make_window("manifold")


def test_manifold_maps_inverted_latents_and_browses_seeds(qtbot, mwindow, gan_models):
    from engines.latent.seeds import blend

    w, p = mwindow, mwindow.panels["manifold"]
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(gan_models["gan"])
    qtbot.waitUntil(lambda: p.projection is not None and p.inspector.image.has_image(), timeout=30_000)
    qtbot.waitUntil(lambda: not p.busy, timeout=10_000)
    ls = p.md.ls
    assert ls.latents.shape == (64, 4) and not ls.from_cache and ls.path  # inverted, then cached
    engine = w.session.engine
    # The seed plane: thumbnails of the prior, a drag decodes the blend and places it on the map.
    p.controls.show_seeds.setChecked(True)
    assert p.seeds.isVisible() and not p.map.isVisible()
    qtbot.waitUntil(lambda: p.seeds.complete, timeout=10_000)
    p.seeds.canvas.moved.emit(1.25, 2.5, "end")
    want = blend(engine, 1.25, 2.5)
    qtbot.waitUntil(lambda: p.z is not None and np.allclose(p.z, want, atol=1e-6), timeout=10_000)
    # The Workspace's current latent at once; drawn when its frame is decoded.
    qtbot.waitUntil(lambda: p.frame is not None and np.allclose(p.frame.z, want, atol=1e-6), timeout=10_000)
    assert "seed plane" in p.inspector.caption.text()
    # Back to the scatter; reopening the model reads the inverted latents from the cache.
    p.controls.show_scatter.setChecked(True)
    assert p.map.isVisible() and not p.seeds.isVisible()
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(gan_models["gan"])
    qtbot.waitUntil(lambda: p.md is not None and p.projection is not None, timeout=30_000)
    assert p.md.ls.from_cache


def test_seed_plane_works_without_data(qtbot, mwindow, gan_models):
    w, p = mwindow, mwindow.panels["manifold"]
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(gan_models["lost"])
    qtbot.waitUntil(lambda: not p.feed.loading, timeout=10_000)
    assert p.projection is None
    p.controls.show_seeds.setChecked(True)
    qtbot.waitUntil(lambda: p.seeds.complete, timeout=10_000)
    p.seeds.move_to(0.5, 0.5, "end")
    qtbot.waitUntil(lambda: p.inspector.image.has_image(), timeout=10_000)
    assert p.z is not None and p.z.shape == (4,)


# ---- Arithmetic panel ------------------------------------------------------------------------------
@pytest.fixture
def apanel(qtbot, tmp_path, monkeypatch):
    from explorer.app import make_app
    from explorer.context import Context
    from explorer.panels.arithmetic.panel import ArithmeticPanel
    from explorer.session import ModelSession
    from explorer.settings import Settings

    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))  # its own saved vectors
    make_app()
    session = ModelSession("cpu")
    p = ArithmeticPanel(Context(session, Settings()))
    qtbot.addWidget(p)
    p.resize(1100, 760)
    p.show()
    yield p
    p.shutdown()
    from explorer import workers

    workers.wait_all(10_000)


def test_arithmetic_vectors_from_inverted_latents_and_truncation(qtbot, apanel, gan_models):
    from engines import checkpoint as ckpt
    from explorer.panels.arithmetic.jobs import Recipe

    p = apanel
    loaded = ckpt.load(gan_models["gan"], device="cpu", with_optimizer=False)
    p.ctx.session.set_model(loaded.engine, loaded.info, loaded.info.path)
    qtbot.waitUntil(lambda: p.md is not None and p.md.ls.model_id == p.model_id, timeout=30_000)
    qtbot.waitUntil(lambda: p.edit.last_result is not None, timeout=10_000)
    assert p.md.ls.latents.shape == (64, 4)  # the data's inverted latents
    assert p.edit.psi.isVisibleTo(p) and p.edit.psi.value() == 1.0
    with qtbot.waitSignal(p.vector_added, timeout=10_000) as got:
        assert p.add_vector(Recipe("label", label=2))
    v = got.args[0]
    qtbot.waitUntil(lambda: not p.edit._render.busy and p.edit.last_strip is not None, timeout=10_000)
    p.edit.sliders[v].setValue(2.0)
    qtbot.waitUntil(lambda: not p.edit._render.busy and p.edit.strength(v) == 2.0, timeout=10_000)
    untruncated = p.edit.last_result.copy()
    # ψ = 0: every latent becomes the mean latent, whatever the edit: the image of z = 0.
    p.edit.psi.setValue(0.0)
    engine = loaded.engine
    from engines.data.dataset import to_uint8

    mean_image = to_uint8(engine.decode(np.zeros((1, 4), np.float32)))[0]
    qtbot.waitUntil(lambda: not p.edit._render.busy and np.array_equal(p.edit.last_result, mean_image), timeout=10_000)
    assert not np.array_equal(untruncated, mean_image)
    assert p.edit.formula.text().startswith("0·(z")
    qtbot.waitUntil(lambda: not p.edit._strip.busy, timeout=10_000)
    assert all(np.array_equal(img, mean_image) for img in p.edit.last_strip)
    # Another engine: no truncation slider.
    import engines

    vae = engines.create("vae", engine.spec, device="cpu", latent_dim=2, width=8)
    p.ctx.session.set_model(vae, None, None)
    assert not p.edit.psi.isVisibleTo(p)


def test_sample_timeline_keeps_rows_spread_over_the_run():
    from explorer.panels.train.timeline import SampleTimeline

    t = SampleTimeline(max_rows=4)
    grid = np.zeros((2 * 9 + 1, 4 * 9 + 1, 1), np.uint8)  # 2 rows of 8 px cells, 1 px padding
    for step in (0, 10, 20, 30, 100, 200, 400):
        assert t.add(step, grid, 8)
    assert not t.add(400, grid, 8)  # the same step again is not a new moment
    assert len(t) == 4 and t.steps[0] == 0 and t.steps[-1] == 400
    assert t.image().shape == (4 * 9 + 1, 4 * 9 + 1, 1)
    assert "400" in t.caption()
