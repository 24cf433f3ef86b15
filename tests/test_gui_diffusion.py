"""The Diffusion panel offscreen on a tiny conditional model over the blobs data: runs off the GUI
thread, the timeline and playback, the cache, grid mode, cancel, the forward process and SDEdit,
and a model of another family."""
import threading
import time

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.base import Batch  # noqa: E402
from engines.data import load_dataset  # noqa: E402


@pytest.fixture
def model(tmp_path, tiny_dataset):
    import torch

    ds = tiny_dataset(n=48, size=8)
    path = str(tmp_path / "blobs.npz")
    np.savez(path, images=ds.images, labels=ds.labels, label_names=np.array(["left", "mid", "right"]))
    data = load_dataset(path)
    e = engines.create("diffusion", data.spec, device="cpu", width=8, levels=2, num_classes=3, sample_steps=4)
    x = torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 255
    for i in range(3):
        e.train_step(Batch(x[i * 16:(i + 1) * 16], torch.from_numpy(data.labels[i * 16:(i + 1) * 16])))
    out = ckpt.save(str(tmp_path / "diff.safetensors"), e, data=data.describe(), train_state={"state": "finished"})
    return ckpt.load(out, device="cpu", with_optimizer=False)


@pytest.fixture
def panel(qtbot):
    from explorer.app import make_app
    from explorer.context import Context
    from explorer.panels.diffusion.panel import DiffusionPanel
    from explorer.session import ModelSession
    from explorer.settings import Settings

    make_app()
    session = ModelSession("cpu")
    p = DiffusionPanel(Context(session, Settings()))
    p.errors = []
    session.error.connect(lambda title, msg: p.errors.append((title, msg)))
    qtbot.addWidget(p)
    p.resize(1000, 640)
    p.show()
    yield p
    p.shutdown()
    qtbot.waitUntil(lambda: not p.running, timeout=20000)


def load(qtbot, p, loaded):
    p.ctx.session.set_model(loaded.engine, loaded.info, loaded.info.path)
    qtbot.waitUntil(lambda: p.traj is not None and not p.running, timeout=30000)


def test_run_records_trajectory_in_a_worker(qtbot, panel, model, monkeypatch):
    from explorer.panels.diffusion import jobs

    threads = []
    original = jobs.run
    monkeypatch.setattr(jobs, "run", lambda *a, **k: (threads.append(threading.current_thread()), original(*a, **k))[1])
    load(qtbot, panel, model)  # a shown panel runs at once on a new model
    assert panel.errors == []
    tr = panel.traj
    assert tr.steps == 4 and len(tr.x_t) == len(tr.x0) == 5 and tr.request.n == 9
    assert tr.x_t[0].shape == (9, 8, 8, 1) and tr.x_t[0].dtype == np.uint8
    assert threads and all(t is not threading.main_thread() for t in threads)
    # The timeline shows x_t and x̂₀ of any step; the end shows the result in both.
    assert panel.timeline.maximum() == 4 and panel.timeline.value() == 4
    panel.timeline.setValue(1)
    assert "step 2 of 4" in panel.step_label.text() and f"t = {tr.t[1]}" in panel.step_label.text()
    assert panel.xt_view.has_image() and panel.x0_view.has_image()
    # The x̂₀ paths on the data's PCA plane: one per sample (at most 9), the step on show marked.
    qtbot.waitUntil(lambda: panel.pca is not None, timeout=10000)
    m = panel.reverse.map
    assert len(m.paths) == 9 and m._paths.shape == (5, 9, 2) and len(m.points.data) == len(panel.data)
    assert np.allclose(m.marks.data["x"], m._paths[1, :, 0])
    # Same engine.sample result as the command line: recording changes nothing.
    same = model.engine.sample(9, seed=0, sampler=tr.request.sampler, steps=4, guidance=tr.request.guidance)
    final = (same * 255).round().permute(0, 2, 3, 1).to(dtype=__import__("torch").uint8).numpy()
    assert np.abs(final.astype(int) - tr.result.astype(int)).max() <= 1


def test_play_cache_grid_and_options(qtbot, panel, model):
    load(qtbot, panel, model)
    first = panel.traj
    panel.speed.setCurrentIndex(panel.speed.count() - 1)
    panel.play_btn.click()
    assert panel.timeline.value() == 0 and panel.play_btn.text() == "Pause"
    qtbot.waitUntil(lambda: panel.timeline.value() == panel.timeline.maximum(), timeout=5000)
    qtbot.waitUntil(lambda: not panel.play_btn.isChecked(), timeout=2000)
    # Another sampler, a single image, a chosen class: a new run; back to the first: from the cache.
    panel.sampler.setCurrentIndex(panel.sampler.findData("ddim"))
    assert panel.eta.isEnabled() and panel.guidance.isEnabled() and panel.label.isEnabled()
    panel.eta.setValue(0.5)
    panel.count.setCurrentIndex(0)
    panel.label.setCurrentIndex(panel.label.findData(2))
    panel.run_btn.click()
    qtbot.waitUntil(lambda: not panel.running and panel.traj is not first, timeout=30000)
    r = panel.traj.request
    assert (r.sampler, r.n, r.label, r.eta) == ("ddim", 1, 2, 0.5)
    panel.sampler.setCurrentIndex(panel.sampler.findData(first.request.sampler))
    panel.eta.setValue(0.0)
    panel.count.setCurrentIndex(2)
    panel.label.setCurrentIndex(0)
    panel.run_btn.click()
    assert panel.traj is first and not panel.running and "cache" in panel.status.text()


