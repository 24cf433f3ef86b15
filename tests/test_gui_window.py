"""The main window offscreen: library, bundled-model loading, errors, settings, workers, actions, screenshots."""
import os
import threading
import time

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.train import sample_grid  # noqa: E402


def save_tiny(path, ds, engine="vae", data_name=None, **cfg):
    cfg = cfg or ({"n_components": 2} if engine == "pca" else {"latent_dim": 2, "width": 8})
    e = engines.create(engine, ds.spec, device="cpu", **cfg)
    data = ds.describe()
    if data_name:
        data["name"] = data_name
    ckpt.save(str(path), e, data=data, metrics={"test_mse": 0.01},
              train_state={"elapsed_s": 75.0, "state": "finished"}, thumbnail=sample_grid(e, 4))
    return str(path)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(models))
    return tmp_path


@pytest.fixture
def make_window(qtbot, env):
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    make_app()
    made = []

    def make(settings=None, **kw):
        # A data source that fails at once: tests hand the Train panel their own tiny set.
        s = settings or Settings(train={"data": "__tests_set_their_own__"}, runs_dir=str(env / "runs"))
        w = MainWindow(settings=s, **kw)
        qtbot.addWidget(w)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        w.shutdown()


def test_window_loads_the_bundled_faces_vae_first(qtbot, make_window, env, tiny_dataset):
    ds = tiny_dataset()
    save_tiny(env / "models" / "ae-blobs.safetensors", ds, "ae")
    save_tiny(env / "models" / "vae-faces-64.safetensors", ds, "vae", data_name="faces")
    (env / "models" / "broken.safetensors").write_bytes(b"not a checkpoint")
    w = make_window()
    qtbot.waitUntil(lambda: w.session.engine is not None, timeout=10_000)
    assert os.path.basename(w.session.path) == "vae-faces-64.safetensors"
    assert w.session.engine.name == "vae"
    lib = w.library
    assert sorted(os.path.basename(p) for p in lib.paths()) == ["ae-blobs.safetensors", "broken.safetensors",
                                                                "vae-faces-64.safetensors"]
    texts = [lib.list.item(i).text() for i in range(lib.list.count())]
    assert "Bundled models" in texts
    vae = next(t for t in texts if t.startswith("vae-faces-64"))
    assert "VAE · faces · 16×16 grey" in vae and "latent 2" in vae and "1 min 15 s" in vae
    assert any("cannot open" in t for t in texts)  # a bad file is listed, not fatal
    assert lib.entry(w.session.path).thumbnail is not None
    assert "vae-faces-64" in w.model_label.text() and "cpu" in w.device_label.text()
    # Selecting another entry loads it for every panel.
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        lib.select(str(env / "models" / "ae-blobs.safetensors"))
    assert w.session.engine.name == "ae"
    assert not w.grab().isNull()


def test_empty_library_starts_fine(qtbot, make_window):
    w = make_window()
    qtbot.waitUntil(lambda: not w.library.scanning, timeout=10_000)
    qtbot.wait(50)
    assert w.library.paths() == [] and w.session.engine is None
    assert w.library.empty.isVisibleTo(w)
    assert w.model_label.text() == "Model: none"
    from explorer import panels

    assert list(w.panels) == panels.names()  # the registered panels; later ones come with their issues


def test_open_file_adds_it_to_library_and_bad_files_report_an_error(qtbot, make_window, env, tiny_dataset):
    path = save_tiny(env / "elsewhere.safetensors", tiny_dataset(), "pca")
    w = make_window()
    qtbot.waitUntil(lambda: not w.library.scanning, timeout=10_000)
    w.open_path(path)
    qtbot.waitUntil(lambda: w.session.engine is not None, timeout=10_000)
    qtbot.waitUntil(lambda: path in w.library.paths(), timeout=10_000)
    assert w.library.entry(path).source == "opened"
    assert w.settings.opened_files[0] == path
    bad = env / "bad.safetensors"
    bad.write_bytes(b"\x00" * 40)
    w.open_path(str(bad))
    assert w.errors and "not a checkpoint" in w.errors[-1][1]
    assert w.isVisible() and w.session.engine is not None  # the app stays up with the old model


