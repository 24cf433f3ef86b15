"""The Codebook panel offscreen on a tiny VQ-VAE over the blobs data (.npz): analysis, tiles in
both modes and both orders with dead codes marked, histogram/perplexity, map, clicking a code,
the token editor (paint, swap, undo, inpaint, prior sample) decoding off the GUI thread; and the
Manifold/Arithmetic panels working on a VQ model's pre-quantisation latents."""
import threading

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.vq.model import VQVAEEngine  # noqa: E402

TINY = dict(codebook_size=16, code_dim=4, width=8, prior_dim=16, prior_layers=1, prior_heads=2)


@pytest.fixture
def vq_path(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=96, size=16)
    data = tmp_path / "blobs.npz"
    np.savez(data, images=ds.images, labels=ds.labels, label_names=np.array(ds.label_names))
    from engines.data import load_dataset

    loaded = load_dataset(str(data))
    e = engines.create("vqvae", loaded.spec, device="cpu", seed=1, **TINY)
    for i in range(6):
        e.train_step(loaded.images[(i * 16) % 80:(i * 16) % 80 + 16])
    grids = e.encode_indices(loaded.images)
    for _ in range(3):
        e.prior_step(grids[:32])
    # A planted dead code: far from every encoder output, so no data cell quantises to it.
    e.nets["quantizer"].codebook.data[5] = 1e3
    return ckpt.save(str(tmp_path / "vq.safetensors"), e, data=loaded.describe(), train_state={"state": "finished"})


@pytest.fixture
def panel(qtbot):
    from explorer.app import make_app
    from explorer.context import Context
    from explorer.panels.codebook.panel import CodebookPanel
    from explorer.session import ModelSession
    from explorer.settings import Settings

    make_app()
    session = ModelSession("cpu")
    p = CodebookPanel(Context(session, Settings()))
    p.errors = []
    session.error.connect(lambda title, msg: p.errors.append((title, msg)))
    qtbot.addWidget(p)
    p.resize(1100, 720)
    p.show()
    yield p
    p.shutdown()
    from explorer import workers

    workers.wait_all(10_000)


def open_model(qtbot, p, path):
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    p.ctx.session.set_model(loaded.engine, loaded.info, path)
    qtbot.waitUntil(lambda: p.cd is not None, timeout=20_000)
    qtbot.waitUntil(lambda: p.ready_for_screenshot(), timeout=10_000)
    return loaded.engine


def test_analysis_tiles_histogram_and_map(qtbot, panel, vq_path):
    p = panel
    engine = open_model(qtbot, p, vq_path)
    cd = p.cd
    counts = engine.code_usage(cd.images).numpy()
    assert np.array_equal(cd.counts, counts) and cd.counts.sum() == 96 * 64
    assert cd.dead[5] and cd.counts[5] == 0
    assert f"perplexity {cd.perplexity:.1f}" in p.status.text() and f"{int(cd.dead.sum())} dead" in p.status.text()
    # Uniform tiles are the decoded uniform grids; typical patches come from the data.
    assert np.array_equal(cd.uniform[3], (engine.decode_indices(np.full((1, 8, 8), 3)) * 255).round().clamp(0, 255)
                          .byte().permute(0, 2, 3, 1).numpy()[0])
    live = np.nonzero(~cd.dead)[0]
    n, i, j = cd.typical_at[live[0]]
    assert cd.grids[n, i, j] == live[0]
    assert (cd.typical_at[cd.dead] == -1).all()
    # Order: index, then usage; dead codes marked.
    assert p.tiles.order() == sorted(p.tiles.order(), key=lambda c: -cd.counts[c]) or p.sort.currentIndex() == 0
    p.sort.setCurrentIndex(1)
    assert p.tiles.order() == list(np.argsort(-cd.counts, kind="stable"))
    p.sort.setCurrentIndex(0)
    assert p.tiles.order() == list(range(16))
    assert p.tiles._dead[5]
    p.mode.setCurrentIndex(1)
    assert p.tiles._tiles[0].width() == cd.typical.shape[2]
    # Histogram: shares sorted, summing to 100 %; the map has every live code as a point.
    assert np.allclose(p.histogram.shown, 100 * np.sort(cd.counts)[::-1] / cd.counts.sum())
    assert len(p.map.scatter.data) == int((~cd.dead).sum()) and len(p.map.dead.data) == int(cd.dead.sum())
    assert not p.errors


