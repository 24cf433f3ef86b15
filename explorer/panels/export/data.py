"""The Export panel's 'Data…' menu: the latents of the Manifold panel's data set with labels,
attributes and the map's coordinates (HDF5, or CSV for the coordinates), the Arithmetic panel's
vectors and the Manifold panel's bookmarks (JSON or HDF5), and a VQ model's codebook usage.
Everything is written in a worker (`engines.export.data`)."""
from __future__ import annotations

import os

from PySide6.QtWidgets import QFileDialog, QMenu

from explorer.workers import run_in_thread


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


def _manifold_data(panel):
    m = panel._other("manifold")
    md = getattr(m, "md", None)
    if md is None:
        panel.ctx.message("Open the Manifold panel first: it encodes the data set these come from.")
    return m, md


def latents(panel, ext: str, path: str | None = None):
    from engines.export import data as dx

    m, md = _manifold_data(panel)
    if md is None:
        return None
    proj = getattr(m, "projection", None)
    coords = {} if proj is None else {proj.kind: proj.coords}
    if ext == ".csv" and not coords:
        panel.ctx.message("The map has no coordinates yet.")
        return None
    path = path or _ask(panel, "Export latents", f"latents{ext}", f"*{ext}")
    if not path:
        return None
    if ext == ".csv":
        return _run(panel, dx.write_projection_csv, path, md.ls, coords, what="coordinates")
    return _run(panel, dx.write_latents, path, md.ls, coords, {"source": md.source}, what="latents")


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

    _m, md = _manifold_data(panel)
    if md is None:
        return None
    if not len(md.bookmarks):
        panel.ctx.message("No bookmarks for this model yet.")
        return None
    path = path or _ask(panel, "Export bookmarks", "bookmarks.json", "JSON (*.json);;HDF5 (*.h5)")
    return _run(panel, dx.write_bookmarks, path, list(md.bookmarks), md.model_id, what="bookmarks") if path else None


def _codebook_job(engine, info, md_images, path):
    from engines.data import load_dataset, training_source
    from engines.export import data as dx
    from engines.latent.cache import model_id

    images = md_images if md_images is not None else load_dataset(training_source(info), spec=engine.spec).images
    return dx.write_codebook_usage(path, dx.codebook_usage(engine, images), model_id(engine))


def codebook(panel, path: str | None = None):
    engine = panel.engine
    if engine is None or "codebook" not in engine.capabilities:
        panel.ctx.message("Codebook usage needs a VQ model.")
        return None
    _m, md = _manifold_data(panel) if panel._other("manifold") is not None else (None, None)
    path = path or _ask(panel, "Export codebook usage", "codebook.h5", "HDF5 (*.h5);;CSV (*.csv)")
    if not path:
        return None
    return _run(panel, _codebook_job, engine, panel.info, None if md is None else md.ds.images, path,
                what="codebook usage")
