"""The Arithmetic panel offscreen, on tiny checkpoints over the tiny blobs data saved as .npz:
sliders decode live off the GUI thread, the strip, several vectors at once, save/load with the
model's identity (refused for another model unless the user insists), the user's own image, a
sample, groups from another panel, analogies, and every engine (PCA, AE, VAE); the vectors are the
Workspace's (made elsewhere they show up here) and survive reopening the model."""
import threading
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.base import Engine  # noqa: E402
from engines.data import load_dataset  # noqa: E402

# Three blob positions, named so that the slides' analogy example applies to them.
LABELS = ["neutral man", "neutral woman", "smiling woman"]
TINY = {"vae": {"latent_dim": 3, "width": 8}, "ae": {"latent_dim": 3, "width": 8}, "pca": {"n_components": 3}}


@pytest.fixture
def blobs(tmp_path, tiny_dataset):
    ds = tiny_dataset()
    path = str(tmp_path / "blobs.npz")
    np.savez(path, images=ds.images, labels=ds.labels, label_names=np.array(LABELS),
             attr_height=ds.attributes["height"])
    return load_dataset(path)


@pytest.fixture
def make_model(tmp_path, blobs):
    """Train a tiny engine a little (so decoding depends on z) and save it with the .npz as its data."""

    def make(engine="vae", seed=0, name=None, **cfg):
        e = engines.create(engine, blobs.spec, device="cpu", seed=seed, **{**TINY[engine], **cfg})
        if e.closed_form:
            e.fit(blobs.images)
        else:
            for i in range(25):
                e.train_step(blobs.images[(i * 16) % 80:(i * 16) % 80 + 16])
        path = ckpt.save(str(tmp_path / (name or f"{engine}-{seed}.safetensors")), e, data=blobs.describe(),
                         train_state={"state": "finished"})
        return ckpt.load(path, device="cpu", with_optimizer=False)

    return make


@pytest.fixture
def decode_threads(monkeypatch):
    """Every thread a decode ran on; set `.delay` to make each decode that much slower (a big model)."""

    class Seen(list):
        delay = 0.0

    seen = Seen()
    original = Engine.decode

    def recording(self, *args, **kwargs):
        seen.append(threading.current_thread())
        if seen.delay:
            time.sleep(seen.delay)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "decode", recording)
    return seen


@pytest.fixture
def panel(qtbot, tmp_path, monkeypatch):
    from explorer.app import make_app
    from explorer.context import Context
    from explorer.panels.arithmetic.panel import ArithmeticPanel
    from explorer.session import ModelSession
    from explorer.settings import Settings

    # Vectors are saved per model (by content hash): each test keeps its own.
    monkeypatch.setenv("LATENT_EXPLORER_HOME", str(tmp_path / "home"))
    make_app()
    session = ModelSession("cpu")
    p = ArithmeticPanel(Context(session, Settings()))
    p.errors = []
    session.error.connect(lambda title, msg: p.errors.append((title, msg)))
    qtbot.addWidget(p)
    p.resize(1100, 760)
    p.show()
    yield p
    p.shutdown()
    from explorer import workers

    workers.wait_all(10_000)


def open_model(qtbot, p, loaded):
    p.ctx.session.set_model(loaded.engine, loaded.info, loaded.info.path)
    qtbot.waitUntil(lambda: p.md is not None and p.md.ls.model_id == p.model_id, timeout=15_000)
    qtbot.waitUntil(lambda: p.edit.last_result is not None, timeout=10_000)  # a data image is picked at once


def add(qtbot, p, recipe):
    with qtbot.waitSignal(p.vector_added, timeout=10_000) as got:
        assert p.add_vector(recipe)
    return got.args[0]


