"""The Train panel's data picker lists the public sets with their download size; choosing one that
is not cached downloads it in a worker with a determinate progress bar and Cancel (local server)."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("pytestqt")

from test_datasets_registry import Server, _data_dir, folder, serve  # noqa: E402,F401  (fixtures)

from engines.data.public import is_cached  # noqa: E402


@pytest.fixture
def server(monkeypatch):
    s = Server()
    monkeypatch.setenv("LATENT_EXPLORER_DATA_MIRROR", s.url)
    yield s
    s.stop()


def _box(qtbot):
    from explorer.panels.train.data_box import DataBox

    box = DataBox(builtin=("digits",), public=("mnist", "cifar10"))
    qtbot.addWidget(box)
    qtbot.waitUntil(lambda: not box.loading, timeout=10_000)
    return box


def test_picker_lists_public_sets_and_downloads_with_progress(qtbot, server, monkeypatch):
    serve(server, monkeypatch, "mnist")
    server.slow = 0.002
    box = _box(qtbot)
    texts = [box.source.itemText(i) for i in range(box.source.count())]
    assert any(t.startswith("mnist (") and "MB download" in t for t in texts)
    assert any(t.startswith("cifar10 (170 MB download") for t in texts)
    seen = []
    box.progress.valueChanged.connect(lambda v: seen.append((v, box.progress.format())))
    box.source.setCurrentIndex(box.source.findData("mnist"))
    assert box.downloading and box.progress.isVisibleTo(box) and box.cancel_download.isVisibleTo(box)
    qtbot.waitUntil(lambda: box.dataset is not None, timeout=30_000)
    assert len(box.dataset) == 80 and not box.downloading and not box.progress.isVisibleTo(box)
    down = [v for v, text in seen if text.endswith(" MB")]
    conv = [v for v, text in seen if "converting" in text]
    reports = [text.endswith(" MB") for _, text in seen[1:]]  # (seen[0]: the bar reset to 0 as it appears)
    assert reports == [True] * len(down) + [False] * len(conv)  # the download, then converting
    for values in (down, conv):
        assert values and values == sorted(values) and values[-1] == 1000 and any(0 < v < 1000 for v in values)
    assert seen[-1][1] == "mnist: converting 2 of 2"
    assert box.source.itemText(box.source.findData("mnist")) == "mnist (downloaded)"


def test_cancel_stops_the_download_and_keeps_nothing(qtbot, server, monkeypatch):
    serve(server, monkeypatch, "mnist")
    server.slow = 0.05  # ~3 s for the image file
    box = _box(qtbot)
    box.source.setCurrentIndex(box.source.findData("mnist"))
    qtbot.waitUntil(lambda: box.progress.value() > 0, timeout=10_000)
    worker = box._download[1]
    box.cancel_download.click()
    assert not box.downloading and "cancelled" in box.summary.text()
    from explorer.workers import live_count

    qtbot.waitUntil(lambda: live_count() == 0, timeout=15_000)  # the download thread has stopped
    assert worker.quitting and not os.listdir(folder("mnist"))  # pooch removed its temp file
    assert not is_cached("mnist") and box.dataset is None


def test_a_failed_download_shows_the_one_line_error(qtbot, server, monkeypatch):
    serve(server, monkeypatch, "mnist")
    server.files.clear()  # the mirror lacks the files
    box = _box(qtbot)
    box.source.setCurrentIndex(box.source.findData("mnist"))
    qtbot.waitUntil(lambda: bool(box.last_error), timeout=15_000)
    assert "HTTP 404" in box.last_error and "by hand" in box.last_error and not box.downloading


def test_manifold_and_arithmetic_pickers_offer_the_public_sets_and_map_one(qtbot, server, monkeypatch, make_window):
    """A digits model on the map of MNIST (served locally): the Manifold's data picker and the
    Arithmetic panel's 'Use other data…' list the public sets; choosing one downloads it through
    the Workspace's data load, and every panel then shows that data."""
    serve(server, monkeypatch, "mnist")
    w = make_window("manifold")
    combo = w.panels["manifold"].controls.data_combo
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert any(t.startswith("Public: mnist (") for t in texts) and any(t.startswith("Public: celeba (") for t in texts)
    menu = [a.text() for a in w.panels["arithmetic"].data_btn.menu().actions()]
    assert any(t.startswith("Public: fashion-mnist (") for t in menu)
    model = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models",
                         "pca-digits-28.safetensors")
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(model)
    ws = w.ctx.workspace
    combo.setCurrentIndex(combo.findData("mnist"))
    combo.activated.emit(combo.currentIndex())
    qtbot.waitUntil(lambda: ws.data is not None and ws.data.source == "mnist", timeout=60_000)
    assert len(ws.data.ls) == 80 and is_cached("mnist")
    w.show_panel("arithmetic")
    qtbot.waitUntil(lambda: w.panels["arithmetic"].md is ws.data, timeout=20_000)


def test_converting_shows_in_the_progress_bar_and_cancel_leaves_no_cache(qtbot, server, monkeypatch):
    """CelebA's conversion (JPEGs → 64×64 cache) shows its own progress in the same bar, and the
    same Cancel stops it: no cache, no temp folder; the verified downloads stay."""
    import sys
    import time

    from test_datasets_registry import celeba_files

    convmod = sys.modules["engines.data.public.convert"]
    files = serve(server, monkeypatch, "celeba", celeba_files(n=40))
    monkeypatch.setattr(convmod, "REPORT_EVERY", 1)
    crop = convmod._crop
    monkeypatch.setattr(convmod, "_crop", lambda im, side: (time.sleep(0.1), crop(im, side))[1])  # ~4 s in all
    from explorer.panels.train.data_box import DataBox

    box = DataBox(builtin=("digits",), public=("celeba",))
    qtbot.addWidget(box)
    qtbot.waitUntil(lambda: not box.loading, timeout=10_000)
    box.source.setCurrentIndex(box.source.findData("celeba"))
    qtbot.waitUntil(lambda: "converting 3 of 40" in box.progress.format(), timeout=20_000)
    assert box.summary.text().startswith("Converting celeba") and box.cancel_download.isVisibleTo(box)
    assert 0 < box.progress.value() < 1000
    box.cancel_download.click()
    from explorer.workers import live_count

    qtbot.waitUntil(lambda: live_count() == 0, timeout=15_000)
    assert sorted(os.listdir(folder("celeba"))) == sorted(files)  # no cache-v1, no .tmp-… folder
    assert not is_cached("celeba") and box.dataset is None and not box.downloading


def test_screenshot_data_option_maps_a_public_set_on_the_manifold(server, monkeypatch, tmp_path):
    """`screenshot --panel manifold --model … --data mnist`: the model's map shows that data
    (downloaded from the local server), not its training data."""
    from PIL import Image

    from engines.data.public import PUBLIC
    from explorer.screenshot import main as shot

    serve(server, monkeypatch, "mnist")
    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))
    model = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models",
                         "pca-digits-28.safetensors")
    out = str(tmp_path / "m.png")
    assert shot(["--panel", "manifold", "--model", model, "--data", "mnist", "--size", "900x600", "--out", out]) == 0
    assert is_cached("mnist") and min(Image.open(out).size) >= 600
    assert sorted(server.requests) == sorted(PUBLIC["mnist"].files[i].name for i in range(4))  # fetched for the map