def test_errors_in_workers_reach_the_user(qtbot, make_window, env):
    w = make_window()
    fake = env / "runs" / "gone.safetensors"
    w.session.load(str(fake))  # fails inside the worker
    qtbot.waitUntil(lambda: bool(w.errors), timeout=10_000)
    assert w.errors[-1][0] == "Could not open model" and "no such file" in w.errors[-1][1]
    assert not w.session.busy_text


def test_settings_persist_geometry_and_paths(qtbot, make_window, env):
    from explorer.settings import SCHEMA_VERSION, Settings, settings_path

    w = make_window()
    w.resize(1100, 720)
    w.settings.last_open_dir = "/some/where"
    w.close()
    path = settings_path()
    assert path.startswith(str(env / "home"))
    s = Settings.load()
    assert s.schema_version == SCHEMA_VERSION and s.last_open_dir == "/some/where" and s.window_geometry
    w2 = make_window(settings=s)
    # The offscreen screen is 800 px wide, so Qt clamps the restored width; the height shows it came back.
    assert w2.height() == 720


def test_settings_versions_and_bad_files(env):
    from explorer.settings import SCHEMA_VERSION, Settings

    assert Settings.from_dict({"last_open_dir": "/x", "runs_dir": 5}).last_open_dir == "/x"  # v0, wrong type dropped
    assert Settings.from_dict({"schema_version": SCHEMA_VERSION + 1, "last_open_dir": "/x"}).last_open_dir == ""
    p = env / "s.json"
    p.write_text("{not json")
    assert Settings.load(str(p)) == Settings()
    s = Settings(runs_dir=str(env / "r"))
    s.remember("opened_files", "a")
    s.remember("opened_files", "b")
    s.remember("opened_files", "a")
    s.save(str(p))
    assert Settings.load(str(p)).opened_files == ["a", "b"] and Settings.load(str(p)).runs_folder == str(env / "r")


def test_latest_request_wins(qtbot):
    from explorer.workers import LatestRequestRunner

    threads = set()

    def slow(x):
        threads.add(threading.current_thread())
        time.sleep(0.03)
        return x * 10

    r = LatestRequestRunner(slow)
    got = []
    r.result.connect(lambda g, req, v: got.append((g, req, v)))
    for i in range(100):  # a slider dragged across 100 positions
        r.submit(i)
    qtbot.waitUntil(lambda: not r.busy, timeout=5000)
    assert got[-1] == (100, 99, 990)
    assert r.computed <= 3
    assert [g for g, _, _ in got] == sorted({g for g, _, _ in got})  # never an older one after a newer one
    assert threading.main_thread() not in threads
    # A result that finishes after a newer request was cancelled never paints.
    r.submit(5)
    r.cancel()
    qtbot.waitUntil(lambda: not r.busy, timeout=5000)
    assert got[-1] == (100, 99, 990)


def test_latest_request_runner_steps_generators_and_interrupts_them(qtbot):
    """A generator job reports its yields as progress; with interrupt=True a newer request stops
    the running one at its next yield (no result from it), and cancel stops it too."""
    from explorer.workers import LatestRequestRunner

    ran = []

    def steps(n):
        for k in range(n):
            time.sleep(0.01)
            ran.append((n, k))
            yield k
        return n * 10

    r = LatestRequestRunner(steps, interrupt=True)
    got, prog = [], []
    r.result.connect(lambda g, req, v: got.append((req, v)))
    r.progress.connect(lambda g, req, v: prog.append((req, v)))
    r.submit(3)
    qtbot.waitUntil(lambda: not r.busy, timeout=5000)
    assert got == [(3, 30)] and prog == [(3, 0), (3, 1), (3, 2)]
    r.submit(1000)
    qtbot.waitUntil(lambda: len(prog) > 4, timeout=5000)
    r.submit(2)
    qtbot.waitUntil(lambda: not r.busy, timeout=5000)
    assert got[-1] == (2, 20) and len(got) == 2  # the long run gave no result …
    assert sum(1 for n, _ in ran if n == 1000) < 100  # … and stopped soon after the newer request
    r.submit(1000)
    qtbot.waitUntil(lambda: prog[-1][0] == 1000, timeout=5000)
    r.cancel()
    qtbot.waitUntil(lambda: not r.busy, timeout=5000)
    assert got[-1] == (2, 20) and sum(1 for n, _ in ran if n == 1000) < 200
    # Without interrupt (the default), a running generator runs to its end as before.
    plain = LatestRequestRunner(steps)
    plain.submit(5)
    plain.submit(1)
    qtbot.waitUntil(lambda: not plain.busy, timeout=5000)
    assert ran.count((5, 4)) == 1


