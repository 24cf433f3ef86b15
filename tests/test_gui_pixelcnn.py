"""The PixelCNN in the explorer: the Pixels panel draws, scrubs and completes off the GUI
thread; the Manifold and Arithmetic panels say plainly that it has no latent to explore."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.data import load_dataset  # noqa: E402


@pytest.fixture
def model(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=48, size=8)
    path = str(tmp_path / "blobs.npz")
    np.savez(path, images=ds.images, labels=ds.labels, label_names=np.array(["left", "mid", "right"]))
    data = load_dataset(path)
    e = engines.create("pixelcnn", data.spec, device="cpu", hidden=4, layers=2, kernel=3, num_classes=3)
    out = ckpt.save(str(tmp_path / "p.safetensors"), e, data=data.describe(), train_state={"state": "finished"})
    return ckpt.load(out, device="cpu", with_optimizer=False)


def _ctx():
    from explorer.app import make_app
    from explorer.context import Context
    from explorer.session import ModelSession
    from explorer.settings import Settings

    make_app()
    return Context(ModelSession("cpu"), Settings())


def test_raster_panel_draws_scrubs_and_completes(qtbot, model):
    from explorer.panels.raster.panel import RasterPanel

    p = RasterPanel(_ctx())
    qtbot.addWidget(p)
    p.resize(900, 600)
    p.show()
    p.ctx.session.set_model(model.engine, model.info, model.info.path)
    qtbot.waitUntil(lambda: p.result is not None and not p.running, timeout=30000)
    r = p.result
    assert r.pixels == 64 and len(r.frames) == 65 and r.frames[0].shape == (9, 8, 8, 3)
    # the first picture has nothing drawn (all tinted), the last is the samples themselves
    from engines.data.dataset import to_uint8

    expect = np.repeat(to_uint8(model.engine.sample(9, seed=0)), 3, -1)
    assert np.array_equal(r.frames[-1], expect)
    assert np.all(r.frames[0] == r.frames[0][0, 0, 0])
    p.timeline.setValue(10)
    assert "10 / 64 pixels" in p.step_label.text()
    shown = p.view.array.copy()
    p.timeline.setValue(64)
    assert not np.array_equal(shown, p.view.array)
    p.set_playing(True)
    p.timeline.setValue(0)
    qtbot.waitUntil(lambda: p.timeline.value() == 64 and not p.play_btn.isChecked(), timeout=10000)
    # completion: the top half of data images kept exactly, four completions each + the original
    qtbot.waitUntil(lambda: p.data is not None, timeout=20000)
    p.mode.setCurrentIndex(p.mode.findData("complete"))
    p.count.setCurrentIndex(1)  # two images
    p.run()
    qtbot.waitUntil(lambda: p.result is not None and p.result.request.mode == "complete" and not p.running,
                    timeout=30000)
    r = p.result
    assert r.pixels == 32 and r.frames[-1].shape == (8, 8, 8, 3)
    top = np.repeat(p.data.images[:2, :4], 3, -1)
    for i in range(2):
        for k in range(4):
            assert np.array_equal(r.frames[-1][i * 4 + k, :4], top[i])
        assert np.array_equal(r.originals[i], np.repeat(p.data.images[i], 3, -1))
    assert "completions of the top half" in p.status.text()
    p.shutdown()


@pytest.mark.parametrize("which", ("manifold", "arithmetic"))
def test_latent_panels_say_there_is_no_latent(qtbot, model, which):
    from explorer.panels import spec

    p = spec(which).load()(_ctx())
    qtbot.addWidget(p)
    p.resize(1000, 640)
    p.show()
    p.ctx.session.set_model(model.engine, model.info, model.info.path)
    qtbot.waitUntil(lambda: p.ctx.workspace is not None, timeout=10000)
    qtbot.wait(200)
    from PySide6.QtWidgets import QLabel

    texts = " ".join(w.text() for w in p.findChildren(QLabel) if w.isVisible())
    assert "has no latent space to explore" in texts, texts[:500]
    if which == "arithmetic":  # nothing to edit: the edit and analogy views are off
        assert not p.edit.isEnabled() and not p.analogy.isEnabled()
    p.shutdown()
