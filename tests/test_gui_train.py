"""The Train panel end to end, offscreen: a run to completion, a cancelled run whose checkpoint
still loads, pause/resume, continuing a checkpoint, refused settings — and no training step ever
taken on the GUI thread."""
import os
import threading

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.base import Engine  # noqa: E402
from engines.train import sample_grid  # noqa: E402

TINY = {"latent_dim": 2, "width": 8, "batch_size": 16}


@pytest.fixture
def step_threads(monkeypatch):
    """Every thread a training step ran on (and, in `step_threads.compute`, every thread that
    encoded or decoded: sample grids and reconstructions must not be drawn on the GUI thread)."""

    class Seen(list):
        compute: list

    seen = Seen()
    seen.compute = []

    def wrap(name, into):
        original = getattr(Engine, name)

        def recording(self, *args, **kwargs):
            into.append(threading.current_thread())
            return original(self, *args, **kwargs)

        monkeypatch.setattr(Engine, name, recording)

    wrap("train_step", seen)
    wrap("encode", seen.compute)
    wrap("decode", seen.compute)
    return seen


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch, tiny_dataset):
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(models))
    ds = tiny_dataset()
    bundled = engines.create("vae", ds.spec, device="cpu", **TINY)
    ckpt.save(str(models / "vae-faces-64.safetensors"), bundled, data={**ds.describe(), "name": "faces"},
              train_state={"elapsed_s": 3.0, "state": "finished"}, thumbnail=sample_grid(bundled, 4))
    make_app()
    w = MainWindow(Settings(train={"data": "__tests_set_their_own__"}, runs_dir=str(tmp_path / "runs")))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.engine is not None, timeout=10_000)  # the bundled model is loaded
    panel = w.panels["train"]
    qtbot.waitUntil(lambda: not panel.data_box.loading, timeout=10_000)
    panel.data_box.set_dataset(ds)
    yield w
    w.shutdown()


def setup_run(panel, engine="vae", epochs=3.0, **cfg):
    panel.engine_combo.setCurrentIndex(panel.engine_combo.findData(engine))
    panel.form.set_values({**(TINY if engine != "pca" else {"n_components": 2}), **cfg})
    panel.epochs.setValue(epochs)


