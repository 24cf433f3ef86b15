"""The Workspace on its own (no panel, no window): data encoded once and shared, keys, groups →
vector, history, bookmarks per model, and its session state round trip."""
import numpy as np
import pytest

import engines
from engines import checkpoint as ckpt


@pytest.fixture
def vae(tmp_path, tiny_dataset, monkeypatch):
    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))  # bookmarks/vectors per test
    ds = tiny_dataset(n=96, size=16)
    data = tmp_path / "blobs.npz"
    np.savez(data, images=ds.images, labels=ds.labels, label_names=np.array(ds.label_names),
             attr_height=ds.attributes["height"])
    from engines.data import load_dataset

    loaded = load_dataset(str(data))
    e = engines.create("vae", loaded.spec, device="cpu", seed=1, latent_dim=4, width=8)
    path = ckpt.save(str(tmp_path / "vae-blobs.safetensors"), e, data=loaded.describe(),
                     train_state={"state": "finished"})
    return path


def _workspace(path):
    from explorer.app import make_app
    from explorer.workspace import Workspace

    make_app()
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    return Workspace(loaded.engine, loaded.info, path)


def _count_encodes(engine, monkeypatch):
    calls = []
    original = engine.encode

    def counting(x, *a, **k):
        calls.append(len(x))
        return original(x, *a, **k)

    monkeypatch.setattr(engine, "encode", counting)
    return calls


def test_data_is_encoded_once_and_requests_while_loading_or_loaded_start_nothing(qtbot, vae, monkeypatch):
    ws = _workspace(vae)
    calls = _count_encodes(ws.engine, monkeypatch)
    with qtbot.waitSignal(ws.data_ready, timeout=20_000):
        assert ws.request_data() is True
        assert ws.request_data() is False  # already loading: joins that load
    assert ws.request_data() is False  # loaded
    assert sum(calls) == len(ws.data.ls) == 96
    assert ws.data.ls.latents.shape == (96, 4)
    assert ws.model_id == ws.data.model_id and ws.model_id.startswith("vae-")


def test_keys_groups_vector_and_show_request(qtbot, vae):
    ws = _workspace(vae)
    with qtbot.waitSignal(ws.data_ready, timeout=20_000):
        ws.request_data()
    with qtbot.waitSignal(ws.keys_changed):
        ws.add_key(ws.data.ls.latents[0], "first")
    ws.add_key(ws.data.ls.latents[1], "second")
    assert [k.label for k in ws.keys] == ["first", "second"]
    with pytest.raises(ValueError, match="4 numbers"):
        ws.add_key(np.zeros(3), "bad")
    ws.move_key(1, 0)
    assert [k.label for k in ws.keys] == ["second", "first"]

    with pytest.raises(ValueError, match="two groups"):
        ws.vector_from_groups("x")
    labels = ws.data.ls.labels
    ws.set_group("a", np.flatnonzero(labels == 0))
    ws.set_group("b", np.flatnonzero(labels == 2))
    with qtbot.waitSignal(ws.show_requested, timeout=10_000) as shown:
        assert ws.vector_from_groups("left − right") == "left − right"
    assert shown.args == ["arithmetic"]
    v = ws.vector("left − right")
    expected = ws.data.ls.latents[labels == 0].mean(0) - ws.data.ls.latents[labels == 2].mean(0)
    np.testing.assert_allclose(v.vector, expected, rtol=1e-5, atol=1e-6)
    assert ws.vectors == [v] and ws.active_vectors == [v]
    with qtbot.waitSignal(ws.vectors_changed, timeout=10_000):
        assert ws.vector_from_groups("left − right") == "left − right (2)"
    ws.set_vector_active("left − right", False)
    assert [x.name for x in ws.active_vectors] == ["left − right (2)"]


def test_current_latent_history_and_bookmarks_per_model(qtbot, vae):
    ws = _workspace(vae)
    z1, z2 = np.ones(4, np.float32), np.full(4, 2.0, np.float32)
    with qtbot.waitSignal(ws.current_changed) as moved:
        ws.set_current(z1, "#1", "click")
    assert moved.args[1:] == ["#1", "click"]
    ws.set_current(z2, "#2", "click")
    assert ws.undo() and np.allclose(ws.current, z1) and ws.current_label == "#1"
    assert ws.redo() and np.allclose(ws.current, z2)
    ws.add_bookmark("here")
    ws.close()
    again = _workspace(vae)  # the same model, opened again: its bookmarks are back
    again._load_bookmarks()
    assert "here" in again.bookmarks and np.allclose(again.bookmarks["here"].latent, z2)


def test_session_state_round_trip_into_a_fresh_workspace(qtbot, vae):
    ws = _workspace(vae)
    with qtbot.waitSignal(ws.data_ready, timeout=20_000):
        ws.request_data()
    ws.set_current(ws.data.ls.latents[5], "#5", "click")
    ws.add_key(ws.data.ls.latents[3], "k")
    ws.set_group("a", [0, 1, 2])
    ws.set_group("b", [10, 11, 12])
    with qtbot.waitSignal(ws.vectors_changed, timeout=10_000):
        ws.vector_from_groups("v")
    ws.set_vector_active("v", False)
    state, keys = ws.session_state(), ws.keys_state()
    vectors, marks = [v.to_dict() for v in ws.vectors], [b.to_dict() for b in ws.bookmarks]

    fresh = _workspace(vae)
    notes = fresh.restore(keys, vectors, marks, state)
    assert notes == []
    assert [k.label for k in fresh.keys] == ["k"] and np.allclose(fresh.keys[0].latent, ws.keys[0].latent)
    assert [v.name for v in fresh.vectors] == ["v"] and fresh.active_vectors == []
    assert list(fresh.groups["a"]) == [0, 1, 2] and list(fresh.groups["b"]) == [10, 11, 12]
    assert np.allclose(fresh.current, ws.current) and fresh.current_label == "#5"
    bad = fresh.restore([{"label": "x", "latent": [1.0, 2.0]}], [], [], {})
    assert bad == ["1 key(s) of the wrong size skipped"]


def test_a_closed_workspace_drops_late_data(qtbot, vae):
    ws = _workspace(vae)
    got = []
    ws.data_ready.connect(got.append)
    ws.request_data()
    ws.close()
    qtbot.wait(1500)
    from explorer import workers

    workers.wait_all(20_000)
    qtbot.wait(50)
    assert got == [] and ws.data is None
    assert ws.request_data() is False