def test_sliders_decode_live_off_the_gui_thread(qtbot, panel, make_model, decode_threads):
    from PySide6.QtCore import Qt, QTimer

    from explorer.panels.arithmetic.jobs import Recipe

    p = panel
    open_model(qtbot, p, make_model("vae"))
    assert "blobs" in p.data_label.text() and "96 images" in p.data_label.text()
    v = add(qtbot, p, Recipe("label", label=2))  # smiling woman − the rest
    row = p.vectors.list.item(0).text()
    assert v.name.startswith("smiling woman") and "‖Δ‖" in row and "cos" in row and " d " in row
    assert v.quality.verdict in row and v.model_id == p.model_id
    qtbot.waitUntil(lambda: p.edit.last_strip is not None, timeout=10_000)
    assert p.edit.strip.count() == 9
    assert p.edit.strip.captions() == ["s = −4", "s = −3", "s = −2", "s = −1", "s = 0", "s = +1", "s = +2",
                                       "s = +3", "s = +4"]
    slider = p.edit.sliders[v]
    assert (slider.slider.minimum(), slider.slider.maximum()) == (-40, 40)  # s ∈ [−4, 4], step 0.1
    qtbot.waitUntil(lambda: not p.edit._render.busy, timeout=10_000)
    before = p.edit.last_result.copy()

    # Drag across the whole range, with decodes slower than a big model's, while a timer measures
    # how long the GUI thread is ever blocked. The decode delay is long next to scheduling noise on
    # a loaded machine, so a decode on the GUI thread could not hide under the thresholds below.
    decode_threads.delay = 0.25
    ticks = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    computed = p.edit._render.computed
    longest_call = 0.0
    for k in range(-40, 41, 2):
        t0 = time.perf_counter()
        slider.slider.setValue(k)
        longest_call = max(longest_call, time.perf_counter() - t0)
        qtbot.wait(3)
    qtbot.waitUntil(lambda: not p.edit._render.busy and not p.edit._strip.busy, timeout=10_000)
    timer.stop()
    decode_threads.delay = 0.0
    gaps = np.diff(ticks)
    assert longest_call < 0.2, longest_call  # moving the slider never waits for a decode
    assert len(gaps) > 10 and gaps.max() < 0.6, gaps.max()
    assert p.edit._render.computed - computed < 30  # superseded positions were skipped
    assert slider.value() == 4.0 and slider.spin.value() == 4.0
    after = p.edit.last_result
    assert after.shape == before.shape and np.abs(after.astype(int) - before.astype(int)).max() > 0
    assert p.edit.strip._highlight == 8  # the strip marks s = +4
    assert decode_threads and threading.main_thread() not in decode_threads

    # The result is exactly decode(z + s·Δ).
    from engines.data.dataset import to_uint8

    n = len(decode_threads)
    want = to_uint8(p.engine.decode((p.edit.base.z + 4.0 * v.vector)[None]))[0]
    del decode_threads[n:]  # the test's own decode, on the test's thread
    assert np.array_equal(after, want)

    # Clicking a strip image sets the slider to its s.
    strip = p.edit.strip
    r = strip.cell_rect(2)
    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=r.center())
    assert slider.value() == -2.0

    # A second vector: two sliders; moving it changes the image and redraws the first one's strip.
    w = add(qtbot, p, Recipe("attribute", attribute="height", method="median"))
    assert len(p.edit.sliders) == 2 and p.vectors.current() is w
    p.vectors.select_vector(v)
    qtbot.waitUntil(lambda: not p.edit._render.busy and not p.edit._strip.busy, timeout=10_000)
    img, strip_before = p.edit.last_result.copy(), p.edit.last_strip.copy()
    p.edit.sliders[w].setValue(3.0)
    qtbot.waitUntil(lambda: not p.edit._render.busy and not p.edit._strip.busy, timeout=10_000)
    assert not np.array_equal(img, p.edit.last_result)
    assert not np.array_equal(strip_before, p.edit.last_strip)
    assert "− 2·Δ" in p.edit.formula.text() and "+ 3·Δ" in p.edit.formula.text()
    # Unticking a vector's box switches it off in the Workspace, which removes its slider and its effect.
    p.vectors.list.item(1).setCheckState(Qt.CheckState.Unchecked)
    assert not p.ctx.workspace.is_active(w.name) and p.ctx.workspace.active_vectors == [v]
    assert list(p.edit.sliders) == [v]
    assert threading.main_thread() not in decode_threads
    assert p.errors == []