def test_train_run_to_completion(qtbot, window, step_threads):
    panel = window.panels["train"]
    setup_run(panel, epochs=3)
    panel.save_as.setText("my first vae")
    progress = []
    panel.progress.connect(progress.append)
    with qtbot.waitSignal(panel.training_finished, timeout=30_000) as done:
        assert panel.start()
        assert panel.state == "starting" and not panel.start_btn.isEnabled()
    last = done.args[0]
    assert last.state == "finished", last.message
    path = last.checkpoint
    assert os.path.basename(path) == "my first vae.safetensors"
    assert os.path.dirname(path) == window.settings.runs_folder
    n_train = len(panel.data_box.dataset.train_idx)
    assert last.step == 3 * (n_train // 16)
    info = ckpt.read_info(path)
    assert info.engine == "vae" and info.config["latent_dim"] == 2 and info.train_state["state"] == "finished"
    # The checkpoint appears in the library.
    qtbot.waitUntil(lambda: path in window.library.paths(), timeout=10_000)
    assert window.library.entry(path).source == "runs"
    # Curves per named term, samples drawn, status back to idle.
    qtbot.waitUntil(lambda: panel.state == "idle" and panel.samples.has_image(), timeout=10_000)
    assert {"loss", "kl", "recon"} <= set(panel.loss_plot.terms())
    assert panel.loss_plot.n_points() >= 1
    assert any(p.state == "running" for p in progress)
    assert panel.bar.value() == 1000
    assert window.busy_label.text() == "Ready"
    # Every step ran off the GUI thread.
    assert step_threads and threading.main_thread() not in step_threads
    # The log toggle and the reconstructions view work on the trained model.
    panel.loss_plot.log_box.setChecked(False)
    panel.preview_mode.setCurrentIndex(panel.preview_mode.findData("reconstructions"))
    qtbot.waitUntil(lambda: "reconstructions" in panel.sample_caption.text(), timeout=10_000)
    # Samples and reconstructions were drawn in workers too.
    assert step_threads.compute and threading.main_thread() not in step_threads.compute


def test_cancel_midway_keeps_a_valid_checkpoint(qtbot, window, step_threads):
    panel = window.panels["train"]
    setup_run(panel, epochs=5000)
    assert panel.start()
    qtbot.waitUntil(lambda: panel.last is not None and panel.last.step >= 5, timeout=20_000)
    assert "training" in window.busy_label.text().lower()
    with qtbot.waitSignal(panel.training_finished, timeout=30_000) as done:
        panel.cancel()
    last = done.args[0]
    assert last.state == "cancelled" and last.checkpoint
    assert last.step < last.total_steps
    loaded = ckpt.load(last.checkpoint, device="cpu")
    assert loaded.engine.step == last.step and loaded.info.train_state["state"] == "cancelled"
    qtbot.waitUntil(lambda: last.checkpoint in window.library.paths(), timeout=10_000)
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
    assert threading.main_thread() not in step_threads


def test_pause_and_resume(qtbot, window):
    panel = window.panels["train"]
    setup_run(panel, epochs=5000)
    panel.start()
    qtbot.waitUntil(lambda: panel.state == "running" and panel.last is not None, timeout=20_000)
    panel.toggle_pause()
    qtbot.waitUntil(lambda: panel.state == "paused", timeout=10_000)
    assert panel.pause_btn.text() == "Resume"
    step = panel.engine.step
    qtbot.wait(300)
    assert panel.engine.step == step  # really paused
    panel.toggle_pause()
    qtbot.waitUntil(lambda: panel.engine.step > step, timeout=10_000)
    with qtbot.waitSignal(panel.training_finished, timeout=30_000):
        window.actions_by_id["train.cancel"].trigger()


def test_continue_training_a_checkpoint(qtbot, window, step_threads, tiny_dataset):
    panel = window.panels["train"]
    ds = tiny_dataset()
    # A bundled model: continuing it writes a copy to the runs folder, the bundled file stays as it is.
    e = engines.create("vae", ds.spec, device="cpu", **TINY)
    path = ckpt.save(os.path.join(os.environ["LATENT_EXPLORER_MODELS"], "vae-blobs.safetensors"), e,
                     data=ds.describe(), train_state={"elapsed_s": 1.0, "state": "finished"})
    panel.resume_from(path)
    qtbot.waitUntil(lambda: panel.resume is not None, timeout=10_000)
    # "blobs" is not a data set the app can load by name, so the panel says so; hand it over.
    qtbot.waitUntil(lambda: bool(panel.data_box.last_error), timeout=10_000)
    panel.data_box.set_dataset(ds)
    assert not panel.engine_combo.isEnabled() and panel.epochs_label.text() == "More epochs"
    panel.epochs.setValue(2)
    with qtbot.waitSignal(panel.training_finished, timeout=30_000) as done:
        assert panel.start()
    last = done.args[0]
    assert last.state == "finished"
    assert os.path.dirname(last.checkpoint) == window.settings.runs_folder
    assert ckpt.read_info(path).train_state.get("step", 0) == 0
    assert last.step == 2 * (len(ds.train_idx) // 16)
    assert threading.main_thread() not in step_threads
    # Continuing again trains the same engine further.
    with qtbot.waitSignal(panel.training_finished, timeout=30_000) as again:
        qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
        assert panel.start()
    assert again.args[0].step == 4 * (len(ds.train_idx) // 16)
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
    panel.leave_resume()
    assert panel.engine_combo.isEnabled()


def test_bad_settings_are_refused_not_crashed(qtbot, window, monkeypatch):
    panel = window.panels["train"]
    setup_run(panel)
    panel.form.editors["lr"].setText("-1")
    assert not panel.start()
    assert "lr" in panel.status.text() and panel.state == "idle"
    for bad in ("nan", "inf", "1e999", "100"):  # NaN, infinite, overflowing, above the range
        panel.form.editors["lr"].setText(bad)
        assert not panel.start(), bad
        assert "lr" in panel.status.text() and panel.state == "idle"
    setup_run(panel, lr=1e-3)
    # Spin boxes take their ranges from the config's bounds: no way to type a huge width.
    width = panel.form.editors["width"]
    assert (width.minimum(), width.maximum()) == (4, 256)
    width.setValue(100_000)
    assert width.value() == 256
    # A run whose memory estimate exceeds what the machine has is refused with the estimate.
    monkeypatch.setenv("LATENT_EXPLORER_MEMORY_LIMIT", str(2**20))
    assert not panel.start()
    assert "memory" in panel.status.text() and "MiB" in panel.status.text() and panel.state == "idle"
    monkeypatch.delenv("LATENT_EXPLORER_MEMORY_LIMIT")
    setup_run(panel, engine="diffusion")
    steps = panel.form.editors["timesteps"]
    assert steps.maximum() == 10_000
    # An engine that rejects the images fails inside the worker and reports it.
    setup_run(panel, engine="pca", n_components=10_000)
    panel.form.editors["exact_limit"].setValue(1)
    assert panel.start()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=30_000)
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=30_000)
    assert window.errors[-1][0] == "Training failed", window.errors
    assert window.isVisible() and panel.start_btn.isEnabled()


def test_user_npz_data_set_train_and_continue(qtbot, window, tiny_dataset, tmp_path):
    import numpy as np

    ds = tiny_dataset(n=80)
    path = str(tmp_path / "my blobs.npz")
    np.savez(path, images=ds.images, labels=ds.labels, attr_height=ds.attributes["height"])
    panel = window.panels["train"]
    panel.data_box.use_path(path)
    qtbot.waitUntil(lambda: panel.data_box.dataset is not None, timeout=10_000)
    assert "attribute table 80 × 1" in panel.data_box.summary.text()
    assert panel.data_box.preview.has_image()
    assert window.settings.user_data[0] == path
    setup_run(panel, epochs=1)
    with qtbot.waitSignal(panel.training_finished, timeout=30_000) as done:
        assert panel.start()
    first = done.args[0]
    assert first.state == "finished"
    qtbot.waitUntil(lambda: panel.state == "idle", timeout=10_000)
    # Continue it: the panel finds the user's file again from the checkpoint.
    panel.data_box.select("shapes")  # something else is selected meanwhile
    panel.resume_from(first.checkpoint)
    qtbot.waitUntil(lambda: panel.resume is not None, timeout=10_000)
    qtbot.waitUntil(lambda: panel.data_box.dataset is not None and panel.data_box.request[0] == path, timeout=20_000)
    with qtbot.waitSignal(panel.training_finished, timeout=30_000) as again:
        assert panel.start()
    assert again.args[0].checkpoint == first.checkpoint and again.args[0].step == 2 * first.step


def test_first_launch_defaults_are_a_run_worth_watching(qtbot, make_window, monkeypatch, tmp_path):
    """A fresh settings file: VAE on the digits at 28×28 for 60 epochs (about a minute and a half
    on a laptop CPU), not the digits' native 8×8 that ended in a second."""
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "fresh-home"))
    monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(tmp_path / "no-bundled-models"))
    make_app()
    w = MainWindow(Settings(runs_dir=str(tmp_path / "runs")), auto_load=False)
    qtbot.addWidget(w)
    p = w.panels["train"]
    source, size, channels = p.data_box.current_request()
    assert (source, size) == ("digits", 28)
    assert p.engine_combo.currentData() == "vae" and p.epochs.value() == 60
    w.shutdown()


