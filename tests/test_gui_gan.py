"""The GAN in the app, offscreen: the Train panel's health curves and samples over time, the
Manifold panel's map of inverted latents and seed plane, the Arithmetic panel's truncation."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from test_gui_train import setup_run, window  # noqa: E402,F401  (the window fixture)

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