def test_vectors_saved_and_loaded_with_the_models_identity(qtbot, panel, make_model, tmp_path, monkeypatch):
    from explorer.panels.arithmetic.jobs import Condition, Recipe

    p = panel
    first = make_model("vae", seed=0)
    open_model(qtbot, p, first)
    mine = add(qtbot, p, Recipe("groups", group_a=(Condition("label", 0),), group_b=(Condition("label", 1),)))
    assert mine.name == "neutral man − neutral woman" and mine.quality.n_a + mine.quality.n_b < 96
    path = str(tmp_path / "vectors.json")
    assert p.save_vectors_to(path)
    asked = []
    monkeypatch.setattr(p, "ask_apply_anyway", lambda text: asked.append(text) or False)
    assert p.load_vectors_from(path) == 1 and not asked  # same model: no question
    # The Workspace holds one vector per name: the loaded copy is told apart by its name.
    assert [x.name for x in p.vectors.vectors()] == [mine.name, f"{mine.name} (2)"]
    assert [x.name for x in p.ctx.workspace.vectors] == [mine.name, f"{mine.name} (2)"]

    # Another model (same architecture, other weights): refused unless the user insists.
    other = make_model("vae", seed=1)
    open_model(qtbot, p, other)
    assert p.vectors.vectors() == []  # the first model's vectors are not shown for this one
    assert p.load_vectors_from(path) == 0
    assert len(asked) == 1 and "another model" in asked[0] and first_id(p, path) in asked[0]
    assert p.vectors.vectors() == []
    monkeypatch.setattr(p, "ask_apply_anyway", lambda text: True)
    assert p.load_vectors_from(path) == 1
    (v,) = p.vectors.vectors()
    assert v.meta["foreign_model"] and p.vectors.list.item(0).text().startswith("⚠")
    assert "another model" in p.vectors.details.text()

    # A model whose latents have another size: never applied, whatever the user says.
    wide = make_model("vae", seed=0, name="wide.safetensors", latent_dim=4)
    open_model(qtbot, p, wide)
    assert p.load_vectors_from(path) == 0
    assert p.errors and "4" in p.errors[-1][1] and "3 dimensions" in p.errors[-1][1]
    # A damaged file is reported, not raised.
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert p.load_vectors_from(str(bad)) == 0 and "cannot read" in p.errors[-1][1]

    # Back to the first model (a new Workspace): its vectors are there again, read from its store.
    open_model(qtbot, p, first)
    assert [x.name for x in p.vectors.vectors()] == [mine.name, f"{mine.name} (2)"]


def first_id(p, path):
    import json

    return json.load(open(path))["vectors"][0]["model_id"]