def test_codes_come_from_the_workspace_data_without_a_second_encode(qtbot, panel, vq_path):
    """The panel quantises the Workspace's latents (encoded once for every panel): the code grids
    equal encoding the images directly, and the analysis itself encodes nothing."""
    from explorer.panels.codebook import jobs

    p = panel
    engine = open_model(qtbot, p, vq_path)
    ws = p.ctx.workspace
    assert ws.data is not None and p.cd.source == ws.data.source
    direct = engine.encode_indices(ws.data.ds.images).numpy()
    assert np.array_equal(p.cd.grids, direct)
    assert np.array_equal(jobs.code_grids(engine, ws.data.ls.latents), direct)
    # Analysing again (the data is loaded now) calls the encoder not once.
    calls = []
    encode = engine.encode
    engine.encode = lambda x: calls.append(len(x)) or encode(x)
    try:
        cd = p.cd
        p._start(now=True)
        qtbot.waitUntil(lambda: p.cd is not cd and p.ready_for_screenshot(), timeout=20_000)
    finally:
        del engine.encode
    assert calls == [] and np.array_equal(p.cd.grids, direct) and np.array_equal(p.cd.counts, cd.counts)


def test_clicking_a_code_shows_its_patches_and_occurrences(qtbot, panel, vq_path):
    from PySide6.QtCore import Qt

    p = panel
    open_model(qtbot, p, vq_path)
    cd = p.cd
    code = int(np.argsort(-cd.counts)[1])
    rect = p.tiles.rect_of_code(code)
    qtbot.mouseClick(p.tiles, Qt.MouseButton.LeftButton, pos=rect.center())
    assert p.selected == code and p.editor.brush == code
    qtbot.waitUntil(lambda: p.patches.count() > 0 and not p._detail_runner.busy, timeout=10_000)
    assert p.patches.count() == min(40, int(cd.counts[code]))
    assert 0 < p.occurrences.count() <= 6
    assert f"Code {code}" in p.code_title.text()
    # A dead code: no patches, says so.
    p.select_code(5)
    qtbot.waitUntil(lambda: not p._detail_runner.busy, timeout=10_000)
    assert p.patches.count() == 0 and "dead" in p.code_title.text()
    # The map selects too.
    p.map.clicked.emit(code)
    assert p.selected == code