def test_worker_signals(qtbot):
    from explorer.workers import Worker

    def gen():
        yield 1
        yield 2
        return "done"

    w = Worker(gen)
    seen = []
    w.yielded.connect(seen.append)
    with qtbot.waitSignal(w.returned, timeout=5000) as ret:
        w.start()
    assert seen == [1, 2] and ret.args == ["done"]

    def boom():
        raise ValueError("bad thing")

    w2 = Worker(boom)
    with qtbot.waitSignal(w2.errored, timeout=5000) as err:
        w2.start()
    assert "bad thing" in str(err.args[0]) and "Traceback" in err.args[0].traceback_text
    assert w2.thread_name != threading.main_thread().name


def test_actions_are_declared_once_and_wired(qtbot, make_window):
    from explorer import actions

    ids = [a.id for a in actions.ACTIONS]
    assert len(ids) == len(set(ids))
    keys = [a.shortcut for a in actions.ACTIONS if a.shortcut]
    assert len(keys) == len(set(keys))
    w = make_window()
    for a in actions.ACTIONS:
        assert callable(actions.resolve_callback(w, a.callback)), a.callback
    titles = [m.title() for m in w.menuBar().findChildren(type(w.menuBar().addMenu("x")))]
    assert {"&File", "&View", "&Train", "&Help"} <= set(titles)
    w.actions_by_id["view.library"].trigger()
    assert not w.library_dock.isVisible()
    w.actions_by_id["view.library"].trigger()
    assert w.library_dock.isVisible()


def test_session_actions_belong_to_the_window(qtbot, make_window):
    """File → Save/Open Session are the window's (explorer/sessions.py), not a panel's: with no
    model loaded, saving says why and writes nothing."""
    from explorer import actions

    by_id = {a.id: a for a in actions.ACTIONS}
    for aid in ("file.save_session", "file.open_session", "file.save_panel_png"):
        assert not by_id[aid].callback.startswith("panel:"), aid
    w = make_window()
    w.actions_by_id["file.save_session"].trigger()
    assert "Load a model first" in w.statusBar().currentMessage()
    assert w.actions_by_id["file.save_session"].shortcut().toString() == "Ctrl+Shift+S"
    assert w.actions_by_id["file.open_session"].shortcut().toString() == "Ctrl+Shift+O"


def test_screenshot_command(qtbot, env, tiny_dataset):
    from PySide6.QtGui import QImage

    from explorer.screenshot import main

    model = save_tiny(env / "m.safetensors", tiny_dataset(), "vae")
    out = env / "shot.png"
    assert main(["--panel", "train", "--model", model, "--out", str(out),
                 "--data", "__none__", "--size", "1200x700"]) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1200, 700)
    assert main(["--panel", "nonsense", "--out", str(out)]) == 2


def test_drop_a_checkpoint_on_the_window(qtbot, make_window, env, tiny_dataset):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    path = save_tiny(env / "dropped.safetensors", tiny_dataset(), "ae")
    w = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    ev = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    w.dropEvent(ev)
    qtbot.waitUntil(lambda: w.session.engine is not None and w.session.engine.name == "ae", timeout=10_000)
    qtbot.waitUntil(lambda: path in w.library.paths(), timeout=10_000)


def test_about_names_every_registered_model_family(qtbot, make_window):
    import re

    import engines

    shown = {"pca": r"\bPCA\b", "ae": r"\bAE\b", "vae": r"\bVAE", "vqvae": r"\bVQ-VAE", "gan": r"\bGAN",
             "diffusion": r"\bdiffusion\b", "latent-diffusion": r"\blatent diffusion\b",
             "flow": r"\bflow\b",
             "pixelcnn": r"\bPixelCNN\b"}
    assert set(engines.names()) <= set(shown), "a new family: name it in show_about and here"
    w = make_window()
    w.show_about()
    text = w._dialog.text()
    missing = [name for name in engines.names() if not re.search(shown[name], text)]
    assert missing == [], text
    assert "denoising" in text  # the AE family's denoising variant


def test_panels_docstring_names_every_panel():
    from explorer import panels

    assert [s.title for s in panels.PANELS if s.title not in panels.__doc__] == []
    assert "later issues" not in panels.__doc__