def test_own_image_sample_and_groups_from_another_panel(qtbot, panel, make_model, tmp_path, decode_threads):
    from PIL import Image

    p = panel
    loaded = make_model("ae")
    open_model(qtbot, p, loaded)
    # The user's own picture, larger and in colour: resized to the model's 16×16 grey and encoded in a worker.
    photo = tmp_path / "me.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(photo)
    encode_threads = []
    original = Engine.encode

    def recording(self, *a, **k):
        encode_threads.append(threading.current_thread())
        return original(self, *a, **k)

    Engine.encode = recording
    try:
        p.use_file(str(photo))
        qtbot.waitUntil(lambda: p.edit.base is not None and p.edit.base.kind == "file", timeout=10_000)
    finally:
        Engine.encode = original
    assert p.edit.base.image.shape == (16, 16, 1) and "me.png" in p.edit.input_caption.text()
    assert encode_threads and threading.main_thread() not in encode_threads
    p.use_file(str(tmp_path / "missing.png"))
    qtbot.waitUntil(lambda: bool(p.errors), timeout=10_000)
    assert "missing.png" in p.errors[-1][1]

    p.use_sample(3)
    qtbot.waitUntil(lambda: p.edit.base.kind == "sample", timeout=10_000)
    assert p.edit.base.image is None and "seed 3" in p.edit.input_caption.text()

    # Groups picked elsewhere (the Manifold map): indices into the model's data.
    with qtbot.waitSignal(p.vector_added, timeout=10_000) as got:
        assert p.add_vector_from_groups(np.arange(0, 30), np.arange(30, 60), "left of map")
    v = got.args[0]
    assert v.name == "left of map" and v.quality.n_a == 30 and "map selection" in v.meta["source"]
    # Too small a group is reported, not raised.
    p.add_vector_from_groups([1], [2, 3], "tiny")
    qtbot.waitUntil(lambda: any("two images" in m for _, m in p.errors), timeout=10_000)
    # The data browser's filter keeps one label.
    browser = p.edit.chooser.data
    browser.filter.set_conditions(label="smiling woman")
    shown = browser.browser.shown()
    assert len(shown) == int((p.md.ls.labels == 2).sum()) and set(p.md.ls.labels[shown]) == {2}
    browser.browser.pick_row(0)
    assert p.edit.base.kind == "data" and p.edit.base.index == int(shown[0])
    assert threading.main_thread() not in decode_threads


def test_analogy_in_one_click(qtbot, panel, make_model):
    p = panel
    open_model(qtbot, p, make_model("vae"))
    a = p.analogy
    assert not a.example_btn.isHidden()
    with qtbot.waitSignal(a.rendered, timeout=10_000) as got:
        a.example_btn.click()
    res = got.args[0]
    labels = p.md.ls.labels
    assert [labels[i] for i in a.picks] == [2, 1, 0]  # smiling woman − neutral woman + neutral man
    assert res.image.shape == (16, 16, 1) and len(res.neighbours) == 5
    assert a.neighbours.count() == 5 and "labelled" in a.result_caption.text()
    # Picking by hand: slot b, then a thumbnail.
    a.slot_buttons[1].click()
    a.browser.browser.pick_row(5)
    assert a.picks[1] == int(a.browser.browser.shown()[5]) and a.active_slot() == 2
    qtbot.waitUntil(lambda: a.last is not None and not a._runner.busy, timeout=10_000)


@pytest.mark.parametrize("engine", ["pca", "ae"])
def test_pca_and_ae_vectors_move_the_image(qtbot, panel, make_model, engine):
    from explorer.panels.arithmetic.jobs import Recipe

    p = panel
    open_model(qtbot, p, make_model(engine))
    v = add(qtbot, p, Recipe("attribute", attribute="height", method="regression"))
    qtbot.waitUntil(lambda: not p.edit._render.busy, timeout=10_000)
    before = p.edit.last_result.copy()
    p.edit.sliders[v].setValue(-4.0)
    qtbot.waitUntil(lambda: not p.edit._render.busy and p.edit.strength(v) == -4.0, timeout=10_000)
    qtbot.waitUntil(lambda: not np.array_equal(before, p.edit.last_result), timeout=10_000)


def test_model_without_its_data(qtbot, panel, make_model, blobs):
    p = panel
    loaded = make_model("vae")
    loaded.info.data["source"] = "/nowhere/blobs.npz"
    p.ctx.session.set_model(loaded.engine, loaded.info)
    qtbot.waitUntil(lambda: bool(p.model_id), timeout=10_000)
    assert "not available" in p.data_label.text() and p.md is None
    assert p.vectors.isEnabled() and p.vectors.load_btn.isEnabled()  # vectors can still be loaded
    assert p.edit.chooser.tabs.currentIndex() == 1  # samples need no data
    p.use_data(blobs.source)
    qtbot.waitUntil(lambda: p.md is not None, timeout=10_000)
    assert p.edit.chooser.tabs.currentIndex() == 0
    # No model: the panel says what to do.
    p.ctx.session.set_model(None, None)
    assert "Open a model" in p.data_label.text() and not p.vectors.isEnabled()


