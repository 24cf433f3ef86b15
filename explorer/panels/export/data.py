"""The Export panel's 'Data…' menu: the latents of the model's data set (the Workspace's, loaded
and encoded once for every panel) with labels, attributes and the map's coordinates (HDF5, or CSV
for the coordinates), the Workspace's attribute vectors and bookmarks (JSON or HDF5), and a VQ
model's codebook usage. Everything is written in a worker (`engines.export.data`).

When the data is not loaded yet, the export asks the Workspace for it (`ws.request_data()`) and
runs once `data_ready` arrives: these functions then return WAITING."""
from __future__ import annotations

import os

from PySide6.QtWidgets import QFileDialog, QMenu

from explorer.workers import run_in_thread

WAITING = "waiting for the data"


def build_menu(panel) -> QMenu:
    m = QMenu(panel)
    m.addAction("Latents, labels and map coordinates (HDF5)…", lambda: latents(panel, ".h5"))
    m.addAction("Map coordinates (CSV)…", lambda: latents(panel, ".csv"))
    m.addSeparator()
    m.addAction("Attribute vectors (JSON or HDF5)…", lambda: vectors(panel))
    m.addAction("Bookmarks (JSON or HDF5)…", lambda: bookmarks(panel))
    m.addSeparator()
    m.addAction("Codebook usage (HDF5 or CSV)…", lambda: codebook(panel))
    return m


def _ask(panel, title: str, name: str, filters: str) -> str | None:
    start = os.path.join(panel.ctx.settings.last_open_dir or os.path.expanduser("~"), name)
    path, _ = QFileDialog.getSaveFileName(panel, title, start, filters)
    return path or None


def _run(panel, fn, *args, what: str):
    return run_in_thread(fn, *args, on_result=lambda p: panel.ctx.message(f"Saved {p}", 6000),
                         on_error=lambda e: panel.ctx.session.report(e, f"Could not export the {what}"))


def with_data(panel, then):
    """`then(ws, md)` with the Workspace's data: now when it is loaded (returns what `then`
    returns), else once it arrives (returns WAITING; nothing happens if loading fails or the model
    changes meanwhile). None when there is no model or it cannot encode."""
    ws = panel.ctx.workspace
    if ws is None:
        panel.ctx.message("Load a model first.")
        return None
    if ws.data is not None:
        return then(ws, ws.data)
    if not ws.can("encode"):
        panel.ctx.message(f"A {ws.engine.name} model cannot encode images: it has no latents of a data set.")
        return None

    def ready(md):
        drop()
        if ws is panel.ctx.workspace:
            then(ws, md)

    def drop(*_):
        for sig, slot in ((ws.data_ready, ready), (ws.data_failed, drop)):
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass

    ws.data_ready.connect(ready)
    ws.data_failed.connect(drop)
    ws.request_data()
    panel.ctx.message("Encoding the model's data first; the export follows.", 6000)
    return WAITING


def latents(panel, ext: str, path: str | None = None):
    from engines.export import data as dx

    ws = panel.ctx.workspace
    if ws is not None and ws.data is not None and ext == ".csv" and not ws.projections:
        panel.ctx.message("The map has no coordinates yet: open the Manifold panel to draw it.")
        return None
    path = path or _ask(panel, "Export latents", f"latents{ext}", f"*{ext}")
    if not path:
        return None

    def write(ws, md):
        coords = dict(ws.projections)
        if ext == ".csv":
            if not coords:
                panel.ctx.message("The map has no coordinates yet: open the Manifold panel to draw it.")
                return None
            return _run(panel, dx.write_projection_csv, path, md.ls, coords, what="coordinates")
        return _run(panel, dx.write_latents, path, md.ls, coords, {"source": md.source}, what="latents")

    return with_data(panel, write)


def vectors(panel, path: str | None = None):
    from engines.export import data as dx

    vs = [v for _n, v in panel.vectors()]
    if not vs:
        panel.ctx.message("No attribute vectors yet: make them in the Arithmetic panel.")
        return None
    path = path or _ask(panel, "Export vectors", "vectors.json", "JSON (*.json);;HDF5 (*.h5)")
    return _run(panel, dx.write_vectors, path, vs, what="vectors") if path else None


def bookmarks(panel, path: str | None = None):
    from engines.export import data as dx

    ws = panel.ctx.workspace
    if ws is None:
        return None
    ws.ensure_bookmarks()
    if not len(ws.bookmarks):
        panel.ctx.message("No bookmarks for this model yet.")
        return None
    path = path or _ask(panel, "Export bookmarks", "bookmarks.json", "JSON (*.json);;HDF5 (*.h5)")
    return _run(panel, dx.write_bookmarks, path, list(ws.bookmarks), ws.model_id, what="bookmarks") if path else None


def _codebook_job(engine, info, md_images, path):
    from engines.data import load_dataset, training_source
    from engines.export import data as dx
    from engines.latent.cache import model_id

    images = md_images if md_images is not None else load_dataset(training_source(info), spec=engine.spec).images
    return dx.write_codebook_usage(path, dx.codebook_usage(engine, images), model_id(engine))


def codebook(panel, path: str | None = None):
    ws = panel.ctx.workspace
    if ws is None or not ws.can("codebook"):
        panel.ctx.message("Codebook usage needs a VQ model.")
        return None
    path = path or _ask(panel, "Export codebook usage", "codebook.h5", "HDF5 (*.h5);;CSV (*.csv)")
    if not path:
        return None
    md = ws.data  # the loaded data set when there is one; else the job reads the training data
    return _run(panel, _codebook_job, ws.engine, ws.info, None if md is None else md.ds.images, path,
                what="codebook usage")