def test_run_names_are_unique_and_never_a_bundled_models_name(tmp_path):
    import time

    from explorer.panels.train.jobs import run_name, unique_path

    when = time.mktime((2026, 12, 6, 9, 31, 0, 0, 0, -1))
    name = run_name("vae", "digits", 28, when)
    assert name == "vae-digits-28-1206-0931"
    bundled = {os.path.splitext(f)[0] for f in os.listdir(os.path.join(os.path.dirname(__file__), "..", "assets", "models"))}
    assert name not in bundled and run_name("vae", "digits", 28) not in bundled
    first = unique_path(str(tmp_path), name)
    open(first, "wb").close()
    second = unique_path(str(tmp_path), name)
    assert os.path.basename(second) == "vae-digits-28-1206-0931-2.safetensors" and second != first


def test_first_launch_tip_points_at_train_manifold_arithmetic_until_dismissed(qtbot, monkeypatch, tmp_path):
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "fresh-home"))
    monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(tmp_path / "no-bundled-models"))
    make_app()
    st = Settings(runs_dir=str(tmp_path / "runs"))
    w = MainWindow(st, auto_load=False)
    qtbot.addWidget(w)
    w.resize(1024, 700)
    w.show()
    qtbot.wait(50)
    assert w.tip.isVisible()
    bar = w.tabs.tabBar()  # in the tab bar's corner: every tab still shows at the smallest size
    assert bar.sizeHint().width() <= bar.width() and w.tabs.currentWidget().height() > 550
    text = w.tip.label.text()
    for name in ("train", "manifold", "arithmetic"):
        assert f"href='{name}'" in text
    w.tip.label.linkActivated.emit("arithmetic")
    assert w.tabs.currentWidget() is w.panels["arithmetic"]
    w.tip.ok.click()
    assert not w.tip.isVisible() and st.tip_dismissed
    path = str(tmp_path / "settings.json")
    st.save(path)
    w.shutdown()
    w2 = MainWindow(Settings.load(path), auto_load=False)  # the next launch: no tip
    qtbot.addWidget(w2)
    w2.show()
    assert not w2.tip.isVisible()
    w2.shutdown()