def test_token_editor_paints_swaps_and_decodes_off_the_gui_thread(qtbot, panel, vq_path, monkeypatch, tmp_path):
    p = panel
    engine = open_model(qtbot, p, vq_path)
    threads = []
    original = VQVAEEngine.decode_indices

    def recording(self, idx):
        threads.append(threading.current_thread())
        return original(self, idx)

    monkeypatch.setattr(VQVAEEngine, "decode_indices", recording)
    ed = p.editor
    p.tabs.setCurrentIndex(1)
    ed.use_image(7)
    assert np.array_equal(ed.grid, p.cd.grids[7])
    qtbot.waitUntil(lambda: not ed.busy, timeout=10_000)
    before = ed.result._image.copy()
    brush = int(np.argmax(p.cd.counts))
    target = next(c for c in range(16) if c != brush and not p.cd.dead[c])
    ed.set_brush(target)
    ed.paint_cells([(2, 2), (2, 3), (3, 3)])
    assert ed.grid[2, 2] == target and ed.mask.sum() == 3
    qtbot.waitUntil(lambda: not ed.busy, timeout=10_000)
    assert threads and all(t is not threading.main_thread() for t in threads)
    expected = original(engine, ed.grid[None])
    got = np.asarray(ed._decoded, np.float32) / 255
    assert np.abs(got - expected[0].permute(1, 2, 0).numpy()).max() < 1 / 255 + 1e-6
    assert ed.result._image != before
    # Undo restores the grid before the stroke; swap replaces every occurrence.
    ed.undo_last()
    assert np.array_equal(ed.grid, p.cd.grids[7])
    old = int(ed.grid[0, 0])
    n = ed.swap(old, target)
    assert n == int((p.cd.grids[7] == old).sum()) and not (ed.grid == old).any()
    # Inpainting redraws only the painted cells.
    ed.reset()
    ed.paint_cells([(4, 4), (4, 5)])
    assert ed.inpaint_btn.isEnabled()
    kept = ed.grid.copy()
    ed.inpaint()
    qtbot.waitUntil(lambda: not ed.busy, timeout=10_000)
    outside = np.ones((8, 8), bool)
    outside[4, 4:6] = False
    assert np.array_equal(ed.grid[outside], kept[outside])
    # A user's image file is resized and encoded in a worker; an unreadable one is reported.
    from PIL import Image

    path = str(tmp_path / "mine.png")
    Image.fromarray((np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)).save(path)
    ed.use_file(path)
    qtbot.waitUntil(lambda: not ed.busy, timeout=10_000)
    assert ed.image.shape == (16, 16, 1) and np.array_equal(ed.grid, engine.encode_indices(ed.image[None])[0].numpy())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    ed.use_file(str(bad))
    qtbot.waitUntil(lambda: not ed.busy, timeout=10_000)
    assert p.errors and "bad.png" in p.errors[-1][1]
    p.errors.clear()
    # A prior sample replaces the grid; its decoding becomes the canvas background.
    ed.sample()
    qtbot.waitUntil(lambda: not ed.busy and ed.image is None, timeout=10_000)
    assert ed.grid.shape == (8, 8) and ed.canvas._image is not None
    assert not p.errors


def test_other_models_get_a_clear_message(qtbot, panel, tmp_path, tiny_dataset):
    ds = tiny_dataset(n=16, size=16)
    e = engines.create("ae", ds.spec, device="cpu", latent_dim=2, width=8)
    path = ckpt.save(str(tmp_path / "ae.safetensors"), e, data=ds.describe())
    loaded = ckpt.load(path, device="cpu")
    panel.ctx.session.set_model(loaded.engine, loaded.info, path)
    assert "no codebook" in panel.status.text() and panel.cd is None
    assert panel.ready_for_screenshot()


def test_manifold_and_arithmetic_work_on_a_vq_model(qtbot, make_window, vq_path):
    """Their latent is the pre-quantisation grid, flattened; decoding quantises it first."""
    w = make_window("manifold")
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(vq_path)
    m = w.panels["manifold"]
    qtbot.waitUntil(lambda: m.projection is not None and m.inspector.image.has_image(), timeout=20_000)
    qtbot.waitUntil(lambda: not m.busy, timeout=10_000)
    assert m.md.ls.latents.shape == (96, 4 * 8 * 8)
    w.show_panel("arithmetic")
    a = w.panels["arithmetic"]
    qtbot.waitUntil(lambda: a.md is not None and a.edit.last_result is not None, timeout=20_000)
    from explorer.panels.arithmetic.jobs import Recipe

    with qtbot.waitSignal(a.vector_added, timeout=10_000):
        assert a.add_vector(Recipe("label", label=2))
    qtbot.waitUntil(lambda: a.edit.last_strip is not None, timeout=10_000)
    assert a.edit.strip.count() == 9
    # Ctrl+4 shows the Codebook panel, which analyses the model once shown.
    w.actions_by_id["view.panel.codebook"].trigger()
    c = w.panels["codebook"]
    assert w.tabs.currentWidget() is c
    qtbot.waitUntil(lambda: c.cd is not None and c.ready_for_screenshot(), timeout=20_000)
    assert not w.errors


