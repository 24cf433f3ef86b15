"""The Arithmetic panel's Directions tab offscreen, on a tiny VAE over the blobs .npz: GANSpace
found in a worker, one strip −3σ…+3σ per direction, renaming, a slider that edits the base image,
the direction kept through a session's save and restore, offered by the Export panel's sweep,
and finding again replaces only the directions not renamed; SeFa on a GAN without any data."""
import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from test_gui_arithmetic import blobs, make_model, open_model, panel  # noqa: E402,F401  (fixtures)

from engines.latent import directions as dirs  # noqa: E402


def _find(qtbot, p, method, k):
    with qtbot.waitSignal(p.directions.found, timeout=60_000) as got:
        assert p.directions.find(method, k)
    qtbot.waitUntil(lambda: not p.directions.busy, timeout=30_000)
    return got.args[0]


def test_directions_found_renamed_moved_saved_and_exported(qtbot, panel, make_model, tmp_path):  # noqa: F811
    from explorer.panels.export.panel import ExportPanel
    from explorer.sessions import SessionFiles

    p = panel
    loaded = make_model("vae")
    open_model(qtbot, p, loaded)
    ws = p.ctx.workspace
    p.tabs.setCurrentWidget(p.directions)
    assert p.directions.layer_note.isVisible() and "reads z once" in p.directions.layer_note.text()
    found = _find(qtbot, p, "ganspace", 3)
    assert [v.name for v in found] == ["GANSpace 1", "GANSpace 2", "GANSpace 3"]
    assert [v.name for v in p.directions.directions()] == ["GANSpace 1", "GANSpace 2", "GANSpace 3"]
    assert not ws.active_vectors  # found switched off: no eight sliders appear on their own
    u = np.stack([v.vector / v.meta["sigma"] for v in found])
    assert np.abs(u @ u.T - np.eye(3)).max() < 1e-5
    rows = list(p.directions.rows.values())
    qtbot.waitUntil(lambda: all(r.strip.count() == 7 for r in rows), timeout=20_000)
    assert rows[0].strip.captions() == ["−3σ", "−2σ", "−1σ", "0", "+1σ", "+2σ", "+3σ"]
    assert "% of the variance" in rows[0].info.text() and "random" in rows[0].info.text()
    assert p.vectors.list.count() == 3 and "effect" in p.vectors.list.item(0).text()  # in the vector list too

    # Rename: the Workspace's vector (the same object) gets the name, everywhere.
    first = found[0]
    rows[0].name.setText("smile")
    rows[0].name.editingFinished.emit()
    assert ws.vector("smile") is first and p.vectors.list.item(0).text().startswith("smile")
    assert p.directions.rows[id(first)] is rows[0]  # the row (and its strip) stay

    # The slider moves the base image: the vector switches on, the Edit tab's strength follows.
    before = p.edit.last_result.copy()
    rows[0].slider.setValue(2.0)
    assert ws.is_active("smile") and p.edit.strength(first) == 2.0
    qtbot.waitUntil(lambda: p.edit.last_result is not None and not np.array_equal(p.edit.last_result, before),
                    timeout=10_000)
    qtbot.waitUntil(lambda: p.directions.result.has_image(), timeout=5_000)
    assert p.edit.sliders[first].value() == 2.0
    p.edit.sliders[first].setValue(-1.0)  # and the other way: the Edit tab's slider moves the row's
    qtbot.waitUntil(lambda: rows[0].slider.value() == -1.0, timeout=10_000)
    rows[0].slider.setValue(2.0)

    # The Export panel's sweep offers it like any vector.
    export = ExportPanel(p.ctx)
    qtbot.addWidget(export)
    export.options.kind.setCurrentIndex(export.options.kind.findData("sweep"))
    export.options.vector.setCurrentIndex(export.options.vector.findText("smile"))
    spec = export.current_spec()
    assert spec.sweep.name == "smile" and np.allclose(spec.sweep.vector, first.vector)
    export.shutdown()

    # A session keeps it: saved, the direction removed, the session opened again.
    files = SessionFiles(p.ctx, {"arithmetic": p})
    path = str(tmp_path / "s.lxsession")
    assert files.save_to(path)
    ws.remove_vector("smile")
    assert "smile" not in [v.name for v in p.directions.directions()] and len(p.directions.rows) == 2
    assert files.open_path(path) == "restored"
    back = ws.vector("smile")
    assert back is not None and dirs.is_direction(back) and np.array_equal(back.vector, first.vector)
    assert back.meta == first.meta and ws.is_active("smile")
    assert [v.name for v in p.directions.directions()] == ["GANSpace 2", "GANSpace 3", "smile"]
    assert p.edit.strength(back) == 2.0
    qtbot.waitUntil(lambda: p.directions.rows[id(back)].slider.value() == 2.0, timeout=10_000)  # on the next render

    # Finding again replaces the directions that were not renamed; the renamed one stays.
    _find(qtbot, p, "ganspace", 3)
    assert sorted(v.name for v in p.directions.directions()) == ["GANSpace 1", "GANSpace 2", "GANSpace 3", "smile"]
    assert not p.errors


def test_sefa_on_a_gan_needs_no_data_and_pca_has_no_sefa(qtbot, panel, blobs, tmp_path):  # noqa: F811
    import engines
    from engines import checkpoint as ckpt

    p = panel
    e = engines.create("gan", blobs.spec, device="cpu", latent_dim=4, width=4, invert_steps=1, invert_restarts=1)
    for i in range(10):
        e.train_step(blobs.images[i * 8:(i + 1) * 8])
    path = ckpt.save(str(tmp_path / "gan.safetensors"), e, train_state={"state": "finished"})  # no data set
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    p.hide()  # nothing asks for data
    p.ctx.session.set_model(loaded.engine, loaded.info, loaded.info.path)
    assert p.md is None
    p.edit.chooser.sample_requested.emit(3)  # a sample as the base
    qtbot.waitUntil(lambda: p.edit.base is not None, timeout=10_000)
    found = _find(qtbot, p, "sefa", 4)
    assert [v.method for v in found] == ["sefa"] * 4 and found[0].meta["eigenvalue"] >= found[1].meta["eigenvalue"]
    qtbot.waitUntil(lambda: all(r.strip.count() == 7 for r in p.directions.rows.values()), timeout=20_000)

    pca = engines.create("pca", blobs.spec, device="cpu", n_components=3)
    pca.fit(blobs.images)
    path = ckpt.save(str(tmp_path / "pca.safetensors"), pca, train_state={"state": "finished"})
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    p.ctx.session.set_model(loaded.engine, loaded.info, loaded.info.path)
    sefa = p.directions.method.model().item(p.directions.method.findData("sefa"))
    assert not sefa.isEnabled() and "no first linear layer" in sefa.toolTip()
    assert p.directions.method.currentData() == "ganspace"
    assert not p.directions.find_btn.isEnabled() and "Waiting for the model's encoded data" in p.directions.state.text()
    assert not p.errors
