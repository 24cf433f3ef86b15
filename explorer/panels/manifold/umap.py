"""UMAP for the Manifold panel: parameters set before a run, the run in a long-job worker with
its progress and Cancel, and the results kept per parameter set (and on disk by
`engines.latent.projection`), so switching back to UMAP or reopening the model is instant.

The map is not touched while UMAP runs; `ready(md, projection)` says when a UMAP map for the
form's parameters exists (memory, disk cache or a finished run), and the panel decides to show it.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from explorer.workers import Worker, run_in_thread
from explorer.panels.manifold.jobs import umap_job


# UMAP stages that report no count while they run (engines.latent.projection.run_umap): the
# neighbour graph and the fuzzy graph with its spectral start. The layout counts its epochs.
MOVING_STAGES = ("neighbours", "graph")


class UmapRunner(QObject):
    ready = Signal(object, object)  # ModelData, Projection

    def __init__(self, controls, session, parent=None):
        super().__init__(parent)
        self.c = controls
        self.session = session
        self.worker: Worker | None = None
        self.maps: dict = {}  # UmapParams → Projection (this model's data)
        self._md = None
        self.looking = False  # a disk-cache lookup is in flight

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def reset(self, md=None) -> None:
        """A new model or data set: forget its maps, stop a run."""
        self.cancel()
        self.maps = {}
        self._md = md
        self.c.umap_bar.setValue(0)

    def show(self, md) -> None:
        """The user wants the UMAP map with the form's parameters: from memory, else the disk cache;
        otherwise say what a run costs (nothing starts without Run)."""
        from engines.latent.projection import load_cached_umap

        self._md = md
        params = self.c.umap_params()
        if params in self.maps:
            self.ready.emit(md, self.maps[params])
            return
        self.c.umap_status.setText("Looking for a cached map…")
        self.looking = True
        run_in_thread(load_cached_umap, md.ls.latents, params,
                      on_result=lambda proj, p=params, m=md: self._on_cached(m, p, proj),
                      on_error=self._on_lookup_failed)

    def _on_lookup_failed(self, e) -> None:
        self.looking = False
        self.c.umap_status.setText(str(e))

    def _on_cached(self, md, params, proj) -> None:
        self.looking = False
        if md is not self._md:
            return
        if proj is None:
            n = len(md.ls)
            self.c.umap_status.setText(f"Not computed yet for these settings. Run takes about "
                                       f"{max(1, round(n / 4000))}–{max(2, round(n / 1000))} min for {n:,} points "
                                       "the first time (the map stays as it is meanwhile).")
            return
        self.maps[params] = proj
        self.c.umap_status.setText(f"UMAP of {len(proj.coords):,} points, from the cache.")
        self.ready.emit(md, proj)

    def run(self, md) -> None:
        if md is None or self.worker is not None:
            return
        c = self.c
        params = c.umap_params()
        c.set_umap_running(True)
        c.umap_bar.setValue(0)
        c.umap_status.setText("Starting UMAP…")
        self.session.set_busy("umap", "computing UMAP")
        self._md = md
        w = Worker(umap_job, md.ls.latents, params)
        w.yielded.connect(self._on_progress)
        w.returned.connect(lambda proj, m=md, p=params: self._on_done(m, p, proj))
        w.errored.connect(lambda e: c.umap_status.setText(f"UMAP failed: {e}"))
        w.finished.connect(self._on_finished)
        self.worker = w
        w.start("long")

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
            self.c.umap_status.setText("Cancelling…")

    def _on_progress(self, p) -> None:
        bar = self.c.umap_bar
        if p.fraction is None or p.stage in MOVING_STAGES:  # no count inside: a moving bar, not a still one
            bar.setRange(0, 0)
        else:
            bar.setRange(0, 1000)
            bar.setValue(int(1000 * p.fraction))
        self.c.umap_status.setText(p.message[:1].upper() + p.message[1:])

    def _on_done(self, md, params, proj) -> None:
        self.c.umap_bar.setRange(0, 1000)
        if proj is None:  # cancelled: the worker closed the generator
            self.c.umap_status.setText("Cancelled. The map is as it was.")
            self.c.umap_bar.setValue(0)
            return
        if md is not self._md:
            return
        self.maps[params] = proj
        how = "from the cache" if proj.from_cache else f"in {proj.seconds:.0f} s, now cached"
        self.c.umap_status.setText(f"UMAP of {len(proj.coords):,} points {how}. Between clusters the scrubbed "
                                   "latent blends the nearest points.")
        self.c.umap_bar.setValue(1000)
        if self.c.umap_params() == params:
            self.ready.emit(md, proj)

    def _on_finished(self) -> None:
        self.worker = None
        self.c.set_umap_running(False)
        self.session.set_busy("umap", None)
