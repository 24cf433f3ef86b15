"""The Export panel offscreen: keys → preview → MP4 in a worker, Cancel leaves no file, session
files restore the keys and settings (and refuse another model unless the user agrees), and PNG
export of a view's images."""
import json
import os

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

import engines  # noqa: E402
from engines import checkpoint as ckpt  # noqa: E402
from engines.spec import ImageSpec  # noqa: E402


def _model(tmp_path, seed=0, name="m"):
    e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=seed, latent_dim=4, width=8)
    path = ckpt.save(str(tmp_path / f"{name}.safetensors"), e)
    return ckpt.load(path, device="cpu", with_optimizer=False)


@pytest.fixture
def window(make_window):
    return make_window("export", size=(1280, 800), shutdown_ms=20_000)


def _open(qtbot, w, loaded):
    p = w.panels["export"]
    w.session.set_model(loaded.engine, loaded.info, loaded.info.path)
    qtbot.waitUntil(lambda: p.preview_data is not None and not p.busy, timeout=20_000)
    return p


def test_default_keys_preview_and_export(qtbot, window, tmp_path):
    p = _open(qtbot, window, _model(tmp_path))
    assert len(p.keys.keys) == 4 and p.keys.item(0).icon() is not None
    p.options.seconds.setValue(0.25)
    p.options.fps.setValue(8)
    p.options.width.setValue(64)
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 8 and not p.busy,
                    timeout=10_000)
    assert "8 frames" in p.summary.text() and "64×64" in p.summary.text()
    out = str(tmp_path / "walk.mp4")
    w = p.export_to(out)
    assert w is not None and not p.export_btn.isEnabled()
    qtbot.waitUntil(lambda: p.worker is None, timeout=20_000)
    assert w.thread_name != "MainThread" and p.last_result is not None
    import imageio.v3 as iio

    assert iio.imread(out).shape == (8, 64, 64, 3) and "Wrote 8 frames" in p.status.text()
    assert not window.errors
    # A key from an image file: encoded in a worker, its latent is the engine's encoding.
    from PIL import Image

    img = (np.random.default_rng(1).random((16, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "face.png")
    p.add_image_key(str(tmp_path / "face.png"))
    qtbot.waitUntil(lambda: len(p.keys.keys) == 5, timeout=10_000)
    assert p.keys.labels[-1] == "face.png"
    assert np.allclose(p.keys.keys[-1], p.engine.encode(img[None]).numpy().reshape(-1), atol=1e-5)


def test_cancel_leaves_nothing(qtbot, window, tmp_path, monkeypatch):
    p = _open(qtbot, window, _model(tmp_path))
    p.options.seconds.setValue(20.0)  # 4 × 480 frames: far longer than the test waits
    out = tmp_path / "out"
    out.mkdir()
    w = p.export_to(str(out / "long.gif"))
    qtbot.waitUntil(lambda: p.progress.value() > 0, timeout=20_000)
    p.cancel()
    qtbot.waitUntil(lambda: p.worker is None, timeout=20_000)
    assert os.listdir(out) == [] and p.last_result is None and "Cancelled" in p.status.text()
    assert w.quitting


def _reopen_from_other_model(qtbot, window, p, path, tmp_path, n_keys):
    """Switch to another model ('other'), then open the session saved with model m: it loads m
    first and restores `n_keys` keys. Returns the other model."""
    from explorer.panels.export import session as export_session

    other = _model(tmp_path, seed=7, name="other")
    window.session.set_model(other.engine, other.info, other.info.path)
    qtbot.waitUntil(lambda: len(p.keys.keys) == 4, timeout=10_000)
    assert export_session.open_path(p, path) == "loading"
    qtbot.waitUntil(lambda: window.session.path == str(tmp_path / "m.safetensors") and len(p.keys.keys) == n_keys
                    and not window.session.loading, timeout=20_000)
    return other


def test_session_round_trip_and_other_model(qtbot, window, tmp_path):
    from explorer.panels.export import session as export_session

    from engines.latent.attributes import AttributeVector

    p = _open(qtbot, window, _model(tmp_path))
    arithmetic = window.panels["arithmetic"]
    arithmetic.vectors.add(AttributeVector("up", np.ones(4, np.float32), "test", "", (4,)), active=True)
    p.keys.remove_selected()
    p.keys.setCurrentRow(3)
    p.keys.remove_selected()  # three keys left
    p.options.method.setCurrentIndex(p.options.method.findData("lerp"))
    p.options.format.setCurrentIndex(p.options.format.findData(".gif"))
    keys = [k.copy() for k in p.keys.keys]
    path = str(tmp_path / "s.json")
    assert export_session.save_to(p, path)
    doc = json.load(open(path))
    assert doc["schema_version"] == 1 and doc["model"]["id"].startswith("vae-") and len(doc["keys"]) == 3
    assert doc["export"]["timeline"]["method"] == "lerp" and "manifold" in doc["panels"]
    assert [v["name"] for v in doc["vectors"]] == ["up"] and doc["panels"]["arithmetic"]["active"] == ["up"]
    arithmetic.vectors.set_active(arithmetic.vectors.vectors()[0], False)
    p.keys.clear_keys()
    p.options.method.setCurrentIndex(0)
    assert export_session.open_path(p, path) == "restored"
    assert all(np.array_equal(a, b) for a, b in zip(p.keys.keys, keys)) and len(p.keys.keys) == 3
    assert p.options.method.currentData() == "lerp" and p.options.format.currentData() == ".gif"
    assert [v.name for v in arithmetic.vectors.active()] == ["up"]  # the Arithmetic panel's state too
    # Another model with the same shapes: refused (the user says no), then applied (yes).
    # The session's model file exists: opening the session loads it, then restores the keys.
    other = _reopen_from_other_model(qtbot, window, p, path, tmp_path, n_keys=3)
    assert all(np.array_equal(a, b) for a, b in zip(p.keys.keys, keys))
    window.session.set_model(other.engine, other.info, other.info.path)
    qtbot.waitUntil(lambda: len(p.keys.keys) == 4, timeout=10_000)
    os.unlink(tmp_path / "m.safetensors")  # and now the session's own model is gone
    asked = []
    assert export_session.open_path(p, path, ask=lambda parent, text: asked.append(text) or False) == "mismatch"
    assert "made with model m" in asked[0] and window.errors[-1][0] == "The session belongs to another model"
    assert export_session.open_path(p, path, ask=lambda parent, text: True) == "restored"
    assert len(p.keys.keys) == 3


def test_png_export_of_view_images(qtbot, window, tmp_path):
    from PIL import Image

    from explorer.widgets import png_export

    imgs = (np.random.default_rng(0).random((6, 8, 8, 3)) * 255).astype(np.uint8)
    out = str(tmp_path / "strip.png")
    w = png_export.export_dialog(window, png_export.Content(imgs, [f"s={i}" for i in range(6)], 6), "strip",
                                 window.ctx, path=out, options={"scale": 4, "smooth": False, "labels": True})
    qtbot.waitUntil(lambda: os.path.exists(out), timeout=10_000)
    qtbot.waitUntil(lambda: w not in __import__("explorer.workers", fromlist=["_LIVE"])._LIVE, timeout=5_000)
    im = np.asarray(Image.open(out))
    assert im.shape == (32 + 4, 6 * 32 + 7 * 2, 3)
    assert np.array_equal(im[2:12, 2:34], imgs[0].repeat(4, 0).repeat(4, 1)[:10])  # above the caption band
    assert png_export.export_dialog(window, None, "x", window.ctx) is None


def test_data_menu_writes_the_maps_latents(qtbot, window, tmp_path, tiny_dataset):
    from engines.export.data import read_latents
    from explorer.panels.export import data as export_data

    ds = tiny_dataset(n=40, size=16, channels=3)
    npz = str(tmp_path / "blobs.npz")
    np.savez(npz, images=ds.images, labels=ds.labels, height=ds.attributes["height"])
    e = engines.create("vae", ImageSpec(3, 16, 16), device="cpu", seed=0, latent_dim=4, width=8)
    path = ckpt.save(str(tmp_path / "d.safetensors"), e, data={"name": "blobs", "source": npz})
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    p = window.panels["export"]
    window.session.set_model(loaded.engine, loaded.info, path)
    window.show_panel("manifold")
    m = window.panels["manifold"]
    qtbot.waitUntil(lambda: m.md is not None and m.projection is not None, timeout=30_000)
    out = str(tmp_path / "lat.h5")
    assert export_data.latents(p, ".h5", out) is not None
    qtbot.waitUntil(lambda: os.path.exists(out), timeout=10_000)
    d = read_latents(out)
    assert d["latents"].shape == (40, 4) and d["projections"][m.projection.kind].shape == (40, 2)
    assert export_data.bookmarks(p, str(tmp_path / "b.json")) is None  # none yet: a message, no file
    assert export_data.codebook(p, str(tmp_path / "c.h5")) is None  # a VAE has no codebook
    assert not os.path.exists(tmp_path / "b.json") and not window.errors


def test_sweep_and_diffusion_kinds(qtbot, window, tmp_path):
    from engines.latent.attributes import AttributeVector

    p = _open(qtbot, window, _model(tmp_path))
    kinds = p.options.kind
    diff_item = kinds.model().item(kinds.findData("diffusion"))
    assert not diff_item.isEnabled()  # a VAE has no trajectory
    window.panels["arithmetic"].vectors.add(AttributeVector("up", np.ones(4, np.float32), "test", "", (4,)))
    p.options.fps.setValue(8)
    p.options.sweep_seconds.setValue(0.5)
    p.options.width.setValue(32)
    kinds.setCurrentIndex(kinds.findData("sweep"))
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 8 and not p.busy,
                    timeout=10_000)
    spec = p.current_spec()
    assert spec.sweep.name == "up" and np.array_equal(spec.sweep.base, p.keys.keys[0])
    # Training progress: two checkpoints of the same architecture, 0.25 s each at 8 fps.
    ckpts = [_model(tmp_path, seed=s, name=f"step{s}").info.path for s in (1, 2)]
    kinds.setCurrentIndex(kinds.findData("progress"))
    p.options.add_checkpoints(ckpts)
    p.options.prog_n.setValue(2)
    p.options.prog_seconds.setValue(0.25)
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 4 and not p.busy,
                    timeout=10_000)
    assert p.current_spec().progress.checkpoints == ckpts
    d = engines.create("diffusion", ImageSpec(3, 16, 16), device="cpu", width=8, levels=2, attn_size=4)
    path = ckpt.save(str(tmp_path / "d.safetensors"), d)
    loaded = ckpt.load(path, device="cpu", with_optimizer=False)
    window.session.set_model(loaded.engine, loaded.info, path)
    qtbot.waitUntil(lambda: p.engine is loaded.engine and diff_item.isEnabled(), timeout=10_000)
    kinds.setCurrentIndex(kinds.findData("diffusion"))
    p.options.diff_steps.setValue(3)
    p.options.diff_n.setValue(2)
    qtbot.waitUntil(lambda: p.preview_data is not None and len(p.preview_data.frames) == 3 + 8 and not p.busy,
                    timeout=20_000)
    assert p.current_spec().options == {"sampler": "dpm", "steps": 3}


