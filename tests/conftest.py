import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402

# Tests use tiny models, where one thread is faster than two and results (e.g. cached
# classifiers) do not depend on the machine's core count.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, tmp_path, monkeypatch):
    """Keep data-set caches and user settings out of the real home directory. The caches (keyed by
    content) are shared by the session; the user's home (settings and what is kept per model:
    bookmarks, vectors, keys) is each test's own, so no test sees another's."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("LATENT_EXPLORER_CACHE", str(root / "cache"))
    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))


def make_blobs(n=96, size=16, channels=1, seed=0):
    """A small labelled data set with real structure (blobs at class-dependent places)."""
    from engines.data.dataset import ImageDataset

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    yy, xx = np.mgrid[0:size, 0:size]
    imgs = np.zeros((n, size, size, channels), np.float32)
    for i, lab in enumerate(labels):
        cx = size * (0.25 + 0.25 * lab) + rng.normal(0, 0.5)
        cy = size * 0.5 + rng.normal(0, size * 0.1)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size * 0.12) ** 2))
        imgs[i] = blob[..., None] * (0.6 + 0.4 * rng.random(channels))
    u8 = (imgs * 255).round().astype(np.uint8)
    return ImageDataset("blobs", u8, labels=labels, label_names=["left", "mid", "right"],
                        attributes={"height": rng.random(n).astype(np.float32)}, source="blobs")


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    """`make_window(panel="manifold")`: a shown main window with its own settings home, no bundled
    models and nothing loaded; shut down (workers stopped) at teardown."""
    made = []

    def make(panel: str | None = None, size: tuple[int, int] | None = None, shutdown_ms: int | None = None):
        from explorer.app import make_app
        from explorer.settings import Settings
        from explorer.window import MainWindow

        monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(tmp_path / "no-bundled-models"))
        make_app()
        w = MainWindow(Settings(train={"data": "__tests_set_their_own__"}, runs_dir=str(tmp_path / "runs"),
                                tip_dismissed=True),
                       auto_load=False)
        qtbot.addWidget(w)
        if size:
            w.resize(*size)
        if panel:
            w.show_panel(panel)
        w.show()
        made.append((w, shutdown_ms))
        return w

    yield make
    from explorer import workers

    for w, ms in made:
        w.shutdown(ms) if ms is not None else w.shutdown()
    workers.wait_all(10_000)  # no worker of this test outlives it


@pytest.fixture
def tiny_dataset():
    """`make_blobs` (n=96, size=16, channels=1, seed=0) as a fixture."""
    return make_blobs


# Once in a few full runs, after every test has passed and pytest has printed its summary, the
# interpreter's final garbage collection aborts in C ("Fatal Python error: bool_dealloc", a
# refcount bug in a C extension; seen with PySide6 6.12 after the GUI tests): status 134 for a
# green run. End the process right after pytest has reported, with pytest's own exit status,
# so that shutdown-only crash cannot turn a result into a different one.
_exit_status = None


def pytest_sessionfinish(session, exitstatus):
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    import sys

    if _exit_status is not None and os.environ.get("LATENT_EXPLORER_NO_FAST_EXIT") != "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status)