def test_branch_from_a_step(qtbot, panel, model):
    load(qtbot, panel, model)
    panel.sampler.setCurrentIndex(panel.sampler.findData("ddpm"))
    panel.run_btn.click()
    qtbot.waitUntil(lambda: not panel.running and panel.traj.request.sampler == "ddpm", timeout=30000)
    parent = panel.traj
    assert not panel.branch_btn.isEnabled()  # the end of the timeline: nothing left to branch
    panel.timeline.setValue(2)
    assert panel.branch_btn.isEnabled()
    panel.branch_btn.click()
    qtbot.waitUntil(lambda: not panel.running and panel.traj is not parent, timeout=30000)
    br = panel.traj
    assert br.request.branch_step == 2 and panel.compare.isVisible() and panel.original_view.has_image()
    for k in range(3):  # the same x_t up to the branch point (its x̂₀ too), new noise afterwards
        assert np.array_equal(br.x_t[k], parent.x_t[k]) and np.array_equal(br.x0[k], parent.x0[k])
    assert not np.array_equal(br.result, parent.result)
    panel.run_btn.click()  # a plain run again: the comparison goes
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert panel.traj is parent and not panel.compare.isVisible()


def test_cancel_stops_a_long_run(qtbot, panel, model):
    load(qtbot, panel, model)
    panel.steps.setValue(1000)
    panel.count.setCurrentIndex(panel.count.count() - 1)
    panel.run_btn.click()
    assert panel.running and panel.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: "step" in panel.status.text(), timeout=10000)
    t0 = time.monotonic()
    panel.cancel_btn.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=10000)
    assert time.monotonic() - t0 < 5 and "cancelled" in panel.status.text() and panel.errors == []
    assert panel.traj.steps == 4  # the previous trajectory stays


def test_forward_process_and_sdedit(qtbot, panel, model):
    load(qtbot, panel, model)
    panel.tabs.setCurrentIndex(1)
    fw = panel.forward
    qtbot.waitUntil(lambda: panel._noised is not None, timeout=10000)
    assert fw.index.maximum() > 0 and fw.x0_view.has_image() and fw.xt_view.has_image()
    assert fw.plot.abar_curve.getData()[0] is not None and len(fw.plot.abar_curve.getData()[0]) == 1000
    fw.t_slider.setValue(200)
    qtbot.waitUntil(lambda: panel._noised[1] == 200, timeout=10000)
    assert "t = 200" in fw.t_label.text() and fw.plot.markers[0].value() == 200
    fw.sdedit_btn.click()
    qtbot.waitUntil(lambda: not panel.running and panel.traj.request.start_t == 200, timeout=30000)
    assert panel.traj.t[0] == 200 and panel.traj.steps == 4 and fw.result_view.has_image()
    assert panel.errors == []


def test_other_engines_are_explained(qtbot, panel, tmp_path, tiny_dataset):
    ds = tiny_dataset(n=16, size=8)
    e = engines.create("vae", ds.spec, device="cpu", latent_dim=2, width=8)
    path = ckpt.save(str(tmp_path / "v.safetensors"), e, data=ds.describe())
    loaded = ckpt.load(path, device="cpu")
    panel.ctx.session.set_model(loaded.engine, loaded.info, path)
    assert "needs a diffusion model" in panel.status.text() and not panel.run_btn.isEnabled()
    panel.run()
    assert not panel.running and panel.traj is None


def test_a_newer_run_replaces_the_one_running(qtbot, panel, model):
    """Sampling goes through the worker layer's latest-request runner: a run started while another
    is sampling stops that one between two steps, and only the newer one's trajectory shows."""
    load(qtbot, panel, model)
    steps = {}
    panel._runner.progress.connect(lambda _g, request, value: steps.__setitem__(request[1].seed, value))
    panel.steps.setValue(1000)
    panel.seed.setValue(11)
    panel.run_btn.click()
    qtbot.waitUntil(lambda: 11 in steps, timeout=10000)
    assert panel.run_btn.isEnabled()  # a new run may be asked for while one is sampling
    panel.steps.setValue(4)
    panel.seed.setValue(12)
    panel.count.setCurrentIndex(0)
    panel.run_btn.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    r = panel.traj.request
    assert (r.seed, r.steps, r.n) == (12, 4, 1) and steps[12] == (4, 4) and panel.errors == []
    assert steps[11][0] < 1000 and steps[11][1] == 1000  # the first run stopped part-way …
    assert all(req.seed != 11 for req in panel.cache._items)  # … and left no trajectory behind
    assert "sampling…" not in panel.status.text() and "4 steps · seed 12" in panel.status.text()


def test_the_panel_enables_itself_from_the_trajectory_capability(qtbot, panel, model):
    """Not the engine's name: any engine declaring 'trajectory' is driven (here a renamed
    diffusion engine), and one without it is explained even if it calls itself 'diffusion'."""
    from engines.base import Engine
    from engines.diffusion.model import DiffusionEngine

    class Renamed(DiffusionEngine):
        name = "my-diffusion"

    e = Renamed(model.engine.spec, model.engine.config, device="cpu")
    e.load_state_tensors(model.engine.state_tensors())
    panel.ctx.session.set_model(e, model.info, model.info.path)
    qtbot.waitUntil(lambda: panel.traj is not None and not panel.running, timeout=30000)
    assert panel.engine is e and panel.run_btn.isEnabled() and panel.traj.steps == 4 and panel.errors == []

    class Impostor(Engine):
        name = "diffusion"
        capabilities = frozenset({"decode", "sample"})

        def build(self):
            return {}

    panel.ctx.session.set_model(Impostor(model.engine.spec, device="cpu"), model.info, model.info.path)
    assert panel.engine is None and not panel.run_btn.isEnabled() and panel.traj is None
    assert "needs a diffusion model (one that samples step by step); this is a diffusion" in panel.status.text()