def test_hidden_panel_encodes_only_when_needed(qtbot, panel, make_model):
    p = panel
    p.hide()  # another tab is showing: opening a model costs nothing here
    loaded = make_model("vae")
    p.ctx.session.set_model(loaded.engine, loaded.info)
    qtbot.wait(100)
    assert not p.ctx.workspace.loading and p.md is None and not p.ctx.session.busy_text
    assert "when this panel is shown" in p.data_label.text()
    # Another panel hands over two groups: the data is encoded now and the vector follows.
    with qtbot.waitSignal(p.vector_added, timeout=10_000) as got:
        assert p.add_vector_from_groups(np.arange(10), np.arange(50, 70), "picked")
    assert got.args[0].quality.n_a == 10 and p.md is not None


def test_a_vector_added_to_the_workspace_elsewhere_shows_in_the_list_and_the_strip(qtbot, panel, make_model):
    from PySide6.QtCore import Qt

    from engines.data.dataset import to_uint8
    from engines.latent.attributes import AttributeVector, strip
    from explorer.panels.arithmetic.jobs import STRIP_S

    p = panel
    open_model(qtbot, p, make_model("vae"))
    ws = p.ctx.workspace
    v = AttributeVector("from elsewhere", np.array([1.5, 0.0, -1.0], np.float32), "groups", ws.model_id, (3,),
                        meta={"source": "another panel"})
    ws.add_vector(v)
    assert p.vectors.vectors() == [v] and p.vectors.list.item(0).text().startswith("from elsewhere")
    assert p.vectors.current() is v and p.vectors.list.item(0).checkState() == Qt.CheckState.Checked
    assert list(p.edit.sliders) == [v] and p.edit.strip_vector is v
    qtbot.waitUntil(lambda: p.edit.last_strip is not None and not p.edit._strip.busy, timeout=10_000)
    want = to_uint8(p.engine.decode(strip(p.edit.base.z, v, STRIP_S, ())))
    assert np.array_equal(p.edit.last_strip, want)  # the strip is decode(z + s·Δ) of that vector
    # Switched off and removed elsewhere: the box unticks and the slider goes, then the row and the strip.
    ws.set_vector_active(v.name, False)
    assert p.vectors.list.item(0).checkState() == Qt.CheckState.Unchecked and not p.edit.sliders
    ws.remove_vector(v.name)
    assert p.vectors.vectors() == [] and p.edit.strip_vector is None and p.edit.strip.count() == 0
    # Two groups picked on the map (the Workspace's groups): the A − B vector appears, selected.
    ws.set_group("a", np.arange(0, 20))
    ws.set_group("b", np.arange(40, 60))
    with qtbot.waitSignal(ws.vectors_changed, timeout=10_000):
        name = ws.vector_from_groups("picked")  # made in a worker: its quality measures take time
    made = ws.vector(name)
    assert p.vectors.current() is made and made.quality.n_a == 20 and p.edit.strip_vector is made