def test_session_vectors_survive_the_arithmetic_panel_loading_later(qtbot, window, tmp_path):
    """A session opened before the Arithmetic panel has identified the model (it loads when first
    shown) keeps its vectors when that panel finally loads."""
    from explorer.panels.export import session as export_session

    from engines.latent.attributes import AttributeVector

    p = _open(qtbot, window, _model(tmp_path))
    arithmetic = window.panels["arithmetic"]
    arithmetic.vectors.add(AttributeVector("up", np.ones(4, np.float32), "test", "", (4,)), active=True)
    path = str(tmp_path / "s.json")
    assert export_session.save_to(p, path)
    _reopen_from_other_model(qtbot, window, p, path, tmp_path, n_keys=4)
    qtbot.waitUntil(lambda: [v.name for v in arithmetic.vectors.vectors()] == ["up"], timeout=10_000)
    assert arithmetic.model_id == ""  # not shown yet: the model is not identified
    window.show_panel("arithmetic")
    qtbot.waitUntil(lambda: arithmetic.model_id != "" and arithmetic._loader is None, timeout=20_000)
    assert [v.name for v in arithmetic.vectors.vectors()] == ["up"]
    assert [v.name for v in arithmetic.vectors.active()] == ["up"]
    assert [name for name, _v in p.vectors()] == ["up"]
