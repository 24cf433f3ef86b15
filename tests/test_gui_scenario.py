"""Issue #16's scenario, played across panels only through the Workspace: two places picked on the
Manifold map become export keys, a map selection becomes an attribute vector in the Arithmetic
panel, the session is saved and opened in a fresh window, and every piece is back. Plus: opening a
model encodes its data once, however many panels show it."""
import ast
import os

import numpy as np
import pytest

import engines
from engines import checkpoint as ckpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PANELS = ("train", "manifold", "arithmetic", "codebook", "diffusion", "export")


@pytest.fixture
def vae_path(tmp_path, tiny_dataset):
    ds = tiny_dataset(n=96, size=16)
    data = tmp_path / "blobs.npz"
    np.savez(data, images=ds.images, labels=ds.labels, label_names=np.array(ds.label_names),
             attr_height=ds.attributes["height"])
    from engines.data import load_dataset

    loaded = load_dataset(str(data))
    e = engines.create("vae", loaded.spec, device="cpu", seed=1, latent_dim=3, width=8)
    return ckpt.save(str(tmp_path / "vae-blobs.safetensors"), e, data=loaded.describe(),
                     train_state={"state": "finished"})


def _open(qtbot, w, path):
    with qtbot.waitSignal(w.session.model_changed, timeout=10_000):
        w.session.load(path)
    p = w.panels["manifold"]
    qtbot.waitUntil(lambda: p.projection is not None and p.inspector.image.has_image(), timeout=30_000)
    qtbot.waitUntil(lambda: not p.busy, timeout=10_000)
    return p


def _no_panel_imports_another():
    bad = []
    for name in PANELS:
        folder = os.path.join(ROOT, "explorer", "panels", name)
        for f in os.listdir(folder):
            if not f.endswith(".py"):
                continue
            tree = ast.parse(open(os.path.join(folder, f), encoding="utf-8").read())
            for node in ast.walk(tree):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                       [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                for m in mods:
                    parts = m.split(".")
                    if parts[:2] == ["explorer", "panels"] and len(parts) > 2 and parts[2] in PANELS and parts[2] != name:
                        bad.append(f"{name}/{f} imports {m}")
    return bad


def test_places_keys_vector_session_round_trip_through_the_workspace(qtbot, make_window, vae_path, tmp_path):
    assert _no_panel_imports_another() == []
    w = make_window("manifold")
    p = _open(qtbot, w, vae_path)
    ws = w.ctx.workspace
    md = ws.data

    # 1. Two places on the map → export keys (the Export panel shows what the Workspace holds).
    n0 = len(ws.keys)
    xy = p.map.coords
    p.use_as_key(float(xy[5, 0]), float(xy[5, 1]), int(md.shown[5]))
    free = (float(xy[:, 0].mean()), float(xy[:, 1].mean()))
    p.use_as_key(*free, -1)
    assert len(ws.keys) == n0 + 2
    np.testing.assert_array_equal(ws.keys[-2].latent, md.ls.latents[md.shown[5]])
    np.testing.assert_allclose(ws.keys[-1].latent, p.projection.mapping.to_latent(np.asarray(free)), rtol=1e-5)
    export = w.panels["export"]
    assert [export.keys.item(i).text() for i in range(export.keys.count())][-2:] == [k.label for k in ws.keys[-2:]]

    # 2. A map selection → groups A/B → an attribute vector, shown in the Arithmetic panel.
    g = p.controls.groups
    p.controls.set_mouse_mode("box")
    p.map.drag_path([(xy[:, 0].min() - 1, xy[:, 1].min() - 1), (float(np.median(xy[:, 0])), xy[:, 1].max() + 1)])
    g.to_a.click()
    p.map.drag_path([(float(np.median(xy[:, 0])) + 1e-6, xy[:, 1].min() - 1), (xy[:, 0].max() + 1, xy[:, 1].max() + 1)])
    g.to_b.click()
    g.make.click()
    qtbot.waitUntil(lambda: len(ws.vectors) == 1, timeout=20_000)
    arithmetic = w.panels["arithmetic"]
    assert w.tabs.currentWidget() is arithmetic
    qtbot.waitUntil(lambda: arithmetic.vectors.vectors() == ws.vectors, timeout=20_000)
    vector = ws.vectors[0]
    ws.add_bookmark("home", md.ls.latents[7])
    ws.set_current(md.ls.latents[11], md.caption(11), "click")

    # 3. Save the session, open it in a fresh window: every piece is back.
    path = str(tmp_path / "scenario.lxsession")
    assert w.sessions.save_to(path)
    keys = [(k.label, k.latent.copy()) for k in ws.keys]
    groups = {k: v.copy() for k, v in ws.groups.items()}
    from explorer.workspace import store

    os.unlink(store.bookmarks_path(ws.model_id))  # the bookmarks must come from the session
    w2 = make_window("export")
    assert w2.ctx.workspace is None
    assert w2.sessions.open_path(path) in ("loading", "restored")  # loads the session's model first
    qtbot.waitUntil(lambda: w2.ctx.workspace is not None and len(w2.ctx.workspace.keys) == len(keys), timeout=30_000)
    ws2 = w2.ctx.workspace
    assert ws2 is not ws and ws2.model_id == ws.model_id
    assert [k.label for k in ws2.keys] == [lab for lab, _ in keys]
    assert all(np.array_equal(a.latent, b) for a, (_, b) in zip(ws2.keys, keys))
    assert [v.name for v in ws2.vectors] == [vector.name] and ws2.is_active(vector.name)
    np.testing.assert_array_equal(ws2.vectors[0].vector, vector.vector)
    assert "home" in ws2.bookmarks and np.array_equal(ws2.bookmarks["home"].latent, md.ls.latents[7])
    assert np.array_equal(ws2.current, md.ls.latents[11]) and ws2.current_label == md.caption(11)
    w2.show_panel("manifold")  # the groups mean the session's data: they come back with it
    qtbot.waitUntil(lambda: ws2.data is not None and ws2.groups["a"] is not None, timeout=30_000)
    assert all(np.array_equal(ws2.groups[k], groups[k]) for k in ("a", "b"))
    e2 = w2.panels["export"]
    assert [e2.keys.item(i).text() for i in range(e2.keys.count())] == [lab for lab, _ in keys]


def test_opening_a_model_encodes_its_data_once_for_every_panel(qtbot, make_window, vae_path, monkeypatch):
    """Manifold, Arithmetic, Export and the rest share the Workspace's one encoded data set: the
    encoder sees each image once. The latent cache is switched off here (every read misses), so
    the count shows sharing, not a cache hit."""
    from engines.base import Engine
    from engines.latent import cache

    monkeypatch.setattr(cache, "_read", lambda *a, **k: None)

    seen = []
    original = Engine.encode

    def counting(self, x, *a, **k):
        seen.append(len(x))
        return original(self, x, *a, **k)

    monkeypatch.setattr(Engine, "encode", counting)
    w = make_window("manifold")
    p = _open(qtbot, w, vae_path)
    ws = w.ctx.workspace
    n = len(ws.data.ls)
    for name in ("arithmetic", "export", "codebook", "diffusion", "manifold", "arithmetic"):
        w.show_panel(name)
        qtbot.wait(200)
    arithmetic = w.panels["arithmetic"]
    qtbot.waitUntil(lambda: arithmetic.md is ws.data, timeout=20_000)
    assert p.md is ws.data
    assert ws.request_data() is False  # asked again: nothing to do
    from explorer import workers

    workers.wait_all(20_000)
    assert sum(seen) == n == 96, seen
