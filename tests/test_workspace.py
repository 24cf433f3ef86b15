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


def test_cancel_data_says_so_and_a_later_request_loads_again(qtbot, vae):
    ws = _workspace(vae)
    with qtbot.waitSignal(ws.data_failed) as failed:
        assert ws.request_data()
        ws.cancel_data()
    assert "cancelled" in failed.args[0] and not ws.loading and ws.data is None
    with qtbot.waitSignal(ws.data_ready, timeout=20_000):
        assert ws.request_data()
    assert len(ws.data.ls) == 96


def test_the_status_bar_shows_the_data_loads_stage_and_cancels_it(qtbot, make_window, vae):
    """A determinate bar with the stage's words while encoding, a moving one when a stage cannot
    tell how far it is, hidden when done; its Cancel stops the Workspace's load."""
    from engines.latent.progress import Progress

    w = make_window("export")  # a panel that does not ask for the data itself
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(vae)
    ws, tp = w.ctx.workspace, w.task_progress
    assert tp.ws is ws and not tp.isVisible()
    ws.data_loading.emit("blobs")
    assert tp.isVisible() and tp.bar.maximum() == 0  # moving until a stage says how far
    ws.data_progress.emit(Progress("encode", 0.5, "encoding 48/96 images"))
    assert (tp.bar.minimum(), tp.bar.maximum(), tp.bar.value()) == (0, 1000, 500)
    assert tp.label.text() == "Encoding 48/96 images"
    ws.data_progress.emit(Progress("reference", None, "measuring the training latents"))
    assert tp.bar.maximum() == 0 and tp.label.text() == "Measuring the training latents"
    with qtbot.waitSignal(ws.data_ready, timeout=20_000):
        ws.request_data()
    assert not tp.isVisible()
    ws2 = None
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(vae)  # a new Workspace: the bar follows it
    ws2 = w.ctx.workspace
    assert tp.ws is ws2 and ws2 is not ws
    with qtbot.waitSignal(ws2.data_failed, timeout=10_000):
        ws2.request_data()
        tp.cancel_btn.click()
    assert not tp.isVisible() and ws2.data is None


def test_keys_are_kept_per_model_across_restarts(qtbot, vae):
    ws = _workspace(vae)
    assert ws.keys == []
    ws.set_keys([np.zeros(4), np.ones(4)], ["a", "b"])
    ws.add_key(np.full(4, 2.0), "c")
    ws.move_key(2, 0)
    ws.remove_key(1)
    ws.close()
    again = _workspace(vae)  # the same model opened again (a restart): its keys are back, in order
    assert [k.label for k in again.keys] == ["c", "b"]
    assert np.array_equal(again.keys[0].latent, np.full(4, 2.0, np.float32))
    from explorer.workspace import store

    with open(store.keys_path(again.model_id), "w") as f:
        f.write("{not json")  # a damaged file: no keys, nothing breaks, the next change rewrites it
    third = _workspace(vae)
    assert third.keys == []
    third.add_key(np.zeros(4), "fresh")
    assert [k.label for k in _workspace(vae).keys] == ["fresh"]


def test_a_model_loaded_by_the_session_is_hashed_in_the_worker(qtbot, vae, monkeypatch):
    """Opening a model hashes its weights in the loader's worker: the Workspace gets the id with it,
    so nothing kept per model (keys, vectors, bookmarks) costs the GUI thread a hash of the weights."""
    import threading

    from engines.latent import cache
    from explorer.app import make_app
    from explorer.session import ModelSession

    make_app()
    threads = []
    real = cache.model_id
    monkeypatch.setattr(cache, "model_id", lambda e: threads.append(threading.current_thread()) or real(e))
    s = ModelSession("cpu")
    with qtbot.waitSignal(s.model_changed, timeout=20_000):
        s.load(vae)
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert s.workspace.model_id == real(s.engine)