def test_vectors_survive_reopening_the_model(qtbot, panel, make_model):
    from engines.latent.attributes import AttributeVector
    from explorer.panels.arithmetic.jobs import Recipe
    from explorer.workspace import Workspace

    p = panel
    loaded = make_model("vae")
    open_model(qtbot, p, loaded)
    v = add(qtbot, p, Recipe("label", label=2))
    w = add(qtbot, p, Recipe("attribute", attribute="height", method="median"))
    ws = p.ctx.workspace
    ws.set_vector_active(w.name, False)
    assert ws.rename_vector(v.name, "smile") == "smile" and p.vectors.list.item(0).text().startswith("smile")
    p.edit.set_strength(v, 2.0)
    state = p.session_state()
    assert state["strengths"] == {"smile": 2.0} and state["current"] == w.name and "active" not in state

    # Closed and opened again (as after a restart): a new Workspace on the same checkpoint has them.
    again = ckpt.load(loaded.info.path, device="cpu", with_optimizer=False)
    fresh = Workspace(again.engine, again.info, again.info.path)
    assert [x.name for x in fresh.vectors] == ["smile", w.name]
    assert [x.name for x in fresh.active_vectors] == ["smile"]
    back = fresh.vector("smile")
    assert np.array_equal(back.vector, v.vector) and back.vector.dtype == np.float32
    assert back.quality.verdict == v.quality.verdict and back.meta == v.meta
    # The panel shows them as soon as the model is open (hidden: its data is not even asked for).
    p.hide()
    p.ctx.session.set_model(again.engine, again.info, again.info.path)
    assert [x.name for x in p.vectors.vectors()] == ["smile", w.name] and p.md is None
    assert list(p.edit.sliders) == [p.ctx.workspace.vector("smile")]
    # Its own view comes back from the session; a strength waits for a vector that is not there yet.
    p.ctx.workspace.remove_vector("smile")
    p.restore_session_state(state)
    assert p.vectors.current().name == w.name
    smile = AttributeVector.from_dict(back.to_dict())
    p.ctx.workspace.add_vector(smile)
    assert p.edit.strength(smile) == 2.0 and p.edit.sliders[smile].value() == 2.0
    assert [x.name for x in Workspace(again.engine, again.info).vectors] == [w.name, "smile"]
    p.restore_session_state({"active": [w.name]})  # a session file from before: its switches still apply
    assert [x.name for x in p.ctx.workspace.active_vectors] == [w.name]


def test_a_corrupt_vectors_file_loads_as_none(qtbot, panel, make_model):
    import json
    import os

    from explorer.panels.arithmetic.jobs import Recipe
    from explorer.workspace import Workspace, store

    p = panel
    loaded = make_model("vae")
    mid = Workspace(loaded.engine, loaded.info).model_id
    path = store.vectors_path(mid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for bad in ("{nope", '{"vectors": [{"name": "no numbers"}]}', '[1, 2]'):
        with open(path, "w") as f:
            f.write(bad)
        assert store.load_vectors(mid) == [] and Workspace(loaded.engine, loaded.info).vectors == []
    open_model(qtbot, p, loaded)  # the model opens, its data loads, the list is empty
    assert p.vectors.vectors() == [] and p.errors == []
    v = add(qtbot, p, Recipe("label", label=1))
    with open(path) as f:
        assert [d["name"] for d in json.load(f)["vectors"]] == [v.name]  # written whole over the bad file


def test_vectors_join_in_the_order_they_were_asked_for(qtbot, panel, make_model, monkeypatch):
    from explorer.panels.arithmetic import panel as panel_module
    from explorer.panels.arithmetic.jobs import Recipe, make_vector

    p = panel
    open_model(qtbot, p, make_model("vae"))
    slow = lambda md, r: (time.sleep(0.5 if r.label == 0 else 0.0), make_vector(md, r))[1]  # noqa: E731
    monkeypatch.setattr(panel_module, "make_vector", slow)
    assert p.add_vector(Recipe("label", label=0)) and p.add_vector(Recipe("label", label=1))
    qtbot.waitUntil(lambda: len(p.ctx.workspace.vectors) == 2 and not p._pending_vectors, timeout=10_000)
    assert [v.name for v in p.vectors.vectors()] == ["neutral man (vs rest)", "neutral woman (vs rest)"]


def test_window_has_the_panel(qtbot, tmp_path, monkeypatch):
    from explorer.app import make_app
    from explorer.settings import Settings
    from explorer.window import MainWindow

    monkeypatch.setenv("LATENT_EXPLORER_MODELS", str(tmp_path / "no-models"))
    make_app()
    w = MainWindow(Settings(train={"data": "__tests_set_their_own__"}, runs_dir=str(tmp_path / "runs")))
    qtbot.addWidget(w)
    w.show()
    try:
        assert "arithmetic" in w.panels
        w.actions_by_id["view.panel.arithmetic"].trigger()
        assert w.tabs.currentWidget() is w.panels["arithmetic"]
        assert "Open a model" in w.panels["arithmetic"].data_label.text()
    finally:
        w.shutdown()