def test_training_the_prior_from_the_panel_saves_it(qtbot, panel, vq_path, tmp_path):
    p = panel
    engine = open_model(qtbot, p, vq_path)
    before = int(engine.nets["prior"].trained_steps)
    assert p.prior.isEnabled()
    p.prior.epochs.setValue(1)
    out = str(tmp_path / "with-prior.safetensors")
    with qtbot.waitSignal(p.prior.trained, timeout=30_000) as got:
        p.prior.start(out)
    assert got.args == [out]
    qtbot.waitUntil(lambda: not p.prior.running, timeout=10_000)
    back = ckpt.load(out, device="cpu").engine
    assert int(back.nets["prior"].trained_steps) > before
    assert p.cd.prior_trained and "Prior: trained" in p.status.text()
    assert not p.errors


def test_umap_map_runs_in_a_worker(qtbot, panel, vq_path, monkeypatch):
    """With a stand-in for UMAP's fit (numba never compiles here): the map switches when it is done."""
    from explorer.panels.codebook import jobs as codebook_jobs

    calls = []

    def fake_umap(vectors, seed=0):
        calls.append(threading.current_thread())
        return np.asarray(vectors[:, :2], np.float32) * 2

    monkeypatch.setattr(codebook_jobs, "umap_coords", fake_umap)
    p = panel
    open_model(qtbot, p, vq_path)
    p.projection.setCurrentIndex(1)
    qtbot.waitUntil(lambda: p.ready_for_screenshot(), timeout=10_000)
    assert calls and calls[0] is not threading.main_thread()
    live = ~p.cd.dead
    assert np.allclose(p.map.scatter.data["x"], p.cd.vectors[live, 0] * 2)
    p.projection.setCurrentIndex(0)
    assert np.allclose(p.map.scatter.data["x"], p.cd.coords[live, 0])


def test_train_panel_trains_a_vqvae(qtbot, make_window, tiny_dataset):
    """The Train panel's generated form and loop work for the vqvae engine (per-step perplexity plotted)."""
    w = make_window()
    panel = w.panels["train"]
    qtbot.waitUntil(lambda: not panel.data_box.loading, timeout=10_000)
    panel.data_box.set_dataset(tiny_dataset(n=48, size=16))
    panel.engine_combo.setCurrentIndex(panel.engine_combo.findData("vqvae"))
    panel.form.set_values({**TINY, "batch_size": 16})
    panel.epochs.setValue(2)
    with qtbot.waitSignal(panel.training_finished, timeout=60_000) as done:
        assert panel.start()
    last = done.args[0]
    assert last.state == "finished", last.message
    info = ckpt.read_info(last.checkpoint)
    assert info.engine == "vqvae" and info.config["codebook_size"] == 16
    assert {"perplexity", "codes_used_epoch", "mse"} <= set(panel.loss_plot.terms())
    assert not w.errors


def test_analysis_of_a_gumbel_model(tiny_dataset, tmp_path):
    """The panel's compute (no Qt) on the dVAE variant: typical cells are the most confident ones."""
    from explorer.panels.codebook import jobs

    ds = tiny_dataset(n=32, size=16)
    data = tmp_path / "blobs.npz"
    np.savez(data, images=ds.images)
    e = engines.create("vqvae", ds.spec, device="cpu", quantizer="gumbel", **TINY)
    e.train_step(ds.images[:16])
    from engines.latent.progress import run
    from explorer.workspace.data import load_model_data

    md = run(load_model_data(e, None, str(data)))
    gen = jobs.analyse(e, md)
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    cd = stop.value.value
    assert cd.grids.shape == (32, 8, 8) and cd.counts.sum() == 32 * 64
    assert np.array_equal(cd.grids, e.encode_indices(ds.images).numpy())
    live = np.nonzero(~cd.dead)[0]
    for c in live:
        n, i, j = cd.typical_at[c]
        assert cd.grids[n, i, j] == c
    d = jobs.code_detail(e, cd, int(live[0]))
    assert len(d.patches) == min(40, int(cd.counts[live[0]]))
